"""Attribute-name tables for every GenAI telemetry convention costline reads.

`normalize.py` walks a span's attributes once and looks each key up here. A key maps
to a field slot and a rank; when several conventions report the same field on one span
(OpenLLMetry sets both `gen_ai.usage.input_tokens` and `gen_ai.usage.prompt_tokens`),
the lowest rank wins. Sources: the project's GenAI conventions notes (otel-genai.md)
and the instrumentations' own code.
"""

from __future__ import annotations

from typing import Final

# Field slots (indexes into the per-span scratch arrays in normalize.py).
PROVIDER: Final = 0
REQUEST_MODEL: Final = 1
RESPONSE_MODEL: Final = 2
OPERATION: Final = 3
INPUT_TOKENS: Final = 4
OUTPUT_TOKENS: Final = 5
CACHE_READ_TOKENS: Final = 6
CACHE_WRITE_TOKENS: Final = 7
REASONING_TOKENS: Final = 8
TOTAL_TOKENS: Final = 9  # read only to recognise an LLM span; never used as a count
RAW_USAGE: Final = 10
CLIENT_COST: Final = 11
FINISH_REASONS: Final = 12
ERROR_TYPE: Final = 13
STREAMING: Final = 14
USAGE_ESTIMATED: Final = 15
REQUEST_ID: Final = 16
FEATURE: Final = 17
CUSTOMER: Final = 18
USER_ID: Final = 19
SESSION_ID: Final = 20
SERVICE_NAME: Final = 21
ENVIRONMENT: Final = 22
OPENINFERENCE_KIND: Final = 23
TRACELOOP_KIND: Final = 24
FIELD_COUNT: Final = 25

# Slots whose presence makes a span an LLM span (usage or model in any convention).
LLM_MARKERS: Final = (
    REQUEST_MODEL,
    RESPONSE_MODEL,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    CACHE_READ_TOKENS,
    CACHE_WRITE_TOKENS,
    REASONING_TOKENS,
    TOTAL_TOKENS,
    RAW_USAGE,
)

# Ranks of client-reported costs: OpenLIT writes 0 when its own price table lacks the
# model, so a zero from it means "unknown", not "free".
COST_RANK_LOGFIRE: Final = 0
COST_RANK_OPENLIT: Final = 1
COST_RANK_OPENINFERENCE: Final = 2

OPENINFERENCE_MODEL_RANK: Final = 9

