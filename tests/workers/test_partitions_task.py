import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import make_call, make_project
from workers.tasks.partitions import maintain


def test_partitions_task_runs_through_the_broker_and_moves_strays(
    celery_worker: object, session_factory: sessionmaker[Session]
) -> None:
    stray_at = datetime(2023, 7, 14, 8, 30, tzinfo=UTC)
    with session_factory.begin() as session:
        make_call(session, project=make_project(session), started_at=stray_at)

    maintain.delay()

    deadline = time.monotonic() + 30
    with session_factory() as session:
        while time.monotonic() < deadline:
            where = session.execute(
                text("select tableoid::regclass::text from llm_calls where started_at = :t"),
                {"t": stray_at},
            ).scalar_one()
            session.rollback()
            if where == "llm_calls_p20230714":
                break
            time.sleep(0.2)
    assert where == "llm_calls_p20230714"
