"""Anomaly detection on hourly series, and explaining what changed between two windows."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from services.analytics.anomaly import (
    Anomaly,
    AnomalyConfig,
    detect_anomalies,
    explain_change,
    seasonal_baseline,
)

START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)


def seasonal_spend(weeks: float, *, seed: int = 0, noise: float = 0.08) -> np.ndarray:
    """$/hour: business-hours profile, quieter weekends, log-normal noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(weeks * 168))
    hour, day = t % 24, t // 24
    daily = 1.0 + 3.0 * np.exp(-0.5 * ((hour - 14) / 3.5) ** 2)
    weekly = np.where(day % 7 >= 5, 0.4, 1.0)
    return 10.0 * daily * weekly * np.exp(rng.normal(0, noise, t.size))


def detect(values: np.ndarray, **kw: object) -> tuple[Anomaly, ...]:
    stamps = [START + i * HOUR for i in range(values.size)]
    return detect_anomalies(timestamps=stamps, values=values, **kw)  # type: ignore[arg-type]


def hour_of(at: datetime) -> int:
    return (at - START) // HOUR


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_clean_seasonal_series_raises_nothing(seed: int) -> None:
    assert detect(seasonal_spend(6, seed=seed), min_impact=10.0) == ()


def test_spike_is_found_where_it_happened() -> None:
    spend = seasonal_spend(6)
    at = 5 * 168 + 24 * 2 + 3  # Wednesday 03:00, a quiet hour
    spend[at : at + 2] += 60.0  # a runaway retry loop
    (found,) = detect(spend, min_impact=10.0)
    assert found.kind == "spike"
    assert (hour_of(found.start), hour_of(found.end)) == (at, at + 1)
    assert found.detected_at == found.start  # raised in the hour it happened
    assert found.impact == pytest.approx(120.0, rel=0.15)
    assert found.observed > found.upper > found.expected > found.lower >= 0
    assert found.score > AnomalyConfig().spike_score


def test_level_shift_is_found_once() -> None:
    spend = seasonal_spend(7)
    at = 4 * 168 + 24 + 10  # Tuesday 10:00
    spend[at:] *= 1.8  # a new feature went live
    found = detect(spend, min_impact=10.0)
    assert [a.kind for a in found] == ["level_shift"]
    shift = found[0]
    assert abs(hour_of(shift.start) - at) <= 3
    assert hour_of(shift.detected_at) - at <= 12
    assert shift.impact > 0
    assert shift.observed / shift.expected == pytest.approx(1.8, rel=0.15)


def test_falling_level_is_a_downward_shift() -> None:
    spend = seasonal_spend(7, seed=4)
    at = 4 * 168 + 9
    spend[at:] *= 0.45  # traffic moved to a cheaper model
    found = detect(spend, min_impact=10.0)
    assert [a.kind for a in found] == ["level_shift"]
    assert found[0].impact < 0 and abs(hour_of(found[0].start) - at) <= 3


def test_outage_is_a_drop() -> None:
    spend = seasonal_spend(6, seed=5)
    at = 5 * 168 + 24 + 12  # Tuesday noon, the busiest hours
    spend[at : at + 2] = 0.0
    (found,) = detect(spend, min_impact=10.0)
    assert found.kind == "drop" and found.impact < 0


def test_slow_creep_is_found() -> None:
    spend = seasonal_spend(8, seed=6)
    start = 4 * 168
    days = (np.arange(spend.size) - start).clip(0) / 24
    spend *= np.exp(0.03 * days.clip(max=21))  # prompts growing 3 % a day for three weeks
    found = detect(spend, min_impact=10.0)
    assert [a.kind for a in found] == ["creep"]
    creep = found[0]
    assert creep.impact > 0
    assert start <= hour_of(creep.detected_at) <= start + 21 * 24


def test_small_events_stay_below_min_impact() -> None:
    spend = seasonal_spend(6)
    at = 5 * 168 + 24 * 2 + 3
    spend[at] += 60.0
    assert detect(spend, min_impact=100.0) == ()
    assert len(detect(spend, min_impact=50.0)) == 1


