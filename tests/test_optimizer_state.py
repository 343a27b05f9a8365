"""The optimizer's state as observables (koopman_lib.optimizer_state): the mapping, the recorder,
the fit on augmented blocks, the jump that writes the state back, and the errors."""
from __future__ import annotations

import copy

import pytest
import torch

import koopman_lib as kl
from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.observables import Affine
from koopman_lib.optimizer_state import (OPTIMIZER_BUFFERS, OptimizerStateRecorder, StateKoopman, StateLayout,
                                         flatten_state, load_state)

N, D_IN, N_OUT = 64, 3, 2


def data(seed, target=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D_IN, generator=g, dtype=torch.float64)
    if not target:
        return x, torch.zeros(N, N_OUT, dtype=torch.float64)
    y = x @ torch.randn(D_IN, N_OUT, generator=g, dtype=torch.float64) + 0.5
    return x, y + 0.3 * torch.randn(N, N_OUT, generator=g, dtype=torch.float64)


def model(seed):
    torch.manual_seed(seed)
    return torch.nn.Linear(D_IN, N_OUT).double()


def step(net, opt, x, y):
    """One step on the quadratic 0.5 mean ||W x + b - y||^2 (each node's gradient is C n_j - c_j)."""
    opt.zero_grad()
    (0.5 * ((net(x) - y) ** 2).sum(1).mean()).backward()
    opt.step()


def train(net, opt, x, y, steps, rec=None):
    for s in range(steps):
        step(net, opt, x, y)
        if rec is not None:
            rec(s)


def clone(net, opt, make):
    n2 = copy.deepcopy(net)
    o2 = make(n2.parameters())
    o2.load_state_dict(copy.deepcopy(opt.state_dict()))   # load_state_dict shares the tensors
    return n2, o2


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        assert sa["state"][k].keys() == sb["state"][k].keys()
        for name, v in sa["state"][k].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][k][name])), (k, name)


OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01),
    "adadelta": lambda p: torch.optim.Adadelta(p, lr=0.3),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
}


# -- (c) the mapping ------------------------------------------------------------------------------
def test_the_state_is_flattened_in_the_order_of_flatten_params():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2, bias=False)).double()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(8, 3, dtype=torch.float64)
    opt.zero_grad(); net(x).square().sum().backward(); opt.step()
    layout = StateLayout.for_optimizer(opt, kl.flatten_params(net).numel())
    flat = flatten_state(net, opt, layout)
    D = layout.n_params
    assert flat.shape == (2 * D,)
    assert torch.equal(flat[:D], kl.flatten_params(net))
    # the momentum buffer of a plain SGD step from zero is the gradient: the buffer rows are the
    # gradient laid out as flatten_params lays out the weights
    grads = copy.deepcopy(net)
    for p, q in zip(grads.parameters(), net.parameters()):
        p.data.copy_(opt.state[q]["momentum_buffer"])
    assert torch.equal(flat[D:], kl.flatten_params(grads))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_mapping_round_trips_to_an_identical_state_dict(name):
    make = OPTIMIZERS[name]
    x, y = data(0)
    net = model(0); opt = make(net.parameters())
    train(net, opt, x, y, 7)
    other, other_opt = model(1), None
    other_opt = make(other.parameters())
    train(other, other_opt, x, y, 3)                              # different weights, state and counter
    identity = {b: "identity" for b in StateLayout.for_optimizer(opt, 8).buffers}
    layout = StateLayout.for_optimizer(opt, 8, transforms=identity)
    assert layout.buffers == tuple(b for b, _ in OPTIMIZER_BUFFERS[layout.optimizer]
                                   if b in opt.state[net.weight])
    load_state(other, other_opt, layout.split(flatten_state(net, opt, layout)), step=int(
        torch.as_tensor(opt.state[net.weight].get("step", 0))))
    assert torch.equal(kl.flatten_params(other), kl.flatten_params(net))
    same_state(other_opt, opt)


