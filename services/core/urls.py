"""Validate and normalize the database and broker URLs, naming the setting on failure."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from services.core.errors import ConfigurationError

_PG_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg"}
_BROKER_SCHEMES = {"redis", "rediss", "redis+socket", "amqp", "amqps", "pyamqp"}


def normalize_database_url(raw: str, *, setting: str = "COSTLINE_DATABASE_URL") -> str:
    """Return a SQLAlchemy URL using the psycopg 3 driver, or raise naming ``setting``."""
    try:
        url: URL = make_url(raw)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"{setting} is not a valid URL ({exc}); expected postgresql://user:pass@host:5432/db"
        ) from None
    if url.drivername not in _PG_SCHEMES:
        raise ConfigurationError(
            f"{setting} must be a postgresql:// URL, got scheme {url.drivername!r}"
        )
    if not url.database:
        raise ConfigurationError(f"{setting} names no database; add /dbname at the end")
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def validate_broker_url(raw: str, *, setting: str = "COSTLINE_BROKER_URL") -> str:
    """Return the broker URL unchanged if Celery can use it, or raise naming ``setting``."""
    try:
        scheme = urlsplit(raw).scheme
    except ValueError as exc:
        raise ConfigurationError(f"{setting} is not a valid URL ({exc})") from None
    if scheme not in _BROKER_SCHEMES:
        raise ConfigurationError(
            f"{setting} must be a redis:// or amqp:// URL, got {scheme or 'no scheme'!r}; "
            "e.g. redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//"
        )
    return raw


def redact(url: str) -> str:
    """The URL with any password replaced, for printing."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
