"""The span processor costline adds to a TracerProvider.

On start it copies attribution (costline.* baggage) onto every span. On end it forwards
GenAI spans and costline's own spans to costline's exporter, and nothing else: the
application's other spans stay with the application's own exporters.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from costline._internal import semconv as sc
from costline._internal.guard import internal_error, logger, run_bounded, warn_rate_limited
from costline._internal.settings import SHUTDOWN_TIMEOUT_S

# Span ids of costline LLM spans still open; a GenAI span started under one of them is the
# same provider call seen by another instrumentation (e.g. the anthropic SDK's own tracing).
LIVE_LLM_SPAN_IDS: set[int] = set()

_GENAI_KEYS = (
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_PROVIDER_NAME,
    "gen_ai.system",
    sc.GEN_AI_REQUEST_MODEL,
    "llm.request.type",
    "llm.model_name",
    "openinference.span.kind",
)
_GENAI_PREFIXES = ("gen_ai.", "llm.")


def is_genai(attributes: Any) -> bool:
    if not attributes:
        return False
    for key in _GENAI_KEYS:
        if key in attributes:
            return True
    return any(key.startswith(_GENAI_PREFIXES) for key in attributes)


class CountingExporter(SpanExporter):
    """Wraps the real exporter: counts what could not be sent and says so, once a minute.

    `resource_attributes` (service name, environment given to configure()) are applied to
    the resource of what costline sends, also when the provider was built elsewhere; the
    copies are made here, in the export thread, off the request path.
    """

    def __init__(
        self,
        inner: SpanExporter,
        *,
        target: str,
        resource_attributes: Mapping[str, str] | None = None,
    ) -> None:
        self.inner = inner
        self.target = target
        self.exported_spans = 0
        self.failed_spans = 0
        self._abandoned = False
        self._resource_attributes = dict(resource_attributes or {})
        self._resources: dict[int, tuple[Resource, Resource]] = {}

    def abandon(self) -> None:
        """Shutdown gave up waiting: stop retrying and stay quiet about what is left."""
        self._abandoned = True
        try:
            self.inner.shutdown()
        except Exception:
            logger.debug("costline: exporter shutdown failed", exc_info=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            if self._resource_attributes:
                spans = [self._with_resource(span) for span in spans]
            result = self.inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported_spans += len(spans)
        else:
            self.failed_spans += len(spans)
            if self._abandoned:
                return result
            warn_rate_limited(
                "export-failed",
                "costline: could not send %d span(s) to %s; dropped (%d so far). "
                "The application is not affected.",
                len(spans),
                self.target,
                self.failed_spans,
            )
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def _with_resource(self, span: ReadableSpan) -> ReadableSpan:
        resource = span.resource
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            present = resource.attributes
            wanted = self._resource_attributes
            merged = (
                resource
                if all(present.get(key) == value for key, value in wanted.items())
                else resource.merge(Resource(wanted))
            )
            if len(self._resources) > 64:
                self._resources.clear()
            cached = self._resources[id(resource)] = (resource, merged)
        if cached[1] is resource:
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=cached[1],
            attributes=span.attributes,
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


class CostlineSpanProcessor(SpanProcessor):
    def __init__(self) -> None:
        self.active = True
        self.dropped_spans = 0
        self._export: SpanProcessor | None = None
        self._exporter: CountingExporter | None = None
        self._queue: collections.deque[Any] | None = None
        self._queue_limit = 0
        self._duplicates: set[int] = set()
        self._lock = threading.Lock()

    # -- configuration -----------------------------------------------------------------

    def set_export(self, export: SpanProcessor | None, exporter: CountingExporter | None) -> None:
        """Swap the export pipeline; the previous one is shut down off the caller's thread."""
        with self._lock:
            previous = self._export
            self._export, self._exporter = export, exporter
            self._queue, self._queue_limit = _bounded_queue_of(export)
            self.active = True
        if previous is not None and previous is not export:
            threading.Thread(target=previous.shutdown, name="costline-swap", daemon=True).start()

    @property
    def export(self) -> SpanProcessor | None:
        return self._export

    @property
    def exporter(self) -> CountingExporter | None:
        return self._exporter

    # -- SpanProcessor -----------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self.active:
            return
        try:
            entries = baggage.get_all(parent_context)
            if entries:
                existing = span.attributes or {}
                attribution = {
                    key: value
                    for key, value in entries.items()
                    if key.startswith(sc.COSTLINE_PREFIX)
                    and key not in existing
                    and isinstance(value, str)
                }
                if attribution:
                    span.set_attributes(attribution)
            parent = trace.get_current_span(parent_context)
            if not parent.is_recording():
                return
            parent_id = parent.get_span_context().span_id
            if parent_id in LIVE_LLM_SPAN_IDS:
                # Another instrumentation's span for the call costline is already tracing.
                if is_genai(span.attributes):
                    self._mark_duplicate(span, of=span.get_span_context().span_id, keep=parent_id)
            elif _is_costline_call(span) and _is_inference_span(parent):
                # costline wraps a method another instrumentation wrapped first: one call.
                self._mark_duplicate(parent, of=parent_id, keep=span.get_span_context().span_id)
        except Exception:
            internal_error("processor.on_start")

    def _mark_duplicate(self, span: Any, *, of: int, keep: int) -> None:
        if len(self._duplicates) > 10_000:  # spans that never ended: do not grow forever
            self._duplicates.clear()
        self._duplicates.add(of)
        span.set_attribute(sc.COSTLINE_DUPLICATE_OF, format(keep, "016x"))

    def on_end(self, span: ReadableSpan) -> None:
        export = self._export
        if export is None or not self.active:
            return
        try:
            context = span.context
            if context is None:
                return
            if self._duplicates and context.span_id in self._duplicates:
                self._duplicates.discard(context.span_id)
                return
            scope = span.instrumentation_scope
            if not (
                (scope is not None and scope.name == sc.INSTRUMENTATION_SCOPE)
                or is_genai(span.attributes)
            ):
                return
            queue = self._queue
            if queue is not None and len(queue) >= self._queue_limit:
                self.dropped_spans += 1
                warn_rate_limited(
                    "queue-full",
                    "costline: export queue full, dropping spans (%d so far). "
                    "Is the collector reachable? The application is not affected.",
                    self.dropped_spans,
                )
                return
            export.on_end(span)
        except Exception:
            internal_error("processor.on_end")

    def shutdown(self) -> None:
        self.active = False
        export = self._export
        if export is None:
            return
        finished, _ = run_bounded(export.shutdown, SHUTDOWN_TIMEOUT_S, "shutdown")
        if not finished:
            exporter = self._exporter
            if exporter is not None:
                exporter.abandon()  # stop the export thread's retries; it is on its own now
            logger.warning(
                "costline: could not send the last spans within %.1f s; they are dropped. "
                "The application is not affected.",
                SHUTDOWN_TIMEOUT_S,
            )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.flush(timeout_millis / 1000.0)

    def flush(self, timeout_s: float) -> bool:
        export, exporter = self._export, self._exporter
        if export is None:
            return True
        failed_before = exporter.failed_spans if exporter is not None else 0
        finished, result = run_bounded(lambda: export.force_flush(), timeout_s, "flush")
        failed_after = exporter.failed_spans if exporter is not None else 0
        return finished and result is not False and failed_after == failed_before


