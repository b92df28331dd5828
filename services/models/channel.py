from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base

CHANNEL_KINDS = ("slack", "webhook")


class Channel(Base):
    """Where alerts go: a Slack incoming webhook or a generic JSON webhook.

    ``url`` is a secret (a Slack webhook URL is a bearer credential): the API only ever shows
    it masked. ``broken_at`` is set when the receiver answered with a permanent error; no
    delivery is attempted until the channel is updated."""

    __tablename__ = "channels"
    __table_args__ = (
        CheckConstraint("kind in ('slack', 'webhook')", name="kind"),
        UniqueConstraint("project_id", "name"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    receives_anomalies: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    broken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    broken_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
