"""The two recorded runs at the paper's settings that serve items 1, 2, 3 and 5: the NN DE solver
(the paper's problem and schedule, one optimizer, trained and fitted in float64) and MNIST (the
paper's network, Adadelta, every step of the window epochs stored in float32).
"""
from __future__ import annotations

import torch

from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.partition import make_partition
from koopman_lib.recorder import TrajectoryRecorder
from koopman_lib.window import window_grid
from .. import de_solver as de
from .baselines import de_baselines, mnist_baselines
from koopman_lib.metrics import finite_median
from .common import Config, DeRun, load_images, mnist_schedule, paper_partition, train_run
from .observables import de_observables, mnist_observables
from .windows import de_window_study, mnist_window_study, mnist_windows


def run_de(cfg: Config) -> dict:
    dcfg = de.Config(n_inits=cfg.de_inits, n_steps=cfg.de_steps, t1=cfg.de_t1, t2=cfg.de_t2, seed=cfg.seed,
                     optimizers=(cfg.de_optimizer,))
    sizes = (1,) + tuple(dcfg.hidden) + (2,)
    problem = de.Oscillator(sizes, dcfg.activation, de.time_grid(dcfg.n_points, dcfg.t_max, dcfg.t_one_quirk),
                            dcfg.x0, dcfg.p0, dcfg.lam)
    E, D = cfg.de_inits, problem.n_params
    theta0 = EnsembleMLP(sizes, dcfg.activation, E, seed=cfg.seed, dtype=torch.float64).theta.detach()
    partition = make_partition(problem.shapes, list(dcfg.partition))
    windows = window_grid(cfg.de_starts, cfg.de_lengths, cfg.de_steps - cfg.de_T)
    lo = min([w.t1 for w in windows] + [cfg.de_t1])
    rec = TrajectoryRecorder(D, lo, cfg.de_steps, (E,))
    tr = de.train(problem, theta0, [cfg.de_optimizer], dcfg, cfg.de_steps, [rec],
                  progress=True)
    losses = tr.losses.to(torch.float64)  # (n_steps + 1, E): losses[t] = loss of w(t)
    snaps = rec.snapshots                 # (n_steps - lo + 1, E, D)
    step_seconds = tr.seconds / cfg.de_steps
    loss_fn = lambda th: de.batched_loss(problem, th.to(torch.float64))  # noqa: E731
    d = DeRun(problem, partition, losses, snaps, lo, step_seconds, loss_fn)
    out = {"train_seconds": tr.seconds, "step_seconds_per_network": step_seconds / E, "n_params": D,
           "partition": partition.describe()}
    out["baselines"], out["baseline_curves"] = de_baselines(cfg, d)                        # item 1
    out["window_heatmap"], out["window_choice"], out["window_scores"] = de_window_study(cfg, d, windows)  # 2, 3
    out["observables"] = de_observables(cfg, d)                                              # item 5
    return out


def run_mnist(cfg: Config) -> dict:
    images = load_images("mnist", "paper", cfg.train_subset, cfg.test_subset)
    E = cfg.mnist_inits
    net = EnsembleMLP(cfg.mlp_sizes, "relu", E, seed=cfg.seed)
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
    run = train_run(net, images, cfg.mnist_epochs, 0.7, cfg.eval_every, lo, hi, cfg.seed, "mnist (paper settings)",
                    keep=keep)
    out = {"train_step_seconds_per_network": run.step_seconds / E, "n_params": net.n_params,
           "partition": partition.describe(), "steps_per_epoch": S}
    out["baselines"], out["baseline_curves"], item1_fits = mnist_baselines(cfg, run, partition)        # item 1
    out["window_heatmap"], out["window_choice"], out["window_scores"] = mnist_window_study(             # 2, 3
        cfg, run, partition, windows)
    out["observables"] = mnist_observables(cfg, run, partition, item1_fits)                          # item 5
    out["epoch_test_loss"] = [finite_median(run.grid[e * S][0]) for e in range(cfg.mnist_epochs + 1)]
    del run
    return out
