"""Budget forecast vs straight-line run-rate on synthetic monthly-budget scenarios.

Each scenario is one calendar month of daily LLM spend with some history before it, made
from: a base level (log-uniform, $2-$5,000/day), monthly growth (mean +5 %, sd 12 %), a
slow random-walk drift, a weekly pattern (B2B weekday-heavy, B2C weekend-heavy, or flat),
US holidays and company days off, AR(1) day-to-day noise, rare one-day runaway spikes and
level shifts (new feature, model switch) that can fall in the history or in the month.
History before the month is 0-150 days, so some scenarios start as brand-new projects.

At the end of day 7, 15 and 25 of the month, the forecast (``forecast_budget``) and the
run-rate projection (spent so far / days elapsed x days in month) are compared with the
actual month total by absolute percentage error (APE).

Headline figures (the last two lines):

* ``forecast_vs_runrate_error_ratio`` = the median, over every (scenario, checkpoint), of
  APE(forecast) / APE(run-rate). Below 1 means the forecast is usually closer. The ratio of
  the mean APEs is printed too.
* ``interval80_coverage`` = share of (scenario, checkpoint) whose actual month total lies
  within the forecast's 80 % interval.

The aggregation is the median relative absolute error (MdRAE, Armstrong & Collopy 1992), a
standard robust way to score a method against a naive benchmark; the ratio of mean APEs is
printed beside it and has agreed with it to within a few hundredths on every run so far.

Three references show what is reachable on this data (printed, never the headline):

* the oracle knows the true current level (the smooth part, without the day's AR noise),
  growth, weekly pattern, holidays and even the random company days off ahead;
* the level-estimating oracle knows the same pattern, holidays, days off, growth and the
  noise variance, but has to estimate the current level from the spend it has seen, as any
  real forecaster must (exponential smoothing of the deseasoned log, isolated spikes
  replaced by the running median). It shows how much of the oracle's lead comes from
  knowing the level, which no forecaster can.
* the Kalman oracle knows all that plus the AR(1) coefficient and the drift and shift
  variances, and estimates the level and today's AR deviation with the Kalman filter of
  that model: about the best a linear estimate of the level can do. If it does not reach
  a target, no forecaster that has to estimate the level can be expected to either.

Honesty: the generator was written before the model was tuned and is not adjusted to it.
The few constants the model has were chosen on the ``tune`` seed set; the default run
reports the ``report`` set, whose scenarios the tuning never saw.

    python bench/forecast_eval.py [--set report|tune] [--scenarios 300]
"""

from __future__ import annotations

import argparse
import calendar
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.analytics.forecast import BudgetForecast, forecast_budget

CHECKPOINTS = (7, 15, 25)
SEED_SETS = {"tune": 1, "report": 2}
HISTORY_CHOICES = (0, 7, 21, 45, 90, 150)
HISTORY_WEIGHTS = (0.10, 0.05, 0.15, 0.20, 0.25, 0.25)
DRIFT_SD = 0.01  # daily random-walk step of the log level
SHIFT_RATE = 1 / 60  # chance of a level shift on any day
SHIFT_SD = 0.35  # its size in log spend


@dataclass(frozen=True)
class Scenario:
    dates: list[date]  # every day of history and of the month
    spend: np.ndarray  # daily spend for those dates
    month_start: date
    days_in_month: int
    budget: float
    shift_in_month: bool
    kind: str
    # What an oracle knows at any day: the true level (log), growth, pattern and holidays.
    true_log_level: np.ndarray
    growth: float
    seasonal: np.ndarray
    noise_sd: float  # marginal sd of the AR(1) log noise
    phi: float  # its lag-1 coefficient


