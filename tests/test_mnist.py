"""The MNIST experiment: its fits and rollouts through the core (one factorisation shared by
all cutoffs, low-rank operators, guarded per-network rollouts, the timed path), the ablation
design, and the results contract on a tiny run."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from koopman_lib import finite_section, make_partition, t_eq_parts
from koopman_lib.estimator import Koopman
from koopman_repro.experiments import config_for, mnist
from koopman_lib.fit import Cutoff, FitSpec, Operators, fit_operators
from koopman_lib.errors import FitError
from koopman_lib.partition import LayerShape
from koopman_repro.results import to_jsonable
from conftest import stable_operators

EPS64, EPS32 = torch.finfo(torch.float64).eps, torch.finfo(torch.float32).eps


def _toy_partition(fan_in=(4, 3)):
    shapes = [LayerShape("l0", 3, fan_in[0]), LayerShape("l1", 2, fan_in[1])]   # 3 and 2 nodes, rows fan_in + 1
    return shapes, make_partition(shapes, ["node", "node"])


def _recording(part, k, E, seed=0):
    """A random-walk recording ``(k, E, D)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, E, part.n_params, generator=g, dtype=torch.float64).cumsum(0)


def _block_snapshots(part, rec):
    """Per group the blocks ``(E*P, m, k)`` (member-major, time last) of a recording ``(k, E, D)``."""
    k = rec.shape[0]
    return [b.reshape(k, -1, int(g.shape[1])).permute(1, 2, 0) for g, b in zip(part.groups, part.blocks(rec))]


def _pinv_reference(x, rtol):
    """``F' pinv(F)`` by torch's own pinv (a direct SVD), for blocks ``(P, m, k)``."""
    return x[..., 1:] @ torch.linalg.pinv(x[..., :-1], rtol=rtol)


def test_config_cutoffs_are_cutoff_values():
    cfg = mnist.PROFILES["paper"]
    for c in (cfg.cutoff, cfg.replication_cutoff, *cfg.cutoff_sweep):
        Cutoff(c)                                          # the one vocabulary: no experiment-only names
    assert cfg.replication_cutoff == "jax" and "jax" in cfg.cutoff_sweep
    # the sweep: at least six relative cutoffs from 1e-10 to 1e-3, the resolution cutoff among them
    rel = [c for c in cfg.cutoff_sweep if isinstance(c, float)]
    assert len(rel) >= 5 and min(rel) <= 1e-10 and max(rel) >= 1e-3 and "resolution" in cfg.cutoff_sweep
    assert set(cfg.fits) == {"paper", "default", "default-stabilised", "default-strided",
                             "default-strided-stabilised"} and cfg.sweep_stabilised == (False, True)
    # the paper's (MATLAB, float64) and the replication's (jnp.linalg.pinv on float32) cutoffs
    assert mnist.rtol_of("paper", 157, 2813) == pytest.approx(2813 * EPS64)
    assert mnist.rtol_of("jax", 785, 1875) == pytest.approx(10 * 1875 * EPS32)
    assert mnist.rtol_of(1e-3, 5, 7) == 1e-3
    with pytest.raises(FitError, match="cutoff"):
        mnist.rtol_of("replication", 5, 7)


@pytest.mark.parametrize("cutoff", ["paper", "jax", 1e-2])
def test_fits_equal_dense_pinv_fits(cutoff):
    _, part = _toy_partition()
    rec = _recording(part, 20, 2)
    kp = mnist.fit_cutoffs(part, rec, torch.float64, [cutoff])[cutoff]
    assert kp.batch_shape_ == (2,)
    for op, x in zip(kp.operators_, _block_snapshots(part, rec)):
        assert not op.low_rank
        rtol = mnist.rtol_of(cutoff, x.shape[-2], x.shape[-1] - 1)
        assert torch.allclose(op.U, _pinv_reference(x, rtol), atol=1e-10, rtol=1e-8)
        assert torch.allclose(op.U, finite_section(x, "pinv", rcond=rtol), atol=1e-10, rtol=1e-8)


