"""OTLP/HTTP trace codec: request bodies in, spans out, replies back. Pure, no I/O.

The collector's ``POST /v1/traces`` route calls, in order::

    payload = decode_body(body, content_encoding=headers.get("content-encoding"))
    encoding = parse_content_type(headers.get("content-type"))
    request = parse_export_request(payload, encoding=encoding)
    rejected: list[tuple[str, str]] = []
    for span in iter_spans(request, rejected=rejected, attribute_prefixes=(...)):
        ...
    body, content_type = encode_response(encoding=encoding, rejected_spans=..., error_message=...)

and renders ``OtlpDecodeError`` (400/413/415) with ``encode_status``.

Attribute values (``AttrValue``) are read once each and mapped to plain Python values:

- string, bool, int, double → ``str``, ``bool``, ``int``, ``float`` (doubles may be NaN/inf);
- array → ``tuple`` of scalars; an element that is itself an array or a kvlist becomes its
  compact JSON string, a bytes element its hex string, an empty element is dropped;
- kvlist → its compact JSON string (``{"k": v, ...}``, arrays as lists), so nothing the client
  sent is lost and a normaliser can ``json.loads`` it when it cares (``gen_ai.usage.raw``);
- bytes → lowercase hex string;
- an empty ``AnyValue`` (OTLP's null) and the profiling-only ``string_value_strindex`` are
  skipped. When a key repeats (forbidden by OTLP), the last value wins.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

try:  # googleapis-common-protos: present when the OTLP exporter is installed, not required
    from google.rpc.status_pb2 import Status as _RpcStatus
except ImportError:  # pragma: no cover - exercised by test_hand_encoded_status_matches_googleapis
    _RpcStatus = None

__all__ = [
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_PROTOBUF",
    "MAX_BODY_BYTES",
    "AttrValue",
    "Encoding",
    "OtlpDecodeError",
    "RawSpan",
    "decode_body",
    "encode_response",
    "encode_status",
    "grpc_code_for_http_status",
    "iter_spans",
    "parse_content_type",
    "parse_export_request",
]

Encoding: TypeAlias = Literal["protobuf", "json"]
Scalar: TypeAlias = str | bool | int | float
AttrValue: TypeAlias = str | bool | int | float | tuple[Scalar, ...]

CONTENT_TYPE_PROTOBUF = "application/x-protobuf"
CONTENT_TYPE_JSON = "application/json"
# The OTLP specification's recommended limit for a body after decompression.
MAX_BODY_BYTES = 64 * 1024 * 1024

_MEDIA_TYPES: dict[str, Encoding] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
# Inflate at most this much per step, so memory stays near max_bytes whatever the ratio.
_INFLATE_STEP = 256 * 1024
_INFLATE_FEED = 64 * 1024
# Clients send one member; thousands of tiny members only burn CPU.
_MAX_GZIP_MEMBERS = 64
_GZIP_MAGIC = b"\x1f\x8b"


class OtlpDecodeError(Exception):
    """A request the collector cannot read; ``status`` is the HTTP status to answer with."""

    status: int
    reason: str
    message: str

    def __init__(self, *, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"OtlpDecodeError(status={self.status}, reason={self.reason!r}, {self.message!r})"


# --- bodies -------------------------------------------------------------------------------


def decode_body(
    body: bytes, *, content_encoding: str | None, max_bytes: int = MAX_BODY_BYTES
) -> bytes:
    """Undo ``Content-Encoding`` (identity, gzip, deflate), never producing more than max_bytes.

    Decompression is streamed in bounded steps, so a compression bomb costs about max_bytes
    of memory and stops there (413). ``deflate`` accepts zlib-wrapped streams (RFC 9110),
    raw deflate and, leniently, gzip; ``gzip`` accepts concatenated members. A list of
    codings (``gzip, identity``) is undone right to left.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    for coding in codings:
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise OtlpDecodeError(
                status=415,
                reason="unsupported_content_encoding",
                message=(
                    f"Content-Encoding {coding!r} is not supported: send the body "
                    "uncompressed, or compressed with gzip or deflate"
                ),
            )
    data = body
    for coding in reversed(codings):
        if coding == "deflate":
            data = _inflate_deflate(data, max_bytes=max_bytes)
        else:
            data = _inflate_gzip(data, max_bytes=max_bytes)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return bytes(data)


