"""The task-side transaction owner: ``with task_session() as session: ...`` commits once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from services.core.db import make_engine, make_session_factory, transaction
from services.core.errors import ConfigurationError
from services.core.settings import get_settings
from services.core.urls import normalize_database_url

_factory: sessionmaker[Session] | None = None


def configure_database(url: str) -> None:
    """Bind tasks to a database (the CLI after resolving the runtime; tests to theirs)."""
    global _factory
    _factory = make_session_factory(make_engine(url, application_name="costline-worker"))


@contextmanager
def task_session() -> Iterator[Session]:
    if _factory is None:
        url = get_settings().database_url
        if not url:
            raise ConfigurationError("COSTLINE_DATABASE_URL is not set for this worker")
        configure_database(normalize_database_url(url))
    assert _factory is not None
    with transaction(_factory) as session:
        yield session
