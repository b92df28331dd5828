"""Random and mutated OTLP bodies in both encodings: never a 5xx, never a partial store."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from bench.otlp_payloads import build_export_request
from services.collector.app import create_app
from tests.collector.conftest import Keys

VALID_PROTO = build_export_request(n_spans=8, seed=3).SerializeToString()
_doc = json.loads(json_format.MessageToJson(build_export_request(n_spans=8, seed=4)))
for _rs in _doc["resourceSpans"]:  # OTLP/JSON uses hex ids, not protobuf-JSON base64
    for _ss in _rs["scopeSpans"]:
        for _span in _ss["spans"]:
            for _key in ("traceId", "spanId", "parentSpanId"):
                if _key in _span:
                    import base64

                    _span[_key] = base64.b64decode(_span[_key]).hex()
VALID_JSON = json.dumps(_doc).encode()


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) if draw(st.booleans()) else bytes(data)


@pytest.fixture
def client(database_url: str, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    app = create_app(database_url=database_url, broker_url=None)
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


def _stored(session_factory: sessionmaker[Session]) -> set[bytes]:
    with session_factory() as session:
        return set(session.execute(text("select span_id from llm_calls")).scalars())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=st.one_of(
        st.tuples(st.just("application/x-protobuf"), mutated(VALID_PROTO)),
        st.tuples(st.just("application/json"), mutated(VALID_JSON)),
        st.tuples(st.sampled_from(["application/x-protobuf", "application/json"]), st.binary()),
    )
)
def test_random_and_mutated_bodies_never_5xx_nor_partially_stored(
    client: TestClient,
    keys: Keys,
    session_factory: sessionmaker[Session],
    case: tuple[str, bytes],
) -> None:
    content_type, body = case
    before = _stored(session_factory)
    response = client.post(
        "/v1/traces",
        content=body,
        headers={"content-type": content_type, "authorization": f"Bearer {keys.ingest}"},
    )
    assert response.status_code < 500, response.content
    after = _stored(session_factory)
    if response.status_code != 200:
        assert after == before
