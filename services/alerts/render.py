"""Messages a person understands in five seconds: what happened, how much, against what,
the forecast, the top contributors, the window, and the API query that shows more.

Rendered from ``alerts.summary`` (frozen when the alert fired), so every attempt of a
delivery sends the same words."""

from __future__ import annotations

from typing import Any

from services.channels.senders import OutgoingMessage
from services.models import Alert, Delivery

_ICON = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
_MAX_FIELDS = 10  # Block Kit's limit for a section's fields


def delivery_ref(delivery_id: int) -> str:
    """The stable idempotency key of a delivery: the same on every attempt."""
    return f"costline-delivery-{delivery_id}"


def render(alert: Alert, delivery: Delivery, *, resent: bool) -> OutgoingMessage:
    summary: dict[str, Any] = alert.summary
    ref = delivery_ref(delivery.id)
    if delivery.event == "resolve":
        title = f"Resolved: {alert.title}"
        icon = ":white_check_mark:"
        headline = str(summary.get("resolution") or "The condition has cleared.")
    elif delivery.event == "renotify":
        title = f"Still firing: {alert.title}"
        icon = ":repeat:"
        headline = str(summary.get("headline", ""))
    else:
        title = alert.title
        icon = _ICON.get(str(summary.get("severity", "warning")), ":warning:")
        headline = str(summary.get("headline", ""))

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {headline}"[:3000]}},
    ]
    facts = [(str(k), str(v)) for k, v in summary.get("facts", [])][:_MAX_FIELDS]
    if facts and delivery.event != "resolve":
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{value}"[:2000]}
                    for label, value in facts
                ],
            }
        )
    contributors = [str(c) for c in summary.get("contributors", [])][:5]
    if contributors and delivery.event != "resolve":
        lines = "\n".join(f"• {c}" for c in contributors)
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Top contributors*\n{lines}"[:3000]},
            }
        )
    context = []
    if summary.get("window"):
        context.append(f"Window: {summary['window']}")
    if summary.get("query"):
        context.append(f"More: `{summary['query']}`")
    context.append(f"ref {ref}")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)[:3000]}]}
    )
    if resent:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": (
                            f"Re-sent after an interrupted attempt: if you already saw ref {ref}, "
                            "this is the same alert."
                        ),
                    }
                ],
            }
        )

    text = f"{title}: {headline}"
    payload = {
        "idempotency_key": ref,
        "event": delivery.event,
        "alert": {
            "id": alert.id,
            "rule": alert.rule,
            "status": alert.status,
            "title": alert.title,
            "created_at": alert.created_at.isoformat(),
            "budget_id": alert.budget_id,
            "anomaly_id": alert.anomaly_id,
            "threshold_pct": alert.threshold_pct,
            "summary": summary,
        },
        "text": text,
        "resent": resent,
    }
    return OutgoingMessage(text=text[:3000], blocks=blocks, payload=payload, idempotency_key=ref)
