"""Budget period-end forecast: where will this period's spend land, and how sure are we?

The model works on daily spend in log space, because LLM spend grows and shifts by
multiples, not by fixed amounts:

1. Weekly profile: classical decomposition (log spend minus its centred 7-day mean), with
   the median per day-of-week so holidays and one-day spikes barely move it.
2. Outlier cleaning: isolated days far from a running median (holidays, runaway jobs) are
   replaced for fitting; runs of three or more days are kept, because that is a level shift
   the level must follow.
3. Level: simple exponential smoothing of the cleaned, deseasoned log (ETS(A,N,A) on the
   log), so a level shift is followed within days. With four weeks of history a damped
   trend is added: the log slope of the last 90 days, shrunk toward flat by its own
   uncertainty (a normal prior on monthly growth), so a noisy slope barely moves the
   projection and a clear one is followed. A hard significance test, tried first, threw
   away the many moderate trends and measured worse (see bench/forecast_eval.py).
4. Intervals: simulated sample paths of the same state-space model, innovations resampled
   from its own one-step errors (the raw outliers are resampled too, so holidays and spikes
   recur in the simulated future at the rate they occurred in the past), widened by a
   factor calibrated on the benchmark's tuning scenarios to cover what one-step errors
   miss: level shifts still to come and uncertainty in the fitted pattern.

With under two weeks of complete days there is no weekly profile or trend to estimate; the
fallback projects the recent average day with a random-walk level and deliberately wide
intervals, and says so in ``note``.

All of it is pure: arrays and datetimes in, one frozen ``BudgetForecast`` out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["BudgetForecast", "forecast_budget"]

FloatArray = npt.NDArray[np.float64]

_DAY_SECONDS = 86_400.0
_SEASON = 7
MIN_MODEL_DAYS = 14  # two full weeks: every weekday seen twice
_PROFILE_WEEKS = 10
_FIT_DAYS = 182  # older history says little about next month's level
_OUTLIER_Z = 3.5
_SIMULATIONS = 2000
_RESAMPLE_DAYS = 120

# Constants below were set on the tuning scenarios of bench/forecast_eval.py, never on the
# reported ones. A fixed level weight measured better than one fitted per series: a young
# series has too few days to fit it without chasing noise.
_LEVEL_ALPHA = 0.2
# The trend needs four weeks of history; its slope is shrunk toward zero with a normal prior
# whose standard deviation is this much log growth a month.
_TREND_MIN_DAYS = 28
_TREND_DAYS = 90
_TREND_PRIOR_MONTHLY = 0.10
_TREND_PHI = 0.97
_INTERVAL_SCALE = 1.45
_FULL_PATTERN_DAYS = 28  # below this, intervals widen by sqrt(28 / days)


@dataclass(frozen=True, slots=True)
class BudgetForecast:
    """Forecast of a budget period's total spend (same currency unit as the inputs).

    ``projected_spend`` is the median of the predictive distribution of the period total
    (spend so far included); the intervals are central prediction intervals of that total.
    ``exhaustion_at`` is when the projected cumulative spend reaches the budget, or
    ``None`` if it is not expected to within the period; if spend already has, it is when
    the period's spend history crossed it (``now`` if the history does not show it). With
    method ``insufficient_history`` the upper bounds are ``inf`` and
    ``probability_over_budget`` is NaN (unknown) unless the budget is already spent.
    """

    projected_spend: float
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float
    probability_over_budget: float
    exhaustion_at: datetime | None
    method: Literal["ets_weekly", "short_history_fallback", "insufficient_history"]
    note: str
    history_days: int


def forecast_budget(
    *,
    timestamps: Sequence[datetime] | npt.NDArray[np.datetime64],
    values: npt.ArrayLike,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
    spent_so_far: float,
    budget: float,
    resolution: Literal["day", "hour"] = "day",
    seed: int = 0,
) -> BudgetForecast:
    """Forecast the total spend of the budget period ``[period_start, period_end)``.

    ``timestamps``/``values``: spend history as bucket starts and amounts, daily or hourly
    (``resolution``), any length, gaps meaning no spend. Days are counted in 24-hour steps
    from ``period_start`` (a calendar-aligned local midnight), so history may begin before
    the period. Buckets at or after the start of ``now``'s day are ignored: the current day
    is partial and ``spent_so_far`` (authoritative, from the rollups) already holds it.
    Naive ``numpy.datetime64`` timestamps are read as UTC. ``seed`` fixes the simulation.
    """
    if not period_start < period_end:
        raise ValueError("period_start must be before period_end")
    if not period_start <= now <= period_end:
        raise ValueError("now must lie within the period")
    if budget <= 0 or spent_so_far < 0:
        raise ValueError("budget must be positive and spent_so_far non-negative")

    offsets = _offsets_seconds(timestamps, origin=period_start)
    amounts = np.asarray(values, dtype=np.float64).ravel()
    if offsets.shape != amounts.shape:
        raise ValueError("timestamps and values must have the same length")
    if amounts.size and not (np.isfinite(amounts).all() and (amounts >= 0).all()):
        raise ValueError("spend values must be finite and non-negative")

    elapsed = (now - period_start).total_seconds() / _DAY_SECONDS
    total_days = max(1, round((period_end - period_start).total_seconds() / _DAY_SECONDS))
    today = min(math.floor(elapsed), total_days)
    done_today = _fraction_of_today_done(
        offsets, amounts, elapsed=elapsed, today=today, hourly=resolution == "hour"
    )

    day_index = np.floor(offsets / _DAY_SECONDS).astype(np.int64)
    keep = day_index < today
    first_day = int(day_index[keep].min()) if keep.any() else today
    daily = np.bincount(
        day_index[keep] - first_day, weights=amounts[keep], minlength=today - first_day
    ).astype(np.float64)

    # Days still to come: the rest of today, then whole days to the end of the period.
    future_days = np.arange(today, total_days, dtype=np.int64)
    future_weight = np.ones(future_days.size)
    if future_days.size:
        future_weight[0] = 1.0 - done_today
    rng = np.random.default_rng(seed)
    crossed_at = None
    if spent_so_far >= budget:
        crossed_at = _budget_crossed_at(
            offsets,
            amounts,
            period_start=period_start,
            now=now,
            bucket_seconds=3600.0 if resolution == "hour" else _DAY_SECONDS,
            budget=budget,
        )

    if daily.size >= MIN_MODEL_DAYS and daily.sum() > 0:
        paths, note = _ets_weekly_paths(
            daily, first_day=first_day, future_days=future_days, rng=rng
        )
        method: Literal["ets_weekly", "short_history_fallback", "insufficient_history"] = (
            "ets_weekly"
        )
    elif daily.size >= 1 and daily.sum() > 0:
        paths, note = _short_history_paths(daily, future_days=future_days, rng=rng)
        method = "short_history_fallback"
    else:
        return _insufficient_history(
            spent_so_far=spent_so_far,
            budget=budget,
            crossed_at=crossed_at,
            history_days=int(daily.size),
        )

    remaining = paths * future_weight  # (simulations, future days)
    totals = spent_so_far + remaining.sum(axis=1)
    q = np.quantile(totals, [0.5, 0.1, 0.9, 0.025, 0.975])
    median_total = float(q[0])
    exhaustion = crossed_at
    if exhaustion is None:
        exhaustion = _exhaustion_at(
            spent_so_far=spent_so_far,
            budget=budget,
            mean_path=remaining.mean(axis=0),
            target_remaining=median_total - spent_so_far,
            period_start=period_start,
            now=now,
            today=today,
            future_days=future_days,
        )
    return BudgetForecast(
        projected_spend=median_total,
        lower_80=float(q[1]),
        upper_80=float(q[2]),
        lower_95=float(q[3]),
        upper_95=float(q[4]),
        probability_over_budget=float(np.mean(totals > budget)),
        exhaustion_at=exhaustion,
        method=method,
        note=note,
        history_days=int(daily.size),
    )


# -- the weekly ETS model ---------------------------------------------------------------------


def _ets_weekly_paths(
    daily: FloatArray,
    *,
    first_day: int,
    future_days: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> tuple[FloatArray, str]:
    """Simulated daily spend for ``future_days`` (simulations x days) and a note."""
    if daily.size > _FIT_DAYS:
        first_day += daily.size - _FIT_DAYS
        daily = daily[-_FIT_DAYS:]
    n = daily.size
    recent = daily[-28:]
    # Offset before the log: zero-spend days must not become -inf, and a tiny offset would
    # let near-zero days dominate the fit.
    offset = 0.02 * float(np.median(recent[recent > 0])) if (recent > 0).any() else 1e-6
    x = np.log(daily + offset)
    season_of = (np.arange(n) + first_day) % _SEASON

    profile = _weekly_profile(x, season_of)
    cleaned, outlier_part = _clean_isolated_outliers(x - profile[season_of])
    level, errors = _smoothed_level(cleaned)
    trend, trend_se = _shrunk_trend(cleaned)

    sims = _SIMULATIONS
    steps = future_days.size
    # Resample whole days so that a day's innovation and its outlier stay paired.
    usable = errors[-_RESAMPLE_DAYS:]
    usable = usable - usable.mean()
    outliers = outlier_part[-usable.size :]
    picks = rng.integers(0, usable.size, size=(sims, steps))
    # Few days of errors understate what can happen: widen young series' intervals.
    young = math.sqrt(max(1.0, _FULL_PATTERN_DAYS / n))
    eps = usable[picks] * (_INTERVAL_SCALE * young)
    # Level path of ETS(A,N,A): each day's surprise moves the level by alpha of itself.
    levels = level + _LEVEL_ALPHA * np.concatenate(
        [np.zeros((sims, 1)), np.cumsum(eps[:, :-1], axis=1)], axis=1
    )
    if trend != 0.0:
        damped_steps = np.cumsum(_TREND_PHI ** np.arange(1, steps + 1))
        slopes = rng.normal(trend, trend_se, size=(sims, 1))
        levels = levels + slopes * damped_steps[None, :]
    log_paths = levels + profile[future_days % _SEASON][None, :] + eps + outliers[picks]
    paths = np.maximum(np.exp(log_paths) - offset, 0.0)

    weeks = n // _SEASON
    note = f"Weekly pattern and level fitted on {n} days ({weeks} weeks) of history"
    if n >= _TREND_MIN_DAYS:
        note += (
            f", with a damped trend of {100 * (math.exp(30 * trend) - 1):+.0f} % a month "
            "(the measured slope shrunk toward flat by its uncertainty)"
        )
    else:
        note += "; too short a history to extrapolate a trend"
    note += f". Intervals from {sims} simulated paths with resampled past errors."
    if n < _FULL_PATTERN_DAYS:
        note += (
            f" Only {n} days of history (under four weeks): the weekly pattern is still "
            f"rough, so the intervals are widened by {100 * (young - 1):.0f} %."
        )
    return paths, note


def _weekly_profile(x: FloatArray, season_of: npt.NDArray[np.int64]) -> FloatArray:
    """Additive day-of-week effects in log space (sum zero), robust to odd days."""
    n = x.size
    tail = min(n, _PROFILE_WEEKS * _SEASON)
    xs = x[-tail:]
    ss = season_of[-tail:]
    # Centred 7-day mean: the local level around each day, free of the weekly pattern.
    kernel = np.ones(_SEASON) / _SEASON
    centred = np.convolve(xs, kernel, mode="valid")  # aligned with days 3 .. tail-4
    detrended = xs[3 : 3 + centred.size] - centred
    seasons = ss[3 : 3 + centred.size]
    profile = np.zeros(_SEASON)
    for s in range(_SEASON):
        vals = detrended[seasons == s]
        if vals.size:
            profile[s] = float(np.median(vals))
    centred_profile: FloatArray = profile - profile.mean()
    return centred_profile


def _clean_isolated_outliers(d: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Replace isolated outlying days by the running median.

    Returns the cleaned series and the part removed (zero where nothing was changed).
    """
    n = d.size
    running = np.array([np.median(d[max(0, i - 3) : i + 4]) for i in range(n)])
    deviation = d - running
    scale = 1.4826 * float(np.median(np.abs(deviation)))
    scale = max(scale, 0.05)  # a near-constant series must not flag ordinary wiggles
    flagged = np.abs(deviation) > _OUTLIER_Z * scale
    # Runs of three or more same-signed flagged days are a level shift: keep them.
    keep_run = np.zeros(n, dtype=bool)
    i = 0
    while i < n:
        if flagged[i]:
            j = i
            sign = np.sign(deviation[i])
            while j + 1 < n and flagged[j + 1] and np.sign(deviation[j + 1]) == sign:
                j += 1
            if j - i + 1 >= 3:
                keep_run[i : j + 1] = True
            i = j + 1
        else:
            i += 1
    replace = flagged & ~keep_run
    cleaned = np.where(replace, running, d)
    return cleaned, d - cleaned


