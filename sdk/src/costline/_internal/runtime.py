"""costline's process-wide state: which tracer it uses and where its spans go."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from costline._internal import semconv as sc
from costline._internal.guard import logger
from costline._internal.processor import CostlineSpanProcessor, CountingExporter
from costline._internal.settings import EXPORT_TIMEOUT_S, Settings, resolve
from costline._version import __version__


class Runtime:
    """Read on every instrumented call: plain attributes, no locks."""

    def __init__(self) -> None:
        self.enabled = True
        # Before configure(), the global (proxy) tracer: no-op until the app sets a provider.
        self.tracer: trace.Tracer = trace.get_tracer(sc.INSTRUMENTATION_SCOPE, __version__)
        self.provider: Any = None
        self.processor: CostlineSpanProcessor | None = None
        self.settings: Settings | None = None


RUNTIME = Runtime()

# One costline processor per provider: TracerProvider cannot remove a processor, so
# re-configuring swaps the export pipeline inside the one already added.
_PROCESSORS: weakref.WeakKeyDictionary[Any, CostlineSpanProcessor] = weakref.WeakKeyDictionary()


def configure(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    environment: str | None = None,
    tracer_provider: Any = None,
    enabled: bool = True,
    span_exporter: SpanExporter | None = None,
    export_processor: SpanProcessor | None = None,
    max_queue_size: int | None = None,
) -> None:
    settings = resolve(
        endpoint=endpoint,
        api_key=api_key,
        service_name=service_name,
        environment=environment,
        enabled=enabled,
    )
    RUNTIME.settings = settings
    if not settings.enabled:
        RUNTIME.enabled = False
        for attached in list(_PROCESSORS.values()):
            attached.active = False
        return

    provider = tracer_provider if tracer_provider is not None else _global_sdk_provider(settings)
    if not isinstance(provider, TracerProvider):
        # Not an SDK provider: costline can use its tracer but cannot add an exporter to it.
        logger.warning(
            "costline: tracer_provider %r is not an OpenTelemetry SDK TracerProvider; "
            "costline uses it as is and exports nothing itself",
            provider,
        )
        RUNTIME.tracer = provider.get_tracer(sc.INSTRUMENTATION_SCOPE, __version__)
        RUNTIME.provider, RUNTIME.processor, RUNTIME.enabled = provider, None, True
        return

    processor: CostlineSpanProcessor | None = _PROCESSORS.get(provider)
    if processor is None:
        processor = CostlineSpanProcessor()
        provider.add_span_processor(processor)
        _PROCESSORS[provider] = processor
    if export_processor is None:
        exporter = CountingExporter(
            span_exporter if span_exporter is not None else _otlp_exporter(settings),
            target=settings.traces_url if span_exporter is None else type(span_exporter).__name__,
            resource_attributes=_resource_attributes(settings),
        )
        export_processor = BatchSpanProcessor(
            exporter,
            max_queue_size=max_queue_size,
            max_export_batch_size=min(512, max_queue_size) if max_queue_size else None,
        )
        processor.set_export(export_processor, exporter)
    else:
        processor.set_export(export_processor, None)

    for other in list(_PROCESSORS.values()):
        if other is not processor:
            other.active = False
    RUNTIME.tracer = provider.get_tracer(sc.INSTRUMENTATION_SCOPE, __version__)
    RUNTIME.provider, RUNTIME.processor, RUNTIME.enabled = provider, processor, True


def _global_sdk_provider(settings: Settings) -> Any:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current  # the application's own: add to it, never replace it
    if not isinstance(current, trace.ProxyTracerProvider):
        return TracerProvider(resource=_resource(settings))  # a foreign provider: stay private
    provider = TracerProvider(resource=_resource(settings))
    trace.set_tracer_provider(provider)
    current = trace.get_tracer_provider()
    # Lost a race with the application setting its own provider: join that one instead.
    return current if isinstance(current, TracerProvider) else provider


def _resource_attributes(settings: Settings) -> dict[str, str]:
    attributes: dict[str, str] = {}
    if settings.service_name:
        attributes[sc.SERVICE_NAME] = settings.service_name
    if settings.environment:
        attributes[sc.DEPLOYMENT_ENVIRONMENT_NAME] = settings.environment
    return attributes


def _resource(settings: Settings) -> Resource:
    return Resource.create(_resource_attributes(settings))


def _otlp_exporter(settings: Settings) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else None
    return OTLPSpanExporter(endpoint=settings.traces_url, headers=headers, timeout=EXPORT_TIMEOUT_S)


def flush(timeout_s: float) -> bool:
    processor = RUNTIME.processor
    if processor is None:
        return True
    return processor.flush(timeout_s)


def shutdown() -> None:
    processor = RUNTIME.processor
    RUNTIME.enabled = False
    if processor is not None:
        processor.shutdown()


@contextmanager
def override(provider: TracerProvider, export_processor: SpanProcessor) -> Iterator[None]:
    """Route costline to `provider` for a while, then restore (the testing helper's engine)."""
    saved = (RUNTIME.enabled, RUNTIME.tracer, RUNTIME.provider, RUNTIME.processor)
    saved_active = {id(p): p.active for p in _PROCESSORS.values()}
    configure(tracer_provider=provider, export_processor=export_processor)
    try:
        yield
    finally:
        processor = _PROCESSORS.get(provider)
        if processor is not None:
            processor.active = False
        RUNTIME.enabled, RUNTIME.tracer, RUNTIME.provider, RUNTIME.processor = saved
        for other in _PROCESSORS.values():
            if id(other) in saved_active:
                other.active = saved_active[id(other)]
