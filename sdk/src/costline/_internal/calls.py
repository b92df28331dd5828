"""One provider call = one CLIENT span: start it, end it, and keep streams honest."""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from costline._internal import estimate
from costline._internal import semconv as sc
from costline._internal.guard import internal_error
from costline._internal.processor import LIVE_LLM_SPAN_IDS
from costline._internal.runtime import RUNTIME

_CLIENT = SpanKind.CLIENT
_SERVER_INFO_KEY = "_costline_server_info"


class Switch:
    """Whether one provider's wrappers are live (wrappers captured earlier check it too)."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


class ApiSpec:
    """How to read one API: its operation, its client's server, its responses and stream items."""

    __slots__ = (
        "on_item",
        "on_response",
        "operation",
        "prepare_stream",
        "provider_of",
        "request_texts",
        "switch",
    )

    def __init__(
        self,
        *,
        operation: str,
        switch: Switch,
        provider_of: Callable[[Any, str | None], str],
        on_response: Callable[[LLMCall, Any], None],
        on_item: Callable[[LLMCall, Any], bool],
        request_texts: Callable[[dict[str, Any]], list[list[str]]],
        prepare_stream: Callable[[LLMCall, dict[str, Any]], None] | None = None,
    ) -> None:
        self.operation = operation
        self.switch = switch
        self.provider_of = provider_of
        self.on_response = on_response
        self.on_item = on_item
        self.request_texts = request_texts
        self.prepare_stream = prepare_stream


