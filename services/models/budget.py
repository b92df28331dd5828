from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Numeric,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base

BUDGET_PERIODS = ("day", "week", "month")
SCOPE_DIMENSIONS = ("provider", "model", "feature", "customer", "environment")


class Budget(Base):
    """An amount in USD per calendar period (in the project's time zone) for a scope.

    ``scope`` maps a dimension (provider, model, feature, customer, environment) to the
    values it admits; an empty scope is the whole project. ``channel_ids`` receive its
    alerts."""

    __tablename__ = "budgets"
    __table_args__ = (
        CheckConstraint("period in ('day', 'week', 'month')", name="period"),
        CheckConstraint("amount_usd > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    amount_usd: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    period: Mapped[str] = mapped_column(Text)
    scope: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    thresholds_pct: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{50,80,100}")
    channel_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{}")
    forecast_alerts: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    renotify_hours: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
