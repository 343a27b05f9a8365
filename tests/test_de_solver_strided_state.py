"""The DE solver's strided fits, stride sweep and state-augmented fits (issues 24 and 25), and the
per-network error ratio (issue 23): horizons as the core defines them, the sweep agreeing with the book's
fits at s = 1 and at the rule's s, the state fit's jump equal to StateKoopman's, and the per-network
error ratio equal to Fig. 2e's ratio on a run of one network."""
from __future__ import annotations

import dataclasses

import math

import pytest
import torch

from koopman_lib.estimator import STRIDED_FITS
from koopman_lib.optimizer_state import StateKoopman
from koopman_lib.partition import make_partition
from koopman_lib.stride import choose_stride, floor_horizon
from koopman_repro import rows
from koopman_repro.experiments import de_solver as ds
from koopman_repro.experiments.de_solver import state_fit

#: a window of 101 snapshots: the rule's stride is 2 for the weights' blocks of 11, 1 for the state's of 22/33;
#: T = 51 is not a multiple of 2 (predicted as 50)
TINY = ds.Config(n_inits=2, n_steps=240, t1=80, t2=180, Ts=(20, 51), T_main=51, timing_repeats=1, timing_steps=2,
                 timing_networks=1, curve_points=5, window_stride=20, loss_curve_points=10, ode_points=50,
                 n_points=50, check_steps=0, train_dtypes=("float32",), sweep_strides=(1, 3), sweep_repeats=1,
                 n_best=1)


@pytest.fixture(scope="module")
def res():
    return {**ds.run(TINY), "experiment": "de-solver"}


def _part():
    prob = ds.Oscillator((1,) + TINY.hidden + (2,))
    return make_partition(prob.shapes, list(TINY.partition))


def test_strided_fits_predict_the_cores_horizon_and_say_so(res):
    s = choose_stride(TINY.t2 - TINY.t1 + 1, _part())
    assert s == 2 == res["stride_rule"]["stride"]
    for r in rows.table(res, "table") + rows.table(res, "networks"):
        want = floor_horizon(r.T, s) if r.fit in STRIDED_FITS else r.T
        assert r.horizon == want and (r.fit not in STRIDED_FITS or r.horizon == {20: 20, 51: 50}[r.T])
    for w in rows.table(res, "where_it_stops"):
        assert w.stride == (s if w.fit in STRIDED_FITS else 1)
        assert w.horizons_by_T == [floor_horizon(T, w.stride) for T in w.Ts]
        # growth over the prediction: |lambda_s| per s steps, horizon / s applications
        rho, h = w.max_spectral_radius_median, w.horizons_by_T[w.Ts.index(w.T_diagnosed)]
        if rho is not None and rho > 0:
            assert w.log10_growth_at_T == pytest.approx(h / w.stride * math.log10(rho))
    # T_eq/T divides by T, not by the horizon
    n = next(r for r in rows.table(res, "networks") if r.fit == "default-strided" and r.T == 51)
    assert n.teq_over_t == pytest.approx(n.teq / 51)


def test_the_sweep_is_the_books_fit_at_stride_1_and_at_the_rules_stride(res):
    sweep = rows.table(res, "stride_sweep")
    table = {(r.optimizer, r.fit, r.T): r for r in rows.table(res, "table")}
    assert sorted({r.stride for r in sweep}) == [1, 2, 3]
    for r in sweep:
        assert r.rule == (r.stride == 2) and r.T == TINY.T_main == 51
        assert r.snapshots == (TINY.t2 - TINY.t1) // r.stride + 1 and r.horizon == floor_horizon(51, r.stride)
        same = {1: STRIDED_FITS[r.fit], 2: r.fit}.get(r.stride)
        if same:
            t = table[(r.optimizer, same, 51)]
            assert (r.teq_over_t_median, r.success_rate) == (t.teq_over_t_median, t.success_rate)
            assert r.median_max_spectral_radius == pytest.approx(t.median_max_spectral_radius, rel=1e-12)
    assert len(sweep) == 3 * len(ds.OPTIMIZERS) * len(STRIDED_FITS)


