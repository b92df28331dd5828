"""What costline adds to one instrumented OpenAI chat call, against alternatives.

Every variant calls the real openai client over an in-process httpx.MockTransport that
returns a canned chat completion, so no network is measured; spans go through a
BatchSpanProcessor into an exporter that drops them (and counts them, as a check).

  baseline     the call, uninstrumented
  bare_span    the call inside one hand-written OpenTelemetry span with the same attributes
  costline     costline.instrument(), with costline's span processor
  openllmetry  opentelemetry-instrumentation-openai (OpenLLMetry), default settings

Each variant lives in its own worker process, set up once: instrumentations cannot be
toggled in one process (OpenLLMetry's uninstrument() leaves wrappers behind, and each
instrument/uninstrument cycle slows every later call). The machine is shared and its
speed drifts by tens of percent over seconds, more than the overheads measured, so the
workers take turns: each cycle runs one block of calls per worker, in rotating order, and
a variant's overhead in a cycle is its block's median µs/call minus the baseline block's.
The figures are medians over cycles. Ends with:

  sdk_overhead_vs_bare_span=<costline overhead / bare span overhead>     (target <= 1.5)
  sdk_overhead_vs_openllmetry=<costline overhead / OpenLLMetry overhead> (target <= 0.5)

Run: .venv/bin/python bench/sdk_overhead.py [--cycles 400] [--calls 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 14,
            "completion_tokens": 2,
            "total_tokens": 16,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    }
).encode()
VARIANTS = ("baseline", "bare_span", "costline", "openllmetry")


# -- worker side ---------------------------------------------------------------------------


def make_client() -> Any:
    import httpx
    import openai

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=COMPLETION, headers={"content-type": "application/json"})

    return openai.OpenAI(
        api_key="sk-bench",
        base_url="https://api.openai.com/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def setup(name: str) -> tuple[Callable[[], Any], Callable[[], int], str]:
    """(one call, spans exported so far, note) for the variant."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class CountingDropExporter(SpanExporter):
        def __init__(self) -> None:
            self.count = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.count += len(spans)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    client = make_client()
    exporter = CountingDropExporter()
    provider = TracerProvider()

    def plain_call() -> Any:
        return client.chat.completions.create(model=MODEL, messages=MESSAGES)

    def exported() -> int:
        provider.force_flush()
        return exporter.count

    if name == "baseline":
        return plain_call, lambda: 0, ""
    if name == "costline":
        import costline
        from costline._internal import runtime

        runtime.configure(tracer_provider=provider, span_exporter=exporter)
        costline.instrument(openai=True, anthropic=False)
        return plain_call, exported, ""

    provider.add_span_processor(BatchSpanProcessor(exporter))
    if name == "bare_span":
        return bare_span_call(client, provider.get_tracer("bench.bare")), exported, ""
    if name == "openllmetry":
        from importlib.metadata import version

        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return (
            plain_call,
            exported,
            "opentelemetry-instrumentation-openai "
            + version("opentelemetry-instrumentation-openai"),
        )
    raise ValueError(name)


def bare_span_call(client: Any, tracer: Any) -> Callable[[], Any]:
    from opentelemetry.trace import SpanKind

    def call() -> Any:
        with tracer.start_as_current_span(
            f"chat {MODEL}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.stream": False,
                "gen_ai.request.model": MODEL,
                "server.address": "api.openai.com",
                "server.port": 443,
            },
        ) as span:
            completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
            usage = completion.usage
            prompt_details = usage.prompt_tokens_details
            completion_details = usage.completion_tokens_details
            span.set_attributes(
                {
                    "gen_ai.response.model": completion.model,
                    "gen_ai.response.id": completion.id,
                    "gen_ai.response.finish_reasons": tuple(
                        c.finish_reason for c in completion.choices
                    ),
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                    "gen_ai.usage.cache_read.input_tokens": prompt_details.cached_tokens or 0,
                    "gen_ai.usage.reasoning.output_tokens": completion_details.reasoning_tokens
                    or 0,
                }
            )
            return completion

    return call


def worker(name: str) -> None:
    try:
        call, exported, note = setup(name)
        for _ in range(50):
            call()
        spans = exported()
        if name != "baseline" and spans == 0:
            raise RuntimeError("produced no span on this openai client")
    except Exception as exc:
        print(f"skip {name}: {exc!r}", flush=True)
        return
    print(f"ready {spans / 50:.2f} {note}", flush=True)
    # CPU time of this thread: the request path's own work, without the time the shared
    # machine's scheduler keeps it waiting (the export thread is not on the request path).
    clock = time.thread_time_ns
    for line in sys.stdin:
        calls = int(line)
        for _ in range(3):
            call()
        timings = []
        for _ in range(calls):
            started = clock()
            call()
            timings.append(clock() - started)
        print(statistics.median(timings) / 1000.0, flush=True)


# -- coordinator side ----------------------------------------------------------------------


class Worker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.block_medians: list[float] = []

    def handshake(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def run_block(self, calls: int) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{calls}\n")
        self.process.stdin.flush()
        self.block_medians.append(float(self.process.stdout.readline()))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=400)
    parser.add_argument("--calls", type=int, default=10, help="timed calls per block")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return

    import openai

    started = [Worker(name) for name in VARIANTS]
    workers = []
    print(f"openai {openai.__version__}, Python {sys.version.split()[0]}")
    for w in started:
        hello = w.handshake()
        if hello.startswith("ready"):
            _, spans_per_call, *note = hello.split(" ", 2)
            print(f"  {w.name:<12} ready, {spans_per_call} spans/call {' '.join(note)}")
            workers.append(w)
        else:
            print(f"  {w.name:<12} {hello or 'failed to start'}; skipped")
            w.close()
    names = [w.name for w in workers]
    if not {"baseline", "bare_span", "costline"} <= set(names):
        raise SystemExit("baseline, bare_span and costline are required")
    print(f"{args.cycles} cycles x {args.calls} calls per variant\n")

    for cycle in range(args.cycles):
        shift = cycle % len(workers)
        for w in workers[shift:] + workers[:shift]:
            w.run_block(args.calls)
    for w in workers:
        w.close()

    baseline = workers[names.index("baseline")]
    print(f"{'variant':<12} {'median µs/call':>15} {'overhead µs':>12} {'IQR of overhead':>18}")
    overhead: dict[str, float] = {}
    for w in workers:
        deltas = [v - b for v, b in zip(w.block_medians, baseline.block_medians, strict=True)]
        overhead[w.name] = statistics.median(deltas)
        q1, _, q3 = statistics.quantiles(deltas, n=4)
        print(
            f"{w.name:<12} {statistics.median(w.block_medians):>15.1f} "
            f"{overhead[w.name]:>12.1f} {f'{q1:.1f}..{q3:.1f}':>18}"
        )
    print()
    print(f"sdk_overhead_vs_bare_span={overhead['costline'] / overhead['bare_span']:.2f}")
    if "openllmetry" in overhead:
        print(f"sdk_overhead_vs_openllmetry={overhead['costline'] / overhead['openllmetry']:.2f}")
    else:
        print("sdk_overhead_vs_openllmetry=skipped")


if __name__ == "__main__":
    main()