def _smoothed_level(d: FloatArray) -> tuple[float, FloatArray]:
    """Simple exponential smoothing: final level and the one-step errors after warm-up."""
    warm = min(_SEASON, d.size)
    level = float(d[:warm].mean())
    errors = np.empty(d.size)
    for t in range(d.size):
        errors[t] = d[t] - level
        level += _LEVEL_ALPHA * errors[t]
    return level, errors[warm:]


def _lag1_correlation(x: FloatArray) -> float:
    """Correlation of a series with itself one step later; 0 when either side is constant
    (``np.corrcoef`` would divide by zero)."""
    a, b = x[:-1] - x[:-1].mean(), x[1:] - x[1:].mean()
    scale = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / scale if scale > 0 else 0.0


def _shrunk_trend(d: FloatArray) -> tuple[float, float]:
    """Per-day log slope of the last ``_TREND_DAYS`` days, shrunk toward zero, and its
    posterior standard deviation; (0, 0) with under ``_TREND_MIN_DAYS`` days.

    Normal prior N(0, k) on the slope and a normal likelihood with the regression's standard
    error: the posterior mean is ``slope * k / (k + se**2)``, its variance ``se**2`` times
    the same factor.
    """
    if d.size < _TREND_MIN_DAYS:
        return 0.0, 0.0
    y = d[-_TREND_DAYS:]
    t = np.arange(y.size, dtype=np.float64)
    t -= t.mean()
    slope = float(t @ (y - y.mean()) / (t @ t))
    resid = y - y.mean() - slope * t
    variance = float(resid @ resid) / (y.size - 2)
    # Day-to-day errors are autocorrelated; an AR(1) variance inflation keeps the se honest.
    rho = _lag1_correlation(resid) if variance > 0 else 0.0
    inflation = (1 + rho) / (1 - rho) if 0 < rho < 0.99 else 1.0
    se2 = variance * inflation / float(t @ t)
    prior = (_TREND_PRIOR_MONTHLY / 30.0) ** 2
    shrink = prior / (prior + se2)
    return slope * shrink, math.sqrt(se2 * shrink)


