from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Integer,
    Numeric,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base


class BudgetForecastRow(Base):
    """The latest forecast of a budget's period total (one row per budget and period,
    overwritten by each run). Open upper bounds (too little history) are NULL, as is an
    unknown probability."""

    __tablename__ = "forecasts"
    __table_args__ = (UniqueConstraint("budget_id", "period_start"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    spent_usd: Mapped[Decimal] = mapped_column(Numeric(24, 10))
    projected_usd: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    lower_80_usd: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    upper_80_usd: Mapped[Decimal | None] = mapped_column(Numeric(24, 6))
    lower_95_usd: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    upper_95_usd: Mapped[Decimal | None] = mapped_column(Numeric(24, 6))
    probability_over_budget: Mapped[float | None] = mapped_column(Double)
    exhaustion_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    method: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text)
    history_days: Mapped[int] = mapped_column(Integer)
