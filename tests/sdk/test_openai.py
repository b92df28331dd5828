"""The real openai client against a real local HTTP server, instrumented by costline."""

from __future__ import annotations

import asyncio
import gc
import traceback
from typing import Any

import costline
import openai
import pytest
from costline._internal import estimate
from costline._internal.instrument import is_instrumented
from costline.testing import CapturedSpans
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from tests.sdk.fake_llm import CHAT_MODEL, CHAT_TEXT, RESPONSES_MODEL, FakeLLMServer

MESSAGES = [{"role": "user", "content": "Say hello to the tester, kindly."}]


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **kwargs)


def only_call(spans: CapturedSpans) -> Any:
    calls = spans.llm_calls()
    assert len(calls) == 1, [s.name for s in calls]
    return calls[0]


def test_chat_completion_span_follows_genai_semconv(
    spans: CapturedSpans, openai_client: openai.OpenAI, server: FakeLLMServer
) -> None:
    completion = chat(openai_client)

    assert completion.choices[0].message.content == "".join(CHAT_TEXT)
    span = only_call(spans)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.stream": False,
        "gen_ai.response.model": CHAT_MODEL,
        "gen_ai.response.id": "chatcmpl-123",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 120,  # OpenAI's prompt_tokens already include cached
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 12,
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_response_object_is_returned_unchanged(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    instrumented = chat(openai_client)
    costline.uninstrument()
    plain = chat(openai_client)

    assert type(instrumented) is type(plain)
    assert instrumented.model_dump() == plain.model_dump()


def test_async_chat_completion_is_traced(
    spans: CapturedSpans, async_openai_client: openai.AsyncOpenAI
) -> None:
    async def main() -> Any:
        return await async_openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )

    completion = asyncio.run(main())

    assert completion.usage is not None and completion.usage.prompt_tokens == 120
    span = only_call(spans)
    assert span.attributes["gen_ai.usage.input_tokens"] == 120
    assert span.attributes["gen_ai.response.id"] == "chatcmpl-123"


