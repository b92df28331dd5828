from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AnomalyOut(BaseModel):
    """An anomalous episode. Figures are per-hour means over it; ``impact`` is the summed
    excess (USD for spend, calls for calls; for ``request_cost_p50``/``p99`` and
    ``request_tokens_p50``/``p99``, the hourly percentile of per-request USD or tokens,
    summed over the episode's hours); ``likely_cause`` names what explains most of the
    change."""

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
