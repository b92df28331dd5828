from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.alerts import service
from services.alerts.schemas import AlertOut
from services.core.deps import ReadKey, SessionDep

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


@router.get("")
def list_alerts(
    session: SessionDep,
    auth: ReadKey,
    status: Literal["firing", "resolved"] | None = None,
    rule: Literal["budget_threshold", "budget_forecast", "anomaly", "p99_request_cost_regression"]
    | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertOut]:
    return service.list_alerts(
        session, project_id=auth.project_id, status=status, rule=rule, since=since, limit=limit
    )


@router.get("/{alert_id}")
def get_alert(alert_id: int, session: SessionDep, auth: ReadKey) -> AlertOut:
    return service.get_alert(session, project_id=auth.project_id, alert_id=alert_id)
