from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.models import Alert, Delivery


def insert_alert_once(session: Session, *, values: dict[str, object]) -> int | None:
    """Insert an alert unless its dedupe key exists; the new id, or None if it existed.
    Concurrent evaluators wait on the unique key, then see the other's row."""
    stmt = (
        insert(Alert)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["project_id", "dedupe_key"])
        .returning(Alert.id)
    )
    new_id = session.execute(stmt).scalar()
    return None if new_id is None else int(new_id)


def get_by_key(
    session: Session, *, project_id: int, dedupe_key: str, lock: bool = False
) -> Alert | None:
    query = select(Alert).where(Alert.project_id == project_id, Alert.dedupe_key == dedupe_key)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def list_alerts(
    session: Session,
    *,
    project_id: int,
    status: str | None,
    rule: str | None,
    since: datetime | None,
    limit: int,
) -> Sequence[Alert]:
    query = select(Alert).where(Alert.project_id == project_id)
    if status:
        query = query.where(Alert.status == status)
    if rule:
        query = query.where(Alert.rule == rule)
    if since:
        query = query.where(Alert.created_at >= since)
    return session.scalars(query.order_by(Alert.id.desc()).limit(limit)).all()


def deliveries_of(session: Session, *, alert_ids: Sequence[int]) -> Sequence[Delivery]:
    if not alert_ids:
        return []
    return session.scalars(
        select(Delivery).where(Delivery.alert_id.in_(alert_ids)).order_by(Delivery.id)
    ).all()


def overlapping_anomaly_alert(
    session: Session, *, project_id: int, start: datetime, end: datetime
) -> Alert | None:
    return session.scalar(
        select(Alert)
        .where(
            Alert.project_id == project_id,
            Alert.rule == "anomaly",
            Alert.window_start <= end,
            Alert.window_end >= start,
        )
        .limit(1)
    )