def us_holidays(year: int) -> set[date]:
    def nth_weekday(month: int, weekday: int, n: int) -> date:
        first = date(year, month, 1)
        offset = (weekday - first.weekday()) % 7
        return first + timedelta(days=offset + 7 * (n - 1))

    def last_weekday(month: int, weekday: int) -> date:
        last = date(year, month, calendar.monthrange(year, month)[1])
        return last - timedelta(days=(last.weekday() - weekday) % 7)

    thanksgiving = nth_weekday(11, 3, 4)
    return {
        date(year, 1, 1),
        nth_weekday(1, 0, 3),
        last_weekday(5, 0),
        date(year, 7, 4),
        nth_weekday(9, 0, 1),
        thanksgiving,
        thanksgiving + timedelta(days=1),
        date(year, 12, 24),
        date(year, 12, 25),
        date(year, 12, 31),
    }


def make_scenario(rng: np.random.Generator) -> Scenario:
    year = int(rng.integers(2023, 2027))
    month = int(rng.integers(1, 13))
    month_start = date(year, month, 1)
    days_in_month = calendar.monthrange(year, month)[1]
    history = int(rng.choice(HISTORY_CHOICES, p=HISTORY_WEIGHTS))
    n = history + days_in_month
    dates = [month_start + timedelta(days=i - history) for i in range(n)]
    t = np.arange(n, dtype=float)

    base = math.exp(rng.uniform(math.log(2), math.log(5000)))
    growth = rng.normal(0.05, 0.12) / 30.0  # log growth per day
    drift = np.cumsum(rng.normal(0, DRIFT_SD, n))

    kind = str(rng.choice(["b2b", "b2c", "flat"], p=[0.5, 0.3, 0.2]))
    weekday = np.exp(rng.normal(0, 0.05, 7))
    if kind == "b2b":
        weekend = rng.uniform(0.2, 0.75)
        weekday[5], weekday[6] = weekend * rng.uniform(0.9, 1.2), weekend
        holiday_factor = rng.uniform(0.2, 0.6)
    elif kind == "b2c":
        weekday[5:] *= rng.uniform(1.0, 1.35)
        holiday_factor = rng.uniform(0.8, 1.2)
    else:
        weekday[5:] *= rng.uniform(0.85, 1.05)
        holiday_factor = rng.uniform(0.7, 1.0)
    weekly = np.array([weekday[d.weekday()] for d in dates])

    holidays = us_holidays(year) | us_holidays(year - 1)
    calendar_factor = np.array([holiday_factor if d in holidays else 1.0 for d in dates])
    days_off = rng.random(n) < 0.01
    calendar_factor[days_off] *= rng.uniform(0.3, 0.7, days_off.sum())

    phi = rng.uniform(0.2, 0.7)
    marginal = rng.uniform(0.06, 0.3)
    innov = rng.normal(0, marginal * math.sqrt(1 - phi**2), n)
    ar = np.zeros(n)
    for i in range(n):
        ar[i] = (phi * ar[i - 1] if i else 0.0) + innov[i]

    shifts = rng.random(n) < SHIFT_RATE
    shift_log = np.cumsum(np.where(shifts, rng.normal(0, SHIFT_SD, n), 0.0))
    spikes = rng.random(n) < 1 / 90
    spike_factor = np.where(spikes, rng.uniform(1.5, 4.0, n), 1.0)

    true_log_level = math.log(base) + growth * (t - history) + drift + shift_log
    spend = np.exp(true_log_level + ar) * weekly * calendar_factor * spike_factor
    month_total = float(spend[history:].sum())
    budget = month_total * math.exp(rng.normal(0, 0.25))
    return Scenario(
        dates=dates,
        spend=spend,
        month_start=month_start,
        days_in_month=days_in_month,
        budget=budget,
        shift_in_month=bool(shifts[history + 1 :].any()),
        kind=kind,
        true_log_level=true_log_level,
        growth=growth,
        seasonal=weekly * calendar_factor,
        noise_sd=marginal,
        phi=phi,
    )