# -- short history ----------------------------------------------------------------------------

# Day-to-day drift of the level that a short history cannot measure; chosen by hand and
# checked for coverage on the tuning scenarios of bench/forecast_eval.py.
_SHORT_DRIFT = 0.04


def _short_history_paths(
    daily: FloatArray, *, future_days: npt.NDArray[np.int64], rng: np.random.Generator
) -> tuple[FloatArray, str]:
    n = daily.size
    recent = daily[-min(n, _SEASON) :]
    median = float(np.median(recent))
    # Cap runaway days at three times the median so one spike does not set the rate.
    capped = np.minimum(recent, 3.0 * median) if median > 0 else recent
    rate = float(capped.mean())
    logs = np.log(recent[recent > 0]) if (recent > 0).any() else np.zeros(1)
    day_sigma = max(float(np.std(logs)), 0.15)
    # Unknown weekly pattern when fewer than seven days are seen.
    if n < _SEASON:
        day_sigma = max(day_sigma, 0.35)
    level_sigma = day_sigma / math.sqrt(recent.size)

    sims = _SIMULATIONS
    steps = future_days.size
    start = rng.normal(0.0, level_sigma, size=(sims, 1))
    walk = np.cumsum(rng.normal(0.0, _SHORT_DRIFT, size=(sims, steps)), axis=1)
    daily_noise = rng.normal(0.0, day_sigma, size=(sims, steps))
    # Centre the log-normal so the mean day equals the observed rate.
    log_paths = start + walk + daily_noise - 0.5 * day_sigma**2
    paths = rate * np.exp(log_paths)
    note = (
        f"Only {n} complete day{'s' if n != 1 else ''} of history (under "
        f"{MIN_MODEL_DAYS}): no weekly pattern or trend can be estimated yet, so this "
        f"assumes the average of the last {recent.size} days continues with a drifting "
        "level; intervals are deliberately wide."
    )
    return paths, note


