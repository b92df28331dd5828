"""Anomalies in hourly series (spend, calls, p50/p99 per-request tokens or cost), and what
changed between two windows.

Baseline (causal: an hour is judged only on earlier hours, so a batch run reports exactly
what an hourly job would have): the same hour of the week and its two neighbouring hours
over the previous 2-4 weeks, or, while there are fewer than two weeks, the same hour of the
day and neighbours over the previous 3-7 days. Expected value = trimmed mean; spread = the
largest of the neighbours' MAD, a noise model fitted on the recent past
(``variance = a*e + b^2*e^2``: few calls of uneven cost, plus multiplicative noise) and the
day-to-day variation of whole days. Each hour gets a robust score
``(observed - expected) / spread``.

Rules, from sharp to slow:

* spike / drop: one hour, or a burst of ``burst_hours``, scoring beyond ``spike_score``,
  a bar raised for series whose own recent past shows heavier tails (``tail_factor`` x the
  ``tail_quantile`` of the last ``tail_days`` days' scores). Drops need two weeks of
  history: before that a weekend is indistinguishable from an outage;
* level_shift: persistence, either ``shift_k`` of the last ``shift_m`` hours beyond
  ``shift_score`` with their summed excess beyond ``shift_window_z`` (hours of one day
  share its ups and downs, so a bad day alone does not pass), or the total of the last
  24 h / 72 h against its expectation beyond ``day_z`` / ``three_day_z`` (z of that log
  ratio against its own recent history, the scale no less than the day-to-day noise
  implies). One shift is one event: it lasts while a window z stays beyond ``keep_z``
  and re-firings within ``merge_gap_hours`` extend it. Needs two weeks of history
  (hour-of-week);
* creep, two ways, with no recent level shift to explain it; upward only:
  - the last week ``creep_relative`` above expectation, still rising (``creep_rise``
    above the previous week's excess) and significant against day-to-day noise
    (``creep_z``);
  - a one-sided CUSUM (Page) of whole days: each day's log ratio to the median of the
    same weekday over the previous four weeks, standardised by how that ratio varied
    in the three weeks before the last one (no less than week-on-week changes of whole
    days imply: three weeks of history are few), accumulates what exceeds ``cusum_k`` and
    fires at ``cusum_h``. Days are capped at ``cusum_cap`` so one runaway day cannot
    pass for creep; a run of small rises, each within a day's noise, adds up. Needs
    three weeks of history.

Given hourly call ``counts`` (spend, tokens: amounts that are calls x amount per call), the
rules read the count-explained amount, calls x the cost per call of the previous week: a
few calls of uneven cost are noise, more calls are not, and the spread is at least the
Poisson spread of the expected calls (plus one call: at a few calls an hour, three in one
hour is luck). That amount follows a change in the cost per call only as the weekly cost
per call catches up (days), so a second signal watches the cost per call itself: the
median over the last 3, 24 and 72 hours of each hour's cost per call against the same
hour of the previous days. One expensive call moves one hour of it; every call getting
dearer (another model, longer prompts) moves all of them, and is reported as a level
shift within hours (at a few calls an hour, within a day or two: the 72 h window).
Impacts are still measured on the amounts.

An event is reported only once its cumulative ``|observed - expected|`` reaches
``min_impact`` (in the series' unit, e.g. dollars); ``detected_at`` is the hour at which
both its rule and that impact were met, i.e. when an hourly job would have raised it.
Thresholds were set on the tuning seeds of ``bench/anomaly_eval.py``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "Anomaly",
    "AnomalyConfig",
    "ChangeExplanation",
    "Contributor",
    "detect_anomalies",
    "explain_change",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
AnomalyKind = Literal["spike", "level_shift", "creep", "drop"]

_HOUR = timedelta(hours=1)
_WEEK = 168
_DAY = 24
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    """Detection thresholds. Defaults were set on the tuning seeds of bench/anomaly_eval.py."""

    baseline_weeks: int = 4
    min_baseline_days: int = 3  # no verdicts before this much history
    trim: float = 0.2  # share cut from each end for the trimmed-mean expectation
    relative_floor: float = 0.05  # spread is at least this share of the expected value
    spike_score: float = 6.0
    # A quantile that one earlier incident cannot move: at 0.999 of four weeks of hours a
    # single past spike set the bar, and a later doubling of spend went unreported.
    tail_quantile: float = 0.99
    tail_factor: float = 2.5
    tail_days: int = 28
    burst_hours: int = 3
    # Given call counts: (hours, z) windows of the median hourly cost per call against the
    # previous week's, for changes in cost per call at the same call count.
    cost_windows: tuple[tuple[int, float], ...] = ((3, 14.0), (24, 8.0), (72, 4.5))
    shift_score: float = 3.0  # short scale: shift_k of the last shift_m hours beyond it
    shift_k: int = 5
    shift_m: int = 6
    shift_window_z: float = 6.0  # and their summed excess beyond this (day noise shared)
    # Longer scales compare a window's total with its expectation, scored against how much
    # that same statistic varied over the previous weeks (so a series' own day-to-day
    # noise sets the bar): z of the 24 h and 72 h windows.
    day_z: float = 6.0
    three_day_z: float = 6.0
    keep_z: float = 2.0  # a shift lasts while a window z stays beyond this
    transient_hours: int = 12  # a shift that is over within this was a spike or drop
    window_history_days: int = 21
    merge_gap_hours: int = 48
    creep_window_hours: int = 168
    creep_z: float = 3.0
    creep_relative: float = 0.25  # and at least this much above expectation
    creep_rise: float = 0.1  # and this much above the previous window's excess
    creep_quiet_days: int = 28  # after a level shift the baseline is mixed for ~4 weeks
    cusum_k: float = 0.5  # allowance per day, in day-to-day sigmas
    cusum_h: float = 10.0  # decision level, in accumulated sigmas
    cusum_cap: float = 3.0  # no one day counts for more than this many sigmas


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomalous episode. ``start``/``end`` are the first and last anomalous hour
    (bucket starts, inclusive); ``detected_at`` is the hour whose data made it reportable.
    ``observed``/``expected``/``lower``/``upper`` are per-hour means over the episode
    (bounds at ``spike_score`` spreads); ``impact`` is ``observed - expected`` summed over
    its hours; ``score`` is the peak robust score for a spike or drop and the median score
    for a level shift or creep (signed). Re-running on more hours keeps ``detected_at`` but
    may extend ``end`` and firm up ``kind`` (a sharp rise first reads as a spike; a shift
    that keeps climbing becomes creep), so identify an episode by its sign and detection
    hour rather than by kind."""

    kind: AnomalyKind
    start: datetime
    end: datetime
    detected_at: datetime
    observed: float
    expected: float
    lower: float
    upper: float
    score: float
    impact: float


