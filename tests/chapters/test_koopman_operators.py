"""The Koopman-operators chapter's rows, findings and figures (koopman_repro.chapters.koopman_operators),
checked against direct computations with koopman_lib on the slow-manifold map, and on small
dicts shaped like the saved runs' fields (never the committed results files)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import koopman_lib as kl
from koopman_lib.toy import SlowManifoldMap, lift, relative_error
from koopman_repro.chapters import koopman_operators as ch

F64 = dict(dtype=torch.float64)
SYSTEM = SlowManifoldMap(mu=-0.05, lam=-1.0, dt=1.0)


def labelled(ax) -> bool:
    return bool(ax.get_xlabel() and ax.get_ylabel() and ax.get_title())


def test_relative_distance_of_states():
    a, b = torch.tensor([3.0, 4.0], **F64), torch.tensor([0.0, 4.0], **F64)
    assert ch.relative_distance(a, b) == pytest.approx(3.0 / 4.0)


def test_eigenvalue_rows_of_the_lifted_fit_are_exact_to_rounding():
    U = kl.finite_section(lift(SYSTEM.trajectory(2.0, -1.0, 30)))
    true = SYSTEM.eigenvalues().numpy()
    fitted, err = kl.toy.match_eigenvalues(kl.eigenvalues(U).numpy(), true)
    rows = ch.eigenvalue_rows(true, fitted, err)
    assert [r["eigenvalue"] for r in rows] == ["λ_x", "λ_y", "λ_x²"]
    assert rows[1]["true"] == f"{SYSTEM.beta:.15f}"
    assert max(r["abs. error"] for r in rows) < 1e-12


def _window_points(t1s=(0, 20, 60), k=30):
    fresh = SYSTEM.trajectory(1.0, 1.5, 21)
    points = []
    for t1 in t1s:
        win = SYSTEM.trajectory(2.0, -1.0, t1 + k)[:, t1:]
        U = kl.finite_section(win)
        same = SYSTEM.trajectory(2.0, -1.0, t1 + k + 20)[:, t1 + k - 1:]
        own = kl.path(U[None], same[None, :, 0], 20)[-1, 0]
        other = kl.path(U[None], fresh[None, :, 0], 20)[-1, 0]
        points.append(ch.window_start_point(t1, win, U, SYSTEM.manifold_slope, own, same[:, -1], other, fresh[:, -1]))
        e = np.sort(kl.eigenvalues(U).numpy().real)[::-1]
        assert (points[-1]["eig_large"], points[-1]["eig_small"]) == (e[0], e[1])
        assert points[-1]["error_own"] == pytest.approx(float((own - same[:, -1]).norm() / same[:, -1].norm()))
    return points


def test_window_start_points_on_and_off_the_slow_manifold():
    early, middle, late = _window_points()
    assert late["distance"] < 1e-12 < early["distance"]
    # off the manifold the [x, y] fit has neither lambda_y nor lambda_x^2 as second eigenvalue...
    assert abs(early["eig_small"] - SYSTEM.beta) > 1e-2 and abs(early["eig_small"] - SYSTEM.alpha ** 2) > 1e-2
    # ...on it, it finds lambda_x and lambda_x^2 and tracks its own trajectory...
    assert late["eig_large"] == pytest.approx(SYSTEM.alpha, abs=1e-9)
    assert late["eig_small"] == pytest.approx(SYSTEM.alpha ** 2, abs=1e-9)
    assert late["error_own"] < 1e-6
    # ...but mispredicts a start off it
    assert late["error_other"] > 1e-2


def test_window_start_figure_plots_the_fitted_eigenvalues_against_the_start():
    points = _window_points(t1s=(0, 10, 20, 60))
    fig = ch.window_start_figure(points, SYSTEM.eigenvalues().numpy(), steps=20, other_start=(1.0, 1.5))
    eig_ax, err_ax = fig.axes
    assert labelled(eig_ax) and labelled(err_ax)
    lines = eig_ax.get_lines()
    # three true eigenvalues as horizontal lines, then the two fitted series
    assert [ln.get_ydata()[0] for ln in lines[:3]] == pytest.approx([SYSTEM.alpha, SYSTEM.beta, SYSTEM.alpha ** 2])
    np.testing.assert_array_equal(lines[3].get_xdata(), [0, 10, 20, 60])
    np.testing.assert_array_equal(lines[3].get_ydata(), [p["eig_large"] for p in points])
    np.testing.assert_array_equal(lines[4].get_ydata(), [p["eig_small"] for p in points])
    texts = [t.get_text() for t in err_ax.get_legend().get_texts()]
    assert texts[2] == "rel. error, new start (1, 1.5), 20 steps"
    np.testing.assert_array_equal(err_ax.get_lines()[2].get_ydata(), [p["error_other"] for p in points])


def test_unit_circle_figure_plots_the_fitted_eigenvalues_and_the_modal_terms():
    window = SYSTEM.trajectory(2.0, -1.0, 30)
    U_lift, U_id = kl.finite_section(lift(window)), kl.finite_section(window)
    m = kl.spectra.modes(U_lift)
    names = ch.mode_names(m.eigenvalues.numpy(), SYSTEM.eigenvalues().numpy())
    assert sorted(names) == sorted(ch.EIGENVALUE_NAMES)
    z = lift(window)[:, -1]
    terms = torch.stack([kl.spectra.modal_terms(m, z, T) for T in range(21)])
    fig = ch.unit_circle_figure({"lifted": U_lift, "identity": U_id}, terms, names)
    circle_ax, terms_ax = fig.axes
    assert labelled(circle_ax) and labelled(terms_ax)
    for coll, U in zip(circle_ax.collections[-2:], (U_lift, U_id)):
        lam = kl.eigenvalues(U).numpy()
        np.testing.assert_array_equal(coll.get_offsets(), np.c_[lam.real, lam.imag])
    lines = terms_ax.get_lines()
    assert len(lines) == 3 + 2                       # one per mode, the sum, the rounding line
    j = names.index("λ_y")
    b = kl.spectra.modal_amplitudes(m, z)[j]
    expected = (b * m.eigenvalues[j] ** 7).abs() * m.right[:, j].norm()
    assert lines[j].get_ydata()[7] == pytest.approx(float(expected), rel=1e-12)
    # the dotted sum is the jump
    truth = kl.jump(U_lift[None], z[None], 20, method="power")[0]
    assert lines[3].get_ydata()[20] == pytest.approx(float(truth.norm()), rel=1e-10)
    assert lines[4].get_ydata()[0] == pytest.approx(ch.EPS * float(z.norm()), rel=1e-12)


def test_modal_rows_reproduce_the_jump_mode_by_mode():
    window = SYSTEM.trajectory(2.0, -1.0, 30)
    U = kl.finite_section(lift(window))
    m, z = kl.spectra.modes(U), lift(window)[:, -1]
    names = ch.mode_names(m.eigenvalues.numpy(), SYSTEM.eigenvalues().numpy())
    rows = ch.modal_rows(m, z, 40, names)
    assert [r["mode"] for r in rows] == names
    for j, r in enumerate(rows):
        assert r["|λ_j|^T, T = 40"] == pytest.approx(abs(complex(m.eigenvalues[j])) ** 40, rel=1e-12)
    terms = kl.spectra.modal_terms(m, z, 40)
    truth = kl.jump(U[None], z[None], 40, method="power")[0]
    assert ch.relative_distance(terms.sum(-1).real, truth) < 1e-12
    # the slow modes carry the state after 40 steps, lambda_y has decayed to nothing
    size = {r["mode"]: r["‖b_j λ_j^T φ_j‖"] for r in rows}
    assert size["λ_y"] < 1e-15 * size["λ_x"]


def _saved_eigs():
    return {"paper": {"re": [1.004, 0.5, 0.0], "im": [0.0, 0.0, 0.3]},
            "default": {"re": [1.0001, 1.00005, 0.99, 0.5], "im": [0.0, 0.0, 0.0, 0.1]},
            "default-stabilised": {"re": [1.0, 0.5], "im": [0.0, 0.0]}}


def test_growth_summary_and_figure_use_the_largest_modulus_to_the_power_T():
    eigs, T = _saved_eigs(), 1876
    g = ch.growth_summary(eigs, T)
    assert g["paper"]["outside"] == 1 and g["default"]["outside"] == 2 and g["default-stabilised"]["outside"] == 0
    assert g["paper"]["growth"] == pytest.approx(1.004 ** T, rel=1e-12)
    assert g["default"]["growth"] == pytest.approx(1.0001 ** T, rel=1e-12)
    assert g["paper"]["growth"] > 1000 > 2 > g["default"]["growth"]          # fewer outside, far more growth
    fig = ch.growth_figure(eigs, steps_per_epoch=938, horizons_epochs=[1, 2, 5], jump_epochs=2)
    ax, ax2 = fig.axes
    assert labelled(ax) and labelled(ax2)
    paper = ax.get_lines()[0]
    T_grid = paper.get_xdata() * 938
    np.testing.assert_allclose(paper.get_ydata(), 1.004 ** T_grid, rtol=1e-12)
    assert T_grid[-1] == pytest.approx(5 * 938)
    default_bars = ax2.get_lines()[1]
    np.testing.assert_allclose(default_bars.get_ydata(), np.array([1.0001, 1.00005]) ** T, rtol=1e-12)
    texts = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert texts == ["paper: 1 outside the circle", "default: 2 outside the circle",
                     "default-stabilised: 0 outside the circle"]


def test_method_rows_measure_against_the_reference_and_the_truth():
    Z, K = lift(SYSTEM.trajectory(2.0, -1.0, 30)), SYSTEM.koopman_matrix()
    fits = {m: kl.finite_section(Z, m) for m in ("pinv", "lstsq", "cholesky", "svd")}
    rows = ch.method_rows(fits, K, reference="pinv")
    assert [r["method"] for r in rows] == list(fits)
    assert rows[0]["rel. distance from pinv"] == 0.0
    assert rows[2]["rel. distance from pinv"] == relative_error(fits["cholesky"], fits["pinv"])
    assert all(r["rel. error vs exact U⋆"] < 1e-12 for r in rows)


def _sweep():
    """A synthetic conditioning sweep: pinv error eps cond, cholesky eps cond² (refusing from 1e10),
    rank 2 a fixed wrong operator, float32 bad from cond 1e4."""
    rows, eps = [], ch.EPS
    for i, c in enumerate(np.logspace(1, 12, 12)):
        base = {"dt": 10.0 ** -i / 2, "cond_F": c, "cond_gram": min(c * c, 1 / eps), "failed": None}
        rows.append({**base, "label": "pinv", "error": eps * c, "residual": eps})
        rows.append({**base, "label": "cholesky", "error": eps * c * c, "residual": eps,
                     **({"failed": "refused", "error": float("nan")} if c >= 1e10 else {})})
        rows.append({**base, "label": "svd, rank 2", "error": 0.3 + 0.01 * i, "residual": 10.0 ** -i})
        rows.append({**base, "label": "pinv, float32", "error": 0.5 if c >= 1e4 else 1e-7 * c, "residual": 1e-7})
    return rows


def test_series_and_exponents_of_a_sweep():
    sweep = _sweep()
    cond, err, failed = ch.series(sweep, "cholesky", "error")
    assert len(cond) == 12 and failed.count("refused") == 3
    assert ch.exponent(sweep, "pinv") == pytest.approx(1.0, abs=1e-9)
    assert ch.exponent(sweep, "cholesky") == pytest.approx(2.0, abs=1e-9)   # failures and error >= 1e-3 left out
    assert ch.exponent(sweep, "svd, rank 2", hi=1.0, field="residual") == pytest.approx(-1.0, abs=1e-9)
    assert np.isnan(ch.exponent(sweep, "svd, rank 2"))                     # never below 1e-3: nothing to fit


def test_sweep_findings_count_the_silent_and_the_refused_cholesky_fits():
    f = ch.sweep_findings(_sweep(), exponent_labels=("pinv", "cholesky"))
    chol_ok = [c for c in np.logspace(1, 12, 12) if c < 1e10]
    assert f.cholesky_total == 12
    assert f.cholesky_bad == [c for c in chol_ok if ch.EPS * c * c > 1e-2]
    assert f.cholesky_refused == [1e10, 1e11, 1e12]
    assert f.rank2_error == pytest.approx((0.3, 0.41)) and f.rank2_min_residual == pytest.approx(1e-11)
    assert f.float32_first_bad == (0.5, 1e4)
    text = f.markdown()
    assert f"in {len(f.cholesky_bad)} of 12 cases" in text and "refused with a `FitError` in 3 (from cond(F) = 1.0e+10)" in text
    assert "`pinv` 1.00, `cholesky` 2.00" in text and "from cond(F) = 1.0e+04" in text


def test_condition_rows_take_every_fourth_interval_of_one_fit():
    rows = ch.condition_rows(_sweep(), "pinv", every=4)
    assert [r["cond(F)"] for r in rows] == [1e1, 1e5, 1e9]
    assert rows[1]["cond(F)²"] == pytest.approx(1e10)


def test_conditioning_figure_has_both_panels_the_guides_and_the_refusals():
    labels = ["pinv", "cholesky", "svd, rank 2", "pinv, float32"]
    fig = ch.conditioning_figure(_sweep(), labels, k=40, dts=[1.0, 1e-6])
    err_ax, res_ax = fig.axes
    assert labelled(err_ax) and labelled(res_ax)
    assert len(err_ax.get_lines()) == len(labels) + 2 and len(res_ax.get_lines()) == len(labels)
    assert len(err_ax.collections) == 1                     # cholesky's refusals
    np.testing.assert_array_equal(err_ax.get_lines()[0].get_ydata(), ch.EPS * np.logspace(1, 12, 12))
    assert fig.get_suptitle() == "Finite-section fits of the lifted map, k = 40 snapshots, Δt from 1 to 1e-6"
    assert len(fig.legends[0].get_texts()) == len(labels) + 1 + 2


def _groups():
    """Two groups shaped like a saved run's ``singular_values_init0``."""
    g1 = {"block_size": 4, "n_blocks": 3, "k": 10, "cutoff_float32": 1e-3, "cutoff_float64": 1e-12,
          "relative_singular_values": [[1, 1e-2, 1e-5, 1e-13], [1, 1e-1, 1e-2, 1e-4], [1, 1e-4, 1e-8, 1e-9]]}
    g2 = {"block_size": 2, "n_blocks": 2, "k": 10, "cutoff_float32": 1e-3, "cutoff_float64": 1e-12,
          "relative_singular_values": [[1, 1e-1], [1, 1e-6]]}
    return [g1, g2]


