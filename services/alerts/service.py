"""Fire an alert once, queue its messages in the same transaction, resolve it with a
recovery message, re-notify while it stays firing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from services.alerts import repository
from services.alerts.outbox import enqueue
from services.alerts.schemas import AlertOut, DeliveryOut
from services.core.errors import NotFound
from services.models import Alert, Delivery


class AlertNotFound(NotFound):
    code = "alert_not_found"


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """What a rule found. ``dedupe_key`` names (rule, scope, period, threshold)."""

    rule: str
    dedupe_key: str
    title: str
    summary: dict[str, Any]
    budget_id: int | None = None
    anomaly_id: int | None = None
    period_start: datetime | None = None
    threshold_pct: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def fire_once(
    session: Session,
    *,
    project_id: int,
    spec: AlertSpec,
    channel_ids: Sequence[int],
    now: datetime,
    notify: bool = True,
) -> Alert | None:
    """Create the alert and queue its messages, unless its key fired before: then None."""
    new_id = repository.insert_alert_once(
        session,
        values={
            "project_id": project_id,
            "rule": spec.rule,
            "dedupe_key": spec.dedupe_key,
            "title": spec.title,
            "summary": spec.summary,
            "budget_id": spec.budget_id,
            "anomaly_id": spec.anomaly_id,
            "period_start": spec.period_start,
            "threshold_pct": spec.threshold_pct,
            "window_start": spec.window_start,
            "window_end": spec.window_end,
            "status": "firing",
            "created_at": now,
        },
    )
    if new_id is None:
        return None
    alert = session.get(Alert, new_id)
    assert alert is not None
    if notify and channel_ids:
        enqueue(session, alert=alert, channel_ids=channel_ids, event="fire", now=now)
    return alert


def resolve(
    session: Session,
    *,
    alert: Alert,
    now: datetime,
    resolution: str,
    channel_ids: Sequence[int],
) -> bool:
    """Mark a firing alert resolved and queue the recovery message; False if it was not
    firing (another evaluator got there first)."""
    session.refresh(alert, with_for_update=True)
    if alert.status != "firing":
        return False
    alert.status = "resolved"
    alert.resolved_at = now
    alert.summary = {**alert.summary, "resolution": resolution}
    if channel_ids and alert.notifications > 0:
        enqueue(session, alert=alert, channel_ids=channel_ids, event="resolve", now=now)
    session.flush()
    return True


def renotify_if_due(
    session: Session,
    *,
    alert: Alert,
    every: timedelta,
    now: datetime,
    channel_ids: Sequence[int],
) -> bool:
    session.refresh(alert, with_for_update=True)
    last = alert.last_notified_at or alert.created_at
    if alert.status != "firing" or not channel_ids or now - last < every:
        return False
    enqueue(session, alert=alert, channel_ids=channel_ids, event="renotify", now=now)
    return True


def _out(alert: Alert, deliveries: Sequence[Delivery]) -> AlertOut:
    return AlertOut(
        id=alert.id,
        rule=alert.rule,
        status=alert.status,
        title=alert.title,
        summary=alert.summary,
        budget_id=alert.budget_id,
        anomaly_id=alert.anomaly_id,
        threshold_pct=alert.threshold_pct,
        period_start=alert.period_start,
        window_start=alert.window_start,
        window_end=alert.window_end,
        created_at=alert.created_at,
        resolved_at=alert.resolved_at,
        notifications=alert.notifications,
        deliveries=[
            DeliveryOut(
                id=d.id,
                channel_id=d.channel_id,
                event=d.event,
                seq=d.seq,
                created_at=d.created_at,
                delivered_at=d.delivered_at,
                attempts=d.attempts,
                resends=d.resends,
                next_attempt_at=d.next_attempt_at,
                last_error=d.last_error,
            )
            for d in deliveries
        ],
    )


def list_alerts(
    session: Session,
    *,
    project_id: int,
    status: str | None = None,
    rule: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AlertOut]:
    alerts = repository.list_alerts(
        session, project_id=project_id, status=status, rule=rule, since=since, limit=limit
    )
    by_alert: dict[int, list[Delivery]] = defaultdict(list)
    for d in repository.deliveries_of(session, alert_ids=[a.id for a in alerts]):
        by_alert[d.alert_id].append(d)
    return [_out(a, by_alert[a.id]) for a in alerts]


def get_alert(session: Session, *, project_id: int, alert_id: int) -> AlertOut:
    alert = session.get(Alert, alert_id)
    if alert is None or alert.project_id != project_id:
        raise AlertNotFound(f"no alert with id {alert_id}", field="alert_id")
    return _out(alert, repository.deliveries_of(session, alert_ids=[alert.id]))
