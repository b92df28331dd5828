"""Hourly series and breakdowns for anomaly detection, read from ``call_rollups`` (spend,
calls) and ``request_rollups`` (percentiles of per-request cost and tokens)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.analytics.sketch import LogHistogram
from services.models import DetectedAnomaly, Project
from services.models.rollup import GRAIN_FULL, GRAIN_NO_CUSTOMER
from services.rollups.sql import ZERO_KEY

DIMENSIONS = ("provider", "model", "feature", "customer")
TOKEN_SUMS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "reasoning_tokens")

REQUEST_DIMENSIONS = ("feature", "customer")  # a request spans providers and models
REQUEST_HISTOGRAMS = ("request_cost", "request_tokens")
PERCENTILES = {"p50": 0.5, "p99": 0.99}

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


def request_percentile_series(
    session: Session, *, project_id: int, start: datetime, end: datetime, top_values: int,
    min_requests: dict[str, int],
) -> dict[SeriesKey, dict[str, list[tuple[datetime, float]]]]:
    """Hourly p50 and p99 of per-request cost and tokens, per series: the project and the
    ``top_values`` biggest values (by cost) of feature and customer. Metric names are
    ``request_cost_p50`` and so on. An hour gets a percentile only when it holds
    ``min_requests[pXX]`` settled requests: the p99 of a handful of requests is their
    maximum, not a percentile. Percentiles interpolate between 1 %-accurate order
    statistics, as ``/v1/percentiles`` does by default."""
    params = {"p": project_id, "a": start, "b": end, "n": top_values}
    out: dict[SeriesKey, dict[str, list[tuple[datetime, float]]]] = defaultdict(
        lambda: defaultdict(list))
    for dimension in ("project", *REQUEST_DIMENSIONS):
        grain = GRAIN_FULL if dimension == "customer" else GRAIN_NO_CUSTOMER
        if dimension == "project":
            value, scope = "''", ""
        else:
            value = dimension
            scope = f"""and {dimension} in (
                select {dimension} from request_rollups
                where project_id = :p and grain = {grain} and hour >= :a and hour < :b
                group by 1 order by sum(cost_usd) desc, sum(requests) desc limit :n)"""
        for column in REQUEST_HISTOGRAMS:
            rows = session.execute(text(f"""
                select {value}, r.hour, u.k, sum(u.n)::bigint
                from request_rollups r, unnest(r.{column}_keys, r.{column}_counts) as u(k, n)
                where r.project_id = :p and r.grain = {grain} and r.hour >= :a and r.hour < :b
                      {scope}
                group by 1, 2, 3 order by 1, 2"""), params)
            cells: dict[tuple[str, datetime], dict[int, int]] = defaultdict(dict)
            for v, hour, key, n in rows:
                cells[(v, hour)][int(key)] = int(n)
            for (v, hour), counts in cells.items():
                zero = counts.pop(ZERO_KEY, 0)
                keys = sorted(counts)
                histogram = LogHistogram.from_sparse(keys, [counts[k] for k in keys], zero)
                wanted = [(name, q) for name, q in PERCENTILES.items()
                          if histogram.count >= min_requests[name]]
                if not wanted:
                    continue
                values = histogram.interpolated_quantiles([q for _, q in wanted])
                for (name, _), x in zip(wanted, values, strict=True):
                    out[(dimension, v)][f"{column}_{name}"].append((hour, x))
    return {key: dict(metrics) for key, metrics in out.items()}


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
