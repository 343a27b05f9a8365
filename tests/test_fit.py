"""The one fit (koopman_lib.fit): cutoff vocabulary, factorisation, dense and low-rank operators."""
from __future__ import annotations

import pytest
import torch

import koopman_lib as kl
from koopman_lib.fit import (Cutoff, FitSpec, Operators, factorise, fit_operators, gavish_donoho_threshold,
                             numerical_rank, singular_values)

from conftest import stable_operators, trajectory

EPS64, EPS32 = torch.finfo(torch.float64).eps, torch.finfo(torch.float32).eps


def test_cutoff_presets_are_the_documented_tolerances():
    m, k = 157, 2813
    assert Cutoff("paper").rtol(m, k, torch.float32) == k * EPS64        # float64 MATLAB pinv, whatever the dtype
    assert Cutoff("machine").rtol(m, k, torch.float32) == k * EPS32
    assert Cutoff("machine").rtol(m, k, torch.float64) == k * EPS64
    assert Cutoff("jax").rtol(m, k) == 10 * k * EPS32
    assert Cutoff("float32").rtol(m, k) == k * EPS32
    assert Cutoff(1e-4).rtol(m, k) == 1e-4
    assert Cutoff(3).name == "rank:3" and Cutoff(0).name == "gavish-donoho" and Cutoff("jax").name == "jax"


@pytest.mark.parametrize("bad", ["matlab", -1, -1e-3, True, None, [1]])
def test_bad_cutoffs_are_refused_naming_the_choices(bad):
    with pytest.raises(kl.FitError, match="cutoff"):
        Cutoff(bad)


def test_factorisation_matches_a_direct_svd_for_wide_and_tall_blocks():
    g = torch.Generator().manual_seed(0)
    for m, k in ((5, 40), (12, 6)):
        X = torch.randn(3, m, k, generator=g, dtype=torch.float64)
        fac = factorise(X)
        S = torch.linalg.svdvals(X[..., :-1])
        torch.testing.assert_close(fac.S, S, atol=1e-12, rtol=0)
        torch.testing.assert_close(singular_values(X), S)
        U = fac.operators(FitSpec("machine"), low_rank=False).U
        torch.testing.assert_close(U, X[..., 1:] @ torch.linalg.pinv(X[..., :-1]), atol=1e-10, rtol=0)


def test_pinv_fit_recovers_a_known_operator():
    U = stable_operators(4, 6, seed=1)
    X = trajectory(U, 60)
    torch.testing.assert_close(fit_operators(X, FitSpec()).U, U, atol=1e-9, rtol=0)
    torch.testing.assert_close(kl.finite_section(X, "pinv"), U, atol=1e-9, rtol=0)


def test_one_factorisation_serves_every_spec_as_separate_fits_do():
    X = trajectory(stable_operators(3, 5, seed=2), 30)
    specs = {"paper": FitSpec(), "rel": FitSpec(1e-3), "rank2": FitSpec(2), "ridge": FitSpec(ridge=0.1),
             "clip": FitSpec(clip=0.5)}
    together = fit_operators(X, specs)
    for name, spec in specs.items():
        torch.testing.assert_close(together[name].U, fit_operators(X, spec).U, atol=0, rtol=0)
    assert together["rank2"].rank.tolist() == [2, 2, 2]
    assert (together["clip"].spectral_radius() <= 0.5 + 1e-9).all()


def test_chunking_does_not_change_the_operators():
    X = trajectory(stable_operators(7, 4, seed=3), 25)
    big = fit_operators(X, FitSpec())
    small = fit_operators(X, FitSpec(), chunk_bytes=1)       # one block at a time
    torch.testing.assert_close(big.U, small.U, atol=1e-13, rtol=0)


