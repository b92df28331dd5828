"""Per-request cost percentiles from rollup cells against exact SQL over the raw calls, and
rollup throughput against ingest throughput.

What runs, all on this machine and on loopback only:

* PostgreSQL: ``--database-url`` or ``COSTLINE_DATABASE_URL`` if set (a throwaway database
  is created beside the one it names and dropped at the end), else an embedded pgserver in a
  temporary directory. ``--keep`` keeps either (and says where it is, on stderr).
* Data: ``--calls`` calls (default 5,000,000) in about ``calls / 3.7`` requests over 30 UTC
  days, generated with numpy from ``--seed``: fan-out 1-12 calls a request, ten features
  (plus 2 % of requests with none), 200 customers with Zipf-like shares, two environments,
  eight models of which one self-hosted model is unknown to genai-prices (about 3 % of calls
  unpriced),
  lognormal token counts priced at list-like prices (so per-call cost is heavy-tailed), a
  diurnal and weekly volume pattern, 85 % of requests carrying ``costline.request.id`` and
  the rest identified by their trace. One call in ten after a request's first has another
  feature than the first, so "the request's feature is its first call's" is exercised.
* Ingest: the calls, in start-time order, as OTLP/protobuf export requests of ``--batch``
  spans (the OTel batch exporter's default of 512), each handed to the collector's own
  write path (``TraceIngestor._ingest``: decode, normalize, price with genai-prices, binary
  COPY, commit), in one process. Building the requests is the SDK's work and is not timed.
  The time inside ``write_calls`` (the COPY alone) is timed apart and printed as
  ``copy_calls_per_s``: the rate the database alone would accept, which no collector
  reaches, so rollups are held to the collector's rate, the one they must keep up with.
* Rollups: ``advance_calls`` in its bounded steps (until no committed call is left behind
  the watermark), then
  ``settle_requests`` in ``--settle-batch`` batches, one transaction each, with ``now``
  past the settle window, until nothing is due.
* Query: the real API (``services.api.app.create_app``) served by uvicorn in a thread on a
  free loopback port, asked over HTTP with httpx:
  ``GET /v1/percentiles?metric=request_cost&q=0.5,0.99&group_by=feature&interval=day``
  over the 30 days. Baseline: the exact ``percentile_cont`` over the raw calls (request =
  ``coalesce(request_id, encode(trace_id, 'hex'))``, cost = sum of its priced calls, day and
  feature of its first call (ties: smallest span id), requests without a priced call left
  out). Each is run once to warm up, then ``--repeats`` times; medians are compared.

The API estimates ``percentile_disc`` from a 1 % log-bucket sketch. ``percentile_cont``
interpolates between neighbouring values, which in the tail of a small cell can be more than
1 % away from either, so the error against ``percentile_disc`` is printed too.

``rollup_vs_copy_ratio`` compares rollups with the COPY alone, for reference. The last three
lines are ``max_rel_error=``, ``query_vs_exact_ratio=`` and
``rollup_vs_ingest_ratio=``.

    python bench/percentiles.py [--calls 5000000] [--repeats 5] [--keep] [--explain]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import psycopg
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import services.collector.ingest as collector_ingest  # noqa: E402
from services.api.app import create_app  # noqa: E402
from services.collector.ingest import TraceIngestor  # noqa: E402
from services.collector.metrics import CollectorMetrics  # noqa: E402
from services.core.db import make_engine, make_session_factory, transaction  # noqa: E402
from services.core.embedded import EmbeddedPostgres  # noqa: E402
from services.core.migrations import upgrade_to_head  # noqa: E402
from services.ingest.repository import write_calls  # noqa: E402
from services.keys.service import Principal, create_key  # noqa: E402
from services.partitions.service import maintain_partitions  # noqa: E402
from services.rollups import sql as rollup_sql  # noqa: E402
from services.rollups.service import (  # noqa: E402
    DEFAULT_SETTLE_WINDOW,
    advance_calls,
    calls_watermark,
    settle_requests,
)

DAYS = 30
QS = (0.5, 0.99)
TARGET_REL_ERROR = 0.01
TARGET_QUERY_RATIO = 0.05
TARGET_ROLLUP_RATIO = 2.0

# name, share of requests, median input tokens, median output tokens of one call
FEATURES: tuple[tuple[str, float, int, int], ...] = (
    ("support.answer", 0.24, 2400, 320),
    ("search.rerank", 0.18, 900, 40),
    ("chat.assistant", 0.14, 3200, 450),
    ("docs.summarize", 0.10, 6000, 500),
    ("email.draft", 0.08, 1200, 380),
    ("code.review", 0.07, 8000, 700),
    ("agent.plan", 0.06, 5000, 900),
    ("extract.invoice", 0.05, 1800, 220),
    ("translate.ticket", 0.04, 700, 600),
    ("classify.intent", 0.02, 300, 8),
)
NO_FEATURE_SHARE = 0.02  # traces from apps that do not use the SDK's attribution
SERVICES = (
    "support-api",
    "search-api",
    "chat-api",
    "docs-worker",
    "mail-worker",
    "review-bot",
    "agent-runner",
    "billing-worker",
    "i18n-worker",
    "router-api",
    "batch-worker",
)

# provider (gen_ai.provider.name), model, share of calls, whether output includes reasoning
# tokens. The collector prices them with genai-prices; the self-hosted model has no price.
MODELS: tuple[tuple[str, str, float, bool], ...] = (
    ("openai", "gpt-4o", 0.22, False),
    ("openai", "gpt-4o-mini", 0.25, False),
    ("openai", "o3-mini", 0.06, True),
    ("anthropic", "claude-sonnet-4", 0.18, False),
    ("anthropic", "claude-3-5-haiku", 0.12, False),
    ("gcp.gemini", "gemini-2.0-flash", 0.10, False),
    ("mistral_ai", "mistral-large", 0.04, False),
    ("vllm", "acme-ft-llama-8b", 0.03, False),  # self-hosted: unpriced
)
FAN_OUT_WEIGHTS = (30, 18, 12, 9, 7, 6, 5, 4, 3, 2.5, 2, 1.5)  # P(1..12 calls), mean ~3.7
CUSTOMERS = 200
USERS_PER_CUSTOMER = 50
REQUEST_ID_SHARE = 0.85
OTHER_FEATURE_SHARE = 0.10  # of the calls after a request's first
ERROR_SHARE = 0.015
FINISH_REASONS: tuple[list[str] | None, ...] = (["stop"], ["tool_calls"], ["length"], None)


class BenchTimeout(Exception):
    """The whole run took longer than its budget."""


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- data -----------------------------------------------------------------------------------


@dataclass
class Workload:
    """Every call of the run as columns (numpy), plus the per-request columns they index."""

    first_day: date
    # per request
    request_ids: list[str | None]
    trace_ids: npt.NDArray[Any]  # S16
    root_span_ids: npt.NDArray[Any]  # S8
    customer: npt.NDArray[np.int32]
    user: npt.NDArray[np.int32]
    environment: npt.NDArray[np.int8]
    # per call, in start-time order
    request: npt.NDArray[np.int64]
    span_ids: npt.NDArray[Any]  # S8
    started_us: npt.NDArray[np.int64]
    ended_us: npt.NDArray[np.int64]
    feature: npt.NDArray[np.int8]  # len(FEATURES): none
    model: npt.NDArray[np.int8]
    input_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]
    cache_read_tokens: npt.NDArray[np.int64]
    reasoning_tokens: npt.NDArray[np.int64]
    status_code: npt.NDArray[np.int8]
    finish: npt.NDArray[np.int8]

    @property
    def calls(self) -> int:
        return int(self.request.size)

    @property
    def requests(self) -> int:
        return len(self.request_ids)


def _random_ids(rng: np.random.Generator, count: int, width: int) -> npt.NDArray[Any]:
    raw = rng.integers(0, 256, size=(count, width), dtype=np.uint8)
    raw[:, -1] |= 1  # numpy's S dtype drops trailing NUL bytes; keep every id full width
    return raw.view(f"S{width}").ravel()


def _hour_weights(first_day: date) -> npt.NDArray[np.float64]:
    """Relative volume of each hour of the window: a working-day peak, quieter weekends."""
    hours = np.arange(DAYS * 24)
    hour_of_day = hours % 24
    weekday = np.array([(first_day + timedelta(days=int(d))).weekday() for d in hours // 24])
    diurnal = (
        0.25
        + np.exp(-(((hour_of_day - 14.0) / 4.0) ** 2))
        + 0.35 * np.exp(-(((hour_of_day - 20.0) / 2.5) ** 2))
    )
    weekly = np.where(weekday >= 5, 0.55, 1.0)
    weights = diurnal * weekly
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def generate(calls: int, *, first_day: date, seed: int) -> Workload:
    rng = np.random.default_rng(seed)
    fan_out_p = np.array(FAN_OUT_WEIGHTS) / sum(FAN_OUT_WEIGHTS)
    mean_fan_out = float((np.arange(1, 13) * fan_out_p).sum())
    n_requests = int(calls / mean_fan_out * 1.02) + 16
    fan_out = rng.choice(np.arange(1, 13), size=n_requests, p=fan_out_p)
    ends = np.cumsum(fan_out)
    n_requests = int(np.searchsorted(ends, calls) + 1)  # the last request may be cut short
    fan_out = fan_out[:n_requests]
    fan_out[-1] -= int(ends[n_requests - 1] - calls)
    first_call = np.cumsum(fan_out) - fan_out  # index of each request's first call

    # requests
    window_start_us = (
        int(datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC).timestamp())
        * 10**6
    )
    slot = rng.choice(DAYS * 24, size=n_requests, p=_hour_weights(first_day))
    request_start = (
        window_start_us
        + slot.astype(np.int64) * 3_600_000_000
        + rng.integers(0, 3_600_000_000, size=n_requests)
    )
    feature_p = np.array([f[1] for f in FEATURES] + [NO_FEATURE_SHARE])
    request_feature = rng.choice(len(FEATURES) + 1, size=n_requests, p=feature_p / feature_p.sum())
    customer_p = 1.0 / np.arange(1, CUSTOMERS + 1) ** 1.1
    customer = rng.choice(CUSTOMERS, size=n_requests, p=customer_p / customer_p.sum())
    user = customer * USERS_PER_CUSTOMER + rng.integers(0, USERS_PER_CUSTOMER, size=n_requests)
    environment = (rng.random(n_requests) < 0.08).astype(np.int8)  # 1: staging
    size = rng.lognormal(0.0, 0.5, size=n_requests)  # a request's calls are big or small together
    nonce = uuid.uuid4().hex[:8]
    has_request_id = (rng.random(n_requests) < REQUEST_ID_SHARE).tolist()
    request_ids = [f"req_{nonce}_{i:08d}" if has else None for i, has in enumerate(has_request_id)]

    # calls, grouped by request
    request = np.repeat(np.arange(n_requests, dtype=np.int64), fan_out)
    position = np.arange(calls) - np.repeat(first_call, fan_out)
    feature = request_feature[request].astype(np.int8)
    moved = (position > 0) & (rng.random(calls) < OTHER_FEATURE_SHARE)
    feature[moved] = rng.integers(0, len(FEATURES), size=int(moved.sum()))
    model_p = np.array([m[2] for m in MODELS])
    model = rng.choice(len(MODELS), size=calls, p=model_p / model_p.sum()).astype(np.int8)
    in_median = np.array([f[2] for f in FEATURES] + [1500])[feature]
    out_median = np.array([f[3] for f in FEATURES] + [200])[feature]
    input_tokens = np.maximum(1, in_median * size[request] * rng.lognormal(0, 0.9, calls))
    output_tokens = np.maximum(1, out_median * size[request] * rng.lognormal(0, 0.8, calls))
    input_tokens = np.rint(input_tokens).astype(np.int64)
    output_tokens = np.rint(output_tokens).astype(np.int64)
    cached = rng.random(calls) < 0.35
    cache_read = np.where(cached, np.rint(input_tokens * rng.uniform(0.2, 0.9, calls)), 0)
    cache_read = cache_read.astype(np.int64)
    reasoning_model = np.array([m[3] for m in MODELS])[model]
    reasoning = np.where(reasoning_model, np.rint(output_tokens * rng.uniform(0.3, 0.8, calls)), 0)
    reasoning = reasoning.astype(np.int64)
    status = (rng.random(calls) < ERROR_SHARE).astype(np.int8) * 2  # OTel: 2 = error
    output_tokens[status == 2] = 0
    reasoning[status == 2] = 0

    finish = rng.choice(3, size=calls, p=[0.8, 0.17, 0.03]).astype(np.int8)
    finish[status == 2] = 3

    duration = (250_000 + output_tokens * 12_000 * rng.lognormal(0, 0.3, calls)).astype(np.int64)
    duration = np.minimum(duration, 180_000_000)
    step = duration + rng.integers(5_000, 200_000, size=calls)  # calls one after another
    before = np.cumsum(step) - step
    offset = before - np.repeat(before[first_call], fan_out)
    started = request_start[request] + offset
    order = np.argsort(started, kind="stable")
    return Workload(
        first_day=first_day,
        request_ids=request_ids,
        trace_ids=_random_ids(rng, n_requests, 16),
        root_span_ids=_random_ids(rng, n_requests, 8),
        customer=customer.astype(np.int32),
        user=user.astype(np.int32),
        environment=environment,
        request=request[order],
        span_ids=_random_ids(rng, calls, 8),
        started_us=started[order],
        ended_us=(started + duration)[order],
        feature=feature[order],
        model=model[order],
        input_tokens=input_tokens[order],
        output_tokens=output_tokens[order],
        cache_read_tokens=cache_read[order],
        reasoning_tokens=reasoning[order],
        status_code=status[order],
        finish=finish[order],
    )


def _objects(values: list[Any]) -> npt.NDArray[Any]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _kv(key: str, value: str | int | list[str]) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    strings = [AnyValue(string_value=v) for v in value]
    return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=strings)))


class SpanEncoder:
    """OTLP/protobuf export requests for slices of the workload, as an application using the
    costline SDK (or any GenAI instrumentation plus costline attribution) sends them: CLIENT
    inference spans under each request's root span, GenAI usage attributes, attribution as
    ``costline.*`` attributes, environment and service on the span."""

    def __init__(self, work: Workload) -> None:
        self.work = work
        self.model_attrs = [
            [
                _kv("gen_ai.operation.name", "chat"),
                _kv("gen_ai.provider.name", m[0]),
                _kv("gen_ai.request.model", m[1]),
                _kv("gen_ai.response.model", m[1]),
            ]
            for m in MODELS
        ]
        self.span_names = [f"chat {m[1]}" for m in MODELS]
        self.features = [_kv("costline.feature", f[0]) for f in FEATURES]
        self.services = [_kv("service.name", name) for name in SERVICES]
        self.customers = [_kv("costline.customer", f"cust-{i:03d}") for i in range(CUSTOMERS)]
        plans = ["enterprise", "pro", "free"]
        self.plans = [_kv("costline.tag.plan", plans[min(2, i // 20)]) for i in range(CUSTOMERS)]
        self.environments = [
            _kv("deployment.environment.name", env) for env in ("production", "staging")
        ]
        self.finish = [
            None if f is None else _kv("gen_ai.response.finish_reasons", f) for f in FINISH_REASONS
        ]

    def export_request(self, start: int, stop: int) -> bytes:
        w = self.work
        spans = []
        for i, (r, m, f, started, ended, inp, out, cached, reasoning, status, finish) in enumerate(
            zip(
                w.request[start:stop].tolist(),
                w.model[start:stop].tolist(),
                w.feature[start:stop].tolist(),
                w.started_us[start:stop].tolist(),
                w.ended_us[start:stop].tolist(),
                w.input_tokens[start:stop].tolist(),
                w.output_tokens[start:stop].tolist(),
                w.cache_read_tokens[start:stop].tolist(),
                w.reasoning_tokens[start:stop].tolist(),
                w.status_code[start:stop].tolist(),
                w.finish[start:stop].tolist(),
                strict=True,
            ),
            start=start,
        ):
            customer = int(w.customer[r])
            attrs = [
                *self.model_attrs[m],
                _kv("gen_ai.usage.input_tokens", inp),
                _kv("gen_ai.usage.output_tokens", out),
                self.customers[customer],
                self.plans[customer],
                _kv("costline.user", f"user-{int(w.user[r]):05d}"),
                self.environments[int(w.environment[r])],
                self.services[f if f < len(FEATURES) else len(SERVICES) - 1],
            ]
            if cached:
                attrs.append(_kv("gen_ai.usage.cache_read.input_tokens", cached))
            if reasoning:
                attrs.append(_kv("gen_ai.usage.reasoning.output_tokens", reasoning))
            if f < len(FEATURES):
                attrs.append(self.features[f])
            request_id = w.request_ids[r]
            if request_id is not None:
                attrs.append(_kv("costline.request.id", request_id))
            finish_attr = self.finish[finish]
            if finish_attr is not None:
                attrs.append(finish_attr)
            if status == 2:
                attrs.append(_kv("error.type", "RateLimitError"))
            spans.append(
                Span(
                    trace_id=bytes(w.trace_ids[r]),
                    span_id=bytes(w.span_ids[i]),
                    parent_span_id=bytes(w.root_span_ids[r]),
                    name=self.span_names[m],
                    kind=Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=started * 1000,
                    end_time_unix_nano=ended * 1000,
                    attributes=attrs,
                    status=Status(code=status),
                )
            )
        export = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=Resource(attributes=[_kv("telemetry.sdk.language", "python")]),
                    scope_spans=[
                        ScopeSpans(scope=InstrumentationScope(name="costline"), spans=spans)
                    ],
                )
            ]
        )
        return bytes(export.SerializeToString())


# --- servers and database -------------------------------------------------------------------


def libpq_dsn(sqlalchemy_url: str) -> str:
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database(given: str | None, *, keep: bool) -> Iterator[str]:
    """A fresh, migrated database; dropped (or its embedded server stopped and removed) after."""
    cleanups: list[Callable[[], None]] = []
    workdir = Path(tempfile.mkdtemp(prefix="costline-bench-"))
    try:
        if given:
            from services.core.urls import normalize_database_url

            server_url = normalize_database_url(given)
            name = f"costline_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(libpq_dsn(server_url), autocommit=True) as conn:
                conn.execute(f'create database "{name}"')
            url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
            if keep:
                progress(f"--keep: database {name} is kept on the given server")
            else:

                def drop() -> None:
                    with psycopg.connect(libpq_dsn(server_url), autocommit=True) as conn:
                        conn.execute(f'drop database if exists "{name}" with (force)')

                cleanups.append(drop)
        else:
            postgres = EmbeddedPostgres(workdir / "data")
            cleanups.append(postgres.stop)
            url = postgres.start()
            if keep:
                progress(f"--keep: embedded PostgreSQL data kept in {postgres.pgdata}")
        upgrade_to_head(url)
        yield url
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class StatementTimer:
    """Wall time of each statement an engine runs while enabled (to split a run by statement)."""

    engine: Engine
    records: list[tuple[str, dict[str, Any] | None, float]] = field(default_factory=list)
    enabled: bool = False
    _started: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)

    def _before(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        self._started[id(cursor)] = time.perf_counter()

    def _after(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        started = self._started.pop(id(cursor), None)
        if self.enabled and started is not None:
            self.records.append((statement, parameters, time.perf_counter() - started))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[tuple[str, dict[str, Any] | None, float]]]:
        self.records = []
        self.enabled = True
        try:
            yield self.records
        finally:
            self.enabled = False


def seconds_by_statement(
    records: list[tuple[str, Any, float]], labels: dict[str, str]
) -> dict[str, float]:
    out: dict[str, float] = {}
    for statement, _, seconds in records:
        label = next((name for needle, name in labels.items() if needle in statement), "other")
        out[label] = out.get(label, 0.0) + seconds
    return out


ROLLUP_LABELS = {
    "rollup_state": "watermark",
    "pg_current_snapshot": "watermark",
    "insert into call_rollups": "advance: call cells",
    "insert into requests": "advance: requests",
    "with due as": "settle: request cells",
    "delete from request_rollups": "advance: drop empty request cells",
    "offset :n limit 1": "advance: step boundary",
}


# --- phases ---------------------------------------------------------------------------------


@dataclass
class IngestTimes:
    collector_s: float  # TraceIngestor._ingest: decode, normalize, price, COPY, commit
    copy_s: float  # the part of it inside write_calls
    encode_s: float  # building the export requests (the SDK's side): not counted


def ingest(
    engine: Engine,
    factory: sessionmaker[Session],
    encoder: SpanEncoder,
    *,
    project_id: int,
    batch: int,
) -> IngestTimes:
    """Send every call through the collector's write path, one export request at a time."""
    ingestor = TraceIngestor(engine=engine, session_factory=factory, metrics=CollectorMetrics())
    principal = Principal(project_id=project_id, key_id=0, scope="ingest")
    copy_s = 0.0

    def timed_write_calls(connection: Any, rows: Any) -> int:
        nonlocal copy_s
        t0 = time.perf_counter()
        try:
            return write_calls(connection, rows)
        finally:
            copy_s += time.perf_counter() - t0

    calls = encoder.work.calls
    collector_s = encode_s = 0.0
    next_report = time.monotonic() + 15
    # Time the COPY inside the collector's path: wrap the function its module calls.
    setattr(collector_ingest, "write_calls", timed_write_calls)  # noqa: B010
    try:
        for start in range(0, calls, batch):
            stop = min(calls, start + batch)
            t0 = time.perf_counter()
            body = encoder.export_request(start, stop)
            t1 = time.perf_counter()
            status, _, _ = ingestor._ingest(principal, body, None, "protobuf")
            t2 = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"the collector answered {status}")
            encode_s += t1 - t0
            collector_s += t2 - t1
            if time.monotonic() >= next_report or stop == calls:
                next_report = time.monotonic() + 15
                progress(
                    f"ingest: {stop:,}/{calls:,} calls, {stop / collector_s:,.0f} calls/s "
                    f"through the collector ({stop / copy_s:,.0f} calls/s in its COPY; "
                    f"+{encode_s:.0f}s encoding requests)"
                )
    finally:
        setattr(collector_ingest, "write_calls", write_calls)  # noqa: B010
    return IngestTimes(collector_s=collector_s, copy_s=copy_s, encode_s=encode_s)


