"""Invariants of training seen as a dynamical system (koopman_lib.dynamics)."""
import numpy as np
import pytest
import torch

from koopman_lib import dynamics as dy

LOSSES = [dy.Quadratic.ill_conditioned(10.0, 0.4, center=(0.5, -1.0)), dy.Rosenbrock(1.0, 10.0),
          dy.DoubleWell(2.0, 0.1)]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda l: l.name)
def test_grad_and_hessian_match_autograd(loss):
    x = torch.tensor([[0.3, -0.7], [1.2, 0.4], [-0.9, 1.1]], dtype=torch.float64)
    for xi in x:
        g = torch.autograd.functional.jacobian(lambda z: loss.value(z), xi)
        H = torch.autograd.functional.hessian(lambda z: loss.value(z), xi)
        torch.testing.assert_close(loss.grad(xi), g)
        torch.testing.assert_close(loss.hessian(xi), H)
    assert loss.grad(x).shape == (3, 2) and loss.hessian(x).shape == (3, 2, 2)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda l: l.name)
def test_minima_are_stationary_with_positive_definite_hessian(loss):
    torch.testing.assert_close(loss.grad(loss.minima), torch.zeros_like(loss.minima), atol=1e-12, rtol=0)
    assert bool((torch.linalg.eigvalsh(loss.hessian(loss.minima)) > 0).all())


def test_gd_on_quadratic_is_the_closed_form_matrix_power():
    loss = dy.Quadratic.ill_conditioned(25.0, 0.3, center=(1.0, 2.0))
    eta, T = 0.07, 60
    x0 = torch.tensor([[-2.0, 3.0], [0.5, -1.0]], dtype=torch.float64)
    path = dy.gd(loss, x0, eta, T)
    J = torch.eye(2, dtype=torch.float64) - eta * loss.H
    for t in (0, 1, 7, T):
        expected = loss.center + (x0 - loss.center) @ torch.linalg.matrix_power(J, t).T
        torch.testing.assert_close(path[t], expected, rtol=1e-12, atol=1e-12)


def test_gd_diverges_iff_eta_above_two_over_lambda_max():
    loss = dy.Quadratic(torch.diag(torch.tensor([1.0, 20.0], dtype=torch.float64)))
    eta_max = dy.max_stable_eta(loss.H)
    assert eta_max == pytest.approx(0.1)
    x0 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert dy.gd(loss, x0, 0.95 * eta_max, 400)[-1].norm() < 1e-3
    assert dy.gd(loss, x0, 1.05 * eta_max, 400)[-1].norm() > 1e3


def test_gd_jacobian_matches_autograd_of_the_map_and_eigs_are_one_minus_eta_lambda():
    loss, eta = dy.Rosenbrock(1.0, 10.0), 0.01
    x = torch.tensor([0.3, 0.8], dtype=torch.float64)
    J_auto = torch.autograd.functional.jacobian(lambda z: z - eta * loss.grad(z), x)
    torch.testing.assert_close(dy.gd_jacobian(loss, x, eta), J_auto)
    xs = loss.minima[0]
    lam_H = torch.linalg.eigvalsh(loss.hessian(xs))
    torch.testing.assert_close(dy.sorted_eigenvalues(dy.gd_jacobian(loss, xs, eta)).real,
                               (1 - eta * lam_H).sort().values)


def test_heavy_ball_two_step_form_and_its_jacobian():
    loss, eta, beta = dy.DoubleWell(2.0, 0.0), 0.05, 0.8
    x0 = torch.tensor([0.4, 0.9], dtype=torch.float64)
    p = dy.heavy_ball(loss, x0, eta, beta, 30)
    for t in range(1, 30):
        two_step = p[t] - eta * loss.grad(p[t]) + beta * (p[t] - p[t - 1])
        torch.testing.assert_close(p[t + 1], two_step, rtol=1e-13, atol=1e-13)

    def state_map(s):
        x, x_prev = s[:2], s[2:]
        return torch.cat([x - eta * loss.grad(x) + beta * (x - x_prev), x])
    xs = loss.minima[1]
    J_auto = torch.autograd.functional.jacobian(state_map, torch.cat([xs, xs]))
    torch.testing.assert_close(dy.heavy_ball_jacobian(loss, xs, eta, beta), J_auto)


