"""The slow-manifold map (a finite Koopman-invariant subspace) and the fit diagnostics."""
import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings, strategies as st

import koopman_lib as kl
from koopman_lib.toy import (PYDMD_CONDITION_WARNING, SlowManifoldMap, compare_fits, conditioning_sweep,
                             lift, match_eigenvalues, pydmd_exact_dmd, relative_error)

FITS = [("pinv", {"method": "pinv"}), ("lstsq", {"method": "lstsq"}),
        ("cholesky", {"method": "cholesky"}), ("svd", {"method": "svd"})]


def continuous_matrix(mu, lam):
    """d/dt [x, y, x^2] = A [x, y, x^2] for x' = mu x, y' = lam (y - x^2)."""
    return np.array([[mu, 0, 0], [0, lam, -lam], [0, 0, 2 * mu]], dtype=float)


@pytest.mark.parametrize("mu,lam,dt", [(-0.05, -1.0, 1.0), (-0.3, 0.2, 0.5), (-0.1, -0.2, 0.7), (0.02, -2.0, 1e-3)])
def test_koopman_matrix_is_the_exact_flow(mu, lam, dt):
    # K must equal expm(A dt) of the lifted linear ODE, including the resonant case lam = 2 mu
    K = SlowManifoldMap(mu, lam, dt).koopman_matrix().numpy()
    assert np.allclose(K, scipy.linalg.expm(continuous_matrix(mu, lam) * dt), rtol=1e-12, atol=1e-14)


@settings(max_examples=30, deadline=None)
@given(mu=st.floats(-0.5, 0.1), lam=st.floats(-2.0, 0.5), dt=st.floats(0.01, 2.0),
       x0=st.floats(-2, 2), y0=st.floats(-2, 2))
def test_lifted_states_evolve_linearly(mu, lam, dt, x0, y0):
    sys = SlowManifoldMap(mu, lam, dt)
    Z = lift(sys.trajectory(x0, y0, 12))
    K = sys.koopman_matrix()
    scale = Z.abs().max().clamp_min(1.0)
    assert torch.allclose(K @ Z[:, :-1], Z[:, 1:], atol=1e-12 * float(scale), rtol=1e-12)


def test_nonlinear_map_matches_the_ode_solution():
    # x(t) = x0 e^{mu t}; y(t) = e^{lam t} (y0 - b x0^2) + b x(t)^2
    sys = SlowManifoldMap(-0.05, -1.0, 0.25)
    X = sys.trajectory(1.5, -0.3, 50)
    t = torch.arange(50, dtype=torch.float64) * 0.25
    b = sys.manifold_slope
    x = 1.5 * torch.exp(-0.05 * t)
    y = torch.exp(-1.0 * t) * (-0.3 - b * 1.5 ** 2) + b * x ** 2
    assert torch.allclose(X[0], x, rtol=1e-13) and torch.allclose(X[1], y, rtol=1e-12, atol=1e-14)


def test_slow_manifold_is_invariant():
    sys = SlowManifoldMap(-0.05, -1.0, 1.0)
    X = sys.trajectory(2.0, sys.manifold_slope * 4.0, 30)
    assert torch.allclose(X[1], sys.manifold_slope * X[0] ** 2, rtol=1e-13)


def test_batched_trajectories_equal_single():
    sys = SlowManifoldMap()
    x0, y0 = torch.tensor([1.0, -0.5, 2.0]), torch.tensor([0.1, 0.2, -1.0])
    B = sys.trajectory(x0, y0, 20)
    assert B.shape == (3, 2, 20)
    for i in range(3):
        assert torch.equal(B[i], sys.trajectory(float(x0[i]), float(y0[i]), 20))


@pytest.mark.parametrize("label,kw", FITS)
def test_finite_section_on_lifted_observables_recovers_K(label, kw):
    sys = SlowManifoldMap(-0.05, -1.0, 1.0)
    Z = lift(sys.trajectory(1.0, 0.5, 40))
    U = kl.finite_section(Z, **kw)
    assert relative_error(U, sys.koopman_matrix()) < 1e-12
    _, diff = match_eigenvalues(kl.eigenvalues(U).numpy(), sys.eigenvalues().numpy())
    assert diff.max() < 1e-12