def test_resolution_counts_per_block():
    n = ch.resolution_counts(_groups()[0])
    # inverted by the paper's cutoff: 3, 4, 4; by the default: 2, 3, 1; between: 1, 1, 3
    assert n == {"n_singular": 4, "paper": 4, "default": 2, "between": 1, "between_max": 3}


def test_mnist_spectra_figure_counts_eigenvalues_outside_the_unit_circle():
    eigs = {"paper": {"re": [1.01, 0.5, 0.0], "im": [0.0, 0.0, 1.2]},
            "default": {"re": [0.99, 0.5], "im": [0.0, 0.1]},
            "default-stabilised": {"re": [1.0, 0.5], "im": [0.0, 0.0]}}
    fig = ch.mnist_spectra_figure(_groups(), eigs)
    sv_ax, eig_ax = fig.axes
    assert labelled(sv_ax) and labelled(eig_ax)
    assert eig_ax.get_title() == "Eigenvalues of its 5 operators"
    texts = [t.get_text() for t in eig_ax.get_legend().get_texts()]
    assert texts == ["paper: 2 outside, max |λ| 1.20000", "default: 0 outside, max |λ| 0.99000",
                     "default-stabilised: 0 outside, max |λ| 1.00000"]
    sv_texts = [t.get_text() for t in sv_ax.get_legend().get_texts()]
    assert sv_texts[:2] == ["3 blocks of 4 (median)", "2 blocks of 2 (median)"]
    assert sv_texts[2] == "float32 resolution (the default): 1.0e-03"
    # 3 + 2 blocks, two medians, two resolutions
    assert len(sv_ax.get_lines()) == 5 + 2 + 2
    np.testing.assert_allclose(sv_ax.get_lines()[3].get_ydata(),
                               np.median(np.array(_groups()[0]["relative_singular_values"]), axis=0))


