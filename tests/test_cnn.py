import torch

import koopman_lib as kl
from koopman_lib.ensembles import EnsembleCNN, evaluate
from koopman_lib.training import EnsembleTrainer


def test_ensemble_cnn_matches_member_modules_and_partition_layout():
    net = EnsembleCNN((3, 4), kernel=5, n_members=3, seed=1, dtype=torch.float64)
    x = torch.randn(7, 784, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = net(x)
    assert out.shape == (3, 7, 10)
    for e in range(3):
        m = net.member_module(e)
        assert torch.allclose(m(x), out[e], atol=1e-10)
        assert torch.equal(kl.flatten_params(m), net.theta[e].detach())
    part = kl.make_partition(m, "node")  # one block per output channel / unit
    assert sorted(part.block_sizes) == [26, 65, 76]
    assert part.n_blocks == 3 + 4 + 10 and part.n_params == net.n_params
    xe = torch.randn(3, 5, 784, dtype=torch.float64)
    per = net(xe)
    for e in range(3):
        assert torch.allclose(net.member_module(e)(xe[e]), per[e], atol=1e-10)


def test_ensemble_cnn_training_is_independent_runs():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(96, 784, generator=g), torch.randint(0, 10, (96,), generator=g)
    a = EnsembleCNN((2, 3), n_members=2, seed=4)
    b = EnsembleCNN((2, 3), n_members=2, seed=4)
    with torch.no_grad():
        b.theta.copy_(a.theta)
    single = EnsembleCNN((2, 3), n_members=1)
    with torch.no_grad():
        single.theta.copy_(a.theta[1:2])
    EnsembleTrainer(a, x, y, 32, "adam", 1e-3, member_seeds=[5, 6]).train(2)
    EnsembleTrainer(single, x, y, 32, "adam", 1e-3, member_seeds=[6]).train(2)
    assert torch.allclose(a.theta[1], single.theta[0], atol=1e-5)
    loss, acc = evaluate(a, x, y, batch_size=40)
    assert loss.shape == acc.shape == (2,) and bool((acc >= 0).all() & (acc <= 1).all())
    bad = a.theta.detach().clone()
    bad[0, 0] = float("nan")
    loss, _ = evaluate(a, x, y, bad)
    assert torch.isnan(loss[0]) and torch.isfinite(loss[1])
