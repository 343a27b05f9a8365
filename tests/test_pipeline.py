"""The whole Koopman phase (koopman_repro.bench.pipeline): the candidate routes give the reference fit's
operators, the choice honours the agreement tolerance, and the end-to-end accounting adds up.
No timing is asserted."""
import pytest
import torch

from koopman_repro.bench import pipeline
from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.errors import FitError, check_finite
from koopman_lib.partition import make_partition
from koopman_lib.recorder import TrajectoryRecorder


def _recording(k=300, seed=0):
    """A float32 trajectory of a small network: a contracting linear map plus a small drift,
    rounded to float32 as a trained network's weights are."""
    net = EnsembleMLP((6, 5, 3), "relu", 1, seed=seed)
    part = make_partition(net.shapes, ["quasi_node:3", "node"])
    g = torch.Generator().manual_seed(seed)
    D = net.n_params
    A = 0.995 * torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))[0]
    w = net.theta.detach()[0].double()
    xs = []
    for _ in range(k):
        w = A @ w + 1e-3 * torch.randn(D, generator=g, dtype=torch.float64)
        xs.append(w.float())
    return part, torch.stack(xs).unsqueeze(1)  # (k, 1, D) float32


def test_routes_agree_with_the_reference_fit():
    part, rec = _recording()
    out = pipeline.time_pipeline(part, rec, rec[-1], [10, 50], lambda th: float(th.double().norm()), repeats=2)
    assert set(out["routes"]) == set(pipeline.PIPELINE_FITS)
    ref = out["routes"][pipeline.REFERENCE]
    assert ref["max_rel_diff_operators"] == 0.0 and ref["max_rel_loss_diff"] == 0.0
    eigh = out["routes"]["eigh"]
    assert eigh["max_rel_diff_operators"] < 1e-6
    assert eigh["max_rel_loss_diff"] < pipeline.LOSS_RTOL
    assert set(eigh["jump_s"]) == {10, 50} and len(eigh["fit_s_all"]) == 2 and out["eval_s"] > 0


def _timing(route_losses, fit_s):
    return {"routes": {r: {"fit_s": fit_s[r], "jump_s": {100: 0.01}, "max_rel_diff_operators": 0.0,
                           "max_rel_loss_diff": d} for r, d in route_losses.items()}, "eval_s": 0.001}


def test_choose_takes_the_fastest_route_that_agrees():
    t = _timing({"svd": 0.0, "eigh": 1e-7}, {"svd": 2.0, "eigh": 1.0})
    assert pipeline.choose([t], 100)["route"] == "eigh"
    # a faster route that disagrees on any network is not chosen
    bad = _timing({"svd": 0.0, "eigh": 1e-2}, {"svd": 2.0, "eigh": 1.0})
    pick = pipeline.choose([t, bad], 100)
    assert pick["route"] == "svd"
    assert {c["route"]: c["agrees"] for c in pick["candidates"]} == {"svd": True, "eigh": False}


def test_phase_row_adds_up():
    r = pipeline.phase_row("mnist", 1000, 3, teq_steps=500, censored=False, step_s=0.002, t2_steps=4000,
                           recording_extra_s=0.1, fit_s=0.3, jump_s=0.05, eval_s=0.05, paper_style_step_s=0.01)
    assert r["koopman_phase_s"] == pytest.approx(0.5)
    assert r["optimizer_same_teq_s"] == pytest.approx(1.0) and r["train_to_t2_s"] == pytest.approx(8.0)
    assert r["speedup_after_t2"] == pytest.approx(2.0)
    assert r["speedup_end_to_end"] == pytest.approx(9.0 / 8.5)
    assert r["speedup_after_t2_paper_style"] == pytest.approx(10.0)
    # a phase that did not lower the loss was spent for nothing
    z = pipeline.phase_row("mnist", 1000, 3, 0.0, False, 0.002, 4000, 0.1, 0.3, 0.05, 0.05)
    assert z["speedup_after_t2"] == 0.0 and z["speedup_end_to_end"] < 1.0


