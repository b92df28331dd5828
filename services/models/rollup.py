from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base

# Grains of a rollup cell: FULL has every dimension; NO_CUSTOMER sums customers away, so
# questions that do not involve customers read far fewer cells.
GRAIN_FULL = 0
GRAIN_NO_CUSTOMER = 1
# Request cells only: whole UTC days (``hour`` holds the day's start), customers summed away;
# day/week/month questions in a time zone at UTC read 24x fewer cells.
GRAIN_DAY_NO_CUSTOMER = 2


def _hist(name: str) -> tuple[Mapped[list[int]], Mapped[list[int]]]:
    return (
        mapped_column(f"{name}_keys", ARRAY(Integer), server_default="{}", nullable=False),
        mapped_column(f"{name}_counts", ARRAY(BigInteger), server_default="{}", nullable=False),
    )


class RollupState(Base):
    """The ingestion watermark a rollup has consumed up to (exclusive), as an ``xid8``."""

    __tablename__ = "rollup_state"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    watermark: Mapped[int] = mapped_column(Numeric(20, 0), server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CallRollup(Base):
    """One hour of calls for one (provider, model, feature, customer, environment).

    Dimensions are '' when absent (so they can be part of the key). Histograms are sparse
    DDSketch buckets (see ``services.analytics.sketch``): parallel key and count arrays,
    the zero bucket under ``ZERO_KEY``.
    """

    __tablename__ = "call_rollups"
    __table_args__ = (
        PrimaryKeyConstraint(
            "project_id", "grain", "hour", "provider", "model", "feature", "customer", "environment"
        ),
    )

    project_id: Mapped[int] = mapped_column(Integer)
    grain: Mapped[int] = mapped_column(SmallInteger)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    provider: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    feature: Mapped[str] = mapped_column(Text)
    customer: Mapped[str] = mapped_column(Text)
    environment: Mapped[str] = mapped_column(Text)
    calls: Mapped[int] = mapped_column(BigInteger)
    unpriced_calls: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(24, 10))
    call_cost_keys, call_cost_counts = _hist("call_cost")
    latency_keys, latency_counts = _hist("latency")


class RequestRollup(Base):
    """One hour (of each request's first call) of settled requests for one
    (feature, customer, environment)."""

    __tablename__ = "request_rollups"
    __table_args__ = (
        PrimaryKeyConstraint("project_id", "grain", "hour", "feature", "customer", "environment"),
    )

    project_id: Mapped[int] = mapped_column(Integer)
    grain: Mapped[int] = mapped_column(SmallInteger)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    feature: Mapped[str] = mapped_column(Text)
    customer: Mapped[str] = mapped_column(Text)
    environment: Mapped[str] = mapped_column(Text)
    requests: Mapped[int] = mapped_column(BigInteger)
    calls: Mapped[int] = mapped_column(BigInteger)
    unpriced_calls: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(24, 10))
    request_cost_keys, request_cost_counts = _hist("request_cost")
    request_tokens_keys, request_tokens_counts = _hist("request_tokens")
    calls_per_request_keys, calls_per_request_counts = _hist("calls_per_request")


class LlmRequest(Base):
    """One user-facing request: the running sums of its calls. Unless it is in
    ``request_queue``, exactly what this row says is counted in ``request_rollups``."""

    __tablename__ = "requests"
    __table_args__ = (
        PrimaryKeyConstraint("project_id", "request_id"),
        Index("ix_requests_project_started", "project_id", "first_started_at"),
        Index("ix_requests_project_cost", "project_id", "cost_usd"),
    )

    project_id: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(Text)
    first_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_span_id: Mapped[bytes] = mapped_column(LargeBinary)
    last_ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    calls: Mapped[int] = mapped_column(Integer)
    priced_calls: Mapped[int] = mapped_column(Integer)
    unpriced_calls: Mapped[int] = mapped_column(Integer)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(24, 10))
    feature: Mapped[str] = mapped_column(Text)
    customer: Mapped[str] = mapped_column(Text)
    environment: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    service_name: Mapped[str | None] = mapped_column(Text)
    model_mix: Mapped[dict[str, Any]] = mapped_column(JSONB)
    last_ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RequestQueueEntry(Base):
    """A request changed since it was last rolled up (or never was): it settles once no call
    has come for the settle window. Settling deletes the entry, so the request rows
    themselves are written only when calls arrive."""

    __tablename__ = "request_queue"
    __table_args__ = (
        PrimaryKeyConstraint("project_id", "request_id"),
        Index("ix_request_queue_last_ingested_at", "last_ingested_at"),
    )

    project_id: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(Text)
    last_ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
