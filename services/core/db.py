"""Engine and session factory. One transaction owner per request or task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, pool_size: int = 5, application_name: str = "costline") -> Engine:
    """A psycopg 3 engine with pre-ping, so a restarted PostgreSQL is reconnected."""
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args={"connect_timeout": 5, "application_name": application_name},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit if the block succeeds, roll back if it raises. The only place that commits."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def one_off_transaction(url: str) -> Iterator[Session]:
    """One transaction on a short-lived single-connection engine (CLI commands, scripts)."""
    engine = make_engine(url, pool_size=1)
    try:
        with transaction(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()
