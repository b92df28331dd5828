"""Price one LLM call: project overrides, then genai-prices, then the client's own figure.

The cost is computed once at ingest with the price in force at the call's start time
and stored with its source and reference. An unpriceable call is NULL, never $0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal

from services.pricing.catalog import PRICE_REF, list_price, resolve_model

CostSource = Literal["computed", "client", "unpriced"]

_MTOK: Final = Decimal(1_000_000)
_HUNDRED: Final = Decimal(100)


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A project's own price for one provider and model, in force over [from, to).

    Either a rate card (USD per million tokens; cache rates fall back to `input_mtok`)
    or `discount_pct` off the genai-prices price; with both, the discount applies to
    the rate card. Rows are effective-dated and never overwritten.
    """

    id: int
    provider: str
    model: str
    effective_from: datetime
    effective_to: datetime | None
    input_mtok: Decimal | None
    output_mtok: Decimal | None
    cache_read_mtok: Decimal | None
    cache_write_mtok: Decimal | None
    discount_pct: Decimal | None

    def __post_init__(self) -> None:
        if self.effective_from.tzinfo is None or (
            self.effective_to is not None and self.effective_to.tzinfo is None
        ):
            raise ValueError("override dates must be timezone-aware")
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError("override effective_to must be after effective_from")
        rates = (self.input_mtok, self.output_mtok, self.cache_read_mtok, self.cache_write_mtok)
        if any(rate is not None and not (rate.is_finite() and rate >= 0) for rate in rates):
            raise ValueError("override rates must be finite and not negative")
        if self.discount_pct is not None and not (0 <= self.discount_pct <= _HUNDRED):
            raise ValueError("override discount_pct must be between 0 and 100")

    @property
    def is_rate_card(self) -> bool:
        """Whether this override sets its own per-token prices."""
        return any(
            rate is not None
            for rate in (
                self.input_mtok,
                self.output_mtok,
                self.cache_read_mtok,
                self.cache_write_mtok,
            )
        )

    def in_force(self, at: datetime) -> bool:
        """Whether this override applies to a call started at `at`."""
        return self.effective_from <= at and (self.effective_to is None or at < self.effective_to)


@dataclass(frozen=True, slots=True)
class PricedCost:
    """A call's cost in USD, where it came from, and which price list produced it."""

    cost_usd: Decimal | None
    cost_source: CostSource
    price_ref: str | None


UNPRICED: Final = PricedCost(cost_usd=None, cost_source="unpriced", price_ref=None)


def choose_model(request_model: str | None, response_model: str | None) -> str | None:
    """The model to price a call with: the served (response) model, else the requested one.

    The response model names the exact snapshot billed (`gpt-4o-2024-08-06`), while the
    request may name an alias or, on Azure, a deployment.
    """
    return response_model or request_model or None


def price_call(
    *,
    provider: str | None,
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    reasoning_tokens: int,
    client_cost_usd: Decimal | None,
    at: datetime,
    overrides: Sequence[PriceOverride] = (),
) -> PricedCost:
    """Price one call started at `at` (aware), with OTel token semantics.

    `input_tokens` includes cache reads and writes; `output_tokens` includes reasoning.
    Order: the project override in force for this provider and model (latest
    `effective_from` wins), else genai-prices' bundled list price at `at` (source
    `computed`), else `client_cost_usd` (source `client`), else unpriced (cost None).
    A call that reports no tokens at all has unknown usage and is not priced at $0.
    An override that cannot price the call (a rate it lacks, a discount on a model
    genai-prices does not know) does not fall back to the list price.
    """
    if at.tzinfo is None:
        raise ValueError("at must be a timezone-aware datetime")
    counts = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
    }
    if min(counts.values()) < 0:
        raise ValueError("token counts must not be negative")

    reported_usage = input_tokens or output_tokens or cache_read_tokens or cache_write_tokens
    if model and reported_usage:
        provider_name = (provider.strip().lower() or None) if provider else None
        override = (
            override_in_force(overrides, provider=provider_name, model=model, at=at)
            if overrides
            else None
        )
        if override is None:
            cost = list_price(provider=provider_name, model=model, at=at, **counts)
            if cost is not None:
                return PricedCost(cost_usd=cost, cost_source="computed", price_ref=PRICE_REF)
        else:
            priced = _override_cost(override, provider=provider_name, model=model, at=at, **counts)
            if priced is not None:
                return priced

    if client_cost_usd is not None:
        return PricedCost(cost_usd=client_cost_usd, cost_source="client", price_ref=None)
    return UNPRICED


def override_in_force(
    overrides: Sequence[PriceOverride], *, provider: str | None, model: str, at: datetime
) -> PriceOverride | None:
    """The override for this provider and model in force at `at`: latest start wins.

    Provider names compare case-insensitively; the model matches by name or by the
    genai-prices model it resolves to, so an override for `gpt-4o` also covers
    `gpt-4o-2024-08-06` when genai-prices prices them as one model.
    """
    if provider is None:
        return None
    provider = provider.lower()
    model_names = {model.lower()}
    resolved = resolve_model(provider, model)
    if resolved is not None:
        model_names.add(resolved[1].id.lower())
    best: PriceOverride | None = None
    for override in overrides:
        if (
            override.provider.lower() == provider
            and override.model.lower() in model_names
            and (override.is_rate_card or override.discount_pct is not None)
            and override.in_force(at)
            and (
                best is None
                or (override.effective_from, override.id) > (best.effective_from, best.id)
            )
        ):
            best = override
    return best


def _override_cost(
    override: PriceOverride,
    *,
    provider: str | None,
    model: str,
    at: datetime,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    reasoning_tokens: int,
) -> PricedCost | None:
    if override.is_rate_card:
        cost = _rate_card_cost(
            override,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
        )
        price_ref = f"override:{override.id}"
    else:
        cost = list_price(
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
            at=at,
        )
        price_ref = f"override:{override.id}+{PRICE_REF}"
    if cost is None:
        return None
    if override.discount_pct is not None:
        cost = cost * (_HUNDRED - override.discount_pct) / _HUNDRED
    return PricedCost(cost_usd=cost, cost_source="computed", price_ref=price_ref)


def _rate_card_cost(
    override: PriceOverride,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
) -> Decimal | None:
    uncached_input = input_tokens - cache_read_tokens - cache_write_tokens
    if uncached_input < 0:
        return None  # OTel input includes the cache; less than the cache is not priceable
    input_rate = override.input_mtok
    cache_read_rate = override.cache_read_mtok
    cache_write_rate = override.cache_write_mtok
    # Reasoning is billed as output, so it has no line of its own.
    lines = (
        (uncached_input, input_rate),
        (cache_read_tokens, input_rate if cache_read_rate is None else cache_read_rate),
        (cache_write_tokens, input_rate if cache_write_rate is None else cache_write_rate),
        (output_tokens, override.output_mtok),
    )
    total = Decimal(0)
    for count, rate in lines:
        if not count:
            continue
        if rate is None:
            return None  # tokens the rate card has no price for: unknown, not free
        total += rate * count
    return total / _MTOK
