"""Intervals over networks for the scorecard's values, from the per-network rows of the results.

Every interval covers the sampling of *networks* (random initialisations, data orders): the test
loss of one network is measured on the whole test set, so test images are not resampled. Rates
get a Wilson interval (:func:`koopman_lib.metrics.wilson_interval`), medians and composite claims
a percentile bootstrap over networks (:func:`koopman_lib.metrics.bootstrap_interval`: 2000
resamples, a fixed seed). A composite claim (several optimizers, horizons or experiments)
resamples whole networks, paired by their index, and recomputes the whole claim on each resample.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from koopman_lib.metrics import Interval, bootstrap_interval, wilson_interval

#: why the interval of a composite claim is missing when its groups differ in size
UNEQUAL_GROUPS = "its groups of networks differ in size, so they cannot be resampled together by index"


def scaled(iv: Interval, factor: float) -> Interval:
    """``iv`` with its value and bounds times ``factor`` (a rate as a percentage)."""
    def s(x):
        return None if x is None else x * factor
    return Interval(s(iv.value), iv.n, s(iv.ci_low), s(iv.ci_high))


def rate_percent(successes: Sequence[bool]) -> Interval:
    """The share of ``successes`` in percent, with its Wilson 95% interval."""
    return scaled(wilson_interval(int(sum(bool(s) for s in successes)), len(successes)), 100.0)


def median(values: Sequence[float]) -> Interval:
    """The median over networks (finite values) with its bootstrap 95% interval."""
    return bootstrap_interval(np.asarray(values, dtype=float))


def finite_medians(a: np.ndarray) -> np.ndarray:
    """The median of the finite entries of each column of ``a`` (NaN for a column with none)."""
    a = np.asarray(a, dtype=float)
    a = a[:, None] if a.ndim == 1 else a
    k = np.isfinite(a).sum(axis=0)
    if not len(a):
        return np.full(a.shape[1], np.nan)
    srt = np.sort(np.where(np.isfinite(a), a, np.inf), axis=0)      # the finite entries first, in order
    cols = np.arange(a.shape[1])
    middle = (srt[np.maximum(k - 1, 0) // 2, cols] + srt[np.minimum(k // 2, len(a) - 1), cols]) / 2
    return np.where(k > 0, middle, np.nan)


def speedup_statistic(rows: np.ndarray) -> float:
    """The median speedup of ``rows`` (columns: success as 0/1, speedup) over the networks that
    improved; with none, over all of them (as the results' ``speedup_*_median_all``)."""
    rows = np.asarray(rows, dtype=float)
    ok = rows[:, 0] > 0
    return float(finite_medians(rows[ok, 1:] if ok.any() else rows[:, 1:])[0])


def speedup(successes: Sequence[bool], speedups: Sequence[float]) -> Interval:
    """:func:`speedup_statistic` over networks with its bootstrap 95% interval."""
    rows = np.column_stack([np.asarray(successes, dtype=float), np.asarray(speedups, dtype=float)])
    return bootstrap_interval(rows, statistic=speedup_statistic)


def paired(columns: Sequence[Sequence[float]]) -> np.ndarray | None:
    """The columns side by side, one row per network index (``None`` when their lengths differ)."""
    if len({len(c) for c in columns}) != 1:
        return None
    return np.column_stack([np.asarray(c, dtype=float) for c in columns])


def composite(columns: Sequence[Sequence[float]], claim: Callable[[np.ndarray], float]) -> tuple[Interval | None, str]:
    """``claim`` of the networks (one column per group, rows paired by network index) with its
    bootstrap 95% interval: the networks resampled and the whole claim recomputed on each
    resample. ``(None, why)`` when the groups cannot be resampled together."""
    rows = paired(columns)
    if rows is None or not len(rows):
        return None, UNEQUAL_GROUPS if rows is None else "no networks"
    return bootstrap_interval(rows, statistic=claim), ""