SPAN_KEYS: Final[dict[str, tuple[int, int]]] = {
    # provider: current, legacy, OpenInference hosting provider, OpenInference model family
    "gen_ai.provider.name": (PROVIDER, 0),
    "gen_ai.system": (PROVIDER, 1),
    "llm.provider": (PROVIDER, 2),
    "llm.system": (PROVIDER, 3),
    # models
    "gen_ai.request.model": (REQUEST_MODEL, 0),
    "llm.request.model": (REQUEST_MODEL, 1),
    "gen_ai.response.model": (RESPONSE_MODEL, 0),
    "llm.response.model": (RESPONSE_MODEL, 1),
    # OpenInference does not tell request from response model; normalize.py copies it to both.
    "llm.model_name": (REQUEST_MODEL, OPENINFERENCE_MODEL_RANK),
    # operation
    "gen_ai.operation.name": (OPERATION, 0),
    "llm.request.type": (OPERATION, 1),
    # input tokens (OTel: includes cache reads and writes)
    "gen_ai.usage.input_tokens": (INPUT_TOKENS, 0),
    "gen_ai.usage.prompt_tokens": (INPUT_TOKENS, 1),
    "llm.token_count.prompt": (INPUT_TOKENS, 2),
    "llm.usage.prompt_tokens": (INPUT_TOKENS, 3),
    # output tokens (OTel: includes reasoning)
    "gen_ai.usage.output_tokens": (OUTPUT_TOKENS, 0),
    "gen_ai.usage.completion_tokens": (OUTPUT_TOKENS, 1),
    "llm.token_count.completion": (OUTPUT_TOKENS, 2),
    "llm.usage.completion_tokens": (OUTPUT_TOKENS, 3),
    # cache reads
    "gen_ai.usage.cache_read.input_tokens": (CACHE_READ_TOKENS, 0),
    "gen_ai.usage.cache_read_input_tokens": (CACHE_READ_TOKENS, 1),
    "gen_ai.usage.prompt_tokens_details.cached_tokens": (CACHE_READ_TOKENS, 2),
    "llm.token_count.prompt_details.cache_read": (CACHE_READ_TOKENS, 3),
    "llm.usage.cache_read_input_tokens": (CACHE_READ_TOKENS, 4),
    # cache writes (v1.41 name, the newer repo's rename, OpenLLMetry, OpenInference)
    "gen_ai.usage.cache_write.input_tokens": (CACHE_WRITE_TOKENS, 0),
    "gen_ai.usage.cache_creation.input_tokens": (CACHE_WRITE_TOKENS, 1),
    "gen_ai.usage.cache_creation_input_tokens": (CACHE_WRITE_TOKENS, 2),
    "llm.token_count.prompt_details.cache_write": (CACHE_WRITE_TOKENS, 3),
    "llm.usage.cache_creation_input_tokens": (CACHE_WRITE_TOKENS, 4),
    # reasoning (part of output)
    "gen_ai.usage.reasoning.output_tokens": (REASONING_TOKENS, 0),
    "gen_ai.usage.reasoning_tokens": (REASONING_TOKENS, 1),
    "llm.usage.reasoning_tokens": (REASONING_TOKENS, 2),
    "gen_ai.usage.completion_tokens_details.reasoning_tokens": (REASONING_TOKENS, 3),
    "llm.token_count.completion_details.reasoning": (REASONING_TOKENS, 4),
    # totals: an LLM marker only, never added to anything
    "gen_ai.usage.total_tokens": (TOTAL_TOKENS, 0),
    "llm.usage.total_tokens": (TOTAL_TOKENS, 1),
    "llm.token_count.total": (TOTAL_TOKENS, 2),
    # `gen_ai.client.token.usage` as a span attribute (OpenLIT) is a total too: not listed,
    # so it is ignored and does not even mark the span.
    # logfire: the provider's own usage object
    "gen_ai.usage.raw": (RAW_USAGE, 0),
    # client-side costs
    "operation.cost": (CLIENT_COST, COST_RANK_LOGFIRE),
    "gen_ai.usage.cost": (CLIENT_COST, COST_RANK_OPENLIT),
    "llm.cost.total": (CLIENT_COST, COST_RANK_OPENINFERENCE),
    # outcome
    "gen_ai.response.finish_reasons": (FINISH_REASONS, 0),
    "gen_ai.response.finish_reason": (FINISH_REASONS, 1),
    "llm.response.finish_reason": (FINISH_REASONS, 2),
    "error.type": (ERROR_TYPE, 0),
    "gen_ai.request.stream": (STREAMING, 0),
    "gen_ai.is_streaming": (STREAMING, 1),
    "llm.is_streaming": (STREAMING, 2),
    "costline.usage.estimated": (USAGE_ESTIMATED, 0),
    # attribution
    "costline.request.id": (REQUEST_ID, 0),
    "costline.feature": (FEATURE, 0),
    # rank 1: traceloop.association.properties.feature (see ASSOCIATION_PROPERTIES)
    "traceloop.workflow.name": (FEATURE, 2),
    "costline.customer": (CUSTOMER, 0),
    "costline.user": (USER_ID, 0),
    "user.id": (USER_ID, 1),
    "enduser.id": (USER_ID, 2),
    "session.id": (SESSION_ID, 0),
    "gen_ai.conversation.id": (SESSION_ID, 1),
    "service.name": (SERVICE_NAME, 0),
    "deployment.environment.name": (ENVIRONMENT, 0),
    "deployment.environment": (ENVIRONMENT, 1),
    # span kinds that say "this is not one provider request"
    "openinference.span.kind": (OPENINFERENCE_KIND, 0),
    "traceloop.span.kind": (TRACELOOP_KIND, 0),
}

# The resource may carry attribution too (a per-tenant deployment); span values win.
RESOURCE_KEYS: Final[dict[str, tuple[int, int]]] = {
    key: SPAN_KEYS[key]
    for key in (
        "service.name",
        "deployment.environment.name",
        "deployment.environment",
        "costline.feature",
        "costline.customer",
        "costline.user",
        "user.id",
        "enduser.id",
        "session.id",
    )
}

TAG_PREFIX: Final = "costline.tag."
ASSOCIATION_PREFIX: Final = "traceloop.association.properties."
DETAILS_PREFIX: Final = "gen_ai.usage.details."
# One tuple so a key that misses SPAN_KEYS costs a single startswith call.
PREFIXES: Final = (TAG_PREFIX, ASSOCIATION_PREFIX, DETAILS_PREFIX)

