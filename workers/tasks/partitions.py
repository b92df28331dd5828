"""Keep daily partitions of llm_calls ahead of time and the default partition empty."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from services.core.settings import get_settings
from services.partitions.service import maintain_partitions
from workers.app import celery_app
from workers.db import task_session

logger = logging.getLogger(__name__)


@celery_app.task(name="partitions.maintain", ignore_result=True)  # type: ignore[untyped-decorator]
def maintain() -> None:
    with task_session() as session:
        report = maintain_partitions(
            session,
            today=datetime.now(UTC).date(),
            ahead_days=get_settings().partitions_ahead_days,
        )
    if report.created:
        logger.info("created partitions %s, moved %d stray rows", report.created, report.moved_rows)


@celery_app.task(name="partitions.retention", ignore_result=True)  # type: ignore[untyped-decorator]
def retention() -> None:
    """Drop raw calls older than COSTLINE_RAW_RETENTION_DAYS, whole partitions at a time.

    Rollups and requests stay. The calls are rolled up first, so nothing not yet counted is
    dropped."""
    from services.partitions.service import drop_partitions_before
    from services.rollups.service import advance_calls

    days = get_settings().raw_retention_days
    with task_session() as session:
        advance_calls(session)
    with task_session() as session:
        dropped = drop_partitions_before(
            session, cutoff=datetime.now(UTC).date() - timedelta(days=days)
        )
    if dropped:
        logger.info("retention dropped %s", dropped)
