"""The two recorded runs at the paper's settings that serve items 1, 2, 3 and 5: the NN DE solver
(the paper's problem and schedule, one optimizer, trained and fitted in float64) and MNIST (the
paper's network, Adadelta, every step of the window epochs stored in float32).

Network ``i`` of either run (:func:`.common.study_networks`) draws its initial weights from
``network_seed(cfg.seed, i)``; MNIST's network ``i`` shuffles with ``shuffle_seed(cfg.seed, i)`` and
its fresh optimizers draw their minibatches from ``shuffle_seed(cfg.seed + 7, i)``. Each run returns
its networks' check values under ``"check"`` (keys ``de:...`` and ``mnist:...``).
"""
from __future__ import annotations

import dataclasses

import torch

from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.metrics import finite_median
from koopman_lib.optimizer_state import OptimizerStateRecorder
from koopman_lib.partition import make_partition
from koopman_lib.recorder import TrajectoryRecorder
from koopman_lib.seeds import network_seeds
from koopman_lib.window import window_grid
from ...check_values import EarlyNorms, merge
from .. import de_solver as de
from .baselines import de_baselines, mnist_baselines
from ..images import release_memory
from .common import Config, DeRun, Run, load_images, mnist_schedule, paper_partition, per_network, study_networks, train_run
from .observables import STATE, de_observables, mnist_observables, observed_members
from .windows import de_window_study, mnist_window_study, mnist_windows, window_values


def run_de(cfg: Config) -> dict:
    idx = study_networks(cfg, cfg.de_inits)
    dcfg = de.Config(n_inits=len(idx), n_steps=cfg.de_steps, t1=cfg.de_t1, t2=cfg.de_t2, seed=cfg.seed,
                     optimizers=(cfg.de_optimizer,))
    sizes = (1,) + tuple(dcfg.hidden) + (2,)
    problem = de.Oscillator(sizes, dcfg.activation, de.time_grid(dcfg.n_points, dcfg.t_max, dcfg.t_one_quirk),
                            dcfg.x0, dcfg.p0, dcfg.lam)
    E, D = len(idx), problem.n_params
    theta0 = EnsembleMLP(sizes, dcfg.activation, E, seeds=network_seeds(cfg.seed, idx),
                         dtype=torch.float64).theta.detach()
    partition = make_partition(problem.shapes, list(dcfg.partition))
    windows = window_grid(cfg.de_starts, cfg.de_lengths, cfg.de_steps - cfg.de_T)
    lo = min([w.t1 for w in windows] + [cfg.de_t1])
    rec = TrajectoryRecorder(D, lo, cfg.de_steps, (E,))
    early = EarlyNorms(idx, "de:")

    def record(t, theta):
        rec(t, theta)
        early(t, theta)

    # the optimizer's state over the window t1..t2 beside the weights, for the observables of item 5
    state = (lambda k, view, opt: OptimizerStateRecorder(view, opt, cfg.de_t1, cfg.de_t2, dtype=torch.float64)) \
        if STATE in cfg.de_observables else None
    tr = de.train(problem, theta0, [cfg.de_optimizer], dcfg, cfg.de_steps, [record], progress=True,
                  state_recorders=state)
    losses = tr.losses.to(torch.float64)  # (n_steps + 1, E): losses[t] = loss of w(t)
    snaps = rec.snapshots                 # (n_steps - lo + 1, E, D)
    step_seconds = tr.seconds / cfg.de_steps
    loss_fn = lambda th: de.batched_loss(problem, th.to(torch.float64))  # noqa: E731
    d = DeRun(problem, partition, losses, snaps, lo, step_seconds, loss_fn)
    out = {"train_seconds": tr.seconds, "step_seconds_per_network": step_seconds / E, "n_params": D,
           "partition": partition.describe()}
    out["baselines"], out["baseline_curves"], values = de_baselines(cfg, d)                # item 1
    out["window_heatmap"], out["window_choice"], out["window_scores"] = de_window_study(cfg, d, windows)  # 2, 3
    out["observables"], obs_values = de_observables(cfg, d, tr.state_recorders[0] if state else None)  # item 5
    out["check"] = merge(early.values(), per_network(idx, "de:", {
        "loss@end": losses[-1], **values, **window_values(out["window_scores"]), **obs_values}))
    return out


