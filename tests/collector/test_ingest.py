"""The collector end to end: real HTTP, real PostgreSQL, real OTLP exporter."""

from __future__ import annotations

import gzip
import json
import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import genai_prices
from genai_prices import Usage
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from bench.otlp_payloads import build_export_request
from services.keys.service import revoke_key
from services.models import PriceOverrideRow
from tests.collector.conftest import Keys, RunningCollector, start_collector


def _kv(key: str, value: object) -> KeyValue:
    any_value = AnyValue()
    if isinstance(value, bool):
        any_value.bool_value = value
    elif isinstance(value, int):
        any_value.int_value = value
    elif isinstance(value, float):
        any_value.double_value = value
    else:
        any_value.string_value = str(value)
    return KeyValue(key=key, value=any_value)


def _request(*spans: Span, resource: dict[str, object] | None = None) -> ExportTraceServiceRequest:
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    for key, value in (resource or {"service.name": "shop"}).items():
        rs.resource.attributes.append(_kv(key, value))
    return ExportTraceServiceRequest(resource_spans=[rs])


def _span(
    attributes: dict[str, object],
    *,
    start: datetime | None = None,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
) -> Span:
    start = start or datetime.now(UTC) - timedelta(minutes=5)
    start_ns = int(start.timestamp()) * 1_000_000_000 + start.microsecond * 1000
    return Span(
        trace_id=trace_id or os.urandom(16),
        span_id=span_id or os.urandom(8),
        name="chat",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + 900_000_000,
        attributes=[_kv(k, v) for k, v in attributes.items()],
    )


GPT4O = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "costline.feature": "search",
    "costline.customer": "globex",
    "costline.request.id": "req-1",
}


def _rows(session_factory: sessionmaker[Session], sql: str = "select * from llm_calls") -> list:
    with session_factory() as session:
        return list(session.execute(text(sql)).mappings())


def test_spans_from_the_real_otlp_exporter_are_stored_once_and_priced_like_genai_prices(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "checkout", "deployment.environment.name": "prod"}
        )
    )
    exporter = OTLPSpanExporter(
        endpoint=f"{collector.url}/v1/traces", headers={"authorization": f"Bearer {keys.ingest}"}
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    conventions = {
        "current": GPT4O,
        "legacy": {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": 500,
            "gen_ai.usage.completion_tokens": 50,
        },
        "openinference": {
            "llm.model_name": "claude-3-5-haiku-20241022",
            "llm.provider": "anthropic",
            "llm.token_count.prompt": 2000,
            "llm.token_count.completion": 100,
            "llm.token_count.prompt_details.cache_read": 1500,
        },
        "openllmetry": {
            "gen_ai.system": "Anthropic",
            "llm.request.type": "chat",
            "gen_ai.request.model": "claude-sonnet-4-20250514",
            "gen_ai.usage.prompt_tokens": 800,
            "gen_ai.usage.completion_tokens": 120,
            "llm.usage.total_tokens": 920,
            "traceloop.association.properties.customer_id": "initech",
        },
    }
    for name, attributes in conventions.items():
        with tracer.start_as_current_span(f"llm {name}", attributes=attributes):
            pass
    with tracer.start_as_current_span("not an llm span", attributes={"http.method": "GET"}):
        pass
    provider.shutdown()

    rows = {row["request_model"]: row for row in _rows(session_factory)}
    assert len(rows) == 4
    gpt = rows["gpt-4o"]
    assert gpt["service_name"] == "checkout" and gpt["environment"] == "prod"
    assert (gpt["feature"], gpt["customer"], gpt["request_id"]) == ("search", "globex", "req-1")
    expected = genai_prices.calc_price(
        Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=1000),
        model_ref="gpt-4o-2024-08-06",
        provider_id="openai",
        genai_request_timestamp=gpt["started_at"],
    ).total_price
    assert gpt["cost_usd"] == expected and gpt["cost_source"] == "computed"
    haiku = rows["claude-3-5-haiku-20241022"]
    assert (haiku["input_tokens"], haiku["cache_read_tokens"]) == (2000, 1500)
    assert (
        haiku["cost_usd"]
        == genai_prices.calc_price(
            Usage(input_tokens=2000, output_tokens=100, cache_read_tokens=1500),
            model_ref="claude-3-5-haiku-20241022",
            provider_id="anthropic",
            genai_request_timestamp=haiku["started_at"],
        ).total_price
    )
    sonnet = rows["claude-sonnet-4-20250514"]
    assert (sonnet["input_tokens"], sonnet["output_tokens"]) == (800, 120)  # total never added
    assert sonnet["provider"] == "anthropic" and sonnet["customer"] == "initech"


