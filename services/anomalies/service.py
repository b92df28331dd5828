"""Detect anomalies in hourly spend and calls, and in the p50/p99 of per-request cost and
tokens, per project and per dimension value; record them with their likely cause, and raise
one alert per spend episode."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy.orm import Session

from services.alerts import repository as alerts_repo
from services.alerts import service as alerts
from services.alerts.service import AlertSpec
from services.analytics.anomaly import Anomaly, detect_anomalies, explain_change
from services.anomalies import repository
from services.anomalies.repository import SeriesKey
from services.anomalies.schemas import AnomalyOut
from services.channels.repository import anomaly_channel_ids
from services.core.errors import NotFound
from services.models import DetectedAnomaly

SERIES_HOURS = 5 * 168  # four weeks of hour-of-week baseline, plus the week being judged
TOP_VALUES = 15  # per dimension, by spend: the long tail is watched through the total
RECENT = timedelta(hours=48)  # episodes ending earlier are history, not news
BEFORE_WINDOW = timedelta(days=7)
# An episode must add up to at least this (USD, calls) and at least one mean hour of its
# own series: the bar the detector was measured at (bench/anomaly_eval.py), so a $40 blip
# on a $100-an-hour series is not news while a $2 one on a $0.50 feature can be.
MIN_IMPACT = {"spend": 1.0, "calls": 100.0}
# Per-request percentiles: an hour needs this many settled requests to have one.
MIN_REQUESTS = {"p50": 10, "p99": 50}
# A percentile episode must add up to this many typical hours of the series' own median
# (e.g. +25 % for four hours), so the bar scales with what a request usually costs.
PERCENTILE_MIN_IMPACT_HOURS = 1.0
# Percentiles move by level shifts and creep; one hour's p99 jumping is one unusual
# request, which is what a p99 is for, not an anomaly.
PERCENTILE_KINDS = ("level_shift", "creep")
_HOUR = timedelta(hours=1)


class AnomalyNotFound(NotFound):
    code = "anomaly_not_found"


@dataclass
class DetectionReport:
    anomalies: list[int] = field(default_factory=list)
    new: list[int] = field(default_factory=list)
    alerts: list[int] = field(default_factory=list)


def detect_project(
    session: Session, *, project_id: int, now: datetime,
    min_impact: dict[str, float] | None = None,
) -> DetectionReport:
    """One pass over the complete hours before ``now``; safe to repeat (episodes are keyed
    by their first hour, alerts by their episode). ``min_impact`` overrides the absolute
    floors of ``MIN_IMPACT``; a series' mean hour can only raise them."""
    thresholds = MIN_IMPACT | (min_impact or {})
    end = now.replace(minute=0, second=0, microsecond=0)
    series = repository.hourly_series(session, project_id=project_id,
                                      start=end - SERIES_HOURS * _HOUR, end=end,
                                      top_values=TOP_VALUES)
    report = DetectionReport()
    alertable: list[DetectedAnomaly] = []
    for key, points in series.items():
        grid_start = points[0][0]
        # the trailing empty hour pins the grid to the last complete hour
        stamps = [p[0] for p in points] + [end - _HOUR]
        calls = [p[2] for p in points] + [0.0]
        hours = max(1.0, (end - grid_start) / _HOUR)
        for metric in ("spend", "calls"):
            values = [p[1] for p in points] + [0.0] if metric == "spend" else calls
            found = detect_anomalies(
                timestamps=stamps,
                values=values,
                # Spend given its call counts: one expensive call among a few is not a
                # spike, while more calls or a dearer cost per call are (see the detector).
                counts=calls if metric == "spend" else None,
                min_impact=max(thresholds[metric], sum(values) / hours),
            )
            for anomaly in found:
                if anomaly.end + _HOUR < end - RECENT or anomaly.start < grid_start:
                    continue
                row = _keep(session, report, project_id=project_id, key=key, metric=metric,
                            anomaly=anomaly, now=now)
                if metric == "spend" and anomaly.impact > 0:
                    alertable.append(row)
    _detect_request_percentiles(session, project_id=project_id, end=end, now=now,
                                report=report)
    report.alerts = _alert(session, project_id=project_id, candidates=alertable, now=now)
    return report