def test_span_is_child_of_the_applications_current_span(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    from costline._internal.runtime import RUNTIME

    tracer = RUNTIME.provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as parent:
        chat(openai_client)

    call = only_call(spans)
    assert call.parent is not None
    assert call.parent.span_id == parent.get_span_context().span_id


def test_stream_asks_for_usage_and_hides_the_extra_chunk(
    spans: CapturedSpans, openai_client: openai.OpenAI, server: FakeLLMServer
) -> None:
    def read(stream: Any) -> list[Any]:
        return [(c.choices[0].delta.content, c.choices[0].finish_reason, c.usage) for c in stream]

    instrumented = read(chat(openai_client, stream=True))
    assert server.last("/chat/completions").json()["stream_options"] == {"include_usage": True}
    costline.uninstrument()
    plain = read(chat(openai_client, stream=True))
    assert "stream_options" not in server.last("/chat/completions").json()

    assert instrumented == plain  # the app sees exactly the chunks it would without costline
    span = only_call(spans)
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.attributes["gen_ai.usage.input_tokens"] == 120
    assert span.attributes["gen_ai.usage.output_tokens"] == 30
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 100
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert "costline.usage.estimated" not in span.attributes


def test_stream_is_still_an_openai_stream(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    stream = chat(openai_client, stream=True)
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200  # attributes delegate to the real stream
    stream.close()


def test_callers_stream_options_are_kept_and_their_usage_chunk_shown(
    spans: CapturedSpans, openai_client: openai.OpenAI, server: FakeLLMServer
) -> None:
    chunks = list(chat(openai_client, stream=True, stream_options={"include_usage": True}))

    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert only_call(spans).attributes["gen_ai.usage.input_tokens"] == 120


def test_stream_without_usage_is_estimated_never_zero(
    spans: CapturedSpans, openai_client: openai.OpenAI, server: FakeLLMServer
) -> None:
    server.stream_usage_supported = False  # an OpenAI-compatible server that ignores it

    text = "".join(c.choices[0].delta.content or "" for c in chat(openai_client, stream=True))

    span = only_call(spans)
    assert span.attributes["costline.usage.estimated"] is True
    assert span.attributes["costline.usage.estimator"] == "chars_div_4"
    assert span.attributes["gen_ai.usage.output_tokens"] == -(-len(text) // 4)
    prompt = MESSAGES[0]["content"]
    assert span.attributes["gen_ai.usage.input_tokens"] == -(-len(prompt) // 4) + 4


class _WordEncoding:
    name = "fake_words"

    def encode(self, text: str, disallowed_special: Any = ()) -> list[int]:
        return list(range(len(text.split())))


def test_stream_estimate_uses_tiktoken_when_its_encoding_is_loaded(
    spans: CapturedSpans,
    openai_client: openai.OpenAI,
    server: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(estimate._encodings, "gpt-4o-mini", _WordEncoding())
    server.stream_usage_supported = False

    list(chat(openai_client, stream=True))

    span = only_call(spans)
    assert span.attributes["costline.usage.estimator"] == "tiktoken:fake_words"
    assert span.attributes["gen_ai.usage.input_tokens"] == 6 + 4  # six words + overhead


def test_stream_early_break_ends_span(
    spans: CapturedSpans, openai_client: openai.OpenAI, server: FakeLLMServer
) -> None:
    server.chunks = 40
    with chat(openai_client, stream=True) as stream:
        for _chunk in stream:
            break
        assert spans.llm_calls() == []  # still open inside the block
    span = only_call(spans)  # ended when the block exited
    assert span.attributes["costline.usage.estimated"] is True
    assert span.attributes["gen_ai.usage.output_tokens"] >= 1

    spans.clear()
    stream = chat(openai_client, stream=True)
    for _chunk in stream:
        break
    del stream, _chunk
    gc.collect()
    assert only_call(spans).attributes["costline.usage.estimated"] is True


def test_stream_close_ends_span(spans: CapturedSpans, openai_client: openai.OpenAI) -> None:
    stream = chat(openai_client, stream=True)
    next(stream)
    stream.close()

    assert stream.response.is_closed
    assert only_call(spans).end_time is not None


def test_async_stream_iteration_and_early_break(
    spans: CapturedSpans, async_openai_client: openai.AsyncOpenAI, server: FakeLLMServer
) -> None:
    async def main() -> tuple[list[str], bool]:
        stream = await async_openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        texts = [c.choices[0].delta.content or "" async for c in stream]
        server.chunks = 40
        async with await async_openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        ) as second:
            is_stream = isinstance(second, openai.AsyncStream)
            async for _chunk in second:
                break
        return texts, is_stream

    texts, is_stream = asyncio.run(main())

    assert "".join(texts) == "".join(CHAT_TEXT) and is_stream
    full, broken = spans.llm_calls()
    assert full.attributes["gen_ai.usage.output_tokens"] == 30
    assert "costline.usage.estimated" not in full.attributes
    assert broken.attributes["costline.usage.estimated"] is True


def test_chat_stream_helper_is_traced(spans: CapturedSpans, openai_client: openai.OpenAI) -> None:
    with openai_client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()

    assert "content.delta" in events
    assert final.choices[0].message.content == "".join(CHAT_TEXT)
    span = only_call(spans)
    assert span.attributes["gen_ai.usage.input_tokens"] == 120
    assert span.attributes["gen_ai.request.stream"] is True


def test_chat_parse_is_traced(spans: CapturedSpans, openai_client: openai.OpenAI) -> None:
    class Greeting(BaseModel):
        text: str

    completion = openai_client.chat.completions.parse(
        model="gpt-4o-mini", messages=MESSAGES, response_format=Greeting
    )

    assert completion.choices[0].message.parsed == Greeting(text="hello")
    assert only_call(spans).attributes["gen_ai.usage.input_tokens"] == 120


def test_responses_api_plain_and_streaming(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    response = openai_client.responses.create(model="gpt-5-mini", input="hi")
    with openai_client.responses.stream(model="gpt-5-mini", input="hi") as stream:
        streamed = stream.get_final_response()

    assert response.output_text == streamed.output_text == "Hi there"
    plain, streaming = spans.llm_calls()
    for span in (plain, streaming):
        assert span.name == "chat gpt-5-mini"
        assert span.attributes["gen_ai.response.model"] == RESPONSES_MODEL
        assert span.attributes["gen_ai.response.id"] == "resp_123"
        assert span.attributes["gen_ai.usage.input_tokens"] == 200
        assert span.attributes["gen_ai.usage.output_tokens"] == 80
        assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 150
        assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] == 10
        assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == 64
    assert streaming.attributes["gen_ai.request.stream"] is True


def test_embeddings_are_traced(spans: CapturedSpans, openai_client: openai.OpenAI) -> None:
    result = openai_client.embeddings.create(model="text-embedding-3-small", input="hello")

    assert len(result.data[0].embedding) == 3
    span = only_call(spans)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == 8


def test_raw_response_is_traced_from_its_body(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )

    assert raw.parse().usage is not None
    span = only_call(spans)
    assert span.attributes["gen_ai.usage.input_tokens"] == 120
    assert span.attributes["gen_ai.response.id"] == "chatcmpl-123"


def _raise_point(exc: BaseException) -> tuple[str, str]:
    innermost = traceback.extract_tb(exc.__traceback__)[-1]
    return innermost.filename, innermost.name


@pytest.mark.parametrize(
    ("status", "error_class"), [(429, openai.RateLimitError), (500, openai.InternalServerError)]
)
def test_provider_error_reaches_app_unchanged_and_is_recorded(
    spans: CapturedSpans,
    openai_client: openai.OpenAI,
    server: FakeLLMServer,
    status: int,
    error_class: type[Exception],
) -> None:
    server.fail_with.append((status, "slow down"))
    with pytest.raises(error_class) as instrumented:
        chat(openai_client)
    costline.uninstrument()
    server.fail_with.append((status, "slow down"))
    with pytest.raises(error_class) as plain:
        chat(openai_client)

    assert type(instrumented.value) is type(plain.value)
    assert str(instrumented.value) == str(plain.value)
    assert instrumented.value.status_code == status  # type: ignore[attr-defined]
    assert _raise_point(instrumented.value) == _raise_point(plain.value)
    span = only_call(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == str(status)
    assert span.attributes["http.response.status_code"] == status
    assert "gen_ai.usage.input_tokens" not in span.attributes  # a refused call is not billed


def test_connection_error_is_recorded_by_class_name(spans: CapturedSpans) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        chat(client)

    assert only_call(spans).attributes["error.type"] == "APIConnectionError"


def test_stream_error_midway_is_recorded_and_raised(
    spans: CapturedSpans, openai_client: openai.OpenAI, server: FakeLLMServer
) -> None:
    server.stream_error_after = 2
    seen = []
    with pytest.raises(openai.APIError, match="server exploded"):
        for chunk in chat(openai_client, stream=True):
            seen.append(chunk)

    assert len(seen) == 2
    span = only_call(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "APIError"
    assert span.attributes["costline.usage.estimated"] is True  # partly generated


def test_instrument_twice_does_not_double_wrap(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    costline.instrument()
    costline.instrument(openai=True, anthropic=False)

    chat(openai_client)

    assert len(spans.llm_calls()) == 1
    wrapper = openai.resources.chat.completions.Completions.__dict__["create"]
    assert not hasattr(wrapper.__costline_original__, "__costline_original__")


def test_uninstrument_restores_the_original_methods(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    completions = openai.resources.chat.completions.Completions
    wrapped = completions.__dict__["create"]
    assert is_instrumented(completions, "create")

    costline.uninstrument()
    chat(openai_client)

    assert completions.__dict__["create"] is wrapped.__costline_original__
    assert not is_instrumented(openai.resources.embeddings.AsyncEmbeddings, "create")
    assert spans.llm_calls() == []


def test_raw_stream_is_left_as_the_caller_asked(
    spans: CapturedSpans, openai_client: openai.OpenAI, server: FakeLLMServer
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = list(raw.parse())

    assert "stream_options" not in server.last("/chat/completions").json()
    assert all(chunk.choices for chunk in chunks)
    assert only_call(spans).attributes["costline.usage.unavailable"] is True