def at_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def oracle_projection(scenario: Scenario, day: int) -> float:
    """Reference only: a forecaster that knows the true current level, growth rate, weekly
    pattern and holidays, but not future noise, spikes or shifts."""
    history = len(scenario.dates) - scenario.days_in_month
    cut = history + day
    ahead = np.arange(1, len(scenario.dates) - cut + 1)
    level = scenario.true_log_level[cut - 1] + scenario.growth * ahead
    rest = np.exp(level) * scenario.seasonal[cut:]
    return float(scenario.spend[history:cut].sum() + rest.sum())


def level_estimating_oracle_projection(scenario: Scenario, day: int, alpha: float = 0.2) -> float:
    """Reference only: knows growth, pattern, holidays, days off and the noise variance like
    the oracle, but estimates the current level from the spend seen so far."""
    history = len(scenario.dates) - scenario.days_in_month
    cut = history + day
    z = np.log(scenario.spend[:cut]) - np.log(scenario.seasonal[:cut])
    running = np.array([np.median(z[max(0, i - 3) : i + 4]) for i in range(cut)])
    deviation = z - running
    scale = max(1.4826 * float(np.median(np.abs(deviation))), 0.05)
    z = np.where(deviation > 3.5 * scale, running, z)  # one-day runaway spikes
    level = float(z[: min(7, cut)].mean())
    for value in z:
        level += alpha * (value - level)
    ahead = np.arange(1, len(scenario.dates) - cut + 1)
    # The smoothed log is a median; the month total needs the mean: add half the variance.
    mean_level = level + scenario.noise_sd**2 / 2 + scenario.growth * ahead
    rest = np.exp(mean_level) * scenario.seasonal[cut:]
    return float(scenario.spend[history:cut].sum() + rest.sum())


def kalman_oracle_projection(scenario: Scenario, day: int) -> float:
    """Reference only: knows what the level-estimating oracle knows, plus the AR(1)
    coefficient and how fast the level moves (drift and shift variances), and estimates
    the current level and today's AR deviation with the Kalman filter of that linear model
    (the best linear estimate; shifts enter as extra level variance). Future AR deviations
    decay from today's estimate."""
    history = len(scenario.dates) - scenario.days_in_month
    cut = history + day
    t = np.arange(cut, dtype=float) - history
    z = np.log(scenario.spend[:cut]) - np.log(scenario.seasonal[:cut]) - scenario.growth * t
    running = np.array([np.median(z[max(0, i - 3) : i + 4]) for i in range(cut)])
    deviation = z - running
    scale = max(1.4826 * float(np.median(np.abs(deviation))), 0.05)
    spike = deviation > 3.5 * scale  # one-day runaway spikes: skipped, like missing days
    phi, r = scenario.phi, scenario.noise_sd**2
    q = DRIFT_SD**2 + SHIFT_RATE * SHIFT_SD**2
    transition = np.array([[1.0, 0.0], [0.0, phi]])
    noise = np.diag([q, r * (1 - phi**2)])
    observe = np.array([1.0, 1.0])
    state = np.array([float(z[: min(7, cut)].mean()), 0.0])
    cov = np.diag([r, r])
    for i in range(cut):
        state = transition @ state
        cov = transition @ cov @ transition.T + noise
        if spike[i]:
            continue
        gain = cov @ observe / float(observe @ cov @ observe)
        state = state + gain * (z[i] - observe @ state)
        cov = cov - np.outer(gain, observe @ cov)
    ahead = np.arange(1, len(scenario.dates) - cut + 1)
    log_level = state[0] + scenario.growth * (ahead + day - 1) + state[1] * phi**ahead
    rest = np.exp(log_level + scenario.noise_sd**2 / 2) * scenario.seasonal[cut:]
    return float(scenario.spend[history:cut].sum() + rest.sum())


