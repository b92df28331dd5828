"""Spend of a scope: rolled-up hours plus the not-yet-rolled tail, unpriced calls beside
it, calendar periods in the project's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from services.budgets.periods import period_bounds
from services.budgets.repository import spend
from services.rollups.service import advance_calls
from tests.factories import make_call, make_project


def test_periods_are_calendar_aligned_in_the_project_time_zone() -> None:
    at = datetime(2026, 3, 29, 20, 0, tzinfo=UTC)
    assert period_bounds("month", at=at, timezone="Asia/Kolkata") == (
        datetime(2026, 2, 28, 18, 30, tzinfo=UTC), datetime(2026, 3, 31, 18, 30, tzinfo=UTC),
    )
    # Europe/Paris switches to summer time that night: the day is 23 hours long.
    start, end = period_bounds("day", at=at.replace(hour=10), timezone="Europe/Paris")
    assert (start, end) == (datetime(2026, 3, 28, 23, tzinfo=UTC),
                            datetime(2026, 3, 29, 22, tzinfo=UTC))
    assert period_bounds("week", at=at, timezone="UTC")[0] == datetime(2026, 3, 23, tzinfo=UTC)


def test_spend_counts_rolled_and_unrolled_calls_and_reports_unpriced_apart(
    db: Session,
) -> None:
    project = make_project(db, timezone="Asia/Kolkata")
    day = datetime(2026, 11, 4, 18, 30, tzinfo=UTC)  # local midnight, half past a UTC hour
    make_call(db, project=project, started_at=day.replace(hour=18, minute=10), cost="9")  # before
    make_call(db, project=project, started_at=day.replace(hour=18, minute=40), cost="1")
    make_call(db, project=project, started_at=day.replace(hour=20), cost="2", feature="rerank")
    make_call(db, project=project, started_at=day.replace(hour=21), cost=None)
    db.commit()
    advance_calls(db)
    db.commit()
    make_call(db, project=project, started_at=day.replace(hour=22), cost="4")  # not rolled up
    db.commit()

    start, end = period_bounds("day", at=day.replace(hour=23), timezone="Asia/Kolkata")
    whole = spend(db, project_id=project.id, scope={}, start=start, end=end)
    rerank = spend(db, project_id=project.id, scope={"feature": ["rerank"]}, start=start,
                   end=end)
    by_customer = spend(db, project_id=project.id, scope={"customer": ["customer-1"]},
                        start=start, end=end)

    assert (whole.cost_usd, whole.calls, whole.unpriced_calls) == (Decimal(7), 4, 1)
    assert (rerank.cost_usd, rerank.calls) == (Decimal(2), 1)
    assert by_customer.cost_usd == Decimal(7)
