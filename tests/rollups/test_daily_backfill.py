"""Migration 0007 backfills daily request cells from hourly ones: the same cells the settle
step now writes itself."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from services.ingest.repository import write_calls
from services.rollups.service import advance_calls, settle_requests
from tests.factories import make_project
from tests.rollups import expected
from tests.rollups.calls import FAR_FUTURE, call_row, random_call

_MIGRATION = (
    Path(__file__).parents[2] / "alembic" / "versions" / "20261122_0007_daily_request_cells.py"
)


def _backfill_sql() -> str:
    spec = importlib.util.spec_from_file_location("migration_0007", _MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.BACKFILL)


def test_backfill_rebuilds_the_daily_cells_the_settle_step_writes(
    engine: Engine, prepared: sessionmaker[Session]
) -> None:
    rng = random.Random(3)
    with prepared.begin() as session:
        project_id = make_project(session).id
        write_calls(
            session.connection(), [call_row(project_id, random_call(rng)) for _ in range(300)]
        )
    with prepared.begin() as session:
        advance_calls(session)
    with prepared.begin() as session:
        while settle_requests(session, now=FAR_FUTURE):
            pass
    with prepared() as session:
        written = expected.stored_request_cells(session)
    assert any(key[1] == 2 for key in written)

    with prepared.begin() as session:
        session.execute(text("delete from request_rollups where grain = 2"))
        session.execute(text(_backfill_sql()))
    with prepared() as session:
        assert expected.stored_request_cells(session) == written
