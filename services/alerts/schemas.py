from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class DeliveryOut(BaseModel):
    id: int
    channel_id: int
    event: str
    seq: int
    created_at: datetime
    delivered_at: datetime | None
    attempts: int
    resends: int
    next_attempt_at: datetime
    last_error: str | None


class AlertOut(BaseModel):
    id: int
    rule: str
    status: str
    title: str
    summary: dict[str, Any]
    budget_id: int | None
    anomaly_id: int | None
    threshold_pct: int | None
    period_start: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    created_at: datetime
    resolved_at: datetime | None
    notifications: int
    deliveries: list[DeliveryOut]
