"""p99 per-request cost regression: the tail of what one user-facing request costs grew.

Per feature (and for the whole project), the p99 of per-request cost over the last
``window`` is compared with its p99 over the ``baseline`` before it, both from the merged
request histograms (1 % accurate). It fires once per feature and day when the recent p99
is at least ``ratio`` times the baseline and both windows hold enough requests; it
resolves when the recent p99 is back within ``recover_ratio`` of the baseline.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from services.alerts import service as alerts
from services.alerts.service import AlertSpec
from services.analytics.sketch import LogHistogram
from services.channels.repository import anomaly_channel_ids
from services.models import Alert
from services.rollups.sql import ZERO_KEY

RULE = "p99_request_cost_regression"
WHOLE_PROJECT = "*"


@dataclass(frozen=True, slots=True)
class P99Policy:
    window: timedelta = timedelta(hours=24)
    baseline: timedelta = timedelta(days=7)
    ratio: float = 1.5
    recover_ratio: float = 1.15
    min_requests: int = 50


@dataclass
class P99Report:
    fired: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def _histograms(
    session: Session, *, project_id: int, start: datetime, end: datetime
) -> dict[str, LogHistogram]:
    """Per feature, and for the whole project, the request-cost histogram over [start, end)."""
    counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    rows = session.execute(
        text("""
        select r.feature, u.k, sum(u.n)::bigint
        from request_rollups r, unnest(r.request_cost_keys, r.request_cost_counts) as u(k, n)
        where r.project_id = :p and r.grain = 1 and r.hour >= :a and r.hour < :b
        group by 1, 2"""),
        {"p": project_id, "a": start, "b": end},
    )
    for feature, key, n in rows:
        counts[feature][key] += n
        counts[WHOLE_PROJECT][key] += n
    out = {}
    for name, buckets in counts.items():
        zero = buckets.pop(ZERO_KEY, 0)
        keys = sorted(buckets)
        out[name] = LogHistogram.from_sparse(keys, [buckets[k] for k in keys], zero)
    return out


def _label(feature: str) -> str:
    return "the whole project" if feature == WHOLE_PROJECT else f"feature {feature or '(none)'}"


def _spec(
    feature: str, *, now: datetime, policy: P99Policy, recent: LogHistogram, base: LogHistogram
) -> AlertSpec:
    p99_now, p99_base = recent.quantile(0.99), base.quantile(0.99)
    p50_now, p50_base = recent.quantile(0.5), base.quantile(0.5)
    times = p99_now / p99_base if p99_base else float("inf")
    feature_query = "" if feature == WHOLE_PROJECT else f"&feature={feature}"
    summary: dict[str, Any] = {
        "severity": "warning",
        "headline": (
            f"p99 cost of one request for {_label(feature)} is ${p99_now:.4f}, "
            f"x{times:.1f} its level of the previous {policy.baseline.days} days "
            f"(${p99_base:.4f})."
        ),
        "facts": [
            ["p99 per request", f"${p99_now:.4f} (was ${p99_base:.4f})"],
            ["p50 per request", f"${p50_now:.4f} (was ${p50_base:.4f})"],
            [
                "requests",
                f"{recent.count:,} in the last {policy.window.total_seconds() / 3600:.0f} h",
            ],
        ],
        "window": f"{(now - policy.window):%Y-%m-%d %H:%M} → {now:%Y-%m-%d %H:%M} UTC",
        "query": (
            f"GET /v1/percentiles?metric=request_cost&q=0.5,0.99&interval=hour{feature_query}"
        ),
        "p99_now": p99_now,
        "p99_baseline": p99_base,
    }
    return AlertSpec(
        rule=RULE,
        dedupe_key=f"{RULE}:{feature}:{now:%Y-%m-%d}",
        title=f"p99 request cost x{times:.1f}: {_label(feature)}",
        summary=summary,
        window_start=now - policy.window,
        window_end=now,
    )


def evaluate_p99_regressions(
    session: Session, *, project_id: int, now: datetime, policy: P99Policy | None = None
) -> P99Report:
    policy = policy or P99Policy()
    hour = now.replace(minute=0, second=0, microsecond=0)  # whole rolled-up hours only
    recent = _histograms(session, project_id=project_id, start=hour - policy.window, end=hour)
    base = _histograms(
        session,
        project_id=project_id,
        start=hour - policy.window - policy.baseline,
        end=hour - policy.window,
    )
    channels = anomaly_channel_ids(session, project_id=project_id)
    report = P99Report()
    firing = {
        alert.dedupe_key.split(":")[1]: alert
        for alert in session.scalars(
            select(Alert).where(
                Alert.project_id == project_id, Alert.rule == RULE, Alert.status == "firing"
            )
        )
    }
    for feature, now_hist in recent.items():
        base_hist = base.get(feature)
        if (
            base_hist is None
            or now_hist.count < policy.min_requests
            or base_hist.count < policy.min_requests
        ):
            continue
        p99_now, p99_base = now_hist.quantile(0.99), base_hist.quantile(0.99)
        if p99_base > 0 and p99_now >= policy.ratio * p99_base and feature not in firing:
            alert = alerts.fire_once(
                session,
                project_id=project_id,
                channel_ids=channels,
                now=now,
                spec=_spec(feature, now=now, policy=policy, recent=now_hist, base=base_hist),
            )
            if alert is not None:
                report.fired.append(alert.id)
        elif feature in firing and p99_now <= policy.recover_ratio * p99_base:
            resolution = (
                f"p99 cost of one request for {_label(feature)} is back to "
                f"${p99_now:.4f} (baseline ${p99_base:.4f})."
            )
            if alerts.resolve(
                session, alert=firing[feature], now=now, resolution=resolution, channel_ids=channels
            ):
                report.resolved.append(firing[feature].id)
    return report
