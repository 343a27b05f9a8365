"""The optimizer against itself (issue 23, item 1): Adadelta continued from exactly its state at
t2 (weights, accumulators, StepLR position: :meth:`koopman_lib.training.EnsembleTrainer.branch`)
with another minibatch order (network ``i`` draws it from :func:`koopman_lib.seeds.branch_seed`
``(cfg.seed, i)``), for the longest horizon, never retrained from the start. Each network's branch
is scored by the same function as the Koopman fits (:func:`.scoring.score_horizon`), against the
same reference, the network's own optimizer run; its distribution over networks is the noise floor
of every metric. The ``null_model`` table: per setting and horizon, the branch's own numbers and the
paired difference per network (Koopman minus the branch, in test loss at T and in T_eq / T)."""
from __future__ import annotations

import math

import numpy as np
import torch

from koopman_lib.ensembles import evaluate
from koopman_lib.metrics import finite_median, success
from koopman_lib.seeds import branch_seed
from ..images import normalise
from . import scoring
from .config import DTYPES


class NullBranch:
    """``on_epoch`` callback of a training run (:func:`..images.train_run`): after epoch ``at_epoch``
    (t2) it continues a branch of the trainer ``epochs`` epochs for the members ``ids`` (each with
    its own :func:`branch_seed`), evaluating the test set ``(x_test, y_test)`` every ``every``
    steps; ``steps`` (after t2), ``loss`` and ``acc`` ``(len(steps), E)`` hold its curve after."""

    def __init__(self, seed: int, ids: list[int], at_epoch: int, epochs: int, every: int, x_test, y_test):
        self.seed, self.ids, self.at_epoch, self.epochs, self.every = seed, list(ids), at_epoch, epochs, every
        self.x_test, self.y_test = x_test, y_test
        self.steps, self.loss, self.acc = None, None, None

    @classmethod
    def of(cls, cfg, cond, data, ids: list[int], at_epoch: int, epochs: int) -> "NullBranch":
        """The branch of inits ``ids`` trained under condition ``cond`` (a :class:`.training.Condition`)
        on ``data`` (:class:`.training.Data`): evaluated on the test images as the run itself is."""
        x_test = normalise(data.x_test, cond.normalize).to(DTYPES[cfg.train_dtype])   # as Data.normalized
        return cls(cfg.seed, ids, at_epoch, epochs, cfg.eval_every, x_test, data.y_test)

    def __call__(self, trainer) -> None:
        if trainer.epoch != self.at_epoch:
            return
        branch = trainer.branch([branch_seed(self.seed, i) for i in self.ids])
        t2, grid = trainer.step, {}

        def after_step(step, theta):
            if (step - t2) % self.every == 0:
                grid[step - t2] = evaluate(branch.net, self.x_test, self.y_test, theta)
        after_step(t2, branch.net.theta.detach())
        for _ in range(self.epochs):
            branch.run_epoch(after_step)
        self.steps = sorted(grid)
        self.loss = torch.stack([grid[s][0] for s in self.steps])
        self.acc = torch.stack([grid[s][1] for s in self.steps])

    def curve(self) -> dict:
        """The branch's curve as plain data (what a resumed run reads back)."""
        return {"steps": self.steps, "loss": self.loss, "acc": self.acc}


def null_entry(curve: dict, j: int, epoch_losses: list, horizons, S: int) -> dict:
    """Member ``j``'s entry of the optimizer against itself: per horizon ``"T<h>"`` its
    :func:`.scoring.score_horizon` (``who = "null"``) from the branch's ``curve`` (:meth:`NullBranch.curve`)
    against ``epoch_losses`` (the network's own run: test loss at t2 and after every later epoch)."""
    steps = list(curve["steps"])
    return {f"T{h}": scoring.score_horizon(float(curve["loss"][steps.index(h * S), j]),
                                           float(curve["acc"][steps.index(h * S), j]), epoch_losses, h, "null", h * S)
            for h in horizons}


