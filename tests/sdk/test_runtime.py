"""configure(), export, flush and shutdown: where spans go and what that costs the app."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import costline
import openai
import pytest
from costline._internal import processor as processor_module
from costline._internal import runtime
from costline._internal.runtime import RUNTIME
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.sdk.fake_llm import FakeLLMServer

MESSAGES = [{"role": "user", "content": "hi"}]


def exported_spans(server: FakeLLMServer) -> list[tuple[dict[str, Any], Any]]:
    """(resource attributes, span) for every span the fake collector received."""
    out = []
    for request in server.requests:
        if request.path != "/v1/traces":
            continue
        export = ExportTraceServiceRequest.FromString(request.body)
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                out.extend((resource, span) for span in scope_spans.spans)
    return out


def attrs(span: Any) -> dict[str, Any]:
    values = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, kind)
    return values


def run_python(code: str, **env: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COSTLINE_SDK_STRICT": "1", **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_configure_exports_genai_spans_to_the_endpoint_with_bearer_key(
    isolated_runtime: None, server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    provider = TracerProvider()  # built elsewhere, with OpenTelemetry's default resource
    costline.configure(
        endpoint=server.url,
        api_key="ingest-123",
        service_name="support-bot",
        environment="staging",
        tracer_provider=provider,
    )
    costline.instrument()

    with costline.track(feature="f"):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        provider.get_tracer("app").start_span("render template").end()
    assert costline.flush(timeout_s=5) is True

    (post,) = [r for r in server.requests if r.path == "/v1/traces"]
    assert post.headers["authorization"] == "Bearer ingest-123"
    names = sorted(span.name for _, span in exported_spans(server))
    assert names == ["chat gpt-4o-mini", "costline.track f"]  # not the app's own span
    for resource, _ in exported_spans(server):
        assert resource["service.name"] == "support-bot"
        assert resource["deployment.environment.name"] == "staging"
    call = next(span for _, span in exported_spans(server) if span.name.startswith("chat"))
    assert attrs(call)["gen_ai.usage.input_tokens"] == 120
    assert attrs(call)["costline.feature"] == "f"
    assert trace.get_tracer_provider() is not provider  # an explicit provider is not made global


def test_existing_tracer_provider_keeps_its_exporters(server: FakeLLMServer) -> None:
    out = run_python(
        """
        import json, os, openai
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        app_exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(app_exporter))
        trace.set_tracer_provider(provider)  # the application's own tracing, set up first

        import costline
        costline.configure(endpoint=os.environ["FAKE_URL"], api_key="k")
        costline.instrument()
        client = openai.OpenAI(api_key="x", base_url=os.environ["FAKE_URL"] + "/v1", max_retries=0)
        with trace.get_tracer("app").start_as_current_span("GET /answer"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        print(json.dumps({
            "flushed": costline.flush(5),
            "same_global_provider": trace.get_tracer_provider() is provider,
            "app_saw": sorted(s.name for s in app_exporter.get_finished_spans()),
        }))
        """,
        FAKE_URL=server.url,
    )

    assert out == {
        "flushed": True,
        "same_global_provider": True,
        "app_saw": ["GET /answer", "chat gpt-4o-mini"],  # the app's exporter still gets all
    }
    assert [span.name for _, span in exported_spans(server)] == ["chat gpt-4o-mini"]


def test_configure_sets_a_global_provider_from_the_environment(server: FakeLLMServer) -> None:
    out = run_python(
        """
        import json
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        import costline
        costline.configure()
        costline.record(provider="openai", model="gpt-4o", input_tokens=5, output_tokens=1)
        print(json.dumps({
            "sdk_provider": isinstance(trace.get_tracer_provider(), TracerProvider),
            "flushed": costline.flush(5),
        }))
        """,
        COSTLINE_ENDPOINT=server.url,
        COSTLINE_API_KEY="env-key",
        COSTLINE_ENVIRONMENT="staging",
        OTEL_SERVICE_NAME="checkout-api",
    )

    assert out == {"sdk_provider": True, "flushed": True}
    assert server.last("/v1/traces").headers["authorization"] == "Bearer env-key"
    ((resource, span),) = exported_spans(server)
    assert resource["service.name"] == "checkout-api"
    assert resource["deployment.environment.name"] == "staging"
    assert attrs(span)["gen_ai.usage.input_tokens"] == 5


def test_import_costline_without_optional_packages() -> None:
    out = run_python(
        """
        import json, sys

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {"openai", "anthropic", "tiktoken"}:
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, Blocker())
        import costline
        from costline._internal import estimate

        costline.instrument()
        with costline.testing.capture_spans() as spans:
            with costline.track(feature="f"):
                costline.record(provider="openai", model="m", input_tokens=2, output_tokens=1)
            calls = len(spans.llm_calls())
        loaded = estimate.wait_loaded("gpt-4o", 5)
        optional = {"openai", "anthropic", "tiktoken"}
        print(json.dumps({
            "calls": calls,
            "tiktoken_loaded": loaded,
            "estimate": estimate.count(["hello world!"], "gpt-4o"),
            "imported": sorted(m for m in sys.modules if m.partition(".")[0] in optional),
        }))
        """
    )
    assert out == {
        "calls": 1,
        "tiktoken_loaded": False,
        "estimate": [3, "chars_div_4"],
        "imported": [],
    }


def test_instrumented_calls_work_when_costline_is_not_configured(
    isolated_runtime: None, openai_client: openai.OpenAI
) -> None:
    RUNTIME.tracer = trace.NoOpTracerProvider().get_tracer("costline")  # nothing configured
    costline.instrument()
    with costline.track(feature="f"):
        completion = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        chunks = list(
            openai_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
        )
    assert completion.id == "chatcmpl-123"
    assert len(chunks) == 9


def test_enabled_false_passes_everything_through(
    isolated_runtime: None, server: FakeLLMServer, openai_client: openai.OpenAI
) -> None:
    with costline.testing.capture_spans() as spans:
        costline.instrument()
        costline.configure(enabled=False)
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        with costline.track(feature="f"):
            costline.record(provider="openai", model="m", input_tokens=1, output_tokens=1)
        assert len(spans) == 0
    assert "stream_options" not in server.last("/chat/completions").json()


class BlockingExporter(SpanExporter):
    """A collector that never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.release.set()


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A TCP port that accepts connections and never replies."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_collector_down_does_not_block_calls(
    isolated_runtime: None,
    openai_client: openai.OpenAI,
    blackhole: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(processor_module, "SHUTDOWN_TIMEOUT_S", 0.5)
    runtime.configure(tracer_provider=TracerProvider(), endpoint=blackhole, max_queue_size=8)
    costline.instrument()

    slowest = 0.0
    with caplog.at_level(logging.WARNING, logger="costline"):
        for _ in range(40):
            started = time.perf_counter()
            openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            slowest = max(slowest, time.perf_counter() - started)

        assert slowest < 0.5  # the exporter hangs on the black hole; calls do not wait for it
        assert RUNTIME.processor is not None and RUNTIME.processor.dropped_spans >= 40 - 16
        drop_warnings = [r for r in caplog.records if "queue full" in r.getMessage()]
        assert len(drop_warnings) == 1  # counted, and said once

        started = time.perf_counter()
        assert costline.flush(timeout_s=0.3) is False
        assert time.perf_counter() - started < 1.0
        started = time.perf_counter()
        costline.shutdown()
        assert time.perf_counter() - started < 1.5