def test_de_spectra_runs_keep_only_dtypes_with_spectra_and_the_figure_has_a_panel_each():
    de = {"by_dtype": {"float32": {"singular_values_init0": {"adadelta": _groups()}},
                       "float64": {"singular_values_init0": {"adam": _groups()}},
                       "bfloat16": {}}}
    runs = ch.de_spectra_runs(de, "adadelta")
    assert list(runs) == ["float32"]
    assert ch.de_spectra_runs(None) == {} and ch.de_spectra_runs({"by_dtype": None}) == {}
    fig = ch.de_spectra_figure({"float32": _groups(), "float64": _groups()[1:]})
    assert len(fig.axes) == 2 and all(labelled(ax) for ax in fig.axes)
    assert fig.axes[1].get_title() == "DE solver, Adadelta, trained in float64"
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts[-2:] == ["float32 resolution: 1.0e-03", "float64 resolution: 1.0e-12"]   # of the larger block


def test_jump_row_compares_path_and_jumps_with_the_truth():
    window = SYSTEM.trajectory(2.0, -1.0, 30)
    U = kl.finite_section(lift(window))
    z = lift(window)[:, -1]
    truth = lift(SYSTEM.trajectory(2.0, -1.0, 30 + 10))[:, -1]
    stepwise = kl.path(U[None], z[None], 10)[-1, 0]
    by_eig = kl.jump(U[None], z[None], 10, method="eig")[0]
    row = ch.jump_row(10, truth, stepwise, by_eig, by_eig * (1 + 1e-3))
    assert row["‖w(t2+T)‖"] == pytest.approx(float(truth.norm()))
    assert row["path vs truth"] < 1e-12 and row["jump (eig) vs path"] < 1e-12
    assert row["jump (power) vs truth"] == pytest.approx(1e-3, rel=1e-6)


