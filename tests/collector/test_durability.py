"""A collector killed with SIGKILL under load loses no span it acknowledged."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from bench.otlp_payloads import build_export_request
from tests.cli.helpers import cli_env, free_port
from tests.collector.conftest import Keys

pytestmark = pytest.mark.slow


def test_sigkill_under_load_loses_no_acknowledged_span(
    tmp_path: Path,
    database_url: str,
    broker_url: str,
    keys: Keys,
    session_factory: sessionmaker[Session],
) -> None:
    port = free_port()
    env = cli_env(
        tmp_path,
        COSTLINE_DATABASE_URL=database_url,
        COSTLINE_BROKER_URL=broker_url,
        COSTLINE_COLLECTOR_PORT=str(port),
        COSTLINE_LOG_LEVEL="WARNING",
    )
    process = subprocess.Popen([sys.executable, "-m", "services.cli.main", "collector"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)

    acknowledged: list[bytes] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        seed = worker * 10_000
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                seed += 1
                request = build_export_request(n_spans=256, seed=seed)
                try:
                    response = http.post(
                        f"{url}/v1/traces",
                        content=request.SerializeToString(),
                        headers={
                            "content-type": "application/x-protobuf",
                            "authorization": f"Bearer {keys.ingest}",
                        },
                    )
                except httpx.HTTPError:
                    return  # the collector died mid-request: that batch was never acknowledged
                if response.status_code == 200:
                    acknowledged.extend(
                        span.span_id
                        for rs in request.resource_spans
                        for ss in rs.scope_spans
                        for span in ss.spans
                    )

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 256 * 6 and time.monotonic() < deadline + 60:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stop.set()
    for thread in threads:
        thread.join()

    assert len(acknowledged) >= 256 * 6
    with session_factory() as session:
        stored = set(session.execute(text("select span_id from llm_calls")).scalars())
    missing = [span_id for span_id in acknowledged if span_id not in stored]
    assert missing == []