def test_one_factorisation_serves_every_cutoff():
    """A fit for several cutoffs equals separate fits for each (and the cutoff decides the rank)."""
    _, part = _toy_partition()
    rec = _recording(part, 20, 2, seed=1)
    cutoffs = ["paper", 1e-2, 0.3]
    many = mnist.fit_cutoffs(part, rec, torch.float64, cutoffs)
    for c in cutoffs:
        one = Koopman(part, cutoff=c).fit(rec)
        for a, b in zip(many[c].operators_, one.operators_):
            assert torch.equal(a.U, b.U) and torch.equal(a.rank, b.rank)
    assert (many[0.3].operators_[0].rank < many["paper"].operators_[0].rank).all()


def test_low_rank_fits_equal_the_dense_operator():
    _, part = _toy_partition(fan_in=(29, 3))        # layer 0 blocks m = 30 > k - 1 = 11: rank <= 11
    rec = _recording(part, 12, 2, seed=2)
    kp = mnist.fit_cutoffs(part, rec, torch.float64, ["paper"])["paper"]
    op, x = kp.operators_[0], _block_snapshots(part, rec)[0]
    assert op.low_rank and op.A.shape == (6, 30, 11) and op.B.shape == (6, 11, 30)
    assert torch.allclose(op.as_dense(), _pinv_reference(x, mnist.rtol_of("paper", 30, 11)), atol=1e-10)
    assert torch.equal(op.rank, torch.full((6,), 11))
    dense_lam = torch.linalg.eigvals(op.as_dense()).abs().sort(-1, descending=True).values[:, :11]
    assert torch.allclose(op.eigenvalues().abs().sort(-1, descending=True).values, dense_lam, atol=1e-8)
    assert not kp.operators_[1].low_rank                # layer 1 blocks (m = 4) stay dense


def test_fits_recover_known_operators_for_every_member():
    _, part = _toy_partition()
    E, k = 2, 40
    true = [stable_operators(E * g.shape[0], g.shape[1], 0.97, seed=i) for i, g in enumerate(part.groups)]
    theta = torch.randn(E, part.n_params, dtype=torch.float64)
    snaps = [theta]
    for _ in range(k - 1):
        blocks = [torch.bmm(U, b.reshape(-1, b.shape[-1]).unsqueeze(-1)).squeeze(-1).reshape(b.shape)
                  for U, b in zip(true, part.blocks(snaps[-1]))]
        snaps.append(part.assemble(blocks))
    kp = mnist.fit_cutoffs(part, torch.stack(snaps), torch.float64, ["paper"])["paper"]
    for op, U in zip(kp.operators_, true):
        assert torch.allclose(op.as_dense(), U, atol=1e-8)


def test_fits_equal_block_by_block_fits_from_float32_recordings():
    """The experiment casts a float32 recording inside the fit, in chunks: the same operators as
    casting first and fitting one block per chunk."""
    _, part = _toy_partition()
    rec = _recording(part, 30, 3, seed=3).float()
    fits = mnist.fit_cutoffs(part, rec, torch.float64, ["paper", 1e-3])
    for g, x in enumerate(_block_snapshots(part, rec.double())):
        ref = fit_operators(x, {"paper": FitSpec("paper"), 1e-3: FitSpec(1e-3)}, chunk_bytes=1)
        for c in ("paper", 1e-3):
            assert torch.allclose(fits[c].operators_[g].U, ref[c].U, atol=1e-12)
            assert torch.equal(fits[c].operators_[g].rank, ref[c].rank)


def _capture(thetas):
    def fn(theta):
        thetas.append(theta.clone())
        E = theta.shape[0]
        return torch.zeros(E), torch.zeros(E)
    return fn


@pytest.mark.parametrize("low_rank", [False, True])
@pytest.mark.parametrize("jump", [True, False])
def test_rollout_matches_dense_iteration(low_rank, jump):
    _, part = _toy_partition()
    E = 2
    dense = [stable_operators(E * g.shape[0], g.shape[1], 0.99, seed=3 + i) for i, g in enumerate(part.groups)]
    if low_rank:   # same operators written as thin factors A B (r = m here)
        ops = [Operators(A=U, B=torch.eye(U.shape[-1], dtype=U.dtype).expand_as(U).contiguous()) for U in dense]
    else:
        ops = [Operators(U=U) for U in dense]
    kp = Koopman.from_operators(part, ops, (E,))
    theta0 = torch.randn(E, part.n_params, dtype=torch.float64)
    seen = []
    ev = kp.rollout(theta0, T=7, every=3, loss_fn=_capture(seen), jump=jump)
    assert ev.steps == [0, 3, 6, 7] and ev.loss.shape == (4, E)
    w = theta0
    ref = {0: theta0}
    for t in range(1, 8):
        w = part.assemble([torch.bmm(U, b.reshape(-1, b.shape[-1]).unsqueeze(-1)).squeeze(-1).reshape(b.shape)
                           for U, b in zip(dense, part.blocks(w))])
        ref[t] = w
    for t, th in zip(ev.steps, seen):
        assert torch.allclose(th, ref[t], atol=1e-12)
    assert torch.allclose(kp.predict(theta0, 7), ref[7], atol=1e-12)


