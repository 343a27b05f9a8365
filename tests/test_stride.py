"""Strided recording and fitting (issue 24): the s-step map, its horizons, and the stride rule."""
import math

import pytest
import torch

import koopman_lib as kl
from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.evolve import rollout as evolve_rollout
from koopman_lib.observables import Affine, Delay
from koopman_lib.solvers import GramAccumulator
from koopman_lib.stride import DEFAULT_C, choose_stride, stride_spectrum, strides_in


def _partition():
    return kl.make_partition(EnsembleMLP([3, 4, 2], "relu").shapes, ["quasi_node:2", "node"])


def rotation_operators(P, m, seed):
    """``(P, m, m)`` operators ``Q D Q^T``: rotations by distinct small angles (moduli 0.99 ..)
    and one real eigenvalue for odd ``m``, so that every power up to 5 has distinct eigenvalues
    and one trajectory excites every direction (the s-step map is identifiable)."""
    g = torch.Generator().manual_seed(seed)
    D = torch.zeros(P, m, m, dtype=torch.float64)
    for j in range(m // 2):
        th = 0.12 * (j + 1) + 0.04 * torch.rand(P, generator=g, dtype=torch.float64)
        r = 0.99 - 0.01 * j
        c, s = r * th.cos(), r * th.sin()
        D[:, 2 * j, 2 * j], D[:, 2 * j, 2 * j + 1], D[:, 2 * j + 1, 2 * j], D[:, 2 * j + 1, 2 * j + 1] = c, -s, s, c
    if m % 2:
        D[:, -1, -1] = 0.97
    Q = torch.linalg.qr(torch.randn(P, m, m, generator=g, dtype=torch.float64))[0]
    return Q @ D @ Q.mT


def linear_trajectory(part, K, E=None, seed=0):
    """Every step ``(K, [E,] D)`` of ``w(t+1) = A w(t)`` per block, and the block operators ``A``."""
    ops = [rotation_operators(g.shape[0] * (E or 1), g.shape[1], seed + i) for i, g in enumerate(part.groups)]
    lead = (E,) if E else ()
    snaps = torch.empty((K,) + lead + (part.n_params,), dtype=torch.float64)
    snaps[0] = torch.randn(lead + (part.n_params,), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    for t in range(1, K):
        blocks = [b.reshape(-1, b.shape[-1]) for b in part.blocks(snaps[t - 1])]
        nxt = [(A @ b.unsqueeze(-1)).squeeze(-1) for A, b in zip(ops, blocks)]
        snaps[t] = part.assemble([n.reshape(lead + tuple(g.shape)) for n, g in zip(nxt, part.groups)])
    return snaps, ops


# -- the s-step map ----------------------------------------------------------------------------
@pytest.mark.parametrize("E", [None, 3])
@pytest.mark.parametrize("s", [2, 4, 5])
def test_strided_fit_recovers_the_s_step_operator_and_predicts_T_steps(E, s):
    part = _partition()
    pairs, horizon = 40, 6 * s
    snaps, ops = linear_trajectory(part, 1 + s * pairs + horizon, E)
    t2 = s * pairs
    recording = snaps[: t2 + 1: s]                                    # every s-th step of 0..t2
    kp = kl.Koopman(part, stride=s).fit(recording)
    assert kp.stride_ == s and "stride=" in repr(kp)
    for fitted, A in zip(kp.operators_, ops):
        torch.testing.assert_close(fitted.U, torch.linalg.matrix_power(A, s), rtol=0, atol=1e-11)
    torch.testing.assert_close(kp.predict(snaps[t2], horizon), snaps[t2 + horizon], rtol=0, atol=1e-12)
    lead = (E or 1,)
    ro = kp.rollout(snaps[t2], horizon, every=2 * s)
    assert ro.steps == [0, 2 * s, 4 * s, 6 * s]                        # optimizer steps, not applications
    torch.testing.assert_close(ro.theta, snaps[t2 + horizon].reshape(lead + (-1,)), rtol=0, atol=1e-12)
    path = torch.cat(list(kp.path(snaps[t2], horizon, chunk=4)))
    assert path.shape[0] == horizon // s                                # theta(t2+s), .., theta(t2+T)
    torch.testing.assert_close(path, snaps[t2 + s: t2 + horizon + 1: s], rtol=0, atol=1e-12)
    # the spectral radius is that of U_s = A^s (per s steps): 0.99^s for these operators
    assert float(kp.spectral_radius_.max()) == pytest.approx(0.99 ** s, abs=1e-10)


def test_the_recorder_hands_its_stride_to_the_fit():
    part, s = _partition(), 4
    snaps, ops = linear_trajectory(part, 200)
    t1, t2 = 20, 180
    rec = kl.TrajectoryRecorder(part.n_params, t1, t2, stride=s)
    for t in range(200):
        rec(t, snaps[t])
    kp = kl.Koopman(part).fit(rec)
    ref = kl.Koopman(part, stride=s).fit(snaps[t1: t2 + 1: s])
    assert kp.stride_ == rec.stride == s
    for a, b in zip(kp.operators_, ref.operators_):
        assert torch.equal(a.U, b.U)
    assert torch.equal(kp.predict(snaps[t2], 8), ref.predict(snaps[t2], 8))
    assert kl.Koopman(part, stride=s).fit(rec).stride_ == s                 # the same stride, given twice
    with pytest.raises(kl.FitError, match="stride=2 but the recorder kept every 4-th"):
        kl.Koopman(part, stride=2).fit(rec)
    # a plain tensor without stride= is taken as every step: a one-step map (A^4 is not A)
    assert kl.Koopman(part).fit(snaps[t1: t2 + 1: s]).stride_ == 1


def test_stride_one_is_bit_identical_to_no_stride():
    part = _partition()
    snaps, _ = linear_trajectory(part, 80, E=3)
    rec, start = snaps[:60], snaps[59]

    def probe(theta):
        return theta.pow(2).sum(-1), theta[..., 0]

    a, b = kl.Koopman(part).fit(rec), kl.Koopman(part, stride=1).fit(rec)
    assert a.stride_ == b.stride_ == 1 and repr(a) == repr(b)
    for x, y in zip(a.operators_, b.operators_):
        assert torch.equal(x.U, y.U)
    assert torch.equal(a.predict(start, 17), b.predict(start, 17))
    assert torch.equal(torch.cat(list(a.path(start, 9, chunk=4))), torch.cat(list(b.path(start, 9, chunk=4))))
    for kwargs in ({"every": 5}, {"every": 3, "jump": False}, {}):
        ra, rb = a.rollout(start, 17, loss_fn=probe, **kwargs), b.rollout(start, 17, loss_fn=probe, **kwargs)
        assert ra.steps == rb.steps and ra.stopped_at == rb.stopped_at
        assert torch.equal(ra.theta, rb.theta)
        assert all(torch.equal(x, y) for x, y in zip(ra.values, rb.values))
    # the low-level rollout: stride=1 is the default
    z0, theta0 = a._start(start)
    r1 = evolve_rollout(part, a.operators_, z0, theta0.reshape(3, -1), 12, 4, probe)
    r2 = evolve_rollout(part, a.operators_, z0, theta0.reshape(3, -1), 12, 4, probe, stride=1)
    assert r1.steps == r2.steps and torch.equal(r1.theta, r2.theta)
    # a recorder with stride=1 stores exactly what the default one stores
    r_default, r_one = kl.TrajectoryRecorder(part.n_params, 5, 40, (3,)), kl.TrajectoryRecorder(
        part.n_params, 5, 40, (3,), stride=1)
    for t in range(50):
        r_default(t, snaps[t])
        r_one(t, snaps[t])
    assert r_one.stride == 1 and torch.equal(r_default.snapshots, r_one.snapshots)


# -- observables -------------------------------------------------------------------------------
@pytest.mark.parametrize("obs", [Affine(), Delay(2), Delay(3, affine=True)], ids=lambda o: o.name)
def test_strided_fit_with_observables_predicts_the_linear_system(obs):
    """The lifted state is built from the strided snapshots: delays are s steps apart, and a
    prediction starts from the last ``history`` snapshots of the strided recording."""
    part, s = _partition(), 3
    snaps, _ = linear_trajectory(part, 1 + 3 * 40 + 12, E=2)
    t2 = 3 * 40
    rec = snaps[: t2 + 1: s]
    kp = kl.Koopman(part, stride=s, observables=obs).fit(rec)
    start = rec[-kp.history:] if kp.history > 1 else rec[-1]
    torch.testing.assert_close(kp.predict(start, 12), snaps[t2 + 12], rtol=0, atol=1e-10)
    ro = kp.rollout(start, 12, every=6)
    assert ro.steps == [0, 6, 12]
    torch.testing.assert_close(ro.theta, snaps[t2 + 12].reshape(2, -1), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="multiple of the fit's stride s=3"):
        kp.predict(start, 10)


# -- the recorder ------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [(), (2,)])
def test_the_stored_recorder_keeps_every_s_th_step(batch):
    part, s, t1, t2 = _partition(), 5, 7, 57
    full = torch.randn((70,) + batch + (part.n_params,), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rec = kl.TrajectoryRecorder(part.n_params, t1, t2, batch, stride=s)
    assert rec.k == (t2 - t1) // s + 1 == 11 and rec.snapshots.shape[0] == rec.k
    for t in range(70):
        rec(t, full[t])
    assert rec.complete and rec.stride == s
    assert torch.equal(rec.snapshots, full[t1: t2 + 1][::s])
    assert torch.equal(rec.last(), full[t2])
    assert torch.equal(rec.window(t1 + s, t2 - 2 * s), full[t1 + s: t2 - 2 * s + 1: s])
    with pytest.raises(ValueError, match="off the recorded grid"):
        rec.window(t1 + 1, t2)


def test_a_skipped_step_is_not_read():
    """The call for a skipped step returns before touching theta: a tensor of the wrong shape or
    with NaNs there is never looked at (the recording cost shrinks with the stride)."""
    part = _partition()
    for mode in ("stored", "streaming"):
        rec = kl.TrajectoryRecorder(part.n_params, 0, 8, mode=mode, partition=part, stride=4)
        good = torch.ones(part.n_params, dtype=torch.float64)
        for t in range(9):
            rec(t, good if t % 4 == 0 else torch.full((3,), float("nan")))
        assert rec.complete and rec.count == 3
        with pytest.raises(ValueError, match="theta shape"):                  # a kept step is checked
            kl.TrajectoryRecorder(part.n_params, 0, 8, mode=mode, partition=part, stride=4)(0, torch.ones(3))


def test_the_recorder_refuses_a_kept_step_out_of_order():
    part = _partition()
    rec = kl.TrajectoryRecorder(part.n_params, 0, 12, stride=3)
    rec(0, torch.zeros(part.n_params))
    with pytest.raises(ValueError, match="expected step 3, got 6"):
        rec(6, torch.zeros(part.n_params))


def test_the_memory_estimate_counts_only_the_kept_snapshots():
    D, t1, t2, s = 1000, 0, 4000, 8
    full = kl.TrajectoryRecorder.estimate_bytes(D, t2 - t1 + 1)
    strided = kl.TrajectoryRecorder.estimate_bytes(D, (t2 - t1) // s + 1)
    with pytest.raises(MemoryError):
        kl.TrajectoryRecorder(D, t1, t2, memory_limit=(full + strided) // 2)
    rec = kl.TrajectoryRecorder(D, t1, t2, memory_limit=(full + strided) // 2, stride=s)
    assert rec.snapshots.numel() * 8 == strided


@pytest.mark.parametrize("chunk", [4, 64])
def test_the_streaming_recorder_accumulates_the_subsampled_recording(chunk):
    part, s, t1, t2 = _partition(), 4, 10, 90
    snaps, _ = linear_trajectory(part, 100, E=2)
    rec = kl.TrajectoryRecorder(part.n_params, t1, t2, (2,), mode="streaming", partition=part, chunk=chunk, stride=s)
    for t in range(100):
        rec(t, snaps[t])
    sub = snaps[t1: t2 + 1: s]
    ref = kl.TrajectoryRecorder(part.n_params, 0, sub.shape[0] - 1, (2,), mode="streaming", partition=part,
                                chunk=chunk)
    for t in range(sub.shape[0]):
        ref(t, sub[t])
    for a, b, x in zip(rec.accumulators, ref.accumulators, part.time_last(sub)):
        assert torch.equal(a.gram, b.gram) and torch.equal(a.cross, b.cross)      # the same updates
        direct = GramAccumulator(x.shape[0], x.shape[1])
        direct.update(x)                                                           # all at once
        torch.testing.assert_close(a.gram, direct.gram, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a.cross, direct.cross, rtol=1e-12, atol=1e-12)
    assert a.n_snapshots == sub.shape[0]
    kp = kl.Koopman(part, method="cholesky").fit(rec)
    ref_fit = kl.Koopman(part, method="cholesky", stride=s).fit(sub)
    assert kp.stride_ == s
    torch.testing.assert_close(kp.predict(snaps[t2], 8), ref_fit.predict(snaps[t2], 8), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(kp.predict(snaps[t2], 8), snaps[t2 + 8], rtol=0, atol=1e-7)


# -- bad strides and horizons ------------------------------------------------------------------
def test_bad_strides_and_horizons_raise_clear_errors():
    part = _partition()
    D = part.n_params
    for bad in (0, -2):
        with pytest.raises(ValueError, match="stride must be >= 1"):
            kl.TrajectoryRecorder(D, 0, 10, stride=bad)
        with pytest.raises(ValueError, match="stride must be >= 1"):
            kl.Koopman(part, stride=bad)
    for bad in (1.5, True, "2"):
        with pytest.raises(TypeError, match="stride must be a positive integer"):
            kl.TrajectoryRecorder(D, 0, 10, stride=bad)
        with pytest.raises(TypeError, match="stride must be a positive integer"):
            kl.Koopman(part, stride=bad)
    with pytest.raises(ValueError, match=r"stride=4 does not divide the window t2 - t1 = 10 - 0 = 10.*t2=8 or 12"):
        kl.TrajectoryRecorder(D, 0, 10, stride=4)
    snaps, _ = linear_trajectory(part, 60)
    kp = kl.Koopman(part, stride=4).fit(snaps[:57:4])
    start = snaps[56]
    with pytest.raises(ValueError, match=r"T=10 is not a multiple of the fit's stride s=4.*8 or 12"):
        kp.predict(start, 10)
    with pytest.raises(ValueError, match=r"T=3 is not a multiple of the fit's stride s=4.*\(for example 4\)"):
        kp.rollout(start, 3)
    with pytest.raises(ValueError, match="every=6 is not a multiple of the fit's stride s=4"):
        kp.rollout(start, 24, every=6)
    with pytest.raises(ValueError, match="T=6 is not a multiple"):
        kp.path(start, 6)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        kp.predict(start, 0)
    assert strides_in(12, 4) == 3


# -- the stride rule ---------------------------------------------------------------------------
def test_the_rule_on_hand_computed_cases():
    # MNIST's window: 2814 snapshots, blocks of 157: 2813 // 628 = 4 (704 snapshots, 703 >= 628 pairs)
    assert choose_stride(2814, [157, 11]) == 4
    assert choose_stride(2814, [157], c=1) == 2813 // 157 == 17
    assert choose_stride(101, 5) == 5             # 100 // 20: 20 pairs at s = 5, 16 at s = 6
    assert choose_stride(101, [5], c=2.5) == 100 // 13 == 7   # c m = 12.5 rounds up to 13 pairs
    assert choose_stride(10, [157]) == 1          # even every step falls short: the rule cannot help
    assert DEFAULT_C == 4
    part = _partition()                           # blocks of 5 and 2: the largest decides
    assert choose_stride(101, part) == choose_stride(101, [5, 2]) == 5
    # lifted sizes: Affine fits m + 1 coordinates; Delay(2) fits 2 m and uses up one more pair
    assert choose_stride(101, [4], observables=Affine()) == 100 // 20 == 5
    assert choose_stride(101, [4], observables=Delay(2)) == 100 // 33 == 3


@pytest.mark.parametrize("k", [2, 50, 101, 2814, 10001])
@pytest.mark.parametrize("m", [1, 3, 10, 157])
@pytest.mark.parametrize("c", [0.5, 1, 2.5, 4, 9])
def test_the_rule_is_the_largest_stride_that_keeps_c_m_pairs(k, m, c):
    s = choose_stride(k, [m], c=c)
    pairs = lambda s: (k - 1) // s                 # k_s - 1 with k_s = floor((k - 1) / s) + 1
    assert s >= 1
    if pairs(1) >= c * m:
        assert pairs(s) >= c * m and pairs(s + 1) < c * m
    else:
        assert s == 1


def test_the_rule_is_monotone_in_c_m_and_k():
    cs = [0.5, 1, 2, 3, 4, 6, 9, 16]
    ms = [1, 2, 5, 10, 50, 157, 400]
    for k in (60, 704, 2814, 10001):
        for m in ms:
            got = [choose_stride(k, [m], c=c) for c in cs]
            assert got == sorted(got, reverse=True), (k, m, got)
        for c in cs:
            got = [choose_stride(k, [m], c=c) for m in ms]
            assert got == sorted(got, reverse=True), (k, c, got)
    got = [choose_stride(k, [20]) for k in range(2, 2000, 37)]
    assert got == sorted(got)


def test_the_rule_refuses_bad_arguments():
    for bad in (1, 0):
        with pytest.raises(ValueError, match="k must be >= 2"):
            choose_stride(bad, [5])
    with pytest.raises(TypeError, match="k must be an integer"):
        choose_stride(10.0, [5])
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="c must be a finite number > 0"):
            choose_stride(100, [5], c=bad)
    with pytest.raises(ValueError, match="block_sizes is empty"):
        choose_stride(100, [])
    with pytest.raises(ValueError, match="block sizes must be >= 1"):
        choose_stride(100, [5, 0])
    with pytest.raises(TypeError, match="block sizes must be integers"):
        choose_stride(100, [5, 2.5])


def test_the_argument_for_c_holds_for_a_random_snapshot_matrix():
    """The docstring's argument: an ``m x c m`` matrix of independent entries has condition
    number about ``(sqrt(c) + 1) / (sqrt(c) - 1)`` (3 at ``c = 4``), and a square one is far worse."""
    g = torch.Generator().manual_seed(0)
    m = 40
    for c in (4, 9):
        S = torch.linalg.svdvals(torch.randn(20, m, c * m, dtype=torch.float64, generator=g))
        cond = (S[:, 0] / S[:, -1]).median()
        assert float(cond) == pytest.approx((math.sqrt(c) + 1) / (math.sqrt(c) - 1), rel=0.15)
    S = torch.linalg.svdvals(torch.randn(20, m, m, dtype=torch.float64, generator=g))
    assert float((S[:, 0] / S[:, -1]).median()) > 10 * 3


def test_stride_spectrum_interlaces_with_the_full_one():
    part = _partition()
    snaps, _ = linear_trajectory(part, 121, E=2)
    for x in part.time_last(snaps):
        sp = stride_spectrum(x, 4)
        assert sp.stride == 4 and sp.full.shape == sp.strided.shape == (x.shape[0], x.shape[1])
        assert bool((sp.strided <= sp.full * (1 + 1e-12)).all())       # a subset of the columns
        cf, cs = sp.condition()
        assert cf.shape == cs.shape == (x.shape[0],) and bool((cs >= 1).all())
    with pytest.raises(ValueError, match="leaves fewer than 2"):
        stride_spectrum(x, 200)
    with pytest.raises(kl.FitError, match="time last"):
        stride_spectrum(snaps[:, 0], 2)                                 # (k, D): not blocks
    with pytest.raises(TypeError, match="torch.Tensor"):
        stride_spectrum(snaps.numpy(), 2)


# -- the book's strided fits (fit_named) --------------------------------------------------------
def test_fit_named_strided_fits_recover_the_s_step_operator_at_the_rule_s_stride():
    from koopman_lib.estimator import fit_named
    from koopman_lib.stride import floor_horizon, strided_window
    part = _partition()
    k, horizon = 83, 40                       # largest block 5 -> c m = 20 pairs: s = 82 // 20 = 4
    snaps, ops = linear_trajectory(part, k + horizon, E=2)
    rec, t2 = snaps[:k], k - 1
    s = choose_stride(k, part)
    assert max(part.block_sizes) == 5 and s == 4
    fits = fit_named(part, rec, ["default-strided", "default", "default-strided-stabilised"])
    assert list(fits) == ["default-strided", "default", "default-strided-stabilised"]
    strided = fits["default-strided"]
    assert strided.stride_ == s and fits["default"].stride_ == 1
    for fitted, A in zip(strided.operators_, ops):
        assert torch.allclose(fitted.U, torch.linalg.matrix_power(A, s), atol=1e-8)
    T = floor_horizon(horizon, s)
    assert T == 40 and floor_horizon(43, s) == 40 and floor_horizon(4, s) == 4
    assert torch.allclose(strided.predict(rec[-1], T), snaps[t2 + T], atol=1e-7)
    with pytest.raises(ValueError, match="not a multiple of the fit's stride s=4"):
        strided.predict(rec[-1], 42)
    # the strided fit is the default fit of the strided window, ending at t2
    window = strided_window(rec, s)
    assert torch.equal(window[-1], rec[-1]) and window.shape[0] == (k - 1) // s + 1
    alone = kl.Koopman(part, stride=s).fit_variants(window, {"d": kl.FitSpec("resolution")})["d"]
    for a, b in zip(alone.operators_, strided.operators_):
        assert torch.equal(a.U, b.U)


def test_fit_named_plain_fits_are_fit_variants_and_unknown_names_are_refused():
    from koopman_lib.estimator import BOOK_FITS, fit_named
    from koopman_lib.fit import FITS
    part = _partition()
    rec, _ = linear_trajectory(part, 30)
    ours = fit_named(part, rec, ["paper", "default"])
    ref = kl.Koopman(part).fit_variants(rec, {n: FITS[n] for n in ("paper", "default")})
    for n in ours:
        for a, b in zip(ours[n].operators_, ref[n].operators_):
            assert torch.equal(a.U, b.U)
    assert set(BOOK_FITS) >= set(FITS) | {"default-strided", "default-strided-stabilised"}
    with pytest.raises(kl.FitError, match=r"unknown fits \['strided'\]"):
        fit_named(part, rec, ["strided"])


def test_strided_window_equals_a_strided_recording():
    from koopman_lib.stride import strided_window
    snaps = torch.randn(23, 2, 7, dtype=torch.float64)
    s = 4                                       # keeps steps 2, 6, .., 22
    rec = kl.TrajectoryRecorder(7, 2, 22, batch_shape=(2,), stride=s)
    for t in range(23):
        rec(t, snaps[t])
    assert torch.equal(strided_window(snaps, s), rec.snapshots)
    with pytest.raises(ValueError, match="leaves fewer than 2"):
        strided_window(snaps[:3], 4)