def test_short_history_uses_the_hour_of_day() -> None:
    spend = seasonal_spend(10 / 7)  # ten days
    at = 8 * 24 + 2  # day 8, 02:00 (a weekday)
    spend[at] += 60.0
    (found,) = detect(spend, min_impact=10.0)
    assert found.kind == "spike" and hour_of(found.start) == at
    expected, spread = seasonal_baseline(spend)
    assert np.isnan(expected[: 3 * 24]).all()  # no verdict on the first three days
    assert np.isfinite(expected[3 * 24 :]).all() and (spread[3 * 24 :] > 0).all()


def test_batch_run_reports_what_the_hourly_job_would_have() -> None:
    spend = seasonal_spend(7)
    at = 4 * 168 + 24 + 10
    spend[at:] *= 1.8
    (shift,) = detect(spend, min_impact=10.0)
    detected = hour_of(shift.detected_at)
    assert detect(spend[:detected], min_impact=10.0) == ()  # nothing an hour earlier
    for hours_later in range(12):
        (seen,) = detect(spend[: detected + 1 + hours_later], min_impact=10.0)
        # Same episode, same start, raised at the same hour; only its name may firm up
        # (a sharp rise first reads as a spike, and persistence makes it a level shift).
        assert (seen.start, seen.detected_at) == (shift.start, shift.detected_at)
        assert seen.kind in ("spike", "level_shift")
    assert seen.kind == "level_shift"


def test_percentile_series_treats_missing_hours_as_unknown() -> None:
    p99 = seasonal_spend(6, seed=7, noise=0.05) * 100  # p99 tokens per request
    stamps = [START + i * HOUR for i in range(p99.size)]
    keep = np.ones(p99.size, dtype=bool)
    keep[5 * 168 : 5 * 168 + 6] = False  # six hours without requests
    found = detect_anomalies(
        timestamps=[s for s, k in zip(stamps, keep, strict=True) if k],
        values=p99[keep],
        missing_as_zero=False,
        min_impact=500.0,
    )
    assert found == ()
    as_spend = detect_anomalies(
        timestamps=[s for s, k in zip(stamps, keep, strict=True) if k],
        values=p99[keep],
        missing_as_zero=True,
        min_impact=500.0,
    )
    assert [a.kind for a in as_spend] == ["drop"]


def test_numpy_timestamps_and_unsorted_input_agree() -> None:
    spend = seasonal_spend(6)
    spend[5 * 168 + 3] += 60.0
    stamps = np.datetime64("2025-03-03T00") + np.arange(spend.size).astype("timedelta64[h]")
    order = np.random.default_rng(0).permutation(spend.size)
    shuffled = detect_anomalies(timestamps=stamps[order], values=spend[order], min_impact=10.0)
    assert shuffled == detect(spend, min_impact=10.0)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        detect(seasonal_spend(1), min_impact=-1.0)
    with pytest.raises(ValueError):
        detect_anomalies(timestamps=[START], values=[1.0, 2.0])
    assert detect_anomalies(timestamps=[], values=[]) == ()


# -- explain_change ----------------------------------------------------------------------------


def test_explain_names_the_feature_that_grew() -> None:
    before = {
        "feature": {"search.rerank": 4.0, "support.answer": 6.0},
        "model": {"gpt-4o": 7.0, "gpt-4o-mini": 3.0},
    }
    after = {
        "feature": {"search.rerank": 16.4, "support.answer": 6.1},
        "model": {"gpt-4o": 15.0, "gpt-4o-mini": 7.5},
    }
    why = explain_change(before=before, after=after)
    assert why.delta_per_hour == pytest.approx(12.5)
    assert why.dimension_ranking[0] == "feature"
    top = why.contributors[0]
    assert (top.dimension, top.value) == ("feature", "search.rerank")
    assert top.share_of_change == pytest.approx(12.4 / 12.5)
    assert "feature search.rerank +$12.40/h" in why.phrases


def test_explain_spots_a_model_switch_and_normalises_window_lengths() -> None:
    before = {"model": {"gpt-4o-mini": 24 * 2.0, "gpt-4o": 24 * 0.1}}  # a day
    after = {"model": {"gpt-4o-mini": 0.05, "gpt-4o": 3 * 9.0}}  # three hours
    why = explain_change(before=before, after=after, before_hours=24, after_hours=3)
    assert why.total_before_per_hour == pytest.approx(2.1)
    assert why.total_after_per_hour == pytest.approx(9.0 + 0.05 / 3)
    assert "model switched from gpt-4o-mini to gpt-4o" in why.phrases
    assert why.contributors[0].value == "gpt-4o"