def test_low_rank_and_dense_forms_are_the_same_operator():
    """m > k - 1: U = A B; apply, powers, advance and the nonzero spectrum agree with the dense form."""
    g = torch.Generator().manual_seed(4)
    X = torch.randn(2, 9, 5, generator=g, dtype=torch.float64)       # 4 pairs in a 9-dim block
    low, dense = fit_operators(X, FitSpec()), fit_operators(X, FitSpec(), low_rank=False)
    assert low.low_rank and not dense.low_rank and low.rank.tolist() == [4, 4]
    w = torch.randn(2, 9, generator=g, dtype=torch.float64)
    torch.testing.assert_close(low.apply(w), dense.apply(w))
    torch.testing.assert_close(low.matrix_power(5), dense.matrix_power(5))
    torch.testing.assert_close(low.spectral_radius(), dense.spectral_radius())
    for n in (1, 3, 7):
        wl, _ = low.advance(low.start(w), n, {})
        wd, _ = dense.advance(dense.start(w), n, {})
        torch.testing.assert_close(wl, wd)
        torch.testing.assert_close(wd, (dense.matrix_power(n) @ w.unsqueeze(-1)).squeeze(-1))


def test_advance_in_strides_equals_one_jump():
    U = stable_operators(3, 4, seed=5)
    ops = Operators(U=U)
    w = torch.randn(3, 4, dtype=torch.float64)
    state, powers = ops.start(w), {}
    for _ in range(4):
        wn, state = ops.advance(state, 5, powers)
    torch.testing.assert_close(wn, kl.jump(U, w, 20))
    assert list(powers) == [5], "the matrix power is formed once and reused"


def test_gavish_donoho_keeps_the_signal_rank_of_a_noisy_low_rank_matrix():
    g = torch.Generator().manual_seed(6)
    m, k, r = 40, 400, 3
    L = torch.randn(m, r, generator=g, dtype=torch.float64) @ torch.randn(r, k, generator=g, dtype=torch.float64)
    X = (L + 0.01 * torch.randn(m, k, generator=g, dtype=torch.float64)).unsqueeze(0)
    S = singular_values(X)
    assert int((S > gavish_donoho_threshold(S, m, k - 1)).sum()) == r
    assert fit_operators(X, FitSpec(0)).rank.tolist() == [r]


def test_numerical_rank_is_matrix_rank():
    X = torch.randn(4, 6, 20, dtype=torch.float64)
    X[:, 5] = X[:, 4] * 2
    assert numerical_rank(X).tolist() == torch.linalg.matrix_rank(X[..., :-1]).tolist() == [5] * 4


def test_operators_validate_their_input():
    with pytest.raises(kl.FitError, match="either U or both A and B"):
        Operators()
    with pytest.raises(kl.FitError, match=r"U must be \(P, n, n\)"):
        Operators(U=torch.zeros(3, 3))
    with pytest.raises(kl.FitError, match="dense operators"):
        fit_operators(torch.randn(1, 9, 5, dtype=torch.float64), FitSpec()).clip(1.0)
    with pytest.raises(kl.FitError, match="NaN or inf"):
        fit_operators(torch.full((1, 2, 5), float("nan"), dtype=torch.float64), FitSpec())


def test_resolution_cutoff_follows_the_recorded_dtype_not_the_fit_dtype():
    """Weights recorded in float32 and fitted in float64: "resolution" is the float32 cutoff."""
    g = torch.Generator().manual_seed(7)
    X32 = torch.randn(2, 6, 40, generator=g, dtype=torch.float64).to(torch.float32)
    via_resolution = fit_operators(X32, FitSpec("resolution"), dtype=torch.float64)
    via_float32 = fit_operators(X32, FitSpec("float32"), dtype=torch.float64)
    torch.testing.assert_close(via_resolution.U, via_float32.U, atol=0, rtol=0)
    X64 = X32.double()
    torch.testing.assert_close(fit_operators(X64, FitSpec("resolution")).U, fit_operators(X64, FitSpec("machine")).U,
                               atol=0, rtol=0)
    assert Cutoff("resolution").rtol(6, 39, torch.float64, torch.float32) == 39 * EPS32
    # the estimator passes the recording's dtype through its fit
    from koopman_lib.partition import LayerShape
    part = kl.make_partition([LayerShape("l", 2, 2)], "node")
    rec = torch.randn(30, part.n_params, generator=g).to(torch.float32)
    kp = kl.Koopman(part, cutoff="resolution").fit(rec)
    ref = kl.Koopman(part, cutoff="float32").fit(rec)
    assert kp.recorded_dtype_ == torch.float32
    torch.testing.assert_close(kp.operators_[0].U, ref.operators_[0].U, atol=0, rtol=0)


