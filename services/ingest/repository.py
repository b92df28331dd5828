"""Write priced calls exactly once, and read what ingest needs (overrides, partitions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from services.ingest.service import CALL_COLUMNS
from services.models import PriceOverrideRow
from services.pricing.prices import PriceOverride

_TAGS = CALL_COLUMNS.index("tags")
_COPY = f"copy ingest_buffer ({', '.join(CALL_COLUMNS)}) from stdin"


def write_calls(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """COPY rows into a per-connection staging table, then insert what is new.

    Returns how many rows were stored; the rest were already there (a retrying exporter
    resent them). Runs inside the caller's transaction; nothing is visible before commit.
    """
    if not rows:
        return 0
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(
            "create temporary table if not exists ingest_buffer "
            "(like llm_calls including defaults) on commit delete rows"
        )
        with cursor.copy(_COPY) as copy:
            for row in rows:
                tags = row[_TAGS]
                copy.write_row(row[:_TAGS] + (Jsonb(tags) if tags else "{}",) + row[_TAGS + 1 :])
        cursor.execute("insert into llm_calls select * from ingest_buffer on conflict do nothing")
        stored = cursor.rowcount
        cursor.execute("truncate ingest_buffer")
    return int(stored)


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
