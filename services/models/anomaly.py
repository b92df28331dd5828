from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base

ANOMALY_METRICS = (
    "spend",
    "calls",
    "request_cost_p50",
    "request_cost_p99",
    "request_tokens_p50",
    "request_tokens_p99",
)
ANOMALY_DIMENSIONS = ("project", "provider", "model", "feature", "customer")


class DetectedAnomaly(Base):
    """An anomalous episode of one hourly series: a metric of the whole project
    (``dimension = 'project'``, ``value = ''``) or of one value of a dimension.

    Identified by its first anomalous hour; later runs extend ``end_hour`` and the figures.
    ``observed``/``expected``/``lower``/``upper`` are per-hour means over the episode and
    ``impact`` their summed difference, in the metric's unit (USD for spend)."""

    __tablename__ = "anomalies"
    __table_args__ = (
        CheckConstraint(
            "metric in ('spend', 'calls', 'request_cost_p50', 'request_cost_p99', "
            "'request_tokens_p50', 'request_tokens_p99')",
            name="metric",
        ),
        UniqueConstraint("project_id", "metric", "dimension", "value", "start_hour"),
        Index("ix_anomalies_project_detected", "project_id", "detected_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(Text)
    dimension: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    start_hour: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_hour: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    observed: Mapped[float] = mapped_column(Double)
    expected: Mapped[float] = mapped_column(Double)
    lower: Mapped[float] = mapped_column(Double)
    upper: Mapped[float] = mapped_column(Double)
    score: Mapped[float] = mapped_column(Double)
    impact: Mapped[float] = mapped_column(Double)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
