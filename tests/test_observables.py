import pytest
import torch

import koopman_lib as kl
from koopman_lib.nets import EnsembleMLP
from koopman_lib.observables import (Affine, Delay, Identity, ObservableTrainer, Polynomial, fit_lifted,
                                     parse_observables)
from koopman_lib.operators import FitError
from conftest import stable_operators, trajectory


def line(P, m, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(P, m, 1, generator=g, dtype=torch.float64)
    v = torch.randn(P, m, 1, generator=g, dtype=torch.float64)
    return w0 + v * torch.arange(k, dtype=torch.float64)


def test_affine_represents_a_straight_line_exactly():
    X = line(3, 4, 60)
    fit = fit_lifted(X[..., :40], Affine())
    pred = fit.predict(X[..., :40], 20)
    assert torch.allclose(pred, X[..., 59], atol=1e-8)
    steps = list(fit.iterate(X[..., :40], 20))
    assert torch.allclose(steps[-1], X[..., 59], atol=1e-8)
    # the constant observable row is exactly e_n
    assert torch.equal(fit.operators[:, -1], torch.eye(5, dtype=torch.float64)[-1].expand(3, 5))


def test_identity_lifting_matches_finite_section_and_trainer():
    U = stable_operators(4, 3, seed=2)
    X = trajectory(U, 30, noise=0.01)
    fit = fit_lifted(X, Identity())
    assert torch.allclose(fit.operators, kl.finite_section(X), atol=1e-12)
    net = EnsembleMLP([3, 4, 2], "tanh", n_members=2)
    part = kl.make_partition(net.shapes, ["quasi_node:2", "node"])
    snaps = torch.randn(50, 2, part.n_params, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = kl.KoopmanTrainer(part).fit(snaps)
    b = ObservableTrainer(part).fit(snaps)
    for Ua, fb in zip(a.operators_, b.fits_):
        assert torch.allclose(Ua, fb.operators, atol=1e-10)
    assert torch.allclose(a.predict(snaps[-1], 7), b.predict(snaps[-1], 7), atol=1e-8)
    assert torch.allclose(a.predict(snaps[-1], 7), list(b.iterate(snaps[-1:], 7))[-1], atol=1e-8)


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
    ident = fit_lifted(X[..., :50], Identity()).predict(X[..., :50], 20)
    delay = fit_lifted(X[..., :50], Delay(2))
    pred = delay.predict(X[..., :50], 20)
    assert torch.allclose(pred, X[..., 69], atol=1e-8)
    assert (ident - X[..., 69]).norm() > 1e-3 * X[..., 69].norm()
    K = delay.operators[0]
    assert torch.allclose(K[:m, :m], A, atol=1e-8) and torch.allclose(K[:m, m:], B, atol=1e-8)
    # relift mode follows the same map when the lift is exact
    relift = fit_lifted(X[..., :50], Delay(2), mode="relift").predict(X[..., :50], 20)
    assert torch.allclose(relift, X[..., 69], atol=1e-8)


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
    poly = fit_lifted(X[..., :25], Polynomial(2))
    for mode_fit in (poly, fit_lifted(X[..., :25], Polynomial(2), mode="relift")):
        assert torch.allclose(mode_fit.predict(X[..., :25], 10), X[..., 34], atol=1e-8)
    ident = fit_lifted(X[..., :25], Identity()).predict(X[..., :25], 10)
    assert (ident - X[..., 34]).abs().max() > 1e-6
    assert Polynomial(2).n_features(2) == 5 and Polynomial(3, cross=True).n_features(4) == 4 * 3 + 1 + 6


def test_strided_equals_stepwise():
    U = stable_operators(2, 4, radius=0.99, seed=7)
    X = trajectory(U, 30)
    for obs in (Identity(), Affine(), Delay(2, affine=True)):
        fit = fit_lifted(X, obs)
        steps = list(fit.iterate(X, 12))
        strided = list(fit.strided(X, 4, 3))
        for i, s in enumerate(strided):
            assert torch.allclose(s, steps[4 * i + 3], atol=1e-10)


def test_trainer_history_shapes_and_errors():
    net = EnsembleMLP([2, 3, 2], "relu", n_members=3)
    part = kl.make_partition(net.shapes, "node")
    snaps = torch.randn(40, 3, part.n_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tr = ObservableTrainer(part, Delay(3)).fit(snaps)
    out = tr.predict(snaps[-3:], 5)
    assert out.shape == (3, part.n_params)
    with pytest.raises(FitError, match="needs the last 3"):
        tr.predict(snaps[-1], 5)
    with pytest.raises(FitError, match="does not match"):
        tr.predict(snaps[-3:, :2], 5)
    with pytest.raises(FitError, match="call fit"):
        ObservableTrainer(part).predict(snaps[-1], 2)
    assert tr.max_spectral_radius().shape == (3,)
    assert tr.operator_entries() == sum(g.shape[0] * (3 * g.shape[1]) ** 2 for g in part.groups)


def test_float32_fit_stays_float32():
    net = EnsembleMLP([2, 3, 2], "relu")
    part = kl.make_partition(net.shapes, "node")
    snaps = torch.randn(30, part.n_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    tr = ObservableTrainer(part, Affine(), dtype=torch.float32).fit(snaps)
    assert tr.fits_[0].operators.dtype == torch.float32
    assert tr.predict(snaps[-1], 3).dtype == torch.float32


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


def test_svd_filters_match_finite_section():
    from koopman_lib.observables import Filter, svd_operators
    U = stable_operators(5, 4, seed=9)
    X = trajectory(U, 30, noise=0.05)
    ops = svd_operators(X, {"pinv": Filter(), "rank2": Filter(rank=2), "ridge": Filter(ridge=0.1),
                            "cut": Filter(rtol=0.5), "clip": Filter(clip=0.5)}, chunk=2)
    assert torch.allclose(ops["pinv"], kl.finite_section(X, "pinv"), atol=1e-10)
    assert torch.allclose(ops["rank2"], kl.finite_section(X, "svd", rank=2), atol=1e-10)
    smax2 = torch.linalg.svdvals(X[..., :-1])[:, :1] ** 2
    for p in range(5):  # relative ridge = absolute ridge (0.1 s_max)^2 per block
        ref = kl.finite_section(X[p], "svd", ridge=float(0.01 * smax2[p, 0]))
        assert torch.allclose(ops["ridge"][p], ref, atol=1e-10)
    assert bool((kl.spectral_radius(ops["clip"]) <= 0.5 + 1e-9).all())
    # a cutoff at half the largest singular value keeps exactly the singular values above it
    S = torch.linalg.svdvals(X[..., :-1])
    assert torch.equal(torch.linalg.matrix_rank(ops["cut"]), (S > 0.5 * S[:, :1]).sum(-1))
    with pytest.raises(ValueError, match="rtol"):
        svd_operators(X, {"bad": Filter(rtol="matlab")})


def test_fit_filters_equals_separate_fits():
    from koopman_lib.observables import Filter
    net = EnsembleMLP([3, 4, 2], "tanh", n_members=2)
    part = kl.make_partition(net.shapes, ["quasi_node:2", "node"])
    snaps = torch.randn(40, 2, part.n_params, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    for obs in (Identity(), Affine(), Delay(2)):
        fam = ObservableTrainer(part, obs).fit_filters(snaps, {"pinv": Filter(), "r1": Filter(rank=1)})
        ref = ObservableTrainer(part, obs, method="pinv").fit(snaps)
        hist = snaps[-obs.history:]
        assert torch.allclose(fam["pinv"].predict(hist, 5), ref.predict(hist, 5), atol=1e-8)
        ref1 = ObservableTrainer(part, obs, method="svd", rank=1).fit(snaps)
        assert torch.allclose(fam["r1"].predict(hist, 5), ref1.predict(hist, 5), atol=1e-8)


@pytest.mark.parametrize("shape", [(3, 5, 40), (3, 40, 5), (2, 6, 6)])
def test_thin_svd_matches_torch_svd(shape):
    from koopman_lib.observables import thin_svd
    F = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    F[0, :, 1] = 1e-9 * F[0, :, 0] + F[0, :, 2]  # a nearly dependent column
    U, S, V = thin_svd(F)
    r = min(shape[1:])
    assert U.shape == (shape[0], shape[1], r) and V.shape == (shape[0], shape[2], r)
    assert torch.allclose(S, torch.linalg.svdvals(F), atol=1e-12 * float(S.max()))
    assert torch.allclose((U * S.unsqueeze(-2)) @ V.mT, F, atol=1e-12)
    eye = torch.eye(r, dtype=torch.float64)
    assert torch.allclose(U.mT @ U, eye.expand(shape[0], r, r), atol=1e-12)
    assert torch.allclose(V.mT @ V, eye.expand(shape[0], r, r), atol=1e-12)
