"""Evaluate budget rules (alerts and their outbox rows in one transaction per project),
then deliver the outbox."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.alerts.budget_rules import evaluate_project_budgets
from services.alerts.clock import system_clock
from services.alerts.outbox import deliver_pending
from services.alerts.p99_rules import evaluate_p99_regressions
from services.anomalies.repository import project_ids
from services.core.db import make_session_factory
from workers.app import celery_app
from workers.db import task_session

logger = logging.getLogger(__name__)


@celery_app.task(name="alerts.evaluate", ignore_result=True)  # type: ignore[untyped-decorator]
def evaluate() -> None:
    with task_session() as session:
        projects = project_ids(session)
    queued = False
    for project_id in projects:
        with task_session() as session:
            report = evaluate_project_budgets(session, project_id=project_id, now=datetime.now(UTC))
        queued = queued or bool(report.fired or report.resolved or report.renotified)
        with task_session() as session:
            p99 = evaluate_p99_regressions(session, project_id=project_id, now=datetime.now(UTC))
        queued = queued or bool(p99.fired or p99.resolved)
    if queued:  # after the commits that created the rows
        deliver.delay()


def _worker_session_factory() -> sessionmaker[Session]:
    # Delivery commits several times per message, so it needs the factory, not one session;
    # it shares the worker's engine (and pool) through task_session's bind.
    with task_session() as session:
        bind = session.get_bind()
    assert isinstance(bind, Engine)
    return make_session_factory(bind)


@celery_app.task(name="alerts.deliver", ignore_result=True)  # type: ignore[untyped-decorator]
def deliver() -> None:
    report = deliver_pending(_worker_session_factory(), clock=system_clock)
    if report.broken_channels:
        logger.warning("channels marked broken: %s", report.broken_channels)
