"""costline SDK: attribute and price every LLM call your application makes.

    import costline

    costline.configure()            # COSTLINE_ENDPOINT, COSTLINE_API_KEY, ...
    costline.instrument()           # openai and anthropic clients, sync and async

    @costline.track(feature="support.answer", customer=tenant_id)
    def answer(question): ...

Nothing in this package raises into your application: its own failures are logged
(once a minute) and your calls carry on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from costline import testing
from costline._internal import instrument as _instrument
from costline._internal import record as _record
from costline._internal import runtime as _runtime
from costline._internal.attribution import Track
from costline._internal.guard import guarded as _guarded
from costline._version import __version__

__all__ = [
    "Track",
    "__version__",
    "configure",
    "flush",
    "instrument",
    "record",
    "shutdown",
    "testing",
    "track",
    "uninstrument",
]

F = TypeVar("F", bound=Callable[..., Any])


@_guarded("configure")
def configure(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    environment: str | None = None,
    tracer_provider: Any = None,
    enabled: bool = True,
) -> None:
    """Send costline's spans to the collector at `endpoint` (spans go to `<endpoint>/v1/traces`).

    Each option falls back to an environment variable: COSTLINE_ENDPOINT (default
    http://127.0.0.1:4318), COSTLINE_API_KEY (sent as `Authorization: Bearer <key>`),
    OTEL_SERVICE_NAME, COSTLINE_ENVIRONMENT (`deployment.environment.name`), and
    COSTLINE_ENABLED=false to turn the SDK off.

    If the application already set an OpenTelemetry SDK TracerProvider globally, costline
    adds its processor and exporter to it and leaves its other exporters alone; otherwise it
    creates a provider and sets it globally. Pass `tracer_provider` to use a given provider
    without touching the global one. Calling configure again re-configures in place.
    """
    _runtime.configure(
        endpoint=endpoint,
        api_key=api_key,
        service_name=service_name,
        environment=environment,
        tracer_provider=tracer_provider,
        enabled=enabled,
    )


@_guarded("instrument")
def instrument(openai: bool = True, anthropic: bool = True) -> None:
    """Wrap the installed openai and/or anthropic clients: one span per call. Idempotent."""
    _instrument.instrument(openai=openai, anthropic=anthropic)


@_guarded("uninstrument")
def uninstrument() -> None:
    """Undo `instrument()`: the client classes get their original methods back."""
    _instrument.uninstrument()


@overload
def track(func: F, /) -> F: ...


@overload
def track(
    *,
    feature: str | None = None,
    customer: str | None = None,
    user: str | None = None,
    tags: Mapping[str, object] | None = None,
    new_request: bool = False,
) -> Track: ...


def track(
    func: Callable[..., Any] | None = None,
    /,
    *,
    feature: str | None = None,
    customer: str | None = None,
    user: str | None = None,
    tags: Mapping[str, object] | None = None,
    new_request: bool = False,
) -> Any:
    """Mark one user-facing request and attribute every LLM call made inside it.

    Use as `@costline.track(...)` on sync or async functions and generators, or as
    `with costline.track(...):` / `async with costline.track(...):`. Nested calls refine the
    attribution (the inner value wins) within the same request unless `new_request=True`.
    Values travel as W3C baggage, so services called from inside carry them too.
    """
    try:
        tracker = Track(
            feature=feature, customer=customer, user=user, tags=tags, new_request=new_request
        )
    except Exception:
        from costline._internal.guard import internal_error

        internal_error("track")
        tracker = Track()
    return tracker(func) if func is not None else tracker


@_guarded("record")
def record(
    *,
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    cost_usd: float | None = None,
    duration_s: float | None = None,
    **attrs: Any,
) -> None:
    """Record one LLM call made some other way, as a span with the same attributes.

    `input_tokens` follows OpenTelemetry: it includes cache reads and writes (if it is
    smaller than their sum, they are added). `cost_usd` becomes `gen_ai.usage.cost`; the
    span starts `duration_s` before now. Extra keywords become span attributes; `feature`,
    `customer`, `user`, `tags`, `operation`, `response_model`, `response_id` are understood.
    """
    _record.record(
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
        cost_usd=cost_usd,
        duration_s=duration_s,
        **attrs,
    )


@_guarded("flush", default=False)
def flush(timeout_s: float = 5.0) -> bool:
    """Send queued spans now; True if all were sent within `timeout_s`."""
    return _runtime.flush(timeout_s)


@_guarded("shutdown")
def shutdown() -> None:
    """Flush (bounded in time) and stop exporting; instrumented calls keep working."""
    _runtime.shutdown()
