"""Budget rules: a threshold of the period's actual spend crossed, and the period forecast
to end over budget. Keys name (rule, budget, period, threshold), so each fires once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.alerts import service as alerts
from services.alerts.service import AlertSpec
from services.budgets import repository as budgets_repo
from services.budgets.periods import describe, zone
from services.budgets.repository import Spend
from services.budgets.service import current_period
from services.channels.repository import existing_channel_ids
from services.models import Alert, Budget, BudgetForecastRow

# Forecast alert: fire when the median projection is over budget and exceeding it is more
# likely than not; clear only once that chance falls well below (no flapping).
FORECAST_FIRE_PROBABILITY = 0.5
FORECAST_CLEAR_PROBABILITY = 0.3


@dataclass
class BudgetEvaluation:
    fired: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    renotified: list[int] = field(default_factory=list)


def usd(x: Decimal | float) -> str:
    return f"${Decimal(x):,.2f}"


def evaluate_budget(session: Session, *, budget: Budget, now: datetime) -> BudgetEvaluation:
    report = BudgetEvaluation()
    tz, start, end = current_period(session, budget=budget, now=now)
    spent = budgets_repo.spend(
        session, project_id=budget.project_id, scope=budget.scope, start=start, end=end
    )
    forecast = budgets_repo.latest_forecast(session, budget_id=budget.id, period_start=start)
    channels = sorted(
        existing_channel_ids(session, project_id=budget.project_id, ids=budget.channel_ids)
    )
    context = _Context(
        budget=budget, tz=tz, start=start, end=end, spent=spent, forecast=forecast, session=session
    )
    pct = float(spent.cost_usd / budget.amount_usd * 100)

    _close_past_periods(session, budget=budget, start=start, now=now)
    crossed = [t for t in sorted(budget.thresholds_pct) if pct >= t]
    for threshold in crossed:
        # Several thresholds crossed at once: record all, tell people about the highest.
        alert = alerts.fire_once(
            session,
            project_id=budget.project_id,
            spec=_threshold_spec(context, threshold),
            channel_ids=channels,
            now=now,
            notify=threshold == crossed[-1],
        )
        if alert is not None:
            report.fired.append(alert.id)
    for alert in _firing(session, budget=budget, start=start, rule="budget_threshold"):
        if alert.threshold_pct is not None and pct < alert.threshold_pct:
            resolution = (
                f"{budget.name} is back under {alert.threshold_pct} %: "
                f"{usd(spent.cost_usd)} of {usd(budget.amount_usd)} ({pct:.0f} %)."
            )
            if alerts.resolve(
                session, alert=alert, now=now, resolution=resolution, channel_ids=channels
            ):
                report.resolved.append(alert.id)

    if budget.forecast_alerts and forecast is not None:
        _forecast_rule(context, channels=channels, now=now, report=report)

    if budget.renotify_hours:
        every = timedelta(hours=budget.renotify_hours)
        for alert in _firing(session, budget=budget, start=start, rule=None):
            if alerts.renotify_if_due(
                session, alert=alert, every=every, now=now, channel_ids=channels
            ):
                report.renotified.append(alert.id)
    return report


@dataclass
class _Context:
    budget: Budget
    tz: str
    start: datetime
    end: datetime
    spent: Spend
    forecast: BudgetForecastRow | None
    session: Session

    @property
    def period_name(self) -> str:
        return describe(self.budget.period, self.start, self.tz)

    @property
    def window(self) -> str:
        z = zone(self.tz)
        last_day = (self.end.astimezone(z) - timedelta(seconds=1)).date()
        return f"{self.start.astimezone(z):%Y-%m-%d} → {last_day:%Y-%m-%d} ({self.tz})"

    def facts(self) -> list[list[str]]:
        b, s = self.budget, self.spent
        pct = float(s.cost_usd / b.amount_usd * 100)
        facts = [
            ["Spent", f"{usd(s.cost_usd)} ({pct:.0f} % of budget)"],
            ["Budget", f"{usd(b.amount_usd)} per {b.period}"],
            ["Remaining", usd(max(b.amount_usd - s.cost_usd, Decimal(0)))],
        ]
        if self.forecast is not None:
            facts.append(["Forecast", _forecast_text(self.forecast)])
            out_at = self.forecast.exhaustion_at
            if out_at is not None:
                ran_out = out_at < self.forecast.computed_at
                facts.append(["Ran out" if ran_out else "Runs out", _date(out_at, self.tz)])
        if s.unpriced_calls:
            facts.append(["Unpriced calls", f"{s.unpriced_calls:,} (cost unknown, not counted)"])
        if b.scope:
            facts.append(["Scope", "; ".join(f"{k}={','.join(v)}" for k, v in b.scope.items())])
        return facts

    def contributors(self) -> list[str]:
        top = budgets_repo.top_contributors(
            self.session,
            project_id=self.budget.project_id,
            scope=self.budget.scope,
            start=self.start,
            end=self.end,
        )
        total = self.spent.cost_usd or Decimal(1)
        return [
            f"{dim} {value}: {usd(cost)} ({float(cost / total * 100):.0f} %)"
            for dim, value, cost in top
        ]

    def summary(self, *, headline: str, severity: str) -> dict[str, Any]:
        return {
            "headline": headline,
            "severity": severity,
            "facts": self.facts(),
            "contributors": self.contributors(),
            "window": self.window,
            "query": f"GET /v1/budgets/{self.budget.id}",
        }


def _threshold_spec(c: _Context, threshold: int) -> AlertSpec:
    b = c.budget
    headline = (
        f"*{b.name}* has used *{threshold} %* of its {c.period_name} budget: "
        f"{usd(c.spent.cost_usd)} of {usd(b.amount_usd)}."
    )
    if threshold >= 100:
        headline = (
            f"*{b.name}* is *over budget* for {c.period_name}: "
            f"{usd(c.spent.cost_usd)} spent against {usd(b.amount_usd)}."
        )
    return AlertSpec(
        rule="budget_threshold",
        dedupe_key=f"budget:{b.id}:{c.start.isoformat()}:threshold:{threshold}",
        title=f"{b.name}: {threshold} % of budget used",
        summary=c.summary(
            headline=headline, severity="critical" if threshold >= 100 else "warning"
        ),
        budget_id=b.id,
        period_start=c.start,
        threshold_pct=threshold,
        window_start=c.start,
        window_end=c.end,
    )


def _forecast_rule(
    c: _Context, *, channels: list[int], now: datetime, report: BudgetEvaluation
) -> None:
    b, f = c.budget, c.forecast
    assert f is not None
    key = f"budget:{b.id}:{c.start.isoformat()}:forecast"
    probability = f.probability_over_budget
    over = (
        probability is not None
        and probability >= FORECAST_FIRE_PROBABILITY
        and f.projected_usd > b.amount_usd
        and c.spent.cost_usd < b.amount_usd
    )
    if over:
        excess = float((f.projected_usd - b.amount_usd) / b.amount_usd * 100)
        headline = (
            f"*{b.name}* is forecast to end {c.period_name} at "
            f"*{usd(f.projected_usd)}*, {excess:.0f} % over its {usd(b.amount_usd)} "
            f"budget ({probability:.0%} chance of going over)."
        )
        spec = AlertSpec(
            rule="budget_forecast",
            dedupe_key=key,
            title=f"{b.name}: forecast {excess:.0f} % over budget",
            summary=c.summary(headline=headline, severity="warning") | {"note": f.note},
            budget_id=b.id,
            period_start=c.start,
            window_start=c.start,
            window_end=c.end,
        )
        alert = alerts.fire_once(
            session=c.session, project_id=b.project_id, spec=spec, channel_ids=channels, now=now
        )
        if alert is not None:
            report.fired.append(alert.id)
        return
    if probability is not None and probability < FORECAST_CLEAR_PROBABILITY:
        existing = next(
            iter(_firing(c.session, budget=b, start=c.start, rule="budget_forecast")), None
        )
        if existing is not None and alerts.resolve(
            c.session,
            alert=existing,
            now=now,
            channel_ids=channels,
            resolution=(
                f"{b.name} is no longer forecast to go over: now projected at "
                f"{usd(f.projected_usd)} of {usd(b.amount_usd)} "
                f"({probability:.0%} chance of going over)."
            ),
        ):
            report.resolved.append(existing.id)


def _firing(session: Session, *, budget: Budget, start: datetime, rule: str | None) -> list[Alert]:
    query = select(Alert).where(
        Alert.budget_id == budget.id, Alert.status == "firing", Alert.period_start == start
    )
    if rule:
        query = query.where(Alert.rule == rule)
    return list(session.scalars(query.order_by(Alert.id)))


def _close_past_periods(
    session: Session, *, budget: Budget, start: datetime, now: datetime
) -> None:
    """A period that ended takes its alerts with it, silently: the new period starts clean."""
    for alert in session.scalars(
        select(Alert).where(
            Alert.budget_id == budget.id,
            Alert.status == "firing",
            Alert.period_start < start,
        )
    ):
        alert.status = "resolved"
        alert.resolved_at = now
        alert.summary = {**alert.summary, "resolution": "The budget period ended."}


def _forecast_text(f: BudgetForecastRow) -> str:
    if f.upper_80_usd is None or f.upper_95_usd is None:
        return f"{usd(f.projected_usd)} so far; too little history to project"
    text = (
        f"{usd(f.projected_usd)} (80 %: {usd(f.lower_80_usd)} to {usd(f.upper_80_usd)}, "
        f"95 %: {usd(f.lower_95_usd)} to {usd(f.upper_95_usd)})"
    )
    if f.method != "ets_weekly":
        text += ", short history: wide interval"
    return text


def _date(t: datetime, tz: str) -> str:
    return f"{t.astimezone(zone(tz)):%a %d %b %H:%M}"


def evaluate_project_budgets(
    session: Session, *, project_id: int, now: datetime
) -> BudgetEvaluation:
    total = BudgetEvaluation()
    for budget in budgets_repo.list_budgets(session, project_id=project_id):
        one = evaluate_budget(session, budget=budget, now=now)
        total.fired += one.fired
        total.resolved += one.resolved
        total.renotified += one.renotified
    return total