def test_the_sqrt_transform_round_trips_to_float_rounding():
    x, y = data(0)
    net = model(0).float(); opt = torch.optim.Adam(net.parameters(), lr=0.01)
    train(net, opt, x.float(), y.float(), 5)
    layout = StateLayout.for_optimizer(opt, 8)
    assert layout.transforms == ("identity", "sqrt")                 # the a-priori default
    flat = flatten_state(net, opt, layout)
    assert flat.dtype == torch.float32                               # the transform runs in the buffer's dtype
    assert torch.equal(flat[16:], torch.cat([opt.state[net.weight]["exp_avg_sq"], opt.state[net.bias][
        "exp_avg_sq"].unsqueeze(1)], 1).reshape(-1).sqrt())
    n2, o2 = clone(net, opt, lambda p: torch.optim.Adam(p, lr=0.01))
    before = {k: v.clone() for k, v in opt.state[net.weight].items()}
    load_state(n2, o2, layout.split(flat.double()))                 # T = 0: the counter is kept
    st = o2.state[n2.weight]
    assert torch.equal(st["exp_avg"], before["exp_avg"]) and torch.equal(st["step"], before["step"])
    torch.testing.assert_close(st["exp_avg_sq"], before["exp_avg_sq"], rtol=3e-7, atol=0)


def test_an_ensemble_leaf_is_its_own_layout():
    net = EnsembleMLP([3, 4, 2], "tanh", n_members=3, dtype=torch.float64)
    opt = torch.optim.Adam([net.theta], lr=0.01)
    x = torch.randn(16, 3, dtype=torch.float64)
    for _ in range(3):
        opt.zero_grad(); net(x).square().sum().backward(); opt.step()
    rec = OptimizerStateRecorder(net, opt, 3, 12)
    for s in range(3, 13):
        opt.zero_grad(); net(x).square().sum().backward(); opt.step(); rec(s)
    D = net.n_params
    assert rec.snapshots.shape == (10, 3, 3 * D)
    assert torch.equal(rec.snapshots[-1, :, D:2 * D], opt.state[net.theta]["exp_avg"])
    part = kl.make_partition(net.shapes, "node")
    pred = StateKoopman(part, rec.layout).fit(rec).predict(rec.last(), T=5)
    assert pred.theta.shape == (3, D) and pred.state["exp_avg_sq"].shape == (3, D)
    step0 = float(opt.state[net.theta]["step"])
    load_state(net, opt, pred)
    assert torch.equal(net.theta.detach(), pred.theta)
    assert float(opt.state[net.theta]["step"]) == step0 + 5


# -- (a) a known augmented operator is recovered -----------------------------------------------------
def test_sgd_momentum_on_a_quadratic_recovers_the_known_augmented_operator():
    lr, mu = 0.05, 0.8
    x, y = data(2, target=False)                                   # gradient C n_j: linear in [w; buf]
    make = lambda p: torch.optim.SGD(p, lr=lr, momentum=mu)
    net = model(2); opt = make(net.parameters())
    rec = OptimizerStateRecorder(net, opt, 1, 40)
    train(net, opt, x, y, 41, rec)
    part = kl.make_partition(net, "node")
    kp = StateKoopman(part, rec.layout).fit(rec)
    xt = torch.cat([x, torch.ones(N, 1, dtype=torch.float64)], 1)
    C = xt.T @ xt / N
    m = C.shape[0]
    # buf' = mu buf + C w ; w' = w - lr buf'
    K = torch.cat([torch.cat([torch.eye(m, dtype=C.dtype) - lr * C, -lr * mu * torch.eye(m, dtype=C.dtype)], 1),
                   torch.cat([C, mu * torch.eye(m, dtype=C.dtype)], 1)], 0)
    U = kp.operators_[0].as_dense()
    assert U.shape == (N_OUT, 2 * m, 2 * m)
    torch.testing.assert_close(U, K.expand_as(U), rtol=0, atol=1e-8)
    # a jump of T steps is T optimizer steps
    T = 60
    pred = kp.predict(rec.last(), T)
    n2, o2 = clone(net, opt, make)
    train(n2, o2, x, y, T)
    torch.testing.assert_close(pred.theta, kl.flatten_params(n2), rtol=0, atol=1e-10)
    torch.testing.assert_close(pred.state["momentum_buffer"], rec.split(flatten_state(n2, o2, rec.layout)).state[
        "momentum_buffer"], rtol=0, atol=1e-10)


