from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.partitions.service import (
    drop_partitions_before,
    existing_partition_days,
    maintain_partitions,
)
from tests.factories import make_call, make_project


def _partition_of(db: Session, started_at: datetime) -> str:
    return db.execute(
        text("select tableoid::regclass::text from llm_calls where started_at = :t"),
        {"t": started_at},
    ).scalar_one()


def test_backfilled_span_lands_in_default_then_moves_to_its_own_partition(db: Session) -> None:
    project = make_project(db)
    old = datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    make_call(db, project=project, started_at=old)
    assert _partition_of(db, old) == "llm_calls_default"

    report = maintain_partitions(db, today=date(2026, 11, 21), ahead_days=7)

    assert "llm_calls_p20240229" in report.created
    assert report.moved_rows == 1
    assert _partition_of(db, old) == "llm_calls_p20240229"
    assert db.execute(text("select count(*) from llm_calls_default")).scalar_one() == 0
    assert db.execute(text("select count(*) from llm_calls")).scalar_one() == 1


def test_partitions_are_created_seven_days_ahead_and_idempotently(db: Session) -> None:
    today = date(2031, 1, 1)
    maintain_partitions(db, today=today, ahead_days=7)
    days = existing_partition_days(db)
    assert {today + timedelta(days=offset) for offset in range(-1, 8)} <= days
    again = maintain_partitions(db, today=today, ahead_days=7)
    assert again.created == []


def test_retention_drops_whole_old_partitions_only(db: Session) -> None:
    project = make_project(db)
    make_call(db, project=project, started_at=datetime(2030, 3, 1, 12, tzinfo=UTC))
    make_call(db, project=project, started_at=datetime(2030, 3, 3, 12, tzinfo=UTC))
    maintain_partitions(db, today=date(2030, 3, 3), ahead_days=1)

    dropped = drop_partitions_before(db, cutoff=date(2030, 3, 2))

    assert "llm_calls_p20300301" in dropped
    assert "llm_calls_p20300303" not in dropped
    assert db.execute(text("select count(*) from llm_calls")).scalar_one() == 1
