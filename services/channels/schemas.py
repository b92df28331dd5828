from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, Field


class ChannelCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["slack", "webhook"]
    url: AnyHttpUrl
    receives_anomalies: bool = True


class ChannelUpdate(BaseModel):
    """A new URL (or any update) clears a broken channel: the next run tries it again."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    url: AnyHttpUrl | None = None
    receives_anomalies: bool | None = None


class ChannelOut(BaseModel):
    id: int
    name: str
    kind: str
    url_masked: str
    receives_anomalies: bool
    broken: bool
    broken_at: datetime | None
    broken_reason: str | None
    pending_deliveries: int
    created_at: datetime