def statsmodels_projection(scenario: Scenario, day: int) -> float:
    """Reference only: statsmodels Holt-Winters (additive damped trend and weekly season on
    log spend), fitted by its own defaults."""
    import warnings

    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    history = len(scenario.dates) - scenario.days_in_month
    cut = history + day
    spent = float(scenario.spend[history:cut].sum())
    past = scenario.spend[max(0, cut - 182) : cut]
    if past.size < 14:
        return spent / day * scenario.days_in_month
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(
            np.log(past), trend="add", damped_trend=True, seasonal="add", seasonal_periods=7
        ).fit()
        ahead = fit.forecast(len(scenario.dates) - cut)
    return spent + float(np.exp(ahead).sum())


def evaluate(scenario: Scenario, day: int) -> tuple[BudgetForecast, float, float, float]:
    history = len(scenario.dates) - scenario.days_in_month
    cut = history + day
    spent = float(scenario.spend[history:cut].sum())
    start = at_midnight(scenario.month_start)
    forecast = forecast_budget(
        timestamps=[at_midnight(d) for d in scenario.dates[:cut]],
        values=scenario.spend[:cut],
        period_start=start,
        period_end=start + timedelta(days=scenario.days_in_month),
        now=start + timedelta(days=day),
        spent_so_far=spent,
        budget=scenario.budget,
    )
    run_rate = spent / day * scenario.days_in_month
    actual = float(scenario.spend[history:].sum())
    return forecast, run_rate, actual, float(cut)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=sorted(SEED_SETS), default="report")
    parser.add_argument("--scenarios", type=int, default=300)
    parser.add_argument(
        "--statsmodels", action="store_true", help="also score statsmodels Holt-Winters (slow)"
    )
    args = parser.parse_args()

    rows: list[dict[str, float | int | str | bool]] = []
    timings: list[float] = []
    for i in range(args.scenarios):
        rng = np.random.default_rng([SEED_SETS[args.set], i])
        scenario = make_scenario(rng)
        for day in CHECKPOINTS:
            t0 = time.perf_counter()
            fc, run_rate, actual, history_days = evaluate(scenario, day)
            timings.append(time.perf_counter() - t0)
            oracle = oracle_projection(scenario, day)
            level_oracle = level_estimating_oracle_projection(scenario, day)
            kalman = kalman_oracle_projection(scenario, day)
            hw = statsmodels_projection(scenario, day) if args.statsmodels else math.nan
            rows.append(
                {
                    "ape_oracle": abs(oracle - actual) / actual,
                    "ape_level_oracle": abs(level_oracle - actual) / actual,
                    "ape_kalman": abs(kalman - actual) / actual,
                    "ape_hw": abs(hw - actual) / actual,
                    "day": day,
                    "ape_fc": abs(fc.projected_spend - actual) / actual,
                    "ape_rr": abs(run_rate - actual) / actual,
                    "in80": fc.lower_80 <= actual <= fc.upper_80,
                    "in95": fc.lower_95 <= actual <= fc.upper_95,
                    "width80": (fc.upper_80 - fc.lower_80) / fc.projected_spend,
                    "p_over": fc.probability_over_budget,
                    "over": actual > scenario.budget,
                    "rr_over": run_rate > scenario.budget,
                    "method": fc.method,
                    "shift": scenario.shift_in_month,
                    "kind": scenario.kind,
                    "history": history_days,
                }
            )

    def summarise(label: str, sel: list[dict[str, float | int | str | bool]]) -> None:
        if not sel:
            return
        fc = np.array([r["ape_fc"] for r in sel], dtype=float)
        rr = np.array([r["ape_rr"] for r in sel], dtype=float)
        ratio = fc / np.maximum(rr, 1e-9)
        cov80 = np.mean([bool(r["in80"]) for r in sel])
        cov95 = np.mean([bool(r["in95"]) for r in sel])
        width = np.median([float(r["width80"]) for r in sel])
        p = np.array([float(r["p_over"]) for r in sel])
        over = np.array([bool(r["over"]) for r in sel], dtype=float)
        rr_over = np.array([bool(r["rr_over"]) for r in sel], dtype=float)
        brier = float(np.mean((p - over) ** 2))
        brier_rr = float(np.mean((rr_over - over) ** 2))
        print(
            f"{label:<30}{len(sel):>5}{100 * fc.mean():>8.1f}{100 * rr.mean():>8.1f}"
            f"{100 * np.median(fc):>8.1f}{100 * np.median(rr):>8.1f}"
            f"{np.median(ratio):>8.2f}{fc.mean() / rr.mean():>8.2f}{np.mean(fc < rr):>7.2f}"
            f"{cov80:>7.2f}{cov95:>7.2f}{100 * width:>8.1f}{brier:>7.3f}{brier_rr:>7.3f}"
        )

    print(f"seed set: {args.set}   scenarios: {args.scenarios}   checkpoints: {CHECKPOINTS}")
    print(
        f"{'group':<30}{'n':>5}{'MAPE fc':>8}{'MAPE rr':>8}{'MdAPE f':>8}{'MdAPE r':>8}"
        f"{'med rat':>8}{'mean r':>8}{'win':>7}{'cov80':>7}{'cov95':>7}{'wid80%':>8}"
        f"{'brier':>7}{'br rr':>7}"
    )
    summarise("all", rows)
    for day in CHECKPOINTS:
        summarise(f"day {day}", [r for r in rows if r["day"] == day])
    for method in sorted({str(r["method"]) for r in rows}):
        summarise(f"method {method}", [r for r in rows if r["method"] == method])
    summarise("level shift within month", [r for r in rows if r["shift"]])
    summarise("no shift within month", [r for r in rows if not r["shift"]])
    for kind in ("b2b", "b2c", "flat"):
        summarise(f"pattern {kind}", [r for r in rows if r["kind"] == kind])
    ms = 1000 * np.array(timings)
    print(
        f"forecast time: mean {ms.mean():.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
        f"max {ms.max():.1f} ms"
    )
    print(
        "columns: MAPE/MdAPE = mean/median absolute % error of the month total; med rat = "
        "median of per-case APE ratios; mean r = ratio of MAPEs; win = share where the "
        "forecast is closer; cov80/95 = interval coverage; wid80% = median 80 % interval "
        "width / projection; brier = Brier score of P(over budget), br rr = run-rate's "
        "yes/no verdict scored the same way"
    )
    fc_all = np.array([r["ape_fc"] for r in rows], dtype=float)
    rr_all = np.array([r["ape_rr"] for r in rows], dtype=float)
    references = [
        ("oracle (knows true level, growth, pattern, holidays)", "ape_oracle"),
        ("level-estimating oracle (the same, but estimates the level)", "ape_level_oracle"),
        ("Kalman oracle (also knows AR(1) and level-move variances)", "ape_kalman"),
    ]
    if args.statsmodels:
        references.append(("statsmodels Holt-Winters, log, damped", "ape_hw"))
    for label, key in references:
        ref = np.array([r[key] for r in rows], dtype=float)
        print(
            f"reference {label}: MAPE {100 * ref.mean():.1f} %, MdAPE "
            f"{100 * np.median(ref):.1f} %, median APE ratio to run-rate "
            f"{np.median(ref / np.maximum(rr_all, 1e-9)):.2f}, ratio of MAPEs "
            f"{ref.mean() / rr_all.mean():.2f}"
        )
    print(
        f"ratio of mean APEs (forecast / run-rate): {fc_all.mean() / rr_all.mean():.3f}; "
        "headline below = median over (scenario, checkpoint) of APE(forecast) / APE(run-rate)"
    )
    ratio_all = float(np.median(fc_all / np.maximum(rr_all, 1e-9)))
    coverage = float(np.mean([bool(r["in80"]) for r in rows]))
    print(f"forecast_vs_runrate_error_ratio={ratio_all:.3f}")
    print(f"interval80_coverage={coverage:.3f}")


if __name__ == "__main__":
    main()
