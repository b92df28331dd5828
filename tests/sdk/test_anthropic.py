"""The real anthropic client against a real local HTTP server, instrumented by costline."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import anthropic
import costline
import pytest
from costline._internal.runtime import RUNTIME
from costline.testing import CapturedSpans
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.sdk.fake_llm import CLAUDE_MODEL, CLAUDE_TEXT, FakeLLMServer

MODEL = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "Hello Claude"}]


def only_call(spans: CapturedSpans) -> Any:
    calls = spans.llm_calls()
    assert len(calls) == 1, [s.name for s in calls]
    return calls[0]


def assert_claude_usage(span: Any) -> None:
    # Anthropic reports input_tokens=10 excluding 1000 cache reads and 200 cache writes.
    assert span.attributes["gen_ai.usage.input_tokens"] == 1210
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] == 200
    assert span.attributes["gen_ai.usage.output_tokens"] == 50
    assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == 20
    assert span.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert span.attributes["gen_ai.response.model"] == CLAUDE_MODEL
    assert "costline.usage.estimated" not in span.attributes


def test_anthropic_input_tokens_include_cache(
    spans: CapturedSpans, anthropic_client: anthropic.Anthropic, server: FakeLLMServer
) -> None:
    message = anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)

    assert message.usage.input_tokens == 10  # the application still sees Anthropic's own counts
    span = only_call(spans)
    assert span.name == f"chat {MODEL}"
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert span.attributes["gen_ai.response.id"] == "msg_123"
    assert span.attributes["server.port"] == server.port
    assert_claude_usage(span)


def test_anthropic_stream_create_is_traced(
    spans: CapturedSpans, anthropic_client: anthropic.Anthropic
) -> None:
    stream = anthropic_client.messages.create(
        model=MODEL, max_tokens=64, messages=MESSAGES, stream=True
    )
    assert isinstance(stream, anthropic.Stream)
    texts = [e.delta.text for e in stream if e.type == "content_block_delta"]

    assert texts == CLAUDE_TEXT
    span = only_call(spans)
    assert span.attributes["gen_ai.request.stream"] is True
    assert_claude_usage(span)


@pytest.mark.parametrize(
    "delta_usage",
    [
        {"input_tokens": 10, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200},
        {"input_tokens": 10, "cache_read_input_tokens": None},  # fields left out keep theirs
    ],
)
def test_anthropic_stream_with_cumulative_input_in_message_delta(
    spans: CapturedSpans,
    anthropic_client: anthropic.Anthropic,
    server: FakeLLMServer,
    delta_usage: dict[str, Any],
) -> None:
    server.claude_delta_usage = delta_usage
    list(
        anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    )

    assert_claude_usage(only_call(spans))


def test_anthropic_messages_stream_helper_is_traced(
    spans: CapturedSpans, anthropic_client: anthropic.Anthropic
) -> None:
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as s:
        text = s.get_final_text()

    assert text == "".join(CLAUDE_TEXT)
    span = only_call(spans)
    assert span.attributes["gen_ai.request.stream"] is True
    assert_claude_usage(span)


def test_anthropic_stream_helper_early_exit_estimates_output(
    spans: CapturedSpans, anthropic_client: anthropic.Anthropic
) -> None:
    with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as s:
        for event in s:
            if event.type == "text":
                break

    span = only_call(spans)
    assert span.attributes["costline.usage.estimated"] is True
    assert span.attributes["gen_ai.usage.input_tokens"] == 1210  # known from message_start
    assert span.attributes["gen_ai.usage.output_tokens"] >= 1


def test_async_anthropic_create_and_stream_helper(
    spans: CapturedSpans, async_anthropic_client: anthropic.AsyncAnthropic
) -> None:
    async def main() -> str:
        await async_anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        stream = await async_anthropic_client.messages.create(
            model=MODEL, max_tokens=64, messages=MESSAGES, stream=True
        )
        async for _event in stream:
            pass
        async with async_anthropic_client.messages.stream(
            model=MODEL, max_tokens=64, messages=MESSAGES
        ) as s:
            return await s.get_final_text()

    assert asyncio.run(main()) == "".join(CLAUDE_TEXT)
    calls = spans.llm_calls()
    assert [c.attributes["gen_ai.request.stream"] for c in calls] == [False, True, True]
    for span in calls:
        assert_claude_usage(span)


def test_anthropic_beta_messages_are_traced(
    spans: CapturedSpans, anthropic_client: anthropic.Anthropic
) -> None:
    anthropic_client.beta.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)

    assert_claude_usage(only_call(spans))


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(429, anthropic.RateLimitError), (529, anthropic.OverloadedError)],
)
def test_anthropic_error_reaches_app_unchanged_and_is_recorded(
    spans: CapturedSpans,
    anthropic_client: anthropic.Anthropic,
    server: FakeLLMServer,
    status: int,
    error_class: type[Exception],
) -> None:
    server.fail_with.append((status, "try later"))
    with pytest.raises(error_class) as instrumented:
        anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    costline.uninstrument()
    server.fail_with.append((status, "try later"))
    with pytest.raises(error_class) as plain:
        anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)

    assert str(instrumented.value) == str(plain.value)
    span = only_call(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == str(status)


def test_anthropic_builtin_span_is_not_double_counted(
    spans: CapturedSpans, server: FakeLLMServer
) -> None:
    # anthropic>=2 traces its own calls; under costline's span that is the same call twice.
    everything = InMemorySpanExporter()  # what the application's own exporter would see
    RUNTIME.provider.add_span_processor(SimpleSpanProcessor(everything))
    client = anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url=server.url,
        max_retries=0,
        open_telemetry={"tracer_provider": RUNTIME.provider},
    )
    client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    list(stream)
    del stream
    gc.collect()

    exported = spans.llm_calls()
    assert [s.instrumentation_scope.name for s in exported] == ["costline", "costline"]
    builtin = [s for s in everything.get_finished_spans() if s.name == "anthropic.messages.create"]
    assert len(builtin) == 2  # still there for the application's own exporters ...
    for ours, theirs in zip(exported, builtin, strict=True):
        assert theirs.parent.span_id == ours.context.span_id
        assert theirs.attributes["costline.duplicate_of"] == f"{ours.context.span_id:016x}"
    assert all(s.name != "anthropic.messages.create" for s in spans)  # ... but not sent twice


def test_other_instrumentation_wrapping_costline_is_not_double_counted(
    spans: CapturedSpans, anthropic_client: anthropic.Anthropic
) -> None:
    # E.g. OpenLLMetry instrumented after costline: its span is outside costline's.
    other = RUNTIME.provider.get_tracer("opentelemetry.instrumentation.anthropic")
    with other.start_as_current_span(
        "anthropic.chat",
        kind=SpanKind.CLIENT,
        attributes={"gen_ai.system": "Anthropic", "llm.request.type": "chat"},
    ):
        anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    with other.start_as_current_span(
        "invoke_agent support", attributes={"gen_ai.operation.name": "invoke_agent"}
    ):
        anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)

    assert [s.name for s in spans] == [f"chat {MODEL}", f"chat {MODEL}", "invoke_agent support"]
