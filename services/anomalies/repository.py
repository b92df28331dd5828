"""Hourly series and breakdowns for anomaly detection, read from ``call_rollups``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.models import DetectedAnomaly, Project
from services.models.rollup import GRAIN_FULL, GRAIN_NO_CUSTOMER

DIMENSIONS = ("provider", "model", "feature", "customer")
TOKEN_SUMS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "reasoning_tokens")

SeriesKey = tuple[str, str]  # (dimension, value); ("project", "") for the whole project


def _grain(dimension: str) -> int:
    return GRAIN_FULL if dimension == "customer" else GRAIN_NO_CUSTOMER


def hourly_series(
    session: Session, *, project_id: int, start: datetime, end: datetime, top_values: int,
) -> dict[SeriesKey, list[tuple[datetime, float, float]]]:
    """(hour, spend, calls) per series: the project, and the ``top_values`` biggest values
    (by spend over the range) of each dimension."""
    params = {"p": project_id, "a": start, "b": end, "n": top_values}
    out: dict[SeriesKey, list[tuple[datetime, float, float]]] = defaultdict(list)
    for hour, cost, calls in session.execute(text("""
        select hour, sum(cost_usd)::float8, sum(calls)::float8 from call_rollups
        where project_id = :p and grain = 1 and hour >= :a and hour < :b
        group by hour order by hour"""), params):
        out[("project", "")].append((hour, cost, calls))
    for dim in DIMENSIONS:
        rows = session.execute(text(f"""
            with top as (
                select {dim} as v from call_rollups
                where project_id = :p and grain = {_grain(dim)} and hour >= :a and hour < :b
                group by 1 order by sum(cost_usd) desc, sum(calls) desc limit :n
            )
            select {dim}, hour, sum(cost_usd)::float8, sum(calls)::float8 from call_rollups
            where project_id = :p and grain = {_grain(dim)} and hour >= :a and hour < :b
                  and {dim} in (select v from top)
            group by 1, 2 order by 1, 2"""), params)
        for value, hour, cost, calls in rows:
            out[(dim, value)].append((hour, cost, calls))
    return dict(out)


def breakdown(
    session: Session, *, project_id: int, series: SeriesKey, measure: str,
    start: datetime, end: datetime,
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per dimension, the measure (``cost_usd`` or ``calls``) by value over [start, end)
    within the series; and the token totals by type."""
    dimension, value = series
    params: dict[str, Any] = {"p": project_id, "a": start, "b": end, "v": value}
    where = "" if dimension == "project" else f" and {dimension} = :v"
    by_dim: dict[str, dict[str, float]] = {}
    for dim in DIMENSIONS:
        grain = GRAIN_FULL if "customer" in (dim, dimension) else GRAIN_NO_CUSTOMER
        rows = session.execute(text(f"""
            select {dim}, sum({measure})::float8 from call_rollups
            where project_id = :p and grain = {grain} and hour >= :a and hour < :b {where}
            group by 1"""), params)
        by_dim[dim] = {v or "(none)": float(x) for v, x in rows}
    grain = GRAIN_FULL if dimension == "customer" else GRAIN_NO_CUSTOMER
    sums = session.execute(text(f"""
        select {", ".join(f"coalesce(sum({t}), 0)::float8" for t in TOKEN_SUMS)}
        from call_rollups
        where project_id = :p and grain = {grain} and hour >= :a and hour < :b {where}"""),
        params).one()
    inp, out, cache_read, cache_write, reasoning = (float(x) for x in sums)
    tokens = {
        "input_uncached": max(inp - cache_read - cache_write, 0.0), "cache_read": cache_read,
        "cache_write": cache_write, "output": max(out - reasoning, 0.0),
        "reasoning": reasoning,
    }
    return by_dim, tokens


def upsert_anomaly(session: Session, *, values: dict[str, Any]) -> tuple[int, bool]:
    """Insert or extend the episode starting at ``start_hour``: (id, newly inserted)."""
    stmt = insert(DetectedAnomaly).values(**values)
    keys = ("project_id", "metric", "dimension", "value", "start_hour")
    upsert = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={k: stmt.excluded[k] for k in values if k not in (*keys, "detected_at")},
    ).returning(DetectedAnomaly.id, text("(xmax = 0)"))
    row = session.execute(upsert).one()
    return int(row[0]), bool(row[1])


def project_ids(session: Session) -> list[int]:
    return [int(i) for i in session.scalars(select(Project.id).order_by(Project.id))]


def list_anomalies(
    session: Session, *, project_id: int, since: datetime | None, metric: str | None,
    dimension: str | None, limit: int,
) -> Sequence[DetectedAnomaly]:
    query = select(DetectedAnomaly).where(DetectedAnomaly.project_id == project_id)
    if since:
        query = query.where(DetectedAnomaly.end_hour >= since)
    if metric:
        query = query.where(DetectedAnomaly.metric == metric)
    if dimension:
        query = query.where(DetectedAnomaly.dimension == dimension)
    return session.scalars(
        query.order_by(DetectedAnomaly.detected_at.desc(), DetectedAnomaly.id.desc())
        .limit(limit)
    ).all()
