"""Capture costline's spans in memory in your own tests.

    with costline.testing.capture_spans() as spans:
        answer("hi")
    assert spans.llm_calls()[0].attributes["costline.feature"] == "support.answer"

With pytest, the `costline_spans` fixture does the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, overload

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costline._internal import runtime
from costline._internal import semconv as sc

__all__ = ["CapturedSpans", "capture_spans"]


class CapturedSpans(Sequence[ReadableSpan]):
    """The finished spans costline would have exported, oldest first."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter

    @overload
    def __getitem__(self, index: int) -> ReadableSpan: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ReadableSpan]: ...

    def __getitem__(self, index: Any) -> Any:
        return self._exporter.get_finished_spans()[index]

    def __len__(self) -> int:
        return len(self._exporter.get_finished_spans())

    def llm_calls(self) -> list[ReadableSpan]:
        """The spans that stand for one provider call each."""
        return [
            span
            for span in self._exporter.get_finished_spans()
            if span.attributes and sc.GEN_AI_OPERATION_NAME in span.attributes
        ]

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self._exporter.get_finished_spans() if span.name == name]

    def clear(self) -> None:
        self._exporter.clear()


@contextmanager
def capture_spans() -> Iterator[CapturedSpans]:
    """Route costline to an in-memory exporter inside the block, then restore it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    with runtime.override(provider, SimpleSpanProcessor(exporter)):
        yield CapturedSpans(exporter)
