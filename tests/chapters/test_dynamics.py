"""The dynamics chapter's rows and figures (koopman_repro.chapters.dynamics), checked against
direct computations with koopman_lib.dynamics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from koopman_lib import dynamics as dy
from koopman_repro.chapters import dynamics as ch

F64 = dict(dtype=torch.float64)
QUAD = dy.Quadratic.ill_conditioned(kappa=25.0, angle=np.pi / 6)
ROSEN = dy.Rosenbrock(a=1.0, b=100.0)
WELL = dy.DoubleWell(k=2.0, tilt=0.0)


def labelled(ax) -> bool:
    return bool(ax.get_xlabel() and ax.get_ylabel() and ax.get_title())


def legend_covers(ax, x: float, y: float) -> bool:
    """Whether the drawn legend of ``ax`` covers the data point ``(x, y)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig = ax.figure
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = ax.get_legend().get_window_extent(renderer)
    return bool(box.contains(*ax.transData.transform((x, y))))


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


# -- rows ------------------------------------------------------------------------------------------
def test_observed_order_is_the_slope_in_log_log():
    h = np.array([0.04, 0.02, 0.01, 0.005])
    assert ch.observed_order(h, 3.0 * h ** 2) == pytest.approx(2.0, abs=1e-12)
    assert ch.observed_order(h, 0.7 * h) == pytest.approx(1.0, abs=1e-12)


def test_order_rows_measure_each_curve():
    h = np.array([0.04, 0.02, 0.01])
    rows = ch.order_rows(h, {"A → a": 2 * h, "B → b": h ** 2})
    assert [r["quantity"] for r in rows] == ["order of A → a", "order of B → b"]
    assert [r["theory"] for r in rows] == [1.0, 1.0]
    assert [r["measured"] for r in rows] == pytest.approx([1.0, 2.0], abs=1e-12)


def test_contraction_runs_and_rows_match_the_jacobian():
    runs = ch.contraction_runs(QUAD, (-2.5, 1.5), etas=(0.02, 0.075), eta_hb=0.02, beta=0.6, steps=80)
    assert [r["name"] for r in runs] == ["GD, η = 0.02", "GD, η = 0.075", "heavy ball, η = 0.02, β = 0.6"]
    assert [r["method"] for r in runs] == ["GD", "GD", "heavy ball"]
    lam = torch.linalg.eigvalsh(QUAD.H)                          # 1 and 25
    for r, eta in zip(runs[:2], (0.02, 0.075)):
        np.testing.assert_allclose(r["distance"], dy.gd(QUAD, (-2.5, 1.5), eta, 80).norm(dim=-1).numpy())
        assert r["rho"] == pytest.approx(float((1 - eta * lam).abs().max()), abs=1e-12)
    # heavy ball along Hessian eigenvalue l: roots of z² − (1 + β − η l) z + β
    roots = [np.roots([1.0, -(1 + 0.6 - 0.02 * float(l)), 0.6]) for l in lam]
    assert runs[2]["rho"] == pytest.approx(max(np.abs(r).max() for r in roots), abs=1e-9)
    rows = ch.contraction_rows(runs[1:], start=40)
    d = runs[1]["distance"]
    assert rows[0]["measured"] == pytest.approx((d[80] / d[40]) ** (1 / 40), rel=1e-14)
    for row in rows:                                              # on a quadratic the rate is rho(J)
        assert row["measured"] == pytest.approx(row["theory"], abs=2e-3)
    assert rows[1]["quantity"] == "contraction per step on the quadratic, heavy ball, η = 0.02, β = 0.6"


def test_linearisation_rows_give_the_first_errors_and_the_order():
    radii = np.logspace(-4, -0.5, 12)
    err_c, err_r = 3 * radii, np.full(12, 0.2)
    rows = ch.linearisation_rows(radii, err_c, err_r)
    assert rows[0]["quantity"] == "eigenvalue error of the centred fit, r = 1e-4 (tilted double well)"
    assert rows[0]["measured"] == pytest.approx(3e-4)
    assert rows[1]["measured"] == pytest.approx(1.0, abs=1e-12)
    assert (rows[2]["quantity"], rows[2]["measured"]) == ("eigenvalue error of the raw fit, r = 1e-4", 0.2)


