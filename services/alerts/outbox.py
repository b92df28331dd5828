"""The outbox: deliveries written with their alert, sent in order per channel.

Exactly once, as the person sees it:

* A delivery row is created in the same transaction as its alert (or its recovery), so an
  alert that exists will be sent and one rolled back never is.
* One worker at a time drains a channel: it holds a session-level advisory lock on
  (``DELIVERY_LOCK_CLASS``, channel id) on its own connection, so a second worker skips the
  channel and a killed worker's lock dies with its connection. Only the oldest undelivered
  row of a channel is ever sent, so a channel sees its alerts in order of creation; a row
  waiting for a retry holds back the rows behind it.
* Before posting, ``attempting_at`` is committed on its own; the outcome is committed right
  after the post. A row found with ``attempting_at`` set was interrupted between those two
  commits, and nobody can tell whether the receiver got it (Slack incoming webhooks have no
  idempotency and no read-back).

  Decision: an in-doubt row is SENT AGAIN, marked as a re-send of the same ``ref``. A lost
  budget alert is silent and costs money; a duplicate is visible, and says it is one. The
  window is the length of one HTTP post. Generic webhooks receive the same
  ``Idempotency-Key`` header on every attempt, so a receiver that honours it sees exactly
  one. ``resends`` counts these in the API.
* 429 waits for ``Retry-After``; 5xx and network errors back off exponentially; permanent
  errors (revoked or deleted webhook) mark the channel broken and keep its rows until the
  channel is updated.

Time comes from an injected clock; nothing here sleeps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from services.alerts.clock import Clock
from services.alerts.render import render
from services.channels import senders
from services.channels.senders import Sender, SendResult
from services.channels.service import mark_broken
from services.core.db import transaction
from services.models import Alert, Channel, Delivery

logger = logging.getLogger(__name__)

DELIVERY_LOCK_CLASS = 0x434C  # first key of the per-channel advisory lock ("CL")
BASE_BACKOFF_S = 15
MAX_BACKOFF_S = 900


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    resent_in_doubt: int = 0
    broken_channels: list[int] = field(default_factory=list)
    busy_channels: list[int] = field(default_factory=list)


def enqueue(
    session: Session, *, alert: Alert, channel_ids: Sequence[int], event: str, now: datetime
) -> list[Delivery]:
    """Queue one message of ``alert`` per channel, in this transaction."""
    alert.notifications += 1
    alert.last_notified_at = now
    rows = [
        Delivery(
            alert_id=alert.id,
            channel_id=cid,
            seq=alert.notifications,
            event=event,
            created_at=now,
            next_attempt_at=now,
        )
        for cid in dict.fromkeys(channel_ids)
    ]
    session.add_all(rows)
    session.flush()
    return rows


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BASE_BACKOFF_S * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S))


def deliver_pending(
    factory: sessionmaker[Session],
    *,
    clock: Clock,
    send: Sender = senders.send,
    channel_ids: Sequence[int] | None = None,
    max_per_channel: int = 100,
) -> DeliveryReport:
    """Send what is due on every channel (or the given ones). Safe to run anywhere, any
    number of times, in parallel: each channel is drained by one caller at a time."""
    report = DeliveryReport()
    with transaction(factory) as session:
        query = (
            select(Delivery.channel_id)
            .join(Channel, Channel.id == Delivery.channel_id)
            .where(Delivery.delivered_at.is_(None), Channel.broken_at.is_(None))
            .distinct()
            .order_by(Delivery.channel_id)
        )
        if channel_ids is not None:
            query = query.where(Delivery.channel_id.in_(channel_ids))
        due = list(session.scalars(query))
    for channel_id in due:
        _drain_channel(
            factory,
            channel_id=channel_id,
            clock=clock,
            send=send,
            limit=max_per_channel,
            report=report,
        )
    return report


def _drain_channel(
    factory: sessionmaker[Session],
    *,
    channel_id: int,
    clock: Clock,
    send: Sender,
    limit: int,
    report: DeliveryReport,
) -> None:
    engine = factory.kw["bind"]
    with engine.connect() as lock_conn:
        keys = {"k": DELIVERY_LOCK_CLASS, "c": channel_id}
        owned = lock_conn.execute(text("select pg_try_advisory_lock(:k, :c)"), keys).scalar()
        lock_conn.commit()
        if not owned:
            report.busy_channels.append(channel_id)
            return
        try:
            for _ in range(limit):
                if (
                    _deliver_head(
                        factory, channel_id=channel_id, clock=clock, send=send, report=report
                    )
                    != "sent"
                ):
                    break
        finally:
            try:
                lock_conn.execute(text("select pg_advisory_unlock(:k, :c)"), keys)
                lock_conn.commit()
            except Exception:  # never return a pooled connection holding it
                lock_conn.invalidate()


def _deliver_head(
    factory: sessionmaker[Session],
    *,
    channel_id: int,
    clock: Clock,
    send: Sender,
    report: DeliveryReport,
) -> Literal["sent", "empty", "waiting", "blocked", "failed"]:
    now = clock()
    with transaction(factory) as session:
        head = session.execute(
            select(Delivery, Channel, Alert)
            .join(Channel, Channel.id == Delivery.channel_id)
            .join(Alert, Alert.id == Delivery.alert_id)
            .where(Delivery.channel_id == channel_id, Delivery.delivered_at.is_(None))
            .order_by(Delivery.id)
            .limit(1)
        ).first()
        if head is None:
            return "empty"
        delivery, channel, alert = head
        if channel.broken_at is not None:
            return "blocked"
        if delivery.next_attempt_at > now:
            return "waiting"
        if delivery.attempting_at is not None:
            # Interrupted between the claim and the outcome: in doubt, so send again.
            delivery.resends += 1
            report.resent_in_doubt += 1
            logger.warning(
                "delivery %d to channel %d was interrupted mid-post; re-sending",
                delivery.id,
                channel_id,
            )
        delivery.attempting_at = now
        delivery.attempts += 1
        message = render(alert, delivery, resent=delivery.resends > 0)
        kind, url, delivery_id = channel.kind, channel.url, delivery.id

    try:
        result = send(kind, url, message)
    except Exception as exc:  # a sender bug must not lose the row
        result = SendResult("retry", error=f"{type(exc).__name__}: {exc}"[:300])

    now = clock()
    with transaction(factory) as session:
        row = session.get(Delivery, delivery_id, with_for_update=True)
        if row is None:  # its channel or alert was deleted meanwhile
            return "failed"
        delivery = row
        delivery.attempting_at = None
        if result.outcome == "delivered":
            delivery.delivered_at = now
            delivery.last_error = None
            report.delivered += 1
            return "sent"
        delivery.last_error = result.error
        if result.outcome == "retry":
            wait = (
                timedelta(seconds=max(result.retry_after_s, 1.0))
                if result.retry_after_s is not None
                else backoff(delivery.attempts)
            )
            delivery.next_attempt_at = now + wait
            report.retried += 1
            return "failed"
        channel_row = session.get(Channel, channel_id, with_for_update=True)
        if channel_row is not None:
            mark_broken(channel_row, at=now, reason=result.error)
        delivery.next_attempt_at = now
        report.broken_channels.append(channel_id)
        logger.warning("channel %d is broken: %s", channel_id, result.error)
        return "failed"
