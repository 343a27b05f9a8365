"""The MNIST experiment: its numerics (SVD-shared pinv fits, low-rank operators, masked
evolution), the ablation design, and the results contract on a tiny run."""
import json
import math

import pytest
import torch

from koopman_lib import finite_section, make_partition, t_eq_parts
from koopman_lib.experiments import config_for, mnist
from koopman_lib.nets import EnsembleMLP
from koopman_lib.partition import LayerShape
from koopman_lib.results import to_jsonable
from conftest import stable_operators


def _snapshots(P, m, k, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(P, m, k, generator=g, dtype=dtype).cumsum(-1)


def test_pinv_rtol():
    assert mnist.pinv_rtol("paper", 157, 2813) == pytest.approx(2813 * 2.220446049250313e-16)
    assert mnist.pinv_rtol("replication", 785, 1875) == pytest.approx(10 * 1875 * 1.1920928955078125e-07)
    assert mnist.pinv_rtol(1e-3, 5, 7) == 1e-3
    with pytest.raises(ValueError, match="cutoff"):
        mnist.pinv_rtol("matlab", 5, 7)


@pytest.mark.parametrize("cutoff", ["paper", "replication", 1e-2])
def test_block_svd_dense_equals_pinv_fit(cutoff):
    x = _snapshots(3, 6, 20)
    rtol = mnist.pinv_rtol(cutoff, 6, 19)
    ref = finite_section(x, "pinv", rcond=rtol)
    got = mnist.BlockSVD.of(x).dense(rtol)
    assert torch.allclose(got, ref, atol=1e-10, rtol=1e-8)


def test_low_rank_factors_equal_the_dense_operator():
    x = _snapshots(2, 30, 12)           # m = 30 > k - 1 = 11: rank <= 11
    svd = mnist.BlockSVD.of(x)
    assert svd.low_rank
    rtol = mnist.pinv_rtol("paper", 30, 11)
    A, B = svd.factors(rtol)
    assert A.shape == (2, 30, 11) and B.shape == (2, 11, 30)
    assert torch.allclose(A @ B, finite_section(x, "pinv"), atol=1e-10)
    op = mnist.BlockOperators(A=A, B=B)
    dense_lam = torch.linalg.eigvals(A @ B).abs().sort(-1, descending=True).values[:, :11]
    assert torch.allclose(op.eigenvalues().abs().sort(-1, descending=True).values, dense_lam, atol=1e-8)


def _toy_partition():
    shapes = [LayerShape("l0", 3, 4), LayerShape("l1", 2, 3)]   # node rows 5 and 4
    return shapes, make_partition(shapes, ["node", "node"])


def test_fit_blocks_recovers_known_operators_for_every_member():
    shapes, part = _toy_partition()
    E, k = 2, 40
    true = [stable_operators(E * g.shape[0], g.shape[1], 0.97, seed=i) for i, g in enumerate(part.groups)]
    theta = torch.randn(E, part.n_params, dtype=torch.float64)
    snaps = [theta]
    for _ in range(k - 1):
        blocks = [torch.bmm(U, b.reshape(-1, b.shape[-1]).unsqueeze(-1)).squeeze(-1).reshape(b.shape)
                  for U, b in zip(true, part.blocks(snaps[-1]))]
        snaps.append(part.assemble(blocks))
    ops = mnist.fit_blocks(part, torch.stack(snaps), torch.float64, ["paper"])["paper"]
    for op, U in zip(ops, true):
        assert torch.allclose(op.as_dense(), U, atol=1e-8)


def test_fit_blocks_in_chunks_equals_one_batch():
    shapes, part = _toy_partition()
    snaps = torch.randn(30, 3, part.n_params, dtype=torch.float64).cumsum(0)
    one = mnist.fit_blocks(part, snaps, torch.float64, ["paper", 1e-3])
    many = mnist.fit_blocks(part, snaps, torch.float64, ["paper", 1e-3], chunk_bytes=1)   # one block per chunk
    for c in one:
        for a, b in zip(one[c], many[c]):
            assert torch.allclose(a.as_dense(), b.as_dense(), atol=1e-12)
            assert torch.equal(a.rank, b.rank)


def _capture(thetas):
    def fn(theta):
        thetas.append(theta.clone())
        E = theta.shape[0]
        return torch.zeros(E), torch.zeros(E)
    return fn


@pytest.mark.parametrize("low_rank", [False, True])
@pytest.mark.parametrize("jump", [True, False])
def test_evolve_blocks_matches_dense_iteration(low_rank, jump):
    shapes, part = _toy_partition()
    E = 2
    dense = [stable_operators(E * g.shape[0], g.shape[1], 0.99, seed=3 + i) for i, g in enumerate(part.groups)]
    if low_rank:   # same operators written as thin factors A B (r = m here)
        ops = [mnist.BlockOperators(A=U, B=torch.eye(U.shape[-1], dtype=U.dtype).expand_as(U).contiguous())
               for U in dense]
    else:
        ops = [mnist.BlockOperators(U=U) for U in dense]
    theta0 = torch.randn(E, part.n_params, dtype=torch.float64)
    seen = []
    ev = mnist.evolve_blocks(part, ops, theta0, T=7, every=3, loss_fn=_capture(seen), jump=jump)
    assert ev.steps == [0, 3, 6, 7]
    w = theta0
    ref = {0: theta0}
    for t in range(1, 8):
        w = part.assemble([torch.bmm(U, b.reshape(-1, b.shape[-1]).unsqueeze(-1)).squeeze(-1).reshape(b.shape)
                           for U, b in zip(dense, part.blocks(w))])
        ref[t] = w
    for t, th in zip(ev.steps, seen):
        assert torch.allclose(th, ref[t], atol=1e-12)


def test_evolve_blocks_masks_a_diverging_member():
    shapes, part = _toy_partition()
    ops = []
    for g in part.groups:
        P, m = g.shape
        U = torch.eye(m).repeat(2 * P, 1, 1)
        U[P:] *= 1e8                                      # member 1 explodes (float32 overflow)
        ops.append(mnist.BlockOperators(U=U))
    theta0 = torch.ones(2, part.n_params)
    ev = mnist.evolve_blocks(part, ops, theta0, T=10, every=1,
                             loss_fn=lambda th: (th.abs().sum(-1), torch.ones(th.shape[0])))
    assert torch.isfinite(ev.loss[:, 0]).all()
    assert torch.isnan(ev.loss[-1, 1]) and torch.isfinite(ev.loss[0, 1])
    assert ev.steps == list(range(11))


def test_evolve_blocks_guard_stops_a_growing_member():
    shapes, part = _toy_partition()
    ops = []
    for g in part.groups:
        P, m = g.shape
        U = torch.eye(m, dtype=torch.float64).repeat(2 * P, 1, 1)
        U[P:] *= 1.5                                      # member 1 grows 1.5x per step: > 1000x after 18
        ops.append(mnist.BlockOperators(U=U))
    theta0 = torch.ones(2, part.n_params, dtype=torch.float64)
    ev = mnist.evolve_blocks(part, ops, theta0, T=40, every=5, max_growth=1e3,
                             loss_fn=lambda th: (th.abs().sum(-1), torch.ones(th.shape[0])))
    assert ev.stopped_at == [None, 20]                    # 1.5**15 = 438 < 1000 < 1.5**20, checked every 5
    assert torch.isfinite(ev.loss[:, 0]).all() and ev.steps[-1] == 40
    assert torch.isfinite(ev.loss[:4, 1]).all() and torch.isnan(ev.loss[4:, 1]).all()


def test_ablation_changes_exactly_one_factor():
    cfg = mnist.PROFILES["paper"]
    settings = mnist.ablation_settings(cfg)
    keys = ["normalize", "gamma", "window", "partition", "dtype", "cutoff"]
    bases = {s["direction"]: s for s in settings if s["factor"] == "none (base)"}
    assert set(bases) == {"from_replication", "from_paper"}
    assert all(bases["from_replication"][k] != bases["from_paper"][k] for k in keys)
    for s in settings:
        if s["factor"] == "none (base)":
            continue
        diff = [k for k in keys if s[k] != bases[s["direction"]][k]]
        assert len(diff) == 1, s["name"]
    assert len(settings) == 2 * (1 + len(keys))


def test_example_dataset_gives_the_normalised_tensors():
    data = mnist.Data.load(train_subset=50, test_subset=10)
    ds = mnist.ExampleDataset(data.raw_train, data.y_train, (0.1307, 0.3081))
    xtr, _ = data.normalized((0.1307, 0.3081))
    x, y = ds[7]
    assert x.shape == (1, 28, 28) and y == int(data.y_train[7])
    assert torch.allclose(x.reshape(-1), xtr[7], atol=1e-6)


def test_member_inits_do_not_depend_on_the_group():
    cfg = mnist.PROFILES["ci"]
    a = mnist.make_net(cfg, [0, 1, 2])
    b = mnist.make_net(cfg, [2])
    assert torch.equal(a.theta[2], b.theta[0])
    assert not torch.equal(a.theta[0], a.theta[1])


@pytest.fixture(scope="module")
def tiny():
    cfg = config_for("mnist", "ci", sizes=(784, 6, 6, 6, 10), train_subset=640, test_subset=200, eval_every=5,
                     n_inits=2, group_size=1, n_ablation_inits=1, timing_repeats=1,
                     ablation_directions=("from_replication", "from_paper"))
    return cfg, mnist.run(cfg)


def test_tiny_run_meets_the_results_contract(tiny):
    cfg, res = tiny
    assert [r["cutoff"] for r in res["table"]] == [cfg.cutoff, cfg.stable_cutoff]
    row = res["table"][0]
    for key in ("n_inits", "success_rate", "teq_over_t_median", "speedup_paper_style_median",
                "speedup_fast_loop_median", "T_epochs"):
        assert key in row
    assert row["n_inits"] == 2 and row["T_epochs"] == 2 and 0 <= row["success_rate"] <= 1
    need = {"partition", "dtype", "T_epochs", "final_test_loss_koopman", "final_test_loss_optimizer",
            "max_spectral_radius"}
    assert all(need <= set(r) for r in res["replication"])
    rep = [r for r in res["replication"] if r["setting"] == "replication"]
    assert {(r["partition"], r["T_epochs"]) for r in rep} == {("node", 1), ("node", 2), ("layer", 1), ("layer", 2)}
    assert all(r["dtype"] == "float32" for r in rep)
    assert len(res["ablation"]) == 14
    assert [r["cutoff"] for r in res["cutoff_sweep"]] == list(cfg.cutoff_sweep)
    assert res["steps_per_epoch"] == 10 and res["snapshots"] == 30
    text = json.dumps(to_jsonable(res), allow_nan=False)
    assert len(text) < 5e6


def test_tiny_run_is_internally_consistent(tiny):
    cfg, res = tiny
    S, w2 = res["steps_per_epoch"], cfg.window_epochs[1]
    epoch_loss = res["curves"]["epoch_loss"]            # (E, epochs + 1)
    for j, m in enumerate(res["members"]):
        for suffix in ("", "_stable"):
            parts = t_eq_parts(m[f"koopman_loss_T{suffix}"], epoch_loss[j, w2:].tolist())
            assert parts.value == pytest.approx(m[f"T_eq_epochs{suffix}"])
        assert m["optimizer_loss_T"] == pytest.approx(float(epoch_loss[j, w2 + cfg.T_epochs]))
        assert m["test_loss_t2"] == pytest.approx(float(epoch_loss[j, w2]))
    # the optimizer curve starts at t2 with the epoch-5 loss; the Koopman curve starts at the same weights
    curves = res["curves"]
    assert torch.allclose(curves["optimizer_loss"][:, 0], epoch_loss[:, w2].to(curves["optimizer_loss"].dtype))
    assert torch.allclose(curves["koopman_loss"][:, 0], curves["optimizer_loss"][:, 0], rtol=1e-5)
    # Fig. 3b: both trajectories agree at t2
    traj = res["trajectories"]
    i0 = traj["koopman_from_step"] - traj["optimizer_from_step"]
    assert torch.allclose(traj["optimizer"][:, i0], traj["koopman"][:, 0], atol=1e-6)
    # the ablation's paper-settings base (masked evolution) and the sweep's "paper" cutoff
    # (KoopmanTrainer.rollout) reproduce the main experiment's init 0
    base = next(r for r in res["ablation"] if r["setting"] == "paper settings")
    main = res["members"][0]
    sweep = next(r for r in res["cutoff_sweep"] if r["cutoff"] == cfg.cutoff)
    assert base["test_loss_t2"] == pytest.approx(main["test_loss_t2"])
    assert base["max_spectral_radius"] == pytest.approx(main["max_spectral_radius"], rel=1e-6)
    if math.isfinite(main["koopman_loss_T"]):
        assert sweep["koopman_loss_T2"] == pytest.approx(main["koopman_loss_T"])
        if math.isfinite(base["koopman_loss_T2"]):
            assert base["koopman_loss_T2"] == pytest.approx(main["koopman_loss_T"], rel=1e-3)
