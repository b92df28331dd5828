"""Budget forecast: seasonal series beat run-rate, short history says so, edges behave."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from services.analytics.forecast import BudgetForecast, _shrunk_trend, forecast_budget

# 2025-06-02 is a Monday; a 30-day period starting on it.
START = datetime(2025, 6, 2, tzinfo=UTC)
END = START + timedelta(days=30)


def b2b_spend(days: int, *, first_day: int, seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """Weekday-heavy spend: $100 on weekdays, $25 on weekends, small noise."""
    rng = np.random.default_rng(seed)
    day = np.arange(first_day, first_day + days)
    base = np.where(day % 7 >= 5, 25.0, 100.0)  # day 0 = START, a Monday
    return base * np.exp(rng.normal(0, noise, days))


def run(
    spend: np.ndarray, *, first_day: int, today: int, budget: float = 2500.0, **kw: object
) -> BudgetForecast:
    """Forecast at midnight starting day ``today`` with the given daily history."""
    days = [START + timedelta(days=first_day + i) for i in range(spend.size)]
    in_period = [
        v for d, v in zip(days, spend, strict=True) if START <= d < START + timedelta(days=today)
    ]
    return forecast_budget(
        timestamps=days,
        values=spend,
        period_start=START,
        period_end=END,
        now=START + timedelta(days=today),
        spent_so_far=float(sum(in_period)),
        budget=budget,
        **kw,  # type: ignore[arg-type]
    )


def test_weekly_pattern_beats_run_rate_when_the_month_started_on_weekdays() -> None:
    whole = b2b_spend(60 + 30, first_day=-60)
    history = whole[: 60 + 5]  # Monday..Friday of the first week are done
    actual = float(whole[60:].sum())
    fc = run(history, first_day=-60, today=5)
    run_rate = float(whole[60:65].sum()) / 5 * 30

    assert fc.method == "ets_weekly"
    assert abs(fc.projected_spend - actual) < 0.25 * abs(run_rate - actual)
    assert fc.lower_80 <= actual <= fc.upper_80
    assert fc.lower_95 <= fc.lower_80 <= fc.projected_spend <= fc.upper_80 <= fc.upper_95


def test_short_history_falls_back_with_wider_intervals_and_says_so() -> None:
    short = run(b2b_spend(10, first_day=0), first_day=0, today=10)
    long = run(b2b_spend(70, first_day=-60), first_day=-60, today=10)

    assert short.method == "short_history_fallback"
    assert "Only 10 complete days" in short.note and "wide" in short.note
    assert short.history_days == 10
    width = (short.upper_80 - short.lower_80) / short.projected_spend
    long_width = (long.upper_80 - long.lower_80) / long.projected_spend
    assert width > 1.5 * long_width


def test_no_complete_day_gives_an_open_forecast() -> None:
    fc = forecast_budget(
        timestamps=[],
        values=[],
        period_start=START,
        period_end=END,
        now=START + timedelta(hours=3),
        spent_so_far=4.0,
        budget=100.0,
    )
    assert fc.method == "insufficient_history"
    assert fc.projected_spend == 4.0 and fc.upper_80 == float("inf")
    assert fc.exhaustion_at is None


def test_period_end_and_empty_history_edges() -> None:
    spend = b2b_spend(90, first_day=-60)
    done = run(spend, first_day=-60, today=30)
    assert done.projected_spend == pytest.approx(float(spend[60:].sum()))
    assert done.upper_95 == pytest.approx(done.projected_spend)

    silent = run(np.zeros(20), first_day=-20, today=0)
    assert silent.method == "insufficient_history"
    assert "hold no spend" in silent.note
    assert np.isnan(silent.probability_over_budget)


def test_level_shift_a_week_ago_is_followed() -> None:
    spend = b2b_spend(80, first_day=-60, noise=0.03)
    spend[-7:] *= 2.0  # a new feature doubled spend a week ago
    fc = run(spend, first_day=-60, today=20)
    spent = float(spend[60:].sum())
    remaining = fc.projected_spend - spent
    new_level = float(b2b_spend(10, first_day=20, noise=0.0).sum()) * 2.0
    run_rate_remaining = spent / 20 * 10
    assert abs(remaining - new_level) < 0.2 * new_level
    assert abs(remaining - new_level) < 0.5 * abs(run_rate_remaining - new_level)


def test_five_weeks_of_steady_growth_are_extrapolated_as_a_trend() -> None:
    growth = np.log(1.2) / 30  # +20 % a month

    def grown(days: int, first_day: int, noise: float) -> np.ndarray:
        trend = np.exp(growth * np.arange(first_day, first_day + days))
        spend: np.ndarray = b2b_spend(days, first_day=first_day, noise=noise) * trend
        return spend

    history = grown(40, -35, 0.05)
    fc = run(history, first_day=-35, today=5)
    remaining = fc.projected_spend - float(history[35:].sum())
    expected = float(grown(25, 5, 0.0).sum())

    # Holding today's level flat would land about 8 % short of the grown remainder.
    assert abs(remaining / expected - 1) < 0.05
    monthly = re.search(r"damped trend of ([+-]\d+) % a month", fc.note)
    assert monthly is not None and 10 <= int(monthly.group(1)) <= 30


def test_a_noisy_slope_is_shrunk_toward_flat() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(60, dtype=float)
    raw_slopes, shrunk_slopes = [], []
    for _ in range(50):
        flat_noisy = rng.normal(0, 0.3, t.size)
        raw_slopes.append(abs(np.polyfit(t, flat_noisy, 1)[0]))
        shrunk_slopes.append(abs(_shrunk_trend(flat_noisy)[0]))
    assert np.mean(shrunk_slopes) < 0.7 * np.mean(raw_slopes)

    clear = 0.01 * t + rng.normal(0, 0.02, t.size)  # +35 % a month, little noise
    slope, sd = _shrunk_trend(clear)
    assert slope == pytest.approx(0.01, rel=0.05) and 0 < sd < 0.001
    assert _shrunk_trend(clear[:20]) == (0.0, 0.0)  # under four weeks: no trend


def test_one_runaway_day_does_not_set_the_level() -> None:
    spend = b2b_spend(75, first_day=-60)
    calm = run(spend, first_day=-60, today=15)
    spend[-2] *= 10.0  # a retry loop two days ago
    spiky = run(spend, first_day=-60, today=15)
    remaining_calm = calm.projected_spend - float(spend[60:].sum()) + 9 * float(spend[-2] / 10.0)
    remaining_spiky = spiky.projected_spend - float(spend[60:].sum())
    assert remaining_spiky == pytest.approx(remaining_calm, rel=0.1)


def test_budget_probability_and_exhaustion() -> None:
    spend = b2b_spend(75, first_day=-60)
    expected_total = run(spend, first_day=-60, today=15).projected_spend

    tight = run(spend, first_day=-60, today=15, budget=0.8 * expected_total)
    assert tight.probability_over_budget > 0.95
    assert tight.exhaustion_at is not None
    assert START + timedelta(days=15) < tight.exhaustion_at < END

    loose = run(spend, first_day=-60, today=15, budget=1.5 * expected_total)
    assert loose.probability_over_budget < 0.05
    assert loose.exhaustion_at is None

    # Already over: when the month's spend crossed the budget, spread evenly over its day.
    month = spend[60:]
    budget = 0.5 * float(month.sum())
    blown = run(spend, first_day=-60, today=15, budget=budget)
    assert blown.probability_over_budget == 1.0
    day = int(np.argmax(np.cumsum(month) >= budget))
    share = (budget - float(month[:day].sum())) / float(month[day])
    assert blown.exhaustion_at is not None
    crossed = START + timedelta(days=day + share)
    assert abs((blown.exhaustion_at - crossed).total_seconds()) < 1
    assert START + timedelta(days=5) < blown.exhaustion_at < START + timedelta(days=10)


def test_spent_budget_the_history_does_not_show_ran_out_now() -> None:
    """The spend so far is authoritative: over budget on spend the history lacks (today's,
    say), the crossing is now, not some earlier day."""
    spend = b2b_spend(75, first_day=-60)
    now = START + timedelta(days=15, hours=6)
    fc = forecast_budget(
        timestamps=[START + timedelta(days=-60 + i) for i in range(75)],
        values=spend,
        period_start=START,
        period_end=END,
        now=now,
        spent_so_far=float(spend[60:].sum()) + 5000.0,
        budget=float(spend[60:].sum()) + 1000.0,
    )
    assert fc.exhaustion_at == now
    assert fc.probability_over_budget == 1.0


def test_hourly_history_matches_daily_history() -> None:
    daily = b2b_spend(74, first_day=-60)
    # Spread each day over business hours 9-17 only.
    hours = [START + timedelta(days=-60 + d, hours=h) for d in range(74) for h in range(24)]
    shape = np.array([1.0 if 9 <= h < 17 else 0.0 for h in range(24)]) / 8.0
    hourly = (daily[:, None] * shape[None, :]).ravel()
    by_day = run(daily, first_day=-60, today=14)
    by_hour = forecast_budget(
        timestamps=hours,
        values=hourly,
        period_start=START,
        period_end=END,
        now=START + timedelta(days=14),
        spent_so_far=float(daily[60:].sum()),
        budget=2500.0,
        resolution="hour",
    )
    assert by_hour.projected_spend == pytest.approx(by_day.projected_spend, rel=1e-9)


def test_mid_day_uses_the_hour_of_day_profile() -> None:
    daily = b2b_spend(74, first_day=-60)
    hours = [START + timedelta(days=-60 + d, hours=h) for d in range(74) for h in range(24)]
    shape = np.array([1.0 if 9 <= h < 17 else 0.0 for h in range(24)]) / 8.0
    hourly = (daily[:, None] * shape[None, :]).ravel()
    common = {
        "timestamps": hours,
        "values": hourly,
        "period_start": START,
        "period_end": END,
        "spent_so_far": float(daily[60:].sum()),
        "budget": 2500.0,
        "resolution": "hour",
    }
    at_8 = forecast_budget(now=START + timedelta(days=14, hours=8), **common)  # type: ignore[arg-type]
    at_17 = forecast_budget(now=START + timedelta(days=14, hours=17), **common)  # type: ignore[arg-type]
    # Nothing is spent before 9:00, so at 8:00 the whole of today is still ahead; at 17:00
    # none of it is (spent_so_far is held fixed here, so the projection drops by a day).
    assert at_8.projected_spend - at_17.projected_spend == pytest.approx(100.0, rel=0.15)


def test_days_without_spend_are_fine() -> None:
    spend = b2b_spend(75, first_day=-60)
    spend[::3] = 0.0
    fc = run(spend, first_day=-60, today=15)
    assert np.isfinite([fc.projected_spend, fc.lower_95, fc.upper_95]).all()
    assert fc.lower_95 >= float(spend[60:].sum())


def test_numpy_timestamps_and_seed_make_it_reproducible() -> None:
    spend = b2b_spend(75, first_day=-60)
    stamps = np.array(
        [np.datetime64("2025-06-02") + np.timedelta64(d, "D") for d in range(-60, 15)]
    )
    a = forecast_budget(
        timestamps=stamps,
        values=spend,
        period_start=START,
        period_end=END,
        now=START + timedelta(days=15),
        spent_so_far=float(spend[60:].sum()),
        budget=2500.0,
    )
    b = run(spend, first_day=-60, today=15)
    assert a == b


def test_forecast_is_fast() -> None:
    spend = b2b_spend(210, first_day=-200)
    run(spend, first_day=-200, today=10)  # warm up imports and caches
    started = time.perf_counter()
    run(spend, first_day=-200, today=10)
    assert time.perf_counter() - started < 0.2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget": 0.0},
        {"spent_so_far": -1.0},
        {"now": END + timedelta(days=1)},
        {"period_end": START},
        {"values": [1.0, -2.0]},
        {"values": [1.0]},
    ],
)
def test_bad_input_is_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "timestamps": [START - timedelta(days=2), START - timedelta(days=1)],
        "values": [1.0, 2.0],
        "period_start": START,
        "period_end": END,
        "now": START,
        "spent_so_far": 0.0,
        "budget": 10.0,
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        forecast_budget(**args)  # type: ignore[arg-type]


def test_first_day_over_budget_says_in_which_hour() -> None:
    """No complete day yet (nothing to project), but the hourly history shows when the
    budget ran out: $1 an hour from midnight against $2.50 is half past two."""
    now = START + timedelta(hours=5, minutes=30)
    fc = forecast_budget(
        timestamps=[START + timedelta(hours=h) for h in range(6)],
        values=[1.0] * 6,
        period_start=START,
        period_end=END,
        now=now,
        spent_so_far=6.0,
        budget=2.5,
        resolution="hour",
    )
    assert fc.method == "insufficient_history"
    assert fc.exhaustion_at == START + timedelta(hours=2, minutes=30)