# -- (b) jump, write back, resume ---------------------------------------------------------------------
def jump_and_resume(make, seed, t1, t2, T, S, buffers=None):
    """Relative distance, at step t2 + T + S, of (record, jump T with the state, load, train S)
    and of the weights-only jump (stale state), from the uninterrupted run, relative to how far
    the uninterrupted run moved from t2."""
    x, y = data(seed)
    net = model(seed); opt = make(net.parameters())
    rec = OptimizerStateRecorder(net, opt, t1, t2, buffers=buffers)
    wrec = kl.TrajectoryRecorder(rec.layout.n_params, t1, t2)
    for s in range(t2 + 1):
        step(net, opt, x, y); rec(s); wrec(s, kl.flatten_params(net))
    ref, ref_opt = clone(net, opt, make)
    train(ref, ref_opt, x, y, T + S)
    part = kl.make_partition(net, "node")
    a, a_opt = clone(net, opt, make)
    load_state(a, a_opt, StateKoopman(part, rec.layout, observables=Affine()).fit(rec).predict(rec.last(), T))
    train(a, a_opt, x, y, S)
    b, b_opt = clone(net, opt, make)
    kl.load_flat(b, kl.Koopman(part, observables=Affine()).fit(wrec).predict(wrec.last(), T))
    train(b, b_opt, x, y, S)
    w0, wr = kl.flatten_params(net), kl.flatten_params(ref)
    moved = (wr - w0).norm()
    return ((kl.flatten_params(a) - wr).norm() / moved).item(), ((kl.flatten_params(b) - wr).norm() / moved).item()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sgd_momentum_jump_and_resume_is_the_uninterrupted_run(seed):
    # SGD with momentum on a quadratic is affine in [w; buf]: the Affine fit is exact
    state, weights = jump_and_resume(lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9), seed, 20, 120, 100, 20)
    assert state < 1e-9
    assert weights > 0.1                                        # the weights alone are not a Markov state


# Adam and Adadelta are not linear in [w; state] (Adam divides by sqrt(v), Adadelta by
# sqrt(square_avg)): the jump is an approximation, and what the state buys is measured against the
# weights-only jump with the optimizer's stale state and counter. Measured on these seeds: the state
# jump's error is 1e-6 to 1.2e-3 (Adam) and 1e-8 to 5e-7 (Adadelta), 16 to 8000 (Adam) and 5e4 to
# 2e6 (Adadelta) times smaller than the weights-only jump's; asserted: a bound 4x (Adam) / 200x
# (Adadelta) above the worst measured error, and a margin of 10x over the weights-only jump.
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name, make, bound", [
    ("adam", lambda p: torch.optim.Adam(p, lr=0.003), 5e-3),
    ("adadelta", lambda p: torch.optim.Adadelta(p, lr=0.1), 1e-4),
])
def test_adam_and_adadelta_jump_and_resume_closer_than_the_weights_only_jump(name, make, bound, seed):
    state, weights = jump_and_resume(make, seed, 100, 200, 50, 20)
    assert state < bound
    assert state < weights / 10


def test_a_perfect_prediction_resumes_adam_bit_for_bit_and_the_counter_matters():
    """The write-back is exact: the true state T steps ahead, loaded with load_state, resumes the
    uninterrupted run exactly; loaded without advancing Adam's counter (bias correction), it does not."""
    make = lambda p: torch.optim.Adam(p, lr=0.01)
    x, y = data(3)
    net = model(3); opt = make(net.parameters())
    train(net, opt, x, y, 10)
    layout = StateLayout.for_optimizer(opt, 8, transforms={"exp_avg_sq": "identity"})
    ref, ref_opt = clone(net, opt, make)
    T, S = 15, 5
    train(ref, ref_opt, x, y, T)
    future = layout.split(flatten_state(ref, ref_opt, layout), T)
    train(ref, ref_opt, x, y, S)
    a, a_opt = clone(net, opt, make)
    load_state(a, a_opt, future)
    train(a, a_opt, x, y, S)
    assert torch.equal(kl.flatten_params(a), kl.flatten_params(ref))
    b, b_opt = clone(net, opt, make)
    load_state(b, b_opt, future, step=int(opt.state[net.weight]["step"]))   # the counter left behind
    train(b, b_opt, x, y, S)
    assert not torch.allclose(kl.flatten_params(b), kl.flatten_params(ref), rtol=0, atol=1e-12)


