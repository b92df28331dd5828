"""Forecast every budget's current period (hourly), then let alerts evaluate the result."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from services.budgets.repository import all_budget_ids
from services.budgets.service import refresh_forecast
from workers.app import celery_app
from workers.db import task_session

logger = logging.getLogger(__name__)


@celery_app.task(name="budgets.forecast", ignore_result=True)  # type: ignore[untyped-decorator]
def forecast() -> None:
    with task_session() as session:
        budgets = all_budget_ids(session)
    for project_id, budget_id in budgets:
        try:
            with task_session() as session:  # one budget's failure leaves the others
                refresh_forecast(
                    session, project_id=project_id, budget_id=budget_id, now=datetime.now(UTC)
                )
        except Exception:
            logger.exception("forecast of budget %d failed", budget_id)
    from workers.tasks.alerts import evaluate

    evaluate.delay()
