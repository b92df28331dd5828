"""The OTLP/HTTP trace codec: bodies, encodings, span validation and replies."""

from __future__ import annotations

import base64
import gzip
import json
import math
import struct
import time
import tracemalloc
import zlib
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from bench.otlp_payloads import build_export_request
from services.collector import otlp
from services.collector.otlp import (
    Encoding,
    OtlpDecodeError,
    RawSpan,
    decode_body,
    encode_response,
    encode_status,
    iter_spans,
    parse_content_type,
    parse_export_request,
)

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
PARENT_ID = bytes.fromhex("eee19b7ec3c1b173")
START_NS = 1_748_822_400_000_000_000


# --- helpers --------------------------------------------------------------------------------


def decode(
    body: bytes, *, encoding: Encoding, content_encoding: str | None = None
) -> list[RawSpan]:
    payload = decode_body(body, content_encoding=content_encoding)
    request = parse_export_request(payload, encoding=encoding)
    return list(iter_spans(request, rejected=[]))


def otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The request as OTLP/JSON: hex ids, integer enums, int64s as strings."""
    document: dict[str, Any] = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for obj in (span, *span.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in obj:
                            obj[key] = base64.b64decode(obj[key]).hex()
    return document


def json_format_reference(body: bytes) -> ExportTraceServiceRequest:
    """OTLP/JSON read the slow, obvious way: ids to base64, then json_format.ParseDict."""
    document = json.loads(body)
    for resource_spans in document.get("resourceSpans") or []:
        for scope_spans in resource_spans.get("scopeSpans") or []:
            for span in scope_spans.get("spans") or []:
                for obj in (span, *(span.get("links") or [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if isinstance(obj.get(key), str):
                            obj[key] = base64.b64encode(bytes.fromhex(obj[key])).decode()
    request = ExportTraceServiceRequest()
    json_format.ParseDict(document, request, ignore_unknown_fields=True)
    return request


def make_span(
    *,
    trace_id: bytes = TRACE_ID,
    span_id: bytes = SPAN_ID,
    parent_span_id: bytes = b"",
    start: int = START_NS,
    name: str = "chat gpt-4o",
    attributes: dict[str, AnyValue] | None = None,
) -> Span:
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=min(start + 1_500_000_000, 2**64 - 1) if start else 0,
    )
    for key, value in (attributes or {}).items():
        span.attributes.append(KeyValue(key=key, value=value))
    return span


def make_request(*spans: Span, resource: dict[str, str] | None = None) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (resource or {"service.name": "support-bot"}).items():
        resource_spans.resource.attributes.append(
            KeyValue(key=key, value=AnyValue(string_value=value))
        )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.openai_v2"
    scope_spans.spans.extend(spans)
    return request


def gzip_bomb(mebibytes: int) -> bytes:
    """A valid gzip stream of `mebibytes` MiB of zeros, about 1 KiB per MiB, built in O(size)
    CRC work: after a full flush every further MiB of zeros compresses to the same bytes."""
    zeros = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    deflate = first + repeat * (mebibytes - 1) + compressor.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + deflate + struct.pack("<II", crc, (mebibytes << 20) & 0xFFFF_FFFF)


def assert_valid_ids(span: RawSpan) -> None:
    assert len(span.trace_id) == 16 and any(span.trace_id)
    assert len(span.span_id) == 8 and any(span.span_id)
    assert span.parent_span_id is None or (
        len(span.parent_span_id) == 8 and any(span.parent_span_id)
    )
    assert span.start_unix_nano > 0


# --- round trips ----------------------------------------------------------------------------


def test_protobuf_round_trip_yields_every_span_with_its_attributes() -> None:
    request = build_export_request(n_spans=512, seed=11)
    sent = list(request.resource_spans[0].scope_spans[0].spans)

    spans = decode(request.SerializeToString(), encoding="protobuf")

    assert len(spans) == 512
    for raw, original in zip(spans, sent, strict=True):
        assert raw.trace_id == original.trace_id
        assert raw.span_id == original.span_id
        assert raw.parent_span_id == original.parent_span_id
        assert raw.name == original.name
        assert raw.kind == Span.SPAN_KIND_CLIENT
        assert raw.start_unix_nano == original.start_time_unix_nano
        assert raw.end_unix_nano == original.end_time_unix_nano
        assert raw.scope_name == "costline"
        assert raw.resource["service.name"] == "support-bot"
        assert raw.resource["telemetry.sdk.language"] == "python"
        assert raw.attributes["gen_ai.request.model"] == original.name.split(" ", 1)[1]
        assert isinstance(raw.attributes.get("gen_ai.usage.input_tokens", 0), int)
        assert len(raw.attributes) == len(original.attributes)
    finish_reasons = [
        s.attributes["gen_ai.response.finish_reasons"]
        for s in spans
        if "gen_ai.response.finish_reasons" in s.attributes
    ]
    assert finish_reasons and all(isinstance(r, tuple) and r for r in finish_reasons)


def test_payload_builder_is_deterministic_and_fans_requests_out() -> None:
    request = build_export_request(n_spans=512, seed=4)
    assert (
        request.SerializeToString() == build_export_request(n_spans=512, seed=4).SerializeToString()
    )
    spans = decode(request.SerializeToString(), encoding="protobuf")
    request_ids = [s.attributes["costline.request.id"] for s in spans]
    assert len(set(request_ids)) < len(spans)  # several calls per user-facing request
    assert len({s.span_id for s in spans}) == 512
    assert len({s.attributes["gen_ai.request.model"] for s in spans}) >= 8


def test_resource_attributes_are_one_shared_dict_per_resource_spans() -> None:
    request = build_export_request(n_spans=8, seed=1)
    spans = decode(request.SerializeToString(), encoding="protobuf")
    assert all(span.resource is spans[0].resource for span in spans)


def test_json_round_trip_matches_protobuf() -> None:
    request = build_export_request(n_spans=128, seed=5)
    from_protobuf = decode(request.SerializeToString(), encoding="protobuf")

    from_json = decode(json.dumps(otlp_json(request)).encode(), encoding="json")

    assert from_json == from_protobuf


def test_json_accepts_hex_ids_string_and_number_int64s_integer_enums_and_unknown_fields() -> None:
    body = b"""{
          "resourceSpans": [{
            "resource": {
              "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}],
              "futureResourceField": {"nested": [1, 2]}
            },
            "scopeSpans": [{
              "scope": {"name": "openlit", "version": "1.3"},
              "spans": [{
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "spanId": "eee19b7ec3c1b174",
                "parentSpanId": "",
                "name": "chat claude-sonnet-4-20250514",
                "kind": 3,
                "startTimeUnixNano": "1748822400000000000",
                "endTimeUnixNano": 1748822402000000000,
                "attributes": [
                  {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
                  {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 80}},
                  {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.0042}},
                  {"key": "gen_ai.request.stream", "value": {"boolValue": true}},
                  {"key": "gen_ai.response.finish_reasons",
                   "value": {"arrayValue": {"values": [{"stringValue": "end_turn"}]}}}
                ],
                "status": {"code": 2, "message": "overloaded"},
                "links": [{"traceId": "5b8efff798038103d269b633813fc60c",
                           "spanId": "eee19b7ec3c1b173"}],
                "someFutureSpanField": true
              }]
            }]
          }],
          "unknownTopLevel": "ignored"
        }"""

    request = parse_export_request(body, encoding="json")
    [span] = iter_spans(request, rejected=[])

    [link] = request.resource_spans[0].scope_spans[0].spans[0].links
    assert (link.trace_id, link.span_id) == (TRACE_ID, PARENT_ID)
    assert span.trace_id == TRACE_ID
    assert span.span_id == SPAN_ID
    assert span.parent_span_id is None
    assert span.kind == 3
    assert span.start_unix_nano == START_NS
    assert span.end_unix_nano == START_NS + 2_000_000_000
    assert span.status_code == 2 and span.status_message == "overloaded"
    assert span.scope_name == "openlit"
    assert span.resource == {"service.name": "api"}
    assert span.attributes == {
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 80,
        "gen_ai.usage.cost": 0.0042,
        "gen_ai.request.stream": True,
        "gen_ai.response.finish_reasons": ("end_turn",),
    }


def test_json_with_base64_ids_is_rejected_with_a_hint() -> None:
    body = json.dumps(otlp_json(make_request(make_span())))
    body = body.replace(TRACE_ID.hex(), base64.b64encode(TRACE_ID).decode())

    with pytest.raises(OtlpDecodeError) as caught:
        parse_export_request(body.encode(), encoding="json")

    assert caught.value.status == 400
    assert caught.value.reason == "bad_json"
    assert "hex" in caught.value.message


def test_json_reads_enum_names_snake_case_keys_base64_bytes_and_quoted_doubles() -> None:
    body = json.dumps(
        {
            "resource_spans": [
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "trace_id": TRACE_ID.hex(),
                                    "span_id": SPAN_ID.hex(),
                                    "parent_span_id": PARENT_ID.hex(),
                                    "kind": "SPAN_KIND_SERVER",
                                    "start_time_unix_nano": "1e3",
                                    "status": {"code": "STATUS_CODE_ERROR"},
                                    "attributes": [
                                        {"key": "nan", "value": {"doubleValue": "NaN"}},
                                        {"key": "inf", "value": {"double_value": "-Infinity"}},
                                        {"key": "blob", "value": {"bytesValue": "AP8"}},
                                        {"key": "null", "value": {"stringValue": None}},
                                    ],
                                },
                                {
                                    "traceId": TRACE_ID.hex(),
                                    "spanId": PARENT_ID.hex(),
                                    "startTimeUnixNano": START_NS,
                                    "kind": "SPAN_KIND_FROM_THE_FUTURE",
                                },
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()

    first, second = decode(body, encoding="json")

    assert (first.trace_id, first.span_id, first.parent_span_id) == (TRACE_ID, SPAN_ID, PARENT_ID)
    assert first.kind == Span.SPAN_KIND_SERVER
    assert first.start_unix_nano == 1000
    assert first.status_code == 2
    nan = first.attributes["nan"]
    assert isinstance(nan, float) and math.isnan(nan)
    assert first.attributes["inf"] == -math.inf
    assert first.attributes["blob"] == "00ff"
    assert "null" not in first.attributes
    assert second.kind == 0  # an unknown enum name is ignored like an unknown field


@pytest.mark.parametrize(
    "attribute",
    [
        {"key": "k", "value": {"stringValue": "a", "intValue": 1}},  # two oneof members
        {"key": "k", "value": {"doubleValue": "fast"}},
        {"key": "k", "value": {"boolValue": "true"}},
        {"key": "k", "value": {"intValue": 1.5}},
        {"key": "k", "value": {"intValue": True}},
        {"key": "k", "value": {"intValue": "9223372036854775808"}},
        {"key": "k", "value": {"stringValue": "\ud800"}},
        {"key": 7, "value": {"stringValue": "a"}},
        "k=v",
    ],
)
def test_json_value_of_the_wrong_type_is_400(attribute: Any) -> None:
    document = otlp_json(make_request(make_span()))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [attribute]
    with pytest.raises(OtlpDecodeError) as caught:
        parse_export_request(json.dumps(document).encode(), encoding="json")
    assert caught.value.status == 400
    assert caught.value.reason == "bad_json"


def test_json_nested_too_deeply_is_400() -> None:
    value: dict[str, Any] = {"intValue": 1}
    for _ in range(40):
        value = {"arrayValue": {"values": [value]}}
    document = otlp_json(make_request(make_span()))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [
        {"key": "deep", "value": value}
    ]
    with pytest.raises(OtlpDecodeError) as caught:
        parse_export_request(json.dumps(document).encode(), encoding="json")
    assert "nested more than" in caught.value.message


def test_attribute_values_of_every_kind_are_read_once_into_plain_values() -> None:
    nested = AnyValue()
    nested.kvlist_value.values.append(KeyValue(key="cached_tokens", value=AnyValue(int_value=5)))
    nested.kvlist_value.values.append(KeyValue(key="raw", value=AnyValue(bytes_value=b"\x01")))
    mixed = AnyValue()
    mixed.array_value.values.extend(
        [
            AnyValue(string_value="a"),
            AnyValue(int_value=2),
            AnyValue(double_value=0.5),
            AnyValue(bool_value=False),
            AnyValue(bytes_value=b"\xff"),
            AnyValue(),
        ]
    )
    mixed.array_value.values.add().array_value.values.add().int_value = 7
    span = make_span(
        attributes={
            "s": AnyValue(string_value="x"),
            "i": AnyValue(int_value=-(2**63)),
            "d": AnyValue(double_value=1.5),
            "b": AnyValue(bool_value=True),
            "bytes": AnyValue(bytes_value=b"\x00\xab"),
            "usage": nested,
            "array": mixed,
            "empty": AnyValue(),
            "profiling_only": AnyValue(string_value_strindex=3),
        }
    )

    [raw] = decode(make_request(span).SerializeToString(), encoding="protobuf")

    assert raw.attributes == {
        "s": "x",
        "i": -(2**63),
        "d": 1.5,
        "b": True,
        "bytes": "00ab",
        "usage": '{"cached_tokens":5,"raw":"01"}',
        "array": ("a", 2, 0.5, False, "ff", "[7]"),
    }


def test_attribute_prefixes_and_filter_keep_only_the_wanted_keys() -> None:
    span = make_span(
        attributes={
            "gen_ai.request.model": AnyValue(string_value="gpt-4o"),
            "gen_ai.prompt.0.content": AnyValue(string_value="a long prompt"),
            "costline.feature": AnyValue(string_value="search.rerank"),
            "http.url": AnyValue(string_value="https://api.openai.com"),
        }
    )
    request = make_request(span, resource={"service.name": "api", "host.name": "h1"})

    [by_prefix] = iter_spans(request, rejected=[], attribute_prefixes=("gen_ai.", "costline."))
    [both] = iter_spans(
        request,
        rejected=[],
        attribute_prefixes=("gen_ai.", "costline."),
        attribute_filter=lambda key: not key.startswith("gen_ai.prompt."),
    )

    assert set(by_prefix.attributes) == {
        "gen_ai.request.model",
        "gen_ai.prompt.0.content",
        "costline.feature",
    }
    assert set(both.attributes) == {"gen_ai.request.model", "costline.feature"}
    assert both.resource == {"service.name": "api", "host.name": "h1"}


# --- span validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"trace_id": TRACE_ID[:15]}, "invalid_trace_id"),
        ({"trace_id": b""}, "invalid_trace_id"),
        ({"trace_id": bytes(16)}, "invalid_trace_id"),
        ({"span_id": SPAN_ID + b"\x01"}, "invalid_span_id"),
        ({"span_id": bytes(8)}, "invalid_span_id"),
        ({"parent_span_id": PARENT_ID[:4]}, "invalid_parent_span_id"),
        ({"start": 0}, "missing_start_time"),
    ],
)
def test_invalid_span_is_rejected_with_a_reason_and_the_rest_are_kept(
    changes: dict[str, Any], reason: str
) -> None:
    good = make_span(span_id=PARENT_ID, name="good")
    bad = make_span(name="bad", **changes)
    rejected: list[tuple[str, str]] = []

    spans = list(iter_spans(make_request(good, bad), rejected=rejected))

    assert [s.name for s in spans] == ["good"]
    assert len(rejected) == 1
    assert rejected[0][0] == reason
    assert "'bad'" in rejected[0][1]


def test_all_zero_parent_span_id_means_no_parent() -> None:
    request = make_request(make_span(parent_span_id=bytes(8)), make_span(parent_span_id=PARENT_ID))
    spans = list(iter_spans(request, rejected=[]))
    assert [s.parent_span_id for s in spans] == [None, PARENT_ID]


def test_json_span_with_wrong_length_hex_id_is_rejected_not_the_request() -> None:
    document = otlp_json(make_request(make_span(name="short"), make_span(span_id=PARENT_ID)))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "abcd"
    rejected: list[tuple[str, str]] = []

    request = parse_export_request(json.dumps(document).encode(), encoding="json")
    spans = list(iter_spans(request, rejected=rejected))

    assert [s.span_id for s in spans] == [PARENT_ID]
    assert rejected == [
        (
            "invalid_trace_id",
            "span 'short': trace_id must be 16 bytes and not all zero, got 2 bytes",
        )
    ]


# --- content types and encodings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "encoding"),
    [
        ("application/x-protobuf", "protobuf"),
        ("application/protobuf", "protobuf"),
        ("application/json", "json"),
        ("application/json; charset=utf-8", "json"),
        ("Application/JSON ; charset=UTF-8", "json"),
        ("application/x-protobuf;charset=binary", "protobuf"),
    ],
)
def test_content_type_parameters_are_ignored(header: str, encoding: str) -> None:
    assert parse_content_type(header) == encoding


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/grpc", "json"])
def test_unknown_content_type_is_415(header: str | None) -> None:
    with pytest.raises(OtlpDecodeError) as caught:
        parse_content_type(header)
    assert caught.value.status == 415
    assert caught.value.reason == "unsupported_content_type"
    assert "application/x-protobuf" in caught.value.message


@pytest.mark.parametrize(
    ("content_encoding", "compress"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("x-gzip", gzip.compress),
        ("gzip, identity", gzip.compress),
        ("gzip", lambda b: gzip.compress(b[:1000]) + gzip.compress(b[1000:])),  # two members
        ("deflate", zlib.compress),
        ("gzip", lambda b: gzip.compress(b) + bytes(16)),  # zero padding after the stream
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some clients send
        ("deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),
    ],
)
def test_compressed_bodies_decode_to_the_same_spans(
    content_encoding: str | None, compress: Any
) -> None:
    body = build_export_request(n_spans=32, seed=2).SerializeToString()
    assert decode_body(compress(body), content_encoding=content_encoding) == body


@pytest.mark.parametrize("content_encoding", ["br", "zstd", "compress", "gzip, br"])
def test_unknown_content_encoding_is_415(content_encoding: str) -> None:
    with pytest.raises(OtlpDecodeError) as caught:
        decode_body(b"x", content_encoding=content_encoding)
    assert caught.value.status == 415
    assert caught.value.reason == "unsupported_content_encoding"


@pytest.mark.parametrize(
    ("content_encoding", "body"),
    [
        ("gzip", gzip.compress(b"x" * 10_000)[:-20]),  # truncated
        ("gzip", gzip.compress(b"x" * 10_000)[:5]),  # truncated header
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(b"x") + b"trailing junk"),
        ("deflate", zlib.compress(b"x" * 10_000)[:-10]),
        ("deflate", b"\xff" * 32),
        ("deflate", b""),
        ("gzip", gzip.compress(b"") * 65),  # more members than any client sends
    ],
)
def test_truncated_or_corrupt_compression_is_400(content_encoding: str, body: bytes) -> None:
    with pytest.raises(OtlpDecodeError) as caught:
        decode_body(body, content_encoding=content_encoding)
    assert caught.value.status == 400
    assert caught.value.reason == "bad_compression"


def test_gzip_bomb_is_cut_off_at_the_limit_quickly_with_bounded_memory() -> None:
    bomb = gzip_bomb(1024)  # 1 GiB of zeros in about 1 MB
    assert len(bomb) < 2 * 1024 * 1024
    max_bytes = 1024 * 1024

    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(OtlpDecodeError) as caught:
            decode_body(bomb, content_encoding="gzip", max_bytes=max_bytes)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert caught.value.status == 413
    assert caught.value.reason == "body_too_large"
    assert "body exceeds 1 MiB after decompression" in caught.value.message
    assert peak < 4 * max_bytes
    assert elapsed < 1.0


def test_gzip_bomb_helper_is_a_valid_gzip_stream() -> None:
    assert gzip.decompress(gzip_bomb(3)) == bytes(3 << 20)


def test_default_limit_is_64_mib() -> None:
    with pytest.raises(OtlpDecodeError) as caught:
        decode_body(gzip_bomb(65), content_encoding="gzip")
    assert caught.value.message.startswith("body exceeds 64 MiB after decompression")
    assert len(decode_body(gzip_bomb(64), content_encoding="gzip")) == 64 << 20


@pytest.mark.parametrize("content_encoding", [None, "deflate"])
def test_body_over_the_limit_is_413_whatever_the_encoding(content_encoding: str | None) -> None:
    body = bytes(2048)
    if content_encoding == "deflate":
        body = zlib.compress(body)
    with pytest.raises(OtlpDecodeError) as caught:
        decode_body(body, content_encoding=content_encoding, max_bytes=2047)
    assert caught.value.status == 413
    assert decode_body(body, content_encoding=content_encoding, max_bytes=2048) == bytes(2048)


# --- malformed payloads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",
        b"\x0a\x10only-six",  # a field longer than the body
        build_export_request(n_spans=4, seed=3).SerializeToString()[:-7],
        build_export_request(n_spans=4, seed=3).SerializeToString()[:100],
        b"\x0a\x02\x12\x00" + b"\x0a\x03\xff\xfe\xfd",
        b'{"resourceSpans": []}',  # JSON sent as protobuf
    ],
)
def test_garbage_or_truncated_protobuf_is_400(payload: bytes) -> None:
    with pytest.raises(OtlpDecodeError) as caught:
        parse_export_request(payload, encoding="protobuf")
    assert caught.value.status == 400
    assert caught.value.reason == "bad_protobuf"


def test_empty_protobuf_body_is_an_empty_request() -> None:
    assert list(iter_spans(parse_export_request(b"", encoding="protobuf"), rejected=[])) == []


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'"resourceSpans"',
        b'{"resourceSpans": 5}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": {"a": 1}}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": 12}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
        b"\xff\xfe{}",
        b"[" * 100_000,
        b'{"resourceSpans": [' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"]}",
        build_export_request(n_spans=1, seed=3).SerializeToString(),  # protobuf sent as JSON
    ],
)
def test_malformed_json_is_400(payload: bytes) -> None:
    with pytest.raises(OtlpDecodeError) as caught:
        parse_export_request(payload, encoding="json")
    assert caught.value.status == 400
    assert caught.value.reason == "bad_json"


# --- replies --------------------------------------------------------------------------------


def test_full_success_leaves_partial_success_unset() -> None:
    assert encode_response(encoding="protobuf", rejected_spans=0, error_message="") == (
        b"",
        "application/x-protobuf",
    )
    assert encode_response(encoding="json", rejected_spans=0, error_message="") == (
        b"{}",
        "application/json",
    )


def test_partial_success_round_trips_in_both_encodings() -> None:
    body, content_type = encode_response(
        encoding="protobuf", rejected_spans=3, error_message="3 spans had invalid ids"
    )
    response = ExportTraceServiceResponse.FromString(body)
    assert content_type == "application/x-protobuf"
    assert response.HasField("partial_success")
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message == "3 spans had invalid ids"

    body, content_type = encode_response(
        encoding="json", rejected_spans=3, error_message="3 spans had invalid ids"
    )
    assert content_type == "application/json"
    assert json.loads(body) == {
        "partialSuccess": {"rejectedSpans": "3", "errorMessage": "3 spans had invalid ids"}
    }


def test_error_status_bodies_are_google_rpc_status() -> None:
    from google.rpc.status_pb2 import Status

    body, content_type = encode_status(encoding="protobuf", code=3, message="bad trace id")
    assert content_type == "application/x-protobuf"
    assert Status.FromString(body) == Status(code=3, message="bad trace id")

    body, content_type = encode_status(encoding="json", code=3, message="bad trace id")
    assert content_type == "application/json"
    assert json.loads(body) == {"code": 3, "message": "bad trace id"}


@pytest.mark.parametrize(
    ("code", "message"), [(0, ""), (3, "bad"), (14, "é" * 200), (-1, "negative"), (2**31 - 1, "")]
)
def test_hand_encoded_status_matches_googleapis(code: int, message: str) -> None:
    from google.rpc.status_pb2 import Status

    expected = Status(code=code, message=message).SerializeToString()
    assert otlp._encode_rpc_status(code, message) == expected


def test_http_statuses_map_to_grpc_codes() -> None:
    assert otlp.grpc_code_for_http_status(400) == 3
    assert otlp.grpc_code_for_http_status(413) == 8
    assert otlp.grpc_code_for_http_status(503) == 14
    assert otlp.grpc_code_for_http_status(500) == 13


# --- properties -----------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENCODINGS: list[Encoding] = ["protobuf", "json"]
CONTENT_ENCODINGS = [None, "gzip", "deflate"]


def run_pipeline(body: bytes, *, encoding: Encoding, content_encoding: str | None) -> int:
    """Decode as the route does; return the number of spans seen (yielded + rejected)."""
    try:
        payload = decode_body(body, content_encoding=content_encoding, max_bytes=1 << 20)
        request = parse_export_request(payload, encoding=encoding)
        rejected: list[tuple[str, str]] = []
        spans = list(iter_spans(request, rejected=rejected))
    except OtlpDecodeError as exc:
        assert exc.status in (400, 413, 415)
        assert exc.reason and exc.message
        return -1
    for span in spans:
        assert_valid_ids(span)
    assert all(reason and message for reason, message in rejected)
    return len(spans) + len(rejected)


def compress(body: bytes, content_encoding: str | None) -> bytes:
    if content_encoding == "gzip":
        return gzip.compress(body)
    if content_encoding == "deflate":
        return zlib.compress(body)
    return body


def fuzz_request() -> ExportTraceServiceRequest:
    """Six SDK-like spans plus one using every value kind, links, events and a status."""
    request = build_export_request(n_spans=6, seed=9)
    usage = AnyValue()
    usage.kvlist_value.values.add(key="cached_tokens", value=AnyValue(int_value=5))
    reasons = AnyValue()
    reasons.array_value.values.add(string_value="stop")
    span = make_span(
        span_id=PARENT_ID,
        parent_span_id=SPAN_ID,
        attributes={
            "gen_ai.usage.cost": AnyValue(double_value=0.0125),
            "gen_ai.request.stream": AnyValue(bool_value=True),
            "gen_ai.usage.raw": usage,
            "gen_ai.response.finish_reasons": reasons,
            "blob": AnyValue(bytes_value=b"\x00\xff"),
        },
    )
    span.status.code = Status.STATUS_CODE_ERROR
    span.status.message = "rate limited"
    span.flags = 0x100
    span.links.add(trace_id=TRACE_ID, span_id=SPAN_ID, flags=1)
    span.events.add(time_unix_nano=START_NS + 5, name="gen_ai.choice")
    request.resource_spans[0].scope_spans[0].spans.append(span)
    return request


VALID_PROTOBUF = fuzz_request().SerializeToString()
VALID_JSON = json.dumps(otlp_json(fuzz_request())).encode()


def valid_body(encoding: Encoding) -> bytes:
    return VALID_PROTOBUF if encoding == "protobuf" else VALID_JSON


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "truncate", "delete", "insert"]))
        index = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[index:]
        elif kind == "delete":
            del data[index : index + draw(st.integers(1, 16))]
        else:
            data[index:index] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@FUZZ
@given(
    body=st.binary(max_size=2048),
    encoding=st.sampled_from(ENCODINGS),
    content_encoding=st.sampled_from(CONTENT_ENCODINGS),
)
def test_random_bytes_only_ever_raise_otlp_decode_error(
    body: bytes, encoding: Encoding, content_encoding: str | None
) -> None:
    run_pipeline(body, encoding=encoding, content_encoding=content_encoding)


@FUZZ
@given(
    data=st.data(),
    encoding=st.sampled_from(ENCODINGS),
    content_encoding=st.sampled_from(CONTENT_ENCODINGS),
    mutate_compressed=st.booleans(),
)
def test_mutated_valid_bodies_only_ever_raise_otlp_decode_error(
    data: st.DataObject, encoding: Encoding, content_encoding: str | None, mutate_compressed: bool
) -> None:
    body = valid_body(encoding)
    if mutate_compressed:
        body = data.draw(mutated(compress(body, content_encoding)))
    else:
        body = compress(data.draw(mutated(body)), content_encoding)
    run_pipeline(body, encoding=encoding, content_encoding=content_encoding)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
JSON_DOCUMENT = json.loads(VALID_JSON)


def json_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [path]
    if isinstance(node, dict):
        for key, child in node.items():
            paths += json_paths(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            paths += json_paths(child, (*path, index))
    return paths


JSON_PATHS = json_paths(JSON_DOCUMENT)[1:]
TRICKY_JSON_STRINGS = [
    *("", "00", "0" * 32, "ab" * 15, "ab" * 17, "AAAA", "bogus"),  # ids and bytes
    *("-1", "1e3", "1.5", "18446744073709551616", "NaN", "Infinity", "nan"),  # numbers
    *("SPAN_KIND_SERVER", "STATUS_CODE_OK"),  # enum names
]


@FUZZ
@given(
    replacements=st.lists(
        st.tuples(
            st.sampled_from(JSON_PATHS),
            JSON_VALUES | st.sampled_from(TRICKY_JSON_STRINGS),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_json_with_replaced_values_reads_like_json_format_or_fails_cleanly(
    replacements: list[tuple[tuple[Any, ...], Any]],
) -> None:
    document = json.loads(VALID_JSON)
    for path, value in replacements:
        node = document
        try:
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed this path
    body = json.dumps(document).encode()

    run_pipeline(body, encoding="json", content_encoding=None)

    try:
        ours: ExportTraceServiceRequest | OtlpDecodeError = parse_export_request(
            body, encoding="json"
        )
    except OtlpDecodeError as exc:
        ours = exc
    try:
        reference: ExportTraceServiceRequest | Exception = json_format_reference(body)
    except Exception as exc:
        reference = exc
    if isinstance(ours, OtlpDecodeError):
        # json_format quietly reads a string or an array where a message belongs as an
        # empty message (it iterates it); refusing that is the one intended difference.
        assert isinstance(reference, Exception) or "must be a JSON object" in ours.message
    else:
        assert ours == reference


ID_BYTES = st.one_of(
    st.binary(min_size=0, max_size=20),
    st.sampled_from([bytes(16), bytes(8), b"", TRACE_ID, SPAN_ID]),
)


@FUZZ
@given(
    spans=st.lists(
        st.builds(
            make_span,
            trace_id=ID_BYTES,
            span_id=ID_BYTES,
            parent_span_id=ID_BYTES,
            start=st.sampled_from([0, 1, START_NS, 2**64 - 1]),
        ),
        max_size=8,
    ),
    encoding=st.sampled_from(ENCODINGS),
)
def test_every_span_is_either_yielded_with_valid_ids_or_rejected(
    spans: list[Span], encoding: Encoding
) -> None:
    request = make_request(*spans)
    body = (
        request.SerializeToString()
        if encoding == "protobuf"
        else json.dumps(otlp_json(request)).encode()
    )
    assert run_pipeline(body, encoding=encoding, content_encoding="identity") == len(spans)