def test_recorded_precision_finds_float32_weights_cast_to_float64():
    from koopman_lib.fit import recorded_precision
    g = torch.Generator().manual_seed(1)
    w32 = torch.randn(30, 4, 7, generator=g)
    assert recorded_precision(w32) == torch.float32
    assert recorded_precision(w32.double()) == torch.float32                       # exact float32 values
    assert recorded_precision(w32.double() + 1e-12) == torch.float64              # not representable
    assert recorded_precision(w32.double(), chunk_bytes=1) == torch.float32      # chunked reads agree


def test_named_fits_are_the_documented_default_and_options():
    from koopman_lib.fit import DEFAULT_FIT, FITS, named_fit
    assert set(FITS) == {"paper", "default", "default-stabilised"}
    assert DEFAULT_FIT == FitSpec() == FitSpec("resolution") and Cutoff().value == "resolution"
    assert FITS["default-stabilised"].clip == 1.0 and FITS["paper"].cutoff == Cutoff("paper")
    with pytest.raises(kl.FitError, match="unknown fit"):
        named_fit("best")


def test_default_fit_drops_exactly_the_directions_below_the_recording_resolution():
    # a float32 recording cast to float64: the default cuts at max(m, k) eps32, the paper at eps64
    X32 = torch.randn(2, 6, 60, generator=torch.Generator().manual_seed(2))
    X32[:, 5] = X32[:, 4] + 1e-6 * torch.randn(2, 60, generator=torch.Generator().manual_seed(3))  # a tiny direction
    X = X32.double()
    S = singular_values(X)
    fits = fit_operators(X, {"paper": FitSpec("paper"), "default": FitSpec()})
    n_paper = (S > 59 * EPS64 * S[:, :1]).sum(-1)
    n_default = (S > 59 * EPS32 * S[:, :1]).sum(-1)
    assert fits["paper"].rank.tolist() == n_paper.tolist()
    assert fits["default"].rank.tolist() == n_default.tolist()
    # the same data recorded in float64 (values off the float32 grid): resolution = the paper's cutoff
    Y = X + 1e-13 * torch.randn(X.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    both = fit_operators(Y, {"paper": FitSpec("paper"), "default": FitSpec()})
    torch.testing.assert_close(both["paper"].as_dense(), both["default"].as_dense(), rtol=0, atol=0)


@pytest.mark.parametrize("m,k", [(5, 40), (30, 12)])   # dense (m <= k - 1) and low-rank blocks
def test_chunked_fit_writes_the_same_operators_as_one_chunk(m, k):
    """Blocks fitted a chunk at a time are written into one preallocated set of tensors: the
    same values, bit for bit, as fitting every block at once (dense and low-rank forms)."""
    from koopman_lib.fit import fit_operators
    x = torch.randn(7, m, k, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    specs = {"paper": FitSpec("paper"), "clip": FitSpec("resolution", clip=1.0)} if m < k else {"paper": FitSpec("paper")}
    whole = fit_operators(x, specs)
    chunked = fit_operators(x, specs, chunk_bytes=2 * m * k * 8)   # two blocks per chunk, four chunks
    for name in specs:
        a, b = whole[name], chunked[name]
        assert a.low_rank == b.low_rank == (m > k - 1)
        for f in ("U", "A", "B", "M", "rank"):
            x1, x2 = getattr(a, f), getattr(b, f)
            assert (x1 is None and x2 is None) or torch.equal(x1, x2), (name, f)