def test_resent_batch_is_stored_once(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    body = build_export_request(n_spans=512, seed=7).SerializeToString()
    first = collector.post(body, key=keys.ingest)
    second = collector.post(body, key=keys.ingest)
    assert first.status_code == second.status_code == 200
    assert _rows(session_factory, "select count(*) as n from llm_calls")[0]["n"] == 512
    metrics = httpx_get(collector, "/metrics")
    assert "costline_collector_spans_duplicate_total 512.0" in metrics


def httpx_get(collector: RunningCollector, path: str) -> str:
    import httpx

    return httpx.get(f"{collector.url}{path}").text


def test_json_encoding_with_hex_ids_gzip_and_string_int64(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    start_ns = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp() * 1e9)
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat gpt-4o",
                                "kind": 3,
                                "startTimeUnixNano": str(start_ns),
                                "endTimeUnixNano": str(start_ns + 10**9),
                                "someFutureField": True,
                                "attributes": [
                                    {
                                        "key": "gen_ai.provider.name",
                                        "value": {"stringValue": "openai"},
                                    },
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "gpt-4o"},
                                    },
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "100"},
                                    },
                                    {
                                        "key": "gen_ai.usage.output_tokens",
                                        "value": {"intValue": 20},
                                    },
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    body = gzip.compress(json.dumps(document).encode())
    response = collector.post(
        body,
        key=keys.ingest,
        content_type="application/json; charset=utf-8",
        **{"content-encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    row = _rows(session_factory)[0]
    assert row["trace_id"].hex() == "5b8efff798038103d269b633813fc60c"
    assert (row["input_tokens"], row["output_tokens"]) == (100, 20)


def test_invalid_spans_are_rejected_one_by_one_and_the_rest_kept(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    good = _span(GPT4O)
    negative = _span({**GPT4O, "gen_ai.usage.output_tokens": -5})
    future = _span(GPT4O, start=datetime.now(UTC) + timedelta(days=3))
    zero_start = _span(GPT4O)
    zero_start.start_time_unix_nano = 0
    short_id = _span(GPT4O, trace_id=b"\x01" * 5)
    body = _request(good, negative, future, zero_start, short_id).SerializeToString()

    response = collector.post(body, key=keys.ingest)

    assert response.status_code == 200
    reply = ExportTraceServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_spans == 4
    assert "start_time_in_future" in reply.partial_success.error_message
    stored = _rows(session_factory)
    assert [row["span_id"] for row in stored] == [good.span_id]


def test_unknown_model_is_stored_unpriced_never_zero(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    span = _span(
        {**GPT4O, "gen_ai.request.model": "acme-llm-9000", "gen_ai.response.model": "acme-llm-9000"}
    )
    assert collector.post(_request(span).SerializeToString(), key=keys.ingest).status_code == 200
    row = _rows(session_factory)[0]
    assert row["cost_usd"] is None and row["cost_source"] == "unpriced"
    assert 'costline_collector_spans_unpriced_total{model="acme-llm-9000"} 1.0' in httpx_get(
        collector, "/metrics"
    )


def test_client_reported_cost_is_used_when_no_price_is_known(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    span = _span(
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "house-model",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.usage.cost": 0.0125,
        }
    )
    assert collector.post(_request(span).SerializeToString(), key=keys.ingest).status_code == 200
    row = _rows(session_factory)[0]
    assert (row["cost_usd"], row["cost_source"]) == (Decimal("0.0125"), "client")


def test_project_override_wins_over_genai_prices(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        session.add(
            PriceOverrideRow(
                project_id=keys.project_id,
                provider="openai",
                model="gpt-4o-2024-08-06",
                effective_from=datetime(2020, 1, 1, tzinfo=UTC),
                input_mtok=Decimal("1"),
                output_mtok=Decimal("2"),
                cache_read_mtok=Decimal("0.5"),
            )
        )
    body = _request(_span(GPT4O)).SerializeToString()
    assert collector.post(body, key=keys.ingest).status_code == 200
    row = _rows(session_factory)[0]
    # 200 uncached input at $1, 1000 cache reads at $0.5, 300 output at $2 per MTok = $0.0013
    assert row["cost_usd"] == Decimal("0.0013")
    assert row["price_ref"].startswith("override")


def test_backfilled_span_goes_to_its_own_days_partition(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    old = datetime(2025, 3, 9, 15, 0, tzinfo=UTC)
    assert (
        collector.post(
            _request(_span(GPT4O, start=old)).SerializeToString(), key=keys.ingest
        ).status_code
        == 200
    )
    where = _rows(session_factory, "select tableoid::regclass::text as p from llm_calls")
    assert where[0]["p"] == "llm_calls_p20250309"


def test_keys_and_content_types_are_checked(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    body = _request(_span(GPT4O)).SerializeToString()
    assert collector.post(body, key=None).status_code == 401
    assert collector.post(body, key="cl_ingest_unknown").status_code == 401
    assert collector.post(body, key=keys.read).status_code == 403
    assert collector.post(body, key=keys.ingest, content_type="text/plain").status_code == 415
    assert collector.post(b"\xff\x00garbage", key=keys.ingest).status_code == 400
    assert collector.post(body[: len(body) // 2], key=keys.ingest).status_code == 400
    assert (
        collector.post(b"{not json", key=keys.ingest, content_type="application/json").status_code
        == 400
    )
    assert collector.post(body, key=keys.ingest, **{"content-encoding": "br"}).status_code == 415
    assert _rows(session_factory, "select count(*) as n from llm_calls")[0]["n"] == 0


def test_revoked_key_is_refused(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        from services.keys.service import create_key

        doomed = create_key(session, project_name="acme", scope="ingest")
        revoke_key(session, key_id=doomed.key_id)
    response = collector.post(_request(_span(GPT4O)).SerializeToString(), key=doomed.key)
    assert response.status_code == 401


def test_oversized_body_is_413(
    database_url: str, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    for running in start_collector(database_url, max_body_bytes=64 * 1024):
        bomb = gzip.compress(b"\x00" * (8 * 1024 * 1024))
        response = running.post(bomb, key=keys.ingest, **{"content-encoding": "gzip"})
        assert response.status_code == 413
        plain = running.post(b"\x00" * (65 * 1024), key=keys.ingest)
        assert plain.status_code == 413


def test_saturated_collector_answers_503_with_retry_after(
    database_url: str, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    for running in start_collector(database_url, max_inflight=0):
        started = time.monotonic()
        response = running.post(_request(_span(GPT4O)).SerializeToString(), key=keys.ingest)
        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()
        assert time.monotonic() - started < 1.0


def test_unreachable_database_answers_503_quickly(keys: Keys) -> None:
    from tests.cli.helpers import free_port

    dead = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    for running in start_collector(dead):
        for _ in range(3):
            started = time.monotonic()
            response = running.post(_request(_span(GPT4O)).SerializeToString(), key=keys.ingest)
            assert response.status_code == 503
            assert "retry-after" in response.headers
            assert time.monotonic() - started < 6.0


def test_nul_characters_are_replaced_not_a_server_error(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    span = _span({**GPT4O, "costline.feature": "se\x00arch", "costline.tag.k\x00ey": "v\x00"})
    span.name = "chat\x00"
    response = collector.post(_request(span).SerializeToString(), key=keys.ingest)
    assert response.status_code == 200
    row = _rows(session_factory)[0]
    assert row["feature"] == "se\ufffdarch" and row["span_name"] == "chat\ufffd"


def test_batch_mixing_new_and_resent_spans_stores_only_the_new_ones(
    collector: RunningCollector, keys: Keys, session_factory: sessionmaker[Session]
) -> None:
    old = [_span(GPT4O) for _ in range(3)]
    assert collector.post(_request(*old).SerializeToString(), key=keys.ingest).status_code == 200
    new = [_span(GPT4O) for _ in range(2)]
    mixed = _request(*old[:2], *new, new[0]).SerializeToString()  # a duplicate inside too
    assert collector.post(mixed, key=keys.ingest).status_code == 200
    stored = [row["span_id"] for row in _rows(session_factory)]
    assert sorted(stored) == sorted(span.span_id for span in old + new)
