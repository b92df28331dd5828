"""Keep rollups current: fold new calls in, then settle quiet requests."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from services.core.settings import get_settings
from services.rollups.service import advance_calls, settle_requests
from workers.app import celery_app
from workers.db import task_session

logger = logging.getLogger(__name__)

MAX_SETTLE_BATCHES = 20  # bounded work per run; the next run continues
MAX_ADVANCE_STEPS = 20


@celery_app.task(name="rollups.advance", ignore_result=True)  # type: ignore[untyped-decorator]
def advance() -> None:
    for _ in range(MAX_ADVANCE_STEPS):
        with task_session() as session:
            report = advance_calls(session)
        if report.advanced:
            logger.debug("rolled up calls in xid range [%d, %d)", report.from_xid, report.to_xid)
        if report.caught_up:
            break
    window = timedelta(seconds=get_settings().settle_window_s)
    for _ in range(MAX_SETTLE_BATCHES):
        with task_session() as session:
            if not settle_requests(session, now=datetime.now(UTC), settle_window=window):
                break