def test_fitted_rollout_of_a_low_rank_fit_matches_its_dense_form():
    """The experiment's low-rank fits (layer-wise operators) evolve as their dense ``A B``."""
    _, part = _toy_partition(fan_in=(29, 3))
    rec = _recording(part, 12, 2, seed=4) * 1e-2
    kp = mnist.fit_cutoffs(part, rec, torch.float64, ["paper"])["paper"]
    dense = Koopman.from_operators(part, [op.as_dense() for op in kp.operators_], (2,))
    a, b = [], []
    kp.rollout(rec[-1], 9, every=4, loss_fn=_capture(a))
    dense.rollout(rec[-1], 9, every=4, loss_fn=_capture(b))
    for x, y in zip(a, b):
        assert torch.allclose(x, y, rtol=1e-8, atol=1e-10)


def test_rollout_masks_a_diverging_member():
    _, part = _toy_partition()
    ops = []
    for g in part.groups:
        P, m = g.shape
        U = torch.eye(m).repeat(2 * P, 1, 1)
        U[P:] *= 1e8                                      # member 1 explodes (float32 overflow)
        ops.append(U)
    kp = Koopman.from_operators(part, ops, (2,), dtype=torch.float32)
    theta0 = torch.ones(2, part.n_params)
    ev = kp.rollout(theta0, T=10, every=1, loss_fn=lambda th: (th.abs().sum(-1), torch.ones(th.shape[0])))
    assert torch.isfinite(ev.loss[:, 0]).all()
    assert torch.isnan(ev.loss[-1, 1]) and torch.isfinite(ev.loss[0, 1])
    assert ev.steps == list(range(11))
    assert ev.stopped_at[0] is None and ev.reason[1] == "non-finite weights"


def test_rollout_guard_stops_a_growing_member():
    _, part = _toy_partition()
    ops = []
    for g in part.groups:
        P, m = g.shape
        U = torch.eye(m, dtype=torch.float64).repeat(2 * P, 1, 1)
        U[P:] *= 1.5                                      # member 1 grows 1.5x per step: > 1000x after 18
        ops.append(U)
    kp = Koopman.from_operators(part, ops, (2,))
    theta0 = torch.ones(2, part.n_params, dtype=torch.float64)
    ev = kp.rollout(theta0, T=40, every=5, max_growth=mnist.GUARD_GROWTH,
                    loss_fn=lambda th: (th.abs().sum(-1), torch.ones(th.shape[0])))
    assert ev.stopped_at == [None, 20]                    # 1.5**15 = 438 < 1000 < 1.5**20, checked every 5
    assert torch.isfinite(ev.loss[:, 0]).all() and ev.steps[-1] == 40
    assert torch.isfinite(ev.loss[:4, 1]).all() and torch.isnan(ev.loss[4:, 1]).all()
    assert torch.equal(ev.theta[1], theta0[1] * 1.5 ** 15)   # the last weights that passed the guard


