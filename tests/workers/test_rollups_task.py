import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.partitions.service import maintain_partitions
from tests.factories import make_call, make_project
from workers.tasks.rollups import advance


def test_rollups_task_runs_through_the_broker(
    celery_worker: object, session_factory: sessionmaker[Session]
) -> None:
    started = datetime.now(UTC) - timedelta(hours=2)
    with session_factory.begin() as session:
        maintain_partitions(session, today=started.date(), ahead_days=1)
        project = make_project(session)
        for _ in range(3):
            make_call(session, project=project, started_at=started, cost="0.25")

    advance.delay()

    deadline = time.monotonic() + 30
    calls = None
    with session_factory() as session:
        while time.monotonic() < deadline:
            calls = session.execute(
                text("select sum(calls) from call_rollups where grain = 1")
            ).scalar()
            session.rollback()
            if calls:
                break
            time.sleep(0.2)
    assert calls == 3