def window_only(run: Run, t1: int, t2: int, *steps: int) -> Run:
    """``run`` with the snapshots of ``t1..t2`` alone (a copy: the rest of its recording can be
    freed) and the weights after ``steps`` kept."""
    return dataclasses.replace(run, lo=t1, snaps=run.window(t1, t2).clone(),
                               kept={**run.kept, **{s: run.snap(s).clone() for s in steps}})


def run_mnist(cfg: Config) -> dict:
    images = load_images("mnist", "paper", cfg.train_subset, cfg.test_subset)
    idx = study_networks(cfg, cfg.mnist_inits)
    E = len(idx)
    net = EnsembleMLP(cfg.mlp_sizes, "relu", E, seeds=network_seeds(cfg.seed, idx))
    partition = make_partition(net.shapes, paper_partition(cfg))
    S = -(-images.x_train.shape[0] // 64)
    t1, t2, T, _ = mnist_schedule(cfg, S)
    if t2 + T > cfg.mnist_epochs * S:
        raise ValueError(f"window ending at epoch {cfg.window_epochs[1]} plus T = {cfg.T_epochs} epochs needs "
                         f"mnist_epochs >= {cfg.window_epochs[1] + cfg.T_epochs}")
    windows = mnist_windows(cfg, S)
    lo = min([w.t1 for w in windows] + [t1])
    hi = max([w.t2 for w in windows] + [t2])
    # memory: every step of the windows is stored; after the last window only the weights T steps
    # after each window's end (the weight errors) are kept, not every step up to them
    keep = tuple(sorted(s for s in {w.t2 + T for w in windows} | {t2 + T} if s > hi))
    early = EarlyNorms(idx, "mnist:")
    early(0, net.theta)
    run = train_run(net, images, cfg.mnist_epochs, 0.7, cfg.eval_every, lo, hi, cfg.seed, "mnist (paper settings)",
                    keep=keep, members=idx, on_step=early)
    out = {"train_step_seconds_per_network": run.step_seconds / E, "n_params": net.n_params,
           "partition": partition.describe(), "steps_per_epoch": S}
    out["baselines"], out["baseline_curves"], item1_fits, values = mnist_baselines(cfg, run, partition, idx)  # 1
    # memory: item 1's optimizers were the last to read the training images (the rest evaluates the test set)
    images.x_train = images.x_train.new_empty((0,) + images.x_train.shape[1:])
    release_memory()
    out["window_heatmap"], out["window_choice"], out["window_scores"] = mnist_window_study(             # 2, 3
        cfg, run, partition, windows)
    run = window_only(run, t1, t2, t2 + T)   # memory: item 5 reads the paper's window alone
    release_memory()
    out["observables"], obs_values = mnist_observables(cfg, run, partition, item1_fits, idx)          # item 5
    out["epoch_test_loss"] = [finite_median(run.grid[e * S][0]) for e in range(cfg.mnist_epochs + 1)]
    scores = out["window_scores"]
    for name in scores:
        if name != "windows":
            values.update({f"{name} {k}": v for k, v in window_values({"windows": scores["windows"],
                                                                       **scores[name]}).items()})
    values.update({f"test_loss@epoch {e}": run.grid[e * S][0] for e in range(cfg.mnist_epochs + 1)})
    out["check"] = merge(early.values(), per_network(idx, "mnist:", values),
                         per_network(idx[:observed_members(cfg, idx)], "mnist:", obs_values))
    del run
    return out