def _insufficient_history(
    *, spent_so_far: float, budget: float, crossed_at: datetime | None, history_days: int
) -> BudgetForecast:
    exhausted = crossed_at is not None
    if history_days:
        note = (
            f"The {history_days} days of history hold no spend: nothing to extrapolate. The "
            "projection is the spend so far and the upper bounds are open."
        )
    else:
        note = (
            "No complete day of spend yet: nothing to forecast from. The projection is the "
            "spend so far and the upper bounds are open."
        )
    return BudgetForecast(
        projected_spend=spent_so_far,
        lower_80=spent_so_far,
        upper_80=math.inf,
        lower_95=spent_so_far,
        upper_95=math.inf,
        # Unknown, not zero: callers must not read "no history" as "safe".
        probability_over_budget=1.0 if exhausted else math.nan,
        exhaustion_at=crossed_at,
        method="insufficient_history",
        note=note,
        history_days=history_days,
    )


# -- helpers -----------------------------------------------------------------------------------


def _offsets_seconds(
    timestamps: Sequence[datetime] | npt.NDArray[np.datetime64], *, origin: datetime
) -> FloatArray:
    if isinstance(timestamps, np.ndarray) and np.issubdtype(timestamps.dtype, np.datetime64):
        if origin.tzinfo is not None:
            origin = origin.astimezone(UTC).replace(tzinfo=None)
        delta = timestamps.astype("datetime64[us]") - np.datetime64(origin, "us")
        return delta.astype(np.float64) / 1e6
    return np.array([(t - origin).total_seconds() for t in timestamps], dtype=np.float64)