def vacuum(engine: Engine, tables: str) -> float:
    """What autovacuum would have done by the time anyone queries; seconds taken."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        t0 = time.perf_counter()
        conn.execute(text(f"vacuum (analyze) {tables}"))
        return time.perf_counter() - t0


@dataclass
class RollupFigures:
    advance_s: float
    settle_s: float
    advance_runs: int
    settle_batches: int
    by_statement: dict[str, float]


def run_rollups(
    factory: sessionmaker[Session], timer: StatementTimer, *, settle_batch: int
) -> RollupFigures:
    now = datetime.now(UTC) + DEFAULT_SETTLE_WINDOW + timedelta(minutes=1)
    with timer.recording() as records:
        advance_s = 0.0
        runs = 0
        while True:
            runs += 1
            t0 = time.perf_counter()
            with transaction(factory) as session:
                report = advance_calls(session)
            advance_s += time.perf_counter() - t0
            if not report.caught_up:
                continue  # a bounded step; the next one goes on at once
            timer.enabled = False  # the check below is the bench's, not the rollups'
            with factory() as session:
                behind = session.execute(
                    text(
                        "select count(*) from llm_calls where ingest_xid >= "
                        "cast(cast(:w as text) as xid8)"
                    ),
                    {"w": calls_watermark(session)},
                ).scalar_one()
            timer.enabled = True
            progress(
                f"rollups: advance_calls run {runs} done after "
                f"{advance_s:.1f}s; {behind} calls behind the watermark"
            )
            if not behind:
                break
            if runs >= 200:
                raise RuntimeError(
                    "advance_calls keeps leaving calls behind (a long transaction "
                    "on the server holds the snapshot xmin back?)"
                )
            time.sleep(1)
        t1 = time.perf_counter()
        batches = 0
        while True:
            with transaction(factory) as session:
                cells = settle_requests(session, now=now, batch=settle_batch)
            if not cells:
                break
            batches += 1
            progress(
                f"rollups: settle batch {batches} changed {cells} cells "
                f"({time.perf_counter() - t1:.1f}s)"
            )
        t2 = time.perf_counter()
    return RollupFigures(
        advance_s=advance_s,
        settle_s=t2 - t1,
        advance_runs=runs,
        settle_batches=batches,
        by_statement=seconds_by_statement(records, ROLLUP_LABELS),
    )


# percentile_cont / percentile_disc of per-request cost per UTC day and first-call feature,
# straight from the raw calls; the same semantics as the rollups (services/rollups/sql.py).
EXACT_SQL = """
with per_request as (
    select min(started_at) as first_started_at,
           (array_agg(coalesce(feature, '') order by started_at, span_id))[1] as feature,
           sum(cost_usd) as cost_usd, count(cost_usd) as priced_calls
    from llm_calls
    where project_id = :p
    group by coalesce(request_id, encode(trace_id, 'hex'))
)
select date_trunc('day', first_started_at, 'UTC') as day, feature, count(*) as requests,
       {function}(cast(:qs as float8[])) within group (order by cost_usd) as quantiles
