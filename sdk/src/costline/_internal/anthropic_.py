"""Anthropic: messages.create (plain and streaming), messages.parse, messages.stream(...)."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context

from costline._internal.calls import ApiSpec, LLMCall, Switch, mark, start_call
from costline._internal.guard import internal_error
from costline._internal.runtime import RUNTIME

SWITCH = Switch()


def provider_of(client: Any, host: str | None) -> str:
    name = type(client).__name__
    if "Bedrock" in name:
        return "aws.bedrock"
    if "Vertex" in name:
        return "gcp.vertex_ai"
    return "anthropic"


def _set_usage(call: LLMCall, usage: Any, *, merge: bool = False) -> None:
    """merge=True keeps what an earlier event said for fields this one leaves out."""
    # Anthropic's input_tokens exclude cache reads and writes; OTel's include them.
    cache_read = getattr(usage, "cache_read_input_tokens", None)
    cache_write = getattr(usage, "cache_creation_input_tokens", None)
    uncached = getattr(usage, "input_tokens", None)
    if merge and call.input_tokens is not None:
        cache_read = call.cache_read if cache_read is None else cache_read
        cache_write = call.cache_write if cache_write is None else cache_write
        if uncached is None:
            uncached = call.input_tokens - (call.cache_read or 0) - (call.cache_write or 0)
    cache_read, cache_write = cache_read or 0, cache_write or 0
    if uncached is not None:
        call.input_tokens = uncached + cache_read + cache_write
        call.cache_read = cache_read
        call.cache_write = cache_write
    output = getattr(usage, "output_tokens", None)
    if output is not None:
        call.output_tokens = output
    details = getattr(usage, "output_tokens_details", None)
    if details is not None:
        call.reasoning = getattr(details, "thinking_tokens", None)


def message_response(call: LLMCall, message: Any) -> None:
    call.response_id = getattr(message, "id", None)
    call.response_model = getattr(message, "model", None)
    reason = getattr(message, "stop_reason", None)
    if reason:
        call.finish_reasons = [reason]
    usage = getattr(message, "usage", None)
    if usage is not None:
        _set_usage(call, usage)
        call.usage_final = True


def message_event(call: LLMCall, event: Any) -> bool:
    kind = event.type
    if kind == "content_block_delta":
        delta = event.delta
        text = (
            getattr(delta, "text", None)
            or getattr(delta, "thinking", None)
            or getattr(delta, "partial_json", None)
        )
        if text:
            call.texts.append(text)  # type: ignore[union-attr]
    elif kind == "message_start":
        message = event.message
        call.response_id = getattr(message, "id", None)
        call.response_model = getattr(message, "model", None)
        usage = getattr(message, "usage", None)
        if usage is not None:
            _set_usage(call, usage)  # output_tokens here is a start value, not final
    elif kind == "message_delta":
        reason = getattr(event.delta, "stop_reason", None)
        if reason:
            call.finish_reasons = [reason]
        usage = getattr(event, "usage", None)
        if usage is not None:
            # Cumulative counts; the input fields may be left out (older API versions).
            _set_usage(call, usage, merge=True)
            call.usage_final = call.input_tokens is not None
    return False


def request_texts(kwargs: dict[str, Any]) -> list[list[str]]:
    messages: list[list[str]] = []
    system = kwargs.get("system")
    if isinstance(system, str):
        messages.append([system])
    elif isinstance(system, list | tuple):
        messages.append([b["text"] for b in system if _has_text(b)])
    for message in kwargs.get("messages") or ():
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                messages.append([content])
            elif isinstance(content, list | tuple):
                messages.append([b["text"] for b in content if _has_text(b)])
    return messages


def _has_text(block: Any) -> bool:
    return isinstance(block, dict) and isinstance(block.get("text"), str)


MESSAGES = ApiSpec(
    operation="chat",
    switch=SWITCH,
    provider_of=provider_of,
    on_response=message_response,
    on_item=message_event,
    request_texts=request_texts,
)


# -- messages.stream(...): the helper posts by itself, so trace the request it will send --


def wrap_stream_helper(original: Any, spec: ApiSpec, is_async: bool) -> Any:
    switch = spec.switch

    def costline_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        if switch.on and RUNTIME.enabled:
            try:
                _trace_manager(manager, spec, self, kwargs, is_async)
            except Exception:
                internal_error("anthropic.stream")
        return manager

    return mark(costline_wrapper, original)


def _trace_manager(
    manager: Any, spec: ApiSpec, resource: Any, kwargs: dict[str, Any], is_async: bool
) -> None:
    names = [name for name in vars(manager) if name.endswith("__api_request")]
    if len(names) != 1:
        raise LookupError(f"unexpected {type(manager).__name__} layout: {names}")
    name = names[0]
    api_request = getattr(manager, name)
    if is_async:
        setattr(manager, name, _TracedAwaitable(api_request, spec, resource, kwargs))
        return

    def traced_request() -> Any:
        call = start_call(spec, resource, kwargs, force_stream=True)
        if call is None:
            return api_request()
        token = otel_context.attach(call.context)
        try:
            raw_stream = api_request()
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            otel_context.detach(token)
        return call.complete_sync(raw_stream)

    setattr(manager, name, traced_request)


class _TracedAwaitable:
    """Awaited once by AsyncMessageStreamManager.__aenter__; a plain object until then."""

    __slots__ = ("_awaitable", "_kwargs", "_resource", "_spec")

    def __init__(self, awaitable: Any, spec: ApiSpec, resource: Any, kwargs: dict[str, Any]):
        self._awaitable = awaitable
        self._spec = spec
        self._resource = resource
        self._kwargs = kwargs

    def __await__(self) -> Any:
        return self._run().__await__()

    async def _run(self) -> Any:
        call = start_call(self._spec, self._resource, self._kwargs, force_stream=True)
        if call is None:
            return await self._awaitable
        token = otel_context.attach(call.context)
        try:
            raw_stream = await self._awaitable
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            otel_context.detach(token)
        return call.complete_async(raw_stream)


# (module, class, method, spec, kind) where kind is "sync", "async" or "stream"/"astream"
TARGETS: list[tuple[str, str, str, ApiSpec, str]] = [
    ("anthropic.resources.messages", "Messages", "create", MESSAGES, "sync"),
    ("anthropic.resources.messages", "AsyncMessages", "create", MESSAGES, "async"),
    ("anthropic.resources.messages", "Messages", "parse", MESSAGES, "sync"),
    ("anthropic.resources.messages", "AsyncMessages", "parse", MESSAGES, "async"),
    ("anthropic.resources.messages", "Messages", "stream", MESSAGES, "stream"),
    ("anthropic.resources.messages", "AsyncMessages", "stream", MESSAGES, "astream"),
    ("anthropic.resources.beta.messages", "Messages", "create", MESSAGES, "sync"),
    ("anthropic.resources.beta.messages", "AsyncMessages", "create", MESSAGES, "async"),
    ("anthropic.resources.beta.messages", "Messages", "parse", MESSAGES, "sync"),
    ("anthropic.resources.beta.messages", "AsyncMessages", "parse", MESSAGES, "async"),
    ("anthropic.resources.beta.messages", "Messages", "stream", MESSAGES, "stream"),
    ("anthropic.resources.beta.messages", "AsyncMessages", "stream", MESSAGES, "astream"),
]
