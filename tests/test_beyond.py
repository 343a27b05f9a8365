import dataclasses
import json

import numpy as np
import pytest
import torch

from koopman_repro.experiments import beyond as bd
from koopman_repro.experiments import config_for, reproduce
from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.seeds import network_seed

TINY = dict(
    de_inits=2, de_steps=300, de_t1=100, de_t2=200, de_T=50, de_starts=(50, 100), de_lengths=(50, 100),
    de_eval_every=10, de_baselines=(("adam", 1e-3),), de_lbfgs_steps=3, de_observables=("identity", "delay:2", "state"),
    mlp_sizes=(784, 4, 10), layer1_q=49, train_subset=320, test_subset=200, mnist_inits=1, mnist_epochs=5, window_epochs=(2, 3), T_epochs=2,
    eval_every=5, lbfgs_steps=2, lbfgs_batch=32, extrap_L=(0, 3), heat_starts=(2,), heat_lengths=(1, 2),
    mnist_observables=("identity", "affine"), rep_inits=1, rep_partition="quasi_node:49",
    replication_window_epochs=(2, 2), rep_T_epochs=(1, 2), rep_curve_every=5, rep_rank=3,
    cyc_inits=1, cyc_warmup_epochs=1, cyc_record=5, cyc_T=5, cyc_target_epoch=2, cyc_max_epochs=3,
    other_epochs=2, other_window_epochs=(1, 1), other_T_epochs=1, wide_sizes=(784, 16, 10), wide_inits=1,
    cnn_channels=(2, 3), cnn_inits=1, fashion_inits=1)


def test_profiles_are_consistent():
    S = 938
    for name in ("ci", "paper", "full"):
        cfg = config_for("beyond", name)
        windows = bd.mnist_windows(cfg, S)          # raises if a window misses the evaluation grid
        assert windows and all(w.t2 + cfg.T_epochs * S <= cfg.mnist_epochs * S for w in windows)
        assert S % cfg.eval_every == 0 and cfg.rep_curve_every % cfg.eval_every == 0
        assert all(T * S % cfg.rep_curve_every == 0 for T in cfg.rep_T_epochs)
        assert cfg.de_t2 + cfg.de_T <= cfg.de_steps and cfg.cyc_target_epoch <= cfg.cyc_max_epochs
        assert set(cfg.items) <= set(bd.ITEMS)


