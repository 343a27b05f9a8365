import pytest
import torch

from koopman_lib.baselines import (MemberLBFGS, continue_lbfgs, continue_training, line_fit, linear_extrapolation,
                                   linear_path, make_optimizer, value_at_time)


def test_line_is_extrapolated_exactly_and_noise_is_averaged():
    g = torch.Generator().manual_seed(0)
    w0, v = torch.randn(2, 5, generator=g, dtype=torch.float64), torch.randn(2, 5, generator=g, dtype=torch.float64)
    t = torch.arange(30, dtype=torch.float64).reshape(-1, 1, 1)
    snaps = w0 + t * v  # (30, 2, 5)
    assert torch.allclose(linear_extrapolation(snaps, 12), w0 + 41 * v, atol=1e-10)
    assert torch.allclose(linear_extrapolation(snaps, 12, L=2), w0 + 41 * v, atol=1e-10)
    path = linear_path(snaps, [0, 5, 10], L=7)
    assert path.shape == (3, 2, 5) and torch.allclose(path[2], w0 + 39 * v, atol=1e-10)
    level, slope = line_fit(snaps)
    assert torch.allclose(slope, v, atol=1e-12) and torch.allclose(level, snaps[-1], atol=1e-10)
    # a least-squares line: the residuals of a noisy line are orthogonal to [1, t]
    noisy = snaps + 0.1 * torch.randn(snaps.shape, generator=g, dtype=torch.float64)
    level, slope = line_fit(noisy)
    fitted = level + (t - 29) * slope
    res = noisy - fitted
    assert torch.allclose(res.sum(0), torch.zeros(2, 5, dtype=torch.float64), atol=1e-10)
    assert torch.allclose((res * t).sum(0), torch.zeros(2, 5, dtype=torch.float64), atol=1e-9)


def test_extrapolation_input_errors():
    snaps = torch.zeros(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="2 <= L <= 5"):
        linear_extrapolation(snaps, 3, L=6)
    with pytest.raises(ValueError, match="non-negative"):
        linear_extrapolation(snaps, -1)
    snaps[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        linear_extrapolation(snaps, 3)


def quadratic(theta, step=None):
    """Independent convex quadratics per member: 0.5 sum_i a_i (theta_i - 1)^2."""
    a = torch.linspace(0.5, 2.0, theta.shape[-1], dtype=theta.dtype)
    return 0.5 * (a * (theta - 1) ** 2).sum(-1)


@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "adam", "adadelta", "adagrad"])
def test_ensemble_optimizer_equals_independent_runs(name):
    g = torch.Generator().manual_seed(2)
    theta0 = torch.randn(3, 6, generator=g, dtype=torch.float64)
    lr = 1.0 if name == "adadelta" else 0.05
    both = continue_training(theta0, quadratic, 20, name, lr=lr, every=5, eval_fn=quadratic)
    single = continue_training(theta0[1:2], quadratic, 20, name, lr=lr)
    assert torch.allclose(both.theta[1], single.theta[0], atol=1e-12)
    assert both.steps == [0, 5, 10, 15, 20] and len(both.losses) == 5 and both.evals == 20
    assert all(b >= a for a, b in zip(both.seconds, both.seconds[1:]))
    assert bool((both.losses[-1] < both.losses[0]).all())
    assert torch.equal(theta0, torch.randn(3, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64))


def test_lbfgs_per_member_solves_quadratic_and_is_independent():
    g = torch.Generator().manual_seed(3)
    theta0 = torch.randn(2, 8, generator=g, dtype=torch.float64)
    tr = continue_lbfgs(theta0, quadratic, 25, every=25, eval_fn=quadratic)
    assert torch.allclose(tr.theta, torch.ones(2, 8, dtype=torch.float64), atol=1e-6)
    assert tr.evals >= 2 * 25
    a = MemberLBFGS(theta0, quadratic)
    b = MemberLBFGS(theta0[:1], quadratic)
    for s in range(1, 4):
        a.step(s)
        b.step(s)
    assert torch.allclose(a.theta[0], b.theta[0], atol=1e-12)


def test_make_optimizer_and_value_at_time():
    p = [torch.zeros(2, requires_grad=True)]
    assert isinstance(make_optimizer("sgd_momentum", p, 0.1), torch.optim.SGD)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("rmsprop", p, 0.1)
    assert value_at_time([0.0, 1.0, 2.0, 3.0], ["a", "b", "c", "d"], 2.5) == "c"
    assert value_at_time([0.0, 1.0], ["a", "b"], -1) == "a"