_INFERENCE_OPERATIONS = {"chat", "text_completion", "embeddings", "generate_content"}


def _is_costline_call(span: Any) -> bool:
    scope = getattr(span, "instrumentation_scope", None)
    attributes = span.attributes or {}
    return (
        scope is not None
        and scope.name == sc.INSTRUMENTATION_SCOPE
        and sc.GEN_AI_OPERATION_NAME in attributes
        and sc.COSTLINE_REQUEST_ROOT not in attributes
    )


def _is_inference_span(span: Any) -> bool:
    """A span of one provider call from some other instrumentation (not an agent or a tool)."""
    if getattr(span, "kind", None) is not SpanKind.CLIENT or _is_costline_call(span):
        return False
    attributes = span.attributes or {}
    operation = attributes.get(sc.GEN_AI_OPERATION_NAME) or attributes.get("llm.request.type")
    if operation == "completion" or operation == "embedding":  # older OpenLLMetry names
        return True
    return operation in _INFERENCE_OPERATIONS


def _bounded_queue_of(export: SpanProcessor | None) -> tuple[collections.deque[Any] | None, int]:
    """The BatchSpanProcessor's queue, to count drops ourselves instead of its per-span log."""
    inner = getattr(export, "_batch_processor", None)
    queue = getattr(inner, "_queue", None)
    limit = getattr(inner, "_max_queue_size", None)
    if isinstance(queue, collections.deque) and isinstance(limit, int):
        return queue, limit
    return None, 0
