"""The optimizer's state as observables on MNIST (issue 25, item 3): Adadelta's per-parameter state
recorded over the paper's window beside the weights, fitted with the weights-only fits on the same
blocks with the state stacked in, jumped, and the jumped weights scored exactly as the main table's
fits (:func:`.table2.fit_entry`, which scores with :func:`.scoring.score_horizon`).

A separate pass, as the float64 condition (:mod:`.precision`): networks ``0..n_state_inits - 1`` in
groups of ``state_group_size``, each trained exactly as the main experiment's network of the same init
(each init is its own seed, :func:`.training.member_seeds`: the same network, the same test losses).
Over the window (epochs 3-5, 2814 snapshots at paper) an
:class:`koopman_lib.optimizer_state.OptimizerStateRecorder` records ``x = [theta; sqrt(square_avg);
sqrt(acc_delta)]`` ``(k, E, 3 D)`` after every step, in the training dtype (the state is exactly those
numbers). The buffers are both that Adadelta keeps (its update ``sqrt(acc_delta + eps) /
sqrt(square_avg + eps) g`` reads both), and their transform is the core's default ``"sqrt"`` for second
moments, chosen a priori and not by a loss: both square roots scale like a step or a gradient, as the
weight increments do, and a linear operator maps only between quantities that scale alike.

The partition is the main table's (``quasi_node:157`` for layer 1, ``node`` for the rest), each block of
``m`` weights augmented to ``m (1 + 2)`` observables (:meth:`StateLayout.augment`: 471 in layer 1, 63
and 33 in the others), fitted in float64 by :class:`koopman_lib.optimizer_state.StateKoopman` with the
fits ``cfg.state_fits`` (the paper's and the library's default, of every step only: the stride rule,
:func:`koopman_lib.stride.choose_stride`, would pick ``s = 1`` for blocks of 471 on 2814 snapshots
anyway). Each fit is evolved from the recorded vector at ``t2`` over the longest horizon with the main
table's guard (which reads the norm of the whole vector, weights and state), the test loss read from the
weight rows every ``eval_every`` steps, and scored at each of ``cfg.horizons_epochs``. The table's rows
are :func:`.table2.table_row`'s; the state fits are not timed, so their speedups are ``nan``.

Memory: the state recording is ``3 D`` numbers per snapshot and network (16750 x 3 x 2814 x 4 B =
566 MB per network at paper: the 377 MB of the two buffers and the weights); the training run itself
keeps two weight snapshots only. Measured on a reduced paper config (``train_subset=21440``: 1005
snapshots, a third of the paper's; ``/usr/bin/time -v``, 1 thread): the pass over one group of 2 networks
peaked at 2.04 GB max RSS (54 s CPU), over one network at 2.08 GB (29 s CPU): the peak there is not the
recording (0.2 GB per network) but what every MNIST pass holds (the images, the evaluations, the fits'
float64 block groups); at 2814 snapshots the group's 2 recordings add 0.73 GB, about 2.8 GB in all.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from koopman_lib.optimizer_state import OptimizerStateRecorder, StateKoopman
from ..images import release_memory
from .config import DTYPES, GUARD_GROWTH, Config, groups
from ...partial import Partial
from .table2 import add_speedups, fit_entry, member_row, table_row
from .training import Setup, optimizer_curve, recorded_steps, train_group

#: the ``observables`` column of the state rows
OBSERVABLES = "weights + Adadelta state"


def state_config(cfg: Config) -> Config:
    """``cfg``'s paper experiment as the state pass runs it: inits ``0..n_state_inits - 1`` in groups
    of ``state_group_size``, the fits ``state_fits``."""
    return replace(cfg, fits=cfg.state_fits, cutoff_sweep=(), n_inits=cfg.n_state_inits, networks=None,
                   group_size=cfg.state_group_size, null_model=False)


class StateHooks:
    """The callbacks of one trained group: ``on_epoch(trainer)`` makes the
    :class:`OptimizerStateRecorder` of the trainer's weights ``(E, D)`` and Adadelta optimizer after
    the first epoch (so the window must start at epoch 2 or later), ``on_step(step, theta)`` records
    the steps of the window ``t1..t2``."""

    def __init__(self, cfg: Config, S: int):
        if cfg.window_epochs[0] < 2:
            raise ValueError("the state pass makes its recorder after the first epoch: window_epochs must start "
                             f"at epoch 2 or later, got {cfg.window_epochs}")
        self.t1, self.t2 = (cfg.window_epochs[0] - 1) * S + 1, cfg.window_epochs[1] * S
        self.dtype = DTYPES[cfg.train_dtype]
        self.recorder: OptimizerStateRecorder | None = None

    def on_epoch(self, trainer) -> None:
        if self.recorder is None:
            self.recorder = OptimizerStateRecorder(trainer.net.theta, trainer.optimizer, self.t1, self.t2,
                                                   dtype=self.dtype)

    def on_step(self, step: int, theta: torch.Tensor) -> None:
        if self.recorder is not None:
            self.recorder(step)


def train_state_group(cfg: Config, setup: Setup, ids: list[int]):
    """Train inits ``ids`` as the main experiment does, recording the weights and Adadelta's state over
    the window. Returns ``(run, recorder)``: the :class:`~koopman_repro.experiments.images.Run` (its test
    losses; two stored weight snapshots, the last two of :func:`.training.recorded_steps`, the fewest a
    recorder keeps) and the complete
    :class:`OptimizerStateRecorder` (``snapshots`` ``(k, E, 3 D)``)."""
    hooks = StateHooks(cfg, setup.S)
    last = recorded_steps(cfg, setup.S)[1]
    run = train_group(cfg, setup.paper_cond, ids, setup.data, cfg.epochs, setup.grid_from, setup.grid_to,
                      on_step=hooks.on_step, desc=f"train + state inits {ids[0]}-{ids[-1]}", first=last - 1,
                      on_epoch=hooks.on_epoch)
    rec = hooks.recorder
    if rec is None or not rec.complete:
        raise RuntimeError("the state recording did not cover the window")
    if last == setup.t2 and not torch.equal(rec.snapshots[-1][..., :rec.layout.n_params], run.snap(setup.t2)):
        raise RuntimeError("the state recording's weights at t2 are not the run's")
    return run, rec


def state_fits(cfg: Config, setup: Setup, rec: OptimizerStateRecorder, j: int) -> dict[str, StateKoopman]:
    """Member ``j``'s fits ``cfg.fits`` (:meth:`koopman_lib.Koopman.fit_named`) on the augmented blocks of
    ``setup.partition``, in ``cfg.fit_dtype``."""
    kp = StateKoopman(setup.partition, rec.layout, dtype=DTYPES[cfg.fit_dtype])
    return kp.fit_named(rec.snapshots[:, j:j + 1], cfg.fits)


def state_group(cfg: Config, setup: Setup, ids: list[int]) -> dict:
    """``{"members": rows}`` of inits ``ids`` (:func:`.table2.member_row` with ``fits`` filled by
    :func:`.table2.fit_entry`, as the main table's members): trained, recorded, each fit evolved from
    the recorded vector at ``t2`` with the main table's guard and scored on its weight rows."""
    run, rec = train_state_group(cfg, setup, ids)
    opt_steps, _, _ = optimizer_curve(run, setup.t2, setup.H)
    epoch_loss = run.epoch_losses(cfg.epochs)
    members = []
    for j, i in enumerate(ids):
        row = member_row(cfg, setup, run, j, i, epoch_loss)
        start = rec.snapshots[-1, j:j + 1]
        for name, kp in state_fits(cfg, setup, rec, j).items():
            ro = kp.rollout(start, setup.H, every=cfg.eval_every, loss_fn=run.evaluate, max_growth=GUARD_GROWTH)
            row["fits"][name], _, _ = fit_entry(cfg, setup, kp, ro, opt_steps,
                                                epoch_loss[cfg.window_epochs[1]:, j].tolist())
        row["observables"] = OBSERVABLES
        members.append(row)
    return {"members": members}


def state_table(cfg: Config, members: list, timing: dict, after: int, S: int) -> list[dict]:
    """One row per (fit, horizon) as :func:`.table2.table_rows` makes them (success, ``T_eq / T``,
    test losses), with the ``observables`` column; the state fits are not timed (``koopman_seconds``
    and the speedups ``nan``; the equivalent run times are kept)."""
    rows = []
    for name in cfg.fits:
        for h in cfg.horizons_epochs:
            add_speedups([m["fits"][name][f"T{h}"] for m in members], timing, math.nan, after)
            row = table_row(members, name, h, math.nan, S)
            rows.append({**row, "variant": f"paper settings, {OBSERVABLES}, {name} fit", "observables": OBSERVABLES})
    return rows


def state_experiment(cfg: Config, setup: Setup, partial: Partial, timing: dict) -> dict:
    """``{"table_state": rows (:func:`state_table`), "members_state": its networks}`` (empty lists when
    ``cfg.n_state_inits`` is 0); each group kept by ``partial`` as ``state-<inits>``."""
    if not cfg.n_state_inits:
        return {"table_state": [], "members_state": []}
    cs = state_config(cfg)
    members = []
    for ids in groups(cs):
        members += partial.stage("state-" + "-".join(map(str, ids)), lambda: state_group(cs, setup, ids))["members"]
        release_memory()
    return {"table_state": state_table(cs, members, timing, setup.after, setup.S), "members_state": members}
