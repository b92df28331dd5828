"""rollups: daily request cells (grain 2: whole UTC days, customers summed away), backfilled
from the hourly cells already there

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
           "reasoning_tokens")
_HISTOGRAMS = ("request_cost", "request_tokens", "calls_per_request")


def _merged(name: str) -> str:
    return f"""{name} as (
    select project_id, day, feature, environment,
           array_agg(k order by k) as keys, array_agg(n order by k) as counts
    from (select project_id, date_trunc('day', hour, 'UTC') as day,
                 feature, environment, u.k, sum(u.n)::bigint as n
          from request_rollups, unnest({name}_keys, {name}_counts) as u(k, n)
          where grain = 1
          group by project_id, date_trunc('day', hour, 'UTC'), feature, environment, u.k
          having sum(u.n) <> 0) as b
    group by project_id, day, feature, environment
)"""


BACKFILL = f"""
with totals as (
    select project_id, date_trunc('day', hour, 'UTC') as day, feature, environment,
           sum(requests) as requests, sum(calls) as calls, sum(unpriced_calls) as unpriced_calls,
           {", ".join(f"sum({t}) as {t}" for t in _TOKENS)}, sum(cost_usd) as cost_usd
    from request_rollups where grain = 1
    group by project_id, date_trunc('day', hour, 'UTC'), feature, environment
),
{", ".join(_merged(h) for h in _HISTOGRAMS)}
insert into request_rollups (
    project_id, grain, hour, feature, customer, environment, requests, calls, unpriced_calls,
    {", ".join(_TOKENS)}, cost_usd,
    {", ".join(f"{h}_keys, {h}_counts" for h in _HISTOGRAMS)})
select t.project_id, 2, t.day, t.feature, '', t.environment, t.requests, t.calls,
       t.unpriced_calls, {", ".join(f"t.{x}" for x in _TOKENS)}, t.cost_usd,
       {", ".join(f"coalesce({h}.keys, '{{}}'), coalesce({h}.counts, '{{}}')" for h in _HISTOGRAMS)}
from totals t
{" ".join(f"left join {h} using (project_id, day, feature, environment)" for h in _HISTOGRAMS)}
"""


def upgrade() -> None:
    op.execute(BACKFILL)


def downgrade() -> None:
    op.execute("delete from request_rollups where grain = 2")
