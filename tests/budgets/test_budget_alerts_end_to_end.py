"""A budget created through the API, a month of generated traffic, and the fake Slack:
the forecast warning and the 50/80/100 % messages arrive exactly once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from services.alerts.budget_rules import evaluate_project_budgets
from services.alerts.outbox import deliver_pending
from services.rollups.service import advance_calls
from tests.alerts.fake_slack import FakeSlack
from tests.alerts.helpers import FakeClock, api_for
from tests.factories import make_call

HOURS = (3, 9, 15, 21)  # four calls a day at $2.50: $10 a day


def _one_day(session_factory: sessionmaker[Session], project_id: int, day: datetime) -> None:
    from services.models import Project

    with session_factory.begin() as session:
        project = session.get(Project, project_id)
        assert project is not None
        for hour in HOURS:
            make_call(session, project=project, started_at=day + timedelta(hours=hour),
                      cost="2.50", model="rerank-v3" if hour == 9 else "gpt-4o")
    with session_factory.begin() as session:
        advance_calls(session)


def test_budget_warns_by_forecast_then_at_each_threshold_once(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack, db: Session,
    database_url: str,
) -> None:
    clock = FakeClock(datetime(2026, 10, 10, tzinfo=UTC))
    api = api_for(db, database_url, clock)
    channel = api.client.post("/v1/channels", headers=api.admin, json={
        "name": "finops", "kind": "slack", "url": fake_slack.url()}).json()
    budget = api.client.post("/v1/budgets", headers=api.admin, json={
        "name": "LLM spend", "amount_usd": "250", "period": "month",
        "channel_ids": [channel["id"]]}).json()
    assert budget["thresholds_pct"] == [50, 80, 100]

    day = datetime(2026, 10, 10, tzinfo=UTC)
    while day < datetime(2026, 11, 30, tzinfo=UTC):
        _one_day(session_factory, api.project_id, day)
        clock.now = day + timedelta(hours=23, minutes=30)
        if day.month == 11:
            forecast = api.client.get(f"/v1/budgets/{budget['id']}/forecast", headers=api.read)
            assert forecast.status_code == 200, forecast.text
            with session_factory.begin() as session:
                evaluate_project_budgets(session, project_id=api.project_id, now=clock())
            deliver_pending(session_factory, clock=clock)
        day += timedelta(days=1)
    with session_factory.begin() as session:  # evaluating again changes nothing
        evaluate_project_budgets(session, project_id=api.project_id, now=clock())
    deliver_pending(session_factory, clock=clock)

    titles = [p.body["blocks"][0]["text"]["text"] for p in fake_slack.accepted()]
    assert titles[0].startswith("LLM spend: forecast") and "over budget" in titles[0]
    assert titles[1:] == ["LLM spend: 50 % of budget used", "LLM spend: 80 % of budget used",
                          "LLM spend: 100 % of budget used"]
    assert len(fake_slack.posts) == 4
    forecast_text = fake_slack.accepted()[0].all_text
    assert "$250.00" in forecast_text and "GET /v1/budgets/" in forecast_text
    assert "model gpt-4o" in forecast_text  # top contributors
    # The 21:00 call of 25 November took the month to $250: the budget ran out in that hour.
    over_text = fake_slack.accepted()[3].all_text
    assert "Ran out" in over_text and "Wed 25 Nov 22:00" in over_text

    status = api.client.get(f"/v1/budgets/{budget['id']}", headers=api.read).json()
    assert status["spent_usd"] == "290.0000000000"
    assert status["percent_used"] == 116.0 and Decimal(status["remaining_usd"]) == 0
    assert status["forecast"]["method"] == "ets_weekly"
    assert status["forecast"]["probability_over_budget"] == 1.0
    assert status["forecast"]["exhaustion_at"] == "2026-11-25T22:00:00Z"
    alerts = api.client.get("/v1/alerts", headers=api.read).json()
    assert sorted(a["rule"] for a in alerts) == ["budget_forecast", *["budget_threshold"] * 3]
    assert all(d["delivered_at"] for a in alerts for d in a["deliveries"])
