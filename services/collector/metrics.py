"""Prometheus metrics of one collector process (its own registry, so tests can build many)."""

from __future__ import annotations

from collections import Counter as TallyCounter

from prometheus_client import CollectorRegistry, Counter, Histogram

MAX_MODEL_LABELS = 200  # unknown-model names come from clients: bound the label cardinality


class CollectorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.spans_received = Counter(
            "costline_collector_spans_received", "Spans received in export requests", registry=r
        )
        self.spans_stored = Counter(
            "costline_collector_spans_stored", "LLM spans committed to llm_calls", registry=r
        )
        self.spans_rejected = Counter(
            "costline_collector_spans_rejected", "Spans rejected, by reason", ["reason"], registry=r
        )
        self.spans_duplicate = Counter(
            "costline_collector_spans_duplicate", "Spans already stored (resent)", registry=r
        )
        self.spans_unpriced = Counter(
            "costline_collector_spans_unpriced",
            "LLM spans stored without a price, by model",
            ["model"],
            registry=r,
        )
        self.spans_non_llm = Counter(
            "costline_collector_spans_non_llm_dropped", "Non-LLM spans dropped", registry=r
        )
        self.requests = Counter(
            "costline_collector_requests", "Export requests by HTTP status", ["status"], registry=r
        )
        self.request_seconds = Histogram(
            "costline_collector_request_seconds",
            "Export request latency",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_spans = Histogram(
            "costline_collector_batch_spans",
            "LLM spans written per export request",
            registry=r,
            buckets=(1, 8, 32, 64, 128, 256, 512, 1024, 4096, 16384),
        )
        self.db_errors = Counter(
            "costline_collector_database_errors", "Database errors while ingesting", registry=r
        )
        self._model_labels: set[str] = set()

    def unpriced(self, models: TallyCounter[str]) -> None:
        for model, n in models.items():
            if model not in self._model_labels and len(self._model_labels) >= MAX_MODEL_LABELS:
                model = "other"
            self._model_labels.add(model)
            self.spans_unpriced.labels(model=model).inc(n)

    def rejected(self, reasons: list[tuple[str, str]]) -> None:
        for reason, _ in reasons:
            self.spans_rejected.labels(reason=reason).inc()
