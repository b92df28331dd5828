from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Period = Literal["day", "week", "month"]


class BudgetScope(BaseModel):
    """Which calls count: every listed dimension must match one of its values. Empty = the
    whole project. A single string is read as a one-value list."""

    model_config = ConfigDict(extra="forbid")

    provider: list[str] = Field(default_factory=list)
    model: list[str] = Field(default_factory=list)
    feature: list[str] = Field(default_factory=list)
    customer: list[str] = Field(default_factory=list)
    environment: list[str] = Field(default_factory=list)

    @field_validator("*", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def as_filter(self) -> dict[str, list[str]]:
        return {dim: values for dim, values in self.model_dump().items() if values}


class BudgetCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    amount_usd: Decimal = Field(gt=0, max_digits=20, decimal_places=6)
    period: Period
    scope: BudgetScope = Field(default_factory=BudgetScope)
    thresholds_pct: list[int] = Field(default_factory=lambda: [50, 80, 100], max_length=10)
    channel_ids: list[int] = Field(default_factory=list)
    forecast_alerts: bool = True
    renotify_hours: int | None = Field(default=None, ge=1, le=24 * 31)

    @field_validator("thresholds_pct")
    @classmethod
    def _sane_thresholds(cls, value: list[int]) -> list[int]:
        if any(t <= 0 or t > 1000 for t in value):
            raise ValueError("thresholds are percentages between 1 and 1000")
        return sorted(set(value))


class BudgetUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    amount_usd: Decimal | None = Field(default=None, gt=0, max_digits=20, decimal_places=6)
    scope: BudgetScope | None = None
    thresholds_pct: list[int] | None = None
    channel_ids: list[int] | None = None
    forecast_alerts: bool | None = None
    renotify_hours: int | None = Field(default=None, ge=1, le=24 * 31)

    @field_validator("thresholds_pct")
    @classmethod
    def _sane_thresholds(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else BudgetCreate._sane_thresholds(value)


class ForecastOut(BaseModel):
    """Projected period-end spend. ``upper_*_usd`` is null when the interval is open (too
    little history) and ``probability_over_budget`` null when unknown; ``note`` says why."""

    computed_at: datetime
    period_start: datetime
    period_end: datetime
    spent_usd: Decimal
    projected_usd: Decimal
    lower_80_usd: Decimal
    upper_80_usd: Decimal | None
    lower_95_usd: Decimal
    upper_95_usd: Decimal | None
    probability_over_budget: float | None
    exhaustion_at: datetime | None
    method: str
    short_history: bool
    note: str
    history_days: int


class BudgetOut(BaseModel):
    id: int
    name: str
    amount_usd: Decimal
    period: Period
    scope: dict[str, list[str]]
    thresholds_pct: list[int]
    channel_ids: list[int]
    forecast_alerts: bool
    renotify_hours: int | None
    created_at: datetime


class BudgetStatus(BudgetOut):
    """A budget with where its current period stands. Unpriced calls have no cost and are
    not in ``spent_usd``: they are counted beside it, never as $0."""

    timezone: str
    period_start: datetime
    period_end: datetime
    spent_usd: Decimal
    remaining_usd: Decimal
    percent_used: float
    calls: int
    unpriced_calls: int
    forecast: ForecastOut | None
