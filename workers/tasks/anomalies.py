"""Detect anomalies on the hourly rollups of every project, then deliver their alerts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.anomalies.repository import project_ids
from services.anomalies.service import detect_project
from services.core.settings import get_settings
from workers.app import celery_app
from workers.db import task_session

logger = logging.getLogger(__name__)


@celery_app.task(name="anomalies.detect", ignore_result=True)  # type: ignore[untyped-decorator]
def detect() -> None:
    with task_session() as session:
        projects = project_ids(session)
    alerted = False
    floors = {"spend": get_settings().anomaly_min_impact_usd}
    for project_id in projects:
        try:
            with task_session() as session:
                report = detect_project(
                    session, project_id=project_id, now=datetime.now(UTC), min_impact=floors
                )
        except Exception:
            logger.exception("anomaly detection of project %d failed", project_id)
            continue
        alerted = alerted or bool(report.alerts)
    if alerted:
        from workers.tasks.alerts import deliver

        deliver.delay()
