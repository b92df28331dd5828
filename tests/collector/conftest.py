"""A real collector (uvicorn on a free port, in a thread) over the test database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from services.collector.app import create_app
from services.keys.service import create_key
from tests.cli.helpers import free_port


@dataclass
class RunningCollector:
    url: str
    app: FastAPI

    def post(
        self,
        body: bytes,
        *,
        key: str | None,
        content_type: str = "application/x-protobuf",
        **headers: str,
    ) -> httpx.Response:
        sent = {"content-type": content_type, **headers}
        if key is not None:
            sent["authorization"] = f"Bearer {key}"
        return httpx.post(f"{self.url}/v1/traces", content=body, headers=sent, timeout=30)


def serve(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("collector did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def start_collector(database_url: str, **options: Any) -> Iterator[RunningCollector]:
    app = create_app(database_url=database_url, broker_url=None, **options)
    for url in serve(app):
        yield RunningCollector(url=url, app=app)
    app.state.engine.dispose()


@pytest.fixture
def collector(
    database_url: str, session_factory: sessionmaker[Session]
) -> Iterator[RunningCollector]:
    yield from start_collector(database_url)


@dataclass
class Keys:
    ingest: str
    read: str
    project_id: int


@pytest.fixture
def keys(session_factory: sessionmaker[Session]) -> Keys:
    with session_factory.begin() as session:
        ingest = create_key(session, project_name="acme", scope="ingest")
        read = create_key(session, project_name="acme", scope="read")
    return Keys(ingest=ingest.key, read=read.key, project_id=ingest.project_id)
