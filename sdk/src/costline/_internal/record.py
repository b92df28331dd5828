"""costline.record: one span for an LLM call made without an instrumented client."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import SpanKind

from costline._internal import semconv as sc
from costline._internal.guard import logger
from costline._internal.runtime import RUNTIME

# Short keyword names accepted in **attrs, and the attribute each one sets.
_ALIASES = {
    "response_model": sc.GEN_AI_RESPONSE_MODEL,
    "response_id": sc.GEN_AI_RESPONSE_ID,
    "finish_reasons": sc.GEN_AI_RESPONSE_FINISH_REASONS,
    "error_type": sc.ERROR_TYPE,
    "server_address": sc.SERVER_ADDRESS,
    "server_port": sc.SERVER_PORT,
    "feature": sc.COSTLINE_FEATURE,
    "customer": sc.COSTLINE_CUSTOMER,
    "user": sc.COSTLINE_USER,
}


def record(
    *,
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    cost_usd: float | None = None,
    duration_s: float | None = None,
    **attrs: Any,
) -> None:
    if not RUNTIME.enabled:
        return
    end_ns = time.time_ns()
    start_ns = end_ns - int(duration_s * 1e9) if duration_s and duration_s > 0 else end_ns
    input_tokens, output_tokens = int(input_tokens), int(output_tokens)
    cache_read_tokens, cache_write_tokens = int(cache_read_tokens), int(cache_write_tokens)
    if input_tokens < cache_read_tokens + cache_write_tokens:
        # Counted the Anthropic way (cache excluded); OTel's input includes cache.
        logger.debug("costline.record: input_tokens excluded cache tokens; adding them")
        input_tokens += cache_read_tokens + cache_write_tokens

    operation = str(attrs.pop("operation", "chat"))
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: operation,
        sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_RESPONSE_MODEL: model,
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: int(output_tokens),
    }
    if cache_read_tokens:
        attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read_tokens
    if cache_write_tokens:
        attributes[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_write_tokens
    if reasoning_tokens:
        attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = int(reasoning_tokens)
    if cost_usd is not None:
        attributes[sc.GEN_AI_USAGE_COST] = float(cost_usd)
    tags = attrs.pop("tags", None)
    if isinstance(tags, Mapping):
        for key, value in tags.items():
            attributes[sc.COSTLINE_TAG_PREFIX + str(key)] = str(value)
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, list):
            value = tuple(value)
        attributes[_ALIASES.get(key, key)] = value

    span = RUNTIME.tracer.start_span(
        f"{operation} {model}", kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
    )
    span.end(end_time=end_ns)