def test_timed_path_is_the_reported_path():
    """``koopman_seconds`` fits and evolves exactly what the reported losses come from."""
    _, part = _toy_partition()
    rec = _recording(part, 30, 1, seed=5).float() * 1e-2
    theta = rec[-1]
    secs, kp, err = mnist.koopman_seconds(part, rec, theta, [12, 6], 5, "paper", torch.float64)
    assert err is None and secs[12] > 0 and secs[6] > 0
    rep = mnist.fit_cutoffs(part, rec, torch.float64, ["paper", 1e-4])["paper"]
    for a, b in zip(kp.operators_, rep.operators_):
        assert torch.equal(a.U, b.U)
    seen_t, seen_r = [], []
    kp.rollout(theta, 12, every=5, loss_fn=_capture(seen_t), max_growth=mnist.GUARD_GROWTH)
    rep.rollout(theta, 12, every=5, loss_fn=_capture(seen_r), max_growth=mnist.GUARD_GROWTH)
    assert all(torch.equal(a, b) for a, b in zip(seen_t, seen_r))
    secs, kc, err = mnist.koopman_seconds(part, rec, theta, [12], 5, dtype=torch.float64, method="cholesky")
    assert err is None and secs[12] > 0 and kc.method == "cholesky"
    for a, x in zip(kc.operators_, _block_snapshots(part, rec.double())):
        assert torch.allclose(a.U, finite_section(x, "cholesky"), atol=1e-12)


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
                     replication_fits=("paper", "default-stabilised"),
                     ablation_directions=("from_replication", "from_paper"))
    return cfg, mnist.run(cfg)


def test_tiny_run_meets_the_results_contract(tiny):
    cfg, res = tiny
    # Table 2: one row per (fit, horizon), fit one of the named fits
    assert [(r["fit"], r["T_epochs"]) for r in res["table"]] == \
        [(f, h) for f in cfg.fits for h in (1, 2, 5)]
    for row in res["table"]:
        for key in ("n_inits", "success_rate", "teq_over_t_median", "speedup_paper_style_median",
                    "speedup_fast_loop_median", "T_epochs", "fit", "koopman_seconds"):
            assert key in row
        assert row["n_inits"] == 2 and 0 <= row["success_rate"] <= 1
        assert (row["speedup_paper_style_median"] is None) == (row["success_rate"] == 0)
    need = {"partition", "dtype", "T_epochs", "final_test_loss_koopman", "final_test_loss_optimizer",
            "max_spectral_radius", "fit"}
    assert all(need <= set(r) for r in res["replication"])
    rep = [r for r in res["replication"] if r["setting"] == "replication"]
    assert {(r["partition"], r["T_epochs"]) for r in rep} == {("node", 1), ("node", 2), ("layer", 1), ("layer", 2)}
    assert all(r["dtype"] == "float32" and r["fit"] == "replication" for r in rep)
    rep_fits = {(r["fit"], r["T_epochs"]) for r in res["replication"] if r["setting"].startswith("replication, ")}
    assert rep_fits == {(f, h) for f in cfg.replication_fits for h in (1, 2)}
    assert len(res["ablation"]) == 14
    # the sweep: every (cutoff, stabilised, horizon) on every init
    sweep = res["cutoff_sweep"]
    assert [(r["cutoff"], r["stabilised"], r["T_epochs"]) for r in sweep] == \
        [(c, s, h) for c in cfg.cutoff_sweep for s in (False, True) for h in (1, 2, 5)]
    for r in sweep:
        assert r["rtol_layer1"] == Cutoff(r["cutoff"]).rtol(157, 29) and r["n_inits"] == 2
        if r["stabilised"]:
            assert r["max_spectral_radius"] <= 1 + 1e-9
    assert {r["cutoff"] for r in rep} == {"jax"}
    assert res["steps_per_epoch"] == 10 and res["snapshots"] == 30
    tm = res["timing"]
    assert all(tm["koopman_seconds"][f][f"T{h}"] > 0 for f in cfg.fits for h in cfg.horizons_epochs)
    assert "rollout of h epochs" in tm["note"]
    sv = res["singular_values_init0"]
    assert [g["block_size"] for g in sv] == [157, 7]          # one group per block size
    assert all(len(r) == min(g["block_size"], g["k"]) for g in sv for r in g["relative_singular_values"])
    chk = res["cholesky_check"]                        # Cholesky may refuse rank-deficient blocks here
    assert chk["blocks"] and ("weights_rel_diff_T" in chk or chk["errors"])
    text = json.dumps(to_jsonable(res), allow_nan=False)
    assert len(text) < 5e6


