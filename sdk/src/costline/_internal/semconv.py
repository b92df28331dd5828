"""Attribute names: OpenTelemetry GenAI semantic conventions v1.41 and costline's own."""

from typing import Final

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
SERVICE_NAME: Final = "service.name"
DEPLOYMENT_ENVIRONMENT_NAME: Final = "deployment.environment.name"

# Attribution: carried as W3C baggage and copied onto every span started under it.
COSTLINE_PREFIX: Final = "costline."
COSTLINE_REQUEST_ID: Final = "costline.request.id"
COSTLINE_FEATURE: Final = "costline.feature"
COSTLINE_CUSTOMER: Final = "costline.customer"
COSTLINE_USER: Final = "costline.user"
COSTLINE_TAG_PREFIX: Final = "costline.tag."

# Span-only markers (never put in baggage).
COSTLINE_REQUEST_ROOT: Final = "costline.request.root"
COSTLINE_USAGE_ESTIMATED: Final = "costline.usage.estimated"
COSTLINE_USAGE_ESTIMATOR: Final = "costline.usage.estimator"
COSTLINE_USAGE_UNAVAILABLE: Final = "costline.usage.unavailable"
COSTLINE_DUPLICATE_OF: Final = "costline.duplicate_of"

INSTRUMENTATION_SCOPE: Final = "costline"
