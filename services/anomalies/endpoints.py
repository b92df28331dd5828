from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.anomalies import service
from services.anomalies.schemas import AnomalyOut
from services.core.deps import ReadKey, SessionDep

router = APIRouter(prefix="/v1/anomalies", tags=["anomalies"])


@router.get("")
def list_anomalies(
    session: SessionDep,
    auth: ReadKey,
    since: datetime | None = None,
    metric: Literal[
        "spend", "calls", "request_cost_p50", "request_cost_p99", "request_tokens_p50",
        "request_tokens_p99",
    ] | None = None,
    dimension: Literal["project", "provider", "model", "feature", "customer"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AnomalyOut]:
    return service.list_anomalies(session, project_id=auth.project_id, since=since,
                                  metric=metric, dimension=dimension, limit=limit)


@router.get("/{anomaly_id}")
def get_anomaly(anomaly_id: int, session: SessionDep, auth: ReadKey) -> AnomalyOut:
    return service.get_anomaly(session, project_id=auth.project_id, anomaly_id=anomaly_id)
