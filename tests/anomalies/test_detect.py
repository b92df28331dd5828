"""An injected spike produces one anomaly message that names its cause."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.alerts.outbox import deliver_pending
from services.anomalies.service import detect_project
from tests.alerts.fake_slack import FakeSlack
from tests.alerts.helpers import FakeClock, api_for

START = datetime(2026, 10, 20, tzinfo=UTC)
SPIKE = datetime(2026, 11, 12, 14, tzinfo=UTC)


def _rollup(session: Session, project_id: int, hours: int, spike_hours: int) -> None:
    rng = random.Random(7)
    rows = []
    for i in range(hours):
        hour = START + timedelta(hours=i)
        daytime = 1.0 + 0.5 * (8 <= hour.hour < 20)
        cells = [("gpt-4o", "support", "cust-a", 2.0 * daytime * rng.uniform(0.9, 1.1), 40),
                 ("rerank-v3", "search.rerank", "cust-b", 0.5 * daytime * rng.uniform(0.9, 1.1),
                  30)]
        if SPIKE <= hour < SPIKE + timedelta(hours=spike_hours):
            cells[1] = ("rerank-v3", "search.rerank", "cust-b", 1.5 * 3, 30)  # 3x per call
        for model, feature, customer, cost, calls in cells:
            for grain, cust in ((0, customer), (1, "")):
                rows.append({"p": project_id, "g": grain, "h": hour, "m": model, "f": feature,
                             "c": cust, "n": calls, "cost": round(cost, 4),
                             "inp": calls * 1000, "out": calls * 100})
    session.execute(text("""
        insert into call_rollups (project_id, grain, hour, provider, model, feature, customer,
            environment, calls, unpriced_calls, input_tokens, output_tokens, cache_read_tokens,
            cache_write_tokens, reasoning_tokens, cost_usd, latency_keys, latency_counts)
        values (:p, :g, :h, 'openai', :m, :f, :c, '', :n, 0, :inp, :out, 0, 0, 0, :cost,
                '{}', '{}')"""), rows)


def test_spike_raises_one_alert_naming_its_cause(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack, db: Session,
    database_url: str,
) -> None:
    clock = FakeClock(SPIKE + timedelta(hours=6, minutes=5))
    api = api_for(db, database_url, clock)
    api.client.post("/v1/channels", headers=api.admin, json={
        "name": "finops", "kind": "slack", "url": fake_slack.url()})
    hours = int((SPIKE - START) / timedelta(hours=1)) + 6
    with session_factory.begin() as session:
        _rollup(session, api.project_id, hours + 3, spike_hours=8)

    for _ in range(2):  # a second pass an hour later re-finds the episode, alerts nothing new
        with session_factory.begin() as session:
            detect_project(session, project_id=api.project_id, now=clock())
        deliver_pending(session_factory, clock=clock)
        clock.advance(hours=1)

    messages = fake_slack.accepted()
    assert len(messages) == 1, [m.text for m in messages]
    body = messages[0].all_text
    assert "rerank" in body and "GET /v1/anomalies/" in body
    anomalies = api.client.get("/v1/anomalies", headers=api.read,
                               params={"metric": "spend"}).json()
    project_level = [a for a in anomalies if a["dimension"] == "project"]
    assert project_level and project_level[0]["impact"] > 5
    assert any("rerank" in cause for cause in project_level[0]["likely_cause"])
    alerts = api.client.get("/v1/alerts", headers=api.read, params={"rule": "anomaly"}).json()
    assert len(alerts) == 1


def _flat_rollup(session: Session, project_id: int, hours: int, extra: dict[int, float]) -> None:
    """$100 an hour (1,000 calls at 10 cents) with 2 % noise; ``extra`` adds spend at given
    hours, as more calls."""
    rng = random.Random(3)
    rows = []
    for i in range(hours):
        calls = round(1000 * rng.uniform(0.98, 1.02) + 10 * extra.get(i, 0.0))
        for grain, customer in ((0, "cust-a"), (1, "")):
            rows.append({"p": project_id, "g": grain, "h": START + timedelta(hours=i),
                         "c": customer, "n": calls, "cost": calls / 10})
    session.execute(text("""
        insert into call_rollups (project_id, grain, hour, provider, model, feature, customer,
            environment, calls, unpriced_calls, input_tokens, output_tokens, cache_read_tokens,
            cache_write_tokens, reasoning_tokens, cost_usd, latency_keys, latency_counts)
        values (:p, :g, :h, 'openai', 'gpt-4o', 'chat', :c, '', :n, 0, 1000 * :n, 100 * :n,
                0, 0, 0, :cost, '{}', '{}')"""), rows)


def test_a_series_own_mean_hour_is_the_least_impact_worth_reporting(
    session_factory: sessionmaker[Session], db: Session, database_url: str,
) -> None:
    """$45 over an hour is far outside a flat $100-an-hour series' noise, but less than one
    hour of its spend: not news. $150 over two hours is."""
    api = api_for(db, database_url, FakeClock(START))
    hours = 4 * 168
    blip, burst = hours - 30, hours - 10
    with session_factory.begin() as session:
        _flat_rollup(session, api.project_id, hours,
                     {blip: 45.0, burst: 75.0, burst + 1: 75.0})
    with session_factory.begin() as session:
        report = detect_project(session, project_id=api.project_id,
                                now=START + timedelta(hours=hours))
    anomalies = api.client.get("/v1/anomalies", headers=api.read,
                               params={"metric": "spend"}).json()
    starts = {a["start_hour"] for a in anomalies if a["dimension"] == "project"}
    assert starts == {(START + timedelta(hours=burst)).isoformat().replace("+00:00", "Z")}
    assert report.alerts
    # With the series' mean hour out of the way (a $1 floor alone), the blip was reportable.
    from services.analytics.anomaly import detect_anomalies

    with session_factory() as session:
        rows = session.execute(text(
            "select cost_usd, calls from call_rollups where project_id = :p and grain = 1 "
            "order by hour"), {"p": api.project_id}).all()
    found = detect_anomalies(timestamps=[START + timedelta(hours=i) for i in range(hours)],
                             values=[float(r.cost_usd) for r in rows],
                             counts=[r.calls for r in rows], min_impact=1.0)
    assert START + timedelta(hours=blip) in {a.start for a in found}