def test_window_rows_format_both_fits_and_the_slow_mode_squared():
    fitted = {10: {"centred": np.array([0.5, 0.99]), "raw": np.array([0.9, 1.0])}}
    (row,) = ch.window_rows([10], np.arange(20.0), fitted, slow_mode=0.999)
    assert row == {"window start": 10, "distance to (1, 1)": 10.0, "centred fit: λ1": "0.500000",
                   "centred fit: λ2": "0.990000", "raw fit: λ1": "0.900000", "raw fit: λ2": "1.000000",
                   "slow mode squared": f"{0.999 ** 2:.6f}"}


def test_sgd_rows_pair_variances_and_sorted_mean_map_eigenvalues():
    lam = np.array([1.0, 25.0])
    theory = dy.sgd_stationary_variance(lam, 0.03, 3.0)
    rows = ch.sgd_rows(lam, theory, theory * 1.1, 0.03, [0.26, 0.96], path_steps=500)
    assert [r["quantity"] for r in rows] == [
        "SGD stationary variance along h = 1", "SGD stationary variance along h = 25",
        "finite section on one SGD path (500 steps): eigenvalue near 0.25",
        "finite section on one SGD path (500 steps): eigenvalue near 0.97"]
    assert [r["theory"] for r in rows] == pytest.approx([*theory, 0.25, 0.97])
    assert [r["measured"] for r in rows] == pytest.approx([*(theory * 1.1), 0.26, 0.96])


def test_schedule_rows_a_constant_rate_is_continued_exactly_and_a_decaying_one_is_not():
    x0, t1, t2 = torch.tensor([-2.5, 1.5], **F64), 30, 60
    schedules = {"constant: η = 0.03": dy.constant(0.03), "step decay: η halves": dy.step_decay(0.06, 0.5, 60)}
    paths, predicted = {}, {}
    for name, sched in schedules.items():
        paths[name] = path = dy.gd(QUAD, x0, sched, 120)
        U = dy.fit_operator(path[t1:t2 + 1], center=QUAD.minima[0])
        preds = [path[t2]]
        for _ in range(120 - t2):
            preds.append(U @ preds[-1])
        predicted[name] = torch.stack(preds).norm(dim=-1).numpy()
    rows = ch.schedule_rows(paths, predicted, QUAD.minima[0], t1, t2)
    assert rows[0]["quantity"] == "fixed operator from steps 30-60, distance at step 120 predicted / true (constant)"
    assert rows[0]["measured"] == pytest.approx(1.0, rel=1e-8)
    true_end = float(paths["step decay: η halves"][-1].norm())
    assert rows[1]["measured"] == pytest.approx(predicted["step decay: η halves"][-1] / true_end)
    assert rows[1]["measured"] < 0.9                              # the window's larger rate, kept


# -- figures ---------------------------------------------------------------------------------------
def test_surfaces_figure_draws_the_runs_it_computes_on_three_labelled_panels():
    rosen_gd = dy.gd(ROSEN, (-1.2, 1.0), 0.0015, 2000)
    fig = ch.surfaces_figure(QUAD, ROSEN, WELL, rosen_gd, 0.0015)
    quad_ax, rosen_ax, well_ax = fig.axes[:3]
    assert all(labelled(ax) for ax in (quad_ax, rosen_ax, well_ax))
    gd = quad_ax.get_lines()[0]
    np.testing.assert_allclose(gd.get_xdata(), dy.gd(QUAD, (-2.5, 1.5), 0.07, 60)[:, 0].numpy())
    assert legend_texts(quad_ax)[0] == "GD, η = 0.07"
    assert legend_texts(quad_ax)[3] == f"damped ODE, γ = {0.4 / 0.02 ** 0.5:.2f}"
    np.testing.assert_allclose(rosen_ax.get_lines()[0].get_ydata(), rosen_gd[::200, 1].numpy())
    assert len(well_ax.get_lines()) == 7 * 4 + 2                  # 28 GD paths, minima, saddle
    ends_right = [float(ln.get_xdata()[-1]) > 0 for ln in well_ax.get_lines()[:28]]
    colours = [ln.get_color() for ln in well_ax.get_lines()[:28]]
    assert colours == ["tab:blue" if right else "tab:purple" for right in ends_right]
    assert sum(ends_right) == 14                                  # symmetric starts, symmetric basins