def _inflate_gzip(data: bytes, *, max_bytes: int) -> bytes:
    view = memoryview(data)
    out = bytearray()
    pos = 0
    for _ in range(_MAX_GZIP_MEMBERS):
        pos = _inflate_stream(
            view, pos, wbits=16 + zlib.MAX_WBITS, coding="gzip", out=out, max_bytes=max_bytes
        )
        if pos == len(view):
            return bytes(out)
        if view[pos : pos + 2] == _GZIP_MAGIC:
            continue  # another member, as gzip allows
        if not view[pos:].tobytes().strip(b"\x00"):
            return bytes(out)  # zero padding after the last member is tolerated
        raise _corrupt("gzip", "unexpected bytes after the end of the gzip stream")
    raise _corrupt("gzip", f"more than {_MAX_GZIP_MEMBERS} concatenated gzip members")


def _inflate_deflate(data: bytes, *, max_bytes: int) -> bytes:
    if data.startswith(_GZIP_MAGIC):
        return _inflate_gzip(data, max_bytes=max_bytes)
    if len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0:
        try:
            return _inflate_once(data, wbits=zlib.MAX_WBITS, max_bytes=max_bytes)
        except OtlpDecodeError as exc:
            if exc.status != 400:
                raise
            # A raw deflate stream can start with bytes that look like a zlib header.
    return _inflate_once(data, wbits=-zlib.MAX_WBITS, max_bytes=max_bytes)


def _inflate_once(data: bytes, *, wbits: int, max_bytes: int) -> bytes:
    out = bytearray()
    end = _inflate_stream(
        memoryview(data), 0, wbits=wbits, coding="deflate", out=out, max_bytes=max_bytes
    )
    if end != len(data):
        raise _corrupt("deflate", "unexpected bytes after the end of the deflate stream")
    return bytes(out)


def _inflate_stream(
    data: memoryview, start: int, *, wbits: int, coding: str, out: bytearray, max_bytes: int
) -> int:
    """Inflate the stream at data[start:] into out; return the offset just past its end.

    Input is fed in slices and output taken in steps, so zlib never copies more than a
    slice of leftover input and out never grows past max_bytes + 1.
    """
    inflater = zlib.decompressobj(wbits)
    pos = start
    pending: bytes | memoryview = b""
    try:
        while not inflater.eof:
            if not pending:
                if pos >= len(data):
                    break
                pending = data[pos : pos + _INFLATE_FEED]
                pos += len(pending)
            step = min(_INFLATE_STEP, max_bytes + 1 - len(out))
            chunk = inflater.decompress(pending, step)
            out += chunk
            if len(out) > max_bytes:
                raise _too_large(max_bytes)
            if not chunk and len(inflater.unconsumed_tail) == len(pending):
                break  # zlib made no progress: never spin
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise _corrupt(coding, f"zlib: {exc}") from None
    if not inflater.eof:
        raise _corrupt(coding, "the compressed stream ends early")
    return pos - len(inflater.unused_data) - len(inflater.unconsumed_tail)


def _too_large(max_bytes: int) -> OtlpDecodeError:
    return OtlpDecodeError(
        status=413,
        reason="body_too_large",
        message=(
            f"body exceeds {_format_size(max_bytes)} after decompression: send fewer spans "
            "per request (lower the exporter's max_export_batch_size)"
        ),
    )


def _corrupt(coding: str, detail: str) -> OtlpDecodeError:
    return OtlpDecodeError(
        status=400,
        reason="bad_compression",
        message=(
            f"the {coding} body is truncated or corrupt ({detail}): check that Content-Encoding "
            "matches how the body was compressed"
        ),
    )


def _format_size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


def parse_content_type(header: str | None) -> Encoding:
    """Map a Content-Type header to the OTLP encoding, ignoring parameters such as charset."""
    media_type = (header or "").split(";", 1)[0].strip().lower()
    encoding = _MEDIA_TYPES.get(media_type)
    if encoding is None:
        shown = repr(header) if header else "a missing Content-Type"
        raise OtlpDecodeError(
            status=415,
            reason="unsupported_content_type",
            message=(
                f"{shown} is not an OTLP encoding: send application/x-protobuf or application/json"
            ),
        )
    return encoding


# --- requests ------------------------------------------------------------------------------


