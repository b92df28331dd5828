"""Pricing: genai-prices' bundled snapshot plus effective-dated project overrides."""

from services.pricing.catalog import PRICE_REF
from services.pricing.prices import (
    CostSource,
    PricedCost,
    PriceOverride,
    choose_model,
    override_in_force,
    price_call,
)

__all__ = [
    "PRICE_REF",
    "CostSource",
    "PriceOverride",
    "PricedCost",
    "choose_model",
    "override_in_force",
    "price_call",
]