def test_convergence_figure_draws_the_three_error_curves_and_the_guide():
    h = np.array([0.04, 0.02, 0.01])
    errors = {"GD → gradient flow (quadratic)": h, "GD → gradient flow (double well)": 2 * h,
              "heavy ball → damped ODE (double well)": 3 * h}
    fig = ch.convergence_figure(h, errors, gamma=1.5, t_end=2.0)
    (ax,) = fig.axes
    assert labelled(ax) and ax.get_xscale() == ax.get_yscale() == "log"
    assert [list(ln.get_ydata()) for ln in ax.get_lines()] == [list(h), list(2 * h), list(3 * h), list(0.5 * h)]
    assert legend_texts(ax)[2] == "heavy ball (η = Δt², β = 1 − 1.5Δt) vs damped ODE, double well"
    assert ax.get_ylabel() == "distance to the ODE solution at t = 2.0"


def test_jacobian_figure_draws_eigenvalues_rates_and_the_heavy_ball_spectrum():
    runs = ch.contraction_runs(QUAD, (-2.5, 1.5))
    lam = torch.linalg.eigvalsh(QUAD.H).numpy()
    fig = ch.jacobian_figure(QUAD, lam, runs)
    eig_ax, rate_ax, spec_ax = fig.axes
    assert all(labelled(ax) for ax in fig.axes)
    etas = eig_ax.get_lines()[0].get_xdata()
    np.testing.assert_allclose(eig_ax.get_lines()[1].get_ydata(), 1 - etas * 25.0, atol=1e-12)
    assert eig_ax.get_lines()[2].get_xdata()[0] == pytest.approx(2 / 25)   # η = 2 / h_max
    assert len(rate_ax.get_lines()) == 2 * len(runs)                       # each run and its predicted rate
    for r, (run, guide) in zip(runs, zip(rate_ax.get_lines()[::2], rate_ax.get_lines()[1::2])):
        np.testing.assert_array_equal(run.get_ydata(), r["distance"])
        assert guide.get_ydata()[40] == pytest.approx(r["distance"][40])
        assert guide.get_ydata()[41] / guide.get_ydata()[40] == pytest.approx(r["rho"])
    points = [ln for ln in spec_ax.get_lines() if ln.get_marker() == "o"]
    assert len(points) == 4
    for b, pts in zip((0.0, 0.3, 0.6, 0.9), points):
        lam_hb = dy.sorted_eigenvalues(dy.heavy_ball_jacobian(QUAD, QUAD.minima[0], 0.02, b)).numpy()
        np.testing.assert_allclose(pts.get_xdata(), lam_hb.real)
    # the sqrt(beta) circles: radius sqrt(beta), and the complex pairs of beta = 0.6, 0.9 lie on them
    circles = {ln.get_label(): np.hypot(ln.get_xdata(), ln.get_ydata()) for ln in spec_ax.get_lines()
               if ln.get_linestyle() == "--"}
    assert sorted(circles) == ["|λ| = √β = 0.55", "|λ| = √β = 0.77", "|λ| = √β = 0.95"]
    for b in (0.3, 0.6, 0.9):
        np.testing.assert_allclose(circles[f"|λ| = √β = {np.sqrt(b):.2f}"], np.sqrt(b), rtol=1e-12)
    for b, pts in zip((0.6, 0.9), points[2:]):
        z = pts.get_xdata() + 1j * pts.get_ydata()
        np.testing.assert_allclose(np.abs(z[z.imag != 0]), np.sqrt(b), rtol=1e-12)
    # the legend does not cover the origin, where the beta = 0 eigenvalues of w_{t-1} sit
    assert not legend_covers(spec_ax, 0.0, 0.0)


