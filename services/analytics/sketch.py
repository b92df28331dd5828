"""Mergeable log-bucket histogram (DDSketch logarithmic mapping, 1 % relative accuracy).

A positive value ``x`` falls in bucket ``key = ceil(ln(x) / LN_GAMMA)``, i.e. the bucket
``(GAMMA**(key-1), GAMMA**key]``, and is estimated back as ``2 * GAMMA**key / (GAMMA + 1)``.
That estimate is within ``ALPHA`` relative error of every value in its bucket. Values below
``MIN_VALUE`` (including 0) are counted apart in ``zero_count`` and estimated as 0.

Merging is summing counts per key, so hours, groups and ranges merge exactly and in any
order. The stored form is two parallel int arrays (keys ascending, counts) plus a zero count.

SQL and Python must compute the same key. In PostgreSQL use double precision throughout and
the literal ``LN_GAMMA`` below (not ``ln(gamma)`` evaluated in SQL, and never ``ln`` on
``numeric``, which is computed with different precision)::

    CASE WHEN x < 1e-12 THEN NULL  -- zero bucket
         ELSE ceil(ln(x::double precision) / 0.020000666706669435)::int END

PostgreSQL's ``ln(double precision)`` is the C library's ``log``, the same function behind
Python's ``math.log``, so both sides agree bit for bit on one platform. On values that sit
on a bucket boundary (``x`` within rounding of ``GAMMA**k``) two different C libraries may
disagree by one bucket; either bucket still estimates ``x`` within ``ALPHA`` (up to
floating-point rounding, ~1e-15), so quantiles keep their guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

ALPHA = 0.01
GAMMA = (1.0 + ALPHA) / (1.0 - ALPHA)
LN_GAMMA = math.log(GAMMA)
# Anything this small is not a meaningful cost or token count; it shares the zero bucket.
MIN_VALUE = 1e-12

# numpy's vectorised log may differ from the C library's by one ulp; ratios this close to an
# integer are recomputed with math.log so that key_for and keys_for always agree.
_BOUNDARY_SLACK = 1e-9


def key_for(x: float) -> int | None:
    """Bucket key of one value, or ``None`` for the zero bucket (``x < MIN_VALUE``).

    Raises ``ValueError`` for negative, NaN or infinite values.
    """
    _check_value(x)
    if x < MIN_VALUE:
        return None
    return math.ceil(math.log(x) / LN_GAMMA)


def keys_for(values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Bucket keys of many values (vectorised); zero-bucket values get no key.

    Returns the keys of the values ``>= MIN_VALUE`` in input order. Raises ``ValueError``
    if any value is negative, NaN or infinite.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size and not (np.isfinite(arr).all() and (arr >= 0).all()):
        raise ValueError("histogram values must be finite and non-negative")
    positive = arr[arr >= MIN_VALUE]
    ratio = np.log(positive) / LN_GAMMA
    keys = np.ceil(ratio)
    near = np.abs(ratio - np.rint(ratio)) < _BOUNDARY_SLACK
    if near.any():
        keys[near] = [math.ceil(math.log(float(x)) / LN_GAMMA) for x in positive[near]]
    return keys.astype(np.int64)


def estimate_for_key(key: int) -> float:
    """Representative value of a bucket: ``2 * GAMMA**key / (GAMMA + 1)``."""
    return 2.0 * GAMMA**key / (GAMMA + 1.0)


class LogHistogram:
    """Sparse log-bucket histogram; mutable, mergeable, equal when its buckets are equal."""

    __slots__ = ("_buckets", "_zero_count")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._zero_count = 0

    # -- building ---------------------------------------------------------------------------

    def add(self, x: float, n: int = 1) -> None:
        """Count value ``x`` ``n`` times."""
        if n < 0:
            raise ValueError("n must be non-negative")
        key = key_for(x)
        if n == 0:
            return
        if key is None:
            self._zero_count += n
        else:
            self._buckets[key] = self._buckets.get(key, 0) + n

    def add_many(self, values: npt.ArrayLike) -> None:
        """Count every value of an array once (vectorised)."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        keys = keys_for(arr)  # validates the whole array before anything is counted
        self._zero_count += int(arr.size - keys.size)
        if keys.size:
            unique, counts = np.unique(keys, return_counts=True)
            for key, count in zip(unique.tolist(), counts.tolist(), strict=True):
                self._buckets[key] = self._buckets.get(key, 0) + count

    def merge(self, other: LogHistogram) -> None:
        """Add every count of ``other`` into this histogram."""
        self._zero_count += other._zero_count
        for key, count in other._buckets.items():
            self._buckets[key] = self._buckets.get(key, 0) + count

    # -- reading ----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Number of values counted, zero bucket included."""
        return self._zero_count + sum(self._buckets.values())

    @property
    def zero_count(self) -> int:
        """Number of values below ``MIN_VALUE``."""
        return self._zero_count

    def quantile(self, q: float) -> float:
        """Estimate PostgreSQL's ``percentile_disc(q)``: the smallest value whose cumulative
        fraction is at least ``q``, within ``ALPHA`` relative error.

        The rank is ``max(1, ceil(q * count))`` computed in double precision exactly as
        PostgreSQL does. Raises ``ValueError`` on an empty histogram or ``q`` outside [0, 1].
        """
        return self.quantiles([q])[0]

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """``quantile`` for several fractions, sorting the buckets once."""
        for q in qs:
            if not 0.0 <= q <= 1.0:  # also refuses NaN
                raise ValueError("q must be within [0, 1]")
        total = self.count
        if total == 0:
            raise ValueError("quantile of an empty histogram")
        keys, cumulative = self._ranked()
        return [self._value_at(max(1, math.ceil(q * total)), keys, cumulative) for q in qs]

    def interpolated_quantiles(self, qs: Sequence[float]) -> list[float]:
        """Estimate PostgreSQL's ``percentile_cont(q)`` (linear interpolation between the
        order statistics around ``q * (count - 1)``), within ``ALPHA`` relative error: each of
        the two order statistics is, and a convex blend keeps the bound."""
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError("q must be within [0, 1]")
        total = self.count
        if total == 0:
            raise ValueError("quantile of an empty histogram")
        keys, cumulative = self._ranked()
        out: list[float] = []
        for q in qs:
            position = q * (total - 1)
            below = math.floor(position)
            low = self._value_at(below + 1, keys, cumulative)
            high = self._value_at(min(below + 2, total), keys, cumulative)
            out.append(low + (position - below) * (high - low))
        return out

    def _ranked(self) -> tuple[list[int], npt.NDArray[np.int64]]:
        keys = sorted(self._buckets)
        return keys, np.cumsum([self._buckets[k] for k in keys], dtype=np.int64)

    def _value_at(self, rank: int, keys: list[int], cumulative: npt.NDArray[np.int64]) -> float:
        """The estimate of the ``rank``-th smallest value (1-based)."""
        if rank <= self._zero_count:
            return 0.0
        index = int(np.searchsorted(cumulative, rank - self._zero_count, side="left"))
        return estimate_for_key(keys[index])

    # -- storage ----------------------------------------------------------------------------

    def to_sparse(self) -> tuple[list[int], list[int], int]:
        """``(keys ascending, counts, zero_count)`` for two parallel int arrays in Postgres."""
        keys = sorted(self._buckets)
        return keys, [self._buckets[k] for k in keys], self._zero_count

    @classmethod
    def from_sparse(
        cls, keys: Iterable[int], counts: Iterable[int], zero_count: int = 0
    ) -> LogHistogram:
        """Rebuild from stored arrays. Keys may come in any order; repeated keys are summed
        (that is what merging does); zero counts are dropped; negative counts are refused."""
        key_list = [int(k) for k in keys]
        count_list = [int(c) for c in counts]
        if len(key_list) != len(count_list):
            raise ValueError("keys and counts must have the same length")
        if zero_count < 0 or any(c < 0 for c in count_list):
            raise ValueError("counts must be non-negative")
        hist = cls()
        hist._zero_count = int(zero_count)
        for key, count in zip(key_list, count_list, strict=True):
            if count:
                hist._buckets[key] = hist._buckets.get(key, 0) + count
        return hist

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> LogHistogram:
        """A histogram of an array of values."""
        hist = cls()
        hist.add_many(values)
        return hist

    def as_mapping(self) -> Mapping[int, int]:
        """Read-only view of ``key -> count`` (zero bucket excluded)."""
        return dict(self._buckets)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogHistogram):
            return NotImplemented
        return self._zero_count == other._zero_count and self._buckets == other._buckets

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable

    def __repr__(self) -> str:
        return f"LogHistogram(count={self.count}, buckets={len(self._buckets)})"


def merged(histograms: Iterable[LogHistogram]) -> LogHistogram:
    """A new histogram holding the sum of the given ones."""
    out = LogHistogram()
    for hist in histograms:
        out.merge(hist)
    return out


def _check_value(x: float) -> None:
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"histogram values must be finite and non-negative, got {x!r}")
