"""`costline report` renders spend, percentiles with trend and the costliest requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from services.cli.report import build_report, parse_last, render
from services.core.errors import BadRequest
from services.partitions.service import maintain_partitions
from services.rollups.service import advance_calls, settle_requests
from tests.cli.helpers import cli_env, costline
from tests.factories import make_call, make_project


def test_report_shows_spend_percentiles_trend_and_top_requests(
    session_factory: sessionmaker[Session],
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with session_factory.begin() as session:
        maintain_partitions(session, today=now.date() - timedelta(days=14), ahead_days=16)
        project = make_project(session, name="shop")
        for i in range(40):
            this_week = i % 2 == 0
            started = now - timedelta(days=2 if this_week else 9, minutes=i)
            cost = Decimal("0.02") * (3 if this_week else 1) * (1 + i % 4)
            make_call(
                session,
                project=project,
                request_id=f"r{i}",
                started_at=started,
                feature="search.rerank" if i % 4 else "support.answer",
                model="gpt-4o" if i % 3 else "claude-sonnet-4",
                cost=str(cost),
            )
        make_call(
            session,
            project=project,
            request_id="r-unpriced",
            started_at=now - timedelta(days=1),
            cost=None,
            model="mystery-model",
        )
    with session_factory.begin() as session:
        advance_calls(session)
    with session_factory.begin() as session:
        settle_requests(session, now=now + timedelta(hours=1))

    with session_factory() as session:
        from services.models import Project

        project = session.query(Project).one()
        report = build_report(session, project=project, last=timedelta(days=7), now=now)
    console = Console(record=True, width=120)
    render(report, console)
    out = console.export_text()

    assert "Spend by feature" in out and "search.rerank" in out and "support.answer" in out
    assert "Spend by model" in out and "mystery-model" in out
    assert "p50" in out and "p99" in out
    assert "+" in out  # this week costs three times last week: the trend is up
    assert "Most expensive requests" in out and report.top_requests[0].request_id in out
    assert report.by_model[-1].unpriced == 1 and report.by_model[-1].cost == 0
    assert report.total == sum((line.cost for line in report.by_feature), Decimal(0))
    assert report.p50[0] is not None and report.p50[1] is not None
    assert report.p50[0] > report.p50[1]


@pytest.mark.parametrize("value", ["7", "0d", "7y", "-1d", "week"])
def test_bad_window_is_a_clear_error(value: str) -> None:
    with pytest.raises(BadRequest, match="--last"):
        parse_last(value)


def test_report_command_runs_and_refuses_a_bad_window(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        make_project(session, name="quiet")
    env = cli_env(tmp_path, COSTLINE_DATABASE_URL=database_url)
    result = costline("report", "--last", "24h", env=env)
    assert result.returncode == 0, result.stderr
    assert "costline · quiet" in result.stdout and "No calls in this window yet." in result.stdout
    bad = costline("report", "--last", "soon", env=env)
    assert bad.returncode == 2 and "--last" in bad.stderr and "Traceback" not in bad.stderr
