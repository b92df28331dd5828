"""Log-bucket histogram: merges are exact, quantiles match percentile_disc within 1 %."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.sketch import (
    ALPHA,
    GAMMA,
    LN_GAMMA,
    MIN_VALUE,
    LogHistogram,
    estimate_for_key,
    key_for,
    keys_for,
    merged,
)

# The mapping's bound is ALPHA exactly at bucket edges; allow floating-point rounding only.
TOLERANCE = ALPHA * (1 + 1e-9)
QS = [0.0, 0.001, 0.01, 0.1, 0.25, 0.3, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]


def percentile_disc(values: list[float], q: float) -> float:
    """PostgreSQL's percentile_disc: row number ceil(q * n), at least the first row."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def assert_close(estimate: float, exact: float) -> None:
    if exact < MIN_VALUE:
        assert estimate == 0.0
    else:
        assert abs(estimate - exact) <= TOLERANCE * exact, (estimate, exact)


positive = st.floats(min_value=MIN_VALUE, max_value=1e15, allow_nan=False)
heavy_tail = st.builds(lambda u: 1e-6 / (u**3), st.floats(min_value=1e-5, max_value=1.0))
value = st.one_of(
    positive,
    heavy_tail,
    st.just(0.0),
    st.sampled_from([1.0, 0.5, 1e-12, 2e-12, 1e-9, 123.456, GAMMA, GAMMA**-7, GAMMA**500]),
    st.integers(min_value=1, max_value=200_000).map(float),  # token counts repeat a lot
)
datasets = st.lists(value, min_size=1, max_size=400)


@settings(max_examples=300, deadline=None)
@given(values=datasets, q=st.floats(min_value=0.0, max_value=1.0))
def test_quantile_is_within_one_percent_of_percentile_disc(values: list[float], q: float) -> None:
    hist = LogHistogram.from_values(values)
    assert hist.count == len(values)
    for qq in [*QS, q]:
        assert_close(hist.quantile(qq), percentile_disc(values, qq))


@settings(max_examples=200, deadline=None)
@given(values=datasets, data=st.data())
def test_any_split_merged_in_any_order_equals_the_whole(
    values: list[float], data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=6)))
    bounds = [0, *cuts, len(values)]
    parts = [values[a:b] for a, b in itertools.pairwise(bounds)]
    order = data.draw(st.permutations(range(len(parts))))
    sketches = []
    for i in order:
        part = LogHistogram()
        if data.draw(st.booleans()):
            part.add_many(np.array(parts[i]))
        else:
            for x in parts[i]:
                part.add(x)
        sketches.append(part)

    whole = LogHistogram.from_values(values)
    combined = merged(sketches)
    assert combined == whole
    assert combined.to_sparse() == whole.to_sparse()


@settings(max_examples=100, deadline=None)
@given(values=datasets)
def test_sparse_round_trip_keeps_every_count(values: list[float]) -> None:
    hist = LogHistogram.from_values(values)
    keys, counts, zeros = hist.to_sparse()
    assert keys == sorted(keys)
    assert len(keys) == len(counts) and all(c > 0 for c in counts)
    assert LogHistogram.from_sparse(keys, counts, zeros) == hist
    # The database may sum arrays from several rows without sorting; that is a merge.
    doubled = LogHistogram.from_sparse(keys[::-1] + keys, counts[::-1] + counts, 2 * zeros)
    expected = LogHistogram.from_values(values + values)
    assert doubled == expected


@given(x=positive)
def test_vectorised_keys_agree_with_scalar_keys(x: float) -> None:
    xs = np.array([x, x * GAMMA, x / GAMMA])
    scalar = [key_for(float(v)) for v in xs]
    assert keys_for(xs).tolist() == [k for k in scalar if k is not None]


def test_keys_agree_on_exact_powers_of_gamma() -> None:
    powers = GAMMA ** np.arange(-1300, 1300, dtype=np.float64)
    scalar = [key_for(float(v)) for v in powers]
    assert keys_for(powers).tolist() == scalar
    # Whichever side of the edge rounding puts a power on, its estimate stays within ALPHA.
    for v, key in zip(powers.tolist(), scalar, strict=True):
        assert key is not None
        assert abs(estimate_for_key(key) - v) <= TOLERANCE * v


def test_key_formula_is_the_documented_sql_formula() -> None:
    assert math.log((1 + 0.01) / (1 - 0.01)) == LN_GAMMA
    for x in [1e-9, 0.0042, 1.0, 3.5, 1234.5, 9.9e12]:
        assert key_for(x) == math.ceil(math.log(x) / 0.020000666706669435)


def test_zero_and_tiny_values_are_counted_apart() -> None:
    hist = LogHistogram.from_values([0.0, 0.0, 1e-13, 5.0])
    _keys, counts, zeros = hist.to_sparse()
    assert zeros == 3 and sum(counts) == 1 and hist.count == 4
    assert hist.quantile(0.75) == 0.0
    assert hist.quantile(1.0) == pytest.approx(5.0, rel=ALPHA)
    assert key_for(0.0) is None


@pytest.mark.parametrize("bad", [-1.0, -1e-300, math.nan, math.inf])
def test_negative_and_non_finite_values_are_refused(bad: float) -> None:
    hist = LogHistogram()
    with pytest.raises(ValueError):
        hist.add(bad)
    with pytest.raises(ValueError):
        hist.add_many(np.array([1.0, bad]))
    assert hist.count == 0  # a refused batch counts nothing


def test_empty_histogram_and_bad_fraction_are_refused() -> None:
    with pytest.raises(ValueError):
        LogHistogram().quantile(0.5)
    hist = LogHistogram.from_values([1.0])
    for q in [-0.1, 1.1, math.nan]:
        with pytest.raises(ValueError):
            hist.quantile(q)


def test_from_sparse_refuses_mismatched_or_negative_counts() -> None:
    with pytest.raises(ValueError):
        LogHistogram.from_sparse([1, 2], [1])
    with pytest.raises(ValueError):
        LogHistogram.from_sparse([1], [-1])


def test_add_with_multiplicity_equals_repeated_adds() -> None:
    a = LogHistogram()
    a.add(3.0, n=5)
    a.add(0.0, n=2)
    b = LogHistogram.from_values([3.0] * 5 + [0.0] * 2)
    assert a == b


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.just(0.0), st.floats(min_value=1e-9, max_value=1e9)),
        min_size=1,
        max_size=400,
    ),
    q=st.floats(min_value=0.0, max_value=1.0),
)
def test_interpolated_quantile_is_within_alpha_of_percentile_cont(
    values: list[float], q: float
) -> None:
    histogram = LogHistogram.from_values(values)
    exact = float(np.quantile(np.asarray(values), q, method="linear"))  # = percentile_cont
    estimate = histogram.interpolated_quantiles([q])[0]
    assert abs(estimate - exact) <= ALPHA * (1 + 1e-9) * exact + 1e-12
