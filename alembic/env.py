"""Alembic environment: the schema changes only through these migrations."""

from __future__ import annotations

import re
from typing import Any

from alembic.util import CommandError
from sqlalchemy import create_engine, pool

from alembic import context
from services.models import Base

config = context.config
target_metadata = Base.metadata

# Partitions are created by the partitions worker, not by migrations: keep them out of
# autogenerate and `alembic check`.
_MANAGED_PARTITION = re.compile(r"^llm_calls_(p\d{8}|default)$")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    return not (type_ == "table" and name is not None and _MANAGED_PARTITION.match(name))


def _database_url() -> str:
    try:
        url = config.get_main_option("sqlalchemy.url")
    except CommandError:  # plain `alembic -c pyproject.toml ...`: no ini section at all
        url = None
    if url:
        return url
    from services.core.settings import get_settings
    from services.core.urls import normalize_database_url

    settings = get_settings()
    if not settings.database_url:
        raise SystemExit(
            "alembic needs COSTLINE_DATABASE_URL (or run `costline migrate`, which also "
            "starts the embedded PostgreSQL)"
        )
    return normalize_database_url(settings.database_url)


def run_migrations_online() -> None:
    connectable = create_engine(_database_url(), poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_name=include_name,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
