from __future__ import annotations

import costline
from costline._internal.runtime import RUNTIME
from costline.testing import CapturedSpans


def test_capture_spans_routes_costline_to_memory_and_restores(isolated_runtime: None) -> None:
    tracer_before = RUNTIME.tracer
    with costline.testing.capture_spans() as spans:
        assert RUNTIME.tracer is not tracer_before
        costline.record(provider="openai", model="gpt-4o", input_tokens=3, output_tokens=1)
        assert len(spans) == 1
        assert spans[0].attributes["gen_ai.usage.input_tokens"] == 3
        spans.clear()
        assert len(spans) == 0
    assert RUNTIME.tracer is tracer_before


def test_costline_spans_fixture_from_the_pytest_plugin(costline_spans: CapturedSpans) -> None:
    with costline.track(feature="f"):
        costline.record(provider="openai", model="gpt-4o", input_tokens=1, output_tokens=1)
    (call,) = costline_spans.llm_calls()
    assert call.attributes["costline.feature"] == "f"
