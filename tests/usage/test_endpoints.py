"""The usage REST endpoints over real rollups and the raw tail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.api.app import create_app
from services.keys.service import create_key
from services.partitions.service import maintain_partitions
from services.rollups.service import advance_calls, settle_requests
from tests.factories import make_call

DAY = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
def api(database_url: str, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    app = create_app(database_url=database_url, broker_url=None)
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


@pytest.fixture
def keys(session_factory: sessionmaker[Session]) -> dict[str, str]:
    with session_factory.begin() as session:
        maintain_partitions(session, today=DAY.date(), ahead_days=3)
        read = create_key(session, project_name="acme", scope="read")
        other = create_key(session, project_name="other", scope="read")
        ingest = create_key(session, project_name="acme", scope="ingest")
    return {
        "read": read.key,
        "other": other.key,
        "ingest": ingest.key,
        "project_id": str(read.project_id),
    }


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _seed(factory: sessionmaker[Session], project_id: int, *, roll: bool) -> None:
    from services.models import Project

    with factory.begin() as session:
        project = session.get(Project, project_id)
        assert project is not None
        for i in range(30):
            for j in range(1 + i % 3):  # fan-out: 1 to 3 calls per request
                make_call(
                    session,
                    project=project,
                    request_id=f"req-{i}",
                    started_at=DAY + timedelta(hours=i % 20, minutes=j),
                    feature="search" if i % 2 else "chat",
                    customer="globex" if i % 5 else "initech",
                    cost=str(Decimal("0.001") * (i + 1)),
                    input_tokens=100 * (i + 1),
                )
    if roll:
        _roll_up(factory)


def _roll_up(factory: sessionmaker[Session]) -> None:
    """Fold every call in and settle every request."""
    with factory.begin() as session:
        advance_calls(session)
    with factory.begin() as session:
        settle_requests(session, now=datetime.now(UTC) + timedelta(hours=1))


@pytest.mark.parametrize("roll", [False, True])
def test_usage_counts_each_call_once_whether_rolled_up_or_in_the_tail(
    api: TestClient,
    keys: dict[str, str],
    session_factory: sessionmaker[Session],
    roll: bool,
) -> None:
    _seed(session_factory, int(keys["project_id"]), roll=roll)
    response = api.get(
        "/v1/usage",
        headers=_auth(keys["read"]),
        params={
            "from": DAY.isoformat(),
            "to": (DAY + timedelta(days=1)).isoformat(),
            "group_by": "feature",
        },
    )
    assert response.status_code == 200, response.text
    rows = {row["group"]["feature"]: row for row in response.json()["rows"]}
    with session_factory() as session:
        exact = dict(
            session.execute(text("select feature, count(*) from llm_calls group by feature")).all()
        )
        cost = dict(
            session.execute(
                text("select feature, sum(cost_usd) from llm_calls group by feature")
            ).all()
        )
    assert {f: r["calls"] for f, r in rows.items()} == exact
    assert {f: Decimal(r["cost_usd"]) for f, r in rows.items()} == cost
    if roll:
        assert sum(r["requests"] for r in rows.values()) == 30


def test_usage_calendar_days_follow_the_requested_time_zone(
    api: TestClient,
    keys: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    _seed(session_factory, int(keys["project_id"]), roll=True)
    response = api.get(
        "/v1/usage",
        headers=_auth(keys["read"]),
        params={
            "from": (DAY - timedelta(days=1)).isoformat(),
            "to": (DAY + timedelta(days=2)).isoformat(),
            "tz": "America/New_York",
        },
    )
    buckets = [row["bucket"] for row in response.json()["rows"]]
    # calls span 00:00-19:59 UTC on Nov 2 = Nov 1 19:00 .. Nov 2 14:59 in New York (EST)
    assert buckets == ["2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"]


@pytest.mark.parametrize(
    ("interpolation", "exact_function"),
    [("linear", "percentile_cont"), ("nearest", "percentile_disc")],
)
def test_request_cost_percentiles_are_within_one_percent_of_exact(
    api: TestClient,
    keys: dict[str, str],
    session_factory: sessionmaker[Session],
    interpolation: str,
    exact_function: str,
) -> None:
    _seed(session_factory, int(keys["project_id"]), roll=True)
    response = api.get(
        "/v1/percentiles",
        headers=_auth(keys["read"]),
        params={
            "metric": "request_cost",
            "q": "0.5,0.9,0.99",
            "group_by": "feature",
            "interval": "day",
            "interpolation": interpolation,
            "from": DAY.isoformat(),
            "to": (DAY + timedelta(days=1)).isoformat(),
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["rows"]
    with session_factory() as session:
        for row in response.json()["rows"]:
            for q, value in row["values"].items():
                exact = session.execute(
                    text(
                        f"select {exact_function}(:q) within group (order by cost_usd::float8) "
                        "from requests where feature = :f"
                    ),
                    {"q": float(q), "f": row["group"]["feature"]},
                ).scalar_one()
                assert abs(value - exact) <= 0.01 * exact


def test_most_expensive_requests_page_with_a_cursor(
    api: TestClient,
    keys: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    _seed(session_factory, int(keys["project_id"]), roll=True)
    params = {
        "sort": "-cost",
        "limit": 7,
        "from": DAY.isoformat(),
        "to": (DAY + timedelta(days=1)).isoformat(),
    }
    seen: list[Decimal] = []
    cursor = None
    while True:
        page = api.get(
            "/v1/requests",
            headers=_auth(keys["read"]),
            params={**params, **({"cursor": cursor} if cursor else {})},
        ).json()
        seen += [Decimal(item["cost_usd"]) for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 30 and seen == sorted(seen, reverse=True)
    top = api.get("/v1/calls", headers=_auth(keys["read"]), params={**params, "limit": 1})
    assert top.json()["items"][0]["cost_usd"] == "0.03"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"metric": "request_cost", "group_by": "colour"}, "group_by"),
        ({"metric": "vibes"}, "metric"),
        ({"metric": "call_cost", "q": "1.5"}, "q"),
        ({"metric": "call_cost", "q": "0"}, "q"),
        (
            {"metric": "call_cost", "from": "2026-11-03T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
            "from",
        ),
        ({"metric": "call_cost", "interval": "hour", "from": "2020-01-01T00:00:00Z"}, "from"),
        ({"metric": "request_cost", "group_by": "model"}, "group_by"),
        ({"metric": "call_cost", "interval": "fortnight"}, "interval"),
        ({"metric": "call_cost", "tz": "Mars/Olympus"}, "tz"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(
    api: TestClient,
    keys: dict[str, str],
    params: dict[str, str],
    field: str,
) -> None:
    response = api.get("/v1/percentiles", headers=_auth(keys["read"]), params=params)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert "Traceback" not in response.text


def test_keys_decide_what_is_seen(
    api: TestClient,
    keys: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    _seed(session_factory, int(keys["project_id"]), roll=True)
    params = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    assert api.get("/v1/usage", params=params).status_code == 401
    assert api.get("/v1/usage", headers=_auth(keys["ingest"]), params=params).status_code == 403
    other = api.get("/v1/usage", headers=_auth(keys["other"]), params=params)
    assert other.status_code == 200 and other.json()["rows"] == []
    assert (
        api.get("/v1/requests", headers=_auth(keys["other"]), params=params).json()["items"] == []
    )


def test_filters_narrow_every_answer(
    api: TestClient,
    keys: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    _seed(session_factory, int(keys["project_id"]), roll=True)
    params = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    usage = api.get(
        "/v1/usage",
        headers=_auth(keys["read"]),
        params={**params, "feature": "search", "group_by": "feature"},
    ).json()
    assert [row["group"]["feature"] for row in usage["rows"]] == ["search"]
    calls = api.get(
        "/v1/calls",
        headers=_auth(keys["read"]),
        params={**params, "customer": "initech", "limit": 500},
    ).json()["items"]
    assert calls and {call["customer"] for call in calls} == {"initech"}
    refused = api.get(
        "/v1/requests", headers=_auth(keys["read"]), params={**params, "model": "gpt-4o"}
    )
    assert refused.status_code == 400 and refused.json()["field"] == "filters"


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris"])
def test_request_percentiles_over_partial_days_count_every_request_once(
    api: TestClient,
    keys: dict[str, str],
    session_factory: sessionmaker[Session],
    tz: str,
) -> None:
    """Whole UTC days come from daily cells (UTC) or hourly ones (Paris), the hours at either
    end from hourly cells: per local day and feature, each request counts exactly once."""
    from services.models import Project

    with session_factory.begin() as session:
        project = session.get(Project, int(keys["project_id"]))
        assert project is not None
        for i in range(72 * 2):  # two requests an hour over three days
            make_call(
                session,
                project=project,
                request_id=f"req-{i}",
                started_at=DAY + timedelta(minutes=30 * i),
                feature="search" if i % 3 else "chat",
                cost=str(Decimal("0.001") * (1 + i % 17)),
            )
    _roll_up(session_factory)
    start, end = DAY + timedelta(hours=7), DAY + timedelta(days=2, hours=17)
    response = api.get(
        "/v1/percentiles",
        headers=_auth(keys["read"]),
        params={
            "metric": "request_cost",
            "q": "0.5",
            "group_by": "feature",
            "interval": "day",
            "tz": tz,
            "from": start.isoformat(),
            "to": end.isoformat(),
        },
    )
    assert response.status_code == 200, response.text
    got = {
        (datetime.fromisoformat(r["bucket"]), r["group"]["feature"]): r["count"]
        for r in response.json()["rows"]
    }
    with session_factory() as session:
        exact = {
            (day, feature): n
            for day, feature, n in session.execute(
                text(
                    "select date_trunc('day', first_started_at at time zone :tz) "
                    "at time zone :tz, feature, count(*) from requests "
                    "where first_started_at >= :a and first_started_at < :b group by 1, 2"
                ),
                {"tz": tz, "a": start, "b": end},
            )
        }
    assert got == exact
    assert len({day for day, _ in got}) >= 3
