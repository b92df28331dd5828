"""A local HTTP server standing in for Slack incoming webhooks (and generic webhooks):
it records every post and answers what a test scripts (429 with Retry-After, 500,
``invalid_token``, ``channel_not_found``...)."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Post:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))

    @property
    def ref(self) -> str:
        return self.headers.get("x-costline-idempotency-key") or self.headers.get(
            "idempotency-key", "")

    @property
    def all_text(self) -> str:
        return json.dumps(self.body)


@dataclass
class FakeSlack:
    host: str = "127.0.0.1"
    port: int = 0
    posts: list[Post] = field(default_factory=list)
    delay_s: float = 0.0
    _script: dict[str, deque[tuple[int, str, dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/services/T0001/B0001/s3cr3tT0k3nXYZ") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def answer(self, path: str, status: int, body: str = "", *, times: int = 1,
               headers: dict[str, str] | None = None) -> None:
        """The next ``times`` posts to ``path`` get this answer instead of 200 ok."""
        with self._lock:
            for _ in range(times):
                self._script[path].append((status, body, headers or {}))

    def accepted(self, path: str | None = None) -> list[Post]:
        """Posts answered 200, i.e. messages a person would see."""
        with self._lock:
            return [p for p in self.posts if p.headers.get("_status") == "200"
                    and (path is None or p.path == path)]

    def posts_to(self, path: str) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.path == path]

    def _next(self, path: str) -> tuple[int, str, dict[str, str]]:
        with self._lock:
            queue = self._script.get(path)
            return queue.popleft() if queue else (200, "ok", {})


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if fake.delay_s:
                time.sleep(fake.delay_s)
            status, body, headers = fake._next(self.path)
            recorded = {k.lower(): v for k, v in self.headers.items()}
            recorded["_status"] = str(status)
            with fake._lock:
                fake.posts.append(Post(self.path, json.loads(raw or b"{}"), recorded))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "text/plain")
            payload = body.encode()
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    server = ThreadingHTTPServer((fake.host, 0), _handler(fake))
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