def _fraction_of_today_done(
    offsets: FloatArray, amounts: FloatArray, *, elapsed: float, today: int, hourly: bool
) -> float:
    """Share of a typical day's spend already behind us at ``now``."""
    clock = elapsed - today
    if clock <= 0:
        return 0.0
    if not hourly:
        return min(1.0, clock)
    # Hour-of-day profile of the last four weeks: spend is not spread evenly over a day.
    day = np.floor(offsets / _DAY_SECONDS)
    recent = (day < today) & (day >= today - 28)
    if amounts[recent].sum() <= 0:
        return min(1.0, clock)
    hour = np.floor((offsets[recent] / 3600.0) % 24).astype(np.int64)
    by_hour = np.bincount(hour, weights=amounts[recent], minlength=24)
    share = by_hour / by_hour.sum()
    whole = math.floor(clock * 24)
    done = float(share[:whole].sum())
    if whole < 24:
        done += float(share[whole]) * (clock * 24 - whole)
    return min(1.0, done)


def _budget_crossed_at(
    offsets: FloatArray,
    amounts: FloatArray,
    *,
    period_start: datetime,
    now: datetime,
    bucket_seconds: float,
    budget: float,
) -> datetime:
    """When the period's spend reached the budget: within the history bucket where its
    running total crosses it, spend spread evenly over the bucket; ``now`` if the history
    does not reach it (the authoritative spend so far holds what the history lacks)."""
    elapsed = (now - period_start).total_seconds()
    inside = (offsets >= 0) & (offsets < elapsed)
    order = np.argsort(offsets[inside], kind="stable")
    starts, values = offsets[inside][order], amounts[inside][order]
    running = np.cumsum(values)
    reached = np.nonzero(running >= budget)[0]
    if reached.size == 0:
        return now
    i = int(reached[0])
    share = (budget - float(running[i] - values[i])) / float(values[i]) if values[i] > 0 else 0.0
    crossed = period_start + timedelta(seconds=float(starts[i]) + share * bucket_seconds)
    return min(crossed, now)


def _exhaustion_at(
    *,
    spent_so_far: float,
    budget: float,
    mean_path: FloatArray,
    target_remaining: float,
    period_start: datetime,
    now: datetime,
    today: int,
    future_days: npt.NDArray[np.int64],
) -> datetime | None:
    total = float(mean_path.sum())
    if total <= 0:
        return None
    # Shape of the mean path, scaled so its end matches the reported median.
    path = mean_path * (max(target_remaining, 0.0) / total)
    cumulative = spent_so_far + np.cumsum(path)
    crossed = np.nonzero(cumulative >= budget)[0]
    if crossed.size == 0:
        return None
    i = int(crossed[0])
    before = spent_so_far if i == 0 else float(cumulative[i - 1])
    share = (budget - before) / float(path[i]) if path[i] > 0 else 0.0
    if i == 0:
        day_start = now
        day_end = period_start + timedelta(days=today + 1)
    else:
        day_start = period_start + timedelta(days=int(future_days[i]))
        day_end = day_start + timedelta(days=1)
    return day_start + (day_end - day_start) * share