def detect_anomalies(
    *,
    timestamps: Sequence[datetime] | npt.NDArray[np.datetime64],
    values: npt.ArrayLike,
    counts: npt.ArrayLike | None = None,
    min_impact: float = 0.0,
    missing_as_zero: bool = True,
    config: AnomalyConfig | None = None,
) -> tuple[Anomaly, ...]:
    """Find spikes, drops, level shifts and creep in an hourly series.

    ``timestamps`` are hour bucket starts (any order; duplicates are summed). Hours missing
    between the first and last one count as 0 when ``missing_as_zero`` (spend, calls) and
    as unknown otherwise (percentiles). ``min_impact`` is the smallest
    ``|sum(observed - expected)|`` worth reporting, in the series' unit. ``counts`` are the
    hourly call counts on the same ``timestamps`` (additive series only, not percentiles):
    with them one expensive call among a handful is not read as a runaway spike, while a
    cost per call that rose for every call is still a level shift. Returns anomalies
    ordered by start.
    """
    cfg = config or AnomalyConfig()
    if min_impact < 0:
        raise ValueError("min_impact must be non-negative")
    origin, y = _hourly_grid(timestamps, values, missing_as_zero=missing_as_zero)
    if y.size == 0:
        return ()
    signal = y
    dearer: list[_Event] = []
    if counts is not None:
        _, calls = _hourly_grid(timestamps, counts, missing_as_zero=missing_as_zero)
        if calls.size != y.size:
            raise ValueError("counts must cover the same hours as values")
        signal, per_call = _count_explained(y, calls)
        dearer = _cost_per_call_changes(y, calls, per_call, cfg)
    expected, spread, day_part, day_sigma = _baseline(signal, cfg)
    if counts is not None:
        spread = _at_least_poisson(spread, expected, per_call)
    score = _robust_score(signal, expected, spread)

    capped = np.clip(signal, expected - 3 * spread, expected + 3 * spread)
    window_z = {
        w: _window_z(capped, expected, hours=w, cfg=cfg, day_sigma=day_sigma)
        for w in (_DAY, 3 * _DAY)
    }
    short_z = _window_excess_z(signal, expected, spread, day_part, hours=cfg.shift_m)
    shifts = _level_shifts(score, short_z, window_z, cfg)
    spikes = _spikes_and_drops(signal, expected, spread, day_part, cfg)
    events: list[_Event] = [*shifts, *_outside_shifts(spikes, shifts, lead=cfg.shift_m)]
    events.extend(_creep(capped, expected, cfg, shifts))
    events.extend(_cusum_creep(y, cfg, [*shifts, *dearer]))
    for event in shifts:
        _reshape(event, capped=capped, expected=expected, cfg=cfg)
    if dearer:
        events = _absorb(dearer, events, gap=cfg.merge_gap_hours, n=y.size, cfg=cfg)
    events.sort(key=lambda e: (e.start, e.end))
    events = _one_per_episode(events, gap=cfg.merge_gap_hours)

    out: list[Anomaly] = []
    for event in events:
        anomaly = _finish(
            event,
            y=y,
            expected=expected,
            spread=spread,
            score=score,
            origin=origin,
            min_impact=min_impact,
            cfg=cfg,
        )
        if anomaly is not None:
            out.append(anomaly)
    return tuple(out)


def _robust_score(y: FloatArray, expected: FloatArray, spread: FloatArray) -> FloatArray:
    """``(y - expected) / spread``, NaN wherever any of them is unknown."""
    known = np.isfinite(y) & np.isfinite(expected) & np.isfinite(spread) & (spread > 0)
    score: FloatArray = np.full(y.size, np.nan)
    score[known] = (y[known] - expected[known]) / spread[known]
    return score


