"""Create, list, update and delete channels. URLs go in, only masked URLs come out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.channels import repository
from services.channels.masking import mask_url
from services.channels.schemas import ChannelCreate, ChannelOut, ChannelUpdate
from services.core.errors import BadRequest, NotFound
from services.models import Channel


class ChannelNotFound(NotFound):
    code = "channel_not_found"


class ChannelNameTaken(BadRequest):
    status = 409
    code = "channel_name_taken"


def to_out(channel: Channel, *, pending: int = 0) -> ChannelOut:
    return ChannelOut(
        id=channel.id, name=channel.name, kind=channel.kind, url_masked=mask_url(channel.url),
        receives_anomalies=channel.receives_anomalies, broken=channel.broken_at is not None,
        broken_at=channel.broken_at, broken_reason=channel.broken_reason,
        pending_deliveries=pending, created_at=channel.created_at,
    )


def create_channel(session: Session, *, project_id: int, params: ChannelCreate) -> ChannelOut:
    channel = Channel(project_id=project_id, name=params.name.strip(), kind=params.kind,
                      url=str(params.url), receives_anomalies=params.receives_anomalies)
    session.add(channel)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ChannelNameTaken(f"a channel named {params.name!r} exists already",
                               field="name") from None
    session.refresh(channel)
    return to_out(channel)


def get_channel(session: Session, *, project_id: int, channel_id: int) -> Channel:
    channel = repository.get_channel(session, project_id=project_id, channel_id=channel_id)
    if channel is None:
        raise ChannelNotFound(f"no channel with id {channel_id}", field="channel_id")
    return channel


def show_channel(session: Session, *, project_id: int, channel_id: int) -> ChannelOut:
    channel = get_channel(session, project_id=project_id, channel_id=channel_id)
    pending = repository.pending_counts(session, channel_ids=[channel.id])
    return to_out(channel, pending=pending.get(channel.id, 0))


def list_channels(session: Session, *, project_id: int) -> list[ChannelOut]:
    channels = repository.list_channels(session, project_id=project_id)
    pending = repository.pending_counts(session, channel_ids=[c.id for c in channels])
    return [to_out(c, pending=pending.get(c.id, 0)) for c in channels]


def update_channel(
    session: Session, *, project_id: int, channel_id: int, params: ChannelUpdate
) -> ChannelOut:
    channel = get_channel(session, project_id=project_id, channel_id=channel_id)
    if params.name is not None:
        channel.name = params.name.strip()
    if params.url is not None:
        channel.url = str(params.url)
    if params.receives_anomalies is not None:
        channel.receives_anomalies = params.receives_anomalies
    # Someone fixed it (or says so): deliveries held back resume, in order.
    channel.broken_at = None
    channel.broken_reason = None
    session.flush()
    return show_channel(session, project_id=project_id, channel_id=channel_id)


def delete_channel(session: Session, *, project_id: int, channel_id: int) -> None:
    session.delete(get_channel(session, project_id=project_id, channel_id=channel_id))
    session.flush()


def mark_broken(channel: Channel, *, at: datetime, reason: str) -> None:
    channel.broken_at = at
    channel.broken_reason = reason


def require_channels(session: Session, *, project_id: int, ids: Sequence[int]) -> list[int]:
    """The ids, deduplicated in order, after checking each is a channel of the project."""
    wanted = list(dict.fromkeys(ids))
    found = repository.existing_channel_ids(session, project_id=project_id, ids=wanted)
    missing = [i for i in wanted if i not in found]
    if missing:
        raise BadRequest(f"no channel with id {missing[0]} in this project", field="channel_ids")
    return wanted
