"""Turn one span's attributes, in any GenAI convention, into one call record.

Pure and allocation-light: the collector calls `normalize_span` for every span it
receives, so it makes one pass over the keys with dict lookups (tables in
`conventions.py`), and converts only the values it keeps.

Token semantics are OTel's: `input_tokens` includes cache reads and writes,
`output_tokens` includes reasoning. A reported total (`gen_ai.usage.total_tokens`,
`llm.usage.total_tokens`, `llm.token_count.total`) is never added to anything nor used
to derive a missing count: conventions disagree on what it covers, and a missing input
or output count is reported as 0 rather than guessed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Final, TypeAlias

from services.ingest import conventions as conv

Scalar: TypeAlias = str | bool | int | float
AttrValue: TypeAlias = Scalar | Sequence[Scalar]

MAX_TOKENS_PER_COUNT: Final = 100_000_000
"""Above this a single count is a bug or an attack, not a call (1M-token contexts exist)."""
MAX_STRING_CHARS: Final = 1024
MAX_TAGS: Final = 64
MAX_FINISH_REASONS: Final = 16
MAX_RAW_USAGE_CHARS: Final = 65_536
"""A provider usage object is a few hundred bytes; anything bigger is not parsed."""

_UNSET: Final = 1 << 30
_TOKEN_SLOTS: Final = (
    conv.INPUT_TOKENS,
    conv.OUTPUT_TOKENS,
    conv.CACHE_READ_TOKENS,
    conv.CACHE_WRITE_TOKENS,
    conv.REASONING_TOKENS,
)
_TOKEN_NAMES: Final = {
    conv.INPUT_TOKENS: "input_tokens",
    conv.OUTPUT_TOKENS: "output_tokens",
    conv.CACHE_READ_TOKENS: "cache_read_tokens",
    conv.CACHE_WRITE_TOKENS: "cache_write_tokens",
    conv.REASONING_TOKENS: "reasoning_tokens",
}
_TAG_PREFIX_LEN: Final = len(conv.TAG_PREFIX)
_ASSOCIATION_PREFIX_LEN: Final = len(conv.ASSOCIATION_PREFIX)
_DETAILS_PREFIX_LEN: Final = len(conv.DETAILS_PREFIX)


class InvalidSpan(ValueError):
    """A span that claims LLM usage but whose counts cannot be trusted.

    `reason` is a short stable slug (`negative_tokens`, `absurd_tokens`,
    `non_numeric_tokens`) for metrics and partial-success messages; `str(exc)` is for people.
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class NormalizedCall:
    """One LLM call as costline stores it, whatever convention reported it."""

    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    operation: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    client_cost_usd: Decimal | None = None
    finish_reasons: tuple[str, ...] = ()
    error_type: str | None = None
    streaming: bool | None = None
    request_id: str | None = None
    feature: str | None = None
    customer: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    service_name: str | None = None
    environment: str | None = None


DUPLICATE_MARK = "costline.duplicate_of"


