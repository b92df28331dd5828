"""Upgrading a database that holds rollups to 0008 (the request queue) loses nothing and
counts nothing twice.

Before 0008 a request's state lived on its row: ``settled_at`` (null while it waited) and
``rolled`` (what it had put into the request cells). A request re-opened by a late call
waited with its old contribution still in the cells. 0008 queues every waiting request and
takes such old contributions out, so that "queued" means "not in the cells". Here a
database at head is rolled up, taken down to 0007, put in each of those states, and
upgraded again; after the rollups catch up, every cell must equal a from-scratch
recomputation from the raw calls.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from alembic import command
from services.core.db import make_engine, make_session_factory
from services.core.migrations import alembic_config
from services.ingest.repository import write_calls
from services.partitions.service import maintain_partitions
from services.rollups.service import advance_calls, settle_requests
from tests.conftest import create_database, drop_database
from tests.factories import make_project
from tests.rollups import expected
from tests.rollups.calls import FAR_FUTURE, call_row
from tests.rollups.conftest import BASE


@pytest.fixture
def database(postgres_server_url: str) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """A database of its own (the test moves its schema down and up): URL and sessions."""
    name = f"costline_upgrade_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server_url, name)
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url, pool_size=2)
    yield url, make_session_factory(engine)
    engine.dispose()
    drop_database(postgres_server_url, name)


def _call(request_id: str, hour: int, cost: str | None, feature: str) -> dict[str, Any]:
    started = BASE + timedelta(hours=hour, minutes=len(request_id))
    return {
        "started_at": started,
        "ended_at": started + timedelta(seconds=2),
        "request_id": request_id,
        "trace_id": os.urandom(16),
        "span_id": os.urandom(8),
        "cost_usd": None if cost is None else Decimal(cost),
        "input_tokens": 100 * hour + 7,
        "output_tokens": 10 * hour + 1,
        "cache_read_tokens": 0,
        "feature": feature,
        "customer": "acme",
        "model": "gpt-4o",
    }


def _ingest(factory: sessionmaker[Session], project_id: int, calls: list[dict[str, Any]]) -> None:
    with factory.begin() as session:
        write_calls(session.connection(), [call_row(project_id, c) for c in calls])


def _catch_up(factory: sessionmaker[Session], *, settle: bool) -> None:
    caught_up = False
    while not caught_up:
        with factory.begin() as session:
            caught_up = advance_calls(session).caught_up
    if settle:
        with factory.begin() as session:
            while settle_requests(session, now=FAR_FUTURE):
                pass


def _queued(factory: sessionmaker[Session]) -> set[str]:
    with factory() as session:
        return set(session.execute(text("select request_id from request_queue")).scalars())


def test_upgrade_to_0008_keeps_every_request_counted_once(
    database: tuple[str, sessionmaker[Session]],
) -> None:
    url, factory = database
    with factory.begin() as session:
        maintain_partitions(session, today=BASE.date(), ahead_days=3)
        project_id = make_project(session).id
    # Settled before the downgrade: a1..a4 (a4 two calls, one unpriced).
    _ingest(
        factory,
        project_id,
        [
            _call("a1", 1, "0.5", "search"),
            _call("a2", 2, "1.25", "chat"),
            _call("a3", 3, "2", "search"),
            _call("a4", 4, "0.01", "chat"),
            _call("a4", 5, None, "chat"),
        ],
    )
    _catch_up(factory, settle=True)
    # Waiting when the schema goes down: b1, b2 (rolled up as calls, not yet as requests).
    _ingest(factory, project_id, [_call("b1", 6, "3", "search"), _call("b2", 7, "0.75", "chat")])
    _catch_up(factory, settle=False)
    assert _queued(factory) == {"b1", "b2"}

    cfg = alembic_config(url)
    command.downgrade(cfg, "0007")
    with factory.begin() as session:
        states: dict[str, bool] = dict(
            session.execute(
                text(
                    "select request_id, settled_at is not null and rolled is not null from requests"
                )
            ).all()
        )
        assert states == {"a1": True, "a2": True, "a3": True, "a4": True, "b1": False, "b2": False}
        # The old design's re-opened requests: waiting again, old contribution still counted.
        session.execute(
            text("update requests set settled_at = null where request_id in ('a1', 'a2')")
        )
    # Late calls arrive before the upgrade: for the re-opened a1 (earlier than its first call,
    # so its hour and feature move) and for the still-settled a3.
    _ingest(factory, project_id, [_call("a1", 0, "4", "chat"), _call("a3", 3, "0.5", "search")])

    command.upgrade(cfg, "head")
    assert _queued(factory) == {"a1", "a2", "b1", "b2"}
    with factory() as session:
        # Only the settled a3 and a4 are in the request cells now (a1, a2 were taken out).
        counted = session.execute(
            text("select coalesce(sum(requests), 0) from request_rollups where grain = 1")
        ).scalar_one()
        assert counted == 2

    _catch_up(factory, settle=True)
    assert _queued(factory) == set()
    with factory() as session:
        raw = expected.raw_calls(session)
        assert len(raw) == 9
        assert expected.stored_call_cells(session) == expected.expected_call_cells(raw)
        requests = expected.expected_requests(raw)
        assert expected.stored_request_cells(session) == expected.expected_request_cells(requests)
        assert (
            session.execute(
                text("select count(*) from request_rollups where requests = 0")
            ).scalar_one()
            == 0
        )
