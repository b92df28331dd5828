"""Readiness of the parts a process depends on: the database and the broker."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from threading import Lock

from sqlalchemy import Engine, text


@dataclass
class HealthChecker:
    """Checks the database and broker; caches the broker result briefly (it opens a socket)."""

    engine: Engine
    broker_url: str | None
    broker_cache_s: float = 2.0
    _broker_checked_at: float = field(default=0.0, repr=False)
    _broker_status: str = field(default="unknown", repr=False)
    _lock: Lock = field(default_factory=Lock, repr=False)

    def database(self) -> str:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("select 1"))
        except Exception as exc:
            return f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return "ok"

    def broker(self) -> str:
        if self.broker_url is None:
            return "not configured"
        with self._lock:
            if time.monotonic() - self._broker_checked_at < self.broker_cache_s:
                return self._broker_status
        from services.core.errors import ConfigurationError
        from services.core.runtime import check_broker

        try:
            check_broker(self.broker_url)
            status = "ok"
        except ConfigurationError as exc:
            status = f"error: {exc.message}"
        with self._lock:
            self._broker_status, self._broker_checked_at = status, time.monotonic()
        return status

    def report(self) -> tuple[int, dict[str, str]]:
        """(HTTP status, {"database": ..., "broker": ...}); 503 names the failing part."""
        parts = {"database": self.database(), "broker": self.broker()}
        healthy = all(value in ("ok", "not configured") for value in parts.values())
        return (200 if healthy else 503), {"status": "ok" if healthy else "unavailable", **parts}
