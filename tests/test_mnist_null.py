"""MNIST: the optimizer against itself (issue 23, item 1). Adadelta continued from exactly its state
at t2 with another minibatch order, scored by the same function as the Koopman fits, stored beside
them per network and as the ``null_model`` table."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from koopman_lib.metrics import t_eq_parts
from koopman_repro.experiments import config_for, mnist
from koopman_repro.experiments.mnist import scoring
from koopman_repro.results import to_jsonable
from koopman_repro.rows.mnist import MnistMembersRow, MnistNullModelRow

# 10 steps per epoch; the replication on 2 networks, node-wise only (its null branch and rows)
SMALL = config_for("mnist", "ci", sizes=(784, 6, 6, 6, 10), train_subset=640, test_subset=100, eval_every=5,
                   n_inits=2, group_size=2, timing_repeats=0, cutoff_sweep=("paper",), n_ablation_inits=1,
                   n_replication_inits=2, ablation_directions=("from_replication",), layerwise=False,
                   replication_fits=())


def run_patched(cfg, patches: list[tuple]) -> dict:
    """``mnist.run(cfg)`` with ``(module, name, replacement)`` patched in for the run only."""
    mp = pytest.MonkeyPatch()
    for module, name, value in patches:
        mp.setattr(module, name, value)
    try:
        return mnist.run(cfg)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def scored():
    """A small run with every call of the one scoring function recorded (``who``, horizon)."""
    calls = []
    real = scoring.score_horizon
    res = run_patched(SMALL, [(scoring, "score_horizon", lambda *a: calls.append((a[4], a[3])) or real(*a))])
    return res, calls


def test_the_null_model_and_the_koopman_fits_go_through_one_scoring_function(scored):
    res, calls = scored
    n, H = SMALL.n_inits, len(SMALL.horizons_epochs)
    koopman = [c for c in calls if c[0] == "koopman"]
    null = [c for c in calls if c[0] == "null"]
    # the paper's experiment: every fit and horizon of every network, and every network's branch per horizon;
    # the replication: its branch per network and horizon, and its Koopman fit's T_eq scored the same way
    assert len(null) == n * H + SMALL.n_replication_inits * len(SMALL.replication_T_epochs)
    assert len(koopman) >= n * H * len(SMALL.fits)
    S, w2 = res["steps_per_epoch"], SMALL.window_epochs[1]
    epoch_loss = res["curves"]["epoch_loss"]
    for j, m in enumerate(res["members"]):
        for h in SMALL.horizons_epochs:
            e = m["null"][f"T{h}"]
            assert e.keys() >= {"T_eq_epochs", "Q", "R", "censored", "teq_over_t", "null_loss", "null_acc",
                                "equivalent_seconds_fast_loop"}
            assert e["T_eq_epochs"] == t_eq_parts(e["null_loss"], epoch_loss[j, w2:].tolist()).value
            assert e["null_loss"] == pytest.approx(float(res["curves"]["null_loss"][j, h * S // SMALL.eval_every]))


def test_the_branch_continues_from_the_state_at_t2_with_its_own_data_order(scored):
    res, _ = scored
    curves = res["curves"]
    # at t2 the branch holds exactly the run's weights; after one step of another minibatch order it differs
    assert torch.equal(curves["null_loss"][:, 0], curves["optimizer_loss"][:, 0].to(curves["null_loss"].dtype))
    assert not torch.equal(curves["null_loss"][:, 1:], curves["optimizer_loss"][:, 1:].to(curves["null_loss"].dtype))
    # the branch is an Adadelta run continued, not restarted: its loss at T stays near the run's own
    for m in res["members"]:
        for h in SMALL.horizons_epochs:
            assert abs(m["null"][f"T{h}"]["null_loss"] - m[f"optimizer_loss_T{h}"]) < 0.2 * m["test_loss_t2"]


def test_null_model_rows_pair_each_network_with_its_own_branch(scored):
    res, _ = scored
    rows = [MnistNullModelRow.from_dict(to_jsonable(r)) for r in res["null_model"]]
    assert [(r.setting, r.T_epochs) for r in rows] == \
        [("paper settings", h) for h in SMALL.horizons_epochs] + \
        [("replication settings", h) for h in SMALL.replication_T_epochs]
    members = [MnistMembersRow.from_dict(to_jsonable(m)) for m in res["members"]]
    for r in rows[:len(SMALL.horizons_epochs)]:
        assert r.networks == [m.init for m in members]
        for fit in SMALL.fits:
            diffs = np.array([m.koopman_minus_null(fit, r.T_epochs) for m in members], dtype=float)
            expect = [float(np.median(d[np.isfinite(d)])) if np.isfinite(d).any() else math.nan for d in diffs.T]
            got = [r.koopman_minus_null_loss_median[fit], r.koopman_minus_null_teq_over_t_median[fit]]
            assert got == pytest.approx(expect, nan_ok=True)
    rep = rows[-1]
    assert rep.n_members == SMALL.n_replication_inits and set(rep.koopman_minus_null_loss_median) == \
        {"replication settings"}


def test_check_values_hold_the_null_model(scored):
    res, _ = scored
    table = res["check_values"]
    keys = set(table["keys"])
    assert {f"null:T{h}:{k}" for h in SMALL.horizons_epochs for k in mnist.NULL_CHECKED_PER_HORIZON} <= keys


def test_a_network_alone_has_the_same_branch_as_in_its_group(scored):
    res, _ = scored
    alone = mnist.run(mnist.regeneration_config(SMALL, [1]))
    keys = ("null_loss", "null_acc", "T_eq_epochs", "teq_over_t")      # the timings are nan (not timed)
    for h in SMALL.horizons_epochs:
        a, b = alone["members"][0]["null"][f"T{h}"], res["members"][1]["null"][f"T{h}"]
        assert [a[k] for k in keys] == [b[k] for k in keys]


def test_the_float64_condition_trains_the_same_inits_in_float64():
    """The paper's experiment trained in float64 on inits 0..n_float64_inits-1 (its own table and
    networks, the fits float64_fits), beside the float32 table, by the same code."""
    from koopman_repro.rows.mnist import MnistMembersFloat64Row, MnistTableFloat64Row
    from dataclasses import replace
    cfg = replace(SMALL, ablation_directions=(), n_inits=1, group_size=1, n_float64_inits=2, float64_group_size=1,
                  float64_fits=("default",))
    res = mnist.run(cfg)
    rows = [MnistTableFloat64Row.from_dict(to_jsonable(r)) for r in res["table_float64"]]
    assert [(r.fit, r.T_epochs, r.n_inits) for r in rows] == [("default", h, 2) for h in cfg.horizons_epochs]
    f64 = [MnistMembersFloat64Row.from_dict(to_jsonable(m)) for m in res["members_float64"]]
    assert [m.init for m in f64] == [0, 1] and all(set(m.fits) == {"default"} and m.null is None for m in f64)
    f32 = res["members"][0]
    # the same init and data order, another precision: close but not equal after 5 epochs
    assert f64[0].test_loss_t2 != f32["test_loss_t2"]
    assert f64[0].test_loss_t2 == pytest.approx(f32["test_loss_t2"], rel=1e-2)
    with pytest.raises(ValueError, match="float64_fits"):
        mnist.check_config(replace(cfg, float64_fits=("default-strided",)))
