from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base

DELIVERY_EVENTS = ("fire", "renotify", "resolve")


class Delivery(Base):
    """The outbox: one message of one alert to one channel, written in the alert's
    transaction and sent in ``id`` order per channel.

    ``attempting_at`` is committed just before the post and cleared with its outcome, so a
    row found with it set was interrupted mid-post (in doubt); ``resends`` counts those."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint("event in ('fire', 'renotify', 'resolve')", name="event"),
        UniqueConstraint("alert_id", "channel_id", "seq"),
        Index(
            "ix_deliveries_pending",
            "channel_id",
            "id",
            postgresql_where=text("delivered_at is null"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempting_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    resends: Mapped[int] = mapped_column(Integer, server_default="0")
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