def test_rows_from_experiment_results():
    mnist = {"steps_per_epoch": 10, "provenance": {"config": {"window_epochs": [3, 5]}},
             "members": [{"init": i, "test_loss_t2": 0.2, "optimizer_loss_T1": 0.19, "optimizer_loss_T2": 0.18,
                          "fits": {"default": {f"T{h}": {"T_eq_epochs": 0.5 * h * (i + 1), "censored": False,
                                                          "koopman_loss": 0.19} for h in (1, 2)}}}
                         for i in range(3)]}
    timing = {"step_s": 0.001, "recording_extra_s": 0.01, "fit_s": 0.02, "jump_s": {10: 0.001, 20: 0.002},
              "eval_s": 0.001}
    rows = pipeline.mnist_rows(mnist, timing, (1, 2))
    assert len(rows) == 6 and {r["T_epochs"] for r in rows} == {1, 2}
    r = [x for x in rows if x["T_epochs"] == 2 and x["seed"] == 1][0]
    assert r["teq_steps"] == pytest.approx(20.0) and r["train_to_t2_s"] == pytest.approx(0.05)
    de = {"provenance": {"config": {"train_dtypes": ["float32", "float64"], "t2": 100}},
          "networks": [{"fit": f, "T": T, "train_dtype": d, "optimizer": o, "init": 0, "teq": 40.0, "censored": False,
                        "loss_t2": 1.0, "loss_koopman": 0.9, "loss_optimizer_at_T": 0.8}
                       for f in ("paper", "default") for T in (50, 100) for d in ("float32", "float64")
                       for o in ("adam", "adagrad")]}
    dt = {"step_s": {"adam": 0.001, "adagrad": 0.002}, "paper_style_step_s": {"adam": 0.003, "adagrad": 0.004},
          "recording_extra_s": 0.01, "fit_s": 0.01, "jump_s": {50: 0.001}, "eval_s": 0.001}
    rows = pipeline.de_rows(de, dt, 50)
    assert [(r["optimizer"], r["train_dtype"]) for r in rows] == [("adam", "float32"), ("adagrad", "float32")]
    s = pipeline.summary(rows)
    assert len(s) == 2 and s[0]["n_networks"] == 1 and s[0]["success_rate"] == 1.0


def test_check_finite_fast_path_on_a_strided_view():
    x = torch.randn(40, 12, dtype=torch.float64)           # time first: 40 snapshots of 4 blocks of 3
    blocks = x.reshape(40, 4, 3).permute(1, 2, 0)            # (4, 3, 40), strided
    check_finite(blocks)
    x[7, 7] = float("nan")                                    # block 2
    with pytest.raises(FitError, match=r"block\(s\) \[2\]"):
        check_finite(x.reshape(40, 4, 3).permute(1, 2, 0))
    huge = torch.full((2, 3, 40), 1e307, dtype=torch.float64)  # finite, but its sum overflows
    check_finite(huge)


def test_stored_recorder_keeps_exact_copies_and_lets_go_of_its_views():
    th = torch.randn(2, 7)
    rec = TrajectoryRecorder(7, 1, 3, (2,), "stored", dtype=torch.float32)
    seen = []
    for t in (1, 2, 3):
        w = (th + t).requires_grad_(True)
        rec(t, w)
        seen.append(w.detach().clone())
    assert torch.equal(rec.snapshots, torch.stack(seen)) and rec.complete
    assert rec._rows is None
    with pytest.raises(ValueError, match="theta shape"):
        TrajectoryRecorder(7, 1, 3, (2,), "stored")(1, torch.zeros(7))


def test_bench_end_to_end_never_starts_an_experiment(tmp_path):
    """Without a matching saved run the bench records why it has no rows instead of running one."""
    from koopman_repro import bench
    from koopman_repro.config import with_profile
    t = _timing({"svd": 0.0, "eigh": 1e-7}, {"svd": 2.0, "eigh": 1.0})
    t["routes"]["svd"]["jump_s"] = t["routes"]["eigh"]["jump_s"] = {20: 0.01, 50: 0.01}
    cfg = with_profile(bench.PROFILES, "ci", T_epochs=(1, 2), end_to_end_profile="ci")
    out = bench.end_to_end(cfg, [{"steps_per_epoch": 10, "pipeline": t}], {"pipeline": t, "T": 50}, 0.01, tmp_path)
    assert out["end_to_end"] == [] and out["pipeline"]["mnist"]["route"] == "eigh"
    assert any("koopman reproduce mnist" in n for n in out["end_to_end_notes"])
    assert any("koopman reproduce de-solver" in n for n in out["end_to_end_notes"])


