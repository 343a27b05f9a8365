"""The optimizer's state as observables on MNIST (:mod:`koopman_repro.experiments.mnist.state`): on a
tiny config, the state pass trains the main experiment's networks (same inits, same test losses and
weights at t2), its rows have the declared schema, and the augmented fit's jumped weights are the
weight rows of a direct computation of the operators (pinv per block, MATLAB's cutoff)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from koopman_repro.experiments import config_for, mnist
from koopman_repro.experiments.mnist import state
from koopman_repro.results import to_jsonable
from koopman_repro.rows.mnist import MnistMembersStateRow, MnistTableStateRow

# the smallest window and horizons check_config allows with the recorder made after epoch 1
TINY = config_for("mnist", "ci", sizes=(784, 6, 6, 6, 10), train_subset=320, test_subset=100, eval_every=5,
                  epochs=5, window_epochs=(2, 3), replication_window_epochs=(2, 3), T_epochs=2,
                  horizons_epochs=(1, 2), replication_T_epochs=(1, 2), n_inits=2, group_size=2, timing_repeats=0,
                  cutoff_sweep=("paper",), fits=("paper", "default"), null_model=False, ablation_directions=(),
                  layerwise=False, replication_fits=(), n_state_inits=2, state_group_size=2)


@pytest.fixture(scope="module")
def setup():
    return mnist.Setup.make(TINY)


@pytest.fixture(scope="module")
def passed(setup):
    timing = mnist.no_timing(TINY)
    return state.state_experiment(TINY, setup, mnist.Partial(None, TINY), timing), timing


def test_the_state_pass_rows_have_the_schema(passed):
    out, _ = passed
    rows = [MnistTableStateRow.from_dict(to_jsonable(r)) for r in out["table_state"]]
    assert [(r.fit, r.T_epochs, r.n_inits) for r in rows] == [(f, h, 2) for f in TINY.state_fits
                                                              for h in TINY.horizons_epochs]
    assert all(r.observables == state.OBSERVABLES and r.stride == 1 for r in rows)
    members = [MnistMembersStateRow.from_dict(to_jsonable(dict(m, optimizer_loss_T5=0.0, optimizer_acc_T5=0.0)))
               for m in out["members_state"]]
    assert [m.init for m in members] == [0, 1] and all(set(m.fits) == set(TINY.state_fits) for m in members)
    for m in out["members_state"]:
        for f in TINY.state_fits:
            for h in TINY.horizons_epochs:
                e = m["fits"][f][f"T{h}"]
                assert e["teq_over_t"] == e["T_eq_epochs"] / h and e["horizon_steps"] == h * 5


def test_the_state_pass_trains_the_main_experiments_networks(setup, passed):
    out, _ = passed
    members, *_ = mnist.paper_experiment(TINY, setup, None, mnist.Partial(None, TINY))
    for a, b in zip(members, out["members_state"]):
        assert a["init"] == b["init"]
        assert a["test_loss_t2"] == b["test_loss_t2"]
        assert all(a[f"optimizer_loss_T{h}"] == b[f"optimizer_loss_T{h}"] for h in TINY.horizons_epochs)
    run = mnist.train_group(TINY, setup.paper_cond, [0, 1], setup.data, TINY.epochs, setup.grid_from,
                            setup.grid_to)
    _, rec = state.train_state_group(TINY, setup, [0, 1])
    assert torch.equal(rec.snapshots[..., :rec.layout.n_params], run.window(*run.epoch_window(*TINY.window_epochs)))
    assert rec.layout.buffers == ("square_avg", "acc_delta") and rec.layout.transforms == ("sqrt", "sqrt")


def _direct_default_jump(x: torch.Tensor, groups, T: int) -> torch.Tensor:
    """The library's default fit by hand: per block ``[w; sqrt(square_avg); sqrt(acc_delta)]`` ``U = Y X^+``
    (pinv cutoff at the float32 recording's resolution, ``max(m, k) eps32``) on the snapshots ``x``
    ``(k, F)`` in float64, then ``U^T`` applied to the last snapshot; returns the jumped vector ``(F,)``."""
    assert x.dtype == torch.float32
    x = x.to(torch.float64)
    out = x[-1].clone()
    for g in groups:
        for idx in g:
            X, Y = x[:-1, idx].T, x[1:, idx].T                       # (m, k - 1)
            rtol = max(X.shape) * torch.finfo(torch.float32).eps
            U = Y @ torch.linalg.pinv(X, rtol=rtol)
            out[idx] = torch.linalg.matrix_power(U, T) @ x[-1, idx]
    return out


def test_the_jumped_weights_are_the_direct_computation(setup, passed):
    out, _ = passed
    _, rec = state.train_state_group(TINY, setup, [0, 1])
    D = rec.layout.n_params
    j, T = 1, setup.S
    kp = state.state_fits(TINY, setup, rec, j)["default"]
    jumped = kp.predict(rec.snapshots[-1, j:j + 1], T)
    direct = _direct_default_jump(rec.snapshots[:, j], rec.layout.augment(setup.partition).groups, T)
    assert jumped.theta.shape == (1, D)
    torch.testing.assert_close(jumped.theta[0], direct[:D], rtol=1e-6, atol=1e-9)
    # the pass scored these weights: its Koopman test loss at T is theirs, unless the guard stopped it
    entry = out["members_state"][j]["fits"]["default"]
    run = mnist.train_group(TINY, setup.paper_cond, [0, 1], setup.data, TINY.epochs, setup.grid_from,
                            setup.grid_to)
    loss = float(run.evaluate(jumped.theta.to(torch.float32))[0][0])
    if entry["rollout_stopped_at"] is not None and entry["rollout_stopped_at"] <= T:
        assert entry["T1"]["koopman_loss"] != entry["T1"]["koopman_loss"]          # nan
        assert jumped.theta.norm() > 1e3 * rec.snapshots[-1, j, :D].norm() or loss != loss
    else:
        assert entry["T1"]["koopman_loss"] == pytest.approx(loss, rel=1e-5)


def test_the_state_pass_is_off_at_ci_and_in_the_regeneration_check():
    from koopman_repro.experiments.mnist.config import PROFILES
    assert PROFILES["ci"].n_state_inits == 0 and PROFILES["paper"].n_state_inits == 10
    assert mnist.regeneration_config(PROFILES["paper"], [0]).n_state_inits == 0
    assert state.state_experiment(replace(TINY, n_state_inits=0), None, None, None) == \
        {"table_state": [], "members_state": []}
