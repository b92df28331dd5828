from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Identity, Index, Numeric, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base


class PriceOverrideRow(Base):
    """A project's own price for a provider + model, in force over [from, to). Never updated
    in place: a new price is a new row, so every stored cost can name the price it used."""

    __tablename__ = "price_overrides"
    __table_args__ = (
        CheckConstraint(
            "discount_pct is not null or input_mtok is not null or output_mtok is not null "
            "or cache_read_mtok is not null or cache_write_mtok is not null",
            name="has_a_price",
        ),
        CheckConstraint(
            "discount_pct is null or (discount_pct >= 0 and discount_pct <= 100)",
            name="discount_range",
        ),
        CheckConstraint(
            "effective_to is null or effective_to > effective_from", name="effective_range"
        ),
        Index("ix_price_overrides_project_model", "project_id", "provider", "model"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    effective_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    input_mtok: Mapped[Decimal | None] = mapped_column(Numeric(20, 10))
    output_mtok: Mapped[Decimal | None] = mapped_column(Numeric(20, 10))
    cache_read_mtok: Mapped[Decimal | None] = mapped_column(Numeric(20, 10))
    cache_write_mtok: Mapped[Decimal | None] = mapped_column(Numeric(20, 10))
    discount_pct: Mapped[Decimal | None] = mapped_column(Numeric(7, 4))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
