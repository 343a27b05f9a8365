import pytest
import torch

import koopman_lib as kl
from koopman_lib import FitSpec, Koopman
from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.observables import Affine, Delay, Identity, Polynomial, parse_observables
from koopman_lib.errors import FitError
from koopman_lib.partition import LayerShape
from conftest import stable_operators, trajectory


def line(P, m, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(P, m, 1, generator=g, dtype=torch.float64)
    v = torch.randn(P, m, 1, generator=g, dtype=torch.float64)
    return w0 + v * torch.arange(k, dtype=torch.float64)


def blocks_partition(P, m):
    """One layer whose node partition is ``P`` blocks of size ``m`` (``m - 1`` inputs and a bias)."""
    return kl.make_partition([LayerShape("layer0", P, m - 1, True)], ["node"])


def recording(part, X):
    """Block snapshots ``(P, m, k)`` as a recording ``(k, D)`` of that partition (time first)."""
    return part.assemble([X.permute(2, 0, 1)])


def blocks(part, theta):
    """``(..., D)`` -> the block states ``(..., P, m)`` of the one group."""
    return part.blocks(theta)[0]


def test_affine_represents_a_straight_line_exactly():
    X = line(3, 4, 60)
    part = blocks_partition(3, 4)
    rec = recording(part, X)
    kp = Koopman(part, observables=Affine()).fit(rec[:40])
    assert torch.allclose(blocks(part, kp.predict(rec[39], 20)), X[..., 59], atol=1e-8)
    for jump in (True, False):
        ro = kp.rollout(rec[39], 20, every=5, jump=jump)
        assert ro.steps == [0, 5, 10, 15, 20] and ro.stopped_at == [None]
        assert torch.allclose(blocks(part, ro.theta[0]), X[..., 59], atol=1e-8)
    # the constant observable row is exactly e_n
    U = kp.operators_[0].U
    assert U.shape == (3, 5, 5)
    assert torch.equal(U[:, -1], torch.eye(5, dtype=torch.float64)[-1].expand(3, 5))


def test_identity_observable_koopman_equals_plain_koopman():
    U = stable_operators(4, 3, seed=2)
    X = trajectory(U, 30, noise=0.01)
    part = blocks_partition(4, 3)
    rec = recording(part, X)
    plain = Koopman(part).fit(rec)
    assert torch.allclose(plain.operators_[0].U, kl.finite_section(X), atol=1e-12)
    # Identity() and Delay(1) (the lifting code path with a one-state history) are the plain fit
    for obs in (Identity(), Delay(1)):
        kp = Koopman(part, observables=obs).fit(rec)
        assert kp.history == 1
        assert torch.allclose(kp.operators_[0].U, plain.operators_[0].U, atol=1e-12)
    net = EnsembleMLP([3, 4, 2], "tanh", n_members=2)
    part = kl.make_partition(net.shapes, ["quasi_node:2", "node"])
    snaps = torch.randn(50, 2, part.n_params, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = Koopman(part).fit(snaps)
    b = Koopman(part, observables=Delay(1)).fit(snaps)
    for oa, ob in zip(a.operators_, b.operators_):
        assert torch.allclose(oa.as_dense(), ob.as_dense(), atol=1e-10)
    assert torch.allclose(a.predict(snaps[-1], 7), b.predict(snaps[-1], 7), atol=1e-8)
    assert torch.allclose(a.predict(snaps[-1], 7), b.rollout(snaps[-1:], 7).theta, atol=1e-8)


def test_delay_embedding_recovers_a_second_order_recurrence():
    # w(t+1) = A w(t) + B w(t-1): not first order in w, exactly first order in [w(t); w(t-1)]
    # (damped oscillations with eigenvalues r exp(+-i theta), mixed by a rotation Q)
    g = torch.Generator().manual_seed(5)
    m, k, r = 3, 80, 0.98
    Q = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))[0]
    theta = torch.tensor([0.1, 0.3, 0.7], dtype=torch.float64)
    A = Q @ torch.diag(2 * r * torch.cos(theta)) @ Q.T
    B = -(r ** 2) * torch.eye(m, dtype=torch.float64)
    X = torch.empty(1, m, k, dtype=torch.float64)
    X[0, :, :2] = torch.randn(m, 2, generator=g, dtype=torch.float64)
    for t in range(1, k - 1):
        X[0, :, t + 1] = A @ X[0, :, t] + B @ X[0, :, t - 1]
    part = blocks_partition(1, m)
    rec = recording(part, X)
    ident = Koopman(part).fit(rec[:50]).predict(rec[49], 20)
    delay = Koopman(part, observables=Delay(2)).fit(rec[:50])
    assert delay.history == 2
    pred = delay.predict(rec[48:50], 20)          # the last two recorded states, oldest first
    assert torch.allclose(blocks(part, pred), X[..., 69], atol=1e-8)
    assert (blocks(part, ident) - X[..., 69]).norm() > 1e-3 * X[..., 69].norm()
    K = delay.operators_[0].U[0]
    assert K.shape == (2 * m, 2 * m)
    assert torch.allclose(K[:m, :m], A, atol=1e-8) and torch.allclose(K[:m, m:], B, atol=1e-8)
    # a longer history is accepted (its last two states are used)
    assert torch.allclose(delay.predict(rec[40:50], 20), pred, atol=1e-12)