def _detect_request_percentiles(session: Session, *, project_id: int, end: datetime,
                                now: datetime, report: DetectionReport) -> None:
    """Creep and level shifts in the hourly p50/p99 of per-request cost and tokens, per
    project, feature and customer. Hours without enough requests are unknown, not 0."""
    series = repository.request_percentile_series(
        session, project_id=project_id, start=end - SERIES_HOURS * _HOUR, end=end,
        top_values=TOP_VALUES, min_requests=MIN_REQUESTS)
    for key, metrics in series.items():
        for metric, points in metrics.items():
            typical = float(median(p[1] for p in points))
            if typical <= 0:
                continue
            found = detect_anomalies(
                timestamps=[p[0] for p in points], values=[p[1] for p in points],
                missing_as_zero=False, min_impact=PERCENTILE_MIN_IMPACT_HOURS * typical)
            for anomaly in found:
                if (anomaly.kind not in PERCENTILE_KINDS
                        or anomaly.end + _HOUR < end - RECENT or anomaly.start < points[0][0]):
                    continue
                _keep(session, report, project_id=project_id, key=key, metric=metric,
                      anomaly=anomaly, now=now)


def _keep(session: Session, report: DetectionReport, *, project_id: int, key: SeriesKey,
          metric: str, anomaly: Anomaly, now: datetime) -> DetectedAnomaly:
    """Record an anomaly (or find it recorded) and list it in the report."""
    row, inserted = _record(session, project_id=project_id, key=key, metric=metric,
                            anomaly=anomaly, now=now)
    report.anomalies.append(row.id)
    if inserted:
        report.new.append(row.id)
    return row


def _record(session: Session, *, project_id: int, key: SeriesKey, metric: str,
            anomaly: Anomaly, now: datetime) -> tuple[DetectedAnomaly, bool]:
    start, stop = anomaly.start, anomaly.end + _HOUR
    # What moved underneath: cost for spend and per-request cost, calls for calls, tokens
    # for per-request tokens (by model, feature, customer, and token type).
    measure = ("calls" if metric == "calls"
               else "input_tokens + output_tokens" if metric.startswith("request_tokens")
               else "cost_usd")
    before, tokens_before = repository.breakdown(
        session, project_id=project_id, series=key, measure=measure,
        start=start - BEFORE_WINDOW, end=start)
    after, tokens_after = repository.breakdown(
        session, project_id=project_id, series=key, measure=measure, start=start, end=stop)
    hours = (stop - start) / _HOUR
    explained = explain_change(
        before=before, after=after, before_hours=BEFORE_WINDOW / _HOUR, after_hours=hours,
        tokens_before=tokens_before, tokens_after=tokens_after,
        unit="" if measure != "cost_usd" else "$",
    )
    explanation = {
        "phrases": list(explained.phrases),
        "contributors": [asdict(c) for c in explained.contributors],
        "before_per_hour": explained.total_before_per_hour,
        "after_per_hour": explained.total_after_per_hour,
        "dimension_ranking": list(explained.dimension_ranking),
    }
    anomaly_id, inserted = repository.upsert_anomaly(session, values={
        "project_id": project_id, "metric": metric, "dimension": key[0], "value": key[1],
        "kind": anomaly.kind, "start_hour": start, "end_hour": anomaly.end,
        "detected_at": max(anomaly.detected_at, start), "observed": anomaly.observed,
        "expected": anomaly.expected, "lower": anomaly.lower, "upper": anomaly.upper,
        "score": anomaly.score, "impact": anomaly.impact, "explanation": explanation,
        "updated_at": now,
    })
    row = session.get(DetectedAnomaly, anomaly_id, populate_existing=True)
    assert row is not None
    return row, inserted