from per_request
where priced_calls > 0 and first_started_at >= :start and first_started_at < :end
group by 1, 2
order by 1, 2
"""

Cells = dict[tuple[date, str], tuple[int, list[float]]]


def exact_percentiles(
    factory: sessionmaker[Session],
    *,
    function: str,
    project_id: int,
    start: datetime,
    end: datetime,
) -> tuple[Cells, float]:
    statement = text(EXACT_SQL.format(function=function))
    params = {"p": project_id, "qs": list(QS), "start": start, "end": end}
    with factory() as session:
        t0 = time.perf_counter()
        rows = session.execute(statement, params).all()
        elapsed = time.perf_counter() - t0
    cells = {
        (row.day.astimezone(UTC).date(), row.feature): (
            int(row.requests),
            [float(v) for v in row.quantiles],
        )
        for row in rows
    }
    return cells, elapsed


@contextlib.contextmanager
def api_server(database_url: str) -> Iterator[tuple[str, StatementTimer]]:
    app = create_app(database_url=database_url, broker_url=None)
    timer = StatementTimer(app.state.engine)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", timer
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        app.state.engine.dispose()


def api_percentiles(
    client: httpx.Client, *, key: str, start: datetime, end: datetime
) -> tuple[Cells, float]:
    params = {
        "metric": "request_cost",
        "q": ",".join(f"{q:g}" for q in QS),
        "group_by": "feature",
        "interval": "day",
        "from": start.isoformat(),
        "to": end.isoformat(),
    }
    t0 = time.perf_counter()
    response = client.get(
        "/v1/percentiles", params=params, headers={"Authorization": f"Bearer {key}"}
    )
    elapsed = time.perf_counter() - t0
    response.raise_for_status()
    cells: Cells = {}
    for row in response.json()["rows"]:
        day = datetime.fromisoformat(row["bucket"]).astimezone(UTC).date()
        feature = row["group"].get("feature") or ""
        cells[(day, feature)] = (int(row["count"]), [float(row["values"][f"{q:g}"]) for q in QS])
    return cells, elapsed


@dataclass
class Comparison:
    max_rel_error: float
    worst: list[tuple[float, date, str, float, int, float, float]]
    over_target: int
    compared: int
    missing: list[tuple[date, str]]
    count_mismatches: int
    by_q: dict[float, float]


def compare(api: Cells, exact: Cells) -> Comparison:
    errors: list[tuple[float, date, str, float, int, float, float]] = []
    by_q = dict.fromkeys(QS, 0.0)
    mismatched_counts = 0
    for cell, (count, values) in exact.items():
        if cell not in api:
            continue
        api_count, estimates = api[cell]
        mismatched_counts += api_count != count
        for q, truth, estimate in zip(QS, values, estimates, strict=True):
            error = abs(estimate - truth) / truth if truth else abs(estimate)
            by_q[q] = max(by_q[q], error)
            errors.append((error, cell[0], cell[1], q, count, estimate, truth))
    missing = sorted(set(exact) ^ set(api))
    errors.sort(reverse=True)
    worst = max((e[0] for e in errors), default=math.inf)
    return Comparison(
        max_rel_error=math.inf if missing else worst,
        worst=errors[:5],
        over_target=sum(e[0] > TARGET_REL_ERROR for e in errors),
        compared=len(errors),
        missing=missing,
        count_mismatches=mismatched_counts,
        by_q=by_q,
    )


def explain(session: Session, statement: str, params: Any) -> str:
    plan = (
        session.connection()
        .exec_driver_sql("explain (analyze, buffers, timing off) " + statement, params)
        .scalars()
        .all()
    )
    return "\n".join(plan)


def explain_everything(
    factory: sessionmaker[Session],
    api_statement: tuple[str, Any] | None,
    *,
    project_id: int,
    start: datetime,
    end: datetime,
    settle_batch: int,
) -> None:
    """EXPLAIN ANALYZE the API's statement, the exact one, and the rollup statements as their
    first run saw them (rollup tables emptied in a transaction that is rolled back)."""
    if api_statement is not None:
        with factory() as session:
            print(
                f"--- EXPLAIN API statement\n{explain(session, *api_statement)}",
                file=sys.stderr,
                flush=True,
            )
    with factory() as session:
        plan = session.execute(
            text(
                "explain (analyze, buffers, timing off) "
                + EXACT_SQL.format(function="percentile_cont")
            ),
            {"p": project_id, "qs": list(QS), "start": start, "end": end},
        )
        print(
            "--- EXPLAIN exact percentile_cont\n" + "\n".join(plan.scalars()),
            file=sys.stderr,
            flush=True,
        )
    with factory() as session:
        session.execute(text("truncate call_rollups, request_rollups, requests, request_queue"))
        session.execute(text("update rollup_state set watermark = 0"))
        upper = session.execute(text("select pg_snapshot_xmin(pg_current_snapshot())::text"))
        bounds = {"from_xid": "0", "to_xid": upper.scalar_one()}
        for name, statement, params in (
            ("advance: call cells", rollup_sql.ADVANCE_CALL_CELLS, bounds),
            ("advance: requests", rollup_sql.ADVANCE_REQUESTS, bounds),
            (
                "settle: one batch",
                rollup_sql.SETTLE_REQUESTS,
                {
                    "cutoff": datetime.now(UTC) + timedelta(minutes=1),
                    "batch": settle_batch,
                },
            ),
        ):
            t0 = time.perf_counter()
            plan = session.execute(
                text("explain (analyze, buffers, timing off) " + statement), params
            )
            print(
                f"--- EXPLAIN {name} ({time.perf_counter() - t0:.1f}s)\n"
                + "\n".join(plan.scalars()),
                file=sys.stderr,
                flush=True,
            )
        session.rollback()


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=512, help="spans per export request")
    parser.add_argument("--settle-batch", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed warm runs of each query")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("COSTLINE_DATABASE_URL"),
        help="a PostgreSQL server to create a throwaway database on "
        "(default: COSTLINE_DATABASE_URL, else embedded)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also print EXPLAIN ANALYZE of the API, exact and rollup statements to stderr "
        "(slow: repeats the rollups in a transaction that is rolled back)",
    )
    parser.add_argument("--budget-s", type=int, default=3 * 3600)
    args = parser.parse_args()

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise BenchTimeout(f"the benchmark exceeded its {args.budget_s} s budget")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(args.budget_s)
    run_started = time.perf_counter()
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=DAYS + 1)  # ends the day before yesterday: all in the past
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    end = start + timedelta(days=DAYS)
    try:
        print(
            f"cpus={os.cpu_count()} load_average_at_start="
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} calls={args.calls} "
            f"days={DAYS} batch={args.batch} settle_batch={args.settle_batch} "
            f"repeats={args.repeats}",
            flush=True,
        )
        t0 = time.perf_counter()
        work = generate(args.calls, first_day=first_day, seed=args.seed)
        print(
            f"generated {work.calls:,} calls in {work.requests:,} requests "
            f"({work.calls / work.requests:.2f} calls/request) in "
            f"{time.perf_counter() - t0:.1f}s",
            flush=True,
        )

        with database(args.database_url, keep=args.keep) as url:
            engine = make_engine(url, pool_size=2, application_name="costline-bench")
            factory = make_session_factory(engine)
            timer = StatementTimer(engine)
            with transaction(factory) as session:
                read_key = create_key(session, project_name="bench", scope="read")
                days = {first_day + timedelta(days=n) for n in range(DAYS + 2)}
                maintain_partitions(session, today=today, ahead_days=1, extra_days=days)

                settings = session.execute(
                    text(
                        "select current_setting('server_version'), current_setting('work_mem'), "
                        "current_setting('shared_buffers'), "
                        "current_setting('max_parallel_workers_per_gather')"
                    )
                ).one()
            print(
                f"postgres {settings[0]}: work_mem={settings[1]} shared_buffers={settings[2]} "
                f"max_parallel_workers_per_gather={settings[3]} (server defaults, untuned)",
                flush=True,
            )

            times = ingest(
                engine,
                factory,
                SpanEncoder(work),
                project_id=read_key.project_id,
                batch=args.batch,
            )
            ingest_rate = work.calls / times.collector_s
            copy_rate = work.calls / times.copy_s
            with engine.connect() as conn:
                stored, unpriced = conn.execute(
                    text("select count(*), count(*) - count(cost_usd) from llm_calls")
                ).one()
                strays = conn.execute(text("select count(*) from llm_calls_default")).scalar()
            print(
                f"ingest: {work.calls:,} calls through the collector's write path in "
                f"{times.collector_s:.1f}s = {ingest_rate:,.0f} calls/s, of which COPY "
                f"{times.copy_s:.1f}s = {copy_rate:,.0f} calls/s ({args.batch} spans a request; "
                f"encoding the requests took another {times.encode_s:.1f}s, not counted); "
                f"stored {stored:,}, unpriced {unpriced / max(stored, 1):.1%}",
                flush=True,
            )
            if stored != work.calls:
                raise RuntimeError(f"the collector stored {stored:,} of {work.calls:,} calls")
            vacuum_s = vacuum(engine, "llm_calls")
            print(
                f"vacuum analyze llm_calls (not timed in either figure): {vacuum_s:.1f}s; "
                f"rows in the default partition: {strays}",
                flush=True,
            )

            rollup = run_rollups(factory, timer, settle_batch=args.settle_batch)
            rollup_s = rollup.advance_s + rollup.settle_s
            rollup_rate = work.calls / rollup_s
            print(
                f"rollups: {work.calls:,} calls rolled up in {rollup_s:.1f}s = "
                f"{rollup_rate:,.0f} calls/s (advance_calls {rollup.advance_s:.1f}s in "
                f"{rollup.advance_runs} run(s), settle_requests {rollup.settle_s:.1f}s in "
                f"{rollup.settle_batches} batches of up to {args.settle_batch:,})",
                flush=True,
            )
            for label, seconds in rollup.by_statement.items():
                print(f"  {label}: {seconds:.1f}s", flush=True)

            with engine.connect() as conn:
                totals = conn.execute(
                    text(
                        "select (select coalesce(sum(calls), 0) from call_rollups where grain = 1),"
                        " (select coalesce(sum(requests), 0) from request_rollups where grain = 1),"
                        " (select count(*) from request_queue)"
                    )
                ).one()
            vacuum_s = vacuum(engine, "call_rollups, request_rollups, requests")
            print(
                f"rolled up: {totals[0]:,} calls in call cells, {totals[1]:,} requests in "
                f"request cells, {totals[2]} unsettled; vacuum analyze of the rollup tables "
                f"{vacuum_s:.1f}s",
                flush=True,
            )
            if totals[0] != work.calls or totals[1] != work.requests:
                print("warning: rollup totals differ from what was generated", flush=True)

            api_times: list[float] = []
            api_sql_times: list[float] = []
            with (
                api_server(url) as (base_url, api_timer),
                httpx.Client(base_url=base_url, timeout=600) as client,
            ):
                progress("query: API warm-up")
                api, _ = api_percentiles(client, key=read_key.key, start=start, end=end)
                for n in range(args.repeats):
                    with api_timer.recording() as records:
                        _, elapsed = api_percentiles(client, key=read_key.key, start=start, end=end)
                    api_times.append(elapsed)
                    api_sql_times.append(sum(r[2] for r in records))
                    progress(f"query: API run {n + 1}: {elapsed * 1000:.0f} ms")
                slowest = max(records, key=lambda r: r[2]) if records else None
            api_statement = None if slowest is None else (slowest[0], slowest[1])

            progress("query: exact percentile_cont warm-up")
            exact_cont, _ = exact_percentiles(
                factory,
                function="percentile_cont",
                project_id=read_key.project_id,
                start=start,
                end=end,
            )
            exact_times: list[float] = []
            for n in range(args.repeats):
                _, elapsed = exact_percentiles(
                    factory,
                    function="percentile_cont",
                    project_id=read_key.project_id,
                    start=start,
                    end=end,
                )
                exact_times.append(elapsed)
                progress(f"query: exact run {n + 1}: {elapsed:.2f} s")
            exact_disc, disc_s = exact_percentiles(
                factory,
                function="percentile_disc",
                project_id=read_key.project_id,
                start=start,
                end=end,
            )
            if args.explain:
                explain_everything(
                    factory,
                    api_statement,
                    project_id=read_key.project_id,
                    start=start,
                    end=end,
                    settle_batch=args.settle_batch,
                )
            engine.dispose()

        api_median = statistics.median(api_times)
        exact_median = statistics.median(exact_times)
        vs_cont = compare(api, exact_cont)
        vs_disc = compare(api, exact_disc)
        requests_per_cell = sorted(count for count, _ in exact_cont.values())
        print(
            f"cells: {len(exact_cont)} day x feature cells (exact), {len(api)} (API); "
            f"requests per cell min {requests_per_cell[0]:,} median "
            f"{statistics.median(requests_per_cell):,.0f} max {requests_per_cell[-1]:,}; "
            f"cells whose request count differs: {vs_cont.count_mismatches}",
            flush=True,
        )
        if vs_cont.missing:
            print(f"cells in only one answer: {vs_cont.missing[:10]}", flush=True)
        for name, result in (("percentile_cont", vs_cont), ("percentile_disc", vs_disc)):
            per_q = ", ".join(f"q={q:g}: {e:.4%}" for q, e in result.by_q.items())
            print(
                f"vs {name}: max relative error {result.max_rel_error:.4%} ({per_q}); "
                f"{result.over_target} of {result.compared} values over "
                f"{TARGET_REL_ERROR:.0%}",
                flush=True,
            )
            for error, day, feature, q, count, estimate, truth in result.worst[:3]:
                print(
                    f"  {error:.4%} on {day} {feature or '(none)'} q={q:g} "
                    f"({count} requests): API {estimate:.8g}, exact {truth:.8g}",
                    flush=True,
                )
        gap = max(
            (abs(c - d) / d if d else abs(c), cell, q)
            for cell, (_, cont_values) in exact_cont.items()
            for q, c, d in zip(QS, cont_values, exact_disc[cell][1], strict=True)
        )
        print(
            f"percentile_cont vs percentile_disc themselves (no sketch involved): up to "
            f"{gap[0]:.4%} apart ({gap[1][0]} {gap[1][1] or '(none)'} q={gap[2]:g}, "
            f"{exact_cont[gap[1]][0]} requests)",
            flush=True,
        )
        for floor in (1_000, 5_000):
            big = {cell: value for cell, value in exact_cont.items() if value[0] >= floor}
            if big:
                print(
                    f"vs percentile_cont in the {len(big)} cells with >= {floor:,} requests: "
                    f"max relative error "
                    f"{compare({c: api[c] for c in big if c in api}, big).max_rel_error:.4%}",
                    flush=True,
                )
        print(
            f"query: API median {api_median * 1000:.1f} ms over {len(api_times)} warm runs "
            f"(its SQL {statistics.median(api_sql_times) * 1000:.1f} ms; runs "
            f"{', '.join(f'{t * 1000:.0f}' for t in api_times)} ms)",
            flush=True,
        )
        print(
            f"query: exact percentile_cont median {exact_median:.2f} s over "
            f"{len(exact_times)} warm runs (runs {', '.join(f'{t:.2f}' for t in exact_times)} "
            f"s); percentile_disc once: {disc_s:.2f} s",
            flush=True,
        )
        print(f"ingest_calls_per_s={ingest_rate:.0f}", flush=True)
        print(f"copy_calls_per_s={copy_rate:.0f}", flush=True)
        print(f"rollup_calls_per_s={rollup_rate:.0f}", flush=True)
        print(f"max_rel_error_vs_percentile_disc={vs_disc.max_rel_error:.6f}", flush=True)
        print(f"rollup_vs_copy_ratio={rollup_rate / copy_rate:.4f}", flush=True)
        print(
            f"load_average_at_end={' '.join(f'{x:.2f}' for x in os.getloadavg())} "
            f"runtime_s={time.perf_counter() - run_started:.0f}",
            flush=True,
        )
        print(f"max_rel_error={vs_cont.max_rel_error:.6f}", flush=True)
        print(f"query_vs_exact_ratio={api_median / exact_median:.6f}", flush=True)
        print(f"rollup_vs_ingest_ratio={rollup_rate / ingest_rate:.4f}", flush=True)
    finally:
        signal.alarm(0)


if __name__ == "__main__":
    main()
