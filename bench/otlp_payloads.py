"""Realistic OTLP trace export requests, as the Python SDK and a GenAI instrumentation send them.

``build_export_request(seed=...)`` is deterministic: the same arguments give byte-identical
requests. One ResourceSpans (service, environment, telemetry.sdk.*), one ScopeSpans, and
``n_spans`` CLIENT inference spans of about ten attributes each. Spans are grouped into
user-facing requests of 1-4 calls (fan-out) that share ``costline.request.id``, a trace id
and a parent span id (the request's root span, which is not part of the batch); every
span id is unique.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

if TYPE_CHECKING:
    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

__all__ = ["DEFAULT_START_NS_RANGE", "MODELS", "build_export_request"]

# 2025-06-02T00:00:00Z for one hour.
DEFAULT_START_NS_RANGE = (1_748_822_400_000_000_000, 1_748_826_000_000_000_000)


# gen_ai.response.id prefix and finish reasons (most common first) as each provider sends them.
_PROVIDER_STYLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "openai": ("chatcmpl-", ("stop", "tool_calls", "length")),
    "anthropic": ("msg_", ("end_turn", "tool_use", "max_tokens")),
    "gcp.gemini": ("", ("STOP", "MAX_TOKENS")),
}


@dataclass(frozen=True, slots=True)
class _Model:
    provider: str  # gen_ai.provider.name
    operation: str  # gen_ai.operation.name
    request_model: str
    response_model: str  # as the provider answers: often a dated snapshot
    weight: int  # relative share of calls
    caches: bool = True  # sometimes reports gen_ai.usage.cache_read.input_tokens


# Names genai-prices knows, in the families the product's users call most.
MODELS: tuple[_Model, ...] = (
    _Model("openai", "chat", "gpt-4o", "gpt-4o-2024-08-06", 14),
    _Model("openai", "chat", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 22),
    _Model("openai", "chat", "gpt-4.1", "gpt-4.1-2025-04-14", 8),
    _Model("openai", "chat", "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", 8),
    _Model("openai", "chat", "o4-mini", "o4-mini-2025-04-16", 3),
    _Model("openai", "embeddings", "text-embedding-3-small", "text-embedding-3-small", 10, False),
    _Model("anthropic", "chat", "claude-sonnet-4-20250514", "claude-sonnet-4-20250514", 12),
    _Model("anthropic", "chat", "claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022", 7),
    _Model("anthropic", "chat", "claude-opus-4-20250514", "claude-opus-4-20250514", 2),
    _Model("gcp.gemini", "generate_content", "gemini-2.0-flash", "gemini-2.0-flash-001", 8, False),
    _Model("gcp.gemini", "generate_content", "gemini-2.5-flash", "gemini-2.5-flash", 4),
    _Model("gcp.gemini", "generate_content", "gemini-2.5-pro", "gemini-2.5-pro", 2),
)

_FEATURES = (
    "support.answer",
    "support.triage",
    "search.rerank",
    "search.query_rewrite",
    "docs.summarize",
    "docs.embed",
    "agent.plan",
    "agent.tool_call",
    "email.draft",
    "sales.enrich",
    "code.review",
    "chat.title",
)
_ALPHANUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def build_export_request(
    *,
    n_spans: int = 512,
    seed: int = 0,
    start_ns_range: tuple[int, int] = DEFAULT_START_NS_RANGE,
    service_name: str = "support-bot",
    environment: str = "production",
    n_customers: int = 40,
    max_fan_out: int = 4,
) -> ExportTraceServiceRequest:
    """A request of n_spans GenAI inference spans starting within start_ns_range."""
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.schema_url = "https://opentelemetry.io/schemas/1.28.0"
    _put(resource_spans.resource.attributes, "service.name", service_name)
    _put(resource_spans.resource.attributes, "service.version", "2.14.1")
    _put(resource_spans.resource.attributes, "deployment.environment.name", environment)
    _put(resource_spans.resource.attributes, "telemetry.sdk.language", "python")
    _put(resource_spans.resource.attributes, "telemetry.sdk.name", "opentelemetry")
    _put(resource_spans.resource.attributes, "telemetry.sdk.version", "1.38.0")
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "costline"
    scope_spans.scope.version = "0.1.0"

    customers = [f"cus_{_token(rng, 10)}" for _ in range(n_customers)]
    weights = [m.weight for m in MODELS]
    used_ids: set[bytes] = set()
    low, high = start_ns_range
    made = 0
    while made < n_spans:
        fan_out = min(rng.randint(1, max_fan_out), n_spans - made)
        request_id = f"req_{_token(rng, 20)}"
        trace_id = _unique_id(rng, 16, used_ids)
        root_span_id = _unique_id(rng, 8, used_ids)
        feature = rng.choice(_FEATURES)
        customer = rng.choice(customers)
        t = rng.randint(low, max(low, high - 1))
        for _ in range(fan_out):
            model = rng.choices(MODELS, weights)[0]
            span = scope_spans.spans.add()
            duration_ns = _fill_span(span, rng, model, start_ns=t)
            span.trace_id = trace_id
            span.span_id = _unique_id(rng, 8, used_ids)
            span.parent_span_id = root_span_id
            _put(span.attributes, "costline.feature", feature)
            _put(span.attributes, "costline.customer", customer)
            _put(span.attributes, "costline.request.id", request_id)
            # Calls of one request mostly run one after the other, sometimes in parallel.
            if rng.random() < 0.7:
                t += duration_ns + rng.randint(1_000_000, 50_000_000)
            made += 1
    return request


def _fill_span(span: Span, rng: random.Random, model: _Model, *, start_ns: int) -> int:
    span.name = f"{model.operation} {model.request_model}"
    span.kind = Span.SPAN_KIND_CLIENT
    attrs = span.attributes
    _put(attrs, "gen_ai.operation.name", model.operation)
    _put(attrs, "gen_ai.provider.name", model.provider)
    _put(attrs, "gen_ai.request.model", model.request_model)
    if model.operation == "embeddings":
        input_tokens = int(rng.lognormvariate(6.0, 1.0)) + 1
        output_tokens = 0
        duration_ns = int(rng.lognormvariate(18.5, 0.5))  # ~100 ms
    else:
        input_tokens = int(rng.lognormvariate(7.3, 1.1)) + 20
        output_tokens = int(rng.lognormvariate(5.0, 1.0)) + 1
        # Time to first token plus ~60 tokens/s, with noise.
        duration_ns = int((0.4 + output_tokens / 60) * 1e9 * rng.uniform(0.7, 1.5))
    failed = rng.random() < 0.02
    if failed:
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = "Error code: 429 - rate limit exceeded"
        _put(attrs, "error.type", "RateLimitError")
        duration_ns = int(rng.uniform(0.05, 0.4) * 1e9)
    else:
        _put(attrs, "gen_ai.response.model", model.response_model)
        id_prefix, finish_reasons = _PROVIDER_STYLE[model.provider]
        if model.operation != "embeddings":
            if id_prefix:
                _put(attrs, "gen_ai.response.id", id_prefix + _token(rng, 24))
            reason = rng.choices(finish_reasons, [8, 2, 1][: len(finish_reasons)])
            _put(attrs, "gen_ai.response.finish_reasons", tuple(reason))
        _put(attrs, "gen_ai.usage.input_tokens", input_tokens)
        if model.operation != "embeddings":
            _put(attrs, "gen_ai.usage.output_tokens", output_tokens)
        if model.caches and input_tokens > 1024 and rng.random() < 0.4:
            cached = rng.randrange(1024, input_tokens + 1, 128)
            _put(attrs, "gen_ai.usage.cache_read.input_tokens", cached)
    span.start_time_unix_nano = start_ns
    span.end_time_unix_nano = start_ns + duration_ns
    return duration_ns


def _put(
    attributes: RepeatedCompositeFieldContainer[KeyValue],
    key: str,
    value: str | bool | int | float | tuple[str, ...],
) -> None:
    kv = attributes.add()
    kv.key = key
    _set_value(kv.value, value)


def _set_value(target: AnyValue, value: str | bool | int | float | tuple[str, ...]) -> None:
    if isinstance(value, tuple):
        array: ArrayValue = target.array_value
        for item in value:
            array.values.add().string_value = item
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    else:
        target.string_value = value


def _unique_id(rng: random.Random, size: int, used: set[bytes]) -> bytes:
    while True:
        raw = rng.getrandbits(size * 8).to_bytes(size, "big")
        if raw not in used and raw.strip(b"\x00"):
            used.add(raw)
            return raw


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(_ALPHANUM, k=length))