def normalize_span(
    attributes: Mapping[str, AttrValue], resource: Mapping[str, AttrValue]
) -> NormalizedCall | None:
    """Normalize one span's attributes (and its resource's) into a `NormalizedCall`.

    Returns None for spans that are not one provider request: no usage or model
    attribute in any convention, or an agent/workflow/tool span whose usage repeats
    its children's. Span attributes win over resource attributes.

    Also None for a span the costline SDK marked `costline.duplicate_of` (another
    instrumentation's span of a call costline already recorded): counting it would bill the
    call twice.

    Raises `InvalidSpan` when a token count is negative, absurd (> 100M) or not a number.
    """
    if DUPLICATE_MARK in attributes:
        return None
    values: list[object] = [None] * conv.FIELD_COUNT
    ranks = [_UNSET] * conv.FIELD_COUNT
    span_tags: dict[str, object] = {}
    association_tags: dict[str, object] = {}
    has_usage_details = False

    span_keys = conv.SPAN_KEYS
    prefixes = conv.PREFIXES
    for key, value in attributes.items():
        spec = span_keys.get(key)
        if spec is None:
            if not key.startswith(prefixes):
                continue
            if key.startswith(conv.TAG_PREFIX):
                span_tags[key[_TAG_PREFIX_LEN:]] = value
                continue
            if key.startswith(conv.ASSOCIATION_PREFIX):
                name = key[_ASSOCIATION_PREFIX_LEN:]
                spec = conv.ASSOCIATION_PROPERTIES.get(name.lower())
                if spec is None:
                    association_tags[name] = value
                    continue
            else:
                has_usage_details = True
                spec = conv.USAGE_DETAILS.get(key[_DETAILS_PREFIX_LEN:])
                if spec is None:
                    continue
        slot, rank = spec
        if rank < ranks[slot]:
            ranks[slot] = rank
            values[slot] = value

    if not has_usage_details and all(ranks[slot] == _UNSET for slot in conv.LLM_MARKERS):
        return None

    operation = _operation(values[conv.OPERATION])
    if operation in conv.AGGREGATE_OPERATIONS or _is_aggregate_kind(values):
        return None

    resource_tags: dict[str, object] = {}
    resource_keys = conv.RESOURCE_KEYS
    offset = conv.RESOURCE_RANK_OFFSET
    for key, value in resource.items():
        spec = resource_keys.get(key)
        if spec is not None:
            slot, rank = spec
            if rank + offset < ranks[slot]:
                ranks[slot] = rank + offset
                values[slot] = value
        elif key.startswith(conv.TAG_PREFIX):
            resource_tags[key[_TAG_PREFIX_LEN:]] = value

    provider = normalize_provider(values[conv.PROVIDER])
    if ranks[conv.RAW_USAGE] != _UNSET:
        _merge_raw_usage(values, ranks, values[conv.RAW_USAGE])
    tokens = [
        _token_count(values[slot], _TOKEN_NAMES[slot]) if ranks[slot] != _UNSET else 0
        for slot in _TOKEN_SLOTS
    ]
    input_tokens, output_tokens, cache_read, cache_write, reasoning = tokens
    # Under OTel semantics the parts cannot exceed the whole. When they do, the emitter
    # evidently reported uncached input (Anthropic's own `input_tokens`) or output
    # without reasoning (Gemini's `candidates_token_count`): restore the OTel meaning.
    if cache_read + cache_write > input_tokens:
        input_tokens += cache_read + cache_write
    if reasoning > output_tokens:
        output_tokens += reasoning

    request_model = _text(values[conv.REQUEST_MODEL])
    response_model = _text(values[conv.RESPONSE_MODEL])
    if response_model is None and ranks[conv.REQUEST_MODEL] == conv.OPENINFERENCE_MODEL_RANK:
        # OpenInference's single `llm.model_name` is usually the served model.
        response_model = request_model
    if operation is None and _lower_text(values[conv.OPENINFERENCE_KIND]) == "embedding":
        operation = "embeddings"

    return NormalizedCall(
        provider=provider,
        request_model=request_model,
        response_model=response_model,
        operation=operation,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        usage_estimated=_flag(values[conv.USAGE_ESTIMATED]) is True,
        client_cost_usd=_client_cost(values[conv.CLIENT_COST], ranks[conv.CLIENT_COST]),
        finish_reasons=_finish_reasons(values[conv.FINISH_REASONS]),
        error_type=_text(values[conv.ERROR_TYPE]),
        streaming=_flag(values[conv.STREAMING]),
        request_id=_text(values[conv.REQUEST_ID]),
        feature=_text(values[conv.FEATURE]),
        customer=_text(values[conv.CUSTOMER]),
        user_id=_text(values[conv.USER_ID]),
        session_id=_text(values[conv.SESSION_ID]),
        tags=_merge_tags(span_tags, association_tags, resource_tags)
        if span_tags or association_tags or resource_tags
        else {},
        service_name=_text(values[conv.SERVICE_NAME]),
        environment=_text(values[conv.ENVIRONMENT]),
    )


def normalize_provider(value: object) -> str | None:
    """Map any emitted provider name (`gen_ai.system`, `llm.provider`…) to its v1.41 value.

    Unknown names are kept, lower-cased with spaces and dashes as `_`, so a new
    provider still groups consistently.
    """
    if not isinstance(value, str):
        return None
    return _provider_alias(value[:MAX_STRING_CHARS])