def test_delay_lift_layout_newest_first():
    X = torch.arange(12, dtype=torch.float64).reshape(1, 2, 6)
    z = Delay(3).lift(X, {})
    assert z.shape == (1, 6, 4)
    assert torch.equal(z[0, :2, 0], X[0, :, 2]) and torch.equal(z[0, 4:, 0], X[0, :, 0])
    with pytest.raises(FitError, match="needs at least 3"):
        Delay(3).lift(X[..., :2], {})


def test_polynomial_dictionary_closes_a_quadratic_system():
    # x' = a x, y' = b y + c x^2: closed in [x, y, x^2] (Brunton et al. 2016)
    a, b, c, k = 0.9, 0.5, 0.3, 40
    X = torch.empty(1, 2, k, dtype=torch.float64)
    X[0, :, 0] = torch.tensor([1.5, -0.7], dtype=torch.float64)
    for t in range(k - 1):
        x, y = X[0, 0, t], X[0, 1, t]
        X[0, 0, t + 1], X[0, 1, t + 1] = a * x, b * y + c * x * x
    part = blocks_partition(1, 2)
    rec = recording(part, X)
    poly = Koopman(part, observables=Polynomial(2)).fit(rec[:25])
    assert torch.allclose(blocks(part, poly.predict(rec[24], 10)), X[..., 34], atol=1e-8)
    ident = Koopman(part).fit(rec[:25]).predict(rec[24], 10)
    assert (blocks(part, ident) - X[..., 34]).abs().max() > 1e-6
    assert Polynomial(2).n_features(2) == 5 and Polynomial(3, cross=True).n_features(4) == 4 * 3 + 1 + 6


def test_rollout_in_strides_equals_stepwise_and_one_jump():
    U = stable_operators(2, 4, radius=0.99, seed=7)
    X = trajectory(U, 30)
    part = blocks_partition(2, 4)
    rec = recording(part, X)
    probe = lambda th: (th.sum(-1), th[:, 0])  # noqa: E731
    for obs in (Identity(), Affine(), Delay(2, affine=True)):
        kp = Koopman(part, observables=obs).fit(rec)
        start = rec[-kp.history:]
        strided = kp.rollout(start, 12, every=4, loss_fn=probe)
        stepwise = kp.rollout(start, 12, every=4, loss_fn=probe, jump=False)
        assert strided.steps == [0, 4, 8, 12]
        for a, b in zip(strided.values, stepwise.values):
            assert torch.allclose(a, b, atol=1e-10)
        for j, t in enumerate(strided.steps[1:], start=1):
            p = kp.predict(start, t)
            assert torch.allclose(strided.loss[j], p.sum(-1).reshape(1), atol=1e-10)
            assert torch.allclose(strided.acc[j], p[..., 0].reshape(1), atol=1e-10)
        assert torch.allclose(strided.theta[0], kp.predict(start, 12), atol=1e-10)


