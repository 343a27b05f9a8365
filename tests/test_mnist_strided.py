"""MNIST: the strided fits (issue 24, item 3) beside the others in the paper-settings table, fitted
by ``koopman_lib.estimator.fit_named`` at the rule's stride, their horizons ``floor_horizon(T, s)``
recorded, evaluated on multiples of ``s``."""
from __future__ import annotations

import math

import pytest
import torch

from koopman_lib.metrics import t_eq_parts
from koopman_lib.stride import choose_stride, floor_horizon
from koopman_repro.experiments import config_for, mnist
from koopman_repro.experiments.mnist import table2
from koopman_repro.results import to_jsonable
from koopman_repro.rows.mnist import MnistTableRow
from test_mnist_null import run_patched

STRIDED = ("default-strided", "default-strided-stabilised")
# 425 steps per epoch (1275 images, batch 3): a window of 1275 snapshots and blocks of 157 give the
# rule's stride s = 2, so the horizons 425 and 2125 are 1 step short (424, 2124) and 850 is exact
CFG = config_for("mnist", "ci", sizes=(784, 6, 6, 6, 10), train_subset=1275, batch_size=3, test_subset=100,
                 eval_every=25, n_inits=2, group_size=2, timing_repeats=0, cutoff_sweep=(),
                 ablation_directions=(), layerwise=False, replication_fits=())


@pytest.fixture(scope="module")
def strided_run():
    """The run, and each strided fit's estimator with what it was evolved from (``(kp, theta, evaluate)``)."""
    seen = []
    real_named, real_member = table2.fit_named, table2.strided_member

    def member(cfg, setup, run, window, theta_t2, j, *rest):
        seen.append({"theta": theta_t2[j:j + 1].clone(), "evaluate": run.evaluate, "k": window.shape[0],
                     "partition": setup.partition})
        return real_member(cfg, setup, run, window, theta_t2, j, *rest)

    def named(*a, **kw):
        out = real_named(*a, **kw)
        seen[-1]["fits"] = out
        return out
    return run_patched(CFG, [(table2, "fit_named", named), (table2, "strided_member", member)]), seen


def test_the_strided_fits_predict_floor_horizons_at_the_rules_stride(strided_run):
    res, seen = strided_run
    S = res["steps_per_epoch"]
    assert S == 425
    s = choose_stride(seen[0]["k"], seen[0]["partition"])
    assert s == 2
    rows = [MnistTableRow.from_dict(to_jsonable(r)) for r in res["table"]]
    for r in rows:
        expect = (s, floor_horizon(r.T_epochs * S, s)) if r.fit in STRIDED else (1, r.T_epochs * S)
        assert (r.stride, r.horizon_steps) == expect
    assert [r.horizon_steps for r in rows if r.fit == "default-strided"] == [424, 850, 2124]
    epoch_loss = res["curves"]["epoch_loss"]
    for j, (m, fitted) in enumerate(zip(res["members"], seen)):
        for name in STRIDED:
            kp = fitted["fits"][name]
            assert kp.stride_ == s and m["fits"][name]["stride"] == s
            for h in CFG.horizons_epochs:
                e = m["fits"][name][f"T{h}"]
                # the loss at the horizon is the prediction floor_horizon(h S, s) steps ahead, scored as every fit
                loss, _ = fitted["evaluate"](kp.predict(fitted["theta"], e["horizon_steps"]))
                if math.isfinite(e["koopman_loss"]):
                    assert e["koopman_loss"] == pytest.approx(float(loss[0]), rel=1e-6)    # float32 evaluation
                assert e["T_eq_epochs"] == t_eq_parts(e["koopman_loss"], epoch_loss[j, 5:].tolist()).value


def test_the_strided_curves_are_evaluated_on_multiples_of_the_stride(strided_run):
    res, _ = strided_run
    steps = res["curves"]["steps"]
    for name in STRIDED:
        curve = res["curves"]["koopman_loss"][name]
        on_grid = torch.tensor([st % 50 == 0 for st in steps])          # lcm(eval_every 25, s 2)
        assert torch.isfinite(curve[:, on_grid]).any() and torch.isnan(curve[:, ~on_grid]).all()
        assert torch.allclose(curve[:, 0], res["curves"]["optimizer_loss"][:, 0].to(curve.dtype), rtol=1e-5)


def test_the_strided_fits_have_check_values_per_network(strided_run):
    res, _ = strided_run
    keys = set(res["check_values"]["keys"])
    assert {f"{f}:T{h}:{k}" for f in STRIDED for h in CFG.horizons_epochs for k in mnist.CHECKED_PER_HORIZON} <= keys
    assert {f"{f}:max_spectral_radius" for f in STRIDED} <= keys


def test_at_stride_one_the_strided_fits_are_the_default_fits():
    """A window too short for a stride (30 snapshots, blocks of 157): the rule gives s = 1, and the
    strided fits are the default fits, value for value."""
    cfg = config_for("mnist", "ci", sizes=(784, 6, 6, 6, 10), train_subset=640, test_subset=100, eval_every=5,
                     n_inits=1, group_size=1, timing_repeats=0, cutoff_sweep=(), ablation_directions=(),
                     layerwise=False, replication_fits=())
    m = mnist.run(cfg)["members"][0]["fits"]
    for strided, plain in (("default-strided", "default"), ("default-strided-stabilised", "default-stabilised")):
        assert m[strided]["stride"] == 1
        for h in cfg.horizons_epochs:
            a, b = m[strided][f"T{h}"], m[plain][f"T{h}"]
            assert (a["koopman_loss"], a["T_eq_epochs"]) == (b["koopman_loss"], b["T_eq_epochs"]) or \
                (math.isnan(a["koopman_loss"]) and math.isnan(b["koopman_loss"]))