def _count_explained(y: FloatArray, calls: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The part of an hour's amount that its call count explains: calls x the cost per call
    of the previous week (causal). What a few calls of uneven cost add on top is noise to
    the rules; more calls, or a cost per call that stays higher, is not. Hours whose last
    week had no calls keep their own amount."""
    known = np.isfinite(y) & np.isfinite(calls)
    spent = _trailing_sum(np.where(known, y, 0.0), _DAY)
    made = _trailing_sum(np.where(known, calls, 0.0), _DAY)
    daily = np.full(y.size, np.nan)
    np.divide(spent, made, out=daily, where=made > 0)
    # The median of the seven 24 h costs per call ending 1, 25, ... 145 hours ago: causal,
    # and one very expensive call moves one of them, not the week's cost per call.
    n = y.size
    lagged = np.full((7, n), np.nan)
    for k in range(7):
        lag = 1 + k * _DAY
        lagged[k, lag:] = daily[: max(0, n - lag)]
    seen = np.isfinite(lagged)
    per_call = np.full(n, np.nan)
    some = seen.any(axis=0)
    if some.any():
        per_call[some] = np.nanmedian(lagged[:, some], axis=0)
    explained: FloatArray = np.where(np.isfinite(per_call), calls * per_call, y)
    return np.where(known, explained, np.nan), per_call


def seasonal_baseline(
    y: FloatArray, *, config: AnomalyConfig | None = None
) -> tuple[FloatArray, FloatArray]:
    """Causal robust baseline of an hourly series on a regular grid: expected value and
    spread (MAD as a standard deviation, floored) for every hour, NaN where history is too
    short. Hour-of-week neighbours over up to ``baseline_weeks`` weeks once two weeks are
    available, hour-of-day neighbours over up to seven days before that."""
    expected, spread, _, _ = _baseline(y, config or AnomalyConfig())
    return expected, spread


def _at_least_poisson(spread: FloatArray, expected: FloatArray, per_call: FloatArray) -> FloatArray:
    """The count-explained amount is calls x the cost of one call, and calls are Poisson:
    its spread is at least one call's cost x sqrt(expected calls + 1), the Poisson part
    plus one call for not knowing the expected count exactly. At a few calls an hour the
    baseline (a trimmed mean of a dozen hours that mostly saw 0 or 1 call) and the fitted
    noise model both understate this, and an hour with a handful of calls passed for a
    spike."""
    unit = np.where(np.isfinite(per_call) & (per_call > 0), per_call, np.nan)
    calls = np.clip(np.nan_to_num(expected / unit, nan=0.0), 0.0, None)
    least = np.nan_to_num(unit * np.sqrt(calls + 1.0), nan=0.0)
    out: FloatArray = np.where(np.isfinite(spread), np.fmax(spread, least), spread)
    return out


def _baseline(
    y: FloatArray, cfg: AnomalyConfig
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Expected value, spread, the day-level part of the spread (shared by all hours of a
    day, so it does not shrink when hours are summed), and that day-level noise as a
    relative sigma (of log day totals; NaN until a week of whole days measures it)."""
    n = y.size
    t = np.arange(n)
    weekly_lags = [_WEEK * k + j for k in range(1, cfg.baseline_weeks + 1) for j in (-1, 0, 1)]
    daily_lags = [_DAY * k + j for k in range(1, 8) for j in (-1, 0, 1)]
    expected = np.full(n, np.nan)
    spread = np.full(n, np.nan)
    # Each mode only where it applies; lags before the start of the series are NaN.
    for lags, rows in (
        (weekly_lags, t >= 2 * _WEEK),
        (daily_lags, (t < 2 * _WEEK) & (t >= cfg.min_baseline_days * _DAY)),
    ):
        idx = np.nonzero(rows)[0]
        if idx.size == 0:
            continue
        source = idx[:, None] - np.asarray(lags)[None, :]
        window = np.where(source >= 0, y[np.clip(source, 0, None)], np.nan)
        enough = np.sum(np.isfinite(window), axis=1) >= 4
        idx, window = idx[enough], window[enough]
        if idx.size == 0:
            continue
        med = np.nanmedian(window, axis=1)
        mad = np.nanmedian(np.abs(window - med[:, None]), axis=1)
        # A trimmed mean, not the median: spend per hour is skewed (at low volume most
        # hours are near zero and a few carry the calls), and the median would then sit
        # below what is normally spent, making ordinary hours look like excess.
        expected[idx] = _trimmed_mean(window, cfg.trim)
        spread[idx] = _MAD_TO_SIGMA * mad
    # Few neighbours understate the noise of a low-volume series (a handful of calls an
    # hour, each of a skewed cost), so the spread is at least what a noise model fitted on
    # the recent past says: variance = a * expected + (b * expected)^2, the compound-Poisson
    # and multiplicative parts of call-by-call spend.
    spread = np.fmax(spread, _noise_model_spread(y, expected))
    # Neighbouring hours share their day's ups and downs, so a handful of weeks understates
    # day-to-day variation; measure it from whole days instead.
    day_sigma = _day_to_day_sigma(y, expected)
    day_part = np.abs(expected) * day_sigma
    spread = np.fmax(spread, day_part)
    # Floors: a flat history must not make every wiggle infinitely surprising.
    typical = _rolling_typical(y)
    floor = np.maximum(cfg.relative_floor * np.abs(expected), 0.02 * typical)
    spread = np.where(np.isfinite(spread), np.maximum(spread, floor), np.nan)
    spread = np.where(spread > 0, spread, np.nan)
    # Until a week of whole days measures it, assume the worst: hours move together.
    day_part = np.where(np.isfinite(day_part), np.fmin(day_part, spread), spread)
    return expected, spread, np.where(np.isfinite(spread), day_part, 0.0), day_sigma


def _day_to_day_sigma(y: FloatArray, expected: FloatArray) -> FloatArray:
    """Robust spread of log(day total / expected day total) over the previous 21 days, for
    every hour (causal, refreshed daily); NaN where fewer than seven days are known.

    It is at least what the week-on-week changes of whole days over the same 21 days
    imply (their spread / sqrt(2)): in a series' third and fourth weeks the ratios to
    the weekly baseline are only a week or so of values, whose MAD is often far too
    small, and single ordinary days passed for level shifts."""
    n = y.size
    out = np.full(n, np.nan)
    days = n // _DAY
    valid = np.isfinite(y) & np.isfinite(expected)
    ratios = np.full(days, np.nan)
    for d in range(days):
        block = slice(d * _DAY, (d + 1) * _DAY)
        ok = valid[block]
        if ok.sum() >= 20:
            total_e = float(expected[block][ok].sum())
            total_y = float(y[block][ok].sum())
            if total_e > 0 and total_y > 0:
                ratios[d] = math.log(total_y / total_e)
    totals = np.nansum(y[: days * _DAY].reshape(days, _DAY), axis=1)
    weekly = _week_on_week(totals)
    for d in range(days + 1):
        past = ratios[_same_mode_start(max(0, d - 21), d, need=7, weekly_from=14) : d]
        past = past[np.isfinite(past)]
        if past.size >= 7:
            sigma = _mad_sigma(past)
            changes = weekly[max(0, d - 21) : d]
            changes = changes[np.isfinite(changes)]
            if changes.size >= 7:
                sigma = max(sigma, _mad_sigma(changes) / math.sqrt(2))
            out[d * _DAY : (d + 1) * _DAY] = sigma
    return out


def _same_mode_start(lo: int, end: int, *, need: int, weekly_from: int = 2 * _WEEK) -> int:
    """Where the history ``[lo, end)`` used to calibrate noise should begin: hour-of-day
    baselines (before two weeks) miss weekends, so their residuals would inflate the noise
    of the hour-of-week phase; skip them once ``need`` same-phase points exist."""
    if end - max(lo, weekly_from) >= need:
        return max(lo, weekly_from)
    return lo


def _trimmed_mean(window: FloatArray, trim: float) -> FloatArray:
    """Row-wise mean after dropping the ``trim`` share of lowest and highest valid values."""
    ordered = np.sort(window, axis=1)  # NaN sort last
    valid = np.sum(np.isfinite(ordered), axis=1)
    cut = np.floor(trim * valid)
    position = np.arange(ordered.shape[1])[None, :]
    keep = (position >= cut[:, None]) & (position < (valid - cut)[:, None])
    total = np.sum(np.where(keep, ordered, 0.0), axis=1)
    mean: FloatArray = total / np.maximum(keep.sum(axis=1), 1)
    return mean


def _noise_model_spread(y: FloatArray, expected: FloatArray) -> FloatArray:
    """Spread from ``variance = a*e + b^2*e^2`` fitted each day on the previous 14 days of
    residuals (robustly, by expected-value bins), so it stays causal."""
    n = y.size
    out = np.full(n, np.nan)
    residual = y - expected
    for day_start in range(0, n, _DAY):
        lo = _same_mode_start(max(0, day_start - 14 * _DAY), day_start, need=7 * _DAY)
        e = expected[lo:day_start]
        r = residual[lo:day_start]
        ok = np.isfinite(e) & np.isfinite(r)
        if ok.sum() < 48:
            continue
        e, r = e[ok], r[ok]
        order = np.argsort(e)
        bins = np.array_split(order, 8)
        centre = np.array([np.median(e[b]) for b in bins])
        sigma = np.array([_MAD_TO_SIGMA * np.median(np.abs(r[b])) for b in bins])
        design = np.column_stack([centre, centre**2])
        coef = _non_negative_fit(design, sigma**2)
        hours = slice(day_start, min(n, day_start + _DAY))
        eh = np.clip(expected[hours], 0.0, None)
        out[hours] = np.sqrt(coef[0] * eh + coef[1] * eh**2)
    return out


def _non_negative_fit(design: FloatArray, target: FloatArray) -> FloatArray:
    """Least squares with both coefficients kept non-negative (two-parameter case)."""
    coef: FloatArray = np.linalg.lstsq(design, target, rcond=None)[0].astype(np.float64)
    if (coef >= 0).all():
        return coef
    best = np.zeros(2)
    best_err = float(np.sum(target**2))
    for j in range(2):
        col = design[:, j]
        denom = float(col @ col)
        if denom <= 0:
            continue
        c = max(0.0, float(col @ target) / denom)
        err = float(np.sum((target - c * col) ** 2))
        if err < best_err:
            best_err = err
            best = np.zeros(2)
            best[j] = c
    return best


# -- rules -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Event:
    kind: AnomalyKind  # mutable: a shift may be renamed once its shape is known
    start: int
    end: int
    confirmed: int  # hour the rule fired
    sign: int


def _window_z(
    capped: FloatArray,
    expected: FloatArray,
    *,
    hours: int,
    cfg: AnomalyConfig,
    day_sigma: FloatArray,
) -> FloatArray:
    """z-score of log(window total / expected window total) for the ``hours`` ending at
    each hour, centred and scaled by the same statistic over the previous weeks (median and
    MAD, refreshed daily). Observations come capped at 3 spreads so that one spike cannot
    pass for a shift. NaN where there is not enough history.

    The scale is at least what independent day-to-day noise implies for a window of that
    many days (``day_sigma / sqrt(days)``): early on, the history holds a week or two of
    overlapping windows, a handful of independent values whose MAD understates the noise,
    and ordinary days in a series' third and fourth weeks passed for level shifts."""
    n = capped.size
    valid = np.isfinite(capped) & np.isfinite(expected)
    # A small pseudo-count keeps near-empty windows from producing huge log ratios.
    typical = float(np.median(expected[valid])) if valid.any() else 0.0
    pseudo = 0.05 * typical * hours if typical > 0 else 1.0
    log_ratio = _window_log_ratio(capped, expected, hours=hours, pseudo=pseudo)
    z = np.full(n, np.nan)
    lookback = cfg.window_history_days * _DAY
    for day_start in range(0, n, _DAY):
        lo = _same_mode_start(
            max(0, day_start - lookback),
            day_start,
            need=7 * _DAY,
            weekly_from=2 * _WEEK + hours - 1,  # windows wholly on hour-of-week baselines
        )
        floor = 0.0
        if day_start < n and np.isfinite(day_sigma[day_start]):
            floor = float(day_sigma[day_start]) * math.sqrt(_DAY / hours)
        _standardise_day(
            z,
            log_ratio,
            past=log_ratio[lo:day_start],
            day_start=day_start,
            need=4 * _DAY,
            floor=floor,
        )
    return z


def _window_log_ratio(
    y: FloatArray, expected: FloatArray, *, hours: int, pseudo: float = 0.0
) -> FloatArray:
    """log((observed + pseudo) / (expected + pseudo)) over the trailing ``hours`` window;
    NaN unless 80 % of its hours are known."""
    valid = np.isfinite(y) & np.isfinite(expected)
    observed = _trailing_sum(np.where(valid, np.maximum(y, 0.0), 0.0), hours)
    wanted = _trailing_sum(np.where(valid, expected, 0.0), hours)
    known = _trailing_sum(valid.astype(np.float64), hours)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.log((observed + pseudo) / (wanted + pseudo))
    out: FloatArray = np.where(known >= 0.8 * hours, ratio, np.nan)
    return out


def _level_shifts(
    score: FloatArray,
    short_z: FloatArray,
    window_z: Mapping[int, FloatArray],
    cfg: AnomalyConfig,
) -> list[_Event]:
    n = score.size
    events: list[_Event] = []
    day = np.nan_to_num(window_z[_DAY], nan=0.0)
    three_days = np.nan_to_num(window_z[3 * _DAY], nan=0.0)
    # Persistence needs hour-of-week baselines for the whole window: before two weeks, a
    # weekend already looks like a drop on an hour-of-day baseline.
    t = np.arange(n)
    weekly = {h: t >= 2 * _WEEK + h - 1 for h in (cfg.shift_m, _DAY, 3 * _DAY)}
    for sign in (1, -1):
        s = sign * np.nan_to_num(score, nan=0.0)
        # Most of the last hours high, and their total beyond what a bad day explains
        # (hours of one day share its ups and downs).
        short = _trailing_count(s >= cfg.shift_score, cfg.shift_m) >= cfg.shift_k
        short &= sign * np.nan_to_num(short_z, nan=0.0) >= cfg.shift_window_z
        short &= weekly[cfg.shift_m]
        by_day = (sign * day >= cfg.day_z) & weekly[_DAY]
        by_days = (sign * three_days >= cfg.three_day_z) & weekly[3 * _DAY]
        fire = short | by_day | by_days
        keep = fire | (sign * day >= cfg.keep_z) | (sign * three_days >= cfg.keep_z)

        # The onset is sought over the window that fired, plus a day.
        spans = np.where(short, cfg.shift_m, np.where(by_day, _DAY, 3 * _DAY)) + _DAY
        # Window statistics lag; the tail is trimmed back to the last hour that was high.
        events += _episodes(fire, keep, sign=sign, signed=s, spans=spans, cfg=cfg, trim=True)
    return events


def _episodes(
    fire: BoolArray,
    keep: BoolArray,
    *,
    sign: int,
    signed: FloatArray,
    spans: npt.NDArray[np.int64],
    cfg: AnomalyConfig,
    trim: bool = False,
) -> list[_Event]:
    """Level-shift episodes of one sign: each begins at the onset (``_onset`` of the
    ``signed`` scores over ``spans[hour]`` hours) of the hour a rule fired and lasts while
    ``keep`` holds (with ``trim``, cut back to the last hour whose signed score was at
    least 1); a re-firing within ``merge_gap_hours`` extends the previous one."""
    n = fire.size
    events: list[_Event] = []
    hour = 0
    while hour < n:
        if not fire[hour]:
            hour += 1
            continue
        start = _onset(signed, end=hour, span=int(spans[hour]))
        end = hour
        while end + 1 < n and keep[end + 1]:
            end += 1
        while trim and end > hour and signed[end] < 1.0:
            end -= 1
        if events and start - events[-1].end <= cfg.merge_gap_hours:
            events[-1].end = max(events[-1].end, end)
        else:
            events.append(_Event("level_shift", start, end, hour, sign))
        hour = end + 1
    return events


def _reshape(
    event: _Event, *, capped: FloatArray, expected: FloatArray, cfg: AnomalyConfig
) -> None:
    """Name a persistent change by its shape: back to normal within ``transient_hours`` is
    a spike or drop; a ramp rather than a step (judged on blocks of 6 h from before its
    start to a week after it fired) is creep, starting where the ramp leaves the flat.
    So a kind can firm up as hours arrive."""
    n = capped.size
    if event.end < n - 1 and event.end - event.start + 1 <= cfg.transient_hours:
        event.kind = "spike" if event.sign > 0 else "drop"
        return
    block = 6
    # Judge on the days up to a week after firing: a ramp needs time to show...
    last = min(event.end, event.confirmed + _WEEK)
    # ... and back to well before the estimated start, so a ramp shows its flat beginning.
    first = max(0, min(last + 1 - _WEEK, event.start - 3 * _DAY))
    if first < _WEEK:
        return
    # Against the baseline as it stood when the window opened: the live baseline takes in
    # part of the change week by week, which would bend a step and flatten a ramp.
    frozen = expected.copy()
    hours = np.arange(first, last + 1)
    frozen[hours] = expected[first - _WEEK + (hours - first) % _WEEK]
    ratio = _window_log_ratio(capped, frozen, hours=block)[first + block - 1 : last + 1]
    ratio = ratio[::-1][::block][::-1]  # non-overlapping blocks ending at ``last``
    ok = np.isfinite(ratio)
    if ok.sum() < 8:
        return
    x = np.nonzero(ok)[0].astype(np.float64)
    v = ratio[ok]
    step_err, ramp_err, ramp_from = math.inf, math.inf, 0
    for k in range(2, v.size):
        before, after = v[:k], v[k:]
        step_err = min(
            step_err,
            float(np.sum((before - before.mean()) ** 2) + np.sum((after - after.mean()) ** 2)),
        )
        # Hinge: flat, then a straight line from the flat level.
        hinge = np.clip(x - x[k - 1], 0.0, None)
        design = np.column_stack([np.ones_like(x), hinge])
        coef = np.linalg.lstsq(design, v, rcond=None)[0]
        err = float(np.sum((v - design @ coef) ** 2))
        if err < ramp_err and event.sign * coef[1] > 0:
            ramp_err, ramp_from = err, k - 1
    onset = first + int(x[ramp_from]) * block
    # A ramp must fit clearly better and take days; a step caught mid-block looks like a
    # short ramp.
    if ramp_err < 0.7 * step_err and last - onset >= 48:
        event.kind = "creep"
        event.start = onset


def _onset(signed_score: FloatArray, *, end: int, span: int) -> int:
    """Most likely first hour of a change ending at ``end``: the start of the trailing
    segment whose (clipped) scores sum to the strongest evidence, sum / sqrt(length)."""
    first = max(0, end - span + 1)
    seg = np.clip(signed_score[first : end + 1], -3.0, 3.0)[::-1]
    strength = np.cumsum(seg) / np.sqrt(np.arange(1, seg.size + 1))
    return end - int(np.argmax(strength))


def _spikes_and_drops(
    y: FloatArray,
    expected: FloatArray,
    spread: FloatArray,
    day_part: FloatArray,
    cfg: AnomalyConfig,
) -> list[_Event]:
    """Single hours, or bursts of ``burst_hours``, far outside the baseline."""
    events: list[_Event] = []
    known = np.isfinite(y) & np.isfinite(expected) & np.isfinite(spread)
    excess = np.where(known, y - expected, 0.0)
    window_z = {
        h: _window_excess_z(y, expected, spread, day_part, hours=h) for h in (1, cfg.burst_hours)
    }
    never = np.iinfo(np.int64).max
    kinds: tuple[tuple[int, AnomalyKind], ...] = ((1, "spike"), (-1, "drop"))
    for sign, kind in kinds:
        # For each hour, the first hour at which a window holding it fired.
        fired_at = np.full(y.size, never, dtype=np.int64)
        for hours in (1, cfg.burst_hours):
            z = sign * window_z[hours]
            for t in np.nonzero(z >= _tail_threshold(z, cfg))[0].tolist():
                window = np.arange(max(0, t - hours + 1), t + 1)
                # Only the hours that carry the excess belong to the spike.
                carry = window[sign * excess[window] > 0]
                fired_at[carry] = np.minimum(fired_at[carry], t)
        hot = fired_at < never
        if sign < 0:
            # On an hour-of-day baseline every weekend looks like a drop: until two weeks
            # of history show the weekly pattern, only upward spikes are reported.
            hot[: 2 * _WEEK] = False
        for start, end in _runs(hot):
            confirmed = int(fired_at[start : end + 1].min())
            events.append(_Event(kind, start, end, confirmed, sign))
    return events


def _outside_shifts(spikes: list[_Event], shifts: list[_Event], *, lead: int) -> list[_Event]:
    """The spikes and drops that are not the sharp start of a level shift (touching it, or
    ending at most ``lead`` hours before it starts: the shift's own onset is estimated
    from the hours after the jump); a shift that starts with one is raised as early as
    the spike."""
    kept: list[_Event] = []
    for spike in spikes:
        owner = next(
            (
                e
                for e in shifts
                if e.sign == spike.sign and e.start - lead <= spike.end and spike.start <= e.end + 1
            ),
            None,
        )
        if owner is None:
            kept.append(spike)
        else:
            owner.start = min(owner.start, spike.start)
            owner.confirmed = min(owner.confirmed, spike.confirmed)
    return kept


def _cost_per_call_changes(
    y: FloatArray, calls: FloatArray, per_call: FloatArray, cfg: AnomalyConfig
) -> list[_Event]:
    """Level shifts in the cost per call, which the count-explained amount follows only as
    its weekly cost per call catches up (days). The statistic is the median, over the last
    ``hours`` hours, of each hour's cost per call against the previous week's: one expensive
    call moves one hour of it, a dearer cost per call moves all of them. It is scored
    against its own recent history (median and MAD, refreshed daily), like the window
    statistics of ``_level_shifts``, the scale no less than a median of that many
    independent hours varies. An episode lasts while a window stays beyond ``keep_z``;
    one that is over within ``transient_hours`` is a spike or drop."""
    n = y.size
    hourly = np.full(n, np.nan)
    priced = np.isfinite(y) & (y > 0) & (calls > 0)
    hourly[priced] = y[priced] / calls[priced]
    # Against the same hour of the previous seven days (median), not the week's average:
    # the mix of work, and so the cost per call, can follow the time of day.
    lagged = np.full((7, n), np.nan)
    for k in range(1, 8):
        lagged[k - 1, k * _DAY :] = hourly[: max(0, n - k * _DAY)]
    seen = np.sum(np.isfinite(lagged), axis=0) >= 4
    reference = np.full(n, np.nan)
    if seen.any():
        reference[seen] = np.nanmedian(lagged[:, seen], axis=0)
    # Hours without their own history fall back on the weekly cost per call.
    reference = np.where(np.isfinite(reference), reference, per_call)
    ok = priced & np.isfinite(reference) & (reference > 0)
    ratio = np.full(n, np.nan)
    ratio[ok] = np.log(hourly[ok] / reference[ok])
    z: dict[int, FloatArray] = {}
    hourly_sigma = _rolling_sigma(ratio, cfg)
    for hours, _ in cfg.cost_windows:
        padded = np.concatenate([np.full(hours - 1, np.nan), ratio])
        windows = sliding_window_view(padded, hours)
        enough = np.sum(np.isfinite(windows), axis=1) >= (hours + 1) // 2
        rolling = np.full(n, np.nan)
        if enough.any():
            rolling[enough] = np.nanmedian(windows[enough], axis=1)
        # A median of ``hours`` independent hours varies about 1.25 / sqrt(hours) times as
        # much as one hour; the MAD of a few weeks of overlapping windows understates it.
        floor = hourly_sigma * 1.2533 / math.sqrt(hours)
        z[hours] = _standardise(rolling, cfg, need=4 * _DAY, floor=floor)
    hourly_z = _standardise(ratio, cfg, need=4 * _DAY)
    events: list[_Event] = []
    for sign in (1, -1):
        fire = np.zeros(n, dtype=bool)
        keep = np.zeros(n, dtype=bool)
        for hours, bar in cfg.cost_windows:
            signed = sign * np.nan_to_num(z[hours], nan=0.0)
            fire |= signed >= bar
            keep |= signed >= cfg.keep_z
        fire[: 2 * _WEEK] = False  # the same warm-up as other persistent rules
        signed = sign * np.nan_to_num(hourly_z, nan=0.0)
        spans = np.full(n, 2 * _DAY)
        events += _episodes(fire, keep, sign=sign, signed=signed, spans=spans, cfg=cfg)
    for event in events:
        if event.end < n - 1 and event.end - event.start + 1 <= cfg.transient_hours:
            event.kind = "spike" if event.sign > 0 else "drop"
    return events


def _rolling_sigma(stat: FloatArray, cfg: AnomalyConfig) -> FloatArray:
    """MAD sigma of ``stat`` over the previous ``window_history_days`` days, for every hour
    (refreshed daily, causal); NaN with under four days of known values."""
    n = stat.size
    out = np.full(n, np.nan)
    lookback = cfg.window_history_days * _DAY
    for day_start in range(0, n, _DAY):
        past = stat[max(0, day_start - lookback) : day_start]
        past = past[np.isfinite(past)]
        if past.size >= 4 * _DAY:
            out[day_start : day_start + _DAY] = _mad_sigma(past)
    return out


def _standardise(
    stat: FloatArray, cfg: AnomalyConfig, *, need: int, floor: FloatArray | None = None
) -> FloatArray:
    """``(stat - centre) / scale`` with the median and MAD of the statistic over the
    previous ``window_history_days`` days, refreshed daily (causal); NaN until ``need``
    known hours of history."""
    n = stat.size
    z = np.full(n, np.nan)
    lookback = cfg.window_history_days * _DAY
    for day_start in range(0, n, _DAY):
        least = 0.0
        if floor is not None and np.isfinite(floor[day_start]):
            least = float(floor[day_start])
        _standardise_day(
            z,
            stat,
            past=stat[max(0, day_start - lookback) : day_start],
            day_start=day_start,
            need=need,
            floor=least,
        )
    return z


def _standardise_day(
    z: FloatArray,
    stat: FloatArray,
    *,
    past: FloatArray,
    day_start: int,
    need: int,
    floor: float = 0.0,
) -> None:
    """Fill the day from ``day_start`` of ``z`` with ``(stat - median) / (MAD sigma)`` of the
    known values of ``past``, the scale at least ``floor``; leave it NaN with fewer than
    ``need`` of them."""
    past = past[np.isfinite(past)]
    if past.size < need:
        return
    centre = float(np.median(past))
    scale = max(_mad_sigma(past), 0.01, floor)
    rows = slice(day_start, min(stat.size, day_start + _DAY))
    z[rows] = (stat[rows] - centre) / scale


def _absorb(
    primary: list[_Event], others: list[_Event], *, gap: int, n: int, cfg: AnomalyConfig
) -> list[_Event]:
    """One episode, one event: a cost-per-call change and what the count-explained rules
    see of it (at once if calls moved too, days later as the weekly cost per call catches
    up) are merged, keeping the earliest start and detection, and the kind of the rule
    that fired first (a step the cost-per-call windows saw is a level shift even if a
    creep rule later dates its onset earlier)."""
    merged = list(others)
    for event in primary:
        joined = [
            e
            for e in merged
            if e.sign == event.sign and e.start <= event.end + gap and event.start <= e.end + gap
        ]
        if not joined:
            merged.append(event)
            continue
        first = min(joined, key=lambda e: e.start)
        fired_first = min([event, *joined], key=lambda e: e.confirmed)
        for e in joined:
            if e is not first:
                merged.remove(e)
        first.kind = "level_shift" if fired_first.kind in ("spike", "drop") else fired_first.kind
        first.end = max(event.end, *(e.end for e in joined))
        first.start = min(event.start, first.start)
        first.confirmed = min(event.confirmed, *(e.confirmed for e in joined))
        if first.end < n - 1 and first.end - first.start + 1 <= cfg.transient_hours:
            first.kind = "spike" if first.sign > 0 else "drop"
    return merged


def _one_per_episode(events: list[_Event], *, gap: int) -> list[_Event]:
    """A lasting change found by two rules (creep that a level-shift window then confirms,
    say) is one episode: same-signed persistent events within ``gap`` hours of each other
    are merged, keeping the first start and detection and the kind of the rule that fired
    first. Spikes and drops stay apart."""
    merged: list[_Event] = []
    for event in events:
        lasting = event.kind in ("level_shift", "creep")
        last = next((e for e in reversed(merged) if e.kind in ("level_shift", "creep")), None)
        # Creep takes days to show and pauses at weekends: its episodes join over a week.
        reach = _WEEK if "creep" in (event.kind, last.kind if last else "") else gap
        if (
            lasting
            and last is not None
            and last.sign == event.sign
            and event.start - last.end <= reach
        ):
            if event.confirmed < last.confirmed:
                last.kind, last.confirmed = event.kind, event.confirmed
            last.end = max(last.end, event.end)
            continue
        merged.append(event)
    return merged


def _window_excess_z(
    y: FloatArray,
    expected: FloatArray,
    spread: FloatArray,
    day_part: FloatArray,
    *,
    hours: int,
) -> FloatArray:
    """Summed excess over the trailing ``hours`` against its own noise: hour-level noise
    adds up independently, the day-level part moves all hours together. NaN unless every
    hour of the window is known."""
    known = np.isfinite(y) & np.isfinite(expected) & np.isfinite(spread)
    excess = _trailing_sum(np.where(known, y - expected, 0.0), hours)
    own = _trailing_sum(np.where(known, np.maximum(spread**2 - day_part**2, 0.0), 0.0), hours)
    shared = _trailing_sum(np.where(known, day_part, 0.0), hours)
    variance = own + shared**2
    complete = (_trailing_sum(known.astype(np.float64), hours) == hours) & (variance > 0)
    z: FloatArray = np.full(y.size, np.nan)
    z[complete] = excess[complete] / np.sqrt(variance[complete])
    return z


def _trailing_sum(x: FloatArray, hours: int) -> FloatArray:
    total = np.concatenate([[0.0], np.cumsum(x)])
    end = np.arange(1, x.size + 1)
    out: FloatArray = total[end] - total[np.maximum(end - hours, 0)]
    return out


def _tail_threshold(
    signed: FloatArray, cfg: AnomalyConfig, *, floor: float | None = None
) -> FloatArray:
    """Spike threshold per hour: ``spike_score``, raised for series whose own recent scores
    show a heavy tail (a few calls an hour of very uneven cost): ``tail_factor`` times the
    ``tail_quantile`` of the previous ``tail_days`` days' scores, refreshed daily."""
    n = signed.size
    least = cfg.spike_score if floor is None else floor
    out = np.full(n, least)
    finite = np.where(np.isfinite(signed), signed, np.nan)
    for day_start in range(0, n, _DAY):
        past = finite[max(0, day_start - cfg.tail_days * _DAY) : day_start]
        past = past[np.isfinite(past)]
        if past.size < 2 * _DAY:
            continue
        ref = float(np.quantile(past, cfg.tail_quantile))
        out[day_start : day_start + _DAY] = max(least, cfg.tail_factor * ref)
    return out


def _creep(
    y: FloatArray,
    expected: FloatArray,
    cfg: AnomalyConfig,
    shifts: list[_Event],
) -> list[_Event]:
    """Slow upward drift: the last ``creep_window_hours`` run ``creep_relative`` above
    expectation and ``creep_rise`` above where the previous window stood, significant
    against day-to-day noise measured before the window (a t-statistic over the window's
    days), with no level shift to explain it. Upward only: a slow decline is good news for
    a budget, and sharp or lasting falls are still reported as drops and level shifts."""
    n = y.size
    w = cfg.creep_window_hours
    days_in_window = max(1, w // _DAY)
    day_ratio = _window_log_ratio(y, expected, hours=_DAY)  # each hour: its last 24 h
    window_ratio = _window_log_ratio(y, expected, hours=w)
    lookback = cfg.window_history_days * _DAY
    z = np.full(n, np.nan)
    for day_start in range(0, n, _DAY):
        # Day-to-day noise from whole days ending before the window.
        past = day_ratio[max(0, day_start - w - lookback) : max(0, day_start - w)][::_DAY]
        past = past[np.isfinite(past)]
        if past.size < 7:
            continue
        sigma = max(_mad_sigma(past), 0.01)
        rows = slice(day_start, min(n, day_start + _DAY))
        z[rows] = window_ratio[rows] / (sigma / math.sqrt(days_in_window))
    t = np.arange(n)
    quiet = t >= 3 * _WEEK + w  # a baseline of at least three weeks under the whole window
    # Whatever a level shift left in the baseline is not creep.
    quiet &= ~_mixed_baseline_hours(shifts, n=n, cfg=cfg)
    # Still rising: steady organic growth sits at a constant distance above a lagging
    # baseline, creep keeps pulling away from it.
    previous = (
        np.concatenate([np.full(w, np.nan), window_ratio[:-w]]) if n > w else np.full(n, np.nan)
    )
    rise = window_ratio - np.nan_to_num(previous, nan=0.0)
    fire = (
        quiet
        & (np.nan_to_num(z, nan=0.0) >= cfg.creep_z)
        & (np.nan_to_num(window_ratio, nan=0.0) >= math.log1p(cfg.creep_relative))
        & (np.nan_to_num(rise, nan=0.0) >= math.log1p(cfg.creep_rise))
    )
    # One creep is one episode even if it pauses for less than a window.
    return [
        _Event("creep", max(0, start - w + 1), end, start, 1) for start, end in _runs(fire, gap=w)
    ]


def _mixed_baseline_hours(events: list[_Event], *, n: int, cfg: AnomalyConfig) -> BoolArray:
    """Hours from just before each event to ``creep_quiet_days`` after it: the baseline is
    mixed with the change for that long, so no creep is read there."""
    mask = np.zeros(n, dtype=bool)
    for e in events:
        mask[max(0, e.start - 1) : min(n, e.end + cfg.creep_quiet_days * _DAY)] = True
    return mask


def _cusum_creep(y: FloatArray, cfg: AnomalyConfig, quiet_after: list[_Event]) -> list[_Event]:
    """Creep by a one-sided CUSUM of whole days (see the module docstring). Days run in 24 h
    blocks from the first hour; a day's level is the mean of its known hours (at least
    half of them), so sums and percentiles are treated alike. Reported at the end of the
    day it fires, starting where the CUSUM last left zero."""
    n = y.size
    days = n // _DAY
    if days < 3 * 7:
        return []
    blocks = y[: days * _DAY].reshape(days, _DAY)
    known = np.isfinite(blocks).sum(axis=1)
    level = np.full(days, np.nan)
    enough = known >= _DAY // 2
    level[enough] = np.nansum(blocks[enough], axis=1) / known[enough]
    positive = level[np.isfinite(level) & (level > 0)]
    if positive.size == 0:
        return []
    pseudo = 0.02 * float(np.median(positive))
    # Each day against the median of the same weekday over the previous four weeks.
    lagged = np.full((4, days), np.nan)
    for k in range(1, 5):
        if days > 7 * k:
            lagged[k - 1, 7 * k :] = level[: days - 7 * k]
    ratio = np.full(days, np.nan)
    usable = (np.sum(np.isfinite(lagged), axis=0) >= 2) & np.isfinite(level)
    if usable.any():
        reference = np.nanmedian(lagged[:, usable], axis=0)
        ratio[usable] = np.log((level[usable] + pseudo) / (reference + pseudo))
    # Week-on-week changes of the day level measure day-to-day noise from the second week
    # on: a floor for the ratio's spread while its own history is only days long.
    weekly = _week_on_week(level, pseudo=pseudo)
    fire = np.zeros(n, dtype=bool)
    onset: dict[int, int] = {}
    total, left_zero = 0.0, 0
    for d in range(3 * 7, days):
        past = ratio[max(0, d - 4 * 7) : d - 7]  # three weeks, ending a week ago
        past = past[np.isfinite(past)]
        if past.size < 5 or not np.isfinite(ratio[d]):
            continue
        changes = weekly[max(0, d - 5 * 7) : d - 7]
        changes = changes[np.isfinite(changes)]
        centre = float(np.median(past))
        sigma = max(_mad_sigma(past), 0.02)
        if changes.size >= 5:
            # A day against a median of 2-4 others varies about sqrt(1.4) times one day;
            # a week-on-week change, sqrt(2) times.
            sigma = max(sigma, _mad_sigma(changes) * math.sqrt(1.4 / 2))
        z = min((float(ratio[d]) - centre) / sigma, cfg.cusum_cap)
        if total == 0.0:
            left_zero = d
        total = max(0.0, total + z - cfg.cusum_k)
        if total >= cfg.cusum_h:
            hour = (d + 1) * _DAY - 1
            fire[hour] = True
            onset[hour] = left_zero * _DAY
    fire &= ~_mixed_baseline_hours(quiet_after, n=n, cfg=cfg)
    return [_Event("creep", onset[start], end, start, 1) for start, end in _runs(fire, gap=_WEEK)]


def _finish(
    event: _Event,
    *,
    y: FloatArray,
    expected: FloatArray,
    spread: FloatArray,
    score: FloatArray,
    origin: datetime,
    min_impact: float,
    cfg: AnomalyConfig,
) -> Anomaly | None:
    hours = np.arange(event.start, event.end + 1)
    ok = np.isfinite(y[hours]) & np.isfinite(expected[hours])
    if not ok.any():
        return None
    excess = np.where(ok, y[hours] - expected[hours], 0.0)
    impact = float(excess.sum())
    if event.sign * impact < min_impact or (min_impact == 0 and impact == 0):
        return None
    # Reported when both the rule has fired and the running impact has reached the bar.
    running = np.cumsum(event.sign * excess)
    reach = int(np.argmax(running >= min_impact)) + event.start
    detected = max(event.confirmed, reach)
    h = hours[ok]
    if event.kind in ("spike", "drop"):
        peak = float(score[h][np.argmax(np.abs(score[h]))])
    else:
        peak = float(np.nanmedian(score[h]))
    return Anomaly(
        kind=event.kind,
        start=origin + event.start * _HOUR,
        end=origin + event.end * _HOUR,
        detected_at=origin + detected * _HOUR,
        observed=float(np.mean(y[h])),
        expected=float(np.mean(expected[h])),
        lower=float(np.mean(np.maximum(expected[h] - cfg.spike_score * spread[h], 0.0))),
        upper=float(np.mean(expected[h] + cfg.spike_score * spread[h])),
        score=peak,
        impact=impact,
    )


# -- array helpers -----------------------------------------------------------------------------


def _hourly_grid(
    timestamps: Sequence[datetime] | npt.NDArray[np.datetime64],
    values: npt.ArrayLike,
    *,
    missing_as_zero: bool,
) -> tuple[datetime, FloatArray]:
    amounts = np.asarray(values, dtype=np.float64).ravel()
    if isinstance(timestamps, np.ndarray) and np.issubdtype(timestamps.dtype, np.datetime64):
        hours = timestamps.astype("datetime64[h]").astype(np.int64)
        if hours.size != amounts.size:
            raise ValueError("timestamps and values must have the same length")
        if hours.size == 0:
            return datetime(1970, 1, 1, tzinfo=UTC), amounts
        first = int(hours.min())
        origin = datetime(1970, 1, 1, tzinfo=UTC) + first * _HOUR
        index = hours - first
    else:
        stamps = list(timestamps)
        if len(stamps) != amounts.size:
            raise ValueError("timestamps and values must have the same length")
        if not stamps:
            return datetime(1970, 1, 1, tzinfo=UTC), amounts
        origin = min(stamps).replace(minute=0, second=0, microsecond=0)
        index = np.array([(s - origin) // _HOUR for s in stamps], dtype=np.int64)
    finite = np.isfinite(amounts)
    y = np.zeros(int(index.max()) + 1) if missing_as_zero else np.full(int(index.max()) + 1, np.nan)
    if missing_as_zero:
        np.add.at(y, index[finite], amounts[finite])
        y[index[~finite]] = np.nan
    else:
        seen = np.zeros(y.size, dtype=bool)
        seen[index[finite]] = True
        y[seen] = 0.0
        np.add.at(y, index[finite], amounts[finite])
    return origin, y


def _rolling_typical(y: FloatArray) -> FloatArray:
    """Median of the previous week (a scale for absolute floors), causal, NaN-aware."""
    n = y.size
    padded = np.concatenate([np.full(_WEEK, np.nan), y])
    windows = sliding_window_view(padded, _WEEK)[:n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the first hour has no past week
        typical = np.nanmedian(np.abs(windows), axis=1) if n else np.zeros(0)
    return np.nan_to_num(typical, nan=0.0)


def _mad_sigma(values: FloatArray) -> float:
    """Robust standard deviation: the MAD around the median, scaled to a normal's sigma."""
    return _MAD_TO_SIGMA * float(np.median(np.abs(values - np.median(values))))


def _week_on_week(levels: FloatArray, *, pseudo: float = 0.0) -> FloatArray:
    """Per day, log((level + pseudo) / (the level a week before + pseudo)); NaN where either
    is unknown or not positive."""
    out: FloatArray = np.full(levels.size, np.nan)
    if levels.size > 7:
        now, before = levels[7:] + pseudo, levels[:-7] + pseudo
        both = np.isfinite(now) & np.isfinite(before) & (now > 0) & (before > 0)
        out[7:][both] = np.log(now[both] / before[both])
    return out


def _trailing_count(flags: BoolArray, m: int) -> npt.NDArray[np.int64]:
    counts = np.cumsum(flags.astype(np.int64))
    shifted = (
        np.concatenate([np.zeros(m, dtype=np.int64), counts[:-m]])
        if m < counts.size
        else np.zeros(counts.size, dtype=np.int64)
    )
    return counts - shifted[: counts.size]


def _runs(flags: BoolArray, *, gap: int = 0) -> list[tuple[int, int]]:
    """(start, end) of runs of True, joining runs separated by at most ``gap`` hours."""
    idx = np.nonzero(flags)[0]
    if idx.size == 0:
        return []
    breaks = np.nonzero(np.diff(idx) > gap + 1)[0]
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


# -- explaining a change -----------------------------------------------------------------------

_TIMES = "\u00d7"  # the multiplication sign, as in "reasoning tokens x4" but typeset
TOKEN_TYPES = ("input_uncached", "cache_read", "cache_write", "output", "reasoning")
_TOKEN_NAMES = {
    "input_uncached": "uncached input tokens",
    "cache_read": "cache reads",
    "cache_write": "cache writes",
    "output": "output tokens",
    "reasoning": "reasoning tokens",
}


@dataclass(frozen=True, slots=True)
class Contributor:
    """One dimension value's share of a change, as per-hour rates."""

    dimension: str
    value: str
    before_per_hour: float
    after_per_hour: float
    delta_per_hour: float
    share_of_change: float  # of the total delta; can exceed 1 when others moved the other way


@dataclass(frozen=True, slots=True)
class ChangeExplanation:
    """Why a total moved between two windows: the top contributors and plain phrases."""

    total_before_per_hour: float
    total_after_per_hour: float
    delta_per_hour: float
    contributors: tuple[Contributor, ...]
    phrases: tuple[str, ...]
    dimension_ranking: tuple[str, ...] = field(default=())


def explain_change(
    *,
    before: Mapping[str, Mapping[str, float]],
    after: Mapping[str, Mapping[str, float]],
    before_hours: float = 1.0,
    after_hours: float = 1.0,
    tokens_before: Mapping[str, float] | None = None,
    tokens_after: Mapping[str, float] | None = None,
    coverage: float = 0.8,
    max_contributors: int = 5,
    unit: str = "$",
) -> ChangeExplanation:
    """Name the dimension values that account for most of a change, in words.

    ``before``/``after`` map a dimension (``model``, ``feature``, ``customer``...) to the
    cost (or any additive measure) per value over each window; the windows may differ in
    length (``before_hours``/``after_hours``), so everything is compared per hour. A
    dimension explains the change well when few of its values cover ``coverage`` of it;
    dimensions are ranked that way and the contributors come from the best three.
    ``tokens_before``/``tokens_after`` hold token totals by type (``input_uncached``,
    ``cache_read``, ``cache_write``, ``output``, ``reasoning``) and add phrases about cache
    use and token mix. Pure: no I/O.
    """
    if before_hours <= 0 or after_hours <= 0:
        raise ValueError("window lengths must be positive")
    dimensions = list(dict.fromkeys([*before, *after]))
    # Breakdowns of the same windows should agree on the total; take the most complete.
    total_b = max((sum(before.get(d, {}).values()) for d in dimensions), default=0.0)
    total_a = max((sum(after.get(d, {}).values()) for d in dimensions), default=0.0)
    total_b /= before_hours
    total_a /= after_hours
    delta = total_a - total_b

    ranked: list[tuple[float, float, str, list[Contributor]]] = []
    for dim in dimensions:
        rows = _contributors(
            dim,
            before.get(dim, {}),
            after.get(dim, {}),
            before_hours=before_hours,
            after_hours=after_hours,
            delta=delta,
        )
        needed, reached = 0, 0.0
        for c in rows:
            if reached >= coverage or c.share_of_change <= 0:
                break
            needed += 1
            reached += c.share_of_change
        top_share = rows[0].share_of_change if rows else 0.0
        ranked.append((needed if reached >= coverage else math.inf, -top_share, dim, rows[:needed]))
    ranked.sort(key=lambda r: (r[0], r[1]))

    phrases = [
        p for d in dimensions if (p := _switch_phrase(d, before.get(d, {}), after.get(d, {})))
    ]
    contributors: list[Contributor] = []
    for _, _, _, rows in ranked[:3]:
        for c in rows:
            # Small movers are noise next to the change being explained.
            if len(contributors) < max_contributors and c.share_of_change >= 0.1:
                contributors.append(c)
                phrases.append(_contributor_phrase(c, unit))
    phrases.extend(_token_phrases(tokens_before, tokens_after, before_hours, after_hours))
    return ChangeExplanation(
        total_before_per_hour=total_b,
        total_after_per_hour=total_a,
        delta_per_hour=delta,
        contributors=tuple(contributors),
        phrases=tuple(dict.fromkeys(phrases)),
        dimension_ranking=tuple(r[2] for r in ranked),
    )


def _contributors(
    dim: str,
    before: Mapping[str, float],
    after: Mapping[str, float],
    *,
    before_hours: float,
    after_hours: float,
    delta: float,
) -> list[Contributor]:
    """Every value of one dimension, those moving with the change first, biggest first."""
    rows = []
    for value in dict.fromkeys([*before, *after]):
        rate_b = before.get(value, 0.0) / before_hours
        rate_a = after.get(value, 0.0) / after_hours
        moved = rate_a - rate_b
        rows.append(Contributor(dim, value, rate_b, rate_a, moved, moved / delta if delta else 0))
    rows.sort(key=lambda c: -c.share_of_change)
    return rows


def _switch_phrase(dim: str, before: Mapping[str, float], after: Mapping[str, float]) -> str:
    """``model switched from A to B`` when the leading value changed hands."""
    tb, ta = sum(before.values()), sum(after.values())
    if tb <= 0 or ta <= 0:
        return ""
    lead_b = max(before, key=lambda k: before[k])
    lead_a = max(after, key=lambda k: after[k])
    if lead_a == lead_b:
        return ""
    # A real switch: the new leader was minor before and the old one is minor now.
    if (
        before.get(lead_a, 0.0) / tb < 0.2
        and after.get(lead_b, 0.0) / ta < 0.2
        and after[lead_a] / ta >= 0.5
        and before[lead_b] / tb >= 0.5
    ):
        return f"{dim} switched from {lead_b} to {lead_a}"
    return ""


def _contributor_phrase(c: Contributor, unit: str) -> str:
    if c.before_per_hour == 0 and c.after_per_hour > 0:
        return f"{c.dimension} {c.value} is new: +{_money(c.after_per_hour, unit)}/h"
    if c.after_per_hour == 0 and c.before_per_hour > 0:
        return f"{c.dimension} {c.value} stopped: -{_money(c.before_per_hour, unit)}/h"
    sign = "+" if c.delta_per_hour >= 0 else "-"
    return f"{c.dimension} {c.value} {sign}{_money(abs(c.delta_per_hour), unit)}/h"


def _token_phrases(
    before: Mapping[str, float] | None,
    after: Mapping[str, float] | None,
    before_hours: float,
    after_hours: float,
) -> list[str]:
    if not before or not after:
        return []
    phrases: list[str] = []
    inputs = ("input_uncached", "cache_read", "cache_write")
    in_b = sum(before.get(k, 0.0) for k in inputs)
    in_a = sum(after.get(k, 0.0) for k in inputs)
    if in_b > 0 and in_a > 0:
        share_b = before.get("cache_read", 0.0) / in_b
        share_a = after.get("cache_read", 0.0) / in_a
        # Cache hit rate is the usual silent cost lever: report moves of 10 points or more.
        if share_a <= share_b - 0.1:
            phrases.append(
                f"cache reads fell to {100 * share_a:.0f} % of input tokens "
                f"(from {100 * share_b:.0f} %)"
            )
        elif share_a >= share_b + 0.1:
            phrases.append(
                f"cache reads rose to {100 * share_a:.0f} % of input tokens "
                f"(from {100 * share_b:.0f} %)"
            )
    for kind in TOKEN_TYPES:
        rb = before.get(kind, 0.0) / before_hours
        ra = after.get(kind, 0.0) / after_hours
        name = _TOKEN_NAMES[kind]
        if kind == "cache_read" and phrases and phrases[0].startswith("cache reads"):
            continue
        if rb <= 0 and ra > 0:
            phrases.append(f"{name} appeared ({_count(ra)}/h)")
        elif rb > 0 and ra <= 0:
            phrases.append(f"{name} stopped (were {_count(rb)}/h)")
        elif rb > 0 and (ra / rb >= 2 or ra / rb <= 0.5):
            phrases.append(f"{name} {_TIMES}{_ratio(ra / rb)}")
    return phrases


def _money(x: float, unit: str) -> str:
    if x >= 1 or x == 0:
        return f"{unit}{x:,.2f}"
    # Small per-hour amounts keep three significant digits instead of rounding to 0.00.
    digits = max(2, 2 - math.floor(math.log10(x)))
    return f"{unit}{x:.{digits}f}"


def _count(x: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= size:
            return f"{x / size:.1f}{suffix}"
    return f"{x:.0f}"


def _ratio(r: float) -> str:
    if r >= 10:
        return f"{r:.0f}"
    text = f"{r:.1f}" if r >= 1 else f"{r:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