class LLMCall:
    """The state of one call from request to end of response (or end of stream)."""

    __slots__ = (
        "cache_read",
        "cache_write",
        "context",
        "ended",
        "finish_reasons",
        "first_chunk_ns",
        "hide_usage_chunks",
        "input_tokens",
        "kwargs",
        "model",
        "observe_failed",
        "output_tokens",
        "reasoning",
        "response_id",
        "response_model",
        "span",
        "span_id",
        "spec",
        "start_ns",
        "stream",
        "texts",
        "usage_final",
        "usage_unavailable",
    )

    def __init__(
        self, span: Any, spec: ApiSpec, kwargs: dict[str, Any], model: str | None, stream: bool
    ) -> None:
        self.span = span
        self.span_id: int = span.get_span_context().span_id
        self.spec = spec
        self.kwargs = kwargs
        self.model = model
        self.stream = stream
        self.context = trace.set_span_in_context(span)
        self.ended = False
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reasons: list[str] | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read: int | None = None
        self.cache_write: int | None = None
        self.reasoning: int | None = None
        self.usage_final = False
        self.usage_unavailable = False
        self.hide_usage_chunks = False
        self.observe_failed = False
        self.texts: list[str] | None = [] if stream else None
        self.start_ns = time.monotonic_ns() if stream else 0
        self.first_chunk_ns = 0

    # -- results -------------------------------------------------------------------------

    def complete_sync(self, result: Any) -> Any:
        try:
            if self.stream and hasattr(type(result), "__next__"):
                return SyncStreamProxy(result, self)
            self._record_result(result)
        except Exception:
            internal_error("call.complete")
        self.end()
        return result

    def complete_async(self, result: Any) -> Any:
        try:
            if self.stream and hasattr(type(result), "__anext__"):
                return AsyncStreamProxy(result, self)
            self._record_result(result)
        except Exception:
            internal_error("call.complete")
        self.end()
        return result

    def _record_result(self, result: Any) -> None:
        if not _is_raw_response(result):
            self.spec.on_response(self, result)
            return
        # .with_raw_response / .with_streaming_response: read the body only if already read.
        data = None
        if not self.stream:
            try:
                data = json.loads(result.http_response.content)
            except Exception:
                data = None
        if isinstance(data, dict):
            self.spec.on_response(self, AttrView(data))
        else:
            self.usage_unavailable = True

    def observe(self, item: Any) -> bool:
        """Read one stream item; True when it is costline's own usage chunk, to hide."""
        if not self.first_chunk_ns:
            self.first_chunk_ns = time.monotonic_ns()
        if self.observe_failed:
            return False
        try:
            return self.spec.on_item(self, item)
        except Exception:
            self.observe_failed = True
            internal_error("stream.observe")
            return False

    def fail(self, exc: BaseException) -> None:
        if self.ended:
            return
        try:
            status_code = getattr(exc, "status_code", None)
            attributes: dict[str, Any]
            if isinstance(status_code, int):
                attributes = {
                    sc.ERROR_TYPE: str(status_code),
                    sc.HTTP_RESPONSE_STATUS_CODE: status_code,
                }
            else:
                attributes = {sc.ERROR_TYPE: type(exc).__qualname__}
            self.span.set_attributes(attributes)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:1000]))
        except Exception:
            internal_error("call.fail")
        # A stream that broke mid-way was partly generated: estimate what was seen.
        self.end(estimate_usage=bool(self.first_chunk_ns))

    def end_stream(self, *, from_finalizer: bool = False) -> None:
        if not self.ended:
            self.end(from_finalizer=from_finalizer)

    def end(self, *, estimate_usage: bool = True, from_finalizer: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        LIVE_LLM_SPAN_IDS.discard(self.span_id)
        try:
            self.span.set_attributes(self._response_attributes(estimate_usage, from_finalizer))
        except Exception:
            internal_error("call.end")
        try:
            self.span.end()
        except Exception:
            internal_error("call.end")

    def _response_attributes(self, estimate_usage: bool, from_finalizer: bool) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        if self.response_model:
            attributes[sc.GEN_AI_RESPONSE_MODEL] = self.response_model
        if self.response_id:
            attributes[sc.GEN_AI_RESPONSE_ID] = self.response_id
        if self.finish_reasons:
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(self.finish_reasons)
        if self.stream:
            if self.first_chunk_ns:
                attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (
                    self.first_chunk_ns - self.start_ns
                ) / 1e9
            if not self.usage_final and estimate_usage and not self.usage_unavailable:
                self._estimate(attributes, may_load=not from_finalizer)
        if self.usage_unavailable and self.input_tokens is None:
            attributes[sc.COSTLINE_USAGE_UNAVAILABLE] = True
        if self.input_tokens is not None:
            attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
        if self.output_tokens is not None:
            attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = self.output_tokens
        if self.cache_read:
            attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read
        if self.cache_write:
            attributes[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = self.cache_write
        if self.reasoning:
            attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning
        return attributes

    def _estimate(self, attributes: dict[str, Any], *, may_load: bool) -> None:
        """The stream ended before its usage: estimate, and say so (never a silent 0)."""
        estimator = estimate.ROUGH
        if self.input_tokens is None:
            messages = self.spec.request_texts(self.kwargs)
            self.input_tokens, estimator = estimate.count_messages(
                messages, self.model, may_load=may_load
            )
        output, output_estimator = estimate.count(self.texts or (), self.model, may_load=may_load)
        if self.output_tokens is None or output > self.output_tokens:
            self.output_tokens, estimator = output, output_estimator
        attributes[sc.COSTLINE_USAGE_ESTIMATED] = True
        attributes[sc.COSTLINE_USAGE_ESTIMATOR] = estimator


def start_call(
    spec: ApiSpec, resource: Any, kwargs: dict[str, Any], force_stream: bool = False
) -> LLMCall | None:
    """Open the span for one call, or None to let the call pass through untouched."""
    try:
        model = kwargs.get("model")
        if not isinstance(model, str):
            model = None
        stream = force_stream or kwargs.get("stream") is True
        provider, host, port = _server_info(resource, spec)
        attributes: dict[str, Any] = {
            sc.GEN_AI_OPERATION_NAME: spec.operation,
            sc.GEN_AI_PROVIDER_NAME: provider,
            sc.GEN_AI_REQUEST_STREAM: stream,
        }
        if model:
            attributes[sc.GEN_AI_REQUEST_MODEL] = model
        if host:
            attributes[sc.SERVER_ADDRESS] = host
            attributes[sc.SERVER_PORT] = port
        name = f"{spec.operation} {model}" if model else spec.operation
        span = RUNTIME.tracer.start_span(name, kind=_CLIENT, attributes=attributes)
        if not span.is_recording():
            return None
        call = LLMCall(span, spec, kwargs, model, stream)
        LIVE_LLM_SPAN_IDS.add(call.span_id)
        if stream and spec.prepare_stream is not None:
            spec.prepare_stream(call, kwargs)
        return call
    except Exception:
        internal_error("call.start")
        return None


def _server_info(resource: Any, spec: ApiSpec) -> tuple[str, str | None, int | None]:
    client = resource._client
    base_url = client.base_url
    cached = getattr(client, "__dict__", {}).get(_SERVER_INFO_KEY)
    if cached is not None and cached[0] is base_url:
        return cached[1]  # type: ignore[no-any-return]
    host = getattr(base_url, "host", None) or None
    port = getattr(base_url, "port", None)
    if host and port is None:
        port = 443 if getattr(base_url, "scheme", "https") == "https" else 80
    info = (spec.provider_of(client, host), host, port)
    with contextlib.suppress(Exception):  # a client without __dict__ is looked up each time
        client.__dict__[_SERVER_INFO_KEY] = (base_url, info)
    return info


_raw_types: dict[type, bool] = {}


def _is_raw_response(result: Any) -> bool:
    kind = type(result)
    raw = _raw_types.get(kind)
    if raw is None:
        raw = callable(getattr(kind, "parse", None)) and not hasattr(kind, "model_fields")
        _raw_types[kind] = raw
    return raw


class AttrView:
    """Attribute access over a decoded JSON body, so raw responses read like models."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _view(self._data.get(name))


def _view(value: Any) -> Any:
    if isinstance(value, dict):
        return AttrView(value)
    if isinstance(value, list):
        return [_view(item) for item in value]
    return value


# -- wrappers ------------------------------------------------------------------------------


def mark(wrapper: Any, original: Any) -> Any:
    functools.update_wrapper(wrapper, original)
    wrapper.__costline_original__ = original
    return wrapper


def wrap_sync(original: Callable[..., Any], spec: ApiSpec) -> Callable[..., Any]:
    switch = spec.switch

    def costline_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not (switch.on and RUNTIME.enabled):
            return original(self, *args, **kwargs)
        call = start_call(spec, self, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        token = otel_context.attach(call.context)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            otel_context.detach(token)
        return call.complete_sync(result)

    return mark(costline_wrapper, original)  # type: ignore[no-any-return]


def wrap_async(original: Callable[..., Any], spec: ApiSpec) -> Callable[..., Any]:
    switch = spec.switch

    async def costline_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not (switch.on and RUNTIME.enabled):
            return await original(self, *args, **kwargs)
        call = start_call(spec, self, kwargs)
        if call is None:
            return await original(self, *args, **kwargs)
        token = otel_context.attach(call.context)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            otel_context.detach(token)
        return call.complete_async(result)

    return mark(costline_wrapper, original)  # type: ignore[no-any-return]


# -- stream proxies ------------------------------------------------------------------------


class _StreamProxy:
    """Stands in for a provider stream: delegates everything, ends the span when it ends."""

    __slots__ = ("__weakref__", "_cl_call", "_cl_stream")

    def __init__(self, stream: Any, call: LLMCall) -> None:
        object.__setattr__(self, "_cl_stream", stream)
        object.__setattr__(self, "_cl_call", call)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(proxy, openai.Stream) stays true
        return type(self._cl_stream)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_cl_"):
            raise AttributeError(name)
        return getattr(self._cl_stream, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._cl_stream, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._cl_stream, name)

    def __repr__(self) -> str:
        return repr(self._cl_stream)

    def __del__(self) -> None:
        # Dropped without being exhausted or closed: end the span now.
        try:
            call = self._cl_call
            if not call.ended:
                call.end_stream(from_finalizer=True)
        except Exception:
            pass


class SyncStreamProxy(_StreamProxy):
    __slots__ = ()

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        stream, call = self._cl_stream, self._cl_call
        while True:
            try:
                item = stream.__next__()
            except StopIteration:
                call.end_stream()
                raise
            except BaseException as exc:
                call.fail(exc)
                raise
            if not call.observe(item):
                return item

    def __enter__(self) -> Any:
        entered = self._cl_stream.__enter__()
        return self if entered is self._cl_stream else entered

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._cl_stream.__exit__(*exc_info)
        finally:
            self._cl_call.end_stream()

    def close(self) -> Any:
        try:
            return self._cl_stream.close()
        finally:
            self._cl_call.end_stream()


class AsyncStreamProxy(_StreamProxy):
    __slots__ = ()

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        stream, call = self._cl_stream, self._cl_call
        while True:
            try:
                item = await stream.__anext__()
            except StopAsyncIteration:
                call.end_stream()
                raise
            except BaseException as exc:
                call.fail(exc)
                raise
            if not call.observe(item):
                return item

    async def __aenter__(self) -> Any:
        entered = await self._cl_stream.__aenter__()
        return self if entered is self._cl_stream else entered

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._cl_stream.__aexit__(*exc_info)
        finally:
            self._cl_call.end_stream()

    async def close(self) -> Any:
        try:
            return await self._cl_stream.close()
        finally:
            self._cl_call.end_stream()
