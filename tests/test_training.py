"""The fast ensemble training loop: E members == E independent ordinary PyTorch runs."""
import pytest
import torch
import torch.nn.functional as F

from koopman_lib import TrajectoryRecorder, flatten_params
from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.ensembles import ensemble_forward, evaluate
from koopman_lib.seeds import network_seed, shuffle_seed
from koopman_lib.training import EnsembleTrainer, make_optimizer, train_epochs


def _data(n=150, d=12, c=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randint(0, c, (n,), generator=g)
    return x, y


def _reference_runs(net, x, y, epochs, batch, lr, gamma, seed, optimizer="adadelta"):
    """Each member trained alone as an nn.Sequential with a torch optimizer and StepLR,
    on the batches the documented shuffle rule gives it."""
    E = net.theta.shape[0]
    models = [net.member_module(e) for e in range(E)]
    opts = [make_optimizer(optimizer, m.parameters(), lr) for m in models]
    scheds = [torch.optim.lr_scheduler.StepLR(o, 1, gamma) for o in opts]
    gens = [torch.Generator().manual_seed(shuffle_seed(seed, e)) for e in range(E)]
    n = x.shape[0]
    for _ in range(epochs):
        perm = torch.stack([torch.randperm(n, generator=g) for g in gens])
        for i in range(-(-n // batch)):
            for e in range(E):
                idx = perm[e, i * batch:(i + 1) * batch]
                loss = F.nll_loss(F.log_softmax(models[e](x[idx]), dim=1), y[idx])
                opts[e].zero_grad()
                loss.backward()
                opts[e].step()
        for s in scheds:
            s.step()
    return torch.stack([flatten_params(m) for m in models])


@pytest.mark.parametrize("optimizer", ["adadelta", "adam"])
def test_ensemble_equals_independent_runs(optimizer):
    x, y = _data()
    net = EnsembleMLP([12, 7, 5, 4], "relu", n_members=3, seed=3, dtype=torch.float64)
    ref = _reference_runs(net, x, y, epochs=2, batch=16, lr=0.5, gamma=0.7, seed=11, optimizer=optimizer)
    trainer, stats = train_epochs(net, x, y, epochs=2, batch_size=16, optimizer=optimizer, lr=0.5, gamma=0.7, seed=11)
    assert torch.allclose(net.theta.detach(), ref, atol=1e-10, rtol=1e-9)
    assert [s.epoch for s in stats] == [1, 2]
    assert stats[1].lr == pytest.approx(0.5 * 0.7)
    assert trainer.step == 2 * 10 and trainer.steps_per_epoch == 10  # ceil(150 / 16)


def test_members_shuffle_independently_and_resume_matches_one_call():
    x, y = _data()
    a = EnsembleMLP([12, 6, 4], "relu", n_members=2, seed=1, dtype=torch.float64)
    b = EnsembleMLP([12, 6, 4], "relu", n_members=2, seed=1, dtype=torch.float64)
    # identical inits for both members: different shuffles must make them differ
    with torch.no_grad():
        a.theta[1] = a.theta[0]
        b.theta[1] = b.theta[0]
    train_epochs(a, x, y, epochs=3, batch_size=32, seed=5)
    assert not torch.allclose(a.theta[0], a.theta[1])
    tb = EnsembleTrainer(b, x, y, batch_size=32, seed=5)
    tb.train(1)
    tb.train(2)
    assert torch.equal(a.theta, b.theta)


def test_a_network_is_its_own_seed():
    """Network i of a run seeded s: the same initial weights and data order whether it is trained
    with 4 others or alone (seeds=[network_seed(s, i)], member_seeds=[shuffle_seed(s, i)])."""
    x, y = _data()
    big = EnsembleMLP([12, 6, 4], "relu", n_members=5, seed=2, dtype=torch.float64)
    alone = EnsembleMLP([12, 6, 4], "relu", seed=2, seeds=[network_seed(2, 3)], dtype=torch.float64)
    three = EnsembleMLP([12, 6, 4], "relu", n_members=3, seed=2, dtype=torch.float64)
    assert torch.equal(big.theta[3], alone.theta[0]) and torch.equal(big.theta[:3], three.theta)
    assert not torch.equal(big.theta[0], EnsembleMLP([12, 6, 4], "relu", n_members=1, seed=1).theta[0].double())
    train_epochs(big, x, y, epochs=2, batch_size=32, seed=2)
    train_epochs(alone, x, y, epochs=2, batch_size=32, member_seeds=[shuffle_seed(2, 3)])
    assert torch.equal(big.theta[3], alone.theta[0])
    with pytest.raises(ValueError, match="seeds has 1 entries for 2 members"):
        EnsembleMLP([12, 4], "relu", n_members=2, seeds=[1])
    with pytest.raises(ValueError, match="outside 0..499999"):
        network_seed(0, 500_000)


def test_member_seeds_make_a_member_independent_of_its_ensemble():
    x, y = _data()
    big = EnsembleMLP([12, 6, 4], "relu", n_members=3, seed=1, dtype=torch.float64)
    alone = EnsembleMLP([12, 6, 4], "relu", n_members=1, seed=9, dtype=torch.float64)
    with torch.no_grad():
        alone.theta.copy_(big.theta[2:3])
    train_epochs(big, x, y, epochs=2, batch_size=32, member_seeds=[4, 5, 6])
    train_epochs(alone, x, y, epochs=2, batch_size=32, member_seeds=[6])
    assert torch.allclose(big.theta[2], alone.theta[0], atol=1e-12)
    with pytest.raises(ValueError, match="member_seeds"):
        EnsembleTrainer(big, x, y, member_seeds=[1])


def test_on_step_sees_every_step_and_feeds_a_recorder():
    x, y = _data(n=64)
    net = EnsembleMLP([12, 5, 4], "relu", n_members=2, seed=0, dtype=torch.float64)
    seen = []
    rec = TrajectoryRecorder(net.n_params, t1=3, t2=8, batch_shape=(2,))

    def cb(step, theta):
        seen.append(step)
        rec(step, theta)
    train_epochs(net, x, y, epochs=2, batch_size=16, on_step=cb)
    assert seen == list(range(1, 9))
    assert rec.complete
    assert torch.equal(rec.snapshots[-1], net.theta.detach())  # the last step is the final state
    assert not torch.equal(rec.snapshots[0], rec.snapshots[-1])


def test_drop_last_and_step_count():
    x, y = _data(n=100)
    net = EnsembleMLP([12, 4], "relu", n_members=1, dtype=torch.float64)
    assert EnsembleTrainer(net, x, y, batch_size=64).steps_per_epoch == 2
    assert EnsembleTrainer(net, x, y, batch_size=64, drop_last=True).steps_per_epoch == 1


def test_evaluate_matches_per_member_modules():
    x, y = _data(n=90)
    net = EnsembleMLP([12, 8, 4], "relu", n_members=3, seed=2, dtype=torch.float64)
    loss, acc = evaluate(net, x, y, batch_size=40)
    for e in range(3):
        with torch.no_grad():
            out = net.member_module(e)(x)
        ref_loss = F.nll_loss(F.log_softmax(out, 1), y, reduction="sum") / x.shape[0]
        ref_acc = (out.argmax(1) == y).double().mean()
        assert loss[e] == pytest.approx(float(ref_loss), rel=1e-10)
        assert acc[e] == pytest.approx(float(ref_acc))
    # an explicit theta (e.g. a float64 Koopman prediction) is used instead of net.theta
    loss2, _ = evaluate(net, x, y, theta=torch.zeros_like(net.theta))
    assert torch.allclose(loss2, torch.full((3,), float(torch.log(torch.tensor(4.0))), dtype=torch.float64))


def test_ensemble_forward_shared_input_matches_net_forward():
    x, _ = _data(n=20)
    net = EnsembleMLP([12, 9, 7, 3], "tanh", n_members=4, seed=7, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(ensemble_forward(net, x), net(x), atol=1e-12)


def test_mse_loss_trains_regression():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 3, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    net = EnsembleMLP([3, 16, 1], "tanh", n_members=2, seed=0, dtype=torch.float64)
    before, _ = evaluate(net, x, y, loss="mse")
    train_epochs(net, x, y, epochs=20, batch_size=32, optimizer="adam", lr=1e-2, loss="mse")
    after, acc = evaluate(net, x, y, loss="mse")
    assert bool((after < 0.5 * before).all())
    assert bool(torch.isnan(acc).all())


def test_bad_input_errors():
    x, y = _data()
    net = EnsembleMLP([12, 4], "relu", n_members=1, dtype=torch.float64)
    with pytest.raises(ValueError, match="features"):
        EnsembleTrainer(net, x[:, :5], y)
    with pytest.raises(ValueError, match="same N"):
        EnsembleTrainer(net, x, y[:10])
    with pytest.raises(ValueError, match="unknown optimizer"):
        EnsembleTrainer(net, x, y, optimizer="lbfgs2")
    with pytest.raises(ValueError, match="batch_size"):
        EnsembleTrainer(net, x, y, batch_size=0)


@pytest.mark.parametrize("optimizer", ["adadelta", "adam", "sgd_momentum"])
def test_a_branch_continues_from_the_same_state_with_its_own_data_order(optimizer):
    """EnsembleTrainer.branch: with the original's own shuffle seeds it reproduces the original's
    continuation exactly (weights, optimizer state, schedule, counters all carried over); with
    other seeds it differs; training the branch never touches the original."""
    from koopman_lib.seeds import branch_seed
    x, y = _data()
    net = EnsembleMLP([12, 6, 4], "relu", n_members=2, seed=4, dtype=torch.float64)
    tr = EnsembleTrainer(net, x, y, batch_size=16, optimizer=optimizer, lr=0.5, gamma=0.7, seed=4)
    tr.train(2)
    state = net.theta.detach().clone()
    same = tr.branch([g.initial_seed() for g in tr.member_generators])
    # the original's generators have advanced two epochs: replay them in a twin to compare
    twin = tr.branch([shuffle_seed(4, e) for e in range(2)])
    for g in twin.member_generators:
        for _ in range(2):
            torch.randperm(x.shape[0], generator=g)
    other = tr.branch([branch_seed(4, e) for e in range(2)])
    assert other.step == tr.step == 2 * 10 and other.epoch == 2 and other.lr_for_epoch(3) == tr.lr_for_epoch(3)
    other.train(1)
    assert torch.equal(net.theta.detach(), state)            # the original is untouched
    twin.train(1)
    tr.train(1)
    assert torch.equal(twin.net.theta.detach(), net.theta.detach())
    assert not torch.allclose(other.net.theta.detach(), net.theta.detach())
    assert same.net is not net and same.optimizer is not tr.optimizer
    with pytest.raises(ValueError, match="member_seeds has 1 entries for 2 members"):
        tr.branch([1])