def test_exit_is_bounded_when_the_collector_hangs(blackhole: str) -> None:
    # Unbounded, the exit flush would wait for the exporter's 3 s timeout (or longer).
    out = run_python(
        """
        import json, time
        import costline
        from costline._internal import processor
        processor.SHUTDOWN_TIMEOUT_S = 0.5  # the default is 3 s; the same code path
        costline.configure()
        for _ in range(10):
            costline.record(provider="openai", model="m", input_tokens=1, output_tokens=1)
        print(json.dumps({"exiting_at": time.time()}))
        """,
        COSTLINE_ENDPOINT=blackhole,
    )
    assert time.time() - out["exiting_at"] < 2.5


def test_unreachable_collector_is_counted_and_warned_once(
    isolated_runtime: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "EXPORT_TIMEOUT_S", 0.5)  # no retry fits: fail fast
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runtime.configure(tracer_provider=TracerProvider(), endpoint=closed)

    with caplog.at_level(logging.WARNING, logger="costline"):
        for _ in range(3):
            costline.record(provider="openai", model="m", input_tokens=1, output_tokens=1)
            assert costline.flush(timeout_s=5) is False

    assert RUNTIME.processor is not None and RUNTIME.processor.exporter is not None
    assert RUNTIME.processor.exporter.failed_spans == 3
    assert len([r for r in caplog.records if "could not send" in r.getMessage()]) == 1
    costline.shutdown()


def test_configure_is_recallable_for_the_same_provider(isolated_runtime: None) -> None:
    provider = TracerProvider()
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    runtime.configure(tracer_provider=provider, span_exporter=first)
    runtime.configure(tracer_provider=provider, span_exporter=second)

    costline.record(provider="openai", model="m", input_tokens=1, output_tokens=1)
    assert costline.flush(timeout_s=5)

    assert len(first.get_finished_spans()) == 0
    assert len(second.get_finished_spans()) == 1
    processors = provider._active_span_processor._span_processors
    assert sum(isinstance(p, processor_module.CostlineSpanProcessor) for p in processors) == 1
    costline.shutdown()