def test_teq_over_t_and_errors():
    opt = torch.tensor([[1.0, 1.0], [0.8, 0.9], [0.6, 0.8], [0.5, 0.7]], dtype=torch.float64)  # every 10 steps
    r = bd.teq_over_t(torch.tensor([0.7, float("nan")]), opt, every=10, T=20)
    assert r[0] == pytest.approx((1 + 0.5) * 10 / 20)   # between the 2nd and 3rd evaluation
    assert r[1] == 0.0                                    # a diverged (non-finite) loss makes no progress
    assert bd.censored(torch.tensor([0.1, 0.95]), opt) == [True, False]
    a = torch.zeros(2, 3, dtype=torch.float64)
    b = torch.ones(2, 3, dtype=torch.float64)
    assert torch.allclose(bd.rel_error(b, b, a), torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(bd.rel_error(a, b, a), torch.ones(2, dtype=torch.float64))
    nan = torch.full((2, 3), float("nan"), dtype=torch.float64)
    assert bool(torch.isinf(bd.rel_error(nan, b, a)).all())


def test_segment_trainer_counts_jumps_in_the_schedule():
    g = torch.Generator().manual_seed(0)
    images = bd.Images(torch.randn(100, 784, generator=g), torch.randint(0, 10, (100,), generator=g),
                       torch.randn(20, 784), torch.randint(0, 10, (20,)), (0.0, 1.0))
    net = EnsembleMLP((784, 5, 10), "relu", 2, seed=1)
    st = bd.SegmentTrainer(net, images, lr=1.0, gamma=0.5, batch=32, seed=3)
    assert st.S == 4
    st.run(3)
    st.jumped(5)                  # progress 8: the third "epoch" of the schedule
    st.run(1)
    assert st.opt.param_groups[0]["lr"] == pytest.approx(0.25)
    assert st.progress == 9 and st.opt_steps == 4
    # a network is its own seed: network 1 alone (its weights and data order) follows the same path
    solo = EnsembleMLP((784, 5, 10), "relu", 1, seeds=[network_seed(1, 1)])
    st1 = bd.SegmentTrainer(solo, images, lr=1.0, gamma=0.5, batch=32, seed=3, networks=[1])
    st1.run(3)
    st1.jumped(5)
    st1.run(1)
    assert torch.equal(solo.theta[0], net.theta[1])


def test_train_run_records_evaluates_keeps_and_pairs_members():
    """The one train-and-record of the image classifiers (MNIST experiment and this chapter)."""
    from koopman_repro.experiments.images import make_evaluator, train_run
    from koopman_lib.seeds import shuffle_seed
    g = torch.Generator().manual_seed(0)
    images = bd.Images(torch.randn(96, 784, generator=g), torch.randint(0, 10, (96,), generator=g),
                       torch.randn(20, 784, generator=g), torch.randint(0, 10, (20,), generator=g), (0.0, 1.0))
    net = EnsembleMLP((784, 5, 10), "relu", 2, seed=1)
    theta0 = net.theta.detach().clone()
    seen = []
    # 4 steps per epoch (batch 24), 4 epochs; stored steps 0..5; grid every 2 steps within 6..9
    run = train_run(net, images, 4, 0.7, 2, 0, 5, seed=3, batch_size=24, keep=(10,), eval_span=(6, 9),
                    on_step=lambda step, theta: seen.append(step))
    assert run.S == 4 and run.E == 2 and seen == list(range(1, 17))
    assert sorted(run.grid) == [0, 4, 6, 8, 12, 16]          # step 0, every epoch end, the span's grid
    assert run.snaps.shape == (6, 2, net.n_params) and torch.equal(run.snap(0), theta0)
    assert run.snap(10).shape == (2, net.n_params) and not torch.equal(run.snap(10), run.snap(5))
    assert torch.equal(run.window(2, 5), run.snaps[2:6]) and run.epoch_window(1, 1) == (1, 4)
    loss4, acc4 = make_evaluator(net, images)(run.snap(4))
    assert torch.equal(run.loss_at(4), loss4) and torch.equal(run.grid[4][1], acc4)
    assert torch.equal(run.epoch_losses(2)[1], loss4) and run.curve(4, 4).shape == (3, 2)
    assert run.step_seconds > 0
    with pytest.raises(ValueError, match="not stored"):
        run.snap(7)
    sub = run.subset(1)
    assert sub.E == 1 and torch.equal(sub.snap(10), run.snap(10)[:1]) and torch.equal(sub.grid[8][0], run.grid[8][0][:1])
    # member e shuffles with shuffle_seed(seed, members[e]): member 1 trained alone follows the same path
    solo = EnsembleMLP((784, 5, 10), "relu", 1)
    with torch.no_grad():
        solo.theta.copy_(theta0[1:2])
    alone = train_run(solo, images, 4, 0.7, 2, 1, 5, seed=3, batch_size=24, members=[1])
    assert torch.equal(alone.snap(5)[0], run.snap(5)[1]) and torch.equal(solo.theta[0], net.theta[1])
    assert shuffle_seed(3, 1) == 3_500_001


def test_minibatch_loss_is_deterministic_per_step():
    g = torch.Generator().manual_seed(0)
    images = bd.Images(torch.randn(50, 784, generator=g), torch.randint(0, 10, (50,), generator=g),
                       torch.randn(5, 784), torch.randint(0, 10, (5,)), (0.0, 1.0))
    net = EnsembleMLP((784, 4, 10), "relu", 3)
    fn = bd.minibatch_loss(net, images, 8, seed=1)
    th = net.theta.detach()
    assert torch.equal(fn(th, 4), fn(th, 4)) and not torch.equal(fn(th, 4), fn(th, 5))
    shared = bd.minibatch_loss(net, images, 8, seed=1, shared=True)
    assert torch.allclose(shared(th[1:2], 7), shared(th, 7)[1:2])
    # member e draws its batches from shuffle_seed(seed, network e): network 2 alone sees the same
    # batches as in the ensemble, and its own, not network 0's
    alone = bd.minibatch_loss(net, images, 8, seed=1, networks=[2])
    assert torch.equal(alone(th[2:3], 4), fn(th, 4)[2:3])
    assert not torch.equal(bd.minibatch_loss(net, images, 8, seed=1, networks=[0])(th[2:3], 4), fn(th, 4)[2:3])


def test_memberwise_cnn_is_each_network_alone():
    """The ensemble's grouped convolution rounds differently with more members; the CNN of item 7
    runs each member alone, so network 1 beside others is network 1 alone, bit for bit."""
    x = torch.randn(16, 784, generator=torch.Generator().manual_seed(0))
    three = bd.MemberwiseCNN((2, 3), n_members=3, seeds=[network_seed(5, i) for i in range(3)])
    one = bd.MemberwiseCNN((2, 3), n_members=1, seeds=[network_seed(5, 1)])
    out3, out1 = three.forward(x), one.forward(x)
    assert out3.shape == (3, 16, 10) and torch.equal(out3[1:2], out1)
    out3.sum().backward()
    out1.sum().backward()
    assert torch.equal(three.theta.grad[1:2], one.theta.grad)
    assert torch.equal(three.forward(x.expand(3, -1, -1))[1:2], out1)    # per-member inputs


def test_tiny_run_writes_every_item(tmp_path):
    res = reproduce("beyond", "ci", tmp_path, **TINY)
    for key in ("baselines", "window_heatmap", "window_choice", "stabilisation", "observables", "cycles", "networks"):
        rows = res[key]
        assert rows, key
        assert all("method" in r and "setting" in r for r in rows), key
        assert (tmp_path / f"beyond-{key}.csv").is_file()
    assert {r["experiment"] for r in res["baselines"]} == {"de-solver", "mnist"}
    assert {r["comparison"] for r in res["baselines"]} == {"equal steps", "equal wall-clock"}
    methods = {r["method"] for r in res["stabilisation"]}
    assert len(methods) == len(bd.rep_variants(bd.Config(rep_rank=3))) and \
        {r["T_epochs"] for r in res["stabilisation"]} == {1, 2}
    assert len(res["networks"]) == 3 * 4
    saved = json.loads((tmp_path / "beyond.json").read_text())
    assert saved["provenance"]["profile"] == "ci"
    assert saved["provenance"]["config"] == json.loads(json.dumps(dataclasses.asdict(config_for("beyond", "ci", **TINY))))
    # a clipped operator never grows (up to the rounding of a float32 eigendecomposition)
    for r in res["stabilisation"]:
        if "clipping" in r["method"] and r["max_spectral_radius_median"] is not None:
            assert r["max_spectral_radius_median"] <= 1 + 1e-4


def test_choice_rows_use_the_chapter_median_and_pick_per_network():
    from koopman_lib.window import Window
    windows = [Window(1, 10), Window(5, 20)]
    # window 0: half the networks do well (median 0.65); window 1: all a little (median 0.1).
    # torch.median (the lower middle value) would call window 0 worse than window 1.
    teqs = torch.tensor([[0.0, 0.0, 1.3, 1.3], [0.1, 0.1, 0.1, 0.1]], dtype=torch.float64)
    scores = {"one_step": [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]}   # lower score = chosen
    rows = bd.choice_rows("x", windows, teqs, scores, paper_idx=1, unit="steps")
    by = {r["method"]: r for r in rows}
    assert by["best fixed window (hindsight)"]["windows_chosen"] == "1+9"
    assert by["best fixed window (hindsight)"]["teq_over_t_median"] == pytest.approx(0.65)
    assert by["oracle (best window per network, hindsight)"]["teq_over_t_median"] == pytest.approx(0.7)
    assert by["criterion: one-step"]["windows_chosen"] == "5+15; 5+15; 1+9; 1+9"
    assert by["criterion: one-step"]["teq_over_t_median"] == pytest.approx(0.7)
    assert by["the paper's window"]["teq_over_t_median"] == pytest.approx(0.1)


def test_de_precision_fits_recover_a_known_rotation():
    """Both precision fits of item 1 (float32-resolution cutoff; window rounded to float32) recover
    known node dynamics: every node row [W | b] of a 2x2 layer turns by one 3x3 rotation per step."""
    from koopman_lib.partition import LayerShape, make_partition
    partition = make_partition([LayerShape("layer0", 2, 2, True)], ["node"])
    c, s = np.cos(0.3), np.sin(0.3)
    Q = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    Q = Q @ torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))[0]
    E, k, T = 2, 60, 25
    rows = torch.randn(E, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    traj = [rows]
    for _ in range(k - 1 + T):
        traj.append(traj[-1] @ Q.T)
    traj = torch.stack(traj).reshape(k + T, E, 6)   # (k + T, E, D)
    window, truth = traj[:k], traj[k - 1 + T]
    fits = bd.de_precision_fits(partition, window, T)
    assert set(fits) == set(bd.DE_PRECISION_METHODS.values())
    for name, (pred, seconds) in fits.items():
        assert pred.shape == (E, 6) and seconds >= 0
        err = bd.rel_error(pred, truth, window[-1])
        assert bool((err < 1e-3).all()), (name, err)


def test_de_precision_rows_pick_equal_step_de_rows_in_order():
    rows = [{"experiment": "de-solver", "comparison": "equal wall-clock", "method": bd.DE_PAPER_FIT, "x": 0},
            {"experiment": "mnist", "comparison": "equal steps", "method": bd.DE_PAPER_FIT, "x": 1},
            {"experiment": "de-solver", "comparison": "equal steps", "method": bd.DE_PRECISION_METHODS["rounded"], "x": 2},
            {"experiment": "de-solver", "comparison": "equal steps", "method": bd.DE_PAPER_FIT, "x": 3}]
    got = bd.de_precision_rows({"baselines": rows})
    assert list(got) == [bd.DE_PAPER_FIT, *bd.DE_PRECISION_METHODS.values()]
    assert [r.get("x") for r in got.values()] == [3, None, 2]
