"""Spend of a scope over a time range: rolled-up hours plus the calls not rolled up yet.

Rollup cells are whole UTC hours. Hours fully inside the range are read from
``call_rollups`` (the grain without customers unless the scope filters on customers),
calls committed after the rollup watermark from ``llm_calls``, and partial hours at the
edges (time zones offset by half hours) from ``llm_calls`` too. One statement, so the
watermark and both reads share one snapshot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from services.models import Budget, BudgetForecastRow, Project
from services.models.rollup import GRAIN_FULL, GRAIN_NO_CUSTOMER

# Dimension -> (rollup column, llm_calls expression)
_DIMENSIONS = {
    "provider": ("r.provider", "coalesce(c.provider, '')"),
    "model": ("r.model", "coalesce(c.response_model, c.request_model, '')"),
    "feature": ("r.feature", "coalesce(c.feature, '')"),
    "customer": ("r.customer", "coalesce(c.customer, '')"),
    "environment": ("r.environment", "coalesce(c.environment, '')"),
}
_WATERMARK = ("with wm as (select coalesce((select watermark from rollup_state "
              "where name = 'calls'), 0)::text::xid8 as x)")


@dataclass(frozen=True, slots=True)
class Spend:
    cost_usd: Decimal
    calls: int
    unpriced_calls: int


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(t: datetime) -> datetime:
    floor = _floor_hour(t)
    return floor if floor == t else floor + timedelta(hours=1)


def _filters(scope: Mapping[str, Sequence[str]], params: dict[str, Any]) -> tuple[str, str, int]:
    rollup_sql, calls_sql = [], []
    for dim, values in sorted(scope.items()):
        if not values:
            continue
        column, expression = _DIMENSIONS[dim]
        params[f"v_{dim}"] = list(values)
        rollup_sql.append(f" and {column} = any(:v_{dim})")
        calls_sql.append(f" and {expression} = any(:v_{dim})")
    grain = GRAIN_FULL if scope.get("customer") else GRAIN_NO_CUSTOMER
    return "".join(rollup_sql), "".join(calls_sql), grain


def spend(
    session: Session, *, project_id: int, scope: Mapping[str, Sequence[str]],
    start: datetime, end: datetime,
) -> Spend:
    """Priced spend, calls and unpriced calls of calls started in [start, end)."""
    hour_a = min(_ceil_hour(start), end)
    hour_b = max(_floor_hour(end), hour_a)
    params: dict[str, Any] = {"p": project_id, "a": start, "b": end, "ha": hour_a, "hb": hour_b}
    rollup_where, calls_where, grain = _filters(scope, params)
    params["g"] = grain
    row = session.execute(text(f"""
        {_WATERMARK},
        rolled as (
            select coalesce(sum(r.cost_usd), 0) as cost, coalesce(sum(r.calls), 0) as calls,
                   coalesce(sum(r.unpriced_calls), 0) as unpriced
            from call_rollups r
            where r.project_id = :p and r.grain = :g and r.hour >= :ha and r.hour < :hb
                  {rollup_where}
        ),
        raw as (
            select coalesce(sum(c.cost_usd), 0) as cost, count(*) as calls,
                   count(*) - count(c.cost_usd) as unpriced
            from llm_calls c, wm
            where c.project_id = :p and c.started_at >= :a and c.started_at < :b
                  and (c.started_at < :ha or c.started_at >= :hb or c.ingest_xid >= wm.x)
                  {calls_where}
        )
        select rolled.cost + raw.cost, rolled.calls + raw.calls, rolled.unpriced + raw.unpriced
        from rolled, raw
    """), params).one()
    return Spend(cost_usd=Decimal(row[0]), calls=int(row[1]), unpriced_calls=int(row[2]))


def hourly_spend(
    session: Session, *, project_id: int, scope: Mapping[str, Sequence[str]],
    start: datetime, end: datetime,
) -> list[tuple[datetime, Decimal]]:
    """Spend per UTC hour of call start in [start, end), hours with spend only."""
    params: dict[str, Any] = {"p": project_id, "a": _floor_hour(start), "b": end}
    rollup_where, calls_where, grain = _filters(scope, params)
    params["g"] = grain
    rows = session.execute(text(f"""
        {_WATERMARK}
        select hour, sum(cost) from (
            select r.hour, r.cost_usd as cost from call_rollups r
            where r.project_id = :p and r.grain = :g and r.hour >= :a and r.hour < :b
                  {rollup_where}
            union all
            select date_trunc('hour', c.started_at, 'UTC'), c.cost_usd from llm_calls c, wm
            where c.project_id = :p and c.started_at >= :a and c.started_at < :b
                  and c.ingest_xid >= wm.x {calls_where}
        ) as s
        group by hour having sum(cost) is not null order by hour
    """), params)
    return [(hour, Decimal(cost)) for hour, cost in rows]


def top_contributors(
    session: Session, *, project_id: int, scope: Mapping[str, Sequence[str]],
    start: datetime, end: datetime, dimensions: Sequence[str] = ("model", "feature", "customer"),
    limit: int = 2,
) -> list[tuple[str, str, Decimal]]:
    """The biggest (dimension, value, cost) of the rolled-up hours of a range."""
    out: list[tuple[str, str, Decimal]] = []
    for dim in dimensions:
        params: dict[str, Any] = {"p": project_id, "a": _ceil_hour(start),
                                  "b": _floor_hour(end), "n": limit}
        rollup_where, _, grain = _filters(scope, params)
        if dim == "customer":
            grain = GRAIN_FULL
        column = _DIMENSIONS[dim][0]
        rows = session.execute(text(f"""
            select {column}, sum(r.cost_usd) as cost from call_rollups r
            where r.project_id = :p and r.grain = {grain} and r.hour >= :a and r.hour < :b
                  {rollup_where}
            group by 1 having sum(r.cost_usd) > 0 order by 2 desc limit :n
        """), params)
        out.extend((dim, value or "(none)", Decimal(cost)) for value, cost in rows)
    return out


def project_timezone(session: Session, *, project_id: int) -> str:
    tz = session.scalar(select(Project.timezone).where(Project.id == project_id))
    return tz or "UTC"


def get_budget(session: Session, *, project_id: int, budget_id: int) -> Budget | None:
    return session.scalar(
        select(Budget).where(Budget.project_id == project_id, Budget.id == budget_id)
    )


def list_budgets(session: Session, *, project_id: int) -> Sequence[Budget]:
    return session.scalars(
        select(Budget).where(Budget.project_id == project_id).order_by(Budget.id)
    ).all()


def all_budget_ids(session: Session) -> list[tuple[int, int]]:
    """(project_id, budget_id) of every budget."""
    rows = session.execute(select(Budget.project_id, Budget.id).order_by(Budget.id))
    return [(int(p), int(b)) for p, b in rows]


def latest_forecast(
    session: Session, *, budget_id: int, period_start: datetime
) -> BudgetForecastRow | None:
    return session.scalar(select(BudgetForecastRow).where(
        BudgetForecastRow.budget_id == budget_id,
        BudgetForecastRow.period_start == period_start,
    ))
