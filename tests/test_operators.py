import pytest
import torch
from hypothesis import given, settings, strategies as st

import koopman_lib as kl
from koopman_lib.errors import FitError
from conftest import stable_operators, trajectory

METHODS = ["pinv", "lstsq", "cholesky", "svd"]


def excited_trajectory(U, k, seed=1):
    """w(t+1) = U w(t) + fresh input: full-rank snapshots whose pairs satisfy a known operator."""
    g = torch.Generator().manual_seed(seed)
    P, m, _ = U.shape
    X = torch.randn(P, m, k, generator=g, dtype=torch.float64)
    Y = U @ X
    return X, Y


@pytest.mark.parametrize("method", METHODS)
def test_recovers_known_operator_from_exact_pairs(method):
    """Exact pairs give U back to the accuracy each route allows, a bound fixed by perturbation
    theory before looking at the errors: ``c m eps cond(F)`` for the routes that factorise ``F``
    (QR/SVD, lstsq), ``c m eps cond(F)^2`` for those that solve the normal equations
    ``U F F^T = F' F^T`` (Cholesky, eigh of the Gram matrix), with ``c = 8``; here cond(F) is up
    to about 4e3, so the second bound is about 3e-8 where the first is 6e-12."""
    U = stable_operators(6, 5, seed=3)
    X = trajectory(U, 40)  # w(t+1) = U w(t) exactly; 39 pairs, m = 5
    fit = kl.finite_section(X, method)
    S = torch.linalg.svdvals(X[..., :-1])
    cond = S[:, 0] / S[:, -1]
    power = 2 if method in ("cholesky", "eigh") else 1
    bound = 8 * U.shape[-1] * torch.finfo(torch.float64).eps * cond ** power * torch.linalg.matrix_norm(U, 2)
    err = torch.linalg.matrix_norm(fit - U, 2)
    assert (err <= bound).all(), (err, bound)


@pytest.mark.parametrize("method", METHODS)
def test_single_block_equals_batched(method):
    U = stable_operators(4, 6, seed=5)
    X = trajectory(U, 30, noise=0.01)
    batched = kl.finite_section(X, method)
    for p in range(4):
        single = kl.finite_section(X[p], method)
        assert single.shape == (6, 6)
        assert torch.allclose(single, batched[p], atol=1e-12, rtol=1e-10)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 8), extra=st.integers(2, 40), P=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_methods_agree_on_well_conditioned_data(m, extra, P, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(P, m, m + extra, generator=g, dtype=torch.float64)
    ref = kl.finite_section(X, "pinv")
    for method in METHODS[1:]:
        other = kl.finite_section(X, method)
        assert torch.linalg.norm(other - ref) <= 1e-8 * torch.linalg.norm(ref)


def test_rank_deficient_gives_minimum_norm_or_clear_error():
    g = torch.Generator().manual_seed(0)
    # second coordinate is a copy of the first: rank 1 in a 2-d block
    a = torch.randn(1, 1, 20, generator=g, dtype=torch.float64)
    X = torch.cat([a, a], dim=1)
    with pytest.raises(FitError, match="Cholesky failed for block"):
        kl.finite_section(X, "cholesky")
    U = kl.finite_section(X, "pinv")
    for method in ("lstsq", "svd"):
        assert torch.allclose(kl.finite_section(X, method), U, atol=1e-10)
    # minimum-norm: U has no component along the null direction [1, -1] of F F^T
    null = torch.tensor([1.0, -1.0], dtype=torch.float64) / 2 ** 0.5
    assert torch.allclose(U[0] @ null, torch.zeros(2, dtype=torch.float64), atol=1e-10)
    # and its residual is orthogonal to the data (least-squares optimality): (U F - F') F^T = 0
    F, Fp = X[..., :-1], X[..., 1:]
    assert torch.allclose((U @ F - Fp) @ F.mT, torch.zeros(1, 2, 2, dtype=torch.float64), atol=1e-10)


def test_fewer_snapshots_than_block_size():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 10, 5, generator=g, dtype=torch.float64)
    with pytest.raises(FitError, match="singular"):
        kl.finite_section(X, "cholesky")
    U = kl.finite_section(X, "pinv")  # minimum-norm interpolant of 4 pairs
    assert torch.allclose(U @ X[..., :-1], X[..., 1:], atol=1e-10)