def test_identity_observables_miss_the_spectrum():
    # [x, y] is not invariant: the 2x2 fit cannot carry beta and alpha^2 at once
    sys = SlowManifoldMap(-0.05, -1.0, 1.0)
    X = sys.trajectory(1.0, 0.5, 40)
    lam2 = kl.eigenvalues(kl.finite_section(X)).numpy()
    truth = sys.eigenvalues().numpy()
    assert min(abs(lam2 - truth[1]).min(), abs(lam2 - truth[2]).min()) > 1e-3
    assert abs(lam2 - truth[0]).min() < 1e-10  # x alone is linear: alpha is found
    # and the one-step residual of the best linear fit is far from rounding
    assert compare_fits(X, None, FITS[:1])[0]["residual"] > 1e-6


def test_compare_fits_reports_failure_and_dtype():
    sys = SlowManifoldMap()
    Z = lift(sys.trajectory(1.0, 0.5, 30))
    rows = compare_fits(Z, sys.koopman_matrix(), [("pinv32", {"method": "pinv", "dtype": torch.float32}),
                                                 ("bad", {"method": "lstsq", "ridge": 1.0})])
    assert rows[0]["failed"] is None and 1e-8 < rows[0]["error"] < 1e-3  # float32 rounding, not float64
    assert rows[1]["failed"] and rows[1]["operator"] is None and math.isnan(rows[1]["error"])
    with pytest.raises(ValueError, match="one block"):
        compare_fits(Z[None], None, FITS)


def test_conditioning_sweep_cond_gram_is_cond_squared_and_errors_grow():
    rows = conditioning_sweep([1.0, 1e-2, 1e-4], FITS[:2], k=40)
    by_dt = {}
    for r in rows:
        by_dt.setdefault(r["dt"], r)
        if r["cond_F"] < 1e6:  # beyond, the formed F F^T is itself rounded (cond saturates near 1/eps)
            assert r["cond_gram"] == pytest.approx(r["cond_F"] ** 2, rel=1e-3)
    conds = [by_dt[d]["cond_F"] for d in (1.0, 1e-2, 1e-4)]
    assert conds[0] < conds[1] < conds[2]
    # forward error of the backward-stable fits stays within a modest multiple of eps * cond(F)
    for r in rows:
        assert r["error"] < 1e3 * np.finfo(float).eps * r["cond_F"]


def test_minimum_norm_on_the_slow_manifold():
    # starting on y = b x^2 never excites beta: rank-2 snapshots, pinv gives the minimum-norm fit
    sys = SlowManifoldMap(-0.05, -1.0, 1.0)
    Z = lift(sys.trajectory(1.0, sys.manifold_slope, 30))
    U = kl.finite_section(Z, "pinv")
    assert torch.allclose(U @ Z[:, :-1], Z[:, 1:], atol=1e-13)
    F = Z[:, :-1]
    assert torch.linalg.matrix_rank(F) == 2
    assert torch.allclose(U, U @ F @ torch.linalg.pinv(F), atol=1e-13)  # U vanishes off range(F)
    with pytest.raises(kl.FitError):
        kl.finite_section(Z, "cholesky")


def test_match_eigenvalues_pairs_and_rejects_length_mismatch():
    paired, diff = match_eigenvalues([3.0, 1.0 + 1e-9, 2.0], [1.0, 2.0, 3.0])
    assert np.allclose(paired, [1.0, 2.0, 3.0]) and diff.max() < 1e-8
    with pytest.raises(ValueError, match="as many"):
        match_eigenvalues([1.0], [1.0, 2.0])


def test_pydmd_exact_dmd_agrees_with_finite_section():
    pytest.importorskip("pydmd")
    sys = SlowManifoldMap(-0.05, -1.0, 1.0)
    Z = lift(sys.trajectory(1.0, 0.5, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # well-conditioned data: PyDMD must not warn
        out = pydmd_exact_dmd(Z)
    U = kl.finite_section(Z, "pinv")
    assert relative_error(out["operator"], U) < 1e-11
    _, diff = match_eigenvalues(out["eigs"], sys.eigenvalues().numpy())
    assert diff.max() < 1e-12


def test_pydmd_warns_on_nearly_collinear_snapshots():
    pytest.importorskip("pydmd")
    Z = lift(SlowManifoldMap(-0.05, -1.0, 1e-3).trajectory(1.0, 0.5, 40))
    with pytest.warns(UserWarning, match=PYDMD_CONDITION_WARNING):
        pydmd_exact_dmd(Z)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="dt must be > 0"):
        SlowManifoldMap(dt=0.0)
    with pytest.raises(ValueError, match="finite"):
        SlowManifoldMap(mu=float("nan"))
    with pytest.raises(ValueError, match="resonant"):
        SlowManifoldMap(mu=-0.5, lam=-1.0).manifold_slope
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, k\)"):
        lift(torch.zeros(3, 5))
