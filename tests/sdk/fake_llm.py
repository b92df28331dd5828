"""A real HTTP server on 127.0.0.1 that speaks enough of the OpenAI and Anthropic APIs.

JSON and SSE responses with cached and reasoning tokens, errors on demand, and an OTLP
/v1/traces receiver that records what it was sent.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_MODEL = "gpt-4o-mini-2024-07-18"
CHAT_TEXT = ["Hello", " there", ",", " how", " can", " I", " help", "?"]
CHAT_USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 30,
    "total_tokens": 150,
    "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 12},
}
RESPONSES_MODEL = "gpt-5-mini-2025-08-07"
RESPONSES_USAGE = {
    "input_tokens": 200,
    "input_tokens_details": {"cached_tokens": 150, "cache_write_tokens": 10},
    "output_tokens": 80,
    "output_tokens_details": {"reasoning_tokens": 64},
    "total_tokens": 280,
}
CLAUDE_MODEL = "claude-sonnet-4-6-20260101"
CLAUDE_TEXT = ["Hi", " from", " Claude", "."]
CLAUDE_USAGE = {
    "input_tokens": 10,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 200,
    "output_tokens": 50,
    "output_tokens_details": {"thinking_tokens": 20},
}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeLLMServer:
    """Behaviour knobs are plain attributes that tests set and reset."""

    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    fail_with: list[tuple[int, str]] = field(default_factory=list)  # next responses: errors
    stream_usage_supported: bool = True  # honour stream_options.include_usage
    stream_error_after: int | None = None  # chat stream: send an error event after N chunks
    chunks: int = len(CHAT_TEXT)
    claude_delta_usage: dict[str, Any] = field(default_factory=dict)  # extra message_delta usage
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeLLMServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                fake.requests.append(recorded)
                fake._handle(self, recorded)

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def reset(self) -> None:
        self.requests.clear()
        self.fail_with.clear()
        self.stream_usage_supported = True
        self.stream_error_after = None
        self.chunks = len(CHAT_TEXT)
        self.claude_delta_usage = {}

    def last(self, path_suffix: str) -> Recorded:
        return [r for r in self.requests if r.path.endswith(path_suffix)][-1]

    # -- responses -------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, req: Recorded) -> None:
        path = req.path.split("?")[0]
        if path == "/v1/traces":
            return _send(h, 200, b"", "application/x-protobuf")
        anthropic = path == "/v1/messages"
        if self.fail_with:
            status, message = self.fail_with.pop(0)
            return _send_json(h, status, _error_body(status, message, anthropic))
        data = req.json()
        if path == "/v1/chat/completions":
            if data.get("stream"):
                return self._chat_stream(h, data)
            return _send_json(h, 200, _chat_completion(data))
        if path == "/v1/responses":
            if data.get("stream"):
                return _sse(h, _responses_events(data))
            return _send_json(h, 200, _response(data))
        if path == "/v1/embeddings":
            return _send_json(h, 200, _embeddings(data))
        if anthropic:
            if data.get("stream"):
                return _sse(h, _claude_events(data, self.claude_delta_usage))
            return _send_json(h, 200, _claude_message(data))
        return _send_json(h, 404, {"error": {"message": "not found"}})

    def _chat_stream(self, h: BaseHTTPRequestHandler, data: dict[str, Any]) -> None:
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        events: list[tuple[str | None, Any]] = []
        texts = (CHAT_TEXT * (self.chunks // len(CHAT_TEXT) + 1))[: self.chunks]
        for i, text in enumerate(texts):
            if self.stream_error_after is not None and i == self.stream_error_after:
                events.append(
                    (None, {"error": {"message": "server exploded", "type": "server_error"}})
                )
                break
            events.append(
                (
                    None,
                    _chunk(
                        data,
                        {"content": text, "role": "assistant"} if i == 0 else {"content": text},
                        None,
                        include_usage,
                    ),
                )
            )
        else:
            events.append((None, _chunk(data, {}, "stop", include_usage)))
            if include_usage and self.stream_usage_supported:
                final = _chunk(data, None, None, True)
                final["choices"] = []
                final["usage"] = CHAT_USAGE
                events.append((None, final))
        events.append((None, "[DONE]"))
        _sse(h, events)


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    h.send_response(status)
    h.send_header("content-type", content_type)
    h.send_header("content-length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _send_json(h: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    _send(h, status, json.dumps(payload).encode(), "application/json")


def _sse(h: BaseHTTPRequestHandler, events: list[tuple[str | None, Any]]) -> None:
    h.send_response(200)
    h.send_header("content-type", "text/event-stream")
    h.end_headers()
    out = []
    for name, payload in events:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        out.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    h.wfile.write("".join(out).encode())
    h.wfile.flush()


def _error_body(status: int, message: str, anthropic: bool) -> Any:
    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    if anthropic:
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None, "param": None}}


def _chat_completion(data: dict[str, Any]) -> dict[str, Any]:
    structured = (data.get("response_format") or {}).get("type") == "json_schema"
    content = '{"text": "hello"}' if structured else "".join(CHAT_TEXT)
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": CHAT_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": CHAT_USAGE,
    }


def _chunk(
    data: dict[str, Any], delta: dict[str, Any] | None, finish: str | None, with_usage: bool
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-stream-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": CHAT_MODEL,
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, "logprobs": None}],
    }
    if with_usage:
        chunk["usage"] = None
    return chunk


def _response(data: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {
        "id": "resp_123",
        "object": "response",
        "created_at": 1700000000,
        "model": RESPONSES_MODEL,
        "status": status,
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi there", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": RESPONSES_USAGE if status == "completed" else None,
    }


def _responses_events(data: dict[str, Any]) -> list[tuple[str | None, Any]]:
    created = _response(data, status="in_progress")
    created["output"] = []
    item = {
        "type": "message",
        "id": "msg_1",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    part = {"type": "output_text", "text": "", "annotations": []}
    events: list[tuple[str | None, Any]] = [
        (
            "response.created",
            {"type": "response.created", "sequence_number": 0, "response": created},
        ),
        (
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "sequence_number": 1,
                "output_index": 0,
                "item": item,
            },
        ),
        (
            "response.content_part.added",
            {
                "type": "response.content_part.added",
                "sequence_number": 2,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "part": part,
            },
        ),
    ]
    for i, text in enumerate(["Hi", " there"]):
        events.append(
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": i + 3,
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": text,
                    "logprobs": [],
                },
            )
        )
    events.append(
        (
            "response.completed",
            {"type": "response.completed", "sequence_number": 9, "response": _response(data)},
        )
    )
    return events


def _embeddings(data: dict[str, Any]) -> dict[str, Any]:
    vector = [0.1, 0.2, 0.3]
    if data.get("encoding_format") == "base64":
        embedding: Any = base64.b64encode(struct.pack("<3f", *vector)).decode()
    else:
        embedding = vector
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }


def _claude_message(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_123",
        "type": "message",
        "role": "assistant",
        "model": CLAUDE_MODEL,
        "content": [{"type": "text", "text": "".join(CLAUDE_TEXT)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": CLAUDE_USAGE,
    }


def _claude_events(
    data: dict[str, Any], delta_usage: dict[str, Any]
) -> list[tuple[str | None, Any]]:
    start_usage = {**CLAUDE_USAGE, "output_tokens": 1}
    start_usage.pop("output_tokens_details")
    message = {**_claude_message(data), "content": [], "stop_reason": None, "usage": start_usage}
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for text in CLAUDE_TEXT:
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
            )
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "output_tokens": 50,
                    "output_tokens_details": {"thinking_tokens": 20},
                    **delta_usage,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events