def parse_export_request(payload: bytes, *, encoding: Encoding) -> ExportTraceServiceRequest:
    """Parse a decoded body as an ``ExportTraceServiceRequest`` (protobuf or OTLP/JSON).

    OTLP/JSON: ids are hex, enums integers or names, 64-bit integers numbers or strings,
    keys lowerCamelCase or snake_case, unknown fields and unknown enum names ignored.
    Anything unreadable is an ``OtlpDecodeError`` 400; ids of the wrong length are not (the
    request parses, and ``iter_spans`` rejects those spans).
    """
    if encoding == "json":
        return _parse_json(payload)
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise OtlpDecodeError(
            status=400,
            reason="bad_protobuf",
            message=(
                f"the body is not a valid ExportTraceServiceRequest protobuf ({exc}): check "
                "that Content-Type matches the body and that it is not truncated"
            ),
        ) from None
    return request


def _parse_json(payload: bytes) -> ExportTraceServiceRequest:
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise _bad_json(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _bad_json("the top level must be an object with a resourceSpans array")
    try:
        kwargs = _message_kwargs(document, _EXPORT_REQUEST_JSON, depth=0)
        # The C constructor builds the whole tree, checking types, ranges and UTF-8.
        return ExportTraceServiceRequest(**kwargs)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _bad_json(str(exc)) from None


def _bad_json(detail: str) -> OtlpDecodeError:
    return OtlpDecodeError(
        status=400,
        reason="bad_json",
        message=f"the body is not a valid OTLP/JSON ExportTraceServiceRequest ({detail})",
    )


# OTLP/JSON is proto3's JSON mapping with three changes: ids are hex rather than base64,
# enums may be integers, unknown fields are ignored. json_format.ParseDict reads it (after
# rewriting the ids) but rebuilds its field tables for every message: ~180 µs a span. This
# reader builds them once and lets the C constructor do the rest: ~35 µs a span with
# json.loads. Its value rules follow json_format's (the tests compare the two on mutated
# documents), except that a string or array where an object belongs is refused, not read
# as an empty message.
_HEX_ID_FIELDS = frozenset(
    {
        "opentelemetry.proto.trace.v1.Span.trace_id",
        "opentelemetry.proto.trace.v1.Span.span_id",
        "opentelemetry.proto.trace.v1.Span.parent_span_id",
        "opentelemetry.proto.trace.v1.Span.Link.trace_id",
        "opentelemetry.proto.trace.v1.Span.Link.span_id",
    }
)
_MESSAGE, _INT, _FLOAT, _BOOL, _STRING, _BYTES, _HEX_ID, _ENUM = range(8)
_FIELD_KINDS = {
    FieldDescriptor.TYPE_MESSAGE: _MESSAGE,
    FieldDescriptor.TYPE_DOUBLE: _FLOAT,
    FieldDescriptor.TYPE_FLOAT: _FLOAT,
    FieldDescriptor.TYPE_BOOL: _BOOL,
    FieldDescriptor.TYPE_STRING: _STRING,
    FieldDescriptor.TYPE_BYTES: _BYTES,
    FieldDescriptor.TYPE_ENUM: _ENUM,
}
_MAX_JSON_DEPTH = 64  # messages deep; the protobuf parser stops at 100
_SKIP = object()


class _JsonMessage:
    """How to read one message type from JSON: its fields under both spellings."""

    __slots__ = ("fields", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[str, _JsonField] = {}


class _JsonField:
    __slots__ = ("enum_type", "json_name", "kind", "message", "name", "oneof", "repeated")

    def __init__(
        self, field: Any, kind: int, message: _JsonMessage | None, oneof: str | None
    ) -> None:
        self.name: str = field.name
        self.json_name: str = field.json_name
        self.kind = kind
        self.repeated: bool = field.is_repeated
        self.oneof = oneof
        self.message = message
        self.enum_type: Any = field.enum_type


def _json_messages(root: Any) -> _JsonMessage:
    """Field tables for root and every message type it reaches, built once at import."""
    messages: dict[str, _JsonMessage] = {}
    descriptors: list[Any] = []
    pending = [root]
    while pending:
        descriptor = pending.pop()
        if descriptor.full_name not in messages:
            messages[descriptor.full_name] = _JsonMessage(descriptor.name)
            descriptors.append(descriptor)
            pending.extend(f.message_type for f in descriptor.fields if f.message_type)
    for descriptor in descriptors:
        fields = messages[descriptor.full_name].fields
        for field in descriptor.fields:
            kind = _FIELD_KINDS.get(field.type, _INT)
            if kind == _BYTES and field.full_name in _HEX_ID_FIELDS:
                kind = _HEX_ID
            message = messages[field.message_type.full_name] if field.message_type else None
            oneof = field.containing_oneof.name if field.containing_oneof else None
            entry = _JsonField(field, kind, message, oneof)
            fields[field.name] = entry
            fields[field.json_name] = entry  # both spellings are accepted
    return messages[root.full_name]


_EXPORT_REQUEST_JSON = _json_messages(ExportTraceServiceRequest.DESCRIPTOR)


def _message_kwargs(obj: Any, message: _JsonMessage, *, depth: int) -> dict[str, Any]:
    if type(obj) is not dict:
        raise ValueError(f"{message.name} must be a JSON object, not {_json_type(obj)}")
    if depth > _MAX_JSON_DEPTH:
        raise ValueError(f"values are nested more than {_MAX_JSON_DEPTH} levels deep")
    fields = message.fields
    kwargs: dict[str, Any] = {}
    oneofs_seen: list[str] | None = None
    for key, value in obj.items():
        field = fields.get(key)
        if field is None or value is None:  # unknown fields are ignored; null means unset
            continue
        kind = field.kind
        if field.oneof is not None:
            if oneofs_seen is None:
                oneofs_seen = [field.oneof]
            elif field.oneof in oneofs_seen:
                raise ValueError(f"{message.name} sets more than one {field.oneof!r} field")
            else:
                oneofs_seen.append(field.oneof)
        if field.repeated:
            if type(value) is not list:
                raise ValueError(f"{message.name}.{key} must be an array")
            if kind == _MESSAGE:
                sub = field.message
                assert sub is not None
                kwargs[field.name] = [_message_kwargs(v, sub, depth=depth + 1) for v in value]
            else:
                items = [_scalar(v, field, message) for v in value]
                kwargs[field.name] = [v for v in items if v is not _SKIP]
        elif kind == _STRING and type(value) is str:  # the common cases first
            kwargs[field.name] = value
        elif kind == _MESSAGE:
            assert field.message is not None
            kwargs[field.name] = _message_kwargs(value, field.message, depth=depth + 1)
        else:
            converted = _scalar(value, field, message)
            if converted is not _SKIP:
                kwargs[field.name] = converted
    return kwargs


def _scalar(value: Any, field: _JsonField, message: _JsonMessage) -> Any:
    kind = field.kind
    if kind == _STRING:
        if isinstance(value, str):
            return value
    elif kind == _INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and " " not in value:
            return _int_from_string(value)
    elif kind == _HEX_ID:
        if isinstance(value, str):
            try:
                return bytes.fromhex(value)
            except ValueError:
                raise ValueError(
                    f"{field.json_name} {value[:64]!r} is not hex: OTLP/JSON writes trace and "
                    "span ids as hex strings, not base64"
                ) from None
    elif kind == _ENUM:
        return _enum_number(value, field)
    elif kind == _FLOAT:
        return _float(value)
    elif kind == _BOOL:
        if isinstance(value, bool):
            return value
    elif kind == _BYTES and isinstance(value, str):
        # proto3 JSON bytes: base64, standard or URL-safe alphabet, padding optional.
        raw = value.encode("utf-8")
        return base64.urlsafe_b64decode(raw + b"=" * (4 - len(raw) % 4))
    raise ValueError(f"{message.name}.{field.json_name} cannot be {_json_type(value)}")


def _int_from_string(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        number = float(value)  # "1e3" is an integer too; anything else raises ValueError
        if not number.is_integer():
            raise ValueError(f"{value!r} is not an integer") from None
        return int(number)


def _float(value: Any) -> float:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError('write non-finite numbers as "NaN", "Infinity" or "-Infinity"')
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str) and value != "nan":
        try:
            return float(value)
        except ValueError:
            special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
            if value in special:
                return special[value]
            raise
    raise ValueError(f"{_json_type(value)} is not a number")


def _enum_number(value: Any, field: _JsonField) -> Any:
    enum_type = field.enum_type
    if isinstance(value, str):
        named = enum_type.values_by_name.get(value)
        if named is not None:
            return named.number
        try:
            return int(value)
        except ValueError:
            return _SKIP  # an enum name from a newer schema: ignored like unknown fields
    if isinstance(value, int | float):
        return int(value)
    raise ValueError(f"{field.json_name} cannot be {_json_type(value)}")


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


# --- spans ---------------------------------------------------------------------------------


@dataclass(slots=True)
class RawSpan:
    """One span as received, ids validated, attributes as plain values."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    name: str
    kind: int
    start_unix_nano: int
    end_unix_nano: int
    status_code: int
    status_message: str
    attributes: dict[str, AttrValue]
    resource: dict[str, AttrValue]  # one object shared by every span of a ResourceSpans
    scope_name: str


_SCALAR_FIELDS = frozenset({"string_value", "bool_value", "int_value", "double_value"})
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


def iter_spans(
    request: ExportTraceServiceRequest,
    *,
    rejected: list[tuple[str, str]],
    attribute_prefixes: tuple[str, ...] | None = None,
    attribute_filter: Callable[[str], bool] | None = None,
) -> Iterator[RawSpan]:
    """Yield the request's valid spans; append ``(reason, message)`` to rejected for the rest.

    Span attributes are all kept by default. ``attribute_prefixes`` keeps only keys starting
    with one of the prefixes (the cheap way: one C-level ``str.startswith`` per key);
    ``attribute_filter`` keeps only keys for which it returns True. With both, a key must pass
    both. Resource attributes are always kept whole and built once per ResourceSpans.

    A span is rejected when its trace_id is not 16 bytes or is all zero, its span_id is not
    8 bytes or is all zero, its parent_span_id is neither empty nor 8 bytes, or its start
    time is 0. An all-zero 8-byte parent_span_id means "no parent" (some emitters send it).
    """
    for resource_spans in request.resource_spans:
        resource = _read_attributes(resource_spans.resource.attributes, None, None)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                parent_span_id: bytes | None = span.parent_span_id
                start = span.start_time_unix_nano
                if (
                    len(trace_id) != 16
                    or trace_id == _ZERO_TRACE_ID
                    or len(span_id) != 8
                    or span_id == _ZERO_SPAN_ID
                    or (parent_span_id and len(parent_span_id) != 8)
                    or not start
                ):
                    rejected.append(
                        _rejection(span.name, trace_id, span_id, span.parent_span_id, start)
                    )
                    continue
                if not parent_span_id or parent_span_id == _ZERO_SPAN_ID:
                    parent_span_id = None
                status = span.status
                yield RawSpan(
                    trace_id,
                    span_id,
                    parent_span_id,
                    _text(span.name),
                    span.kind,
                    start,
                    span.end_time_unix_nano,
                    status.code,
                    status.message,
                    _read_attributes(span.attributes, attribute_prefixes, attribute_filter),
                    resource,
                    scope_name,
                )


def _rejection(
    name: str, trace_id: bytes, span_id: bytes, parent_span_id: bytes, start: int
) -> tuple[str, str]:
    label = f"span {name[:80]!r}"
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
        return (
            "invalid_trace_id",
            f"{label}: trace_id must be 16 bytes and not all zero, got {_describe_id(trace_id)}",
        )
    label = f"{label} in trace {trace_id.hex()}"
    if len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
        return (
            "invalid_span_id",
            f"{label}: span_id must be 8 bytes and not all zero, got {_describe_id(span_id)}",
        )
    label = f"{label} (span {span_id.hex()})"
    if len(parent_span_id) not in (0, 8):
        return (
            "invalid_parent_span_id",
            f"{label}: parent_span_id must be empty or 8 bytes, got {len(parent_span_id)} bytes",
        )
    return ("missing_start_time", f"{label}: start_time_unix_nano is 0; set the span's start time")


def _describe_id(raw: bytes) -> str:
    if not raw:
        return "an empty id"
    if not raw.strip(b"\x00"):
        return f"{len(raw)} zero bytes"
    return f"{len(raw)} bytes"


def _read_attributes(
    kvs: Iterable[KeyValue],
    prefixes: tuple[str, ...] | None,
    keep: Callable[[str], bool] | None,
) -> dict[str, AttrValue]:
    # The hot loop: one WhichOneof and one field read per value; an if-chain in order of
    # frequency measured faster than getattr(value, which).
    attributes: dict[str, AttrValue] = {}
    for kv in kvs:
        key = _text(kv.key)
        if prefixes is not None and not key.startswith(prefixes):
            continue
        if keep is not None and not keep(key):
            continue
        value = kv.value
        which = value.WhichOneof("value")
        if which == "string_value":
            attributes[key] = _text(value.string_value)
        elif which == "int_value":
            attributes[key] = value.int_value
        elif which == "double_value":
            attributes[key] = value.double_value
        elif which == "bool_value":
            attributes[key] = value.bool_value
        elif which == "array_value":
            attributes[key] = _read_array(value)
        elif which == "kvlist_value":
            attributes[key] = json.dumps(_to_json_value(value), separators=(",", ":"))
        elif which == "bytes_value":
            attributes[key] = value.bytes_value.hex()
    return attributes


def _text(value: str) -> str:
    # Valid in protobuf and JSON strings, refused by PostgreSQL text and jsonb: replace it here,
    # once, so nothing downstream can meet it.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _read_array(value: AnyValue) -> tuple[Scalar, ...]:
    items: list[Scalar] = []
    for element in value.array_value.values:
        which = element.WhichOneof("value")
        if which == "string_value":
            items.append(_text(element.string_value))
        elif which in _SCALAR_FIELDS:
            items.append(getattr(element, which))
        elif which == "bytes_value":
            items.append(element.bytes_value.hex())
        elif which in ("array_value", "kvlist_value"):
            items.append(json.dumps(_to_json_value(element), separators=(",", ":")))
    return tuple(items)


def _to_json_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which in _SCALAR_FIELDS:
        return getattr(value, which)
    if which == "array_value":
        return [_to_json_value(element) for element in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _to_json_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return None


# --- replies -------------------------------------------------------------------------------


def encode_response(
    *, encoding: Encoding, rejected_spans: int, error_message: str
) -> tuple[bytes, str]:
    """An ``ExportTraceServiceResponse`` in the request's encoding, and its Content-Type.

    ``partial_success`` is left unset (full success) when nothing was rejected and there is
    no message; a message with 0 rejected spans is a warning, as the OTLP spec allows.
    """
    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = error_message
    if encoding == "json":
        # Proto3 JSON: lowerCamelCase keys, int64 rejectedSpans as a string.
        text = json_format.MessageToJson(response, indent=None)
        return text.encode("utf-8"), CONTENT_TYPE_JSON
    return response.SerializeToString(), CONTENT_TYPE_PROTOBUF


def encode_status(*, encoding: Encoding, code: int, message: str) -> tuple[bytes, str]:
    """A ``google.rpc.Status`` error body for a 4xx/5xx reply, and its Content-Type.

    ``code`` is a ``google.rpc.Code`` value (see ``grpc_code_for_http_status``). Protobuf
    bodies use ``google.rpc.status_pb2`` when googleapis-common-protos is installed and an
    equivalent hand-written encoding (fields 1 and 2) when it is not; JSON bodies are
    ``{"code": ..., "message": ...}`` either way.
    """
    if encoding == "json":
        body = json.dumps({"code": code, "message": message}, separators=(",", ":"))
        return body.encode("utf-8"), CONTENT_TYPE_JSON
    if _RpcStatus is not None:
        return _RpcStatus(code=code, message=message).SerializeToString(), CONTENT_TYPE_PROTOBUF
    return _encode_rpc_status(code, message), CONTENT_TYPE_PROTOBUF


def _encode_rpc_status(code: int, message: str) -> bytes:
    out = bytearray()
    if code:
        out.append(0x08)  # field 1, varint; a negative int32 is sign-extended to 64 bits
        out += _varint(code & 0xFFFF_FFFF_FFFF_FFFF)
    if message:
        raw = message.encode("utf-8")
        out.append(0x12)  # field 2, length-delimited
        out += _varint(len(raw))
        out += raw
    return bytes(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_GRPC_CODES = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    408: 4,  # DEADLINE_EXCEEDED
    413: 8,  # RESOURCE_EXHAUSTED
    415: 3,  # INVALID_ARGUMENT
    429: 8,  # RESOURCE_EXHAUSTED
    501: 12,  # UNIMPLEMENTED
    502: 14,  # UNAVAILABLE
    503: 14,  # UNAVAILABLE
    504: 4,  # DEADLINE_EXCEEDED
}


def grpc_code_for_http_status(status: int) -> int:
    """The ``google.rpc.Code`` to put in an error body answered with this HTTP status."""
    if status in _GRPC_CODES:
        return _GRPC_CODES[status]
    if 400 <= status < 500:
        return 9  # FAILED_PRECONDITION
    return 13  # INTERNAL
