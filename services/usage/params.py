"""Validate query parameters into a ``Selection``: bad input is a 400 naming the field."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.core.errors import BadRequest
from services.usage.schemas import DIMENSIONS, Dimension, Interval

MAX_BUCKETS = 2000
MAX_GROUPS = 1000
DEFAULT_RANGE = timedelta(days=7)
_APPROX_BUCKET = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=28),
    "total": timedelta(days=36500),
}


@dataclass(frozen=True, slots=True)
class Selection:
    """Which calls or requests a question is about, and how to slice them."""

    project_id: int
    start: datetime  # floored to the hour: rollups are hourly
    end: datetime  # ceiled to the hour, exclusive
    interval: Interval
    tz: str
    group_by: tuple[Dimension, ...]
    filters: dict[Dimension, tuple[str, ...]] = field(default_factory=dict)

    @property
    def involves_customer(self) -> bool:
        return "customer" in self.group_by or "customer" in self.filters


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None:
        raise BadRequest(f"{name} needs a time zone offset, e.g. 2026-11-01T00:00:00Z", field=name)
    return at.astimezone(UTC)


def parse_group_by(
    raw: list[str] | None, *, allowed: tuple[Dimension, ...] = DIMENSIONS, why: str = ""
) -> tuple[Dimension, ...]:
    dims: list[Dimension] = []
    for item in raw or []:
        for name in item.split(","):
            name = name.strip()
            if not name:
                continue
            if name not in allowed:
                raise BadRequest(
                    f"group_by: unknown dimension {name!r}; use any of {', '.join(allowed)}{why}",
                    field="group_by",
                )
            if name not in dims:
                dims.append(name)
    return tuple(dims)


def build_selection(
    *,
    project_id: int,
    project_tz: str,
    start: datetime | None,
    end: datetime | None,
    interval: Interval,
    tz: str | None,
    group_by: tuple[Dimension, ...],
    filters: dict[Dimension, list[str] | None],
    now: datetime,
) -> Selection:
    zone = tz or project_tz
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(
            f"tz: unknown time zone {zone!r}; use an IANA name like Europe/Paris", field="tz"
        ) from None
    end_at = _aware(end, "to") if end else now
    start_at = _aware(start, "from") if start else end_at - DEFAULT_RANGE
    if start_at >= end_at:
        raise BadRequest("from must be before to", field="from")
    start_at = _floor_hour(start_at)
    end_at = _floor_hour(end_at) + (
        timedelta(hours=1) if _floor_hour(end_at) != end_at else timedelta(0)
    )
    buckets = math.ceil((end_at - start_at) / _APPROX_BUCKET[interval])
    if buckets > MAX_BUCKETS:
        raise BadRequest(
            f"from: the range holds about {buckets} {interval}s (at most {MAX_BUCKETS}); "
            "shorten it or use a coarser interval",
            field="from",
        )
    cleaned = {dim: tuple(v for v in values if v) for dim, values in filters.items() if values}
    return Selection(
        project_id=project_id,
        start=start_at,
        end=end_at,
        interval=interval,
        tz=zone,
        group_by=group_by,
        filters=cleaned,
    )
