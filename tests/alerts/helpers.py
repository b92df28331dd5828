"""Arrange helpers shared by the alert, budget, channel and anomaly tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from services.alerts.service import AlertSpec, fire_once
from services.api.app import create_app
from services.keys.service import create_key
from services.models import Alert, Channel, Project


@dataclass
class FakeClock:
    now: datetime = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the worker catches it."""


def make_channel(session: Session, *, project: Project, url: str, name: str = "alerts",
                 kind: str = "slack") -> Channel:
    channel = Channel(project_id=project.id, name=name, kind=kind, url=url)
    session.add(channel)
    session.flush()
    return channel


def make_alert(session: Session, *, project: Project, channels: list[Channel], key: str,
               now: datetime, title: str | None = None) -> Alert:
    alert = fire_once(
        session, project_id=project.id,
        spec=AlertSpec(rule="budget_threshold", dedupe_key=key, title=title or f"alert {key}",
                       summary={"headline": f"headline {key}", "facts": [["Spent", "$1.00"]],
                                "query": "GET /v1/alerts"}),
        channel_ids=[c.id for c in channels], now=now,
    )
    assert alert is not None
    return alert


@dataclass
class Api:
    client: TestClient
    admin: dict[str, str]
    read: dict[str, str]
    project_id: int


def api_for(session: Session, database_url: str, clock: FakeClock, *,
            project: str = "acme") -> Api:
    """An API client with an admin and a read key of ``project`` (committed)."""
    admin = create_key(session, project_name=project, scope="admin")
    read = create_key(session, project_name=project, scope="read")
    session.commit()
    app = create_app(database_url=database_url, broker_url=None)
    app.state.clock = clock
    return Api(TestClient(app), {"Authorization": f"Bearer {admin.key}"},
               {"Authorization": f"Bearer {read.key}"}, admin.project_id)
