"""rollups: watermarks, requests, hourly call and request cells with sparse histograms

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sums() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(name, sa.BigInteger(), nullable=False)
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                     "reasoning_tokens")
    ]


def _hist(name: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(f"{name}_keys", postgresql.ARRAY(sa.Integer()), server_default="{}",
                  nullable=False),
        sa.Column(f"{name}_counts", postgresql.ARRAY(sa.BigInteger()), server_default="{}",
                  nullable=False),
    ]


# Merge two sparse histograms (parallel key/count arrays) by summing counts per key; keys whose
# count sums to 0 disappear, so adding a retraction (negative counts) undoes an earlier add.
HIST_ADD = """
create function costline_hist_add(
    a_keys int[], a_counts bigint[], b_keys int[], b_counts bigint[],
    out keys int[], out counts bigint[]
) language sql immutable parallel safe as $$
    select coalesce(array_agg(k order by k), '{}'), coalesce(array_agg(n order by k), '{}')
    from (
        select k, sum(n)::bigint as n
        from (select * from unnest(a_keys, a_counts)
              union all select * from unnest(b_keys, b_counts)) as both_sides(k, n)
        group by k
        having sum(n) <> 0
    ) as merged
$$
"""

# Sum two jsonb objects of counts ({"gpt-4o": 3} + {"gpt-4o": 1} = {"gpt-4o": 4}).
JSONB_COUNTS_ADD = """
create function costline_counts_add(a jsonb, b jsonb) returns jsonb
language sql immutable parallel safe as $$
    select coalesce(jsonb_object_agg(k, n), '{}'::jsonb)
    from (
        select k, sum(v::bigint) as n
        from (select * from jsonb_each_text(a) union all select * from jsonb_each_text(b))
             as both_sides(k, v)
        group by k
        having sum(v::bigint) <> 0
    ) as merged
$$
"""


def upgrade() -> None:
    op.execute(HIST_ADD)
    op.execute(JSONB_COUNTS_ADD)
    op.create_table(
        "rollup_state",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("watermark", sa.Numeric(20, 0), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_rollup_state"),
    )
    op.create_table(
        "call_rollups",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        *[sa.Column(dim, sa.Text(), nullable=False)
          for dim in ("provider", "model", "feature", "customer", "environment")],
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("unpriced_calls", sa.BigInteger(), nullable=False),
        *_sums(),
        sa.Column("cost_usd", sa.Numeric(24, 10), nullable=False),
        *_hist("call_cost"),
        *_hist("latency"),
        sa.PrimaryKeyConstraint("project_id", "grain", "hour", "provider", "model", "feature",
                                "customer", "environment", name="pk_call_rollups"),
    )
    op.create_table(
        "request_rollups",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        *[sa.Column(dim, sa.Text(), nullable=False)
          for dim in ("feature", "customer", "environment")],
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("unpriced_calls", sa.BigInteger(), nullable=False),
        *_sums(),
        sa.Column("cost_usd", sa.Numeric(24, 10), nullable=False),
        *_hist("request_cost"),
        *_hist("request_tokens"),
        *_hist("calls_per_request"),
        sa.PrimaryKeyConstraint("project_id", "grain", "hour", "feature", "customer",
                                "environment", name="pk_request_rollups"),
    )
    op.create_table(
        "requests",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("first_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_span_id", sa.LargeBinary(), nullable=False),
        sa.Column("last_ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("priced_calls", sa.Integer(), nullable=False),
        sa.Column("unpriced_calls", sa.Integer(), nullable=False),
        *_sums(),
        sa.Column("cost_usd", sa.Numeric(24, 10), nullable=False),
        sa.Column("feature", sa.Text(), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("service_name", sa.Text(), nullable=True),
        sa.Column("model_mix", postgresql.JSONB(), nullable=False),
        sa.Column("last_ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rolled", postgresql.JSONB(), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "request_id", name="pk_requests"),
    )
    op.create_index("ix_requests_project_started", "requests", ["project_id", "first_started_at"])
    op.create_index("ix_requests_project_cost", "requests", ["project_id", "cost_usd"])
    op.create_index("ix_requests_unsettled", "requests", ["last_ingested_at"],
                    postgresql_where=sa.text("settled_at is null"))
    # Raw-call listing (GET /v1/calls) and the not-yet-rolled-up tail read by time per project.
    op.create_index("ix_llm_calls_project_cost", "llm_calls", ["project_id", "cost_usd"])


def downgrade() -> None:
    op.drop_index("ix_llm_calls_project_cost", table_name="llm_calls")
    op.drop_index("ix_requests_unsettled", table_name="requests")
    op.drop_index("ix_requests_project_cost", table_name="requests")
    op.drop_index("ix_requests_project_started", table_name="requests")
    op.drop_table("requests")
    op.drop_table("request_rollups")
    op.drop_table("call_rollups")
    op.drop_table("rollup_state")
    op.execute("drop function costline_counts_add(jsonb, jsonb)")
    op.execute("drop function costline_hist_add(int[], bigint[], int[], bigint[])")
