from __future__ import annotations

from fastapi import APIRouter, Response

from services.channels import service
from services.channels.schemas import ChannelCreate, ChannelOut, ChannelUpdate
from services.core.deps import AdminKey, ReadKey, SessionDep

router = APIRouter(prefix="/v1/channels", tags=["channels"])


@router.post("", status_code=201)
def create_channel(params: ChannelCreate, session: SessionDep, auth: AdminKey) -> ChannelOut:
    return service.create_channel(session, project_id=auth.project_id, params=params)


@router.get("")
def list_channels(session: SessionDep, auth: ReadKey) -> list[ChannelOut]:
    return service.list_channels(session, project_id=auth.project_id)


@router.get("/{channel_id}")
def get_channel(channel_id: int, session: SessionDep, auth: ReadKey) -> ChannelOut:
    return service.show_channel(session, project_id=auth.project_id, channel_id=channel_id)


@router.patch("/{channel_id}")
def update_channel(
    channel_id: int, params: ChannelUpdate, session: SessionDep, auth: AdminKey
) -> ChannelOut:
    return service.update_channel(session, project_id=auth.project_id, channel_id=channel_id,
                                  params=params)


@router.delete("/{channel_id}", status_code=204)
def delete_channel(channel_id: int, session: SessionDep, auth: AdminKey) -> Response:
    service.delete_channel(session, project_id=auth.project_id, channel_id=channel_id)
    return Response(status_code=204)