def test_fit_errors_figure_and_sgd_figure_and_schedules_figure_are_labelled_and_draw_their_data():
    radii = np.logspace(-4, -1, 4)
    fig = ch.fit_errors_figure(radii, {"centred": radii, "affine": 2 * radii, "raw": np.full(4, 0.3)}, 0.5, 30,
                               distances=np.linspace(1, 0.1, 300), starts=[10, 100], window=50)
    left, right = fig.axes
    assert labelled(left) and labelled(right)
    np.testing.assert_array_equal(left.get_lines()[2].get_ydata(), np.full(4, 0.3))
    assert len(right.patches) == 2 and right.patches[1].get_x() == 100 and right.patches[1].get_width() == 50

    paths = dy.sgd(QUAD, (-2.5, 1.5), 0.03, 50, 3.0, n_paths=8, generator=torch.Generator().manual_seed(0))
    lags = np.arange(10)
    fig = ch.sgd_figure(QUAD, paths, 0.03, 3.0, lags, 0.9 ** lags, slow_eigenvalue=1.0)
    left, right = fig.axes
    assert labelled(left) and labelled(right)
    assert len(left.get_lines()) == 5 + 1                                  # five paths and GD
    np.testing.assert_allclose(left.get_lines()[5].get_xdata(), dy.gd(QUAD, (-2.5, 1.5), 0.03, 50)[:, 0].numpy())
    assert legend_texts(left)[1] == "8 SGD runs at step 50"
    np.testing.assert_allclose(right.get_lines()[1].get_ydata(), 0.97 ** lags)

    schedules = {"a": dy.constant(0.03), "b": dy.inverse_time(4.0, 50.0)}
    paths = {n: dy.gd(QUAD, (-2.5, 1.5), s, 100) for n, s in schedules.items()}
    predicted = {n: np.linspace(1, 0.5, 41) for n in schedules}
    fig = ch.schedules_figure(schedules, paths, predicted, 30, 60)
    left, right = fig.axes
    assert labelled(left) and labelled(right)
    assert len(left.get_lines()) == 4 and len(right.get_lines()) == 2
    np.testing.assert_array_equal(left.get_lines()[1].get_xdata(), np.arange(60, 101))
    np.testing.assert_allclose(right.get_lines()[1].get_ydata(), [4.0 / (50 + t) for t in range(100)])
    assert left.get_title() == "GD (solid) and the fitted operator iterated from step 60 (dotted)"


# -- issue 27: the figures that carry the argument, the exercises' measurements ---------------------
def test_window_eigenvalues_figure_plots_one_minus_the_fitted_eigenvalues_and_the_modes():
    fitted = {10: {"centred": np.array([1.0001, 1.0001]), "raw": np.array([0.998, 0.9999])},
              20: {"centred": np.array([0.9988, 0.9994]), "raw": np.array([0.9994, 1.0])}}
    fig = ch.window_eigenvalues_figure([10, 20], fitted, slow_mode=0.9994, fast_mode=-0.5, window=50)
    (ax,) = fig.axes
    assert labelled(ax) and ax.get_yscale() == "log"
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_allclose(lines["slow mode 1 − η h_min"].get_ydata(), 1 - 0.9994)
    np.testing.assert_allclose(lines["slow mode squared"].get_ydata(), 1 - 0.9994 ** 2)
    np.testing.assert_allclose(lines["fast mode 1 − η h_max = -0.50, in no window"].get_ydata(), 1.5)
    # above 1: open markers at |1 - Re λ|; exactly 1: at the floor 1e-12
    open_centred = lines["centred fit: w − w*, Re λ > 1 (at |1 − Re λ|)"]
    np.testing.assert_allclose(open_centred.get_ydata(), [1e-4], rtol=1e-6)
    assert open_centred.get_markerfacecolor() == "none"
    np.testing.assert_allclose(lines["centred fit: w − w*"].get_ydata(), [1 - 0.9988], rtol=1e-9)
    assert not legend_covers(ax, 15, 1e-3)                                 # legend outside the axes


def test_slow_manifold_figure_draws_the_invariant_parabola_the_window_and_the_fits():
    from koopman_lib.toy import SlowManifoldMap
    system = SlowManifoldMap(mu=-0.05, lam=-1.0, dt=1.0)
    starts, t1, k = [(2.0, -1.0), (-1.0, 3.0)], 40, 30
    fit_starts = np.array([0, 10])
    fitted = {"fit on (x, y)": [[0.3, 0.95], [0.9, 0.95]], "fit on (x, y, x²)": [[0.37, 0.9, 0.95]] * 2}
    fig = ch.slow_manifold_figure(system, starts, (2.0, -1.0), t1, k, fit_starts, fitted)
    left, right = fig.axes
    assert labelled(left) and labelled(right)
    lines = {ln.get_label(): ln for ln in left.get_lines()}
    parabola = lines["invariant parabola y = b x², b = 1.111"]
    b = system.lam / (system.lam - 2 * system.mu)                       # 1 / 0.9
    np.testing.assert_allclose(parabola.get_ydata(), b * parabola.get_xdata() ** 2, rtol=1e-12)
    window = lines["fit window: steps 40–69 from (2.0, -1.0)"]
    truth = system.trajectory(2.0, -1.0, t1 + k).numpy()[:, t1:]
    np.testing.assert_array_equal(window.get_xdata(), truth[0])
    np.testing.assert_allclose(window.get_ydata(), b * truth[0] ** 2, atol=1e-12)   # on the parabola
    first = left.get_lines()[0]                                           # the trajectory from (2, -1)
    np.testing.assert_array_equal(first.get_xdata(), system.trajectory(2.0, -1.0, t1 + k).numpy()[0])
    ref = {ln.get_label(): float(ln.get_ydata()[0]) for ln in right.get_lines() if ln.get_linestyle() != "None"}
    assert ref["$e^{\\nu\\Delta t}$ (towards the parabola)"] == pytest.approx(np.exp(-1.0))
    assert ref["$e^{2\\mu\\Delta t}$ (along, squared)"] == pytest.approx(np.exp(-0.1))
    assert right.get_lines()[0].get_label() == "fit on (x, y)"
    np.testing.assert_array_equal(right.get_lines()[1].get_ydata(), [0.95, 0.95])


