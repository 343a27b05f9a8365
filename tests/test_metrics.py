import numpy as np
import pytest

import koopman_lib as kl


def test_t_eq_interpolates_between_optimizer_losses():
    losses = [1.0, 0.8, 0.6, 0.4, 0.2]
    parts = kl.t_eq_parts(0.5, losses)
    assert parts.Q == 2 and parts.R == pytest.approx(0.5) and not parts.censored
    assert kl.t_eq(0.5, losses) == pytest.approx(2.5)
    assert kl.t_eq(0.6, losses) == pytest.approx(2.0)  # reaches l_2 = 0.6 exactly at index 2
    assert kl.t_eq(0.79, losses) == pytest.approx(1.05)


def test_t_eq_zero_when_koopman_did_not_lower_the_loss():
    losses = [1.0, 0.8, 0.6]
    assert kl.t_eq(1.0, losses) == 0.0
    assert kl.t_eq(5.0, losses) == 0.0
    assert kl.t_eq(float("nan"), losses) == 0.0
    assert not kl.success(kl.t_eq(1.2, losses))
    assert kl.success(kl.t_eq(0.9, losses))


def test_t_eq_censored_when_better_than_every_optimizer_loss():
    parts = kl.t_eq_parts(0.1, [1.0, 0.8, 0.6])
    assert parts.censored and parts.value == 2.0


def test_t_eq_uses_last_crossing_for_noisy_losses():
    # S10: Q = max{i : l_i > l_KO}
    losses = [1.0, 0.5, 0.7, 0.4]
    parts = kl.t_eq_parts(0.6, losses)
    assert parts.Q == 2 and parts.R == pytest.approx(1 / 3)


def test_t_eq_validates_input():
    with pytest.raises(ValueError):
        kl.t_eq(0.5, [1.0])


def test_equivalent_runtime_eq13():
    parts = kl.t_eq_parts(0.5, [1.0, 0.8, 0.6, 0.4])  # Q = 2, R = 0.5
    tau = [10.0, 11.0, 12.0]  # run time of epochs 1, 2, 3 after t2
    assert kl.equivalent_runtime(parts, tau) == pytest.approx(10 + 11 + 0.5 * 12)
    with pytest.raises(ValueError):
        kl.equivalent_runtime(parts, tau[:2])


def test_speedup():
    assert kl.speedup(10.0, 2.0) == 5.0
    with pytest.raises(ValueError):
        kl.speedup(1.0, 0.0)


def test_error_ratio_selects_best_networks():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(5, 8))
    end = start + 1.0  # true evolution 1 everywhere
    pred = end.copy()
    pred[0] += 0.01
    pred[1] += 0.02
    pred[2:] += 5.0  # three bad networks
    out = kl.error_ratio(pred, end, start, n_best=2)
    assert sorted(out["networks"]) == [0, 1]
    assert out["ratio"] == pytest.approx(0.015)
    with pytest.raises(ValueError):
        kl.error_ratio(pred[0], end[0], start[0])


def test_finite_median_skips_none_nan_and_inf():
    from koopman_lib.metrics import finite_median
    assert finite_median([3.0, None, float("nan"), 1.0, float("inf"), 2.0]) == 2.0
    assert finite_median([[1.0, 4.0], [2.0, 3.0]]) == 2.5
    assert finite_median([]) is None and finite_median([None], empty=-1.0) == -1.0
