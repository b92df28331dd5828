"""Post one message to one channel and classify the answer: delivered, retry later, or
broken (a permanent error no retry will fix, such as a revoked Slack webhook).

No retries happen here: the outbox owns retries, so a message is never posted twice by
a hidden inner loop."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from slack_sdk.webhook import WebhookClient

SEND_TIMEOUT_S = 10

# Slack incoming-webhook error bodies that no retry can fix.
SLACK_PERMANENT = frozenset({
    "invalid_token", "channel_not_found", "no_service", "channel_is_archived",
    "no_active_hooks", "action_prohibited", "team_disabled", "user_not_found",
    "posting_to_general_channel_denied", "invalid_payload",
})


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """What a channel receives: Slack gets ``text`` + ``blocks``; a webhook gets ``payload``.
    ``idempotency_key`` is the same for every attempt of one delivery."""

    text: str
    blocks: list[dict[str, Any]]
    payload: dict[str, Any]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Literal["delivered", "retry", "broken"]
    error: str = ""
    retry_after_s: float | None = None
    status: int | None = field(default=None)


Sender = Callable[[str, str, OutgoingMessage], SendResult]
"""(channel kind, url, message) -> result."""


def send(kind: str, url: str, message: OutgoingMessage) -> SendResult:
    """The production sender: Slack via slack_sdk, webhooks via httpx."""
    if kind == "slack":
        return send_slack(url, message)
    return send_webhook(url, message)


def send_slack(url: str, message: OutgoingMessage) -> SendResult:
    client = WebhookClient(url, timeout=SEND_TIMEOUT_S, retry_handlers=[])
    try:
        response = client.send(
            text=message.text, blocks=message.blocks,
            headers={"X-Costline-Idempotency-Key": message.idempotency_key},
        )
    except Exception as exc:  # network failures of any kind: try again later
        return SendResult("retry", error=f"{type(exc).__name__}: {exc}"[:300])
    return classify(response.status_code, response.body, dict(response.headers), slack=True)


def send_webhook(url: str, message: OutgoingMessage) -> SendResult:
    try:
        response = httpx.post(
            url, content=json.dumps(message.payload), timeout=SEND_TIMEOUT_S,
            headers={"Content-Type": "application/json",
                     "Idempotency-Key": message.idempotency_key},
        )
    except httpx.HTTPError as exc:
        return SendResult("retry", error=f"{type(exc).__name__}: {exc}"[:300])
    return classify(response.status_code, response.text, dict(response.headers), slack=False)


def classify(status: int, body: str, headers: dict[str, Any], *, slack: bool) -> SendResult:
    body = (body or "").strip()[:200]
    if 200 <= status < 300:
        return SendResult("delivered", status=status)
    error = f"HTTP {status}: {body}" if body else f"HTTP {status}"
    if status == 429:
        return SendResult("retry", error=error, status=status,
                          retry_after_s=_retry_after(headers))
    if status >= 500 or status == 408:
        return SendResult("retry", error=error, status=status)
    if slack and body in SLACK_PERMANENT:
        return SendResult("broken", error=body, status=status)
    # Any other 4xx (gone, forbidden, malformed) is not something time will fix either.
    return SendResult("broken", error=error, status=status)


def _retry_after(headers: dict[str, Any]) -> float | None:
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    value = str(raw[0] if isinstance(raw, list) else raw).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
