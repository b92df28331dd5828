"""Daily partitions of ``llm_calls``: create them ahead, move stray rows out of the default.

A span whose day has no partition yet lands in ``llm_calls_default`` (nothing is refused);
``maintain_partitions`` then gives that day its own partition and moves the rows there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

PARENT = "llm_calls"
DEFAULT_PARTITION = "llm_calls_default"
_PARTITION_NAME = re.compile(r"^llm_calls_p(\d{8})$")


def partition_name(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


@dataclass(frozen=True, slots=True)
class PartitionReport:
    created: list[str]
    moved_rows: int


def existing_partition_days(session: Session) -> set[date]:
    rows = session.execute(
        text(
            "select c.relname from pg_inherits i "
            "join pg_class c on c.oid = i.inhrelid "
            "join pg_class p on p.oid = i.inhparent where p.relname = :parent"
        ),
        {"parent": PARENT},
    ).scalars()
    days = set()
    for name in rows:
        match = _PARTITION_NAME.match(name)
        if match:
            days.add(datetime.strptime(match.group(1), "%Y%m%d").date())
    return days


def stray_days(session: Session) -> set[date]:
    """UTC days that have rows sitting in the default partition."""
    rows = session.execute(
        text(f"select distinct (started_at at time zone 'UTC')::date from {DEFAULT_PARTITION}")
    ).scalars()
    return set(rows)


def create_partition(session: Session, *, day: date) -> int:
    """Create the partition of ``day``, moving its rows out of the default partition.

    Returns how many rows moved. Runs in the caller's transaction; the lock on the parent
    serializes concurrent maintainers, and the existence check after it makes this idempotent.
    """
    session.execute(text(f"lock table {PARENT} in share row exclusive mode"))
    if day in existing_partition_days(session):
        return 0
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    bounds = {"start": start, "end": end}
    name = partition_name(day)
    # PostgreSQL refuses a new partition while the default holds rows of its range, so park
    # them in a temporary table, create the partition, and put them back: one transaction.
    session.execute(
        text(
            f"create temporary table strays on commit drop as "
            f"with moved as (delete from {DEFAULT_PARTITION} "
            f"where started_at >= :start and started_at < :end returning *) "
            f"select * from moved"
        ),
        bounds,
    )
    session.execute(
        text(
            f"create table {name} partition of {PARENT} "
            f"for values from ('{start.isoformat()}') to ('{end.isoformat()}')"
        )
    )
    moved = session.execute(text(f"insert into {PARENT} select * from strays")).rowcount  # type: ignore[attr-defined]
    session.execute(text("drop table strays"))
    return int(moved)


def maintain_partitions(
    session: Session, *, today: date, ahead_days: int, extra_days: Iterable[date] = ()
) -> PartitionReport:
    """Ensure partitions for yesterday..today+ahead_days and for every stray day."""
    wanted = {today + timedelta(days=offset) for offset in range(-1, ahead_days + 1)}
    wanted |= stray_days(session)
    wanted |= set(extra_days)
    missing = sorted(wanted - existing_partition_days(session))
    created, moved = [], 0
    for day in missing:
        moved += create_partition(session, day=day)
        created.append(partition_name(day))
    return PartitionReport(created=created, moved_rows=moved)


def drop_partitions_before(session: Session, *, cutoff: date) -> list[str]:
    """Drop whole daily partitions entirely before ``cutoff`` (raw retention)."""
    dropped = []
    for day in sorted(existing_partition_days(session)):
        if day < cutoff:
            name = partition_name(day)
            session.execute(text(f"drop table {name}"))
            dropped.append(name)
    return dropped
