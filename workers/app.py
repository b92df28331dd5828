"""The Celery app. Tasks live in ``workers.tasks``; each is thin and calls a domain service."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery

from services.core.settings import get_settings

TASK_MODULES = [
    "workers.tasks.partitions",
    "workers.tasks.rollups",
    "workers.tasks.budgets",
    "workers.tasks.alerts",
    "workers.tasks.anomalies",
]

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "partitions.maintain": {"task": "partitions.maintain", "schedule": timedelta(minutes=30)},
    "partitions.retention": {"task": "partitions.retention", "schedule": timedelta(hours=6)},
    "rollups.advance": {"task": "rollups.advance", "schedule": timedelta(seconds=15)},
    "budgets.forecast": {"task": "budgets.forecast", "schedule": timedelta(hours=1)},
    "alerts.evaluate": {"task": "alerts.evaluate", "schedule": timedelta(minutes=1)},
    "alerts.deliver": {"task": "alerts.deliver", "schedule": timedelta(seconds=15)},
    "anomalies.detect": {"task": "anomalies.detect", "schedule": timedelta(minutes=5)},
}

celery_app = Celery("costline")


def configure_celery(*, broker_url: str | None) -> Celery:
    """Point the app at a broker (re-callable: tests use their own broker)."""
    celery_app.conf.update(
        broker_url=broker_url,
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,  # a task killed mid-way is redelivered; tasks are idempotent
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule=BEAT_SCHEDULE,
        timezone="UTC",
        imports=TASK_MODULES,
    )
    return celery_app


configure_celery(broker_url=get_settings().broker_url)