def test_explain_reads_the_token_mix() -> None:
    tokens_before = {
        "input_uncached": 200_000,
        "cache_read": 800_000,
        "cache_write": 0,
        "output": 50_000,
        "reasoning": 10_000,
    }
    tokens_after = {
        "input_uncached": 1_000_000,
        "cache_read": 0,
        "cache_write": 0,
        "output": 52_000,
        "reasoning": 40_000,
    }
    why = explain_change(
        before={"model": {"o3": 5.0}},
        after={"model": {"o3": 9.0}},
        tokens_before=tokens_before,
        tokens_after=tokens_after,
    )
    assert "cache reads fell to 0 % of input tokens (from 80 %)" in why.phrases
    assert "reasoning tokens \u00d74" in why.phrases
    assert "uncached input tokens \u00d75" in why.phrases
    assert not any(p.startswith("output tokens") for p in why.phrases)  # barely moved


def test_explain_new_and_vanished_values() -> None:
    why = explain_change(
        before={"customer": {"acme": 1.0, "globex": 0.5}},
        after={"customer": {"acme": 1.0, "initech": 3.0}},
    )
    assert "customer initech is new: +$3.00/h" in why.phrases
    assert why.contributors[0].value == "initech"
    small = explain_change(before={"feature": {"a": 0.002}}, after={"feature": {"a": 0.0071}})
    assert small.phrases == ("feature a +$0.00510/h",)


def test_explain_no_change_says_nothing() -> None:
    same = {"model": {"gpt-4o": 3.0}}
    why = explain_change(before=same, after=same)
    assert why.delta_per_hour == 0 and why.contributors == () and why.phrases == ()


def test_doubling_for_three_hours_is_a_spike_after_an_earlier_incident() -> None:
    spend = seasonal_spend(6)
    spend[3 * 168 + 50] += 150.0  # an incident two weeks earlier must not raise the bar
    at = 5 * 168 + 24 * 2 + 12  # Wednesday noon
    spend[at : at + 3] *= 2.0
    found = detect(spend, min_impact=10.0)
    later = [a for a in found if hour_of(a.end) >= at]
    assert [a.kind for a in later] == ["spike"]
    assert hour_of(later[0].start) <= at + 2 and hour_of(later[0].detected_at) <= at + 2


