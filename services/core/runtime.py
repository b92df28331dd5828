"""Resolve the settings into servers to talk to: given URLs, or embedded ones started here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from services.core.embedded import EmbeddedPostgres, EmbeddedRedis
from services.core.errors import ConfigurationError
from services.core.settings import Settings
from services.core.urls import normalize_database_url, validate_broker_url


@dataclass
class Runtime:
    """The concrete database and broker URLs of this process, and what it started itself."""

    database_url: str
    broker_url: str | None
    embedded_postgres: EmbeddedPostgres | None = None
    embedded_redis: EmbeddedRedis | None = None
    started: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """Stop what this process started (the broker first: it may hold DB-free state)."""
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
            self.embedded_redis = None
        if self.embedded_postgres is not None:
            self.embedded_postgres.stop()
            self.embedded_postgres = None


def check_database(url: str, *, setting: str = "COSTLINE_DATABASE_URL") -> None:
    """Connect once; raise ConfigurationError naming ``setting`` and the reason."""
    import psycopg
    from sqlalchemy.engine import make_url

    sa_url = make_url(url)
    dsn = sa_url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigurationError(f"{setting} is unreachable: {reason}") from None


def check_broker(url: str, *, setting: str = "COSTLINE_BROKER_URL") -> None:
    """Open one broker connection; raise ConfigurationError naming ``setting`` and the reason."""
    from kombu.connection import Connection

    try:
        with Connection(url, connect_timeout=5) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:
        raise ConfigurationError(f"{setting} is unreachable: {exc}") from None


@contextmanager
def runtime(
    settings: Settings, *, need_broker: bool = True, check: bool = True
) -> Iterator[Runtime]:
    """Yield the servers to use, starting embedded ones for unset URLs and stopping them after."""
    rt = Runtime(database_url="", broker_url=None)
    try:
        if settings.database_url:
            rt.database_url = normalize_database_url(settings.database_url)
            if check:
                check_database(rt.database_url)
        else:
            rt.embedded_postgres = EmbeddedPostgres(settings.resolved_data_dir)
            rt.database_url = rt.embedded_postgres.start()
            rt.started.append("postgres")
        if need_broker:
            if settings.broker_url:
                rt.broker_url = validate_broker_url(settings.broker_url)
                if check:
                    check_broker(rt.broker_url)
            else:
                rt.embedded_redis = EmbeddedRedis(settings.resolved_data_dir)
                rt.broker_url = rt.embedded_redis.start()
                rt.started.append("redis")
        yield rt
    finally:
        with suppress(ConfigurationError):
            rt.stop()
