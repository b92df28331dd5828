"""``POST /v1/traces``: authenticate, decode, normalize, price, write once, then acknowledge."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from threading import Lock
from typing import TypeVar

from anyio import to_thread
from fastapi import FastAPI, Request, Response
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from services.collector import otlp
from services.collector.metrics import CollectorMetrics
from services.core.db import transaction
from services.core.errors import CostlineError
from services.ingest.repository import load_overrides, missing_partition_days, write_calls
from services.ingest.service import build_rows, summarize_rejections
from services.keys.service import Principal, authenticate, require_scope
from services.partitions.service import create_partition
from services.pricing.prices import PriceOverride

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_AFTER_S = "2"
KEY_CACHE_TTL_S = 30.0
OVERRIDES_CACHE_TTL_S = 30.0


class Unavailable(Exception):
    """The database is unreachable or the collector is saturated: retryable."""


@dataclass
class _Expiring:
    value: object
    expires: float


@dataclass
class TraceIngestor:
    """Per-process ingest state: bounded concurrency, small caches, metrics."""

    engine: Engine
    session_factory: sessionmaker[Session]
    metrics: CollectorMetrics
    max_inflight: int = 4
    slot_wait_s: float = 0.05
    max_body_bytes: int = otlp.MAX_BODY_BYTES
    _slots: asyncio.Semaphore = field(init=False)
    _keys: dict[str, _Expiring] = field(default_factory=dict)
    _overrides: dict[int, _Expiring] = field(default_factory=dict)
    _known_days: set[date] = field(default_factory=set)
    _db_down_until: float = 0.0
    _lock: Lock = field(default_factory=Lock)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.max_inflight)

    # --- request path ------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        encoding: otlp.Encoding = "protobuf"
        try:
            encoding = otlp.parse_content_type(request.headers.get("content-type"))
            if time.monotonic() < self._db_down_until:
                raise Unavailable("database unreachable")
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout=self.slot_wait_s)
            except TimeoutError:
                raise Unavailable("collector saturated") from None
            try:
                authorization = request.headers.get("authorization")
                principal = self._cached_principal(authorization)
                if principal is None:
                    principal = await to_thread.run_sync(self._principal, authorization)
                body = await self._read_body(request)
                status, payload, content_type = await to_thread.run_sync(
                    self._ingest, principal, body, request.headers.get("content-encoding"), encoding
                )
            finally:
                self._slots.release()
        except otlp.OtlpDecodeError as exc:
            status = exc.status
            payload, content_type = otlp.encode_status(
                encoding=encoding, code=otlp.grpc_code_for_http_status(status), message=exc.message
            )
        except CostlineError as exc:
            status = exc.status
            payload, content_type = otlp.encode_status(
                encoding=encoding, code=otlp.grpc_code_for_http_status(status), message=exc.message
            )
        except Unavailable as exc:
            status = 503
            payload, content_type = otlp.encode_status(
                encoding=encoding,
                code=otlp.grpc_code_for_http_status(503),
                message=f"{exc}; retry later",
            )
        self.metrics.requests.labels(status=str(status)).inc()
        self.metrics.request_seconds.observe(time.perf_counter() - started)
        headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
        return Response(payload, status_code=status, media_type=content_type, headers=headers)

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise otlp.OtlpDecodeError(
                status=413,
                reason="body_too_large",
                message=f"request body exceeds {self.max_body_bytes} bytes; send smaller batches",
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise otlp.OtlpDecodeError(
                    status=413,
                    reason="body_too_large",
                    message=f"request body exceeds {self.max_body_bytes} bytes; "
                    "send smaller batches",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _cached_principal(self, authorization: str | None) -> Principal | None:
        # A known key is checked on the event loop: no thread hop, no database.
        cached = self._keys.get(authorization or "")
        if cached is None or cached.expires <= time.monotonic():
            return None
        assert isinstance(cached.value, Principal)
        return require_scope(cached.value, "ingest")

    def _principal(self, authorization: str | None) -> Principal:
        principal = self._with_database(
            lambda session: authenticate(session, authorization=authorization)
        )
        self._keys[authorization or ""] = _Expiring(principal, time.monotonic() + KEY_CACHE_TTL_S)
        return require_scope(principal, "ingest")

    def _ingest(
        self,
        principal: Principal,
        body: bytes,
        content_encoding: str | None,
        encoding: otlp.Encoding,
    ) -> tuple[int, bytes, str]:
        payload = otlp.decode_body(
            body, content_encoding=content_encoding, max_bytes=self.max_body_bytes
        )
        export = otlp.parse_export_request(payload, encoding=encoding)
        rejected: list[tuple[str, str]] = []
        spans = list(otlp.iter_spans(export, rejected=rejected))
        received = len(spans) + len(rejected)
        self.metrics.spans_received.inc(received)
        batch = build_rows(
            project_id=principal.project_id,
            spans=spans,
            overrides=self._project_overrides(principal.project_id),
            now=datetime.now(UTC),
            rejected=rejected,
        )
        self._ensure_partitions(batch.days)
        stored = self._with_database(lambda session: write_calls(session.connection(), batch.rows))
        self.metrics.spans_stored.inc(stored)
        self.metrics.spans_duplicate.inc(len(batch.rows) - stored)
        self.metrics.spans_non_llm.inc(batch.non_llm)
        self.metrics.batch_spans.observe(len(batch.rows))
        self.metrics.unpriced(batch.unpriced_models)
        self.metrics.rejected(batch.rejected)
        message = summarize_rejections(batch.rejected)
        if message:
            logger.warning("project %s: %s", principal.project_id, message)
        body_out, content_type = otlp.encode_response(
            encoding=encoding, rejected_spans=len(batch.rejected), error_message=message
        )
        return 200, body_out, content_type

    # --- database helpers --------------------------------------------------------------

    def _with_database(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one committed transaction; map outages to 503."""
        try:
            with transaction(self.session_factory) as session:
                return work(session)
        except (OperationalError, PoolTimeout) as exc:
            self._database_failed(exc)
            raise Unavailable("database unreachable") from None
        except DBAPIError as exc:
            if exc.connection_invalidated:
                self._database_failed(exc)
                raise Unavailable("database unreachable") from None
            raise

    def _database_failed(self, exc: Exception) -> None:
        self.metrics.db_errors.inc()
        self._db_down_until = time.monotonic() + float(RETRY_AFTER_S)
        logger.warning("database error while ingesting: %s", str(exc).splitlines()[0])

    def _project_overrides(self, project_id: int) -> list[PriceOverride]:
        now = time.monotonic()
        cached = self._overrides.get(project_id)
        if cached is not None and cached.expires > now:
            assert isinstance(cached.value, list)
            return cached.value
        overrides = self._with_database(
            lambda session: load_overrides(session, project_id=project_id)
        )
        self._overrides[project_id] = _Expiring(overrides, now + OVERRIDES_CACHE_TTL_S)
        return overrides

    def _ensure_partitions(self, days: set[date]) -> None:
        # Backfilled spans go straight to their own day's partition; the default partition
        # only catches what races with partition creation.
        unknown = days - self._known_days
        if not unknown:
            return
        missing = self._with_database(lambda session: missing_partition_days(session, unknown))
        for day in sorted(missing):
            self._with_database(partial(create_partition, day=day))
        with self._lock:
            self._known_days |= unknown


def install_ingest_routes(app: FastAPI, ingestor: TraceIngestor) -> None:
    @app.post("/v1/traces", tags=["otlp"])
    async def export_traces(request: Request) -> Response:
        return await ingestor.handle(request)
