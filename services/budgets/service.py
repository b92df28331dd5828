"""Budgets: CRUD, where the current period stands, and its forecast."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.analytics.forecast import BudgetForecast, forecast_budget
from services.budgets import repository
from services.budgets.periods import period_bounds
from services.budgets.schemas import (
    BudgetCreate,
    BudgetOut,
    BudgetStatus,
    BudgetUpdate,
    ForecastOut,
)
from services.channels.service import require_channels
from services.core.errors import NotFound
from services.models import Budget, BudgetForecastRow

FORECAST_HISTORY = timedelta(days=91)
_CENT = Decimal("0.000001")


class BudgetNotFound(NotFound):
    code = "budget_not_found"


def to_out(budget: Budget) -> BudgetOut:
    return BudgetOut(
        id=budget.id, name=budget.name, amount_usd=budget.amount_usd,
        period=budget.period,
        scope=budget.scope, thresholds_pct=list(budget.thresholds_pct),
        channel_ids=list(budget.channel_ids), forecast_alerts=budget.forecast_alerts,
        renotify_hours=budget.renotify_hours, created_at=budget.created_at,
    )


def get_budget(session: Session, *, project_id: int, budget_id: int) -> Budget:
    budget = repository.get_budget(session, project_id=project_id, budget_id=budget_id)
    if budget is None:
        raise BudgetNotFound(f"no budget with id {budget_id}", field="budget_id")
    return budget


def create_budget(session: Session, *, project_id: int, params: BudgetCreate,
                  now: datetime) -> BudgetOut:
    budget = Budget(
        project_id=project_id, name=params.name.strip(), amount_usd=params.amount_usd,
        period=params.period, scope=params.scope.as_filter(),
        thresholds_pct=params.thresholds_pct,
        channel_ids=require_channels(session, project_id=project_id, ids=params.channel_ids),
        forecast_alerts=params.forecast_alerts, renotify_hours=params.renotify_hours,
        created_at=now, updated_at=now,
    )
    session.add(budget)
    session.flush()
    return to_out(budget)


def update_budget(session: Session, *, project_id: int, budget_id: int, params: BudgetUpdate,
                  now: datetime) -> BudgetOut:
    budget = get_budget(session, project_id=project_id, budget_id=budget_id)
    fields = params.model_dump(exclude_unset=True)
    if params.name is not None:
        budget.name = params.name.strip()
    if params.amount_usd is not None:
        budget.amount_usd = params.amount_usd
    if params.scope is not None:
        budget.scope = params.scope.as_filter()
    if params.thresholds_pct is not None:
        budget.thresholds_pct = params.thresholds_pct
    if params.channel_ids is not None:
        budget.channel_ids = require_channels(session, project_id=project_id,
                                              ids=params.channel_ids)
    if params.forecast_alerts is not None:
        budget.forecast_alerts = params.forecast_alerts
    if "renotify_hours" in fields:
        budget.renotify_hours = params.renotify_hours
    budget.updated_at = now
    session.flush()
    return to_out(budget)


def delete_budget(session: Session, *, project_id: int, budget_id: int) -> None:
    session.delete(get_budget(session, project_id=project_id, budget_id=budget_id))
    session.flush()


def list_budgets(session: Session, *, project_id: int) -> list[BudgetOut]:
    return [to_out(b) for b in repository.list_budgets(session, project_id=project_id)]


def current_period(session: Session, *, budget: Budget,
                   now: datetime) -> tuple[str, datetime, datetime]:
    tz = repository.project_timezone(session, project_id=budget.project_id)
    start, end = period_bounds(budget.period, at=now, timezone=tz)
    return tz, start, end


def budget_status(session: Session, *, project_id: int, budget_id: int,
                  now: datetime) -> BudgetStatus:
    budget = get_budget(session, project_id=project_id, budget_id=budget_id)
    tz, start, end = current_period(session, budget=budget, now=now)
    spent = repository.spend(session, project_id=project_id, scope=budget.scope, start=start,
                             end=end)
    row = repository.latest_forecast(session, budget_id=budget.id, period_start=start)
    return BudgetStatus(
        **to_out(budget).model_dump(), timezone=tz, period_start=start, period_end=end,
        spent_usd=spent.cost_usd, remaining_usd=max(budget.amount_usd - spent.cost_usd, Decimal(0)),
        percent_used=round(float(spent.cost_usd / budget.amount_usd * 100), 2),
        calls=spent.calls, unpriced_calls=spent.unpriced_calls,
        forecast=None if row is None else forecast_out(row),
    )


def refresh_forecast(session: Session, *, project_id: int, budget_id: int,
                     now: datetime) -> ForecastOut:
    """Forecast the current period from the spend history and store it (one row per
    budget and period, replaced by each run)."""
    budget = get_budget(session, project_id=project_id, budget_id=budget_id)
    _, start, end = current_period(session, budget=budget, now=now)
    spent = repository.spend(session, project_id=project_id, scope=budget.scope, start=start,
                             end=end)
    history = repository.hourly_spend(session, project_id=project_id, scope=budget.scope,
                                      start=min(start, now - FORECAST_HISTORY), end=now)
    result = forecast_budget(
        timestamps=[hour for hour, _ in history],
        values=[float(cost) for _, cost in history],
        period_start=start, period_end=end, now=now,
        spent_so_far=float(spent.cost_usd), budget=float(budget.amount_usd),
        resolution="hour",
    )
    values = _forecast_values(result) | {
        "project_id": project_id, "budget_id": budget.id, "period_start": start,
        "period_end": end, "computed_at": now, "spent_usd": spent.cost_usd,
    }
    stmt = insert(BudgetForecastRow).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["budget_id", "period_start"],
        set_={k: stmt.excluded[k] for k in values if k not in ("budget_id", "period_start")},
    )
    session.execute(stmt)
    row = repository.latest_forecast(session, budget_id=budget.id, period_start=start)
    assert row is not None
    session.refresh(row)
    return forecast_out(row)


def _money(x: float) -> Decimal | None:
    return None if not math.isfinite(x) else Decimal(repr(x)).quantize(_CENT)


def _forecast_values(f: BudgetForecast) -> dict[str, object]:
    return {
        "projected_usd": _money(f.projected_spend), "lower_80_usd": _money(f.lower_80),
        "upper_80_usd": _money(f.upper_80), "lower_95_usd": _money(f.lower_95),
        "upper_95_usd": _money(f.upper_95),
        "probability_over_budget": (None if math.isnan(f.probability_over_budget)
                                    else f.probability_over_budget),
        "exhaustion_at": f.exhaustion_at, "method": f.method, "note": f.note,
        "history_days": f.history_days,
    }


def forecast_out(row: BudgetForecastRow) -> ForecastOut:
    return ForecastOut(
        computed_at=row.computed_at, period_start=row.period_start, period_end=row.period_end,
        spent_usd=row.spent_usd, projected_usd=row.projected_usd,
        lower_80_usd=row.lower_80_usd, upper_80_usd=row.upper_80_usd,
        lower_95_usd=row.lower_95_usd, upper_95_usd=row.upper_95_usd,
        probability_over_budget=row.probability_over_budget, exhaustion_at=row.exhaustion_at,
        method=row.method, short_history=row.method != "ets_weekly", note=row.note,
        history_days=row.history_days,
    )
