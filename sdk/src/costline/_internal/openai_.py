"""OpenAI: chat completions (plain, streaming, parse), Responses API, embeddings."""

from __future__ import annotations

from typing import Any

from costline._internal.calls import ApiSpec, LLMCall, Switch

SWITCH = Switch()

_HOST_PROVIDERS = {
    "api.openai.com": "openai",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.x.ai": "x_ai",
    "api.mistral.ai": "mistral_ai",
    "api.perplexity.ai": "perplexity",
    "api.moonshot.ai": "moonshot_ai",
    "generativelanguage.googleapis.com": "gcp.gemini",
}


def provider_of(client: Any, host: str | None) -> str:
    if "Azure" in type(client).__name__:
        return "azure.ai.openai"
    if host:
        if host.endswith(".openai.azure.com"):
            return "azure.ai.openai"
        return _HOST_PROVIDERS.get(host, "openai")
    return "openai"


def _set_chat_usage(call: LLMCall, usage: Any) -> None:
    # OpenAI's prompt_tokens already include cached tokens: OTel's input_tokens as is.
    call.input_tokens = getattr(usage, "prompt_tokens", None)
    call.output_tokens = getattr(usage, "completion_tokens", None)
    details = getattr(usage, "prompt_tokens_details", None)
    if details is not None:
        call.cache_read = getattr(details, "cached_tokens", None)
        call.cache_write = getattr(details, "cache_write_tokens", None)
    details = getattr(usage, "completion_tokens_details", None)
    if details is not None:
        call.reasoning = getattr(details, "reasoning_tokens", None)
    call.usage_final = True


# -- chat completions ----------------------------------------------------------------------


def chat_response(call: LLMCall, completion: Any) -> None:
    call.response_id = completion.id
    call.response_model = completion.model
    choices = completion.choices
    if choices:
        call.finish_reasons = [c.finish_reason for c in choices if c.finish_reason]
    usage = completion.usage
    if usage is not None:
        _set_chat_usage(call, usage)


def chat_chunk(call: LLMCall, chunk: Any) -> bool:
    if call.response_id is None:
        call.response_id = getattr(chunk, "id", None)
        call.response_model = getattr(chunk, "model", None)
    choices = chunk.choices
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        _set_chat_usage(call, usage)
        if not choices:
            return call.hide_usage_chunks
    texts = call.texts
    for choice in choices:
        delta = choice.delta
        if delta is not None:
            content = delta.content
            if content:
                texts.append(content)  # type: ignore[union-attr]
            tool_calls = delta.tool_calls
            if tool_calls:
                for tool_call in tool_calls:
                    function = tool_call.function
                    if function is not None and function.arguments:
                        texts.append(function.arguments)  # type: ignore[union-attr]
        reason = choice.finish_reason
        if reason:
            if call.finish_reasons is None:
                call.finish_reasons = []
            call.finish_reasons.append(reason)
    return False


def chat_request_texts(kwargs: dict[str, Any]) -> list[list[str]]:
    messages = kwargs.get("messages")
    if not isinstance(messages, list | tuple):
        return []
    return [_texts_of(message.get("content")) for message in messages if isinstance(message, dict)]


def ask_for_stream_usage(call: LLMCall, kwargs: dict[str, Any]) -> None:
    """Ask the server to report usage on streams; the extra chunk is hidden from the caller."""
    current = kwargs.get("stream_options")
    if current is None and "stream_options" in kwargs:
        return  # the caller passed stream_options=None on purpose
    headers = kwargs.get("extra_headers")
    if isinstance(headers, dict) and any(
        key.lower() == "x-stainless-raw-response" for key in headers
    ):
        return  # .with_raw_response: the caller reads the raw body, costline cannot hide it
    if not current:  # missing, or openai's `omit` / `NOT_GIVEN` sentinels (both falsy)
        kwargs["stream_options"] = {"include_usage": True}
        call.hide_usage_chunks = True


def _texts_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if isinstance(content, list | tuple):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
                elif isinstance(part.get("content"), str | list):
                    texts.extend(_texts_of(part.get("content")))
    return texts


# -- Responses API -------------------------------------------------------------------------


