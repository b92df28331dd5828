"""`costline report`: what a person wants to see at a glance, in the terminal."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import BadRequest, NotFound
from services.models import Project
from services.usage import listing, service
from services.usage.params import build_selection
from services.usage.schemas import Dimension, RequestItem

_DURATION = re.compile(r"^(\d+)([hdw])$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_last(value: str) -> timedelta:
    """``7d``, ``24h``, ``2w`` → timedelta."""
    match = _DURATION.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise BadRequest(f"--last {value!r}: use a number and h, d or w, e.g. 7d", field="last")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class SpendLine:
    name: str
    calls: int
    cost: Decimal
    unpriced: int


@dataclass(frozen=True)
class Report:
    project: str
    start: datetime
    end: datetime
    total: Decimal
    previous_total: Decimal
    by_feature: list[SpendLine]
    by_model: list[SpendLine]
    p50: tuple[float | None, float | None]  # (this window, the window before)
    p99: tuple[float | None, float | None]
    top_requests: list[RequestItem]


def choose_project(session: Session, name: str | None) -> Project:
    projects = session.scalars(select(Project).order_by(Project.name)).all()
    if name is not None:
        for project in projects:
            if project.name == name:
                return project
        raise NotFound(f"no project named {name!r}", field="project")
    if len(projects) == 1:
        return projects[0]
    if not projects:
        raise NotFound("no project yet; send spans first (costline keys create …)")
    names = ", ".join(p.name for p in projects)
    raise BadRequest(f"several projects ({names}); pick one with --project", field="project")


def build_report(session: Session, *, project: Project, last: timedelta, now: datetime) -> Report:
    def selection(start: datetime, end: datetime, group_by: tuple[Dimension, ...] = ()):  # type: ignore[no-untyped-def]
        return build_selection(
            project_id=project.id,
            project_tz=project.timezone,
            start=start,
            end=end,
            interval="total",
            tz=None,
            group_by=group_by,
            filters={},
            now=now,
        )

    start = now - last

    def spend(group: Dimension) -> list[SpendLine]:
        answer = service.query_usage(session, sel=selection(start, now, (group,)))
        lines = [
            SpendLine(
                name=row.group[group] or "(none)",
                calls=row.calls,
                cost=Decimal(row.cost_usd),
                unpriced=row.unpriced_calls,
            )
            for row in answer.rows
        ]
        return sorted(lines, key=lambda line: line.cost, reverse=True)

    def total(a: datetime, b: datetime) -> Decimal:
        rows = service.query_usage(session, sel=selection(a, b)).rows
        return sum((Decimal(row.cost_usd) for row in rows), Decimal(0))

    def quantiles(a: datetime, b: datetime) -> tuple[float | None, float | None]:
        rows = service.query_percentiles(
            session, sel=selection(a, b), metric="request_cost", qs=[0.5, 0.99]
        ).rows
        if not rows:
            return None, None
        return rows[0].values["0.5"], rows[0].values["0.99"]

    now_q, before_q = quantiles(start, now), quantiles(start - last, start)
    top = listing.list_requests(
        session, sel=selection(start, now), sort="-cost", limit=5, cursor=None
    ).items
    return Report(
        project=project.name,
        start=start,
        end=now,
        total=total(start, now),
        previous_total=total(start - last, start),
        by_feature=spend("feature"),
        by_model=spend("model"),
        p50=(now_q[0], before_q[0]),
        p99=(now_q[1], before_q[1]),
        top_requests=top,
    )


def _usd(value: Decimal | float | None) -> str:
    if value is None:
        return "—"
    value = Decimal(str(value))
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def _trend(now: Decimal | float | None, before: Decimal | float | None) -> Text:
    if now is None or before is None or before == 0:
        return Text("new" if now and not before else "—", style="dim")
    change = (float(now) - float(before)) / float(before) * 100
    style = "red" if change > 5 else "green" if change < -5 else "yellow"
    return Text(f"{change:+.0f}%", style=style)


def _spend_table(title: str, lines: list[SpendLine], total: Decimal) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column(title.split()[-1].capitalize())
    table.add_column("Cost", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("Calls", justify="right")
    table.add_column("Unpriced", justify="right")
    for line in lines[:10]:
        share = f"{line.cost / total * 100:.0f}%" if total else "—"
        table.add_row(
            line.name,
            _usd(line.cost),
            share,
            f"{line.calls:,}",
            f"{line.unpriced:,}" if line.unpriced else "",
        )
    return table


def render(report: Report, console: Console) -> None:
    window = f"{report.start:%Y-%m-%d %H:%M} → {report.end:%Y-%m-%d %H:%M} UTC"
    headline = Text.assemble(
        ("Spend ", "bold"),
        (_usd(report.total), "bold"),
        "  ",
        _trend(report.total, report.previous_total),
        " vs the window before\n",
        ("Per-request cost  ", "bold"),
        "p50 ",
        _usd(report.p50[0]),
        " ",
        _trend(report.p50[0], report.p50[1]),
        "   p99 ",
        _usd(report.p99[0]),
        " ",
        _trend(report.p99[0], report.p99[1]),
    )
    console.print(Panel(headline, title=f"costline · {report.project} · {window}"))
    console.print(_spend_table("Spend by feature", report.by_feature, report.total))
    console.print(_spend_table("Spend by model", report.by_model, report.total))
    top = Table(title="Most expensive requests", title_justify="left")
    for column in ("Request", "Cost", "Calls", "Feature", "Customer", "Started"):
        top.add_column(column, justify="right" if column in ("Cost", "Calls") else "left")
    for item in report.top_requests:
        top.add_row(
            item.request_id[:24],
            _usd(Decimal(item.cost_usd)),
            str(item.calls),
            item.feature or "",
            item.customer or "",
            f"{item.first_started_at:%m-%d %H:%M}",
        )
    console.print(Group(top))
    if not report.by_feature:
        console.print(Text("No calls in this window yet.", style="dim"))


def now_utc() -> datetime:
    return datetime.now(UTC)