def test_ridge_and_rank_validation():
    X = torch.randn(3, 10, dtype=torch.float64)
    with pytest.raises(FitError, match="ridge"):
        kl.finite_section(X, "pinv", ridge=1.0)
    with pytest.raises(FitError, match="rank"):
        kl.finite_section(X, "cholesky", rank=2)
    with pytest.raises(FitError, match="unknown method"):
        kl.finite_section(X, "qr")
    with pytest.raises(FitError, match="shape"):
        kl.finite_section(torch.zeros(2, 2, 2, 2))
    with pytest.raises(FitError, match="at least 2"):
        kl.finite_section(torch.zeros(3, 1, dtype=torch.float64))


def test_relative_ridge_of_the_svd_fit_matches_the_cholesky_shift():
    """FitSpec(ridge=r) filters s / (s^2 + (r s_max)^2): Cholesky on F F^T + (r s_max)^2 I, block by block."""
    g = torch.Generator().manual_seed(2)
    X = torch.randn(3, 4, 30, generator=g, dtype=torch.float64)
    a = kl.fit_operators(X, kl.FitSpec(ridge=0.3)).U
    smax = torch.linalg.matrix_norm(X[..., :-1], ord=2)
    for p in range(3):
        b = kl.finite_section(X[p], "cholesky", ridge=float((0.3 * smax[p]) ** 2))
        assert torch.allclose(a[p], b, atol=1e-12)
    with pytest.raises(kl.FitError, match="ridge is not used by method 'svd'"):
        kl.finite_section(X, "svd", ridge=0.5)


def test_svd_rank_truncation_keeps_leading_modes():
    U = stable_operators(1, 4, seed=9)
    X = trajectory(U, 50)
    full = kl.finite_section(X, "svd")
    r2 = kl.finite_section(X, "svd", rank=2)
    assert torch.linalg.matrix_rank(r2[0]) == 2
    assert torch.linalg.norm(r2 - full) > 1e-6


@pytest.mark.parametrize("chunk", [1, 7, 64, 500])
def test_streaming_gram_equals_stored_cholesky(chunk):
    U = stable_operators(5, 6, seed=11)
    X = trajectory(U, 200, noise=0.05)
    acc = kl.GramAccumulator(5, 6)
    for s in range(0, 200, chunk):
        acc.update(X[..., s:s + chunk])
    assert acc.n_snapshots == 200
    ref = kl.finite_section(X, "cholesky")
    assert torch.linalg.norm(acc.operators() - ref) <= 1e-10 * torch.linalg.norm(ref)


def test_nonfinite_snapshots_name_the_block():
    X = torch.randn(4, 3, 10, dtype=torch.float64)
    X[2, 1, 5] = float("nan")
    with pytest.raises(FitError, match=r"block\(s\) \[2\]"):
        kl.finite_section(X)


def test_spectral_radius_and_clip():
    U = torch.diag(torch.tensor([1.2, 0.5, -1.1], dtype=torch.float64))
    assert kl.spectral_radius(U).item() == pytest.approx(1.2)
    clipped = kl.clip_spectrum(U, 1.0)
    assert torch.allclose(torch.linalg.eigvals(clipped).abs().sort().values,
                          torch.tensor([0.5, 1.0, 1.0], dtype=torch.float64))


def test_affine_observables_represent_a_straight_line_exactly():
    t = torch.arange(30, dtype=torch.float64)
    line = torch.stack([2.0 + 0.1 * t, -1.0 - 0.3 * t])  # (2, 30)
    lifted = kl.affine_observables(line)  # (3, 30)
    U = kl.finite_section(lifted, "pinv")
    pred = kl.jump(U.unsqueeze(0), lifted[:, -1].unsqueeze(0), 50, method="power")[0]
    assert torch.allclose(pred[:2], torch.tensor([2.0 + 0.1 * 79, -1.0 - 0.3 * 79], dtype=torch.float64), atol=1e-8)


def test_clip_spectrum_bounds_the_radius_even_for_nearly_defective_blocks():
    g = torch.Generator().manual_seed(7)
    # Jordan-like blocks: eigenvalue 1.01 with nearly parallel eigenvectors, plus random blocks
    J = torch.eye(6, dtype=torch.float64) * 1.01 + torch.diag(torch.ones(5, dtype=torch.float64), 1)
    J = J + 1e-9 * torch.randn(6, 6, generator=g, dtype=torch.float64)
    R = 1.05 * torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))[0]
    U = torch.stack([J, R, 0.5 * torch.eye(6, dtype=torch.float64)])
    C = kl.clip_spectrum(U, 1.0)
    assert (kl.spectral_radius(C) <= 1.0).all()
    torch.testing.assert_close(C[2], U[2])                 # a block inside the disk is untouched
