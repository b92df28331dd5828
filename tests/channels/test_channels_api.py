"""Channels over REST: admin creates, read lists; URLs never come back in full; a broken
channel is visible and an update revives it."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from services.alerts.outbox import deliver_pending
from services.cli.alerts import alerts_app
from services.models import Project
from tests.alerts.fake_slack import FakeSlack
from tests.alerts.helpers import FakeClock, api_for, make_alert

SECRET = "XyZsecretWebhookToken123"


def test_urls_are_masked_everywhere_and_reads_cannot_create(
    db: Session, database_url: str, fake_slack: FakeSlack
) -> None:
    api = api_for(db, database_url, FakeClock())
    url = fake_slack.url(f"/services/T9/B9/{SECRET}")
    denied = api.client.post("/v1/channels", headers=api.read,
                             json={"name": "x", "kind": "slack", "url": url})
    created = api.client.post("/v1/channels", headers=api.admin,
                              json={"name": "finops", "kind": "slack", "url": url})
    listed = api.client.get("/v1/channels", headers=api.read)

    assert denied.status_code == 403
    assert created.status_code == 201
    for response in (created, listed):
        assert SECRET not in response.text and SECRET[:8] not in response.text
    assert created.json()["url_masked"] == "http://127.0.0.1/…n123"
    duplicate = api.client.post("/v1/channels", headers=api.admin,
                                json={"name": "finops", "kind": "slack", "url": url})
    assert duplicate.status_code == 409


def test_broken_channel_is_visible_and_an_update_resumes_delivery(
    db: Session, database_url: str, fake_slack: FakeSlack,
    session_factory: sessionmaker[Session],
) -> None:
    clock = FakeClock()
    api = api_for(db, database_url, clock)
    path = f"/services/T9/B9/{SECRET}"
    channel = api.client.post("/v1/channels", headers=api.admin, json={
        "name": "finops", "kind": "slack", "url": fake_slack.url(path)}).json()
    with session_factory.begin() as session:
        project = session.get(Project, api.project_id)
        assert project is not None
        from services.models import Channel

        row = session.get(Channel, channel["id"])
        assert row is not None
        make_alert(session, project=project, channels=[row], key="a", now=clock())
    fake_slack.answer(path, 404, "channel_not_found")

    deliver_pending(session_factory, clock=clock)
    shown = api.client.get(f"/v1/channels/{channel['id']}", headers=api.read).json()
    assert shown["broken"] is True and shown["broken_reason"] == "channel_not_found"
    assert shown["pending_deliveries"] == 1

    fixed = api.client.patch(f"/v1/channels/{channel['id']}", headers=api.admin,
                             json={"url": fake_slack.url(path)})
    assert fixed.json()["broken"] is False
    deliver_pending(session_factory, clock=clock)
    assert len(fake_slack.accepted(path)) == 1
    assert api.client.get(f"/v1/channels/{channel['id']}",
                          headers=api.read).json()["pending_deliveries"] == 0


def test_cli_sends_a_test_message(
    db: Session, database_url: str, fake_slack: FakeSlack, monkeypatch: object
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    api = api_for(db, database_url, FakeClock())
    channel = api.client.post("/v1/channels", headers=api.admin, json={
        "name": "finops", "kind": "slack", "url": fake_slack.url()}).json()
    monkeypatch.setenv("COSTLINE_DATABASE_URL", database_url)
    from services.core.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(alerts_app, ["test", "--channel", str(channel["id"])])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "sent a test message" in result.output
    assert "costline test message" in fake_slack.accepted()[0].text
