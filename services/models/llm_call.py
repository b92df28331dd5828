from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base, Xid8

COST_SOURCES = ("computed", "client", "unpriced")


class LlmCall(Base):
    """One LLM span (one provider request), priced at ingest.

    Partitioned by day on ``started_at`` (partitions ``llm_calls_pYYYYMMDD`` plus
    ``llm_calls_default``, managed by ``services.partitions``). The primary key carries the
    partition key, which is what makes (project, trace_id, span_id) idempotent: a resent span
    has the same start time.
    """

    __tablename__ = "llm_calls"
    __table_args__ = (
        PrimaryKeyConstraint("project_id", "started_at", "trace_id", "span_id"),
        CheckConstraint("cost_source in ('computed', 'client', 'unpriced')", name="cost_source"),
        Index("ix_llm_calls_ingest_xid", "ingest_xid"),
        Index("ix_llm_calls_project_cost", "project_id", "cost_usd"),
        {"postgresql_partition_by": "RANGE (started_at)"},
    )

    project_id: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trace_id: Mapped[bytes] = mapped_column(LargeBinary)
    span_id: Mapped[bytes] = mapped_column(LargeBinary)
    parent_span_id: Mapped[bytes | None] = mapped_column(LargeBinary)
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str | None] = mapped_column(Text)
    span_name: Mapped[str | None] = mapped_column(Text)
    operation: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(Text)
    request_model: Mapped[str | None] = mapped_column(Text)
    response_model: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    output_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    usage_estimated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(20, 10))
    cost_source: Mapped[str] = mapped_column(Text)
    price_ref: Mapped[str | None] = mapped_column(Text)
    client_cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(20, 10))
    feature: Mapped[str | None] = mapped_column(Text)
    customer: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(Text)
    service_name: Mapped[str | None] = mapped_column(Text)
    environment: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    status_code: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    error_type: Mapped[str | None] = mapped_column(Text)
    finish_reasons: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    ingested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    ingest_xid: Mapped[int] = mapped_column(Xid8, server_default=text("pg_current_xact_id()"))
