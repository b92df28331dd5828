from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.models import Channel, Delivery


def get_channel(session: Session, *, project_id: int, channel_id: int) -> Channel | None:
    return session.scalar(
        select(Channel).where(Channel.project_id == project_id, Channel.id == channel_id)
    )


def list_channels(session: Session, *, project_id: int) -> Sequence[Channel]:
    return session.scalars(
        select(Channel).where(Channel.project_id == project_id).order_by(Channel.id)
    ).all()


def pending_counts(session: Session, *, channel_ids: Sequence[int]) -> dict[int, int]:
    if not channel_ids:
        return {}
    rows = session.execute(
        select(Delivery.channel_id, func.count())
        .where(Delivery.channel_id.in_(channel_ids), Delivery.delivered_at.is_(None))
        .group_by(Delivery.channel_id)
    )
    return {int(channel_id): int(count) for channel_id, count in rows}


def anomaly_channel_ids(session: Session, *, project_id: int) -> list[int]:
    return list(session.scalars(
        select(Channel.id)
        .where(Channel.project_id == project_id, Channel.receives_anomalies.is_(True))
        .order_by(Channel.id)
    ))


def existing_channel_ids(session: Session, *, project_id: int, ids: Sequence[int]) -> set[int]:
    if not ids:
        return set()
    return set(session.scalars(
        select(Channel.id).where(Channel.project_id == project_id, Channel.id.in_(ids))
    ))