def test_tiny_run_is_internally_consistent(tiny):
    cfg, res = tiny
    S, w2 = res["steps_per_epoch"], cfg.window_epochs[1]
    epoch_loss = res["curves"]["epoch_loss"]            # (E, epochs + 1)
    for j, m in enumerate(res["members"]):
        for name, f in m["fits"].items():
            for h in cfg.horizons_epochs:
                parts = t_eq_parts(f[f"T{h}"]["koopman_loss"], epoch_loss[j, w2:].tolist())
                assert parts.value == pytest.approx(f[f"T{h}"]["T_eq_epochs"])
        for h in cfg.horizons_epochs:
            assert m[f"optimizer_loss_T{h}"] == pytest.approx(float(epoch_loss[j, w2 + h]))
        assert m["test_loss_t2"] == pytest.approx(float(epoch_loss[j, w2]))
        # the sweep's entries that equal a table fit are that fit (one rollout, not two)
        assert mnist.sweep_name(cfg, "paper", False) == "paper"
        assert mnist.sweep_name(cfg, "resolution", True) == "default-stabilised"
    # the table's rows are the medians of the members' entries
    for row in res["table"]:
        teq = [m["fits"][row["fit"]][f"T{row['T_epochs']}"]["teq_over_t"] for m in res["members"]]
        assert row["teq_over_t_median"] == pytest.approx(float(np.median(teq)))
    # the optimizer curve starts at t2 with the epoch-5 loss; the Koopman curve starts at the same weights
    curves = res["curves"]
    assert torch.allclose(curves["optimizer_loss"][:, 0], epoch_loss[:, w2].to(curves["optimizer_loss"].dtype))
    for name in cfg.fits:
        assert torch.allclose(curves["koopman_loss"][name][:, 0], curves["optimizer_loss"][:, 0], rtol=1e-5)
    # Fig. 3b: both trajectories agree at t2
    traj = res["trajectories"]
    i0 = traj["koopman_from_step"] - traj["optimizer_from_step"]
    for name in (f for f in cfg.fits if "strided" not in f):    # Fig. 3b: the fits of every step
        assert torch.allclose(traj["optimizer"][:, i0], traj["koopman"][name][:, 0], atol=1e-6)
    # the ablation's paper-settings base (a rollout of all ablation inits together) reproduces the
    # main experiment's init 0 with the paper's fit
    base = next(r for r in res["ablation"] if r["setting"] == "paper settings")
    main = res["members"][0]
    mp = main["fits"]["paper"]
    assert base["test_loss_t2"] == pytest.approx(main["test_loss_t2"])
    assert base["max_spectral_radius"] == pytest.approx(mp["max_spectral_radius"], rel=1e-6)
    if math.isfinite(mp["T2"]["koopman_loss"]) and math.isfinite(base["koopman_loss_T2"]):
        assert base["koopman_loss_T2"] == pytest.approx(mp["T2"]["koopman_loss"], rel=1e-3)


def test_one_builder_writes_every_replication_row(tiny):
    """Every row of the replication table comes from ``replication_row`` and is a declared row."""
    from koopman_repro.rows.mnist import MnistReplicationRow
    _, res = tiny
    for r in res["replication"]:
        MnistReplicationRow.from_dict(to_jsonable(r))
    row = mnist.replication_row({"setting": "s", "fit": "f"}, 2, 3, 0.3, (0.4, 0.8), (0.2, 0.9), 1.01,
                                {"koopman_loss_q25": 0.35})
    assert row == {"setting": "s", "fit": "f", "T_epochs": 2, "n_members": 3, "test_loss_t2": 0.3,
                   "final_test_loss_koopman": 0.4, "final_test_loss_optimizer": 0.2, "final_test_acc_koopman": 0.8,
                   "final_test_acc_optimizer": 0.9, "max_spectral_radius": 1.01, "koopman_loss_q25": 0.35}
    # the main experiment's rows are the medians of its curves at the horizon
    S = res["steps_per_epoch"]
    for r in (x for x in res["replication"] if x["setting"].startswith("paper (main experiment)")):
        j = res["curves"]["steps"].index(r["T_epochs"] * S)
        ko = res["curves"]["koopman_loss"][r["fit"]][:, j]
        assert r["final_test_loss_koopman"] == pytest.approx(float(np.median(ko[torch.isfinite(ko)].numpy())))


