"""Per-request percentiles (p50/p99 of request cost and tokens) are watched for creep and
level shifts per project, feature and customer; spend is watched given its call counts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.analytics.sketch import LogHistogram
from services.anomalies.service import detect_project
from services.models import DetectedAnomaly
from services.rollups.sql import ZERO_KEY
from tests.alerts.fake_slack import FakeSlack
from tests.alerts.helpers import FakeClock, api_for
from tests.factories import make_project

HOUR = timedelta(hours=1)
SHIFT = datetime(2026, 11, 12, 14, tzinfo=UTC)  # a deploy makes the longest requests dearer
START = SHIFT - timedelta(weeks=5)


def _stored(histogram: LogHistogram) -> tuple[list[int], list[int]]:
    keys, counts, zero = histogram.to_sparse()
    return ([ZERO_KEY, *keys], [zero, *counts]) if zero else (keys, counts)


def _request_rollups(session: Session, *, project_id: int, until: datetime) -> None:
    """Hourly request cells of two features. From SHIFT on, the dearest tenth of
    search.rerank's requests cost (and use) five times as much: its p99 jumps, its median
    does not move."""
    rng = np.random.default_rng(3)
    rows = []
    hour = START
    while hour < until:
        daytime = 1.5 if 8 <= hour.hour < 20 else 1.0
        for feature, customer, rate, median_cost in (
            ("support.answer", "cust-a", 60, 0.02),
            ("search.rerank", "cust-b", 80, 0.004),
        ):
            n = int(rng.poisson(rate * daytime))
            cost = median_cost * rng.lognormal(0.0, 0.5, n)
            if feature == "search.rerank" and hour >= SHIFT and n:
                cost[cost > np.quantile(cost, 0.9)] *= 5
            tokens = np.rint(cost * 250_000)
            cost_keys, cost_counts = _stored(LogHistogram.from_values(cost))
            token_keys, token_counts = _stored(LogHistogram.from_values(tokens))
            for grain, cust in ((0, customer), (1, "")):
                rows.append({
                    "p": project_id, "g": grain, "h": hour, "f": feature, "c": cust, "n": n,
                    "cost": round(float(cost.sum()), 8), "inp": int(tokens.sum() * 0.8),
                    "out": int(tokens.sum() * 0.2), "ck": cost_keys, "cc": cost_counts,
                    "tk": token_keys, "tc": token_counts,
                })
        hour += HOUR
    session.execute(text("""
        insert into request_rollups (project_id, grain, hour, feature, customer, environment,
            requests, calls, unpriced_calls, input_tokens, output_tokens, cache_read_tokens,
            cache_write_tokens, reasoning_tokens, cost_usd, request_cost_keys,
            request_cost_counts, request_tokens_keys, request_tokens_counts)
        values (:p, :g, :h, :f, :c, '', :n, :n, 0, :inp, :out, 0, 0, 0, :cost, :ck, :cc,
                :tk, :tc)"""), rows)


def test_dearer_tail_of_requests_is_a_p99_level_shift_of_that_feature(
    session_factory: sessionmaker[Session],
) -> None:
    now = SHIFT + timedelta(hours=30, minutes=5)
    with session_factory.begin() as session:
        project_id = make_project(session).id
        _request_rollups(session, project_id=project_id, until=now)
    with session_factory.begin() as session:
        detect_project(session, project_id=project_id, now=now)
        found = session.query(DetectedAnomaly).filter_by(project_id=project_id).all()
        by_series = {(a.metric, a.dimension, a.value): a for a in found}

        p99 = by_series[("request_cost_p99", "feature", "search.rerank")]
        assert p99.kind == "level_shift"
        assert abs((p99.start_hour - SHIFT) / HOUR) <= 3
        assert p99.detected_at - SHIFT <= timedelta(hours=12)
        assert p99.observed > 2 * p99.expected > 0
        # The same requests are the feature's customer's, and their tokens moved with cost.
        assert ("request_cost_p99", "customer", "cust-b") in by_series
        assert ("request_tokens_p99", "feature", "search.rerank") in by_series
        # The median request did not change, nor did the other feature.
        assert not [a for a in found if a.metric.endswith("_p50")]
        assert not [a for a in found if a.value in ("support.answer", "cust-a")]

        detect_project(session, project_id=project_id, now=now + HOUR)  # an hour later
        again = session.query(DetectedAnomaly).filter_by(project_id=project_id).all()
        assert {a.id for a in again} == {a.id for a in found}  # the same episodes, extended


def test_request_percentile_anomalies_are_listed_by_metric(
    session_factory: sessionmaker[Session], db: Session, database_url: str,
) -> None:
    now = SHIFT + timedelta(hours=30, minutes=5)
    api = api_for(db, database_url, FakeClock(now))
    with session_factory.begin() as session:
        _request_rollups(session, project_id=api.project_id, until=now)
    with session_factory.begin() as session:
        report = detect_project(session, project_id=api.project_id, now=now)
    assert report.anomalies and not report.alerts  # recorded; the p99 rule owns alerting
    listed = api.client.get("/v1/anomalies", headers=api.read,
                            params={"metric": "request_cost_p99", "dimension": "feature"})
    assert listed.status_code == 200
    (one,) = listed.json()
    assert (one["value"], one["kind"]) == ("search.rerank", "level_shift")
    assert one["observed"] > one["expected"]


def _call_rollups(session: Session, *, project_id: int, until: datetime) -> None:
    """Two features, forty and thirty calls an hour. From SHIFT on every reranker call
    costs three times as much, at the same call count."""
    rng = random.Random(11)
    rows = []
    hour = START
    while hour < until:
        daytime = 1.0 + 0.5 * (8 <= hour.hour < 20)
        dearer = 3.0 if hour >= SHIFT else 1.0
        for model, feature, customer, cost, calls in (
            ("gpt-4o", "support.answer", "cust-a", 2.0, 40),
            ("rerank-v3", "search.rerank", "cust-b", 0.5 * dearer, 30),
        ):
            cost *= daytime * rng.uniform(0.9, 1.1)
            for grain, cust in ((0, customer), (1, "")):
                rows.append({"p": project_id, "g": grain, "h": hour, "m": model, "f": feature,
                             "c": cust, "n": calls, "cost": round(cost, 4)})
        hour += HOUR
    session.execute(text("""
        insert into call_rollups (project_id, grain, hour, provider, model, feature, customer,
            environment, calls, unpriced_calls, input_tokens, output_tokens, cache_read_tokens,
            cache_write_tokens, reasoning_tokens, cost_usd, latency_keys, latency_counts)
        values (:p, :g, :h, 'openai', :m, :f, :c, '', :n, 0, :n * 1000, :n * 100, 0, 0, 0,
                :cost, '{}', '{}')"""), rows)


def test_tripled_cost_per_call_at_the_same_call_count_alerts_within_hours(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack, db: Session,
    database_url: str,
) -> None:
    now = SHIFT + timedelta(hours=8, minutes=5)
    api = api_for(db, database_url, FakeClock(now))
    api.client.post("/v1/channels", headers=api.admin, json={
        "name": "finops", "kind": "slack", "url": fake_slack.url()})
    with session_factory.begin() as session:
        _call_rollups(session, project_id=api.project_id, until=now)
    with session_factory.begin() as session:
        report = detect_project(session, project_id=api.project_id, now=now)
        rows = session.query(DetectedAnomaly).filter_by(
            project_id=api.project_id, metric="spend", dimension="feature",
            value="search.rerank").all()
        assert len(rows) == 1
        (dearer,) = rows
        assert dearer.impact > 0 and dearer.observed > 2 * dearer.expected
        assert dearer.detected_at - SHIFT <= timedelta(hours=4)
        assert not session.query(DetectedAnomaly).filter_by(
            project_id=api.project_id, metric="calls").all()  # the call count did not move
    assert len(report.alerts) == 1
