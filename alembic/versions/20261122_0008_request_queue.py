"""rollups: requests waiting to settle move to request_queue; a request row is written only
when calls arrive (settling deleted its queue entry instead of rewriting the row)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_queue",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("last_ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "request_id", name="pk_request_queue"),
    )
    op.create_index("ix_request_queue_last_ingested_at", "request_queue", ["last_ingested_at"])
    # A settled request's row is exactly what it contributed (any change unsettled it), so
    # its stored contribution is redundant; an unsettled one contributed nothing yet, or its
    # old contribution, which is retracted here so that "queued" means "not in the cells".
    op.execute(
        """
        insert into request_queue (project_id, request_id, last_ingested_at)
        select project_id, request_id, last_ingested_at from requests where settled_at is null
        """
    )
    op.execute(RETRACT_UNSETTLED)
    op.execute("delete from request_rollups where requests = 0")
    op.drop_index("ix_requests_unsettled", table_name="requests")
    op.drop_column("requests", "rolled")
    op.drop_column("requests", "settled_at")


# Take the stored contribution of requests that were re-opened by a late call out of the
# cells (the old design kept it there until the request settled again).
RETRACT_UNSETTLED = """
with parts as (
    select r.project_id, (r.rolled->>'hour')::timestamptz as hour, r.rolled->>'feature' as feature,
           r.rolled->>'customer' as customer, r.rolled->>'environment' as environment,
           r.rolled as c
    from requests r where r.settled_at is null and r.rolled is not null
),
cells as (
    select project_id, g.grain, g.cell_hour, feature, g.cell_customer, environment,
           count(*) as requests, sum((c->>'calls')::bigint) as calls,
           sum((c->>'unpriced_calls')::bigint) as unpriced_calls,
           sum((c->>'input_tokens')::bigint) as input_tokens,
           sum((c->>'output_tokens')::bigint) as output_tokens,
           sum((c->>'cache_read_tokens')::bigint) as cache_read_tokens,
           sum((c->>'cache_write_tokens')::bigint) as cache_write_tokens,
           sum((c->>'reasoning_tokens')::bigint) as reasoning_tokens,
           sum((c->>'cost_usd')::numeric) as cost_usd,
           array_agg((c->>'cost_key')::int) filter (where c->>'cost_key' is not null) as cost_keys,
           array_agg((c->>'tokens_key')::int) as tokens_keys,
           array_agg((c->>'calls_key')::int) as calls_keys
    from parts
    cross join lateral (values (0::smallint, parts.hour, parts.customer),
                               (1::smallint, parts.hour, ''),
                               (2::smallint, date_trunc('day', parts.hour, 'UTC'), ''))
         as g(grain, cell_hour, cell_customer)
    group by project_id, g.grain, g.cell_hour, feature, g.cell_customer, environment
)
update request_rollups r set
    requests = r.requests - t.requests, calls = r.calls - t.calls,
    unpriced_calls = r.unpriced_calls - t.unpriced_calls,
    input_tokens = r.input_tokens - t.input_tokens,
    output_tokens = r.output_tokens - t.output_tokens,
    cache_read_tokens = r.cache_read_tokens - t.cache_read_tokens,
    cache_write_tokens = r.cache_write_tokens - t.cache_write_tokens,
    reasoning_tokens = r.reasoning_tokens - t.reasoning_tokens,
    cost_usd = r.cost_usd - t.cost_usd,
    (request_cost_keys, request_cost_counts) = (
        select keys, counts from costline_hist_add(
            r.request_cost_keys, r.request_cost_counts, coalesce(t.cost_keys, '{}'),
            array_fill(-1::bigint, array[cardinality(coalesce(t.cost_keys, '{}'))]))),
    (request_tokens_keys, request_tokens_counts) = (
        select keys, counts from costline_hist_add(
            r.request_tokens_keys, r.request_tokens_counts, t.tokens_keys,
            array_fill(-1::bigint, array[cardinality(t.tokens_keys)]))),
    (calls_per_request_keys, calls_per_request_counts) = (
        select keys, counts from costline_hist_add(
            r.calls_per_request_keys, r.calls_per_request_counts, t.calls_keys,
            array_fill(-1::bigint, array[cardinality(t.calls_keys)])))
from (
    select project_id, grain, cell_hour as hour, feature, cell_customer as customer,
           environment, requests, calls, unpriced_calls, input_tokens, output_tokens,
           cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, cost_keys,
           tokens_keys, calls_keys
    from cells
) as t
where r.project_id = t.project_id and r.grain = t.grain and r.hour = t.hour
      and r.feature = t.feature and r.customer = t.customer and r.environment = t.environment
"""


def downgrade() -> None:
    op.add_column("requests", sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("requests", sa.Column("rolled", postgresql.JSONB(), nullable=True))
    # Queued requests come back unsettled with nothing rolled; the others as settled now, with
    # their row as what they contributed.
    op.execute(
        f"""
        update requests r set settled_at = now(), rolled = {_ROLLED}
        where not exists (select from request_queue q
                          where q.project_id = r.project_id and q.request_id = r.request_id)
        """
    )
    op.create_index(
        "ix_requests_unsettled",
        "requests",
        ["last_ingested_at"],
        postgresql_where=sa.text("settled_at is null"),
    )
    op.drop_index("ix_request_queue_last_ingested_at", table_name="request_queue")
    op.drop_table("request_queue")


_LN_GAMMA = 0.020000666706669435


def _key(expr: str) -> str:
    return (
        f"(case when ({expr}) < 1e-12 then {-(2**31)} "
        f"else ceil(ln({expr}) / {_LN_GAMMA!r})::int end)"
    )


_ROLLED = f"""jsonb_build_object(
    'hour', date_trunc('hour', r.first_started_at, 'UTC'),
    'feature', r.feature, 'customer', r.customer, 'environment', r.environment,
    'calls', r.calls, 'unpriced_calls', r.unpriced_calls, 'cost_usd', r.cost_usd,
    'input_tokens', r.input_tokens, 'output_tokens', r.output_tokens,
    'cache_read_tokens', r.cache_read_tokens, 'cache_write_tokens', r.cache_write_tokens,
    'reasoning_tokens', r.reasoning_tokens,
    'cost_key', case when r.priced_calls > 0 then {_key("r.cost_usd::float8")} end,
    'tokens_key', {_key("(r.input_tokens + r.output_tokens)::float8")},
    'calls_key', {_key("r.calls::float8")})"""