def test_lifted_shapes_history_and_errors():
    net = EnsembleMLP([2, 3, 2], "relu", n_members=3)
    part = kl.make_partition(net.shapes, "node")
    snaps = torch.randn(40, 3, part.n_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kp = Koopman(part, observables=Delay(3)).fit(snaps)
    for op, g in zip(kp.operators_, part.groups):   # (E * P_g, 3 m, 3 m), read back to m weights
        P, m = g.shape
        assert op.as_dense().shape == (3 * P, 3 * m, 3 * m) and op.n_out == m
    assert kp.predict(snaps[-3:], 5).shape == (3, part.n_params)
    with pytest.raises(FitError, match="needs the last 3"):
        kp.predict(snaps[-1], 5)
    with pytest.raises(FitError, match="starting weights have shape"):
        kp.predict(snaps[-3:, :2], 5)
    with pytest.raises(kl.NotFittedError, match="call fit"):
        Koopman(part).predict(snaps[-1], 2)
    assert kp.spectral_radius_.shape == (3,)
    assert [r.shape for r in kp.spectral_radii_] == [(3, int(g.shape[0])) for g in part.groups]
    assert kp.operator_entries() == sum(g.shape[0] * (3 * g.shape[1]) ** 2 for g in part.groups)
    for obs in (Polynomial(2), Polynomial(2, cross=True), Delay(2, affine=True)):
        kp = Koopman(part, observables=obs).fit(snaps)
        for op, g in zip(kp.operators_, part.groups):
            n = obs.n_features(int(g.shape[1]))
            assert op.as_dense().shape == (3 * int(g.shape[0]), n, n)
        assert kp.predict(snaps[-obs.history:], 4).shape == (3, part.n_params)


def test_float32_fit_stays_float32():
    net = EnsembleMLP([2, 3, 2], "relu")
    part = kl.make_partition(net.shapes, "node")
    snaps = torch.randn(30, part.n_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kp = Koopman(part, observables=Affine(), dtype=torch.float32).fit(snaps)
    assert kp.operators_[0].dtype == torch.float32
    assert kp.predict(snaps[-1], 3).dtype == torch.float32


def test_parse_observables():
    assert parse_observables("identity") == Identity()
    assert parse_observables("affine") == Affine()
    assert parse_observables("delay:11") == Delay(11)
    assert parse_observables("delay:2+1") == Delay(2, affine=True)
    assert parse_observables("poly:3:x") == Polynomial(3, cross=True)
    with pytest.raises(ValueError, match="unknown observables"):
        parse_observables("fourier")
    with pytest.raises(ValueError, match="degree"):
        parse_observables("poly:1")


def test_fit_variants_match_finite_section_and_separate_fits():
    U = stable_operators(5, 4, seed=9)
    X = trajectory(U, 30, noise=0.05)
    part = blocks_partition(5, 4)
    rec = recording(part, X)
    specs = {"paper": FitSpec("paper"), "rank2": FitSpec(2), "ridge": FitSpec(ridge=0.1),
             "cut": FitSpec(0.5), "clip": FitSpec(clip=0.5)}
    fam = Koopman(part).fit_variants(rec, specs)
    ops = {name: kp.operators_[0].as_dense() for name, kp in fam.items()}
    assert torch.allclose(ops["paper"], kl.finite_section(X, "pinv"), atol=1e-10)
    assert torch.allclose(ops["rank2"], kl.finite_section(X, "svd", rank=2), atol=1e-10)
    smax2 = torch.linalg.svdvals(X[..., :-1])[:, :1] ** 2
    for p in range(5):  # relative ridge = Tikhonov on the normal equations with (0.1 s_max)^2
        ref = kl.finite_section(X[p], "cholesky", ridge=float(0.01 * smax2[p, 0]))
        assert torch.allclose(ops["ridge"][p], ref, atol=1e-10)
    assert bool((kl.spectral_radius(ops["clip"]) <= 0.5 + 1e-9).all())
    assert bool((fam["clip"].spectral_radius_ <= 0.5 + 1e-9).all())
    # a cutoff at half the largest singular value keeps exactly the singular values above it
    S = torch.linalg.svdvals(X[..., :-1])
    assert torch.equal(torch.linalg.matrix_rank(ops["cut"]), (S > 0.5 * S[:, :1]).sum(-1))
    # every variant is the fit a Koopman with that spec makes on its own
    for name, s in specs.items():
        alone = Koopman(part, cutoff=s.cutoff, ridge=s.ridge, clip=s.clip).fit(rec)
        assert torch.allclose(ops[name], alone.operators_[0].as_dense(), atol=1e-12), name
        assert fam[name].spec == s
    with pytest.raises(FitError, match="unknown cutoff"):
        Koopman(part).fit_variants(rec, {"bad": FitSpec("matlab")})


def test_fit_variants_with_observables_equal_separate_fits():
    net = EnsembleMLP([3, 4, 2], "tanh", n_members=2)
    part = kl.make_partition(net.shapes, ["quasi_node:2", "node"])
    snaps = torch.randn(40, 2, part.n_params, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    for obs in (Identity(), Affine(), Delay(2)):
        fam = Koopman(part, observables=obs).fit_variants(snaps, {"paper": FitSpec("paper"), "r1": FitSpec(1)})
        hist = snaps[-obs.history:]
        ref = Koopman(part, observables=obs).fit(snaps)
        assert torch.allclose(fam["paper"].predict(hist, 5), ref.predict(hist, 5), atol=1e-8)
        ref1 = Koopman(part, cutoff=1, observables=obs).fit(snaps)
        assert torch.allclose(fam["r1"].predict(hist, 5), ref1.predict(hist, 5), atol=1e-8)
        assert fam["r1"].observables == obs and fam["r1"].batch_shape_ == (2,)
        assert torch.equal(fam["paper"].spectral_radius_, ref.spectral_radius_)


# -- the lifts against the concatenations they replace (bit for bit) ------------------------------
def _append_ones_reference(z):
    return torch.cat([z, torch.ones_like(z[..., :1, :])], dim=-2)


def _lift_reference(obs, x, stats):
    """The lifts as they were written before they filled one preallocated tensor."""
    if isinstance(obs, Polynomial):
        u = (x - stats["mean"]) / stats["std"]
        parts = [x] + [u ** p for p in range(2, obs.degree + 1)]
        if obs.cross and x.shape[-2] > 1:
            i, j = torch.triu_indices(x.shape[-2], x.shape[-2], offset=1)
            parts.append(u[..., i, :] * u[..., j, :])
        return _append_ones_reference(torch.cat(parts, dim=-2))
    if isinstance(obs, Delay):
        d, k = obs.delays, x.shape[-1]
        z = torch.cat([x[..., d - 1 - j: k - j] for j in range(d)], dim=-2)
        return _append_ones_reference(z) if obs.affine else z
    return _append_ones_reference(x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(5, 7), (3, 5, 7), (2, 3, 4, 9), (2, 1, 6), (4, 11, 3), (3, 40, 300)])
def test_lifts_equal_the_concatenations_bitwise(dtype, shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 1).to(dtype)
    x[..., 0, :] = 2.5                                       # a frozen coordinate (the block-scale std)
    for obs in (Polynomial(2), Polynomial(3), Polynomial(4), Polynomial(2, cross=True),
                Polynomial(3, cross=True), Affine(), Delay(1, affine=True), Delay(2), Delay(3, affine=True)):
        st = obs.stats(x)
        z = obs.lift(x, st)
        assert z.dtype == dtype and z.is_contiguous()
        assert torch.equal(z, _lift_reference(obs, x, st)), obs.name
    xt = x.transpose(-1, -2).contiguous().transpose(-1, -2)  # a strided view
    for obs in (Polynomial(3, cross=True), Polynomial(4), Delay(2, affine=True)):
        st = obs.stats(xt)
        assert torch.equal(obs.lift(xt, st), _lift_reference(obs, xt, st)), obs.name
    # statistics in another dtype promote u as the concatenation did
    st64 = {k: v.double() for k, v in Polynomial(2).stats(x).items()}
    z = Polynomial(3, cross=True).lift(x, st64)
    assert z.dtype == torch.float64 and torch.equal(z, _lift_reference(Polynomial(3, cross=True), x, st64))