def responses_response(call: LLMCall, response: Any) -> None:
    call.response_id = getattr(response, "id", None)
    call.response_model = getattr(response, "model", None)
    incomplete = getattr(response, "incomplete_details", None)
    reason = getattr(incomplete, "reason", None) if incomplete is not None else None
    status = getattr(response, "status", None)
    if reason or status:
        call.finish_reasons = [str(reason or status)]
    usage = getattr(response, "usage", None)
    if usage is not None:
        # Responses' input_tokens already include cached tokens, as OTel wants.
        call.input_tokens = getattr(usage, "input_tokens", None)
        call.output_tokens = getattr(usage, "output_tokens", None)
        details = getattr(usage, "input_tokens_details", None)
        if details is not None:
            call.cache_read = getattr(details, "cached_tokens", None)
            call.cache_write = getattr(details, "cache_write_tokens", None)
        details = getattr(usage, "output_tokens_details", None)
        if details is not None:
            call.reasoning = getattr(details, "reasoning_tokens", None)
        call.usage_final = True


_RESPONSE_END_EVENTS = {"response.completed", "response.incomplete", "response.failed"}


def responses_event(call: LLMCall, event: Any) -> bool:
    kind = getattr(event, "type", None)
    if kind == "response.output_text.delta" or kind == "response.function_call_arguments.delta":
        delta = getattr(event, "delta", None)
        if delta:
            call.texts.append(delta)  # type: ignore[union-attr]
    elif kind in _RESPONSE_END_EVENTS:
        response = getattr(event, "response", None)
        if response is not None:
            responses_response(call, response)
    elif kind == "response.created":
        response = getattr(event, "response", None)
        call.response_id = getattr(response, "id", None)
        call.response_model = getattr(response, "model", None)
    return False


def responses_request_texts(kwargs: dict[str, Any]) -> list[list[str]]:
    messages: list[list[str]] = []
    instructions = kwargs.get("instructions")
    if isinstance(instructions, str):
        messages.append([instructions])
    items = kwargs.get("input")
    if isinstance(items, str):
        messages.append([items])
    elif isinstance(items, list | tuple):
        for item in items:
            if isinstance(item, dict):
                messages.append(_texts_of(item.get("content", item.get("output"))))
    return messages


# -- embeddings ----------------------------------------------------------------------------


def embeddings_response(call: LLMCall, response: Any) -> None:
    call.response_model = getattr(response, "model", None)
    usage = getattr(response, "usage", None)
    if usage is not None:
        call.input_tokens = getattr(usage, "prompt_tokens", None)
        call.usage_final = True


def _no_items(call: LLMCall, item: Any) -> bool:
    return False


def _no_texts(kwargs: dict[str, Any]) -> list[list[str]]:
    return []


CHAT = ApiSpec(
    operation="chat",
    switch=SWITCH,
    provider_of=provider_of,
    on_response=chat_response,
    on_item=chat_chunk,
    request_texts=chat_request_texts,
    prepare_stream=ask_for_stream_usage,
)
RESPONSES = ApiSpec(
    operation="chat",
    switch=SWITCH,
    provider_of=provider_of,
    on_response=responses_response,
    on_item=responses_event,
    request_texts=responses_request_texts,
)
EMBEDDINGS = ApiSpec(
    operation="embeddings",
    switch=SWITCH,
    provider_of=provider_of,
    on_response=embeddings_response,
    on_item=_no_items,
    request_texts=_no_texts,
)

# (module, class, method, spec, is_async)
TARGETS: list[tuple[str, str, str, ApiSpec, bool]] = [
    ("openai.resources.chat.completions", "Completions", "create", CHAT, False),
    ("openai.resources.chat.completions", "AsyncCompletions", "create", CHAT, True),
    ("openai.resources.chat.completions", "Completions", "parse", CHAT, False),
    ("openai.resources.chat.completions", "AsyncCompletions", "parse", CHAT, True),
    ("openai.resources.responses", "Responses", "create", RESPONSES, False),
    ("openai.resources.responses", "AsyncResponses", "create", RESPONSES, True),
    ("openai.resources.responses", "Responses", "parse", RESPONSES, False),
    ("openai.resources.responses", "AsyncResponses", "parse", RESPONSES, True),
    ("openai.resources.embeddings", "Embeddings", "create", EMBEDDINGS, False),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", EMBEDDINGS, True),
]