@lru_cache(maxsize=1024)
def _provider_alias(value: str) -> str | None:
    name = value.strip().lower()
    if not name:
        return None
    alias = conv.PROVIDER_ALIASES.get(name)
    if alias is not None:
        return alias
    name = name.replace(" ", "_").replace("-", "_")
    return conv.PROVIDER_ALIASES.get(name, name)


def _token_count(value: object, name: str) -> int:
    # bool is an int subclass but never a count; `type() is` keeps it out.
    if type(value) is int:
        count = value
    elif type(value) is float and value.is_integer():
        count = int(value)  # OTLP/JSON senders sometimes encode counts as doubles
    elif isinstance(value, str) and _is_integer_text(text := value.strip()):
        count = int(text)
    else:
        raise InvalidSpan("non_numeric_tokens", f"{name} is not a whole number: {value!r:.80}")
    if count < 0:
        raise InvalidSpan("negative_tokens", f"{name} is negative: {count}")
    if count > MAX_TOKENS_PER_COUNT:
        raise InvalidSpan("absurd_tokens", f"{name} exceeds {MAX_TOKENS_PER_COUNT:_}: {count}")
    return count


def _is_integer_text(text: str) -> bool:
    # Bounded length: int() of a huge digit string is slow (and refused past 4300 digits).
    digits = text[1:] if text[:1] == "-" else text
    return 0 < len(digits) <= 20 and digits.isascii() and digits.isdigit()


def _merge_raw_usage(values: list[object], ranks: list[int], raw: object) -> None:
    """Fill still-missing token slots from logfire's `gen_ai.usage.raw` provider usage."""
    if isinstance(raw, str):
        if len(raw) > MAX_RAW_USAGE_CHARS:
            return
        try:
            raw = json.loads(raw)
        except ValueError:
            return
    if not isinstance(raw, Mapping):
        return
    for slot, count in _raw_usage_counts(raw).items():
        if count is not None and ranks[slot] == _UNSET:
            ranks[slot] = conv.RAW_RANK
            values[slot] = count


def _raw_usage_counts(usage: Mapping[str, object]) -> dict[int, object]:
    """Read one provider usage object, converted to OTel semantics.

    Shapes, told apart by their keys:
    - OpenAI Chat Completions (and compatibles: LiteLLM, DeepSeek): `prompt_tokens`
      includes cached tokens, `completion_tokens` includes reasoning.
    - Anthropic Messages: `input_tokens` EXCLUDES `cache_read_input_tokens` and
      `cache_creation_input_tokens` (Anthropic documents this), so they are added back.
      Recognised by those cache keys; without them the two meanings coincide.
    - OpenAI Responses: `input_tokens` includes `input_tokens_details.cached_tokens`.
    - Gemini `usage_metadata`: `prompt_token_count` includes cached content;
      `candidates_token_count` excludes `thoughts_token_count`, which is added back.
    """
    get = usage.get
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        prompt_details = _mapping(get("prompt_tokens_details"))
        completion_details = _mapping(get("completion_tokens_details"))
        return {
            conv.INPUT_TOKENS: get("prompt_tokens"),
            conv.OUTPUT_TOKENS: get("completion_tokens"),
            conv.CACHE_READ_TOKENS: _first(
                prompt_details.get("cached_tokens"),
                get("prompt_cache_hit_tokens"),
                get("cache_read_input_tokens"),
            ),
            conv.CACHE_WRITE_TOKENS: get("cache_creation_input_tokens"),
            conv.REASONING_TOKENS: completion_details.get("reasoning_tokens"),
        }
    if "input_tokens" in usage or "output_tokens" in usage:
        cache_read = get("cache_read_input_tokens")
        cache_write = get("cache_creation_input_tokens")
        if cache_read is not None or cache_write is not None:
            return {
                conv.INPUT_TOKENS: _sum_counts(get("input_tokens"), cache_read, cache_write),
                conv.OUTPUT_TOKENS: get("output_tokens"),
                conv.CACHE_READ_TOKENS: cache_read,
                conv.CACHE_WRITE_TOKENS: cache_write,
                conv.REASONING_TOKENS: _mapping(get("output_tokens_details")).get(
                    "thinking_tokens"
                ),
            }
        input_details = _mapping(get("input_tokens_details"))
        return {
            conv.INPUT_TOKENS: get("input_tokens"),
            conv.OUTPUT_TOKENS: get("output_tokens"),
            conv.CACHE_READ_TOKENS: input_details.get("cached_tokens"),
            conv.CACHE_WRITE_TOKENS: input_details.get("cache_write_tokens"),
            conv.REASONING_TOKENS: _mapping(get("output_tokens_details")).get("reasoning_tokens"),
        }
    if "prompt_token_count" in usage or "promptTokenCount" in usage:
        thoughts = _first(get("thoughts_token_count"), get("thoughtsTokenCount"))
        candidates = _first(get("candidates_token_count"), get("candidatesTokenCount"))
        return {
            conv.INPUT_TOKENS: _first(get("prompt_token_count"), get("promptTokenCount")),
            conv.OUTPUT_TOKENS: _sum_counts(candidates, thoughts),
            conv.CACHE_READ_TOKENS: _first(
                get("cached_content_token_count"), get("cachedContentTokenCount")
            ),
            conv.REASONING_TOKENS: thoughts,
        }
    return {}


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _first(*candidates: object) -> object:
    for candidate in candidates:
        if candidate is not None:
            return candidate
    return None


