from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base

ALERT_RULES = ("budget_threshold", "budget_forecast", "anomaly")


class Alert(Base):
    """One firing of a rule for a scope, period and threshold.

    ``dedupe_key`` is unique per project, so however many evaluators run, a condition fires
    once; ``notifications`` counts the messages queued for it (fire, re-notify, recovery).
    ``summary`` is what the message shows, frozen when the alert fired."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(
            "rule in ('budget_threshold', 'budget_forecast', 'anomaly', "
            "'p99_request_cost_regression')",
            name="rule",
        ),
        CheckConstraint("status in ('firing', 'resolved')", name="status"),
        UniqueConstraint("project_id", "dedupe_key"),
        Index("ix_alerts_project_created", "project_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str] = mapped_column(Text)
    budget_id: Mapped[int | None] = mapped_column(ForeignKey("budgets.id", ondelete="SET NULL"))
    anomaly_id: Mapped[int | None] = mapped_column(ForeignKey("anomalies.id", ondelete="SET NULL"))
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    threshold_pct: Mapped[int | None] = mapped_column(Integer)
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notifications: Mapped[int] = mapped_column(Integer, server_default="0")