# -- the strided fit: its own recording, the same timing function, its rows and the targets ---------
def test_strided_recording_through_the_same_timing_gives_the_librarys_strided_fit():
    """``time_pipeline(stride=s)`` on what a ``TrajectoryRecorder(stride=s)`` kept predicts, route for
    route, what ``fit_named(..., "default-strided")`` predicts from the full recording (the rule's ``s``),
    over ``floor_horizon(T, s)`` steps; results keyed by the nominal ``T``."""
    from koopman_lib.estimator import fit_named
    from koopman_lib.stride import choose_stride, floor_horizon
    part, rec = _recording(k=301)
    s = choose_stride(rec.shape[0], part)
    assert s > 1
    t2 = rec.shape[0]
    recorder = TrajectoryRecorder(rec.shape[-1], t2 - s * ((t2 - 1) // s), t2, (1,), "stored", dtype=rec.dtype, stride=s)
    for t in range(1, t2 + 1):
        recorder(t, rec[t - 1])                      # called every step; it keeps every s-th
    loss = lambda th: float(th.double().norm())      # noqa: E731
    out = pipeline.time_pipeline(part, recorder.snapshots, rec[-1], [50, 100], loss, repeats=1, stride=s)
    assert out["stride"] == s and out["horizon"] == {50: floor_horizon(50, s), 100: floor_horizon(100, s)}
    kp = fit_named(part, rec, ["default-strided"])["default-strided"]
    assert kp.stride_ == s
    for T in (50, 100):
        want = loss(kp.predict(rec[-1], floor_horizon(T, s)))
        for route in pipeline.PIPELINE_FITS:
            assert out["routes"][route]["loss"][T] == pytest.approx(want, rel=pipeline.LOSS_RTOL)
    # the default fit is the same function at stride 1
    full = pipeline.time_pipeline(part, rec, rec[-1], [50], loss, repeats=1)
    assert full["stride"] == 1 and full["horizon"] == {50: 50} and set(full["routes"]) == set(out["routes"])


def test_both_fits_are_timed_by_one_function():
    from koopman_repro.bench import de_solver, mnist
    assert mnist.time_pipeline is de_solver.time_pipeline is pipeline.time_pipeline
    assert pipeline.PHASE_FITS == ("default", "default-strided") and pipeline.TARGET_FIT == "default-strided"


def _experiments(strided_teq=(0.5, 0.95)):
    """Fake MNIST and DE solver runs with the default and the strided fit (stride 4)."""
    fits = lambda i, stride: {f"T{h}": {"T_eq_epochs": 0.5 * h * (i + 1), "censored": False,  # noqa: E731
                                         "koopman_loss": 0.19} for h in (1, 2)} | {"stride": stride}
    mnist = {"steps_per_epoch": 8, "provenance": {"config": {"window_epochs": [3, 5]}},
             "members": [{"init": i, "test_loss_t2": 0.2, "optimizer_loss_T1": 0.19, "optimizer_loss_T2": 0.18,
                          "fits": {"default": fits(i, 1), "default-strided": fits(i, 4)}} for i in range(3)]}
    de = {"provenance": {"config": {"train_dtypes": ["float32"], "t2": 100}}, "stride_rule": {"stride": 4},
          "networks": [{"fit": f, "T": 50, "train_dtype": "float32", "optimizer": o, "init": i,
                        "teq": 50.0 * (teq if f == "default-strided" else 1.0), "censored": False,
                        "loss_t2": 1.0, "loss_koopman": 0.9, "loss_optimizer_at_T": 0.8}
                       for f in pipeline.PHASE_FITS for o, teq in zip(("adam", "adadelta"), strided_teq)
                       for i in range(2)]}
    return mnist, de


def test_strided_rows_headlines_and_reasons():
    from koopman_repro.bench.summary import targets
    mnist, de = _experiments()
    rows = []
    for fit, stride, fit_s in (("default", 1, 0.4), ("default-strided", 4, 0.1)):
        t = {"step_s": 0.001, "recording_extra_s": 0.01, "fit_s": fit_s, "jump_s": {8: 0.001, 16: 0.002},
             "eval_s": 0.001, "stride": stride, "horizon": {8: 8, 16: 16}}
        rows += pipeline.mnist_rows(mnist, t, (1, 2), fit)
        dt = {"step_s": {"adam": 0.01, "adadelta": 0.01}, "paper_style_step_s": {"adam": 0.03, "adadelta": 0.03},
              "recording_extra_s": 0.001, "fit_s": fit_s / 10, "jump_s": {50: 0.0001}, "eval_s": 0.0001,
              "stride": stride, "horizon": {50: 48 if stride == 4 else 50}}
        rows += pipeline.de_rows(de, dt, 50, fit)
    strided = [r for r in rows if r["fit"] == "default-strided"]
    assert len(strided) == len(rows) / 2 and {r["stride"] for r in strided} == {4}
    assert {r["horizon"] for r in strided if r["problem"] == "de-solver"} == {48}
    summ = pipeline.summary(rows)
    assert {(s["problem"], s["fit"]) for s in summ} == {(p, f) for p in ("mnist", "de-solver") for f in pipeline.PHASE_FITS}
    # Adam's strided T_eq/T (0.5) is below the scorecard's bound for Adam (0.85 - 0.10): left out of the DE target
    keeps = pipeline.keeps_up(summ)
    assert keeps["adadelta"]["keeps_up"] and not keeps["adam"]["keeps_up"]
    assert keeps["adam"]["threshold"] == pytest.approx(0.75) and "below the scorecard's 0.75" in keeps["adam"]["why"]
    h = pipeline.phase_headlines(rows, summ, 2)
    de_ada = [r["speedup_after_t2"] for r in strided if r["problem"] == "de-solver" and r["optimizer"] == "adadelta"]
    assert h["de_after_t2_speedup"] == pytest.approx(sorted(de_ada)[len(de_ada) // 2])
    m2 = [r for r in strided if r["problem"] == "mnist" and r["T_epochs"] == 2]
    assert h["koopman_phase_speedup_mnist_T2"] == pytest.approx(sorted(r["speedup_after_t2"] for r in m2)[1])
    assert h["koopman_phase_speedup_mnist_T2_default_fit"] < h["koopman_phase_speedup_mnist_T2"]  # fit 0.4 s vs 0.1 s
    res = {"end_to_end_summary": summ, **h}
    by = {t["key"]: t for t in targets(res)}
    for key in pipeline.PHASE_TARGETS:
        assert by[key]["default_fit_reading"] == h[key + "_default_fit"]
        assert (by[key]["reason"] is None) == bool(by[key]["met"])
    reason = pipeline.phase_reason("koopman_phase_speedup_mnist_T2", res)
    assert "the fit dominating (0.1 s" in reason and "s = 4" in reason
    assert "even a free phase would give at most" in pipeline.phase_reason("end_to_end_speedup_mnist_T2", res)
    de_reason = pipeline.phase_reason("de_after_t2_speedup", res)
    assert de_reason.startswith("adadelta (default-strided, s = 4)") and "left out" in de_reason and "adam:" in de_reason
    assert pipeline.phase_reason("de_after_t2_speedup", {"end_to_end_notes": ["no run"]}).endswith("(no run)")


def test_end_to_end_times_the_strided_fit_beside_the_default(tmp_path):
    """The bench's stage with both fits' timings: rows of both, pipelines per fit, the targets from the strided rows."""
    from koopman_repro import bench
    from koopman_repro.config import with_profile
    mnist, de = _experiments()
    cfg = with_profile(bench.PROFILES, "ci", T_epochs=(1, 2), end_to_end_profile="ci")
    t = _timing({"svd": 0.0, "eigh": 1e-7}, {"svd": 2.0, "eigh": 1.0})
    for r in t["routes"].values():
        r["jump_s"] = {8: 0.01, 16: 0.01, 50: 0.001}
    strided = {"stride": 4, "record_seconds": 0.01, "pipeline": dict(t, stride=4, horizon={8: 8, 16: 16, 50: 48})}
    runs = [{"steps_per_epoch": 8, "pipeline": t, "record_seconds": {"stored": 0.04}, "optimizer_step_seconds": 0.001,
             "strided": strided}]
    de_run = {"pipeline": t, "T": 50, "k": 100, "train_dtype": "float32", "record_seconds": 0.004, "strided": strided,
              "step_seconds_fast_loop": {"adam": 0.01, "adadelta": 0.01},
              "step_seconds_paper_style": {"adam": 0.03, "adadelta": 0.03}}
    mnist["provenance"]["config"].update(partition=list(cfg.mnist_partition), sizes=list(cfg.mnist_sizes))
    de["provenance"]["config"].update(t1=1, Ts=[50])
    import koopman_repro.bench.pipeline as bp
    saved = {"mnist": mnist, "de-solver": de}
    orig = bp.experiment_results
    bp.experiment_results = lambda name, profile, results_dir=None: saved[name]
    try:
        out = bench.end_to_end(cfg, runs, de_run, 0.01, tmp_path)
    finally:
        bp.experiment_results = orig
    assert set(out["pipeline"]) == {"mnist", "de-solver", "mnist, default-strided", "de-solver, default-strided"}
    assert out["end_to_end_notes"] == []
    fits = {(r["problem"], r["fit"]) for r in out["end_to_end"]}
    assert fits == {(p, f) for p in ("mnist", "de-solver") for f in pipeline.PHASE_FITS}
    rec = {r["fit"]: r["recording_extra_s"] for r in out["end_to_end"] if r["problem"] == "mnist"}
    assert rec == {"default": 0.04, "default-strided": 0.01}    # each fit pays its own recording
    assert out["koopman_phase_speedup_mnist_T2"] > out["koopman_phase_speedup_mnist_T2_default_fit"]
    assert not out["de_keeps_up"]["adam"]["keeps_up"] and out["de_keeps_up"]["adadelta"]["keeps_up"]
    # an experiment run at another stride gives no strided rows, and says why
    de["stride_rule"]["stride"] = 5
    bp.experiment_results = lambda name, profile, results_dir=None: saved[name]
    try:
        out = bench.end_to_end(cfg, runs, de_run, 0.01, tmp_path)
    finally:
        bp.experiment_results = orig
    assert not [r for r in out["end_to_end"] if r["problem"] == "de-solver" and r["fit"] == "default-strided"]
    assert any("stride 5 is not the timed recording's (4)" in n for n in out["end_to_end_notes"])