def _alert(session: Session, *, project_id: int, candidates: list[DetectedAnomaly],
           now: datetime) -> list[int]:
    """One alert per episode: the whole project's anomaly leads (its message names the
    cause); a dimension's own anomaly alerts only when nothing overlapping did."""
    channels = anomaly_channel_ids(session, project_id=project_id)
    fired: list[int] = []
    candidates.sort(key=lambda a: (a.dimension != "project", -a.impact))
    for row in candidates:
        window_end = row.end_hour + _HOUR
        if alerts_repo.overlapping_anomaly_alert(session, project_id=project_id,
                                                 start=row.start_hour, end=window_end):
            continue
        alert = alerts.fire_once(session, project_id=project_id, spec=_spec(row),
                                 channel_ids=channels, now=now)
        if alert is not None:
            fired.append(alert.id)
    return fired


def _series_name(row: DetectedAnomaly) -> str:
    return "the project" if row.dimension == "project" else f"{row.dimension} {row.value}"


def _spec(row: DetectedAnomaly) -> AlertSpec:
    ratio = row.observed / row.expected if row.expected > 0 else float("inf")
    kind = {"spike": "Spend spike", "level_shift": "Spend jump", "creep": "Spend creep",
            "drop": "Spend drop"}.get(row.kind, "Spend anomaly")
    times = f" x{ratio:.1f}" if ratio != float("inf") else ""
    cause = likely_cause(row)
    headline = (f"Spend of *{_series_name(row)}* is *${row.observed:,.2f}/h* against an "
                f"expected ${row.expected:,.2f}/h (normal up to ${row.upper:,.2f}/h) since "
                f"{row.start_hour:%a %d %b %H:00} UTC: *+${row.impact:,.2f}* so far.")
    if cause:
        headline += f" Likely cause: {cause[0]}."
    summary: dict[str, Any] = {
        "headline": headline, "severity": "warning",
        "facts": [["Observed", f"${row.observed:,.2f}/h"],
                  ["Expected", f"${row.expected:,.2f}/h (up to ${row.upper:,.2f}/h)"],
                  ["Extra spend", f"${row.impact:,.2f}"],
                  ["Kind", row.kind.replace("_", " ")]],
        "contributors": cause[:5],
        "window": f"{row.start_hour:%Y-%m-%d %H:00} → {row.end_hour + _HOUR:%Y-%m-%d %H:00} UTC",
        "query": f"GET /v1/anomalies/{row.id}",
    }
    return AlertSpec(
        rule="anomaly",
        dedupe_key=(f"anomaly:spend:{row.dimension}:{row.value}:"
                    f"{row.start_hour.isoformat()}"),
        title=f"{kind}{times}: {_series_name(row)}", summary=summary, anomaly_id=row.id,
        window_start=row.start_hour, window_end=row.end_hour + _HOUR,
    )


def likely_cause(row: DetectedAnomaly) -> list[str]:
    return [str(p) for p in row.explanation.get("phrases", [])]


def to_out(row: DetectedAnomaly) -> AnomalyOut:
    return AnomalyOut(
        id=row.id, metric=row.metric, dimension=row.dimension, value=row.value, kind=row.kind,
        start_hour=row.start_hour, end_hour=row.end_hour, detected_at=row.detected_at,
        observed=row.observed, expected=row.expected, lower=row.lower, upper=row.upper,
        score=row.score, impact=row.impact, likely_cause=likely_cause(row),
        explanation=row.explanation,
    )


def list_anomalies(session: Session, *, project_id: int, since: datetime | None = None,
                   metric: str | None = None, dimension: str | None = None,
                   limit: int = 100) -> list[AnomalyOut]:
    return [to_out(r) for r in repository.list_anomalies(
        session, project_id=project_id, since=since, metric=metric, dimension=dimension,
        limit=limit)]


def get_anomaly(session: Session, *, project_id: int, anomaly_id: int) -> AnomalyOut:
    row = session.get(DetectedAnomaly, anomaly_id)
    if row is None or row.project_id != project_id:
        raise AnomalyNotFound(f"no anomaly with id {anomaly_id}", field="anomaly_id")
    return to_out(row)