def test_heavy_ball_on_quadratic_converges_at_the_spectral_radius_of_its_jacobian():
    loss = dy.Quadratic(torch.diag(torch.tensor([1.0, 10.0], dtype=torch.float64)))
    eta, beta = 0.02, 0.7
    rho = float(dy.sorted_eigenvalues(dy.heavy_ball_jacobian(loss, loss.minima[0], eta, beta)).abs().max())
    p = dy.heavy_ball(loss, torch.tensor([1.0, 1.0], dtype=torch.float64), eta, beta, 600)
    rate = (p[600].norm() / p[300].norm()) ** (1 / 300)
    assert float(rate) == pytest.approx(rho, rel=2e-3)


@pytest.mark.parametrize("loss", [LOSSES[0], LOSSES[2]], ids=lambda l: l.name)
def test_gd_converges_to_gradient_flow_at_first_order(loss):
    x0 = torch.tensor([0.2, 0.9], dtype=torch.float64)
    t_end = 2.0
    flow_end = dy.gradient_flow(loss, x0, [0.0, t_end])[-1]
    errs = []
    for h in (0.02, 0.01, 0.005):
        errs.append(float((dy.gd(loss, x0, h, round(t_end / h))[-1] - flow_end).norm()))
    assert errs[0] > errs[1] > errs[2]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(orders - 1) < 0.15), orders


def test_heavy_ball_discretisation_converges_to_the_damped_ode():
    loss, gamma = dy.DoubleWell(2.0, 0.0), 1.5
    x0 = torch.tensor([0.2, 0.9], dtype=torch.float64)
    v0 = torch.tensor([0.5, -0.3], dtype=torch.float64)
    t_end = 3.0
    ode_end = dy.heavy_ball_flow(loss, x0, gamma, [0.0, t_end], v0=v0)[-1, :2]
    errs = []
    for h in (0.02, 0.01, 0.005):
        eta, beta = dy.heavy_ball_from_ode(h, gamma)
        p = dy.heavy_ball(loss, x0, eta, beta, round(t_end / h), v0=h * v0)
        errs.append(float((p[-1] - ode_end).norm()))
    assert errs[0] > errs[1] > errs[2]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders > 0.8), orders


def test_sgd_without_noise_is_gd_and_is_reproducible_with_a_seed():
    loss = LOSSES[1]
    x0 = torch.tensor([-0.5, 1.5], dtype=torch.float64)
    torch.testing.assert_close(dy.sgd(loss, x0, 0.01, 50, noise=0.0, n_paths=3)[:, 1], dy.gd(loss, x0, 0.01, 50))
    a = dy.sgd(loss, x0, 0.01, 50, noise=1.0, n_paths=4, generator=torch.Generator().manual_seed(3))
    b = dy.sgd(loss, x0, 0.01, 50, noise=1.0, n_paths=4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[:, 0], a[:, 1])


def test_sgd_stationary_variance_on_a_quadratic():
    lam = torch.tensor([1.0, 8.0], dtype=torch.float64)
    loss = dy.Quadratic(torch.diag(lam))
    eta, noise = 0.05, 2.0
    p = dy.sgd(loss, (0.0, 0.0), eta, 2000, noise, n_paths=400, generator=torch.Generator().manual_seed(0))
    var = p[200:].pow(2).mean(dim=(0, 1)).numpy()  # mean 0; burn-in 200 steps >> 1 / (eta * lam_min) = 20
    expected = dy.sgd_stationary_variance(lam.numpy(), eta, noise)
    np.testing.assert_allclose(var, expected, rtol=0.05)


