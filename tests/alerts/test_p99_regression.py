"""A p99 per-request cost regression alerts once per feature and day, and recovers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from services.alerts.outbox import deliver_pending
from services.alerts.p99_rules import evaluate_p99_regressions
from services.models import Project
from services.partitions.service import maintain_partitions
from services.rollups.service import advance_calls, settle_requests
from tests.alerts.fake_slack import FakeSlack
from tests.alerts.helpers import make_channel
from tests.factories import make_call, make_project

START = datetime(2026, 11, 10, tzinfo=UTC)
REGRESSION = (START + timedelta(days=8), START + timedelta(days=9))


def _traffic(factory: sessionmaker[Session], *, tail_cost: str) -> int:
    """10 days of search requests, one every 24 minutes; on day 9, 1 in 20 costs
    ``tail_cost``."""
    with factory.begin() as session:
        maintain_partitions(session, today=START.date(), ahead_days=11)
        project = make_project(session)
        for i in range(10 * 60):
            started = START + timedelta(minutes=24 * i)
            regressed = REGRESSION[0] <= started < REGRESSION[1] and i % 20 == 0
            normal = Decimal("0.01") + i % 7 * Decimal("0.001")
            make_call(
                session,
                project=project,
                request_id=f"r{i}",
                started_at=started,
                feature="search",
                cost=tail_cost if regressed else str(normal),
            )
        project_id = project.id
    with factory.begin() as session:
        advance_calls(session)
    with factory.begin() as session:
        settle_requests(session, now=datetime.now(UTC) + timedelta(hours=1))
    return project_id


def _evaluate(factory: sessionmaker[Session], project_id: int, at: datetime):  # type: ignore[no-untyped-def]
    with factory.begin() as session:
        report = evaluate_p99_regressions(session, project_id=project_id, now=at)
    deliver_pending(factory, clock=lambda: at)
    return report


def test_p99_regression_fires_once_per_day_then_resolves(
    session_factory: sessionmaker[Session],
    fake_slack: FakeSlack,
) -> None:
    project_id = _traffic(session_factory, tail_cost="0.25")
    with session_factory.begin() as session:
        channel = make_channel(
            session, project=session.get(Project, project_id), url=fake_slack.url()
        )
        channel.receives_anomalies = True

    fired = _evaluate(session_factory, project_id, REGRESSION[1] + timedelta(minutes=5))
    again = _evaluate(session_factory, project_id, REGRESSION[1] + timedelta(minutes=35))

    assert len(fired.fired) == 2 and again.fired == []  # the feature and the whole project
    texts = [m.all_text for m in fake_slack.accepted()]
    assert len(texts) == 2
    assert any("feature search" in t for t in texts)
    assert all("metric=request_cost" in t and "p99" in t for t in texts)

    # A day later the recent window is back to normal: both alerts resolve, and say so.
    later = _evaluate(session_factory, project_id, REGRESSION[1] + timedelta(days=1, minutes=5))
    assert sorted(later.resolved) == sorted(fired.fired)
    assert len(fake_slack.accepted()) == 4
    assert "back to" in fake_slack.accepted()[-1].all_text


def test_steady_costs_raise_nothing(session_factory: sessionmaker[Session]) -> None:
    project_id = _traffic(session_factory, tail_cost="0.012")
    report = _evaluate(session_factory, project_id, REGRESSION[1] + timedelta(minutes=5))
    assert report.fired == []
