"""The NN DE solver experiment: loss, gradients, batched training, ODE reference, the named fits,
where Koopman training stops, pipeline schema."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from koopman_repro import scorecard as sc
from koopman_lib.threads import torch_threads
from koopman_lib.estimator import BOOK_FITS, STRIDED_FITS, Koopman
from koopman_repro.experiments import de_solver as ds
from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.fit import FITS, recorded_precision
from koopman_lib.recorder import TrajectoryRecorder
from koopman_repro.scorecard import KEEPS_UP
from koopman_lib.partition import load_flat, make_partition
from koopman_repro.results import to_jsonable

SIZES = (1, 10, 10, 2)


def _theta(E, seed=0, scale=1.0):
    return EnsembleMLP(SIZES, "sigmoid", E, seed=seed, dtype=torch.float64).theta.detach() * scale


def test_time_grid_and_the_t_one_quirk():
    plain = ds.time_grid(200, 4 * math.pi, t_one_quirk=False)
    quirk = ds.time_grid(200, 4 * math.pi, t_one_quirk=True)
    assert torch.equal(plain, torch.linspace(0, 4 * math.pi, 200, dtype=torch.float64))
    assert quirk[2] == 1.0 and quirk[0] == 0.0
    assert torch.equal(torch.cat([quirk[:2], quirk[3:]]), torch.cat([plain[:2], plain[3:]]))
    # the solver's own perturbPoints at noise 0 gives the same points
    grid = plain.reshape(-1, 1)
    assert torch.equal(ds.perturb_points(grid, 0.0, 4 * math.pi, 0.0).flatten(), quirk)


def test_trial_solution_meets_the_initial_condition():
    prob = ds.Oscillator(SIZES, "sigmoid", torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    x, p = prob.solution(_theta(4))
    assert torch.allclose(x[:, 0], torch.full((4,), 1.3, dtype=torch.float64))
    assert torch.allclose(p[:, 0], torch.full((4,), 1.0, dtype=torch.float64))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "sin"])
def test_tangent_derivative_matches_finite_differences(activation):
    t = torch.linspace(0.1, 3.0, 7, dtype=torch.float64)
    theta = _theta(3, seed=1)
    prob = ds.Oscillator(SIZES, activation, t)
    _, dN = prob.network(theta)
    h = 1e-6
    prob.set_times(t + h)
    Np, _ = prob.network(theta)
    prob.set_times(t - h)
    Nm, _ = prob.network(theta)
    assert torch.allclose(dN, (Np - Nm) / (2 * h), atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "sin"])
def test_analytic_gradient_matches_autograd(activation):
    prob = ds.Oscillator(SIZES, activation, ds.time_grid(50, 4 * math.pi))
    theta = _theta(5, seed=2, scale=1.7)
    loss, grad = prob.loss_and_grad(theta)
    th = theta.clone().requires_grad_(True)
    ref_loss = prob.loss(th)
    ref_grad, = torch.autograd.grad(ref_loss.sum(), th)
    assert torch.allclose(loss, ref_loss.detach(), rtol=1e-12, atol=0)
    assert torch.allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)


def test_loss_matches_the_solvers_autograd_loss():
    """Our tangent-propagation loss and gradient equal the original code's (autograd time
    derivatives with create_graph, nn.Module) for each ensemble member."""
    t = ds.time_grid(40, 4 * math.pi)
    prob = ds.Oscillator(SIZES, "sigmoid", t)
    theta = _theta(3, seed=3)
    loss, grad = prob.loss_and_grad(theta)
    for e in range(3):
        model = ds.OriginalNet(SIZES).to(torch.float64)
        load_flat(model.body, theta[e])
        tt = t.reshape(-1, 1).clone().requires_grad_(True)
        ref = ds.original_loss(model, tt)
        ref.backward()
        g = torch.cat([torch.cat([m.weight.grad, m.bias.grad.unsqueeze(1)], 1).flatten()
                       for m in model.body if isinstance(m, torch.nn.Linear)])
        assert abs(ref.item() - float(loss[e])) < 1e-12 * max(1.0, ref.item())
        assert torch.allclose(g, grad[e], rtol=1e-10, atol=1e-12)


def test_batched_members_equal_unbatched_runs():
    """Three elementwise optimizers on one shared tensor of 3 x 3 networks: every member's
    trajectory equals a plain single-network nn.Module run with autograd derivatives."""
    with torch_threads(1):  # tiny tensors: a second thread only adds synchronisation
        _batched_members_equal_unbatched_runs()


def _batched_members_equal_unbatched_runs():
    cfg = ds.Config()
    steps, E = 200, 3
    t = ds.time_grid(cfg.n_points, cfg.t_max, True)
    prob = ds.Oscillator(SIZES, "sigmoid", t)
    base = _theta(E, seed=4)
    names = list(ds.OPTIMIZERS)
    tr = ds.train(prob, base.repeat(len(names), 1), names, cfg, steps, progress=False)
    member = 1
    for k, name in enumerate(names):
        model = ds.OriginalNet(SIZES).to(torch.float64)
        load_flat(model.body, base[member])
        opt = ds.de_optimizer(name, model.parameters(), cfg)
        losses = []
        for step in range(steps):
            ds.set_lr(opt, ds.learning_rate(step))
            tt = t.reshape(-1, 1).clone().requires_grad_(True)
            loss = ds.original_loss(model, tt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        ref = torch.cat([torch.cat([m.weight, m.bias.unsqueeze(1)], 1).flatten()
                         for m in model.body if isinstance(m, torch.nn.Linear)]).detach()
        got = tr.theta[k * E + member]
        moved = float((ref - base[member]).abs().max())
        assert moved > 1e-3  # the run really trained
        assert float((got - ref).abs().max()) < 1e-9 * max(1.0, moved), name
        assert np.allclose(tr.losses[:steps, k * E + member].numpy(), losses, rtol=1e-9, atol=1e-12)


def test_autograd_and_analytic_training_agree():
    cfg = ds.Config()
    prob = ds.Oscillator(SIZES, "sigmoid", ds.time_grid(30, 4 * math.pi))
    th0 = _theta(2, seed=5).repeat(3, 1)
    a = ds.train(prob, th0, list(ds.OPTIMIZERS), cfg, 60, gradient="analytic", progress=False)
    b = ds.train(prob, th0, list(ds.OPTIMIZERS), cfg, 60, gradient="autograd", progress=False)
    assert torch.allclose(a.theta, b.theta, rtol=0, atol=1e-10)


def test_learning_rate_schedule():
    assert ds.learning_rate(0) == pytest.approx(0.008)
    assert ds.learning_rate(45000) == pytest.approx(8 / 46000)


def test_reference_solution_conserves_energy():
    t = np.linspace(0, 4 * math.pi, 500)
    x, p = ds.reference_solution(t)
    E = ds.energy(x, p)
    assert E[0] == pytest.approx(2.059025, abs=1e-12)
    assert np.abs(E - E[0]).max() < 1e-9
    # the oscillator is periodic: x returns close to its start and stays bounded by the energy
    assert np.abs(x).max() <= math.sqrt(2 * E[0]) + 1e-9


def test_authors_partition():
    prob = ds.Oscillator(SIZES)
    part = make_partition(prob.shapes, list(ds.Config().partition))
    assert sorted(zip(part.block_sizes, [int(g.shape[0]) for g in part.groups])) == [(2, 10), (11, 12)]
    assert part.n_params == prob.n_params == 152


def test_block_condition_numbers_known_case():
    prob = ds.Oscillator(SIZES)
    part = make_partition(prob.shapes, "node")
    k = 20
    g = torch.Generator().manual_seed(0)
    snaps = torch.randn(k, 2, prob.n_params, generator=g, dtype=torch.float64)
    cond = ds.block_condition_numbers(snaps, part)
    assert cond.shape == (2, part.n_blocks)
    # a block whose trajectory is a scaled copy of its first coordinate has rank 1: huge cond
    idx = part.groups[0][0]
    snaps[:, 0, idx] = snaps[:, 0, idx[:1]] * torch.arange(1, idx.numel() + 1, dtype=torch.float64)
    cond = ds.block_condition_numbers(snaps, part)
    assert cond[0, 0] > 1e10 and cond[1, 0] < 1e4


def test_config_errors():
    with pytest.raises(ValueError, match="Ts"):
        ds.check_config(ds.Config(Ts=(2500, 15001)))
    with pytest.raises(ValueError, match="optimizers"):
        ds.check_config(ds.Config(optimizers=("sgd",)))
    with pytest.raises(ValueError, match="T_main"):
        ds.check_config(ds.Config(T_main=100))
    with pytest.raises(ValueError, match="t1"):
        ds.check_config(ds.Config(t1=50000))
    with pytest.raises(ValueError, match="jump_method"):
        ds.check_config(ds.Config(jump_method="eig"))
    with pytest.raises(ValueError, match="fit_methods"):
        ds.check_config(ds.Config(fit_methods=("qr",)))


def _window(E=3, k=40, seed=1):
    prob = ds.Oscillator(SIZES)
    g = torch.Generator().manual_seed(seed)
    snaps = _theta(E).unsqueeze(0) + 0.01 * torch.randn(k, E, prob.n_params, generator=g,
                                                         dtype=torch.float64).cumsum(0)
    return make_partition(prob.shapes, list(ds.Config().partition)), snaps


def test_timed_single_network_path_is_the_reported_batched_prediction():
    """The timed path (one network's fit_named fit + predict) gives the reported batched prediction of
    that network for every named fit, the strided ones at their horizon (the window of 100 snapshots and
    blocks of 11 give the rule's stride 2, and T = 25 is predicted as 24); koopman_once does the same for
    every fit method, and "pinv" and "lstsq" agree on a full-rank window."""
    part, snaps = _window(k=100)
    fitted = ds.koopman_fits(part, snaps)
    assert set(fitted) == set(BOOK_FITS)
    for f, kp in fitted.items():
        s = 2 if f in STRIDED_FITS else 1
        assert kp.stride_ == s == ds.fit_stride(f, 100, part) and ds.horizon(25, s) == (24 if s == 2 else 25)
        batched = kp.predict(snaps[-1], ds.horizon(25, s))
        for e in range(3):
            fit_s, jumps, single = ds.koopman_timed(ds.named_fit_path(part, f), snaps[:, e], (25,))
            assert fit_s > 0 and set(jumps) == {25} and single.stride_ == s
            torch.testing.assert_close(single.predict(snaps[-1, e], ds.horizon(25, s)), batched[e], rtol=1e-9,
                                       atol=1e-12)
        if f in FITS:  # the plain fits: the same as Koopman(partition, fit=name)
            single = Koopman(part, fit=f)
            ds.koopman_timed(single, snaps[:, 0], (25,))
            torch.testing.assert_close(single.predict(snaps[-1, 0], 25), batched[0], rtol=1e-9, atol=1e-12)
    preds = {}
    for method in ("pinv", "lstsq"):
        batched = ds.koopman_fit(part, method).fit(snaps).predict(snaps[-1], 25)
        for e in range(3):
            single = ds.koopman_once(ds.koopman_fit(part, method), snaps[:, e], 25)
            torch.testing.assert_close(single, batched[e], rtol=1e-9, atol=1e-12)
        preds[method] = batched
    torch.testing.assert_close(preds["pinv"], preds["lstsq"], rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(preds["pinv"], fitted["paper"].predict(snaps[-1], 25), rtol=1e-9, atol=1e-12)


def _late_window(dtype, steps=160, t1=60, E=2):
    """Weights of E networks recorded (in float64) over steps t1..steps of a slow, late-phase-like
    run (a small constant learning rate) trained in ``dtype``."""
    cfg = ds.Config(n_points=50)
    prob, theta0 = ds._setup(dataclasses.replace(cfg, n_inits=E, optimizers=("adadelta",)), ds.DTYPES[dtype])
    rec = TrajectoryRecorder(theta0.shape[1], t1, steps, (E,), mode="stored")
    with torch_threads(1):  # tiny tensors: a second thread only adds synchronisation (as in the experiment)
        ds.train(prob, theta0, ["adadelta"], cfg, steps, [rec], progress=False, lr_fn=lambda _: 1e-3)
    return make_partition(prob.shapes, list(cfg.partition)), rec.snapshots


def test_default_fit_is_the_paper_fit_after_float64_training_and_cuts_rounding_after_float32():
    """Float64 training: the recording resolves float64, so "default" (the resolution cutoff) is
    the paper's cutoff: identical operators. Float32 training recorded in float64: "default" cuts
    at float32 resolution and keeps fewer singular values than the paper fit. The stabilised fit's
    spectral radius is at most 1."""
    for dtype in ("float64", "float32"):
        part, snaps = _late_window(dtype)
        assert snaps.dtype == torch.float64
        assert recorded_precision(snaps) == ds.DTYPES[dtype]
        fits = ds.koopman_fits(part, snaps)
        paper, default = fits["paper"], fits["default"]
        rank = {f: torch.cat([op.rank for op in kp.operators_]) for f, kp in fits.items()}
        if dtype == "float64":
            assert torch.equal(rank["paper"], rank["default"])
            for a, b in zip(paper.operators_, default.operators_):
                assert torch.equal(a.as_dense(), b.as_dense())
        else:
            assert (rank["default"] <= rank["paper"]).all()
            assert int(rank["default"].sum()) < int(rank["paper"].sum())
        assert torch.equal(rank["default-stabilised"], rank["default"])
        assert float(default.spectral_radius_.max()) > 1 + 1e-6     # there is something to clip
        assert float(fits["default-stabilised"].spectral_radius_.max()) < ds.GROWING


def test_stabilised_fit_radius_is_at_most_one():
    part, snaps = _late_window("float64")        # nearly defective blocks: clip_spectrum re-measures and shrinks
    rho = ds.koopman_fits(part, snaps, ("default-stabilised",))["default-stabilised"].spectral_radius_
    assert float(rho.max()) <= 1.0


def test_layer_blocks_of_the_authors_partition():
    prob = ds.Oscillator(SIZES)
    part = make_partition(prob.shapes, list(ds.Config().partition))
    lay = ds.layer_blocks(part, prob.shapes)
    assert [int(b.numel()) for b in lay["blocks"]] == [10, 10, 2]
    assert lay["block_sizes"] == [[2], [11], [11]] and lay["shapes"] == ["1:10", "10:10", "10:2"]
    assert [(s.start, s.stop) for s in lay["slices"]] == [(0, 20), (20, 130), (130, 152)]
    # every block lies in its layer's columns
    first = torch.cat([g[:, 0] for g in part.groups])
    for b, s in zip(lay["blocks"], lay["slices"]):
        assert ((first[b] >= s.start) & (first[b] < s.stop)).all()


def _stops(medians, Ts=(2500, 5000, 10000, 15000)):
    prob = ds.Oscillator(SIZES)
    part = make_partition(prob.shapes, list(ds.Config().partition))
    lay = ds.layer_blocks(part, prob.shapes)
    E, n = 2, part.n_blocks
    radii = torch.full((E, n), 0.99, dtype=torch.float64)
    radii[:, lay["blocks"][1]] = 1.001                       # layer 2 grows
    radii[0, lay["blocks"][1][0]] = 1.002
    rank = torch.ones(E, n, dtype=torch.long)
    err = torch.tensor([[1.0, 8.0, 1.0], [1.0, 6.0, 3.0]], dtype=torch.float64)  # layer 2 dominates
    by_T = {T: {"layer_error_sq": err, "layer_travel_sq": torch.full((E, 3), 4.0, dtype=torch.float64),
                "horizon": T} for T in Ts}
    rows = [{"T": T, "teq_over_t_median": m, "success_rate": 1.0, "median_relative_weight_error": 0.1}
            for T, m in zip(Ts, medians)]
    return ds.where_it_stops({"radii": radii, "rank": rank, "by_T": by_T, "stride": 1}, rows, lay, {"fit": "paper"})


def test_where_it_stops_reads_the_keeps_up_rule_and_the_layers():
    w = _stops([1.0, 0.9, 0.5, 0.2])
    assert (w["longest_T_keeping_up"], w["stops_at_T"], w["T_diagnosed"]) == (5000, 10000, 10000)
    assert w["keeps_up_threshold"] == KEEPS_UP and w["fit"] == "paper"
    assert w["dominant_layer"] == 2
    L = {l["layer"]: l for l in w["layers"]}
    assert L[2]["share_blocks_growing"] == 1.0 and L[1]["share_blocks_growing"] == 0.0
    assert L[2]["max_modulus_median"] == pytest.approx(1.0015)
    assert L[2]["log10_growth_at_T"] == pytest.approx(10000 * math.log10(1.0015))
    assert L[2]["error_share_median"] == pytest.approx(np.median([0.8, 0.6]))
    assert L[2]["relative_error_median"] == pytest.approx(np.median([math.sqrt(2), math.sqrt(1.5)]))
    assert w["share_blocks_growing"] == pytest.approx(10 / 22)
    never = _stops([1.0, 0.95, 0.9, 0.85])
    assert (never["longest_T_keeping_up"], never["stops_at_T"], never["T_diagnosed"]) == (15000, None, 15000)
    none = _stops([0.5, 0.4, None, 0.1])
    assert (none["longest_T_keeping_up"], none["stops_at_T"], none["T_diagnosed"]) == (None, 2500, 2500)


def test_results_files_from_before_the_named_fits_are_upgraded_on_load():
    """koopman_repro.migrations, not this experiment, knows older files: their pinv rows are the paper
    fit's, and every fit-method row (pinv and lstsq) goes to the fit-method comparison."""
    from koopman_repro.migrations import upgrade
    old = {"table": [{"fit_method": "pinv", "T": 1}, {"fit_method": "lstsq", "T": 1}], "main": {"T": 1}}
    up = upgrade(old, "de-solver")
    assert up["table"] == [{"fit_method": "pinv", "T": 1, "fit": "paper", "cutoff": FITS["paper"].name}]
    assert up["fit_methods_table"] == [{"fit_method": m, "T": 1, "fit": "paper"} for m in ("pinv", "lstsq")]
    assert up["main"]["fit"] == "paper" and list(up["fits"]) == ["paper"]
    new = {"table": [{"fit": "default", "T": 1}], "fit_methods_table": [{"fit": "paper", "fit_method": "lstsq"}],
           "main": {"fit": "default"}, "fits": {"default": "resolution"}}
    assert {k: v for k, v in upgrade(new, "de-solver").items() if k in new} == new


def test_the_experiment_is_a_package_of_short_functions():
    """Split by study (issue 21): no function of koopman_repro/experiments/de_solver/ over 80 lines."""
    import ast
    from pathlib import Path
    folder = Path(ds.__file__).parent
    assert folder.name == "de_solver" and (folder / "network.py").is_file()
    long = [(p.name, n.name, n.end_lineno - n.lineno + 1) for p in folder.glob("*.py")
            for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > 80]
    assert not long, long


def test_config_fits_and_profiles():
    with pytest.raises(ValueError, match="fits"):
        ds.check_config(ds.Config(fits=("paper", "ridge")))
    with pytest.raises(ValueError, match="fits"):
        ds.check_config(ds.Config(fits=("paper", "paper")))
    assert ds.Config().fits[0] == "paper" and set(ds.Config().fits) == set(BOOK_FITS)
    assert ds.PROFILES["paper"].train_dtypes == ("float32", "float64")
    assert ds.fit_label("paper") == "pinv" and len({ds.fit_label(f) for f in BOOK_FITS}) == len(BOOK_FITS)
    with pytest.raises(ValueError, match="state_fits"):
        ds.check_config(ds.Config(state_fits=("paper", "strided")))
    with pytest.raises(ValueError, match="state_optimizers"):
        ds.check_config(ds.Config(state_optimizers=("sgd",)))
    ds.check_config(ds.Config(optimizers=("adam",)))  # the state of the optimizers the run trains
    with pytest.raises(ValueError, match="state_transform"):
        ds.check_config(ds.Config(state_transform="log"))
    with pytest.raises(ValueError, match="sweep_strides"):
        ds.check_config(ds.Config(sweep_strides=(0, 4)))


TINY = ds.Config(n_inits=2, n_steps=240, t1=80, t2=180, Ts=(20, 50), T_main=20, timing_repeats=1,
                 timing_steps=5, timing_networks=1, curve_points=6, window_stride=20, loss_curve_points=20,
                 ode_points=100, n_points=50, check_steps=20, check_hidden=(8, 8), train_dtypes=("float32", "float64"),
                 sweep_strides=(1, 3), sweep_repeats=1)


def test_pipeline_schema():
    res = ds.run(TINY)
    rows = res["table"]
    # main reading first: train dtype, fit, then T, then optimizer; one row per (optimizer, T, train_dtype, fit)
    order = [(d, f, T, o) for d in TINY.train_dtypes for f in TINY.fits for T in TINY.Ts for o in ds.OPTIMIZERS]
    assert [(r["train_dtype"], r["fit"], r["T"], r["optimizer"]) for r in rows] == order
    for o, T, d, f in {(o, T, d, f) for d, f, T, o in order}:
        assert len([r for r in rows if (r["optimizer"], r["T"], r["train_dtype"], r["fit"]) == (o, T, d, f)]) == 1
    for r in rows:
        for key in ("optimizer", "n_inits", "success_rate", "teq_over_t_median", "speedup_paper_style_median",
                    "speedup_fast_loop_median", "T", "fit", "train_dtype", "fit_method", "error_ratio"):
            assert key in r
        assert r["fit"] in BOOK_FITS and r["fit_method"] == ds.fit_label(r["fit"])
        assert r["n_inits"] == 2 and 0 <= r["success_rate"] <= 1
        # a median over no improved network is undefined (None), and then the success rate is 0
        assert (r["speedup_paper_style_median"] is None) == (r["success_rate"] == 0)
        assert r["koopman_fit_and_jump_seconds"] > 0  # each fit timed on its own path
    assert res["main"] == {"train_dtype": "float32", "fit": "paper", "fit_method": "pinv", "T": TINY.T_main}
    # the front page (scorecard) reads the main reading: the paper fit of the first training dtype
    key = lambda r: (r["optimizer"], r["T"], r["train_dtype"], r["fit"])  # noqa: E731
    row = next(r for r in rows if key(r) == ("adam", 50, "float32", "paper"))
    assert sc.de_teq("adam")({"de-solver": res}).value == pytest.approx(row["teq_over_t_median"])
    # float64 training: the default fit is the paper fit, row for row
    for T in TINY.Ts:
        for o in ds.OPTIMIZERS:
            a, b = (next(r for r in rows if key(r) == (o, T, "float64", f)) for f in ("paper", "default"))
            assert a["teq_over_t_median"] == b["teq_over_t_median"]
            assert a["median_kept_rank_fraction"] == b["median_kept_rank_fraction"]
    # the fit-method comparison has its own key; its pinv rows are the paper fit's; the strided fits follow
    meth = res["fit_methods_table"]
    assert {r["fit_method"] for r in meth if r["fit"] == "paper"} == set(TINY.fit_methods)
    assert {(r["fit"], r["fit_method"]) for r in meth if r["fit"] != "paper"} == {
        (f, ds.fit_label(f)) for f in STRIDED_FITS}
    for m in meth:
        if m["fit_method"] == "pinv" or m["fit"] != "paper":
            p = next(r for r in rows if (r["optimizer"], r["T"], r["train_dtype"], r["fit"])
                     == (m["optimizer"], m["T"], m["train_dtype"], m["fit"]))
            assert (m["teq_over_t_median"], m["stride"], m["horizon"]) == (
                p["teq_over_t_median"], p["stride"], p["horizon"])
    # where it stops: one row per optimizer x fit x train dtype, consistent with the table
    stops = res["where_it_stops"]
    assert sorted((w["optimizer"], w["fit"], w["train_dtype"]) for w in stops) == sorted(
        (o, f, d) for d in TINY.train_dtypes for f in TINY.fits for o in ds.OPTIMIZERS)
    for w in stops:
        meds = [r["teq_over_t_median"] for r in rows if (r["optimizer"], r["fit"], r["train_dtype"])
                == (w["optimizer"], w["fit"], w["train_dtype"])]
        assert w["teq_over_t_median_by_T"] == meds
        assert w["longest_T_keeping_up"] == max((T for T, v in zip(TINY.Ts, meds) if v >= KEEPS_UP), default=None)
        assert len(w["layers"]) == 3 and w["dominant_layer"] in (1, 2, 3)
        if w["fit"] == "default-stabilised":
            assert w["share_blocks_growing"] == 0
    assert len(res["networks"]) == len(order) * 2
    for n in res["networks"]:
        assert n["success"] == (n["teq"] > 0)
        # T_eq counted from t2 + 1 is T_eq from t2 minus one step, unless T_eq < 1 or censored
        if n["teq"] >= 1 and not n["censored"]:
            assert n["teq_over_t_other_origin"] * n["T"] == pytest.approx(n["teq"] - 1, abs=1e-9)
    assert isinstance(res["error_ratio_median"], float) and res["error_ratio_median"] >= 0
    assert res["error_ratio_median_by_fit"]["paper"] == res["error_ratio_median"]
    assert set(res["error_ratio_median_by_fit"]) == set(BOOK_FITS)
    assert isinstance(res["ode_max_abs_error"], float)
    for d in TINY.train_dtypes:
        part = res["by_dtype"][d]
        sv = part["singular_values_init0"]
        assert set(sv) == set(TINY.optimizers) and all(g["relative_singular_values"][0][0] == 1.0
                                                       for gs in sv.values() for g in gs)
        assert set(part["timing"]) == set(ds.OPTIMIZERS)
        for name in ds.OPTIMIZERS:
            assert set(part["timing"][name]["koopman"]) == set(TINY.fits)
            for f in TINY.fits:
                kl = part["fig2b"]["koopman_loss"][f][name]
                ol = part["fig2b"]["optimizer_loss"][name]
                assert len(kl) == 2 and len(kl[0]) == len(part["fig2b"]["T"])
                assert kl[0][0] == pytest.approx(ol[0][0], rel=1e-5)  # T = 0: both are the loss at t2
    assert res["n_params"] == 152
    text = json.dumps(to_jsonable(res), allow_nan=False)
    assert len(text) < 2_000_000


@pytest.mark.parametrize("lam", [1.0, 0.5])
def test_residuals_vanish_on_the_exact_solution(lam):
    """The loss's two residuals, evaluated on the solve_ivp solution written in the trial form
    (N = (u - u0) / f, dN/dt by finite differences), are ~0; the wrong equation (another lam)
    leaves a residual of order 1. Checks the sign and form of Hamilton's equations in the loss."""
    from scipy.integrate import solve_ivp
    x0, p0 = 1.3, 1.0
    sol = solve_ivp(lambda _, u: [u[1], -u[0] - lam * u[0] ** 3], (0.0, 4 * math.pi), [x0, p0],
                    method="DOP853", rtol=1e-12, atol=1e-12, dense_output=True)
    h = 1e-5
    t = np.linspace(0.5, 4 * math.pi - 0.5, 60)

    def trial(tt):
        x, p = sol.sol(tt)
        f = 1 - np.exp(-tt)
        return np.stack([(x - x0) / f, (p - p0) / f])

    N = trial(t)
    dN = (trial(t + h) - trial(t - h)) / (2 * h)
    as_t = lambda a: torch.tensor(a, dtype=torch.float64).unsqueeze(0)  # (1, 2, B)
    for lam_loss, small in ((lam, True), (lam + 1.0, False)):
        prob = ds.Oscillator(SIZES, "sigmoid", torch.tensor(t, dtype=torch.float64), x0, p0, lam_loss)
        x, p, r1, r2 = prob._residuals(as_t(N), as_t(dN))
        assert torch.allclose(x[0], torch.tensor(sol.sol(t)[0], dtype=torch.float64), atol=1e-12)
        if small:
            assert float(r1.abs().max()) < 1e-6 and float(r2.abs().max()) < 1e-6
        else:
            assert float(r2.abs().max()) > 0.1


def test_trained_network_error_is_measured_against_the_reference():
    """reference_solution and the trial solution on a fine grid: an untrained network is far
    from the solution, so the ODE check can tell a solver from a non-solver."""
    t = np.linspace(0, 4 * math.pi, 300)
    x_ref, p_ref = ds.reference_solution(t)
    prob = ds.Oscillator(SIZES, "sigmoid", torch.tensor(t, dtype=torch.float64))
    x, p = prob.solution(_theta(2, seed=7))
    err = np.abs(x.numpy() - x_ref).max(1)
    assert err.shape == (2,) and (err > 0.5).all()
    assert abs(x[0, 0] - x_ref[0]) < 1e-12 and abs(p[0, 0] - p_ref[0]) < 1e-12