def heavy_ball_fits(eta=0.02, beta=0.6, k=40, horizon=80):
    """The notebook's two heavy-ball fits and their relative prediction errors."""
    import koopman_lib as kl
    p = dy.heavy_ball(QUAD, (-2.5, 1.5), eta, beta, k + horizon)
    U_w, U_wd = dy.fit_operator(p[:k + 1]), dy.fit_operator(p[:k + 1], delays=2)
    truth = p[k:]
    pred = {"fit on w(t)": kl.path(U_w[None], truth[:1], horizon)[:, 0],
            "fit on [w(t); w(t−1)]": kl.path(U_wd[None], dy.delay_states(p[k - 1:k + 1]), horizon)[:, 0, :2]}
    errors = {n: ((q - truth).norm(dim=1) / truth.norm(dim=1)).numpy() for n, q in pred.items()}
    return errors, U_w, U_wd


def test_heavy_ball_fit_rows_and_figure_delay_fit_exact_weights_alone_not():
    errors, U_w, U_wd = heavy_ball_fits()
    rows = ch.heavy_ball_fit_rows(errors, exact="fit on [w(t); w(t−1)]")
    assert [r["theory"] for r in rows] == ["> 0 (2 eigenvalues for 4 modes)", 0.0]
    assert rows[1]["quantity"] == ("heavy ball on the quadratic, fit on [w(t); w(t−1)]: largest relative error "
                                   "over 80 predicted steps")
    assert rows[1]["measured"] < 1e-12                                     # exact to rounding
    assert rows[0]["measured"] > 0.1 and errors["fit on w(t)"][1] > 1e-2    # wrong from the first step
    J = dy.heavy_ball_jacobian(QUAD, QUAD.minima[0], 0.02, 0.6)
    eigs = {"fit on w(t)": dy.sorted_eigenvalues(U_w).numpy(), "fit on [w(t); w(t−1)]": dy.sorted_eigenvalues(U_wd).numpy(),
            "heavy-ball Jacobian": dy.sorted_eigenvalues(J).numpy()}
    np.testing.assert_allclose(eigs["fit on [w(t); w(t−1)]"], eigs["heavy-ball Jacobian"], atol=1e-10)
    fig = ch.heavy_ball_fit_figure(np.arange(81), errors, eigs, beta=0.6)
    left, right = fig.axes
    assert labelled(left) and labelled(right) and left.get_yscale() == "log"
    np.testing.assert_allclose(left.get_lines()[0].get_ydata(), np.maximum(errors["fit on w(t)"], 1e-17))
    circle = {ln.get_label(): ln for ln in right.get_lines()}["|λ| = √β = 0.775"]
    np.testing.assert_allclose(np.hypot(circle.get_xdata(), circle.get_ydata()), np.sqrt(0.6), rtol=1e-12)
    assert legend_texts(right)[2:] == ["fit on w(t) (2)", "fit on [w(t); w(t−1)] (4)", "heavy-ball Jacobian (4)"]


def test_zigzag_onset_is_one_over_the_largest_hessian_eigenvalue():
    steep = torch.linalg.eigh(QUAD.H).eigenvectors[:, -1]
    assert ch.zigzags(dy.gd(QUAD, (-2.5, 1.5), 0.07, 5), steep)
    assert not ch.zigzags(dy.gd(QUAD, (-2.5, 1.5), 0.03, 5), steep)
    etas = np.arange(0.03, 0.05, 1e-4) + 5e-5
    onset = ch.zigzag_onset(QUAD, (-2.5, 1.5), steep, etas)
    assert 1 / 25 < onset < 1 / 25 + 1e-4
    assert np.isnan(ch.zigzag_onset(QUAD, (-2.5, 1.5), steep, [0.01, 0.02]))
