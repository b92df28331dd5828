"""normalize_span: every GenAI convention in, one OTel-semantics call record out.

One table per convention, with attribute sets shaped as each instrumentation emits them
(content attributes included where they would be, since the normalizer must skip them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.conventions import RESOURCE_KEYS, SPAN_KEYS
from services.ingest.normalize import (
    MAX_STRING_CHARS,
    MAX_TAGS,
    AttrValue,
    InvalidSpan,
    NormalizedCall,
    normalize_provider,
    normalize_span,
)

RESOURCE: dict[str, AttrValue] = {
    "service.name": "support-bot",
    "deployment.environment.name": "production",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "1.38.0",
    "process.pid": 4242,
}


def normalized(
    attributes: Mapping[str, AttrValue], resource: Mapping[str, AttrValue] | None = None
) -> NormalizedCall:
    call = normalize_span(attributes, RESOURCE if resource is None else resource)
    assert call is not None
    return call


def assert_fields(call: NormalizedCall, expected: Mapping[str, Any]) -> None:
    actual = {name: getattr(call, name) for name in expected}
    assert actual == dict(expected)


# --- current conventions (v1.41 and the newer semantic-conventions-genai repo) ---------

CURRENT: list[Any] = [
    pytest.param(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.request.max_tokens": 512,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.stream": True,
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.id": "chatcmpl-AbC123",
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.response.time_to_first_chunk": 0.31,
            "gen_ai.usage.input_tokens": 1800,
            "gen_ai.usage.output_tokens": 240,
            "gen_ai.usage.cache_read.input_tokens": 1536,
            "gen_ai.usage.reasoning.output_tokens": 0,
            "gen_ai.conversation.id": "conv_9f2",
            "server.address": "api.openai.com",
            "server.port": 443,
        },
        {
            "provider": "openai",
            "operation": "chat",
            "request_model": "gpt-4o",
            "response_model": "gpt-4o-2024-08-06",
            "input_tokens": 1800,
            "output_tokens": 240,
            "cache_read_tokens": 1536,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "finish_reasons": ("stop",),
            "streaming": True,
            "session_id": "conv_9f2",
            "service_name": "support-bot",
            "environment": "production",
        },
        id="openai-chat-stream-cached",
    ),
    pytest.param(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.response.model": "claude-sonnet-4-5-20250929",
            "gen_ai.response.finish_reasons": ("end_turn",),
            "gen_ai.usage.input_tokens": 12_050,
            "gen_ai.usage.output_tokens": 812,
            "gen_ai.usage.cache_read.input_tokens": 9_000,
            "gen_ai.usage.cache_creation.input_tokens": 3_000,
        },
        {
            "provider": "anthropic",
            "input_tokens": 12_050,
            "cache_read_tokens": 9_000,
            "cache_write_tokens": 3_000,
            "output_tokens": 812,
        },
        id="anthropic-cache-creation-v1.41",
    ),
    pytest.param(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-opus-4-1",
            "gen_ai.usage.input_tokens": 4_000,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cache_write.input_tokens": 3_500,
        },
        {"cache_write_tokens": 3_500, "input_tokens": 4_000},
        id="cache-write-renamed-in-newer-repo",
    ),
    pytest.param(
        {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.request.model": "gemini-2.5-pro",
            "gen_ai.usage.input_tokens": 2_000,
            "gen_ai.usage.output_tokens": 1_500,
            "gen_ai.usage.reasoning.output_tokens": 1_200,
            "gen_ai.response.finish_reasons": ("stop",),
            "error.type": "timeout",
        },
        {
            "provider": "gcp.gemini",
            "operation": "generate_content",
            "output_tokens": 1_500,
            "reasoning_tokens": 1_200,
            "error_type": "timeout",
            "response_model": None,
        },
        id="gemini-reasoning-inside-output",
    ),
    pytest.param(
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 64,
        },
        {"operation": "embeddings", "input_tokens": 64, "output_tokens": 0},
        id="embeddings-input-only",
    ),
]


@pytest.mark.parametrize(("attributes", "expected"), CURRENT)
def test_current_conventions(attributes: dict[str, AttrValue], expected: dict[str, Any]) -> None:
    assert_fields(normalized(attributes), expected)


# --- legacy names (gen_ai.system, pre-1.28 prompt/completion tokens) -------------------

LEGACY: list[Any] = [
    pytest.param(
        {
            # official openai-v2 instrumentation without the latest-semconv opt-in
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.finish_reasons": ("stop", "length"),
            "gen_ai.openai.response.service_tier": "default",
            "gen_ai.usage.input_tokens": 90,
            "gen_ai.usage.output_tokens": 30,
        },
        {
            "provider": "openai",
            "input_tokens": 90,
            "output_tokens": 30,
            "finish_reasons": ("stop", "length"),
        },
        id="openai-v2-default",
    ),
    pytest.param(
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4",
            "gen_ai.usage.prompt_tokens": 150,
            "gen_ai.usage.completion_tokens": 25,
        },
        {"input_tokens": 150, "output_tokens": 25, "operation": None},
        id="pre-1.28-prompt-completion",
    ),
    pytest.param(
        {
            "gen_ai.system": "vertex_ai",
            "gen_ai.request.model": "gemini-1.5-pro-002",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
        },
        {"provider": "gcp.vertex_ai"},
        id="vertex-ai-old-value",
    ),
    pytest.param(
        {
            "gen_ai.system": "az.ai.inference",
            "gen_ai.request.model": "Mistral-large",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
        },
        {"provider": "azure.ai.inference"},
        id="azure-ai-inference-old-value",
    ),
    pytest.param(
        {
            # both present: the current attribute wins over the legacy one
            "gen_ai.provider.name": "azure.ai.openai",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.prompt_tokens": 99,
            "gen_ai.usage.output_tokens": 10,
        },
        {"provider": "azure.ai.openai", "input_tokens": 100},
        id="current-wins-over-legacy",
    ),
]


@pytest.mark.parametrize(("attributes", "expected"), LEGACY)
def test_legacy_conventions(attributes: dict[str, AttrValue], expected: dict[str, Any]) -> None:
    assert_fields(normalized(attributes), expected)


# --- OpenLLMetry (traceloop) -----------------------------------------------------------

OPENLLMETRY: list[Any] = [
    pytest.param(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "Where is my order?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "It ships tomorrow.",
            "gen_ai.completion.0.finish_reason": "stop",
            "gen_ai.usage.prompt_tokens": 1_100,
            "gen_ai.usage.completion_tokens": 60,
            "llm.usage.total_tokens": 1_160,
            "gen_ai.usage.cache_read_input_tokens": 1_024,
            "llm.is_streaming": False,
            "llm.headers": "None",
            "gen_ai.response.finish_reason": "stop",
            "traceloop.workflow.name": "answer_ticket",
            "traceloop.entity.path": "answer_ticket.draft",
            "traceloop.association.properties.customer_id": "acme",
            "traceloop.association.properties.user_id": "u-42",
            "traceloop.association.properties.session_id": "s-7",
            "traceloop.association.properties.plan": "enterprise",
        },
        {
            "provider": "openai",
            "operation": "chat",
            "input_tokens": 1_100,
            "output_tokens": 60,
            "cache_read_tokens": 1_024,
            "streaming": False,
            "finish_reasons": ("stop",),
            "feature": "answer_ticket",
            "customer": "acme",
            "user_id": "u-42",
            "session_id": "s-7",
            "tags": {"plan": "enterprise"},
        },
        id="openai-chat-association-properties",
    ),
    pytest.param(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-3-5-sonnet-20241022",
            "gen_ai.response.model": "claude-3-5-sonnet-20241022",
            "gen_ai.usage.input_tokens": 20_500,
            "gen_ai.usage.output_tokens": 700,
            "gen_ai.usage.prompt_tokens": 20_500,
            "gen_ai.usage.completion_tokens": 700,
            "llm.usage.total_tokens": 21_200,
            "gen_ai.usage.cache_creation_input_tokens": 18_000,
            "gen_ai.usage.cache_read_input_tokens": 2_000,
            "traceloop.association.properties.feature": "kb.search",
            "traceloop.workflow.name": "kb_workflow",
        },
        {
            "provider": "anthropic",
            "input_tokens": 20_500,
            "output_tokens": 700,
            "cache_write_tokens": 18_000,
            "cache_read_tokens": 2_000,
            "feature": "kb.search",
        },
        id="anthropic-cache-feature-property-beats-workflow",
    ),
    pytest.param(
        {
            "llm.request.type": "completion",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "o3-mini",
            "gen_ai.usage.input_tokens": 300,
            "gen_ai.usage.output_tokens": 900,
            "gen_ai.usage.reasoning_tokens": 768,
        },
        {"operation": "text_completion", "reasoning_tokens": 768, "output_tokens": 900},
        id="completion-reasoning",
    ),
    pytest.param(
        {
            "llm.request.type": "embedding",
            "gen_ai.system": "cohere",
            "gen_ai.request.model": "embed-english-v3.0",
            "gen_ai.usage.input_tokens": 40,
            "llm.usage.reasoning_tokens": 0,
        },
        {"operation": "embeddings", "provider": "cohere", "reasoning_tokens": 0},
        id="embedding",
    ),
    pytest.param(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "Bedrock",
            "gen_ai.request.model": "anthropic.claude-3-haiku-20240307-v1:0",
            "gen_ai.usage.prompt_tokens": 50,
            "gen_ai.usage.completion_tokens": 10,
            "llm.response.finish_reason": "end_turn",
            "gen_ai.is_streaming": True,
        },
        {
            "provider": "aws.bedrock",
            "finish_reasons": ("end_turn",),
            "streaming": True,
        },
        id="bedrock-scalar-finish-reason",
    ),
]


@pytest.mark.parametrize(("attributes", "expected"), OPENLLMETRY)
def test_openllmetry(attributes: dict[str, AttrValue], expected: dict[str, Any]) -> None:
    assert_fields(normalized(attributes), expected)


def test_openllmetry_workflow_span_is_not_a_call() -> None:
    workflow: dict[str, AttrValue] = {
        "traceloop.span.kind": "workflow",
        "traceloop.workflow.name": "answer_ticket",
        "traceloop.entity.name": "answer_ticket",
        "gen_ai.usage.input_tokens": 1_100,
    }
    assert normalize_span(workflow, RESOURCE) is None


# --- OpenLIT ---------------------------------------------------------------------------

OPENLIT: list[Any] = [
    pytest.param(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.endpoint": "openai.chat.completions",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.request.is_stream": False,
            "gen_ai.usage.input_tokens": 2_048,
            "gen_ai.usage.output_tokens": 128,
            "gen_ai.usage.total_tokens": 2_176,
            "gen_ai.client.token.usage": 2_176,
            "gen_ai.usage.prompt_tokens_details.cached_tokens": 1_024,
            "gen_ai.usage.completion_tokens_details.reasoning_tokens": 0,
            "gen_ai.usage.cost": 0.004,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.server.ttft": 0.42,
            "deployment.environment": "staging",
            "service.name": "checkout",
        },
        {
            "input_tokens": 2_048,
            "output_tokens": 128,
            "cache_read_tokens": 1_024,
            "client_cost_usd": Decimal("0.004"),
            "finish_reasons": ("stop",),
            "environment": "staging",
            "service_name": "checkout",
        },
        id="openai-span-env-and-service-beat-resource",
    ),
    pytest.param(
        {
            "telemetry.sdk.name": "openlit",
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "ollama",
            "gen_ai.request.model": "llama3.1:8b",
            "gen_ai.usage.input_tokens": 33,
            "gen_ai.usage.output_tokens": 71,
            "gen_ai.usage.cost": 0,
        },
        {"provider": "ollama", "client_cost_usd": None},
        id="zero-cost-means-unknown",
    ),
    pytest.param(
        {
            "gen_ai.system": "mistral",
            "gen_ai.request.model": "mistral-large-latest",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 900,
            "gen_ai.usage.completion_tokens_details.reasoning_tokens": 500,
            "gen_ai.usage.cost": 0.0031,
        },
        {
            "provider": "mistral_ai",
            "reasoning_tokens": 500,
            "client_cost_usd": Decimal("0.0031"),
        },
        id="reasoning-details",
    ),
]


@pytest.mark.parametrize(("attributes", "expected"), OPENLIT)
def test_openlit(attributes: dict[str, AttrValue], expected: dict[str, Any]) -> None:
    assert_fields(normalized(attributes), expected)


def test_openlit_token_usage_attribute_is_a_total_and_ignored() -> None:
    only_total: dict[str, AttrValue] = {"gen_ai.system": "openai", "gen_ai.client.token.usage": 500}
    assert normalize_span(only_total, RESOURCE) is None


# --- OpenInference (Arize Phoenix) -----------------------------------------------------

OPENINFERENCE: list[Any] = [
    pytest.param(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-2024-08-06",
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.invocation_parameters": '{"temperature": 0.1}',
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "Summarise this.",
            "input.value": '{"messages": []}',
            "input.mime_type": "application/json",
            "llm.token_count.prompt": 900,
            "llm.token_count.completion": 100,
            "llm.token_count.total": 1_000,
            "llm.token_count.prompt_details.cache_read": 512,
            "llm.token_count.completion_details.reasoning": 40,
            "session.id": "sess-1",
            "user.id": "u-1",
            "metadata": '{"tier": "gold"}',
        },
        {
            "provider": "openai",
            "request_model": "gpt-4o-2024-08-06",
            "response_model": "gpt-4o-2024-08-06",
            "input_tokens": 900,
            "output_tokens": 100,
            "cache_read_tokens": 512,
            "reasoning_tokens": 40,
            "session_id": "sess-1",
            "user_id": "u-1",
        },
        id="openai",
    ),
    pytest.param(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "claude-3-7-sonnet-20250219",
            "llm.provider": "anthropic",
            "llm.system": "anthropic",
            "llm.token_count.prompt": 6_000,
            "llm.token_count.completion": 300,
            "llm.token_count.prompt_details.cache_read": 4_000,
            "llm.token_count.prompt_details.cache_write": 1_000,
        },
        {
            "provider": "anthropic",
            "input_tokens": 6_000,
            "cache_read_tokens": 4_000,
            "cache_write_tokens": 1_000,
        },
        id="anthropic-cache",
    ),
    pytest.param(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "llm.provider": "aws",
            "llm.system": "anthropic",
            "llm.token_count.prompt": 40,
            "llm.token_count.completion": 20,
        },
        {"provider": "aws.bedrock"},
        id="bedrock-hosting-provider-wins-over-system",
    ),
    pytest.param(
        {
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "text-embedding-3-large",
            "llm.model_name": "text-embedding-3-large",
            "llm.system": "openai",
            "llm.token_count.prompt": 12,
            "llm.token_count.total": 12,
        },
        {"operation": "embeddings", "input_tokens": 12},
        id="embedding-kind",
    ),
    pytest.param(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gemini-2.0-flash",
            "llm.provider": "google",
            "llm.system": "vertexai",
            "llm.token_count.prompt": 40,
            "llm.token_count.completion": 20,
            "llm.cost.total": 0.0000123,
        },
        {"provider": "gcp.gen_ai", "client_cost_usd": Decimal("0.0000123")},
        id="google-unknown-api",
    ),
]


@pytest.mark.parametrize(("attributes", "expected"), OPENINFERENCE)
def test_openinference(attributes: dict[str, AttrValue], expected: dict[str, Any]) -> None:
    assert_fields(normalized(attributes), expected)


@pytest.mark.parametrize("kind", ["AGENT", "CHAIN", "TOOL", "RETRIEVER"])
def test_openinference_aggregate_spans_are_not_calls(kind: str) -> None:
    span: dict[str, AttrValue] = {
        "openinference.span.kind": kind,
        "llm.token_count.prompt": 5_000,
        "llm.token_count.completion": 400,
    }
    assert normalize_span(span, RESOURCE) is None


# --- logfire (gen_ai.usage.raw, operation.cost) ----------------------------------------

OPENAI_CHAT_RAW = {
    "completion_tokens": 200,
    "prompt_tokens": 1_500,
    "total_tokens": 1_700,
    "completion_tokens_details": {"reasoning_tokens": 64, "audio_tokens": 0},
    "prompt_tokens_details": {"cached_tokens": 1_280, "audio_tokens": 0},
}
ANTHROPIC_RAW = {
    "input_tokens": 50,
    "output_tokens": 300,
    "cache_read_input_tokens": 8_000,
    "cache_creation_input_tokens": 2_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 0},
    "service_tier": "standard",
}
RESPONSES_RAW = {
    "input_tokens": 3_000,
    "input_tokens_details": {"cached_tokens": 2_048},
    "output_tokens": 500,
    "output_tokens_details": {"reasoning_tokens": 320},
    "total_tokens": 3_500,
}
GEMINI_RAW = {
    "prompt_token_count": 700,
    "candidates_token_count": 100,
    "thoughts_token_count": 250,
    "cached_content_token_count": 512,
    "total_token_count": 1_050,
}

LOGFIRE: list[Any] = [
    pytest.param(
        {
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "request_data": '{"model": "gpt-4o", "messages": []}',
            "logfire.msg": "Chat Completion with 'gpt-4o'",
            "logfire.span_type": "span",
            "gen_ai.usage.input_tokens": 1_500,
            "gen_ai.usage.output_tokens": 200,
            "gen_ai.usage.raw": json.dumps(OPENAI_CHAT_RAW),
            "operation.cost": 0.0041,
        },
        {
            "input_tokens": 1_500,
            "output_tokens": 200,
            "cache_read_tokens": 1_280,
            "reasoning_tokens": 64,
            "client_cost_usd": Decimal("0.0041"),
        },
        id="openai-chat-raw-json",
    ),
    pytest.param(
        {
            "gen_ai.system": "anthropic",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.response.model": "claude-3-5-haiku-20241022",
            # logfire adds the cache back into its input count: OTel meaning
            "gen_ai.usage.input_tokens": 10_050,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.raw": json.dumps(ANTHROPIC_RAW),
            "gen_ai.response.finish_reasons": ("end_turn",),
            "operation.cost": 0.002,
        },
        {
            "input_tokens": 10_050,
            "cache_read_tokens": 8_000,
            "cache_write_tokens": 2_000,
            "output_tokens": 300,
        },
        id="anthropic-raw-cache",
    ),
    pytest.param(
        {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.usage.raw": ANTHROPIC_RAW,
        },
        {
            # Anthropic's own input_tokens excludes the cache: converted to OTel's
            "input_tokens": 10_050,
            "cache_read_tokens": 8_000,
            "cache_write_tokens": 2_000,
            "output_tokens": 300,
        },
        id="anthropic-raw-dict-only",
    ),
    pytest.param(
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "o4-mini",
            "gen_ai.usage.raw": json.dumps(RESPONSES_RAW),
        },
        {
            "input_tokens": 3_000,
            "cache_read_tokens": 2_048,
            "output_tokens": 500,
            "reasoning_tokens": 320,
        },
        id="openai-responses-raw-only",
    ),
    pytest.param(
        {
            "gen_ai.system": "gemini",
            "gen_ai.request.model": "gemini-2.5-flash",
            "gen_ai.usage.raw": json.dumps(GEMINI_RAW),
        },
        {
            "provider": "gcp.gemini",
            "input_tokens": 700,
            "cache_read_tokens": 512,
            "output_tokens": 350,
            "reasoning_tokens": 250,
        },
        id="gemini-raw-thoughts-added-to-output",
    ),
    pytest.param(
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 2,
            "gen_ai.usage.raw": "{not json",
        },
        {"input_tokens": 10, "cache_read_tokens": 0},
        id="unparseable-raw-ignored",
    ),
]


@pytest.mark.parametrize(("attributes", "expected"), LOGFIRE)
def test_logfire(attributes: dict[str, AttrValue], expected: dict[str, Any]) -> None:
    assert_fields(normalized(attributes), expected)


def test_oversized_raw_usage_is_not_parsed() -> None:
    raw = json.dumps({**OPENAI_CHAT_RAW, "padding": "x" * 100_000})
    call = normalized({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.raw": raw})
    assert (call.input_tokens, call.cache_read_tokens) == (0, 0)


# --- pydantic-ai (gen_ai.usage.details.*) ----------------------------------------------

PYDANTIC_AI: list[Any] = [
    pytest.param(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.response.model": "claude-sonnet-4-5-20250929",
            "server.address": "api.anthropic.com",
            "model_request_parameters": '{"function_tools": []}',
            "gen_ai.usage.input_tokens": 11_550,
            "gen_ai.usage.output_tokens": 400,
            # Anthropic's raw ints: `input_tokens` here excludes the cache and is not read
            "gen_ai.usage.details.input_tokens": 50,
            "gen_ai.usage.details.output_tokens": 400,
            "gen_ai.usage.details.cache_read_input_tokens": 10_000,
            "gen_ai.usage.details.cache_creation_input_tokens": 1_500,
            "gen_ai.response.finish_reasons": ("stop",),
            "operation.cost": 0.0098,
        },
        {
            "input_tokens": 11_550,
            "cache_read_tokens": 10_000,
            "cache_write_tokens": 1_500,
            "output_tokens": 400,
            "client_cost_usd": Decimal("0.0098"),
        },
        id="anthropic-details",
    ),
    pytest.param(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "o3",
            "gen_ai.usage.input_tokens": 2_000,
            "gen_ai.usage.output_tokens": 1_000,
            "gen_ai.usage.details.reasoning_tokens": 896,
            "gen_ai.usage.details.cached_tokens": 1_024,
            "gen_ai.usage.details.accepted_prediction_tokens": 0,
        },
        {"reasoning_tokens": 896, "cache_read_tokens": 1_024},
        id="openai-details",
    ),
    pytest.param(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "google-gla",
            "gen_ai.request.model": "gemini-2.5-flash",
            "gen_ai.usage.input_tokens": 300,
            "gen_ai.usage.output_tokens": 90,
            "gen_ai.usage.details.cache_read_tokens": 128,
            "gen_ai.usage.details.cache_write_tokens": 64,
            "gen_ai.usage.details.thinking_tokens": 40,
        },
        {
            "provider": "gcp.gemini",
            "cache_read_tokens": 128,
            "cache_write_tokens": 64,
            "reasoning_tokens": 40,
        },
        id="google-gla-details",
    ),
]


@pytest.mark.parametrize(("attributes", "expected"), PYDANTIC_AI)
def test_pydantic_ai(attributes: dict[str, AttrValue], expected: dict[str, Any]) -> None:
    assert_fields(normalized(attributes), expected)


def test_pydantic_ai_agent_run_span_repeats_its_children_and_is_not_a_call() -> None:
    agent_run: dict[str, AttrValue] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "support_agent",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.usage.input_tokens": 23_100,
        "gen_ai.usage.output_tokens": 800,
    }
    assert normalize_span(agent_run, RESOURCE) is None


# --- what is (not) an LLM span ---------------------------------------------------------


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param({"http.request.method": "POST", "url.full": "https://x.test"}, id="http"),
        pytest.param({"db.system.name": "postgresql", "db.query.text": "SELECT 1"}, id="db"),
        pytest.param({}, id="empty"),
        pytest.param({"gen_ai.provider.name": "openai", "server.address": "x"}, id="provider-only"),
        pytest.param(
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"},
            id="tool-call",
        ),
        pytest.param({"costline.feature": "search", "costline.customer": "acme"}, id="sdk-parent"),
    ],
)
def test_span_without_usage_or_model_is_not_a_call(attributes: dict[str, AttrValue]) -> None:
    assert normalize_span(attributes, RESOURCE) is None


def test_model_without_usage_is_a_call_with_zero_tokens() -> None:
    # A stream without usage reporting: still a call, its usage simply unknown.
    call = normalized({"gen_ai.request.model": "gpt-4o", "gen_ai.request.stream": True})
    assert (call.input_tokens, call.output_tokens, call.streaming) == (0, 0, True)


# --- total_tokens is never added -------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(
            {
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 20,
                "llm.usage.total_tokens": 120,
            },
            (100, 20),
            id="openllmetry-total",
        ),
        pytest.param(
            {
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 20,
                "gen_ai.usage.total_tokens": 999,
            },
            (100, 20),
            id="inconsistent-total-ignored",
        ),
        pytest.param({"llm.token_count.total": 1_000}, (0, 0), id="total-alone-derives-nothing"),
        pytest.param(
            {"gen_ai.usage.input_tokens": 100, "gen_ai.usage.total_tokens": 130},
            (100, 0),
            id="output-not-derived-from-total",
        ),
    ],
)
def test_total_tokens_is_never_added_nor_used_to_derive(
    attributes: dict[str, AttrValue], expected: tuple[int, int]
) -> None:
    call = normalized({"gen_ai.request.model": "gpt-4o", **attributes})
    assert (call.input_tokens, call.output_tokens) == expected


# --- bad counts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        pytest.param({"gen_ai.usage.input_tokens": -1}, "negative_tokens", id="negative-input"),
        pytest.param({"gen_ai.usage.output_tokens": "-5"}, "negative_tokens", id="negative-str"),
        pytest.param({"llm.token_count.prompt": 100_000_001}, "absurd_tokens", id="absurd"),
        pytest.param({"gen_ai.usage.cache_read.input_tokens": 10**30}, "absurd_tokens", id="huge"),
        pytest.param({"gen_ai.usage.input_tokens": "many"}, "non_numeric_tokens", id="text"),
        pytest.param({"gen_ai.usage.input_tokens": True}, "non_numeric_tokens", id="bool"),
        pytest.param({"gen_ai.usage.output_tokens": 12.5}, "non_numeric_tokens", id="fraction"),
        pytest.param({"gen_ai.usage.output_tokens": float("nan")}, "non_numeric_tokens", id="nan"),
        pytest.param({"gen_ai.usage.output_tokens": float("inf")}, "non_numeric_tokens", id="inf"),
        pytest.param({"gen_ai.usage.input_tokens": (1, 2)}, "non_numeric_tokens", id="array"),
        pytest.param({"gen_ai.usage.input_tokens": "9" * 5000}, "non_numeric_tokens", id="digits"),
        pytest.param(
            {"gen_ai.usage.details.reasoning_tokens": -3}, "negative_tokens", id="details"
        ),
        pytest.param(
            {"gen_ai.usage.raw": json.dumps({"prompt_tokens": -10, "completion_tokens": 1})},
            "negative_tokens",
            id="raw",
        ),
    ],
)
def test_bad_token_counts_are_rejected(attributes: dict[str, AttrValue], reason: str) -> None:
    with pytest.raises(InvalidSpan) as raised:
        normalize_span({"gen_ai.request.model": "gpt-4o", **attributes}, RESOURCE)
    assert raised.value.reason == reason
    assert str(raised.value)  # a human message too


@pytest.mark.parametrize(
    ("value", "expected"),
    [(42, 42), (42.0, 42), ("42", 42), (" 7 ", 7), (0, 0), (100_000_000, 100_000_000)],
)
def test_whole_numbers_in_any_encoding_are_accepted(value: AttrValue, expected: int) -> None:
    call = normalized({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": value})
    assert call.input_tokens == expected


def test_a_bad_count_under_a_winning_name_is_not_masked_but_a_losing_one_is_ignored() -> None:
    # Only the value the normalizer keeps is validated: a junk legacy duplicate is harmless.
    call = normalized(
        {
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.prompt_tokens": "junk",
        }
    )
    assert call.input_tokens == 10


def test_cache_above_input_means_input_excluded_cache_and_is_restored() -> None:
    call = normalized(
        {
            "gen_ai.request.model": "claude-3-5-sonnet",
            "llm.token_count.prompt": 12,
            "llm.token_count.prompt_details.cache_read": 5_000,
            "llm.token_count.prompt_details.cache_write": 300,
            "gen_ai.usage.output_tokens": 40,
            "gen_ai.usage.reasoning.output_tokens": 90,
        }
    )
    assert (call.input_tokens, call.output_tokens) == (5_312, 130)


# --- provider aliases ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("emitted", "expected"),
    [
        ("openai", "openai"),
        ("OpenAI", "openai"),
        ("Anthropic", "anthropic"),
        ("ANTHROPIC", "anthropic"),
        ("gemini", "gcp.gemini"),
        ("google-gla", "gcp.gemini"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("google-vertex", "gcp.vertex_ai"),
        ("Vertex AI", "gcp.vertex_ai"),
        ("az.ai.inference", "azure.ai.inference"),
        ("az.ai.openai", "azure.ai.openai"),
        ("Azure", "azure.ai.openai"),
        ("xai", "x_ai"),
        ("x-ai", "x_ai"),
        ("mistralai", "mistral_ai"),
        ("MistralAI", "mistral_ai"),
        ("bedrock", "aws.bedrock"),
        ("aws_bedrock", "aws.bedrock"),
        ("AWS Bedrock", "aws.bedrock"),
        ("aws.bedrock", "aws.bedrock"),
        ("ibm.watsonx.ai", "ibm.watsonx.ai"),
        ("moonshot", "moonshot_ai"),
        ("deepseek", "deepseek"),
        ("Together AI", "together_ai"),
        ("Some-New Lab", "some_new_lab"),
        ("  ", None),
    ],
)
def test_provider_aliases(emitted: str, expected: str | None) -> None:
    assert normalize_provider(emitted) == expected
    if expected is not None:
        span = {"gen_ai.system": emitted, "gen_ai.request.model": "m"}
        assert normalized(span).provider == expected


# --- attribution -----------------------------------------------------------------------


def test_costline_attribution_and_tags() -> None:
    call = normalized(
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "costline.request.id": "req-1",
            "costline.feature": "search.rerank",
            "costline.customer": "acme",
            "costline.user": "u-9",
            "user.id": "ignored-user",
            "session.id": "s-1",
            "gen_ai.conversation.id": "ignored-conversation",
            "costline.tag.team": "relevance",
            "costline.tag.experiment": "b",
            "costline.usage.estimated": True,
        }
    )
    assert_fields(
        call,
        {
            "request_id": "req-1",
            "feature": "search.rerank",
            "customer": "acme",
            "user_id": "u-9",
            "session_id": "s-1",
            "tags": {"team": "relevance", "experiment": "b"},
            "usage_estimated": True,
        },
    )


@pytest.mark.parametrize(
    ("attributes", "expected_user"),
    [
        ({"user.id": "a", "enduser.id": "b"}, "a"),
        ({"enduser.id": "b"}, "b"),
        ({"enduser.id": "b", "traceloop.association.properties.user_id": "c"}, "b"),
        ({"user.id": 12345}, "12345"),
    ],
)
def test_user_fallbacks(attributes: dict[str, AttrValue], expected_user: str) -> None:
    call = normalized({"gen_ai.request.model": "m", **attributes})
    assert call.user_id == expected_user


def test_span_attributes_win_over_resource_attributes() -> None:
    resource = {
        "service.name": "from-resource",
        "deployment.environment": "old-resource-env",
        "costline.customer": "resource-customer",
        "costline.feature": "resource-feature",
        "costline.tag.region": "eu",
        "costline.tag.team": "resource-team",
    }
    call = normalized(
        {
            "gen_ai.request.model": "m",
            "costline.customer": "span-customer",
            "costline.tag.team": "span-team",
        },
        resource,
    )
    assert_fields(
        call,
        {
            "service_name": "from-resource",
            "environment": "old-resource-env",
            "customer": "span-customer",
            "feature": "resource-feature",
            "tags": {"team": "span-team", "region": "eu"},
        },
    )


def test_a_lower_ranked_span_name_still_beats_a_resource_value() -> None:
    call = normalized(
        {"gen_ai.request.model": "m", "enduser.id": "span-user"}, {"costline.user": "r"}
    )
    assert call.user_id == "span-user"


def test_current_environment_name_wins_over_the_older_one() -> None:
    resource = {"deployment.environment": "prod-old", "deployment.environment.name": "prod"}
    assert normalized({"gen_ai.request.model": "m"}, resource).environment == "prod"


def test_costline_tag_wins_over_association_property_of_the_same_name() -> None:
    call = normalized(
        {
            "gen_ai.request.model": "m",
            "traceloop.association.properties.plan": "free",
            "costline.tag.plan": "pro",
        }
    )
    assert call.tags == {"plan": "pro"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        ("TRUE", True),
        (False, False),
        ("false", False),
        ("maybe", False),
    ],
)
def test_usage_estimated_flag(value: AttrValue, expected: bool) -> None:
    call = normalized({"gen_ai.request.model": "m", "costline.usage.estimated": value})
    assert call.usage_estimated is expected


# --- huge values -----------------------------------------------------------------------


def test_huge_strings_are_truncated() -> None:
    long = "x" * 50_000
    call = normalized(
        {
            "gen_ai.provider.name": long,
            "gen_ai.request.model": long,
            "gen_ai.response.model": long,
            "gen_ai.operation.name": long,
            "gen_ai.response.finish_reasons": (long, "stop"),
            "error.type": long,
            "costline.request.id": long,
            "costline.feature": long,
            "costline.customer": long,
            "costline.user": long,
            "session.id": long,
            f"costline.tag.{long}": long,
        },
        {"service.name": long, "deployment.environment.name": long},
    )
    strings = [
        call.provider,
        call.request_model,
        call.response_model,
        call.operation,
        call.error_type,
        call.request_id,
        call.feature,
        call.customer,
        call.user_id,
        call.session_id,
        call.service_name,
        call.environment,
        *call.finish_reasons,
        *call.tags,
        *call.tags.values(),
    ]
    assert all(s is not None and len(s) <= MAX_STRING_CHARS for s in strings)
    assert call.request_model == long[:MAX_STRING_CHARS]
    assert call.finish_reasons[1] == "stop"


def test_tag_count_is_bounded() -> None:
    attributes: dict[str, AttrValue] = {"gen_ai.request.model": "m"}
    attributes.update({f"costline.tag.k{i}": "v" for i in range(10_000)})
    assert len(normalized(attributes).tags) == MAX_TAGS


def test_array_attribution_values_are_joined() -> None:
    call = normalized({"gen_ai.request.model": "m", "costline.tag.regions": ("eu", "us")})
    assert call.tags == {"regions": "eu,us"}


def test_normalized_call_is_frozen() -> None:
    call = normalized({"gen_ai.request.model": "m"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.input_tokens = 5  # type: ignore[misc]


# --- any input: a call, None, or InvalidSpan; never a crash ----------------------------

_scalars = st.one_of(
    st.text(max_size=1_500),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.binary(max_size=20),
)
_raw_usage = st.dictionaries(
    st.sampled_from(
        [
            "prompt_tokens",
            "completion_tokens",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "prompt_tokens_details",
            "input_tokens_details",
            "output_tokens_details",
            "prompt_token_count",
            "candidates_token_count",
            "thoughts_token_count",
        ]
    ),
    st.one_of(
        st.none(),
        st.integers(min_value=-5, max_value=2 * 10**8),
        st.text(max_size=5),
        st.dictionaries(
            st.sampled_from(["cached_tokens", "reasoning_tokens", "cache_write_tokens"]),
            st.integers(min_value=-5, max_value=10**9),
        ),
    ),
    max_size=6,
).map(json.dumps)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=4).map(tuple), _raw_usage)
_keys = st.one_of(
    st.sampled_from(sorted(SPAN_KEYS)),
    st.sampled_from(
        [
            "costline.tag.team",
            "traceloop.association.properties.customer_id",
            "traceloop.association.properties.anything",
            "gen_ai.usage.details.cached_tokens",
            "gen_ai.usage.details.input_tokens",
        ]
    ),
    st.text(max_size=40),
)


@settings(max_examples=400, deadline=None)
@given(
    attributes=st.dictionaries(_keys, _values, max_size=25),
    resource=st.dictionaries(
        st.one_of(st.sampled_from(sorted(RESOURCE_KEYS)), st.text(max_size=20)), _values, max_size=6
    ),
)
def test_any_attribute_values_give_a_call_none_or_an_invalid_span(
    attributes: dict[str, Any], resource: dict[str, Any]
) -> None:
    try:
        call = normalize_span(attributes, resource)
    except InvalidSpan as exc:
        assert exc.reason in {"negative_tokens", "absurd_tokens", "non_numeric_tokens"}
        return
    if call is None:
        return
    assert call.cache_read_tokens + call.cache_write_tokens <= call.input_tokens
    assert 0 <= call.reasoning_tokens <= call.output_tokens
    texts = [
        call.provider,
        call.request_model,
        call.response_model,
        call.operation,
        call.error_type,
        call.feature,
        call.customer,
        call.user_id,
        call.session_id,
        call.request_id,
        call.service_name,
        call.environment,
        *call.finish_reasons,
        *call.tags,
        *call.tags.values(),
    ]
    assert all(text is None or len(text) <= MAX_STRING_CHARS for text in texts)
    assert call.client_cost_usd is None or call.client_cost_usd >= 0


def test_span_the_sdk_marked_as_a_duplicate_is_not_a_call() -> None:
    attributes = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-20250514",
        "gen_ai.usage.output_tokens": 10,
        "costline.duplicate_of": "00f067aa0ba902b7",
    }
    assert normalize_span(attributes, {}) is None
