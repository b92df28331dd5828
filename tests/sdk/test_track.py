"""costline.track: requests, attribution, nesting, generators, baggage across services."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import costline
import openai
import pytest
from costline._internal.runtime import RUNTIME
from costline.testing import CapturedSpans
from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.trace import StatusCode

MESSAGES = [{"role": "user", "content": "hi"}]


def chat(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def attribution(span: Any) -> dict[str, Any]:
    return {k: v for k, v in span.attributes.items() if k.startswith("costline.")}


def test_track_decorator_attributes_llm_spans(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    @costline.track(feature="support.answer", customer="acme", user="u-1", tags={"plan": "pro"})
    def answer() -> str:
        chat(openai_client)
        chat(openai_client)
        return "done"

    assert answer() == "done"
    assert answer.__name__ == "answer"

    first, second = spans.llm_calls()
    request_id = first.attributes["costline.request.id"]
    assert attribution(first) == {
        "costline.request.id": request_id,
        "costline.feature": "support.answer",
        "costline.customer": "acme",
        "costline.user": "u-1",
        "costline.tag.plan": "pro",
    }
    assert second.attributes["costline.request.id"] == request_id
    (root,) = spans.named("costline.track support.answer")
    assert root.attributes["costline.request.root"] is True
    assert root.attributes["costline.request.id"] == request_id
    assert first.parent is not None and first.parent.span_id == root.context.span_id


def test_each_decorated_call_is_a_new_request(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    @costline.track(feature="f")
    def answer() -> None:
        chat(openai_client)

    answer()
    answer()

    ids = {s.attributes["costline.request.id"] for s in spans.llm_calls()}
    assert len(ids) == 2


def test_calls_outside_track_carry_no_attribution(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    with costline.track(feature="inside"):
        pass
    chat(openai_client)

    assert attribution(spans.llm_calls()[0]) == {}


def test_nested_track_refines_attribution_within_the_same_request(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    with costline.track(feature="search", customer="acme", tags={"a": 1, "b": 2}) as outer:
        outer_id = outer.request_id
        chat(openai_client)
        with costline.track(feature="search.rerank", tags={"b": 3}):
            chat(openai_client)
        with costline.track(feature="side.job", new_request=True) as side:
            side_id = side.request_id
            chat(openai_client)
        chat(openai_client)
    assert outer.request_id is None  # outside its block

    search, rerank, side_call, search_again = spans.llm_calls()
    assert search.attributes["costline.feature"] == "search"
    assert rerank.attributes["costline.feature"] == "search.rerank"  # inner wins
    assert rerank.attributes["costline.customer"] == "acme"  # outer kept
    assert rerank.attributes["costline.tag.a"] == "1"
    assert rerank.attributes["costline.tag.b"] == "3"
    assert rerank.attributes["costline.request.id"] == outer_id  # same request
    assert side_call.attributes["costline.request.id"] == side_id != outer_id
    assert search_again.attributes["costline.feature"] == "search"
    roots = [s for s in spans if s.attributes.get("costline.request.root")]
    assert len(roots) == 2  # the outer request and the new_request=True one


def test_track_async_function_and_async_with(
    spans: CapturedSpans, async_openai_client: openai.AsyncOpenAI
) -> None:
    @costline.track(feature="async.fn")
    async def answer() -> None:
        await async_openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    async def main() -> None:
        await answer()
        async with costline.track(feature="async.with"):
            await async_openai_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )

    asyncio.run(main())

    assert [s.attributes["costline.feature"] for s in spans.llm_calls()] == [
        "async.fn",
        "async.with",
    ]


def test_track_sync_generator_attributes_each_step_without_leaking(
    spans: CapturedSpans, openai_client: openai.OpenAI
) -> None:
    @costline.track(feature="gen")
    def tokens() -> Iterator[str]:
        for word in ("a", "b"):
            chat(openai_client)
            yield word

    seen_between = []
    for _word in tokens():
        seen_between.append(baggage.get_baggage("costline.feature"))

    assert seen_between == [None, None]  # the caller's context is untouched between items
    calls = spans.llm_calls()
    assert [c.attributes["costline.feature"] for c in calls] == ["gen", "gen"]
    assert len({c.attributes["costline.request.id"] for c in calls}) == 1
    assert spans.named("costline.track gen")[0].end_time is not None


def test_track_generator_send_throw_and_close(spans: CapturedSpans) -> None:
    @costline.track(feature="echo")
    def echo() -> Iterator[Any]:
        received = None
        while True:
            try:
                received = yield received
            except ValueError:
                received = "recovered"

    gen = echo()
    assert next(gen) is None
    assert gen.send(5) == 5
    assert gen.throw(ValueError()) == "recovered"
    gen.close()
    (root,) = spans.named("costline.track echo")
    assert root.status.status_code is StatusCode.UNSET


def test_track_async_generator(
    spans: CapturedSpans, async_openai_client: openai.AsyncOpenAI
) -> None:
    @costline.track(feature="agen")
    async def tokens() -> AsyncIterator[str]:
        for word in ("a", "b"):
            await async_openai_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
            yield word

    async def main() -> list[Any]:
        between = []
        async for _word in tokens():
            between.append(baggage.get_baggage("costline.feature"))
        return between

    assert asyncio.run(main()) == [None, None]
    assert [c.attributes["costline.feature"] for c in spans.llm_calls()] == ["agen", "agen"]


class Boom(Exception):
    pass


def test_application_exception_in_tracked_code_reaches_it_unchanged(
    spans: CapturedSpans,
) -> None:
    error = Boom("no")

    @costline.track(feature="f")
    def fails() -> None:
        raise error

    with pytest.raises(Boom) as raised:
        fails()
    assert raised.value is error
    (root,) = spans.named("costline.track f")
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["error.type"] == "Boom"


def test_foreign_genai_span_gets_attribution(spans: CapturedSpans) -> None:
    # Spans of any other GenAI instrumentation started under track carry attribution too.
    other = RUNTIME.provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with costline.track(feature="f", customer="c"):
        other.start_span("chat gpt-4o", attributes={"gen_ai.system": "openai"}).end()
    (foreign,) = spans.named("chat gpt-4o")
    assert foreign.attributes["costline.feature"] == "f"
    assert foreign.attributes["costline.customer"] == "c"


def test_non_genai_spans_of_the_application_are_not_exported(spans: CapturedSpans) -> None:
    app = RUNTIME.provider.get_tracer("app")
    with costline.track(feature="f"):
        app.start_span("SELECT users").end()
    assert spans.named("SELECT users") == []


def test_baggage_carries_attribution(spans: CapturedSpans) -> None:
    carrier: dict[str, str] = {}
    with costline.track(feature="checkout", customer="acme corp", user="u 7"):
        propagate.inject(carrier)  # what an instrumented HTTP client sends downstream
        request_id = baggage.get_baggage("costline.request.id")
    assert "costline.customer=acme" in carrier["baggage"]

    # Another service: extracts the incoming context, then makes a GenAI call.
    token = otel_context.attach(propagate.extract(carrier))
    try:
        costline.record(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=2)
    finally:
        otel_context.detach(token)

    (downstream,) = spans.llm_calls()
    assert downstream.attributes["costline.request.id"] == request_id
    assert downstream.attributes["costline.feature"] == "checkout"
    assert downstream.attributes["costline.customer"] == "acme corp"
    assert downstream.attributes["costline.user"] == "u 7"


def test_one_track_object_shared_across_threads(spans: CapturedSpans) -> None:
    shared = costline.track(feature="shared")
    barrier = threading.Barrier(2)
    ids: list[Any] = []

    def work() -> None:
        with shared:
            barrier.wait()
            ids.append(shared.request_id)
            costline.record(provider="openai", model="m", input_tokens=1, output_tokens=1)
            barrier.wait()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(set(ids)) == 2
    assert {s.attributes["costline.request.id"] for s in spans.llm_calls()} == set(ids)
    assert all(s.end_time for s in spans.named("costline.track shared"))


def test_track_without_arguments_as_a_bare_decorator(spans: CapturedSpans) -> None:
    @costline.track
    def job() -> int:
        costline.record(provider="openai", model="m", input_tokens=1, output_tokens=1)
        return 7

    assert job() == 7
    (call,) = spans.llm_calls()
    assert "costline.request.id" in call.attributes
    assert "costline.feature" not in call.attributes
