"""``costline up``: run collector, API, worker and beat as children; stop them all together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import psutil

from services.core.errors import ConfigurationError

STOP_TIMEOUT_S = 20.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        # Own process group: stopping the child also stops whatever it forked (Celery's pool).
        self.process = subprocess.Popen(self.argv, env=env, start_new_session=True)

    @property
    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)


@dataclass
class Supervisor:
    children: list[Child]
    stopping: bool = False
    _known_pids: set[int] = field(default_factory=set)

    def start(self, env: dict[str, str]) -> None:
        for child in self.children:
            child.start(env)

    def remember_descendants(self) -> None:
        for child in self.children:
            if child.process is None:
                continue
            try:
                proc = psutil.Process(child.process.pid)
                self._known_pids.add(proc.pid)
                self._known_pids.update(p.pid for p in proc.children(recursive=True))
            except psutil.NoSuchProcess:
                continue

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if c.exited is not None), None)

    def stop(self) -> None:
        """SIGTERM every group, wait, then SIGKILL what is left (and any orphaned descendant)."""
        self.remember_descendants()
        for child in self.children:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and any(c.exited is None for c in self.children):
            time.sleep(0.1)
        for child in self.children:
            child.signal_group(signal.SIGKILL)
            if child.process is not None:
                child.process.wait()
        for pid in self._known_pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()


def wait_healthy(url: str, *, timeout_s: float, supervisor: Supervisor) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        dead = supervisor.first_exited()
        if dead is not None or supervisor.stopping:
            raise ConfigurationError(
                f"the {dead.name if dead else 'stack'} stopped while starting; see its log above"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:200]}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.2)
    raise ConfigurationError(f"{url} did not become healthy within {timeout_s:.0f}s ({last_error})")


def part_argv(part: str) -> list[str]:
    return [sys.executable, "-m", "services.cli.main", part]