def test_schedules_and_non_autonomous_gd():
    s = dy.step_decay(0.1, 0.5, 10)
    assert [s(0), s(9), s(10), s(25)] == [0.1, 0.1, 0.05, 0.025]
    assert dy.inverse_time(8.0, 1000.0)(0) == pytest.approx(0.008)
    loss = dy.Quadratic.ill_conditioned(5.0, 0.2)
    x0 = torch.tensor([1.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(dy.gd(loss, x0, dy.constant(0.05), 20), dy.gd(loss, x0, 0.05, 20))
    sched = dy.inverse_time(2.0, 10.0)
    p = dy.gd(loss, x0, sched, 40)
    P = dy.propagator(loss.H, [sched(t) for t in range(40)])
    torch.testing.assert_close(p[-1], P @ x0, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="learning rate"):
        dy.gd(loss, x0, -0.1, 3)


def test_finite_section_recovers_i_minus_eta_h_from_a_gd_path():
    loss = dy.Quadratic.ill_conditioned(25.0, 0.3, center=(1.0, 2.0))
    eta = 0.03
    p = dy.gd(loss, torch.tensor([-1.0, 0.5], dtype=torch.float64), eta, 40)
    J = torch.eye(2, dtype=torch.float64) - eta * loss.H
    torch.testing.assert_close(dy.fit_operator(p, center=loss.center), J, rtol=1e-9, atol=1e-9)
    U = dy.fit_operator(p, affine=True)  # raw coordinates, observable [x; 1]
    torch.testing.assert_close(U[:2, :2], J, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(U[:2, 2], (torch.eye(2, dtype=torch.float64) - J) @ loss.center, rtol=1e-7, atol=1e-7)
    # identity observables on raw coordinates cannot hold the affine part: a 2x2 fit is not J
    assert not torch.allclose(dy.fit_operator(p), J, atol=1e-3)


def test_finite_section_near_a_nonlinear_minimum_approaches_the_linearisation():
    loss, eta = dy.Rosenbrock(1.0, 10.0), 0.005  # J = I - eta H has eigenvalues 0.49 and 0.998
    xs = loss.minima[0]
    lam_J = torch.linalg.eigvalsh(dy.gd_jacobian(loss, xs, eta))
    errs = []
    for r in (1e-1, 1e-2, 1e-3):
        p = dy.gd(loss, xs + r * torch.tensor([0.6, -0.8], dtype=torch.float64), eta, 30)
        lam_U = dy.sorted_eigenvalues(dy.fit_operator(p, center=xs)).real
        errs.append(float((lam_U - lam_J).abs().max()))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 7) & (ratios < 13)), errs  # the eigenvalue error is first order in the distance


def test_sgd_path_gives_a_consistent_fit_of_the_mean_map():
    loss = dy.Quadratic(torch.diag(torch.tensor([1.0, 5.0], dtype=torch.float64)))
    eta = 0.05
    p = dy.sgd(loss, (0.0, 0.0), eta, 20000, 1.0, generator=torch.Generator().manual_seed(1))[:, 0]
    lam_U = dy.sorted_eigenvalues(dy.fit_operator(p)).real
    np.testing.assert_allclose(lam_U.numpy(), [1 - eta * 5.0, 1 - eta * 1.0], atol=0.02)


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="positive definite"):
        dy.Quadratic([[1.0, 0.0], [0.0, -1.0]])
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        dy.gd(dy.Rosenbrock(), torch.zeros(3), 0.1, 2)
    with pytest.raises(ValueError, match="beta"):
        dy.heavy_ball(dy.Rosenbrock(), torch.zeros(2), 0.1, 1.0, 2)


def test_delay_states_stack_the_previous_steps_newest_first():
    p = torch.arange(12.0, dtype=torch.float64).reshape(6, 2)
    Z = dy.delay_states(p, 2)
    assert Z.shape == (5, 4)
    torch.testing.assert_close(Z[0], torch.tensor([2.0, 3.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(dy.delay_states(p, 1), p)


def test_heavy_ball_on_a_quadratic_is_linear_on_delay_states_only():
    loss = dy.Quadratic.ill_conditioned(25.0, 0.4)
    eta, beta = 0.02, 0.6
    p = dy.heavy_ball(loss, (-2.5, 1.5), eta, beta, 60)
    J = dy.heavy_ball_jacobian(loss, loss.minima[0], eta, beta)       # exact map on [x_t; x_{t-1}]
    torch.testing.assert_close(dy.fit_operator(p, delays=2), J, rtol=1e-9, atol=1e-9)
    U = dy.fit_operator(p)                                            # 2 x 2: at most 2 of its 4 eigenvalues
    assert U.shape == (2, 2)
    assert float((U @ p[:-1].T - p[1:].T).abs().max()) > 1e-2          # no 2 x 2 matrix steps it


def test_zigzag_threshold_is_one_over_the_largest_hessian_eigenvalue():
    loss = dy.Quadratic.ill_conditioned(25.0, 0.3)
    assert dy.zigzag_eta(loss.H) == pytest.approx(1 / 25.0, rel=1e-12)
    assert dy.zigzag_eta(loss.H) == pytest.approx(dy.max_stable_eta(loss.H) / 2, rel=1e-12)
    steep = torch.linalg.eigh(loss.H).eigenvectors[:, -1]
    for eta, alternates in ((0.99 / 25, False), (1.01 / 25, True)):
        c = dy.gd(loss, (1.0, 1.0), eta, 5) @ steep                  # the steep coordinate
        assert bool((c[1:] * c[:-1] < 0).all()) is alternates
