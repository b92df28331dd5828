"""SDK → real collector → PostgreSQL: the stored cost is genai-prices' price for the usage."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import costline
import genai_prices
import openai
import pytest
from genai_prices import Usage
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.keys.service import create_key
from tests.collector.conftest import RunningCollector, start_collector
from tests.sdk.fake_llm import CHAT_MODEL, CHAT_USAGE, FakeLLMServer


@pytest.fixture
def running_collector(
    database_url: str, session_factory: sessionmaker[Session]
) -> Iterator[RunningCollector]:
    yield from start_collector(database_url)


def test_tracked_calls_reach_postgres_priced_like_genai_prices(
    running_collector: RunningCollector, session_factory: sessionmaker[Session],
    server: FakeLLMServer, isolated_runtime: None,
) -> None:
    with session_factory.begin() as session:
        key = create_key(session, project_name="e2e", scope="ingest").key
    provider = TracerProvider()
    costline.configure(endpoint=running_collector.url, api_key=key, service_name="support-bot",
                       environment="staging", tracer_provider=provider)
    costline.instrument()
    try:
        client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
        claude = anthropic.Anthropic(api_key="sk-ant", base_url=server.url, max_retries=0)

        @costline.track(feature="support.answer", customer="acme")
        def answer() -> None:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            claude.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                   messages=[{"role": "user", "content": "hi"}])

        answer()
        assert costline.flush(timeout_s=10)
    finally:
        costline.uninstrument()
        provider.shutdown()

    with session_factory() as session:
        rows = {row["provider"]: row for row in session.execute(
            text("select * from llm_calls")).mappings()}
    assert set(rows) == {"openai", "anthropic"}
    gpt = rows["openai"]
    assert (gpt["feature"], gpt["customer"]) == ("support.answer", "acme")
    assert (gpt["service_name"], gpt["environment"]) == ("support-bot", "staging")
    assert gpt["request_id"] and gpt["request_id"] == rows["anthropic"]["request_id"]
    assert (gpt["input_tokens"], gpt["cache_read_tokens"], gpt["reasoning_tokens"]) == (
        CHAT_USAGE["prompt_tokens"], 100, 12)
    expected = genai_prices.calc_price(
        Usage(input_tokens=120, cache_read_tokens=100, output_tokens=30),
        model_ref=CHAT_MODEL, provider_id="openai", genai_request_timestamp=gpt["started_at"],
    ).total_price
    assert gpt["cost_usd"] == expected and gpt["cost_source"] == "computed"
    claude_row = rows["anthropic"]
    assert claude_row["input_tokens"] == 10 + 1000 + 200  # OTel: input includes cache
    assert (claude_row["cache_read_tokens"], claude_row["cache_write_tokens"]) == (1000, 200)
