"""Answer usage and percentile questions from rollup cells, plus the raw tail that the
rollups have not consumed yet (so a call is visible within seconds of its ingestion)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.analytics.sketch import LogHistogram
from services.core.errors import BadRequest
from services.models.rollup import GRAIN_DAY_NO_CUSTOMER, GRAIN_FULL, GRAIN_NO_CUSTOMER
from services.rollups import sql as rollup_sql
from services.usage.params import MAX_GROUPS, Selection
from services.usage.schemas import (
    CALL_METRICS,
    REQUEST_DIMENSIONS,
    Interpolation,
    Metric,
    PercentileAnswer,
    PercentileRow,
    UsageAnswer,
    UsageRow,
)

TOKENS = rollup_sql.TOKEN_COLUMNS
# How each dimension reads on a raw call (the tail); on rollup cells it is the column itself.
RAW_DIMENSION = {
    "provider": "coalesce(c.provider, '')",
    "model": "coalesce(c.response_model, c.request_model, '')",
    "feature": "coalesce(c.feature, '')",
    "customer": "coalesce(c.customer, '')",
    "environment": "coalesce(c.environment, '')",
}
HISTOGRAMS: dict[Metric, tuple[str, str, str | None]] = {
    # metric: (rollup table, histogram column prefix, bucket of a raw call for the tail)
    "call_cost": ("call_rollups", "call_cost", rollup_sql.bucket("c.cost_usd::float8")),
    "latency": ("call_rollups", "latency", rollup_sql.bucket(rollup_sql.CALL_LATENCY)),
    "request_cost": ("request_rollups", "request_cost", None),
    "request_tokens": ("request_rollups", "request_tokens", None),
    "calls_per_request": ("request_rollups", "calls_per_request", None),
}
SETTLED_NOTE = (
    "request metrics count requests once they settle (no new call for the settle "
    "window, COSTLINE_SETTLE_WINDOW_S)"
)


# Cells, watermark and tail are read in one statement, hence one snapshot: a rollup committing
# meanwhile cannot make a call count twice or not at all.
NOT_ROLLED_UP = (
    "c.ingest_xid >= (select coalesce(max(watermark), 0) from rollup_state "
    "where name = 'calls')::text::xid8"
)


def _where(sel: Selection, *, raw: bool, params: dict[str, Any]) -> str:
    clauses = []
    for dim, values in sel.filters.items():
        params[f"f_{dim}"] = list(values)
        column = RAW_DIMENSION[dim] if raw else f"r.{dim}"
        clauses.append(f"{column} = any(:f_{dim})")
    return "".join(f" and {clause}" for clause in clauses)


def _bucket(column: str, interval: str) -> str:
    """The local start of the interval holding ``column``; ``total``: one bucket, the range."""
    if interval == "total":
        return "(cast(:start as timestamptz) at time zone :tz)"
    return f"date_trunc(:interval, {column} at time zone :tz)"


def _params(sel: Selection) -> dict[str, Any]:
    return {
        "p": sel.project_id,
        "start": sel.start,
        "end": sel.end,
        "interval": sel.interval,
        "tz": sel.tz,
        "grain": GRAIN_FULL if sel.involves_customer else GRAIN_NO_CUSTOMER,
    }


def _whole_utc_days(sel: Selection) -> tuple[datetime, datetime] | None:
    """The whole UTC days of the range, if daily request cells can answer for them: customers
    not involved, buckets of a day or longer, and a time zone at UTC offset 0 throughout (so
    a UTC day is one local day). ``None`` otherwise."""
    if sel.involves_customer or sel.interval == "hour":
        return None
    midnight = sel.start.replace(hour=0)
    first = midnight if midnight == sel.start else midnight + timedelta(days=1)
    last = sel.end.replace(hour=0)
    if first >= last:
        return None
    zone = ZoneInfo(sel.tz)
    # Offsets change for months at a time (DST), so one look a day, plus both ends, sees any.
    days = (last - midnight).days
    instants = [sel.start, sel.end - timedelta(microseconds=1)]
    instants += [midnight + timedelta(days=n) for n in range(days + 1)]
    if any(at.astimezone(zone).utcoffset() != timedelta(0) for at in instants):
        return None
    return first, last


HOURLY_CELLS = "r.grain = :grain and r.hour >= :start and r.hour < :end"


def _request_cells(sel: Selection, params: dict[str, Any]) -> str:
    """Which request cells cover the range: whole UTC days from daily cells when they can
    answer (see ``_whole_utc_days``), the hours at either end from hourly cells."""
    days = _whole_utc_days(sel)
    if days is None:
        return HOURLY_CELLS
    params["day_a"], params["day_b"] = days
    return (
        f"((r.grain = {GRAIN_DAY_NO_CUSTOMER} and r.hour >= :day_a and r.hour < :day_b) "
        "or (r.grain = :grain and ((r.hour >= :start and r.hour < :day_a) "
        "or (r.hour >= :day_b and r.hour < :end))))"
    )


def _group(sel: Selection, values: tuple[Any, ...]) -> dict[str, str | None]:
    return {dim: (value or None) for dim, value in zip(sel.group_by, values, strict=True)}


def query_usage(session: Session, *, sel: Selection) -> UsageAnswer:
    """Calls, tokens by type, cost and unpriced calls per interval and group."""
    params = _params(sel)
    dims = list(sel.group_by)
    cell_dims = "".join(f", r.{d}" for d in dims)
    raw_dims = "".join(f", {RAW_DIMENSION[d]}" for d in dims)
    group_cols = "".join(f", d{i}" for i in range(len(dims)))
    statement = f"""
        with calls (local_bucket{group_cols}, calls, unpriced_calls, {", ".join(TOKENS)},
                    cost_usd) as (
            select {_bucket("r.hour", sel.interval)}{cell_dims}, r.calls, r.unpriced_calls,
                   {", ".join("r." + t for t in TOKENS)}, r.cost_usd
            from call_rollups r
            where r.project_id = :p and {HOURLY_CELLS}
                  {_where(sel, raw=False, params=params)}
            union all
            select {_bucket("c.started_at", sel.interval)}{raw_dims}, 1, (c.cost_usd is null)::int,
                   {", ".join("c." + t for t in TOKENS)}, coalesce(c.cost_usd, 0)
            from llm_calls c
            where c.project_id = :p and {NOT_ROLLED_UP}
                  and c.started_at >= :start and c.started_at < :end
                  {_where(sel, raw=True, params=params)}
        )
        select local_bucket at time zone :tz{group_cols}, sum(calls)::bigint,
               sum(unpriced_calls)::bigint, {", ".join(f"sum({t})::bigint" for t in TOKENS)},
               sum(cost_usd)
        from calls
        group by local_bucket{group_cols}
        order by local_bucket{group_cols}
    """
    rows = session.execute(text(statement), params).all()
    _check_group_count(sel, {tuple(row[1 : 1 + len(dims)]) for row in rows})
    requests = (
        _request_counts(session, sel)
        if set(dims) <= set(REQUEST_DIMENSIONS) and set(sel.filters) <= set(REQUEST_DIMENSIONS)
        else None
    )
    out = []
    for row in rows:
        bucket, group = row[0], tuple(row[1 : 1 + len(dims)])
        calls, unpriced, *token_sums, cost = row[1 + len(dims) :]
        out.append(
            UsageRow(
                bucket=bucket,
                group=_group(sel, group),
                calls=calls,
                requests=None if requests is None else requests.get((bucket, group), 0),
                **dict(zip(TOKENS, token_sums, strict=True)),
                cost_usd=str(Decimal(cost).normalize() if cost else Decimal(0)),
                unpriced_calls=unpriced,
            )
        )
    notes = [
        "cost_usd excludes unpriced calls (see unpriced_calls); it is never counted as $0",
        "requests: " + SETTLED_NOTE,
    ]
    return UsageAnswer(
        from_=sel.start,
        to=sel.end,
        interval=sel.interval,
        tz=sel.tz,
        group_by=list(sel.group_by),
        rows=out,
        notes=notes,
    )


def _request_counts(session: Session, sel: Selection) -> dict[tuple[Any, ...], int]:
    params = _params(sel)
    dims = "".join(f", r.{d}" for d in sel.group_by)
    rows = session.execute(
        text(f"""
        select {_bucket("r.hour", sel.interval)} at time zone :tz as bucket{dims},
               sum(r.requests)::bigint
        from request_rollups r
        where r.project_id = :p and {_request_cells(sel, params)}
              {_where(sel, raw=False, params=params)}
        group by 1{"".join(f", {i + 2}" for i in range(len(sel.group_by)))}
    """),
        params,
    ).all()
    return {(row[0], tuple(row[1:-1])): row[-1] for row in rows}


def query_percentiles(
    session: Session,
    *,
    sel: Selection,
    metric: Metric,
    qs: list[float],
    interpolation: Interpolation = "linear",
) -> PercentileAnswer:
    """Quantiles of ``metric`` per interval and group, within 1 % relative error of
    PostgreSQL's ``percentile_cont`` (``linear``) or ``percentile_disc`` (``nearest``)."""
    table, column, tail_bucket = HISTOGRAMS[metric]
    if metric not in CALL_METRICS:
        extra = set(sel.group_by) | set(sel.filters)
        if not extra <= set(REQUEST_DIMENSIONS):
            field = "group_by" if set(sel.group_by) - set(REQUEST_DIMENSIONS) else "filters"
            raise BadRequest(
                f"{field}: {metric} is per request; group or filter it by "
                f"{', '.join(REQUEST_DIMENSIONS)} only (a request spans providers and models)",
                field=field,
            )
    params = _params(sel)
    dims = list(sel.group_by)
    cell_dims = "".join(f", r.{d}" for d in dims)
    group_cols = "".join(f", d{i}" for i in range(len(dims)))
    cells = _request_cells(sel, params) if table == "request_rollups" else HOURLY_CELLS
    parts = [
        f"""
        select {_bucket("r.hour", sel.interval)}{cell_dims}, u.k, u.n
        from {table} r, unnest(r.{column}_keys, r.{column}_counts) as u(k, n)
        where r.project_id = :p and {cells}
              {_where(sel, raw=False, params=params)}
    """
    ]
    if tail_bucket is not None:
        raw_dims = "".join(f", {RAW_DIMENSION[d]}" for d in dims)
        priced = " and c.cost_usd is not null" if metric == "call_cost" else ""
        parts.append(f"""
            select {_bucket("c.started_at", sel.interval)}{raw_dims}, {tail_bucket}, 1
            from llm_calls c
            where c.project_id = :p and {NOT_ROLLED_UP}
                  and c.started_at >= :start and c.started_at < :end{priced}
                  {_where(sel, raw=True, params=params)}
        """)
    # One row per (interval, group) with its merged histogram as two arrays: a few hundred
    # rows instead of one per bucket.
    statement = f"""
        with buckets (local_bucket{group_cols}, k, n) as ({" union all ".join(parts)}),
        merged as (
            select local_bucket{group_cols}, k, sum(n)::bigint as n
            from buckets group by local_bucket{group_cols}, k
        )
        select local_bucket at time zone :tz{group_cols}, array_agg(k), array_agg(n)
        from merged group by local_bucket{group_cols}
    """
    sketches = {
        (row[0], *row[1 : 1 + len(dims)]): (row[-2], row[-1])
        for row in session.execute(text(statement), params)
    }
    _check_group_count(sel, {key[1:] for key in sketches})
    rows = []
    for key in sorted(sketches, key=lambda k: tuple("" if v is None else v for v in k)):
        histogram = _histogram(*sketches[key])
        values = (
            histogram.interpolated_quantiles(qs)
            if interpolation == "linear"
            else histogram.quantiles(qs)
        )
        rows.append(
            PercentileRow(
                bucket=key[0],
                group=_group(sel, key[1:]),
                count=histogram.count,
                values={_q_label(q): value for q, value in zip(qs, values, strict=True)},
            )
        )
    exact = "percentile_cont" if interpolation == "linear" else "percentile_disc"
    notes = [
        f"values are within 1 % relative error of {exact} over the same rows "
        "(DDSketch log buckets, alpha = 0.01)"
    ]
    if metric == "call_cost":
        notes.append("unpriced calls are left out, never counted as $0")
    if metric not in CALL_METRICS:
        notes.append(SETTLED_NOTE)
    return PercentileAnswer(
        metric=metric,
        q=qs,
        from_=sel.start,
        to=sel.end,
        interval=sel.interval,
        tz=sel.tz,
        group_by=list(sel.group_by),
        rows=rows,
        notes=notes,
    )


def _histogram(keys: list[int], counts: list[int]) -> LogHistogram:
    """A histogram from a bucket-key array (any order, each key once) and its counts; the
    zero bucket is stored under ``ZERO_KEY``."""
    zero = 0
    if rollup_sql.ZERO_KEY in keys:
        at = keys.index(rollup_sql.ZERO_KEY)
        zero = counts[at]
        keys, counts = keys[:at] + keys[at + 1 :], counts[:at] + counts[at + 1 :]
    return LogHistogram.from_sparse(keys, counts, zero)


def _q_label(q: float) -> str:
    return f"{q:g}"


def _check_group_count(sel: Selection, groups: set[tuple[Any, ...]]) -> None:
    if len(groups) > MAX_GROUPS:
        raise BadRequest(
            f"group_by: {len(groups)} groups (at most {MAX_GROUPS}); add filters or group by "
            "fewer dimensions",
            field="group_by",
        )
