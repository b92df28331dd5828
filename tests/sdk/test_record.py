from __future__ import annotations

import time

import costline
import pytest
from costline.testing import CapturedSpans
from opentelemetry.trace import SpanKind


def test_record_emits_one_span_with_usage_and_cost(spans: CapturedSpans) -> None:
    before = time.time_ns()
    costline.record(
        provider="mistral_ai",
        model="mistral-large-2411",
        input_tokens=1000,
        output_tokens=200,
        cache_read_tokens=600,
        cache_write_tokens=100,
        reasoning_tokens=50,
        cost_usd=0.0123,
        duration_s=2.5,
        response_id="r-1",
    )

    (span,) = spans.llm_calls()
    assert span.name == "chat mistral-large-2411"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "mistral_ai",
        "gen_ai.request.model": "mistral-large-2411",
        "gen_ai.response.model": "mistral-large-2411",
        "gen_ai.response.id": "r-1",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        "gen_ai.usage.cache_read.input_tokens": 600,
        "gen_ai.usage.cache_creation.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 50,
        "gen_ai.usage.cost": 0.0123,
    }
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time == 2_500_000_000
    assert span.end_time >= before


def test_record_adds_cache_tokens_when_input_excludes_them(spans: CapturedSpans) -> None:
    # Anthropic-style counts: 10 uncached + 1000 cache reads + 200 cache writes.
    costline.record(
        provider="anthropic",
        model="claude-sonnet-4-6",
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=1000,
        cache_write_tokens=200,
    )
    assert spans.llm_calls()[0].attributes["gen_ai.usage.input_tokens"] == 1210


def test_record_takes_attribution_from_track_and_keywords(spans: CapturedSpans) -> None:
    with costline.track(feature="batch", customer="acme"):
        costline.record(
            provider="openai",
            model="gpt-4o",
            input_tokens=1,
            output_tokens=1,
            feature="batch.summarize",
            tags={"job": 7},
            operation="text_completion",
        )
    (span,) = spans.llm_calls()
    assert span.name == "text_completion gpt-4o"
    assert span.attributes["costline.feature"] == "batch.summarize"  # the keyword wins
    assert span.attributes["costline.customer"] == "acme"  # from the context
    assert span.attributes["costline.tag.job"] == "7"


def test_record_with_bad_input_never_raises_outside_strict_mode(
    spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COSTLINE_SDK_STRICT")
    costline.record(provider="openai", model="m", input_tokens="many", output_tokens=1)  # type: ignore[arg-type]
    assert spans.llm_calls() == []

    monkeypatch.setenv("COSTLINE_SDK_STRICT", "1")
    with pytest.raises(ValueError):
        costline.record(provider="openai", model="m", input_tokens="many", output_tokens=1)  # type: ignore[arg-type]
