"""price_call: overrides, then genai-prices' bundled snapshot at the call's time, then client.

genai-prices is pinned (0.2.3); the dollar figures below are that snapshot's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, calc_price
from genai_prices.data import providers as bundled_providers
from genai_prices.data_snapshot import DataSnapshot, set_custom_snapshot
from genai_prices.types import ModelInfo, TieredPrices

from services.pricing import PRICE_REF, PricedCost, PriceOverride, choose_model, price_call
from services.pricing.catalog import list_price, resolve_model

AT = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)
MTOK = Decimal(1_000_000)
REPO_ROOT = Path(__file__).resolve().parents[2]


def price(
    *,
    provider: str | None = "openai",
    model: str | None = "gpt-4o",
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    client_cost_usd: Decimal | None = None,
    at: datetime = AT,
    overrides: tuple[PriceOverride, ...] = (),
) -> PricedCost:
    return price_call(
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
        client_cost_usd=client_cost_usd,
        at=at,
        overrides=overrides,
    )


def make_override(
    *,
    id: int = 1,
    provider: str = "openai",
    model: str = "gpt-4o",
    effective_from: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    effective_to: datetime | None = None,
    input_mtok: str | None = None,
    output_mtok: str | None = None,
    cache_read_mtok: str | None = None,
    cache_write_mtok: str | None = None,
    discount_pct: str | None = None,
) -> PriceOverride:
    def dec(value: str | None) -> Decimal | None:
        return None if value is None else Decimal(value)

    return PriceOverride(
        id=id,
        provider=provider,
        model=model,
        effective_from=effective_from,
        effective_to=effective_to,
        input_mtok=dec(input_mtok),
        output_mtok=dec(output_mtok),
        cache_read_mtok=dec(cache_read_mtok),
        cache_write_mtok=dec(cache_write_mtok),
        discount_pct=dec(discount_pct),
    )


def model_info(provider: str, model: str) -> ModelInfo:
    resolved = resolve_model(provider, model)
    assert resolved is not None
    return resolved[1]


def flat_rate(info: ModelInfo, key: str, at: datetime = AT) -> Decimal:
    value = getattr(info.get_prices(at), key)
    assert isinstance(value, Decimal), f"{info.id} {key} is {value!r}"
    return value


# --- same answer as genai_prices.calc_price --------------------------------------------

FAMILIES: list[Any] = [
    pytest.param("openai", "openai", "gpt-4o-2024-08-06", (2_000, 150, 1_024, 0, 0), id="openai"),
    pytest.param("openai", "openai", "o3", (5_000, 3_000, 4_096, 0, 2_500), id="openai-reasoning"),
    pytest.param(
        "anthropic",
        "anthropic",
        "claude-3-5-sonnet-20241022",
        (12_000, 800, 9_000, 2_000, 0),
        id="anthropic",
    ),
    pytest.param(
        "gcp.gemini", "google", "gemini-2.5-flash", (8_000, 900, 4_000, 0, 600), id="gemini"
    ),
    pytest.param(
        "gcp.gemini", "google", "gemini-2.5-pro", (250_000, 2_000, 50_000, 0, 0), id="gemini-tiered"
    ),
    pytest.param(
        "gcp.vertex_ai",
        "google",
        "claude-3-5-sonnet-v2@20241022",
        (3_000, 100, 1_000, 500, 0),
        id="vertex-claude",
    ),
    pytest.param(
        "aws.bedrock",
        "aws",
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        (7_000, 400, 5_000, 1_000, 0),
        id="bedrock",
    ),
    pytest.param("azure.ai.openai", "azure", "gpt-4o", (1_000, 100, 0, 0, 0), id="azure-openai"),
    pytest.param("x_ai", "x-ai", "grok-3-mini", (2_000, 500, 1_000, 0, 300), id="xai"),
    pytest.param(
        "mistral_ai", "mistral", "mistral-large-latest", (900, 100, 0, 0, 0), id="mistral"
    ),
    pytest.param("deepseek", "deepseek", "deepseek-chat", (5_000, 700, 3_000, 0, 0), id="deepseek"),
]


@pytest.mark.parametrize(("otel_provider", "genai_provider", "model", "usage"), FAMILIES)
def test_cost_equals_genai_prices_calc_price(
    otel_provider: str, genai_provider: str, model: str, usage: tuple[int, int, int, int, int]
) -> None:
    input_tokens, output_tokens, cache_read, cache_write, reasoning = usage
    expected = calc_price(
        Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            output_reasoning_tokens=reasoning,
        ),
        model,
        provider_id=genai_provider,
        genai_request_timestamp=AT,
    ).total_price

    priced = price(
        provider=otel_provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )

    assert priced == PricedCost(cost_usd=expected, cost_source="computed", price_ref=PRICE_REF)
    assert isinstance(priced.cost_usd, Decimal) and priced.cost_usd > 0


def test_price_ref_names_the_pinned_package() -> None:
    assert PRICE_REF == f"genai-prices@{genai_prices.__version__}" == "genai-prices@0.2.3"


def test_gpt_4o_dollar_figure() -> None:
    # 976 uncached at $2.50, 1024 cached at $1.25, 150 output at $10 per MTok.
    priced = price(
        model="gpt-4o-2024-08-06", input_tokens=2_000, output_tokens=150, cache_read_tokens=1_024
    )
    assert priced.cost_usd == Decimal("0.00522")


# --- token semantics: input includes cache, output includes reasoning ------------------

SEMANTICS: list[Any] = [
    pytest.param("openai", "gpt-4o-2024-08-06", id="openai"),
    pytest.param("anthropic", "claude-3-5-sonnet-20241022", id="anthropic"),
    pytest.param("gcp.gemini", "gemini-2.5-flash", id="gemini"),
    pytest.param("x_ai", "grok-3-mini", id="xai"),
]


@pytest.mark.parametrize(("provider", "model"), SEMANTICS)
def test_input_tokens_include_the_cache(provider: str, model: str) -> None:
    info = model_info(provider, model)
    prices = info.get_prices(AT)
    input_rate = flat_rate(info, "input_mtok")
    cache_read_rate = flat_rate(info, "cache_read_mtok")
    cache_write_rate = (
        flat_rate(info, "cache_write_mtok") if prices.cache_write_mtok is not None else input_rate
    )
    input_tokens, cache_read, cache_write, output_tokens = 10_000, 6_000, 1_000, 500
    expected = (
        (input_tokens - cache_read - cache_write) * input_rate
        + cache_read * cache_read_rate
        + cache_write * cache_write_rate
        + output_tokens * flat_rate(info, "output_mtok")
    ) / MTOK

    priced = price(
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )

    assert priced.cost_usd == expected


@pytest.mark.parametrize(("provider", "model"), SEMANTICS)
def test_reasoning_is_billed_as_part_of_output(provider: str, model: str) -> None:
    without = price(provider=provider, model=model, input_tokens=100, output_tokens=2_000)
    with_reasoning = price(
        provider=provider,
        model=model,
        input_tokens=100,
        output_tokens=2_000,
        reasoning_tokens=1_500,
    )
    assert with_reasoning.cost_usd == without.cost_usd


def test_cache_tokens_of_a_model_without_cache_prices_are_billed_as_input() -> None:
    info = model_info("mistral_ai", "mistral-large-latest")
    assert info.get_prices(AT).cache_read_mtok is None
    priced = price(
        provider="mistral_ai",
        model="mistral-large-latest",
        input_tokens=1_000,
        output_tokens=10,
        cache_read_tokens=800,
    )
    expected = (1_000 * flat_rate(info, "input_mtok") + 10 * flat_rate(info, "output_mtok")) / MTOK
    assert priced.cost_usd == expected


def test_long_context_tier_prices_every_token_at_the_tier_rate() -> None:
    info = model_info("gcp.gemini", "gemini-2.5-pro")
    input_price = info.get_prices(AT).input_mtok
    assert isinstance(input_price, TieredPrices)
    below = price(provider="gcp.gemini", model="gemini-2.5-pro", input_tokens=200_000)
    above = price(provider="gcp.gemini", model="gemini-2.5-pro", input_tokens=200_001)
    assert below.cost_usd == 200_000 * input_price.base / MTOK
    assert above.cost_usd == 200_001 * input_price.tiers[0].price / MTOK


# --- the price in force at the call's start time ---------------------------------------


def test_o3_price_cut_applies_from_its_start_date() -> None:
    cut = datetime(2025, 6, 10, tzinfo=UTC)
    before = price(model="o3", input_tokens=1_000_000, at=cut - timedelta(microseconds=1))
    after = price(model="o3", input_tokens=1_000_000, at=cut)
    assert (before.cost_usd, after.cost_usd) == (Decimal(10), Decimal(2))
    assert before.price_ref == after.price_ref == PRICE_REF


def test_deepseek_off_peak_window_uses_the_call_time_of_day() -> None:
    peak = price(
        provider="deepseek",
        model="deepseek-chat",
        input_tokens=1_000_000,
        at=datetime(2025, 8, 1, 10, 0, tzinfo=UTC),
    )
    off_peak = price(
        provider="deepseek",
        model="deepseek-chat",
        input_tokens=1_000_000,
        at=datetime(2025, 8, 1, 17, 0, tzinfo=UTC),
    )
    assert (peak.cost_usd, off_peak.cost_usd) == (Decimal("0.27"), Decimal("0.135"))


def test_a_call_time_in_another_zone_is_compared_in_utc() -> None:
    new_york = timezone(timedelta(hours=-4))
    # Both are June 9 in New York; the second is already June 10 in UTC, the cut's day.
    before = datetime(2025, 6, 9, 19, 59, tzinfo=new_york)
    after = datetime(2025, 6, 9, 20, 0, tzinfo=new_york)
    assert price(model="o3", input_tokens=1_000_000, at=before).cost_usd == Decimal(10)
    assert price(model="o3", input_tokens=1_000_000, at=after).cost_usd == Decimal(2)


# --- overrides -------------------------------------------------------------------------


def test_rate_card_override_beats_genai_prices() -> None:
    override = make_override(id=7, input_mtok="2", output_mtok="8")
    priced = price(input_tokens=1_000_000, output_tokens=500_000, overrides=(override,))
    assert priced == PricedCost(cost_usd=Decimal(6), cost_source="computed", price_ref="override:7")


def test_rate_card_bills_cache_at_its_own_rates_and_falls_back_to_input() -> None:
    own = make_override(input_mtok="4", output_mtok="10", cache_read_mtok="1", cache_write_mtok="5")
    fallback = make_override(input_mtok="4", output_mtok="10")

    def cost(override: PriceOverride) -> Decimal | None:
        return price(
            input_tokens=1_000_000,
            cache_read_tokens=600_000,
            cache_write_tokens=100_000,
            overrides=(override,),
        ).cost_usd

    # own rates: 300k at 4 + 600k at 1 + 100k at 5 = 2.3; fallback: 1M at 4 = 4
    assert cost(own) == Decimal("2.3")
    assert cost(fallback) == Decimal(4)


def test_rate_card_bills_reasoning_as_output() -> None:
    override = make_override(input_mtok="1", output_mtok="10")
    plain = price(input_tokens=0, output_tokens=1_000_000, overrides=(override,))
    reasoning = price(output_tokens=1_000_000, reasoning_tokens=900_000, overrides=(override,))
    assert plain.cost_usd == reasoning.cost_usd == Decimal(10)


def test_discount_override_applies_to_the_genai_prices_price() -> None:
    override = make_override(id=3, discount_pct="20")
    list_priced = price(input_tokens=1_000_000, output_tokens=100_000)
    discounted = price(input_tokens=1_000_000, output_tokens=100_000, overrides=(override,))
    assert list_priced.cost_usd is not None
    assert discounted == PricedCost(
        cost_usd=list_priced.cost_usd * Decimal("0.8"),
        cost_source="computed",
        price_ref=f"override:3+{PRICE_REF}",
    )


def test_discount_follows_the_list_price_in_force_at_the_call() -> None:
    override = make_override(model="o3", discount_pct="50")
    before = price(
        model="o3",
        input_tokens=1_000_000,
        at=datetime(2025, 6, 1, tzinfo=UTC),
        overrides=(override,),
    )
    after = price(
        model="o3",
        input_tokens=1_000_000,
        at=datetime(2025, 7, 1, tzinfo=UTC),
        overrides=(override,),
    )
    assert (before.cost_usd, after.cost_usd) == (Decimal(5), Decimal(1))


def test_rate_card_with_a_discount_discounts_the_rate_card() -> None:
    override = make_override(id=4, input_mtok="10", output_mtok="10", discount_pct="10")
    priced = price(input_tokens=1_000_000, overrides=(override,))
    assert priced == PricedCost(cost_usd=Decimal(9), cost_source="computed", price_ref="override:4")


@pytest.mark.parametrize(
    ("at", "expected_ref"),
    [
        pytest.param(datetime(2024, 12, 31, 23, 59, tzinfo=UTC), PRICE_REF, id="before"),
        pytest.param(datetime(2025, 1, 1, tzinfo=UTC), "override:1", id="from-is-inclusive"),
        pytest.param(datetime(2025, 3, 1, tzinfo=UTC), "override:1", id="inside"),
        pytest.param(datetime(2025, 7, 1, tzinfo=UTC), PRICE_REF, id="to-is-exclusive"),
    ],
)
def test_override_is_effective_dated(at: datetime, expected_ref: str) -> None:
    override = make_override(
        effective_from=datetime(2025, 1, 1, tzinfo=UTC),
        effective_to=datetime(2025, 7, 1, tzinfo=UTC),
        input_mtok="1",
        output_mtok="1",
    )
    assert price(input_tokens=1_000, at=at, overrides=(override,)).price_ref == expected_ref


def test_latest_effective_override_wins() -> None:
    older = make_override(id=1, effective_from=datetime(2024, 1, 1, tzinfo=UTC), input_mtok="3")
    newer = make_override(id=2, effective_from=datetime(2025, 1, 1, tzinfo=UTC), input_mtok="2")
    future = make_override(id=3, effective_from=datetime(2026, 1, 1, tzinfo=UTC), input_mtok="1")
    priced = price(input_tokens=1_000_000, overrides=(newer, future, older))
    assert (priced.cost_usd, priced.price_ref) == (Decimal(2), "override:2")


def test_same_start_latest_id_wins() -> None:
    first = make_override(id=10, input_mtok="3")
    second = make_override(id=11, input_mtok="2")
    assert price(input_tokens=1_000_000, overrides=(second, first)).price_ref == "override:11"


@pytest.mark.parametrize(
    "override",
    [
        pytest.param(
            make_override(provider="azure.ai.openai", input_mtok="1"), id="other-provider"
        ),
        pytest.param(make_override(model="gpt-4o-mini", input_mtok="1"), id="other-model"),
    ],
)
def test_override_for_another_provider_or_model_does_not_apply(override: PriceOverride) -> None:
    assert price(input_tokens=1_000, overrides=(override,)).price_ref == PRICE_REF


def test_override_matches_case_insensitively_and_by_the_genai_prices_model() -> None:
    override = make_override(provider="OpenAI", model="GPT-4o", input_mtok="1")
    priced = price(model="gpt-4o-2024-08-06", input_tokens=1_000_000, overrides=(override,))
    assert (priced.cost_usd, priced.price_ref) == (Decimal(1), "override:1")


def test_rate_card_prices_a_model_genai_prices_does_not_know() -> None:
    override = make_override(
        provider="ollama", model="llama3.1:8b", input_mtok="0.05", output_mtok="0.1"
    )
    priced = price(
        provider="ollama",
        model="llama3.1:8b",
        input_tokens=2_000_000,
        output_tokens=1_000_000,
        overrides=(override,),
    )
    assert priced == PricedCost(
        cost_usd=Decimal("0.2"), cost_source="computed", price_ref="override:1"
    )


def test_override_that_cannot_price_the_call_does_not_fall_back_to_list_price() -> None:
    no_output_rate = make_override(input_mtok="1")
    priced = price(input_tokens=1_000, output_tokens=10, overrides=(no_output_rate,))
    assert priced == PricedCost(cost_usd=None, cost_source="unpriced", price_ref=None)
    with_client = price(
        input_tokens=1_000,
        output_tokens=10,
        client_cost_usd=Decimal("0.01"),
        overrides=(no_output_rate,),
    )
    assert (with_client.cost_source, with_client.cost_usd) == ("client", Decimal("0.01"))


def test_discount_on_a_model_genai_prices_does_not_know_is_unpriced() -> None:
    override = make_override(provider="ollama", model="llama3.1:8b", discount_pct="10")
    priced = price(provider="ollama", model="llama3.1:8b", input_tokens=10, overrides=(override,))
    assert priced.cost_source == "unpriced"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"effective_from": datetime(2025, 1, 1)}, id="naive-from"),
        pytest.param({"effective_to": datetime(2023, 1, 1, tzinfo=UTC)}, id="to-before-from"),
        pytest.param({"discount_pct": "120"}, id="discount-over-100"),
        pytest.param({"input_mtok": "-1"}, id="negative-rate"),
        pytest.param({"output_mtok": "NaN"}, id="nan-rate"),
    ],
)
def test_invalid_overrides_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_override(**changes)


# --- unpriced and client costs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        pytest.param("openai", "gpt-9-ultra-imaginary", id="unknown-model"),
        pytest.param(
            "ibm.watsonx.ai", "ibm/granite-13b-chat-v2", id="provider-not-in-genai-prices"
        ),
        pytest.param("vllm", "gpt-4o", id="self-hosted-name-is-not-guessed"),
        pytest.param(None, "my-finetune", id="no-provider-unknown-model"),
        pytest.param("openai", None, id="no-model"),
        pytest.param("openai", "", id="empty-model"),
    ],
)
def test_unknown_model_is_unpriced_null_not_zero(provider: str | None, model: str | None) -> None:
    priced = price(provider=provider, model=model, input_tokens=1_000, output_tokens=100)
    assert priced == PricedCost(cost_usd=None, cost_source="unpriced", price_ref=None)


def test_unknown_model_with_client_cost_is_client() -> None:
    priced = price(
        model="gpt-9-ultra-imaginary",
        input_tokens=1_000,
        output_tokens=100,
        client_cost_usd=Decimal("0.0123"),
    )
    assert priced == PricedCost(cost_usd=Decimal("0.0123"), cost_source="client", price_ref=None)


def test_known_model_is_computed_even_when_the_client_reports_a_cost() -> None:
    priced = price(input_tokens=1_000, client_cost_usd=Decimal("99"))
    assert priced.cost_source == "computed"
    assert priced.cost_usd != Decimal("99")


def test_call_without_any_usage_is_unpriced_not_free() -> None:
    assert price(input_tokens=0, output_tokens=0).cost_source == "unpriced"
    assert price(client_cost_usd=Decimal("0.5")).cost_source == "client"


def test_provider_absent_model_picks_the_provider() -> None:
    assert price(provider=None, model="claude-3-5-sonnet-20241022", input_tokens=1_000) == price(
        provider="anthropic", model="claude-3-5-sonnet-20241022", input_tokens=1_000
    )


def test_provider_name_case_does_not_matter() -> None:
    assert price(provider="OpenAI", input_tokens=1_000) == price(
        provider="openai", input_tokens=1_000
    )


def test_cache_larger_than_input_is_unpriced_rather_than_wrong() -> None:
    priced = price(input_tokens=10, cache_read_tokens=500)
    assert priced.cost_source == "unpriced"


def test_naive_time_and_negative_counts_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        price(input_tokens=1, at=datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        price(input_tokens=-1)


@pytest.mark.parametrize(
    ("request_model", "response_model", "expected"),
    [
        ("gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ("gpt-4o", None, "gpt-4o"),
        ("gpt-4o", "", "gpt-4o"),
        (None, "gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        (None, None, None),
    ],
)
def test_choose_model_prefers_the_response_model(
    request_model: str | None, response_model: str | None, expected: str | None
) -> None:
    assert choose_model(request_model, response_model) == expected


# --- offline, bundled snapshot only ----------------------------------------------------


def test_prices_never_touch_the_network() -> None:
    # A fresh interpreter where opening any socket fails, from import to pricing.
    script = textwrap.dedent(
        """
        import socket
        from datetime import UTC, datetime

        def refuse(*args, **kwargs):
            raise AssertionError("network access attempted")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from services.pricing import price_call

        priced = price_call(
            provider="anthropic", model="claude-3-5-sonnet-20241022",
            input_tokens=1000, output_tokens=100, cache_read_tokens=0,
            cache_write_tokens=0, reasoning_tokens=0, client_cost_usd=None,
            at=datetime(2025, 8, 1, tzinfo=UTC),
        )
        print(priced.cost_source, priced.cost_usd)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["computed", "0.0045"]


