"""Turn received spans into priced ``llm_calls`` rows. Pure: no I/O, no clock of its own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.collector.otlp import RawSpan
from services.ingest.normalize import InvalidSpan, normalize_span
from services.pricing.prices import PriceOverride, choose_model, price_call

# Column order of every row produced here; the repository COPYs in exactly this order.
CALL_COLUMNS: tuple[str, ...] = (
    "project_id",
    "started_at",
    "trace_id",
    "span_id",
    "parent_span_id",
    "ended_at",
    "request_id",
    "span_name",
    "operation",
    "provider",
    "request_model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "cost_usd",
    "cost_source",
    "price_ref",
    "client_cost_usd",
    "feature",
    "customer",
    "user_id",
    "session_id",
    "service_name",
    "environment",
    "tags",
    "status_code",
    "error_type",
    "finish_reasons",
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)
# No LLM API existed before this; an earlier start time is a broken clock, not a backfill.
EARLIEST_START = datetime(2015, 1, 1, tzinfo=UTC)
MAX_SPAN_NAME = 256


def from_unix_nano(ns: int) -> datetime:
    """Exact to the microsecond and deterministic, so a resent span maps to the same key."""
    return EPOCH + timedelta(microseconds=ns // 1000)


@dataclass
class IngestBatch:
    """What one export request turned into."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    non_llm: int = 0
    unpriced_models: Counter[str] = field(default_factory=Counter)

    @property
    def days(self) -> set[Any]:
        return {row[1].date() for row in self.rows}


def build_rows(
    *,
    project_id: int,
    spans: Iterable[RawSpan],
    overrides: Sequence[PriceOverride],
    now: datetime,
    rejected: list[tuple[str, str]] | None = None,
) -> IngestBatch:
    """Normalize, validate and price each span. Invalid spans are rejected one by one."""
    batch = IngestBatch(rejected=rejected if rejected is not None else [])
    latest_start = now + MAX_FUTURE
    for span in spans:
        try:
            call = normalize_span(span.attributes, span.resource)
        except InvalidSpan as exc:
            batch.rejected.append((exc.reason, f"span {span.span_id.hex()}: {exc}"))
            continue
        if call is None:
            batch.non_llm += 1
            continue
        started_at = from_unix_nano(span.start_unix_nano)
        ended_at = from_unix_nano(span.end_unix_nano) if span.end_unix_nano else started_at
        problem = _time_problem(started_at, ended_at, latest_start)
        if problem is not None:
            batch.rejected.append(
                (problem, f"span {span.span_id.hex()}: {problem.replace('_', ' ')}")
            )
            continue
        model = choose_model(call.request_model, call.response_model)
        priced = price_call(
            provider=call.provider,
            model=model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cache_read_tokens=call.cache_read_tokens,
            cache_write_tokens=call.cache_write_tokens,
            reasoning_tokens=call.reasoning_tokens,
            client_cost_usd=call.client_cost_usd,
            at=started_at,
            overrides=overrides,
        )
        if priced.cost_source == "unpriced":
            batch.unpriced_models[model or "unknown"] += 1
        batch.rows.append(
            (
                project_id,
                started_at,
                span.trace_id,
                span.span_id,
                span.parent_span_id,
                ended_at,
                call.request_id,
                span.name[:MAX_SPAN_NAME] or None,
                call.operation,
                call.provider,
                call.request_model,
                call.response_model,
                call.input_tokens,
                call.output_tokens,
                call.cache_read_tokens,
                call.cache_write_tokens,
                call.reasoning_tokens,
                call.usage_estimated,
                priced.cost_usd,
                priced.cost_source,
                priced.price_ref,
                call.client_cost_usd,
                call.feature,
                call.customer,
                call.user_id,
                call.session_id,
                call.service_name,
                call.environment,
                call.tags,
                span.status_code,
                call.error_type,
                call.finish_reasons or None,
            )
        )
    return batch


def _time_problem(started_at: datetime, ended_at: datetime, latest_start: datetime) -> str | None:
    if started_at > latest_start:
        return "start_time_in_future"
    if started_at < EARLIEST_START:
        return "start_time_implausible"
    if ended_at < started_at:
        return "end_before_start"
    return None


def summarize_rejections(rejected: Sequence[tuple[str, str]], *, limit: int = 5) -> str:
    """One message naming the reasons, e.g. ``2 spans rejected: negative_tokens x2 (span …)``."""
    if not rejected:
        return ""
    counts = Counter(reason for reason, _ in rejected)
    reasons = ", ".join(f"{reason} x{n}" for reason, n in counts.most_common())
    examples = "; ".join(message for _, message in rejected[:limit])
    return f"{len(rejected)} spans rejected: {reasons}. e.g. {examples}"