def null_row(setting: str, h: int, networks: list, null: list[dict], optimizer_loss: list, test_loss_t2: list,
             paired_loss: dict, paired_teq: dict) -> dict:
    """One row of the ``null_model`` table: the optimizer against itself under ``setting`` at horizon
    ``h`` epochs over ``networks``, from their entries ``null`` (``null_entry(...)["T<h>"]``): success,
    T_eq / T, its test loss (medians, and per network), and per Koopman fit (``paired_loss`` /
    ``paired_teq``: ``{fit: per-network Koopman values}``, same order) the median over networks of
    Koopman minus the branch, in test loss at T and in T_eq / T (networks where either is missing left out)."""
    teq = np.array([e["teq_over_t"] for e in null], dtype=float)
    loss = np.array([e["null_loss"] for e in null], dtype=float)

    def paired(values, own):
        return {f: finite_median(np.asarray(v, dtype=float) - own, empty=math.nan) for f, v in values.items()}
    return {"setting": setting, "T_epochs": h, "n_members": len(null), "networks": list(networks),
            "success_rate": float(success(np.array([e["T_eq_epochs"] for e in null])).mean()) if null else math.nan,
            "teq_over_t_median": float(np.median(teq)) if len(teq) else math.nan,
            "censored_fraction": float(np.mean([e["censored"] for e in null])) if null else math.nan,
            "null_loss_median": finite_median(loss, empty=math.nan),
            "optimizer_loss_median": finite_median(optimizer_loss, empty=math.nan),
            "test_loss_t2_median": finite_median(test_loss_t2, empty=math.nan),
            "null_loss": loss.tolist(), "teq_over_t": teq.tolist(),
            "koopman_minus_null_loss_median": paired(paired_loss, loss),
            "koopman_minus_null_teq_over_t_median": paired(paired_teq, teq) if paired_teq else None}


def paper_null_rows(cfg, members: list) -> list[dict]:
    """The ``null_model`` rows of the paper's experiment (``members`` with their ``null`` entries),
    one per horizon, paired with every fit of the table."""
    return [null_row("paper settings", h, [m["init"] for m in members], [m["null"][f"T{h}"] for m in members],
                     [m[f"optimizer_loss_T{h}"] for m in members], [m["test_loss_t2"] for m in members],
                     {f: [m["fits"][f][f"T{h}"]["koopman_loss"] for m in members] for f in cfg.fits},
                     {f: [m["fits"][f][f"T{h}"]["teq_over_t"] for m in members] for f in cfg.fits})
            for h in cfg.horizons_epochs]


def replication_null_rows(cfg, null: dict, run, t2: int, koopman: dict) -> list[dict]:
    """The ``null_model`` rows of the replication's settings: its networks' branches (``null``:
    :meth:`NullBranch.curve`), scored against each network's own run ``run`` (a
    :class:`..images.Run`, t2 at step ``t2``), one row per replication horizon, paired with each
    Koopman result of ``koopman`` ``{setting: (steps after t2, test losses (E, len(steps)))}``
    (the ablation's curves), whose ``T_eq / T`` is scored by the same function."""
    S, w2 = run.S, t2 // run.S
    epochs = run.epoch_losses(max(run.grid) // S)[w2:]                     # (epochs after t2 + 1, E)
    ids = list(range(run.E))
    entries = [null_entry(null, j, epochs[:, j].tolist(), cfg.replication_T_epochs, S) for j in ids]
    rows = []
    for h in cfg.replication_T_epochs:
        ko = {name: [float(loss[j, list(steps).index(h * S)]) if h * S in list(steps) else math.nan for j in ids]
              for name, (steps, loss) in koopman.items()}
        teq = {name: [scoring.score_horizon(v[j], math.nan, epochs[:, j].tolist(), h, "koopman", h * S)["teq_over_t"]
                      for j in ids] for name, v in ko.items()}
        rows.append(null_row("replication settings", h, ids, [e[f"T{h}"] for e in entries],
                             run.loss_at(t2 + h * S).tolist(), run.loss_at(t2).tolist(), ko, teq))
    return rows
