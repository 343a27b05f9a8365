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
