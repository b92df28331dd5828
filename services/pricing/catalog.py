"""List prices from genai-prices' bundled snapshot: offline, cached, and fast.

Why not simply `genai_prices.calc_price`:

- It prices with `data_snapshot.get_snapshot()`, which returns whatever snapshot
  `genai_prices.UpdatePrices` last fetched over HTTP if anything in the process (logfire,
  a user's app code sharing our interpreter) ever started it. costline prices with the
  snapshot bundled in the pinned wheel only, so a price is reproducible from the
  version in `PRICE_REF` and nothing is ever fetched. We never start `UpdatePrices`.
- Its lookup caches are unbounded dicts keyed by model reference; span attributes are
  untrusted, so we resolve through our own bounded `lru_cache`.
- `ModelPrice.calc_price` re-validates the price's unit structure on every call
  (~90 µs). For the token counts costline reports, the same arithmetic is done here
  from a per-price plan built once; tests check it equals `calc_price` for every model
  in the snapshot.

genai-prices' `Usage` follows OTel: `input_tokens` includes cache reads and writes
(its Anthropic extractor adds them back), `output_tokens` includes reasoning; the price
of the uncached part is computed by subtracting the priced cache units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Final, TypeAlias

from genai_prices import Usage
from genai_prices import __version__ as GENAI_PRICES_VERSION
from genai_prices.data import providers as BUNDLED_PROVIDERS
from genai_prices.data_units import unit_data
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

PRICE_REF: Final = f"genai-prices@{GENAI_PRICES_VERSION}"
"""Reference stored with every list-priced call: the pinned package and its snapshot."""

# OTel v1.41 `gen_ai.provider.name` → genai-prices provider id. Providers missing here
# (ibm.watsonx.ai, self-hosted servers…) are unpriced unless the name already is a
# genai-prices id. Azure and Google ids fall back to the model makers they host.
OTEL_TO_GENAI_PRICES: Final[dict[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral_ai": "mistral",
    "perplexity": "perplexity",
    "x_ai": "x-ai",
    "moonshot_ai": "moonshotai",
    "together_ai": "together",
    "openrouter": "openrouter",
    "fireworks": "fireworks",
}

_PROVIDERS_BY_ID: Final = {provider.id: provider for provider in BUNDLED_PROVIDERS}
_MODEL_MATCHING_PROVIDERS: Final = tuple(
    (provider, provider.model_match)
    for provider in BUNDLED_PROVIDERS
    if provider.model_match is not None
)

_INPUT: Final = "input_tokens"
_OUTPUT: Final = "output_tokens"
_CACHE_READ: Final = "cache_read_tokens"
_CACHE_WRITE: Final = "cache_write_tokens"
_REASONING: Final = "output_reasoning_tokens"
_REQUESTS: Final = "requests"
_ALL_PRICE_KEYS: Final = frozenset(unit["price_key"] for unit in unit_data.values())

Price: TypeAlias = Decimal | TieredPrices


@dataclass(frozen=True, slots=True)
class _Plan:
    """The prices of one `ModelPrice` that costline's token counts can reach.

    Every other priced unit (audio, images, 1h cache writes, web searches…) gets a zero
    count from costline's usage, so it adds nothing and takes nothing from its parent.
    """

    input: Price | None
    output: Price | None
    cache_read: Price | None
    cache_write: Price | None
    reasoning: Price | None
    requests: Price | None
    input_per: int
    output_per: int
    cache_read_per: int
    cache_write_per: int
    reasoning_per: int
    requests_per: int


# id(ModelPrice) → (that ModelPrice, its plan or None when the slow path must be used).
# Bounded by the snapshot's prices; holding the object keeps its id from being reused.
_plans: dict[int, tuple[ModelPrice, _Plan | None]] = {}


def genai_prices_provider(provider: str | None) -> Provider | None:
    """The genai-prices provider for an OTel provider name, or None when it has none."""
    if provider is None:
        return None
    provider_id = OTEL_TO_GENAI_PRICES.get(provider, provider)
    return _PROVIDERS_BY_ID.get(provider_id)


@lru_cache(maxsize=8192)
def resolve_model(provider: str | None, model: str) -> tuple[Provider, ModelInfo] | None:
    """Find the genai-prices provider and model for a call; None when either is unknown.

    `provider` is an OTel provider name (lower-case). With no provider the model
    name picks it, as genai-prices does; a provider that genai-prices does not know is
    not guessed from the model name (a self-hosted `llama-3` is not Groq's).
    """
    model_ref = model.lower()
    if provider is None:
        found = next(
            (p for p, match in _MODEL_MATCHING_PROVIDERS if match.is_match(model_ref)), None
        )
    else:
        found = genai_prices_provider(provider)
    if found is None:
        return None
    info = found.find_model(model_ref, all_providers=BUNDLED_PROVIDERS)
    return (found, info) if info is not None else None


def list_price(
    *,
    provider: str | None,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    reasoning_tokens: int,
    at: datetime,
) -> Decimal | None:
    """The genai-prices price of a call at `at`, or None when it cannot be priced.

    None covers an unknown provider or model and usage genai-prices rejects (cache
    counts above the input count, for example).
    """
    resolved = resolve_model(provider, model)
    if resolved is None:
        return None
    genai_provider, info = resolved
    plan = _plan_for(info.get_prices(at))
    try:
        if plan is not None:
            return _plan_total(
                plan,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read_tokens,
                cache_write_tokens=cache_write_tokens,
                reasoning_tokens=reasoning_tokens,
            )
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            output_reasoning_tokens=reasoning_tokens,
        )
        return info.calc_price(usage, genai_provider, genai_request_timestamp=at).total_price
    except ValueError:
        return None


def _plan_for(model_price: ModelPrice) -> _Plan | None:
    entry = _plans.get(id(model_price))
    if entry is not None and entry[0] is model_price:
        return entry[1]
    plan = _build_plan(model_price)
    _plans[id(model_price)] = (model_price, plan)
    return plan


def _build_plan(model_price: ModelPrice) -> _Plan | None:
    prices = {
        key: value
        for key, value in vars(model_price).items()
        if not key.startswith("_") and value is not None
    }
    if not prices.keys() <= _ALL_PRICE_KEYS:
        return None  # genai-prices warns about and skips unknown keys: leave that to it
    if not all(isinstance(value, Decimal | TieredPrices) for value in prices.values()):
        return None
    try:
        # Let genai-prices validate the unit structure once; if it refuses this price,
        # the slow path will refuse every call priced with it, which is the right answer.
        model_price.calc_price(Usage(input_tokens=1, output_tokens=1))
    except ValueError:
        return None

    def price(usage_key: str) -> Price | None:
        value = prices.get(unit_data[usage_key]["price_key"])
        return value if isinstance(value, Decimal | TieredPrices) else None

    def per(usage_key: str) -> int:
        return int(unit_data[usage_key]["per"])

    return _Plan(
        input=price(_INPUT),
        output=price(_OUTPUT),
        cache_read=price(_CACHE_READ),
        cache_write=price(_CACHE_WRITE),
        reasoning=price(_REASONING),
        requests=price(_REQUESTS),
        input_per=per(_INPUT),
        output_per=per(_OUTPUT),
        cache_read_per=per(_CACHE_READ),
        cache_write_per=per(_CACHE_WRITE),
        reasoning_per=per(_REASONING),
        requests_per=per(_REQUESTS),
    )


def _plan_total(
    plan: _Plan,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    reasoning_tokens: int,
) -> Decimal:
    # A unit's billed count is its own count minus its priced sub-units' (genai-prices'
    # leaf decomposition): uncached input is billed at the input rate only when the cache
    # has its own price; otherwise cached tokens stay in, and are billed as, input.
    input_leaf = input_tokens
    if plan.cache_read is not None:
        input_leaf -= cache_read_tokens
    if plan.cache_write is not None:
        input_leaf -= cache_write_tokens
    output_leaf = output_tokens - reasoning_tokens if plan.reasoning is not None else output_tokens
    if input_leaf < 0 or output_leaf < 0:
        raise ValueError("cached or reasoning tokens exceed their parent count")

    total = Decimal(0)
    for price, count, per in (
        (plan.input, input_leaf, plan.input_per),
        (plan.output, output_leaf, plan.output_per),
        (plan.cache_read, cache_read_tokens, plan.cache_read_per),
        (plan.cache_write, cache_write_tokens, plan.cache_write_per),
        (plan.reasoning, reasoning_tokens, plan.reasoning_per),
        (plan.requests, 1, plan.requests_per),
    ):
        if price is None:
            continue
        # Same operations as genai-prices (rate * count, then / per) so results are equal.
        total += _rate(price, input_tokens) * Decimal(count) / per
    return total


def _rate(price: Price, input_tokens: int) -> Decimal:
    if isinstance(price, Decimal):
        return price
    # Cliff tiers: crossing a threshold (on total input, cache included) prices every token.
    for tier in reversed(price.tiers):
        if input_tokens > tier.start:
            return tier.price
    return price.base
