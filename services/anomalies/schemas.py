from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AnomalyOut(BaseModel):
    """An anomalous episode. Figures are per-hour means over it; ``impact`` is the summed
    excess (USD for spend, calls for calls); ``likely_cause`` names what explains most of
    the change."""

    id: int
    metric: str
    dimension: str
    value: str
    kind: str
    start_hour: datetime
    end_hour: datetime
    detected_at: datetime
    observed: float
    expected: float
    lower: float
    upper: float
    score: float
    impact: float
    likely_cause: list[str]
    explanation: dict[str, Any]
