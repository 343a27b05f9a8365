"""Intervals over networks: Wilson intervals of rates and bootstrap intervals of medians, on
cases whose answers are known independently."""
import numpy as np
import pytest

from koopman_lib.metrics import Interval, bootstrap_interval, wilson_interval


def test_wilson_matches_published_values():
    # Newcombe (1998), Table I: 81 of 263 -> 0.2553 to 0.3662; 15 of 148 -> 0.0624 to 0.1605
    lo, hi = wilson_interval(81, 263)[2:]
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    lo, hi = wilson_interval(15, 148)[2:]
    assert (round(lo, 4), round(hi, 4)) == (0.0624, 0.1605)


def test_wilson_at_the_edges_and_the_issue_examples():
    three = wilson_interval(3, 3)
    assert three.value == 1.0 and three.ci_high == 1.0 and 0.43 < three.ci_low < 0.45
    zero = wilson_interval(0, 10)
    assert zero.ci_low == 0.0 and 0.27 < zero.ci_high < 0.29
    # 84% and 64% of 25 networks (the issue's examples): about 65-94% and 45-80%
    i84, i64 = wilson_interval(21, 25), wilson_interval(16, 25)
    assert 0.63 < i84.ci_low < 0.66 and 0.93 < i84.ci_high < 0.95
    assert 0.44 < i64.ci_low < 0.46 and 0.79 < i64.ci_high < 0.81
    assert wilson_interval(0, 0) == Interval(None, 0, None, None)
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson_interval(4, 3)


def test_bootstrap_median_interval_covers_the_median_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.normal(size=25), rng.normal(size=400)
    a, b = bootstrap_interval(small), bootstrap_interval(large)
    assert a.value == pytest.approx(np.median(small)) and a.n == 25
    assert a.ci_low <= a.value <= a.ci_high and b.ci_low <= b.value <= b.ci_high
    assert (b.ci_high - b.ci_low) < (a.ci_high - a.ci_low) / 2   # width ~ 1/sqrt(n)
    # the median of N(0,1) has asymptotic sd sqrt(pi/2)/sqrt(n): the 95% width is about 4 sd
    assert (b.ci_high - b.ci_low) == pytest.approx(2 * 1.96 * np.sqrt(np.pi / 2 / 400), rel=0.3)


def test_bootstrap_is_deterministic_drops_nonfinite_and_handles_edge_cases():
    x = [1.0, 2.0, np.nan, 3.0, np.inf, 4.0]
    assert bootstrap_interval(x) == bootstrap_interval([1.0, 2.0, 3.0, 4.0])
    assert bootstrap_interval([5.0]) == Interval(5.0, 1, 5.0, 5.0)
    assert bootstrap_interval([]) == Interval(None, 0, None, None)


def test_bootstrap_of_a_composite_claim_resamples_whole_networks():
    # rows = networks, columns = two horizons; the claim "median of column 0 minus column 1"
    rows = np.column_stack([np.arange(10.0), np.arange(10.0) - 1.0])
    iv = bootstrap_interval(rows, statistic=lambda r: float(np.median(r[:, 0] - r[:, 1])))
    assert iv == Interval(1.0, 10, 1.0, 1.0)   # paired per network: the difference never varies