def test_state_rows_stand_beside_the_weights_only_rows(res):
    state = rows.table(res, "state_observables")
    table = {(r.optimizer, r.fit, r.T): r for r in rows.table(res, "table")}
    buffers = {"adam": ["exp_avg", "exp_avg_sq"], "adagrad": ["sum"], "adadelta": ["square_avg", "acc_delta"]}
    assert len(state) == len(ds.OPTIMIZERS) * len(TINY.state_fits) * len(TINY.Ts)
    for r in state:
        assert r.buffers == buffers[r.optimizer] and r.block_sizes == sorted({m * (1 + len(r.buffers))
                                                                              for m in (2, 11)})
        assert r.transforms == ["identity" if b == "exp_avg" else "sqrt" for b in r.buffers]
        w = table[(r.optimizer, r.fit, r.T)]
        assert (r.weights_teq_over_t_median, r.weights_success_rate, r.weights_horizon) == (
            w.teq_over_t_median, w.success_rate, w.horizon)
        assert r.stride == 1  # blocks of 22 and 33 need 88 and 132 pairs: the window has 100
    nets = rows.table(res, "state_networks")
    assert len(nets) == len(state) * TINY.n_inits
    for r in state:
        mine = [n for n in nets if (n.optimizer, n.fit, n.T) == (r.optimizer, r.fit, r.T)]
        assert r.success_rate == sum(n.success for n in mine) / len(mine)


def test_the_state_fits_jump_is_state_koopmans(res):
    """The experiment's state reading (fit_named on the augmented blocks, StateJump) predicts what
    StateKoopman fitted on the same recording predicts, for a recording of every optimizer."""
    cfg = dataclasses.replace(TINY, n_inits=1)
    problem, theta0 = ds._setup(cfg, torch.float64)
    part = _part()
    tr = ds.train(problem, theta0, list(ds.OPTIMIZERS), cfg, cfg.t2, progress=False,
                  state_recorders=state_fit.state_recorder_factory(cfg, list(ds.OPTIMIZERS), torch.float64))
    for rec in tr.state_recorders:
        x = rec.snapshots
        mine = ds.koopman_fits(rec.layout.augment(part), x, ["paper", "default"])
        for f, kp in mine.items():
            jump = state_fit.StateJump(kp, rec.layout, x[-1])
            ref = StateKoopman(part, rec.layout, fit=f).fit(rec).predict(rec.last(), 40)
            torch.testing.assert_close(jump.predict(None, 40), ref.theta, rtol=1e-9, atol=1e-12)
            assert not torch.equal(ref.theta, x[-1, ..., :part.n_params])
        assert rec.layout == ds.state_layout(ds.OPTIMIZERS[tr.state_recorders.index(rec)], cfg, part.n_params)


def test_fig_2e_keeps_the_network_of_smallest_mean_error_and_its_own_ratio(res):
    """With n_best = 1 Fig. 2e's ratio is the own error ratio of the network with the smallest
    mean |error| (the per-network fields say which and how much)."""
    nets = rows.table(res, "networks")
    for r in rows.table(res, "table"):
        mine = [n for n in nets if (n.optimizer, n.fit, n.T) == (r.optimizer, r.fit, r.T)]
        best = min(mine, key=lambda n: n.mean_abs_error)
        assert best.error_ratio == pytest.approx(r.error_ratio, rel=1e-12)
    assert len({n.error_ratio for n in nets}) > len(nets) // 2


def test_a_networks_error_ratio_is_fig_2e_on_a_run_of_that_network_alone():
    alone = {**ds.run(dataclasses.replace(TINY, networks=(1,), sweep_strides=(), state_optimizers=(),
                                          fits=("paper",))), "experiment": "de-solver"}
    for r in rows.table(alone, "table"):
        n = next(x for x in rows.table(alone, "networks") if (x.optimizer, x.T) == (r.optimizer, r.T))
        assert n.error_ratio == pytest.approx(r.error_ratio, rel=1e-12) and n.error_ratio > 0
    assert alone["state_observables"] == [] and alone["stride_sweep"] == []