def test_spreads_are_quartiles_and_growth_over_the_networks():
    curve = {"steps": [0, 5, 10], "koopman_loss": [[1.0, 1.5, 2.0], [1.0, 0.9, 0.5], [2.0, 2.0, 8.0]],
             "optimizer_steps": [0, 5, 10], "optimizer_loss": [[1.0, 0.8, 0.6], [1.0, 0.8, 0.7], [2.0, 1.0, 0.9]]}
    s = mnist.spreads(curve, 10)
    assert s["koopman_loss_q25"] == pytest.approx(1.25) and s["koopman_loss_q75"] == pytest.approx(5.0)
    assert s["koopman_loss_growth_median"] == pytest.approx(2.0)        # growths 2, 0.5, 4
    assert s["networks_koopman_above_optimizer_median"] == 2            # 2.0 and 8.0 above 0.7
    with pytest.warns(RuntimeWarning, match="All-NaN"):                 # no evaluation at step 7: all nan
        assert math.isnan(mnist.spreads(curve, 7)["koopman_loss_q25"])


def test_ablation_rows_do_not_depend_on_its_chunks():
    """The ablation trains its networks in chunks (``ablation_group_size``); each network is its own
    seed, so the rows, curves and spectra are the same in chunks of 1 as all together (with the run's
    one intra-op thread: with two, a matrix product's rounding depends on the ensemble's size)."""
    from koopman_lib.threads import torch_threads
    from koopman_repro.partial import Partial
    base = config_for("mnist", "ci", sizes=(784, 6, 6, 6, 10), train_subset=320, test_subset=100, eval_every=5,
                      n_inits=2, n_ablation_inits=2, ablation_directions=("from_replication", "from_paper"))
    setup = mnist.Setup.make(base)
    with torch_threads(base.torch_threads):
        out = [mnist.ablation_study(dataclasses.replace(base, ablation_group_size=g), setup,
                                    Partial.beside(None, base, "mnist")) for g in (1, 2)]
    assert [r["n_members"] for r in out[0][0]] == [2] * len(out[0][0])
    assert json.dumps(to_jsonable(out[0]), sort_keys=True) == json.dumps(to_jsonable(out[1]), sort_keys=True)


def test_replication_does_not_depend_on_its_chunks():
    """The replication trains and fits its networks in chunks (``replication_group_size``); each network
    is its own seed, so its rows, curves, layer-wise operators and null rows are the same in chunks of 1
    and 2 as all together (with the run's one intra-op thread)."""
    from koopman_lib.threads import torch_threads
    base = config_for("mnist", "ci", sizes=(784, 6, 6, 6, 10), train_subset=320, test_subset=100, eval_every=5,
                      n_inits=2, n_replication_inits=3, replication_fits=("paper", "default"))
    setup = mnist.Setup.make(base)
    with torch_threads(base.torch_threads):
        out = [json.dumps(to_jsonable(mnist.replication_stage(dataclasses.replace(base, replication_group_size=g),
                                                              setup)), sort_keys=True) for g in (3, 2, 1)]
    assert json.loads(out[0])["fits"][0][0]["n_members"] == 3
    assert out[1] == out[0] and out[2] == out[0]
    with pytest.raises(ValueError, match="replication_group_size"):
        mnist.replication_stage(dataclasses.replace(base, replication_group_size=0), setup)


def test_stride_sweep_is_the_tables_fits_at_stride_1_and_at_the_rule(tiny):
    """The stride sweep retrains every network (its own seed: the main table's network) and fits the
    strided fits at every stride: at s = 1 they are the table's default fits, at the rule's stride its
    default-strided fit, value for value; every row covers every network."""
    cfg, res = tiny
    rows, per = res["stride_sweep"], res["stride_sweep_members"]
    rule = {r["stride"] for r in rows if r["rule"]}
    assert len(rule) == 1 and {r["stride"] for r in rows} >= {1} | rule
    assert all(r["n_inits"] == cfg.n_inits and r["all_same_networks"] for r in rows)
    pairs = [("default", 1, "default-strided"), ("default-stabilised", 1, "default-strided-stabilised"),
             ("default-strided", rule.pop(), "default-strided")]
    for m in res["members"]:
        for table_fit, s, sweep_fit in pairs:
            a, b = m["fits"][table_fit][f"T{cfg.T_epochs}"], per[str(m["init"])]["strides"][str(s)][sweep_fit][f"T{cfg.T_epochs}"]
            for key in ("koopman_loss", "T_eq_epochs", "teq_over_t", "horizon_steps"):
                assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), (table_fit, s, key)
    assert [r["fit"] for r in rows] == sorted(r["fit"] for r in rows)   # grouped by fit