# OpenLLMetry `Traceloop.set_association_properties(...)`: well-known keys become
# attribution, the rest become tags. Ranks sit below costline.* and the OTel names.
ASSOCIATION_PROPERTIES: Final[dict[str, tuple[int, int]]] = {
    "customer_id": (CUSTOMER, 1),
    "customer": (CUSTOMER, 2),
    "tenant_id": (CUSTOMER, 3),
    "tenant": (CUSTOMER, 4),
    "user_id": (USER_ID, 3),
    "user": (USER_ID, 4),
    "end_user_id": (USER_ID, 5),
    "session_id": (SESSION_ID, 2),
    "conversation_id": (SESSION_ID, 3),
    "thread_id": (SESSION_ID, 4),
    "feature": (FEATURE, 1),
    "request_id": (REQUEST_ID, 1),
}

# pydantic-ai `gen_ai.usage.details.<key>`: `details` holds whatever ints the provider
# returned. Only cache and reasoning keys are read; `details.input_tokens` from an
# Anthropic response excludes cache and must never stand in for the OTel input count.
USAGE_DETAILS: Final[dict[str, tuple[int, int]]] = {
    "cache_read_tokens": (CACHE_READ_TOKENS, 5),
    "cached_tokens": (CACHE_READ_TOKENS, 6),
    "cache_read_input_tokens": (CACHE_READ_TOKENS, 7),
    "cache_write_tokens": (CACHE_WRITE_TOKENS, 5),
    "cache_creation_input_tokens": (CACHE_WRITE_TOKENS, 6),
    "reasoning_tokens": (REASONING_TOKENS, 5),
    "thinking_tokens": (REASONING_TOKENS, 6),
}
# Values parsed out of `gen_ai.usage.raw` rank after every attribute.
RAW_RANK: Final = 20
# Resource attributes rank after every span attribute.
RESOURCE_RANK_OFFSET: Final = 1000

# Provider names seen in the wild → v1.41 `gen_ai.provider.name` values. Keys are
# lower-case; normalize.py also tries the key with spaces and dashes turned into `_`.
PROVIDER_ALIASES: Final[dict[str, str]] = {
    "openai": "openai",
    "open_ai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "aws": "aws.bedrock",  # OpenInference `llm.provider`
    "azure.ai.openai": "azure.ai.openai",
    "az.ai.openai": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure": "azure.ai.openai",  # OpenInference/OpenLLMetry mean Azure OpenAI by it
    "azure.ai.inference": "azure.ai.inference",
    "az.ai.inference": "azure.ai.inference",
    "azure_ai_inference": "azure.ai.inference",
    "gcp.gemini": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "google_gla": "gcp.gemini",  # pydantic-ai: Generative Language API
    "google_ai_studio": "gcp.gemini",
    "gcp.vertex_ai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "google_vertex": "gcp.vertex_ai",
    "gcp.gen_ai": "gcp.gen_ai",
    "google": "gcp.gen_ai",  # OpenInference: some Google endpoint, API unknown
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral_ai": "mistral_ai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "perplexity": "perplexity",
    "x_ai": "x_ai",
    "xai": "x_ai",
    "grok": "x_ai",
    "ibm.watsonx.ai": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
    "ibm_watsonx_ai": "ibm.watsonx.ai",
    "moonshot_ai": "moonshot_ai",
    "moonshotai": "moonshot_ai",
    "moonshot": "moonshot_ai",
    "together_ai": "together_ai",
    "togetherai": "together_ai",
    "together": "together_ai",
    "openrouter": "openrouter",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
}

# `llm.request.type` (OpenLLMetry) and the odd legacy operation → v1.41 operation names.
OPERATION_ALIASES: Final[dict[str, str]] = {
    "completion": "text_completion",
    "embedding": "embeddings",
}

# Operations whose spans aggregate their children's calls (an agent run, a workflow, a
# tool): their usage, when present, repeats the child chat spans' and would double-count.
AGGREGATE_OPERATIONS: Final = frozenset(
    {"invoke_agent", "create_agent", "execute_tool", "invoke_workflow"}
)
AGGREGATE_OPENINFERENCE_KINDS: Final = frozenset(
    {"agent", "chain", "tool", "retriever", "guardrail", "evaluator"}
)
AGGREGATE_TRACELOOP_KINDS: Final = frozenset({"workflow", "task", "agent", "tool"})