def test_a_snapshot_fetched_by_genai_prices_updater_is_not_used() -> None:
    # genai_prices.UpdatePrices installs what it downloads with set_custom_snapshot;
    # an empty stand-in would make calc_price fail, our prices must not change.
    before = price(input_tokens=1_000)
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    try:
        with pytest.raises(LookupError):
            calc_price(Usage(input_tokens=1), "gpt-4o", provider_id="openai")
        assert price(input_tokens=1_000) == before
    finally:
        set_custom_snapshot(None)


def test_fast_path_equals_calc_price_for_every_model_in_the_snapshot() -> None:
    dates = (datetime(2024, 6, 1, 3, tzinfo=UTC), datetime(2026, 6, 1, 18, tzinfo=UTC))
    usages = ((1_000, 300, 200, 50, 100), (300_000, 5_000, 100_000, 20_000, 0), (7, 3, 0, 0, 0))
    mismatches = []
    checked = 0
    for provider in bundled_providers:
        for model in provider.models:
            for at in dates:
                for input_tokens, output_tokens, cache_read, cache_write, reasoning in usages:
                    usage = Usage(
                        input_tokens=input_tokens,
                        output_tokens=output_tokens,
                        cache_read_tokens=cache_read,
                        cache_write_tokens=cache_write,
                        output_reasoning_tokens=reasoning,
                    )
                    try:
                        expected: Decimal | None = model.calc_price(
                            usage, provider, genai_request_timestamp=at
                        ).total_price
                    except ValueError:
                        expected = None
                    got = list_price(
                        provider=provider.id,
                        model=model.id,
                        input_tokens=input_tokens,
                        output_tokens=output_tokens,
                        cache_read_tokens=cache_read,
                        cache_write_tokens=cache_write,
                        reasoning_tokens=reasoning,
                        at=at,
                    )
                    checked += 1
                    resolved = resolve_model(provider.id, model.id)
                    # A model id shadowed by an earlier matching model prices as that one.
                    shadowed = resolved is None or resolved[1] is not model
                    if not shadowed and got != expected:
                        mismatches.append((provider.id, model.id, at, input_tokens, expected, got))
    assert checked > 10_000
    assert mismatches == []


def test_model_resolution_is_cached() -> None:
    resolve_model.cache_clear()
    price(input_tokens=1)
    price(input_tokens=2)
    assert resolve_model.cache_info().hits >= 1