def test_rollout_returns_weights_and_state_and_loss_sees_the_weights():
    make = lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9)
    x, y = data(0)
    net = model(0); opt = make(net.parameters())
    rec = OptimizerStateRecorder(net, opt, 20, 120)
    train(net, opt, x, y, 121, rec)
    kp = StateKoopman(kl.make_partition(net, "node"), rec.layout, observables=Affine()).fit(rec)
    seen = []
    out = kp.rollout(rec.last(), 40, every=10, loss_fn=lambda th: seen.append(th.shape) or th.square().sum(-1))
    assert all(s == (1, rec.layout.n_params) for s in seen) and out.steps == [0, 10, 20, 30, 40]
    pred = kp.predict(rec.last(), 40)
    got = out.prediction(40)
    torch.testing.assert_close(got.theta, pred.theta, rtol=0, atol=1e-10)
    torch.testing.assert_close(got.state["momentum_buffer"], pred.state["momentum_buffer"], rtol=0, atol=1e-10)


def test_a_streaming_recording_fits_the_same_operators():
    make = lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8)
    x, y = data(2, target=False)
    part = kl.make_partition(model(2), "node")
    recs = []
    for mode in ("stored", "streaming"):
        net = model(2); opt = make(net.parameters())
        rec = OptimizerStateRecorder(net, opt, 1, 40, mode=mode, partition=part)
        train(net, opt, x, y, 41, rec)
        recs.append(rec)
    a = StateKoopman(part, recs[0].layout, method="cholesky").fit(recs[0])
    b = StateKoopman(part, recs[1].layout, method="cholesky").fit(recs[1])
    torch.testing.assert_close(b.operators_[0].as_dense(), a.operators_[0].as_dense(), rtol=0, atol=1e-8)


# -- (d) errors ------------------------------------------------------------------------------------------
def test_an_unsupported_optimizer_names_the_supported_ones():
    net = model(0)
    with pytest.raises(ValueError, match="supported: Adam, AdamW, Adadelta, Adagrad, SGD, RMSprop"):
        OptimizerStateRecorder(net, torch.optim.Adamax(net.parameters()), 1, 5)


def test_a_buffer_the_optimizer_does_not_keep_is_refused():
    net = model(0)
    with pytest.raises(ValueError, match=r"keeps the buffers \('exp_avg', 'exp_avg_sq'\), not 'momentum_buffer'"):
        OptimizerStateRecorder(net, torch.optim.Adam(net.parameters()), 1, 5, buffers=("momentum_buffer",))
    with pytest.raises(ValueError, match=r"keeps the buffers \(\), not 'momentum_buffer'.*momentum"):
        OptimizerStateRecorder(net, torch.optim.SGD(net.parameters(), lr=0.1), 1, 5, buffers="momentum_buffer")
    with pytest.raises(ValueError, match="'sqrt' applies to nonnegative second moments"):
        OptimizerStateRecorder(net, torch.optim.Adam(net.parameters()), 1, 5, transforms={"exp_avg": "sqrt"})
    with pytest.raises(ValueError, match="unknown transform 'log'"):
        OptimizerStateRecorder(net, torch.optim.Adam(net.parameters()), 1, 5, transforms={"exp_avg_sq": "log"})
    with pytest.raises(ValueError, match="not recorded"):
        OptimizerStateRecorder(net, torch.optim.Adam(net.parameters()), 1, 5, buffers=("exp_avg",),
                               transforms={"exp_avg_sq": "sqrt"})


def test_state_that_does_not_exist_yet_is_refused_with_the_fix():
    net = model(0)
    rec = OptimizerStateRecorder(net, torch.optim.Adam(net.parameters()), 0, 5)
    with pytest.raises(ValueError, match="take one step before recording"):
        rec(0)
    assert rec.count == 0


