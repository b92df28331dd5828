"""Keyword-only factories with defaults, for arranging rows in tests."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from services.models import LlmCall, Project


def make_project(session: Session, *, name: str = "acme", timezone: str = "UTC") -> Project:
    project = Project(name=name, timezone=timezone)
    session.add(project)
    session.flush()
    return project


def make_call(
    session: Session,
    *,
    project: Project,
    started_at: datetime | None = None,
    duration: timedelta = timedelta(milliseconds=800),
    provider: str = "openai",
    model: str = "gpt-4o",
    input_tokens: int = 1000,
    output_tokens: int = 200,
    cost: str | None = "0.0045",
    feature: str | None = "search",
    customer: str | None = "customer-1",
    request_id: str | None = None,
) -> LlmCall:
    started_at = started_at or datetime.now(UTC)
    call = LlmCall(
        project_id=project.id,
        started_at=started_at,
        ended_at=started_at + duration,
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        provider=provider,
        request_model=model,
        response_model=model,
        operation="chat",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=None if cost is None else Decimal(cost),
        cost_source="unpriced" if cost is None else "computed",
        feature=feature,
        customer=customer,
        request_id=request_id,
    )
    session.add(call)
    session.flush()
    return call