def _sum_counts(first: object, *rest: object) -> object:
    if first is None:
        return None
    parts = [first, *(part for part in rest if part is not None)]
    if all(type(part) is int for part in parts):
        return sum(parts)  # type: ignore[arg-type]
    # Hand the first non-integer on, so _token_count rejects the span with its reason.
    return next(part for part in parts if type(part) is not int)


def _client_cost(value: object, rank: int) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float | int):
        text = repr(value)  # repr is the shortest exact decimal form of a float
    elif isinstance(value, str):
        text = value.strip()[:64]
    else:
        return None
    try:
        cost = Decimal(text)
    except InvalidOperation:
        return None
    if not cost.is_finite() or cost < 0:
        return None
    if cost == 0 and rank == conv.COST_RANK_OPENLIT:
        return None  # OpenLIT reports 0 for models missing from its own price table
    return cost


def _operation(value: object) -> str | None:
    name = _lower_text(value)
    if name is None:
        return None
    return conv.OPERATION_ALIASES.get(name, name)


def _is_aggregate_kind(values: list[object]) -> bool:
    openinference_kind = values[conv.OPENINFERENCE_KIND]
    traceloop_kind = values[conv.TRACELOOP_KIND]
    if openinference_kind is None and traceloop_kind is None:
        return False  # the usual case: skip the string work
    return (
        _lower_text(openinference_kind) in conv.AGGREGATE_OPENINFERENCE_KINDS
        or _lower_text(traceloop_kind) in conv.AGGREGATE_TRACELOOP_KINDS
    )


def _text(value: object) -> str | None:
    """An attribute as bounded text; None when absent or empty."""
    if value is None:
        return None  # most attribution fields are absent: answer that first
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes | bytearray):
        return None  # OTLP bytes values are opaque, not text
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, Sequence):
        text = ",".join(_text(item) or "" for item in value[:MAX_TAGS])
    else:
        return None
    if not text:
        return None
    return text[:MAX_STRING_CHARS]


def _lower_text(value: object) -> str | None:
    text = _text(value)
    return text.strip().lower() if text is not None else None


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return None
    if type(value) is int:
        return value != 0
    return None


def _finish_reasons(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value[:MAX_STRING_CHARS],) if value else ()
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        reasons = (_text(item) for item in value[:MAX_FINISH_REASONS])
        return tuple(reason for reason in reasons if reason is not None)
    text = _text(value)
    return (text,) if text is not None else ()


def _merge_tags(*sources: dict[str, object]) -> dict[str, str]:
    """Merge tag sources, earlier ones winning, keeping at most MAX_TAGS non-empty tags."""
    tags: dict[str, str] = {}
    for source in sources:
        for raw_key, raw_value in source.items():
            key = raw_key[:MAX_STRING_CHARS]
            if not key or key in tags:
                continue
            value = _text(raw_value)
            if value is None:
                continue
            if len(tags) >= MAX_TAGS:
                return tags
            tags[key] = value
    return tags
