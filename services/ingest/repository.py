"""Write priced calls exactly once, and read what ingest needs (overrides, partitions)."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from datetime import date
from typing import Any

from psycopg import Cursor
from psycopg.adapt import Dumper
from psycopg.errors import UniqueViolation
from psycopg.postgres import types as pg_types
from psycopg.pq import Format
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from services.ingest.service import CALL_COLUMNS
from services.models import PriceOverrideRow
from services.pricing.prices import PriceOverride

# Binary COPY carries no casts: each value is sent in its column's exact type.
CALL_COLUMN_TYPES: dict[str, str] = {
    "project_id": "int4",
    "started_at": "timestamptz",
    "trace_id": "bytea",
    "span_id": "bytea",
    "parent_span_id": "bytea",
    "ended_at": "timestamptz",
    "request_id": "text",
    "span_name": "text",
    "operation": "text",
    "provider": "text",
    "request_model": "text",
    "response_model": "text",
    "input_tokens": "int8",
    "output_tokens": "int8",
    "cache_read_tokens": "int8",
    "cache_write_tokens": "int8",
    "reasoning_tokens": "int8",
    "usage_estimated": "bool",
    "cost_usd": "numeric",
    "cost_source": "text",
    "price_ref": "text",
    "client_cost_usd": "numeric",
    "feature": "text",
    "customer": "text",
    "user_id": "text",
    "session_id": "text",
    "service_name": "text",
    "environment": "text",
    "tags": "jsonb",
    "status_code": "int2",
    "error_type": "text",
    "finish_reasons": "text[]",
}
_TYPES = [CALL_COLUMN_TYPES[column] for column in CALL_COLUMNS]
_TAGS = CALL_COLUMNS.index("tags")
_COLUMNS = ", ".join(CALL_COLUMNS)
_COPY_INTO_CALLS = f"copy llm_calls ({_COLUMNS}) from stdin (format binary)"
_COPY_INTO_BUFFER = f"copy ingest_buffer ({_COLUMNS}) from stdin (format binary)"


def write_calls(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Store rows once each; return how many were new (the rest a retrying exporter resent).

    New spans, the usual case, are COPYed straight into ``llm_calls`` under a savepoint. When
    the unique key refuses one, that COPY is undone and the batch goes through a staging
    table and ``INSERT ... ON CONFLICT DO NOTHING`` instead. Runs inside the caller's
    transaction; nothing is visible before commit.
    """
    if not rows:
        return 0
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute("savepoint write_calls")
        try:
            _copy(cursor, _COPY_INTO_CALLS, rows)
        except UniqueViolation:
            cursor.execute("rollback to savepoint write_calls")
        else:
            cursor.execute("release savepoint write_calls")
            return len(rows)
        cursor.execute(
            "create temporary table if not exists ingest_buffer "
            "(like llm_calls including defaults) on commit delete rows"
        )
        _copy(cursor, _COPY_INTO_BUFFER, rows)
        cursor.execute("insert into llm_calls select * from ingest_buffer on conflict do nothing")
        stored = cursor.rowcount
        cursor.execute("truncate ingest_buffer")
    return int(stored)


def _copy(cursor: Cursor[Any], statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
    cursor.adapters.register_dumper(None, _TagsDumper)
    cursor.adapters.register_dumper(None, _TextArrayDumper)
    with cursor.copy(statement) as copy:
        copy.set_types(_TYPES)
        for row in rows:
            if row[_TAGS] is None:  # NOT NULL; binary COPY applies no column default
                row = (*row[:_TAGS], {}, *row[_TAGS + 1 :])
            copy.write_row(row)


# psycopg's own jsonb and array dumpers are pure Python and cost half of a row's encoding;
# these two do the same for the values ingest writes, in a fraction of the time.


class _TagsDumper(Dumper):
    """A dict as binary jsonb (a version byte, then the JSON text); most calls have no tags."""

    format = Format.BINARY
    oid = pg_types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        if not obj:
            return b"\x01{}"
        return b"\x01" + json.dumps(obj).encode()


_TEXT_OID = pg_types["text"].oid
_ARRAY_HEADER = struct.Struct("!iiiii")  # dimensions, has nulls, element type, length, lower bound
_ELEMENT_LENGTH = struct.Struct("!i")
_ENCODED_ARRAYS: dict[tuple[str | None, ...], bytes] = {}
_MAX_ENCODED_ARRAYS = 1024  # finish reasons are few; the values come from clients, so bound it


class _TextArrayDumper(Dumper):
    """A sequence of str as a binary one-dimensional text[], remembering the common ones."""

    format = Format.BINARY
    oid = pg_types["text"].array_oid

    def dump(self, obj: Any) -> bytes:
        items = tuple(obj)
        encoded = _ENCODED_ARRAYS.get(items)
        if encoded is None:
            encoded = _encode_text_array(items)
            if len(_ENCODED_ARRAYS) < _MAX_ENCODED_ARRAYS:
                _ENCODED_ARRAYS[items] = encoded
        return encoded


def _encode_text_array(items: tuple[str | None, ...]) -> bytes:
    if not items:
        return struct.pack("!iii", 0, 0, _TEXT_OID)
    parts = [_ARRAY_HEADER.pack(1, int(None in items), _TEXT_OID, len(items), 1)]
    for item in items:
        if item is None:
            parts.append(_ELEMENT_LENGTH.pack(-1))
        else:
            raw = item.encode()
            parts.append(_ELEMENT_LENGTH.pack(len(raw)))
            parts.append(raw)
    return b"".join(parts)


def load_overrides(session: Session, *, project_id: int) -> list[PriceOverride]:
    rows = session.scalars(
        select(PriceOverrideRow).where(PriceOverrideRow.project_id == project_id)
    ).all()
    return [
        PriceOverride(
            id=row.id,
            provider=row.provider.lower(),
            model=row.model,
            effective_from=row.effective_from,
            effective_to=row.effective_to,
            input_mtok=row.input_mtok,
            output_mtok=row.output_mtok,
            cache_read_mtok=row.cache_read_mtok,
            cache_write_mtok=row.cache_write_mtok,
            discount_pct=row.discount_pct,
        )
        for row in rows
    ]


def missing_partition_days(session: Session, days: set[date]) -> set[date]:
    from services.partitions.service import existing_partition_days

    return days - existing_partition_days(session)