def test_load_state_checks_everything_before_writing():
    make = lambda p: torch.optim.Adam(p, lr=0.01)
    x, y = data(0)
    net = model(0); opt = make(net.parameters())
    train(net, opt, x, y, 3)
    layout = StateLayout.for_optimizer(opt, 8)
    pred = layout.split(flatten_state(net, opt, layout).double(), 4)
    pred.state["exp_avg"] = pred.state["exp_avg"].clone()
    pred.state["exp_avg"][3] = float("nan")
    w, st = kl.flatten_params(net), copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match="exp_avg holds NaN"):
        load_state(net, opt, pred)
    assert torch.equal(kl.flatten_params(net), w)
    for k, v in st["state"].items():
        for name, t in v.items():
            assert torch.equal(opt.state_dict()["state"][k][name], t)
    with pytest.raises(ValueError, match="holds Adam state; the optimizer is SGD"):
        load_state(net, torch.optim.SGD(net.parameters(), lr=0.1), pred)


def test_the_recording_memory_is_estimated_for_weights_and_state_and_refused():
    net = model(0)
    opt = torch.optim.Adam(net.parameters())
    with pytest.raises(MemoryError, match="24 parameters"):       # 8 weights x (1 + 2 buffers)
        OptimizerStateRecorder(net, opt, 0, 999, memory_limit=1000 * 24 * 8 - 1)
    OptimizerStateRecorder(net, opt, 0, 999, memory_limit=1000 * 24 * 8)


# -- (e) without state, nothing changes --------------------------------------------------------------------
def test_without_buffers_the_recording_and_the_jump_are_the_weights_only_ones_bit_for_bit():
    make = lambda p: torch.optim.Adam(p, lr=0.01)
    x, y = data(0)
    net = model(0); opt = make(net.parameters())
    part = kl.make_partition(net, "node")
    rec = OptimizerStateRecorder(net, opt, 10, 60, buffers=())
    wrec = kl.TrajectoryRecorder(part.n_params, 10, 60)
    for s in range(61):
        step(net, opt, x, y); rec(s); wrec(s, kl.flatten_params(net))
    assert torch.equal(rec.snapshots, wrec.snapshots)
    a = StateKoopman(part, rec.layout).fit(rec).predict(rec.last(), 30)
    b = kl.Koopman(part).fit(wrec).predict(wrec.last(), 30)
    assert a.state == {} and torch.equal(a.theta, b)


def test_fit_named_on_a_state_koopman_gives_state_koopmans_with_the_augmented_stride():
    """StateKoopman.fit_named: every named fit, plain and strided, stays a StateKoopman (its jump
    returns weights and state), equal to fitting that fit on its own; the stride rule counts the
    augmented blocks (weights with the state stacked in)."""
    from koopman_lib.stride import choose_stride, strided_window
    net = EnsembleMLP([3, 4, 2], "tanh", n_members=2, dtype=torch.float64)
    part = kl.make_partition(net.shapes, "node")
    opt = torch.optim.Adam([net.theta], lr=1e-2)
    rec = kl.OptimizerStateRecorder(net, opt, 1, 121)                 # Adam has state after its first step
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, dtype=torch.float64, generator=g)
    for t in range(1, 122):
        opt.zero_grad()
        net.forward(x, net.theta).pow(2).sum().backward()
        opt.step()
        rec(t)
    base = kl.StateKoopman(part, rec.layout)
    fits = base.fit_named(rec.snapshots, ["default", "default-strided"])
    assert all(isinstance(k, kl.StateKoopman) for k in fits.values())
    s = choose_stride(121, base.partition)
    assert fits["default-strided"].stride_ == s and max(base.partition.block_sizes) > max(part.block_sizes)
    alone = kl.StateKoopman(part, rec.layout, fit="default").fit(rec.snapshots)
    a, b = fits["default"].predict(rec.snapshots[-1], 8), alone.predict(rec.snapshots[-1], 8)
    assert torch.equal(a.theta, b.theta)
    strided = kl.StateKoopman(part, rec.layout, fit="default", stride=s).fit(strided_window(rec.snapshots, s))
    T = s * 2
    assert torch.equal(fits["default-strided"].predict(rec.snapshots[-1], T).theta,
                       strided.predict(rec.snapshots[-1], T).theta)
