"""Calendar periods in a project's time zone, as UTC instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.core.errors import BadRequest


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"unknown time zone {name!r}", field="timezone") from None


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def period_bounds(period: str, *, at: datetime, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of the ``day``/``week`` (Monday first)/``month`` holding ``at``, aligned
    to local midnights (so a DST day is 23 or 25 hours long)."""
    tz = zone(timezone)
    today = at.astimezone(tz).date()
    if period == "day":
        first, after = today, today + timedelta(days=1)
    elif period == "week":
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    elif period == "month":
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    else:
        raise BadRequest(f"unknown period {period!r}; use day, week or month", field="period")
    return _midnight(first, tz), _midnight(after, tz)


def describe(period: str, start: datetime, timezone: str) -> str:
    local = start.astimezone(zone(timezone))
    if period == "month":
        return local.strftime("%B %Y")
    if period == "week":
        return f"week of {local:%Y-%m-%d}"
    return f"{local:%Y-%m-%d}"