def test_pydmd_rows_and_the_closing_checks():
    Z = lift(SYSTEM.trajectory(2.0, -1.0, 30))
    ours = kl.finite_section(Z)
    exact = SYSTEM.eigenvalues().numpy()
    eigs = kl.eigenvalues(ours).numpy()
    same = {"eigs": eigs, "operator": ours.clone()}
    off = {"eigs": eigs * (1 + 1e-6), "operator": ours * (1 + 1e-6)}
    cases = [("lifted", Z, exact), ("identity", Z[:2], None)]
    rows = ch.pydmd_rows(cases, [(same, [], ours, 12.0), (off, ["warned"], ours, 3e5)])
    assert [r["snapshots"] for r in rows] == ["lifted", "identity"]
    assert [r["PyDMD condition warning"] for r in rows] == [False, True]
    assert rows[0]["rel. operator difference"] == 0.0 and rows[0]["max eigenvalue difference"] == 0.0
    assert rows[1]["rel. operator difference"] == pytest.approx(1e-6)
    assert rows[1]["max eig. error vs exact (ours / PyDMD)"] == "no exact operator on [x, y]"
    assert rows[0]["cond(snapshots)"] == 12.0

    fits = {m: kl.finite_section(Z, m) for m in ("pinv", "lstsq", "cholesky", "svd")}
    good = {"pinv": 1.02, "lstsq": 0.98, "svd": 1.0, "cholesky": 2.1}
    err_id, err_lift = np.array([0.0, 0.1, 0.5]), np.array([0.0, 1e-15, 2e-15])
    checks = ch.check_rows(np.array([1e-16, 3e-16]), err_id, err_lift, fits, good, [rows[0], rows[0]])
    assert [c["verdict"] for c in checks] == ["agrees"] * 6
    assert checks[1]["check"] == "prediction error of [x, y] after 2 steps"
    assert checks[1]["ours (ci)"] == "0.50 (lifted: 2.0e-15)"
    bad = ch.check_rows(np.array([1e-10]), np.array([0.0, 1e-3]), err_lift[:2], fits,
                        {**good, "cholesky": 1.5}, rows)
    assert [c["verdict"] for c in bad] == ["does not agree", "does not agree", "agrees", "agrees",
                                           "does not agree", "does not agree"]


def test_growth_markdown_names_the_fits_whose_count_and_growth_disagree():
    g = ch.growth_summary(_saved_eigs(), 1876)
    text = ch.growth_markdown(g, 1876)
    assert text.startswith("Over the jump ($T$ = 1876 steps): **paper**: 1 eigenvalues outside the circle")
    # default has more outside (2 > 1) but grows less than paper; stabilised has fewer and grows less: no flip
    assert text.count("has more eigenvalues outside the circle") == 1
    assert "The **default** fit has more eigenvalues outside the circle than the **paper** fit (2 against 1)" in text
    assert f"{g['paper']['growth'] / g['default']['growth']:.3g} times less" in text