def low_volume_series(weeks: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A few calls an hour, each of a very uneven (log-normal) cost."""
    rng = np.random.default_rng(seed)
    calls = rng.poisson(4.0, weeks * 168).astype(np.float64)
    spend = np.array([rng.lognormal(-4.0, 1.2, int(c)).sum() for c in calls])
    return spend, calls


def test_one_expensive_call_among_few_is_not_a_spike_given_counts() -> None:
    spend, calls = low_volume_series(6, seed=1)
    at = 5 * 168 + 30
    spend[at] += 40 * float(np.mean(spend))  # one very long prompt, call count unchanged
    stamps = [START + i * HOUR for i in range(spend.size)]
    min_impact = float(np.mean(spend))
    assert (
        detect_anomalies(timestamps=stamps, values=spend, counts=calls, min_impact=min_impact) == ()
    )
    calls[at : at + 3] += 40  # a runaway loop: many more calls
    spend[at : at + 3] += 40 * float(np.mean(spend / np.maximum(calls, 1)))
    found = detect_anomalies(timestamps=stamps, values=spend, counts=calls, min_impact=min_impact)
    assert [a.kind for a in found] == ["spike"] and hour_of(found[0].start) <= at + 2


def test_gappy_series_raise_no_numpy_warnings() -> None:
    spend = seasonal_spend(4)
    spend[200:500] = np.nan
    stamps = [START + i * HOUR for i in range(spend.size)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for missing_as_zero in (True, False):
            detect_anomalies(timestamps=stamps, values=spend, missing_as_zero=missing_as_zero)
            detect_anomalies(
                timestamps=stamps,
                values=spend,
                counts=np.where(np.isfinite(spend), 10.0, np.nan),
                missing_as_zero=missing_as_zero,
            )


def test_dearer_calls_at_the_same_count_are_a_level_shift_given_counts() -> None:
    rng = np.random.default_rng(2)
    hours = 6 * 168
    calls = rng.poisson(30.0, hours).astype(np.float64)
    at = 5 * 168 + 24 * 2 + 10  # a deploy switches every call to a dearer model
    price = np.where(np.arange(hours) >= at, 3.0, 1.0)
    spend = np.array(
        [p * rng.lognormal(-4.0, 0.8, int(c)).sum() for p, c in zip(price, calls, strict=True)]
    )
    stamps = [START + i * HOUR for i in range(hours)]
    found = detect_anomalies(
        timestamps=stamps, values=spend, counts=calls, min_impact=float(np.mean(spend[:at]))
    )
    assert [a.kind for a in found] == ["level_shift"]
    (shift,) = found
    assert abs(hour_of(shift.start) - at) <= 3
    assert hour_of(shift.detected_at) - at <= 12  # hours, not the days the weekly cost takes
    assert shift.observed / shift.expected == pytest.approx(3.0, rel=0.25)


def test_early_window_scale_is_no_tighter_than_day_to_day_noise() -> None:
    """Days alternate 5 % above and below normal, so 72-hour windows average most of it
    away and their own history (a week or so in a young series) is tight. Three days a
    little over two day-sigmas high are ordinary for this series: the window's scale
    must not fall below what independent day-to-day noise implies for three days."""
    days = 32
    t = np.arange(days * 24)
    day = t // 24
    log_day = np.where(day % 2 == 0, 0.05, -0.05)
    log_day[(day >= 28) & (day <= 30)] = 0.125
    spend = 100.0 * np.exp(log_day)
    found = detect(spend, min_impact=50.0)
    assert [a.kind for a in found] == []
    # The same three days ten times higher are a shift.
    log_day[(day >= 28) & (day <= 30)] = 1.25
    (shift,) = detect(100.0 * np.exp(log_day), min_impact=50.0)
    assert hour_of(shift.start) == 28 * 24 and shift.impact > 0


def test_one_lasting_change_found_by_two_rules_is_one_episode() -> None:
    from services.analytics.anomaly import _Event, _one_per_episode

    creep = _Event("creep", 100, 300, 250, 1)
    spike = _Event("spike", 305, 306, 305, 1)
    shift = _Event("level_shift", 320, 500, 330, 1)  # within 48 h of the creep's end
    fall = _Event("level_shift", 510, 600, 520, -1)  # the other way: news of its own
    later = _Event("level_shift", 700, 800, 710, -1)  # 100 h after the fall ended
    merged = _one_per_episode([creep, spike, shift, fall, later], gap=48)
    assert [(e.kind, e.start, e.end, e.confirmed, e.sign) for e in merged] == [
        ("creep", 100, 500, 250, 1),
        ("spike", 305, 306, 305, 1),
        ("level_shift", 510, 600, 520, -1),
        ("level_shift", 700, 800, 710, -1),
    ]


def quiet_nights_series(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """0.3 calls an hour at night, 6 by day, each call of a log-normal cost."""
    rng = np.random.default_rng(seed)
    t = np.arange(6 * 168)
    calls = rng.poisson(np.where(t % 24 < 8, 0.3, 6.0)).astype(np.float64)
    spend = np.array([rng.lognormal(-4.0, 0.8, int(c)).sum() for c in calls])
    return spend, calls


@pytest.mark.parametrize("seed", range(10))
def test_a_handful_of_calls_in_a_quiet_hour_is_not_a_spike(seed: int) -> None:
    """At 0.3 calls an hour the baseline of a dozen past hours is mostly 0s and 1s; three
    or four calls in one hour is Poisson luck, not a runaway job."""
    spend, calls = quiet_nights_series(seed)
    stamps = [START + i * HOUR for i in range(spend.size)]
    found = detect_anomalies(
        timestamps=stamps, values=spend, counts=calls, min_impact=float(spend.mean())
    )
    assert [a.kind for a in found if a.kind == "spike"] == []


def test_a_burst_of_calls_in_a_quiet_hour_is_a_spike() -> None:
    spend, calls = quiet_nights_series(0)
    at = 5 * 168 + 3  # 03:00
    calls[at] += 15
    spend[at] += 15 * float(spend.sum() / calls.sum())
    stamps = [START + i * HOUR for i in range(spend.size)]
    found = detect_anomalies(
        timestamps=stamps, values=spend, counts=calls, min_impact=float(spend.mean())
    )
    (spike,) = found
    assert spike.kind == "spike" and at - 2 <= hour_of(spike.start) <= at <= hour_of(spike.end)


@pytest.mark.parametrize("seed", [0, 1, 4, 6])
def test_creep_within_a_days_noise_adds_up(seed: int) -> None:
    """1.2 % a day for two weeks under 6 % day-to-day noise: no week stands out by 25 %,
    but day after day above the same weekday's median does (the daily CUSUM)."""
    rng = np.random.default_rng(100 + seed)
    clean = seasonal_spend(8, seed=seed)
    clean *= np.exp(rng.normal(0, 0.06, 8 * 7))[np.arange(clean.size) // 24]
    assert [a.kind for a in detect(clean, min_impact=10.0)] == []
    start = 4 * 168
    days = (np.arange(clean.size) - start).clip(0) / 24
    (creep,) = detect(clean * np.exp(0.012 * days.clip(max=14)), min_impact=10.0)
    assert creep.kind == "creep" and creep.impact > 0
    assert start <= hour_of(creep.detected_at) <= start + 17 * 24


@pytest.mark.parametrize("seed", [1, 2, 3, 5])
def test_dearer_calls_at_a_few_calls_an_hour_are_a_shift_within_three_days(seed: int) -> None:
    """Five calls an hour of uneven cost, then every call 50 % dearer at the same count:
    a day's median cost per call is still too noisy, three days' is not."""
    rng = np.random.default_rng(seed)
    calls = rng.poisson(5.0, 6 * 168).astype(np.float64)
    at = 5 * 168 - 60
    dearer = np.where(np.arange(calls.size) >= at, 1.5, 1.0)
    spend = np.array([rng.lognormal(-4.0, 0.8, int(c)).sum() for c in calls]) * dearer
    stamps = [START + i * HOUR for i in range(spend.size)]
    (found,) = detect_anomalies(
        timestamps=stamps, values=spend, counts=calls, min_impact=float(spend.mean())
    )
    assert found.kind == "level_shift" and found.impact > 0
    assert at <= hour_of(found.detected_at) < at + 72


def test_creep_episodes_join_over_a_week_and_a_jump_just_before_a_shift_is_its_start() -> None:
    from services.analytics.anomaly import _Event, _one_per_episode, _outside_shifts

    weekly = _Event("creep", 100, 300, 280, 1)
    daily = _Event("creep", 400, 600, 450, 1)  # 100 h later: the same slow rise
    (creep,) = _one_per_episode([weekly, daily], gap=48)
    assert (creep.start, creep.end, creep.confirmed) == (100, 600, 280)
    shifts = [_Event("level_shift", 1000, 1200, 1010, 1)]
    jump = _Event("spike", 992, 995, 992, 1)  # ends 5 h before the shift's estimated onset
    earlier = _Event("spike", 980, 982, 980, 1)  # ends 18 h before: an incident of its own
    assert _outside_shifts([earlier, jump], shifts, lead=6) == [earlier]
    assert (shifts[0].start, shifts[0].confirmed) == (992, 992)


@pytest.mark.parametrize("seed", [30, 31, 32, 33, 34])
def test_ordinary_days_in_the_first_weeks_of_a_busy_series_raise_nothing(seed: int) -> None:
    """300 calls an hour at peak, 4 % day-to-day noise, five weeks. The first week on an
    hour-of-week baseline is a handful of daily ratios whose MAD can be far too small
    (seed 32: an ordinary day read as a level shift); week-on-week changes of whole days
    put a floor under it."""
    rng = np.random.default_rng(seed)
    t = np.arange(5 * 168)
    hour, day = t % 24, t // 24
    profile = 1.0 + 3.0 * np.exp(-0.5 * ((hour - 14) / 3.5) ** 2)
    weekly = np.where(day % 7 >= 5, 0.4, 1.0)
    day_noise = np.exp(rng.normal(0, 0.04, 5 * 7))[day]
    calls = rng.poisson(300 * profile * weekly * day_noise).astype(np.float64)
    spend = calls * 0.01 * np.exp(rng.normal(0, 0.05, t.size))
    stamps = [START + i * HOUR for i in range(t.size)]
    found = detect_anomalies(
        timestamps=stamps, values=spend, counts=calls, min_impact=float(spend.mean())
    )
    assert found == ()
