"""Beyond the paper: the reviewers' questions, and Koopman training that does not diverge.

Seven studies (issue 6); each is one list of rows in the results (``method``, ``setting``
and spelled-out metric names), plus the curves the chapter plots:

1. ``baselines``: Koopman training against linear extrapolation of every weight, continuing
   the optimizer, fresh Adam / SGD with momentum, and L-BFGS, at equal steps and at equal
   wall-clock, on the NN DE solver and on MNIST.
2. ``window_heatmap``: ``T_eq/T`` and the weight prediction error over window start ``t1``
   and length ``t2 - t1``.
3. ``window_choice``: windows chosen from the window alone (spectral and held-out criteria,
   :mod:`koopman_lib.window`) against the heatmap.
4. ``stabilisation``: the replication's MNIST setting (Rao 2024) and the stabilisations:
   eigenvalue clipping, the affine observable ``[w; 1]``, truncated SVD / ridge, float64;
   test loss and accuracy after T = 1, 2, 5 epochs.
5. ``observables``: time delays and a polynomial dictionary per block; accuracy vs cost.
6. ``cycles``: optimizer for a while, Koopman jump, repeat; wall-clock to a target test loss
   with every cost counted.
7. ``networks``: a wider MLP, a small CNN (one block per output channel) and Fashion-MNIST.

Reuse: one NN DE solver run serves items 1, 2, 3, 5; one MNIST run at the paper's settings
serves items 1, 2, 3, 5; items 4, 6, 7 train their own networks. Training runs in float32
for MNIST (as the PyTorch example), so snapshots are *stored* in float32 without loss and
cast to float64 for every fit (except the replication's float32 fits); the DE solver is
trained and fitted in float64 (item 1 adds two fits that test the role of precision, since
the DE solver chapter trains in float32). Timings are seconds per network of batched ensemble work,
measured in this process; they are only comparable within one results file.
"""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..baselines import continue_lbfgs, continue_training, line_fit, linear_extrapolation, value_at_time
from ..config import torch_threads
from ..data import load_mnist
from ..ensembles import EnsembleCNN, EnsembleMLP, evaluate
from ..estimator import Koopman
from ..fit import FitSpec
from ..metrics import t_eq_parts
from ..observables import Identity, parse_observables
from ..partition import make_partition
from ..progress import bar
from ..recorder import TrajectoryRecorder
from ..training import EnsembleTrainer
from ..window import Window, choose, rank_agreement, score_window, window_grid
from . import de_solver as de

PAPER_NORMALIZE = (0.1307, 0.3081)
REPLICATION_NORMALIZE = (0.5, 0.5)
#: the replication's numbers after T = 1 and 2 epochs (node-wise operators; Rao 2024)
REPLICATION_REPORTED = {"adadelta_test_loss": 0.2, "koopman_test_loss_T1": 0.27, "koopman_test_loss_T2": 1.0}


@dataclass(frozen=True)
class Config:
    seed: int = 0
    # -- NN DE solver (items 1, 2, 3, 5): the paper's problem and schedule, one optimizer ------------
    de_inits: int = 8
    de_optimizer: str = "adadelta"      # the paper's best case (Table 1: 100 % success)
    de_steps: int = 60000
    de_t1: int = 35000
    de_t2: int = 45000
    de_T: int = 2500                    # the authors' example
    de_starts: tuple = (5000, 15000, 25000, 35000, 40000)   # heatmap: window starts t1 (steps)
    de_lengths: tuple = (1000, 2500, 5000, 10000, 20000)    # heatmap: window lengths t2 - t1 (steps)
    de_eval_every: int = 25             # loss evaluations of the continued baselines
    de_baselines: tuple = (("adam", 1e-4), ("adam", 1e-3), ("sgd_momentum", 1e-3), ("sgd_momentum", 1e-2))
    de_lbfgs_steps: int = 2500
    de_observables: tuple = ("identity", "affine", "delay:2", "delay:4", "poly:2:x")
    # -- MNIST at the paper's settings (items 1, 2, 3, 5) ---------------------------------------------
    mlp_sizes: tuple = (784, 20, 20, 20, 10)   # the paper's MNIST network (items 1-6, Fashion-MNIST in 7)
    layer1_q: int = 157                 # quasi-node chunks of layer 1 (785 = 5 x 157), Node elsewhere
    mnist_inits: int = 4
    mnist_epochs: int = 10
    window_epochs: tuple = (3, 5)       # weights after every step of epochs 3..5 (2814 snapshots)
    T_epochs: int = 2
    eval_every: int = 67                # test loss every 67 steps (14 per epoch); divides 938
    mnist_baselines: tuple = (("adam", 1e-3), ("sgd_momentum", 1e-2), ("sgd_momentum", 1e-1))
    lbfgs_steps: int = 400              # L-BFGS iterations from t2 (each on a fresh minibatch)
    lbfgs_batch: int = 1024             # unstated (no paper baseline): L-BFGS needs larger batches than 64
    extrap_L: tuple = (0, 938, 94)      # lines through the last L snapshots; 0 = the whole window
    heat_starts: tuple = (1, 2, 3, 4)   # heatmap: windows start with epoch ... (1-based)
    heat_lengths: tuple = (1, 2, 3)     # heatmap: window lengths in epochs (fractions allowed)
    holdout_fraction: float = 0.2       # held-out criterion: last 20 % of the window
    mnist_observables: tuple = ("identity", "affine", "delay:2", "poly:2")
    obs_members: int | None = None      # item 5 on MNIST: fit the first members only (None: all)
    # -- item 4: the replication's setting ---------------------------------------------------------
    rep_inits: int = 2
    rep_partition: str = "node"         # the replication's full-node (785-dim) operators in layer 1
    rep_window_epochs: tuple = (3, 4)
    rep_T_epochs: tuple = (1, 2, 5)
    rep_curve_every: int = 469          # test loss of the Koopman path every half epoch
    rep_rank: int = 50                  # truncated SVD: leading singular values kept
    ridge_rel: float = 1e-3             # Tikhonov: s / (s^2 + (ridge_rel s_max)^2)
    # -- item 6: cycles ---------------------------------------------------------------------------------
    cyc_inits: int = 3
    cyc_warmup_epochs: int = 2          # optimizer only before the first cycle
    cyc_record: int = 469               # optimizer steps per cycle, all recorded (the window)
    cyc_T: int = 938                    # Koopman steps per jump
    cyc_target_epoch: int = 8           # target: the optimizer-alone test loss after this epoch
    cyc_max_epochs: int = 10            # stop after this many epochs of steps (optimizer + jumps)
    # -- item 7: other networks and data ------------------------------------------------------------
    other_epochs: int = 6
    other_window_epochs: tuple = (3, 4)
    other_T_epochs: int = 2
    wide_sizes: tuple = (784, 128, 128, 10)
    wide_inits: int = 2
    cnn_channels: tuple = (8, 16)
    cnn_inits: int = 2
    cnn_train_subset: int | None = None  # None: all 60000 images
    fashion_inits: int = 3
    items: tuple = ("de", "mnist", "stabilisation", "cycles", "networks")
    train_subset: int | None = None     # MNIST/Fashion training images used (None: all 60000; tests use a few)
    test_subset: int | None = None      # test images used (None: all 10000)
    torch_threads: int = 1              # intra-op threads while the experiment runs (restored after): every
    #                                     tensor here is small, and 2 threads on a shared 2-core machine spin


PROFILES = {
    # The whole design (the defaults above): about 45 minutes on a quiet 2-core machine.
    "full": Config(),
    # The paper's settings (DE schedule 35000-45000 + 2500, MNIST epochs 3-5 + 2 epochs, the
    # replication's full-node operators), with fewer networks and smaller grids than Config()'s
    # defaults so that the full-scale run fits in about half an hour on a shared 2-core machine.
    "paper": Config(
        de_lbfgs_steps=500, de_eval_every=50,
        mnist_inits=3, heat_starts=(1, 3, 5), heat_lengths=(1, 3), lbfgs_steps=100,
        rep_inits=1, cyc_inits=2, wide_inits=1, cnn_inits=2, fashion_inits=2),
    "ci": Config(
        de_inits=4, de_steps=20000, de_t1=12000, de_t2=16000, de_T=2500,
        de_starts=(4000, 8000, 12000), de_lengths=(1000, 4000, 8000), de_eval_every=50,
        de_baselines=(("adam", 1e-4), ("sgd_momentum", 1e-3)), de_lbfgs_steps=300,
        de_observables=("identity", "affine", "delay:2", "poly:2:x"),
        mnist_inits=2, mnist_epochs=7, eval_every=67, mnist_baselines=(("adam", 1e-3), ("sgd_momentum", 1e-2)),
        lbfgs_steps=60, heat_starts=(2, 3), heat_lengths=(0.5, 1), mnist_observables=("identity", "affine"),
        obs_members=None, rep_inits=1, rep_partition="quasi_node:157", rep_curve_every=469,
        cyc_inits=2, cyc_warmup_epochs=1, cyc_target_epoch=4, cyc_max_epochs=5,
        other_epochs=3, other_window_epochs=(2, 2), other_T_epochs=1, wide_inits=1, cnn_inits=1,
        cnn_train_subset=15000, fashion_inits=2),
}


# ------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------
def _median(xs):
    v = [float(x) for x in np.asarray(xs, dtype=float).ravel() if np.isfinite(x)]
    return float(statistics.median(v)) if v else None


def _frac(mask) -> float:
    m = np.asarray(mask, dtype=bool).ravel()
    return float(m.mean()) if m.size else float("nan")


def _timed(fn):
    s = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - s


def teq_over_t(loss_koopman, opt_losses: torch.Tensor, every: int, T: int) -> list[float]:
    """Per member ``T_eq / T``: ``opt_losses`` ``(n, E)`` are the optimizer's losses at ``t2 +
    j every`` (``j = 0..n-1``); ``T_eq`` by :func:`koopman_lib.metrics.t_eq_parts` in units of
    ``every`` steps. Non-finite Koopman losses give 0 (no progress)."""
    lk = torch.as_tensor(loss_koopman, dtype=torch.float64).reshape(-1)
    out = []
    for e in range(lk.shape[0]):
        parts = t_eq_parts(float(lk[e]), opt_losses[:, e].double().numpy())
        out.append(parts.value * every / T)
    return out


def censored(loss_koopman, opt_losses: torch.Tensor) -> list[bool]:
    lk = torch.as_tensor(loss_koopman, dtype=torch.float64).reshape(-1)
    return [bool(t_eq_parts(float(lk[e]), opt_losses[:, e].double().numpy()).censored) for e in range(lk.shape[0])]


def rel_error(pred: torch.Tensor, true_end: torch.Tensor, true_start: torch.Tensor) -> torch.Tensor:
    """``||pred - w(t2+T)|| / ||w(t2+T) - w(t2)||`` per member ``(E,)`` (``inf`` if not finite)."""
    pred, true_end, true_start = (x.double() for x in (pred, true_end, true_start))
    err = (pred - true_end).norm(dim=-1) / (true_end - true_start).norm(dim=-1)
    return torch.where(torch.isfinite(err), err, torch.full_like(err, float("inf")))


# ------------------------------------------------------------------------------------------
# image classifiers: data, training with a recorded trajectory, evaluation
# ------------------------------------------------------------------------------------------
@dataclass
class Images:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    normalize: tuple


@functools.lru_cache(maxsize=2)
def _raw_images(dataset: str):
    """Pixels in [0, 1] and labels, read (and checksum-verified) once per process."""
    xtr, ytr = load_mnist("train", dataset=dataset, normalize=None)
    xte, yte = load_mnist("test", dataset=dataset, normalize=None)
    return xtr, ytr, xte, yte


def load_images(dataset: str = "mnist", normalize="paper", train_subset: int | None = None,
                test_subset: int | None = None) -> Images:
    """``normalize``: ``"paper"`` (0.1307/0.3081), ``"replication"`` (0.5/0.5), ``"dataset"``
    (mean and std of the training images) or a ``(mean, std)`` pair."""
    xtr, ytr, xte, yte = _raw_images(dataset)
    if normalize == "paper":
        m, s = PAPER_NORMALIZE
    elif normalize == "replication":
        m, s = REPLICATION_NORMALIZE
    elif normalize == "dataset":
        m, s = float(xtr.mean()), float(xtr.std())
    else:
        m, s = normalize
    if train_subset:
        xtr, ytr = xtr[:train_subset], ytr[:train_subset]
    if test_subset:
        xte, yte = xte[:test_subset], yte[:test_subset]
    return Images((xtr - m) / s, ytr, (xte - m) / s, yte, (round(m, 4), round(s, 4)))


def make_evaluator(net, images: Images):
    """``theta (E, D) -> (test loss (E,), test accuracy (E,))``; ``nan`` for non-finite members."""
    return lambda theta: evaluate(net, images.x_test, images.y_test, theta.detach())


@dataclass
class Run:
    """A trained ensemble: float32 snapshots after steps ``lo..hi`` ``(hi - lo + 1, E, D)``, test
    loss/accuracy every ``every`` steps (``grid[step] = (loss, acc)``), optimizer seconds per
    ensemble step with the recording and evaluations excluded."""

    net: object
    images: Images
    trainer: EnsembleTrainer
    S: int
    lo: int
    snaps: torch.Tensor
    grid: dict
    every: int
    step_seconds: float
    evaluate: object

    @property
    def E(self) -> int:
        return self.snaps.shape[1]

    def snap(self, step: int) -> torch.Tensor:
        if step in getattr(self, "kept", {}):
            return self.kept[step]
        if not self.lo <= step < self.lo + self.snaps.shape[0]:
            raise ValueError(f"step {step} was not stored")
        return self.snaps[step - self.lo]

    def window(self, t1: int, t2: int) -> torch.Tensor:
        """Snapshots after steps ``t1..t2`` ``(t2 - t1 + 1, E, D)`` (float32, a view)."""
        if t1 < self.lo or t2 > self.lo + self.snaps.shape[0] - 1:
            raise ValueError(f"steps {t1}..{t2} are outside the stored {self.lo}..{self.lo + self.snaps.shape[0] - 1}")
        return self.snaps[t1 - self.lo: t2 - self.lo + 1]

    def epoch_window(self, e0: int, e1: int) -> tuple[int, int]:
        """Steps of 'after every step of epochs e0..e1' (1-based): ``((e0-1) S + 1, e1 S)``."""
        return (e0 - 1) * self.S + 1, e1 * self.S

    def curve(self, t2: int, T: int) -> torch.Tensor:
        """Optimizer test losses at ``t2, t2 + every, ..`` up to ``t2 + T`` ``(T/every + 1, E)``."""
        return torch.stack([self.grid[t2 + j][0] for j in range(0, T + 1, self.every)])

    def curve_acc(self, t2: int, T: int) -> torch.Tensor:
        return torch.stack([self.grid[t2 + j][1] for j in range(0, T + 1, self.every)])

    def after(self, t2: int) -> torch.Tensor:
        """All optimizer test losses from ``t2`` on (every ``every`` steps), ``(n, E)``."""
        last = max(self.grid)
        return torch.stack([self.grid[s][0] for s in range(t2, last + 1, self.every)])


def train_run(net, images: Images, epochs: int, gamma, every: int, lo: int, hi: int, seed: int,
              desc: str = "training", lr: float = 1.0, keep=()) -> Run:
    """Adadelta (lr ``lr``, StepLR ``gamma`` per epoch, batch 64) for ``epochs`` epochs on the
    fast ensemble loop, storing float32 snapshots after steps ``lo..hi`` (and after each step in
    ``keep``, in ``Run.kept``) and evaluating the test set every ``every`` steps (and at step 0)."""
    E = net.theta.shape[0]
    tr = EnsembleTrainer(net, images.x_train, images.y_train, 64, "adadelta", lr, gamma,
                         member_seeds=[1000 * seed + 500 + e for e in range(E)])
    S = tr.steps_per_epoch
    if S % every:
        raise ValueError(f"eval_every={every} must divide the {S} steps of an epoch")
    hi = min(hi, epochs * S)
    lo = max(lo, 0)
    snaps = torch.empty(hi - lo + 1, E, net.theta.shape[1], dtype=net.theta.dtype)
    evaluate = make_evaluator(net, images)
    grid = {0: evaluate(net.theta)}
    if lo == 0:
        snaps[0] = net.theta.detach()
    overhead = 0.0
    kept = {}

    def on_step(step, theta):
        nonlocal overhead
        s = time.perf_counter()
        if lo <= step <= hi:
            snaps[step - lo] = theta
        if step in keep:
            kept[step] = theta.clone()
        if step % every == 0:
            grid[step] = evaluate(theta)
        overhead += time.perf_counter() - s

    total = 0.0
    for _ in bar(range(epochs), desc=desc):
        total += tr.run_epoch(on_step).seconds
    step_seconds = (total - overhead) / (epochs * S)
    out = Run(net, images, tr, S, lo, snaps, grid, every, step_seconds, evaluate)
    out.kept = kept
    return out


def _rows(values: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` evaluations ``(n, E)`` of a rollout, ``nan`` past the step at which it ended
    (a rollout ends once every network has stopped)."""
    values = values[:n]
    return torch.cat([values, values.new_full((n - values.shape[0],) + values.shape[1:], float("nan"))])


def koopman_curve(fit: Koopman, start: torch.Tensor, T: int, every: int, evaluate,
                  dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Test loss and accuracy ``(T/every + 1, E)`` of the Koopman path at ``0, every, .., T`` steps
    (:meth:`Koopman.rollout`), the weights evaluated in the training ``dtype`` (loaded back into
    the model). Only non-finite weights stop a network (``nan`` from then on, as their loss)."""
    ro = fit.rollout(start, T, every, evaluate, dtype=dtype)
    return _rows(ro.loss, T // every + 1), _rows(ro.acc, T // every + 1)


# ------------------------------------------------------------------------------------------
# item 1 (both experiments): continued optimizers on an ensemble
# ------------------------------------------------------------------------------------------
def result_row(experiment: str, method: str, setting: str, comparison: str, steps: int, loss, acc, ref: torch.Tensor,
               ref_every: int, T: int, seconds: float, evals, loss_start, capped: bool = False,
               teq_fixed: float | None = None) -> dict:
    """One row of item 1. ``loss``/``acc`` ``(E,)`` after ``steps`` steps; ``ref`` the continued
    optimizer's losses from ``t2`` every ``ref_every`` steps (for ``T_eq``); ``seconds`` per
    network; ``capped``: the wall-clock budget allowed more steps than were run."""
    loss = torch.as_tensor(loss, dtype=torch.float64)
    r = [teq_fixed] * loss.numel() if teq_fixed is not None else teq_over_t(loss, ref, ref_every, T)
    return {"experiment": experiment, "method": method, "setting": setting, "comparison": comparison, "steps": steps,
            "loss_median": _median(loss), "accuracy_median": _median(acc) if acc is not None else None,
            "loss_at_t2_median": _median(loss_start), "teq_over_t_median": _median(r),
            "success_rate": _frac(np.array(r) > 0),
            "censored_fraction": 0.0 if teq_fixed is not None else _frac(censored(loss, ref)),
            "seconds_per_network": seconds, "loss_evaluations": evals, "capped_at_steps_run": capped}


def optimizer_rows(experiment: str, setting: str, traces: dict, E: int, budget: float, ref: torch.Tensor,
                   ref_every: int, T: int, loss_start) -> list[dict]:
    """Rows for optimizers started at ``t2``: equal steps (their last evaluation) and equal
    wall-clock (the last evaluation within ``budget`` seconds per network)."""
    rows = []
    for method, tr in traces.items():
        pairs = isinstance(tr.losses[0], tuple)
        losses = torch.stack([l[0] for l in tr.losses] if pairs else tr.losses)  # (n, E)
        accs = torch.stack([l[1] for l in tr.losses]) if pairs else None
        secs = [s / E for s in tr.seconds]
        rows.append(result_row(experiment, method, setting, "equal steps", tr.steps[-1], losses[-1],
                               accs[-1] if pairs else None, ref, ref_every, T, secs[-1], tr.evals, loss_start))
        idx = value_at_time(secs, list(range(len(secs))), budget)
        rows.append(result_row(experiment, method, setting, "equal wall-clock", tr.steps[idx], losses[idx],
                               accs[idx] if pairs else None, ref, ref_every, T, secs[idx], None, loss_start,
                               capped=idx == len(secs) - 1 and secs[-1] < budget))
    return rows


# ------------------------------------------------------------------------------------------
# the NN DE solver: items 1, 2, 3, 5
# ------------------------------------------------------------------------------------------
#: item 1, DE solver: Koopman fits of the float64 window that test the role of precision
#: the DE solver's Koopman fit as the paper made it (node operators, pinv with the default cutoff)
DE_PAPER_FIT = "Koopman (paper: node operators, pinv)"
DE_PRECISION_METHODS = {"cutoff": "Koopman (pinv, float32-resolution cutoff)",
                        "rounded": "Koopman (pinv, window rounded to float32)"}


def de_precision_rows(results: dict) -> dict[str, dict]:
    """The DE solver's equal-steps rows of a ``beyond`` results file for the paper's fit and the two
    precision fits, keyed by method (``DE_PAPER_FIT``, then ``DE_PRECISION_METHODS``); ``{}`` where
    the file has no such row."""
    rows = [r for r in results.get("baselines", [])
            if r.get("experiment") == "de-solver" and r.get("comparison") == "equal steps"]
    return {m: next((r for r in rows if r.get("method") == m), {})
            for m in (DE_PAPER_FIT, *DE_PRECISION_METHODS.values())}


def de_precision_fits(partition, window: torch.Tensor, T: int) -> dict:
    """``{method name: (w(t2 + T) predicted (E, D), fit + jump seconds)}`` for the two fits of
    :data:`DE_PRECISION_METHODS`: the float64 ``window`` ``(k, E, D)`` fitted with the pinv cutoff
    at float32 resolution (``max(n, k) eps32``), and the window rounded to float32 (then cast
    back) fitted with the paper's pinv (default cutoff) and jumped from its rounded ``w(t2)``."""
    kp = Koopman(partition, cutoff="float32")
    _, sec = _timed(lambda: kp.fit(window))
    pred, jsec = _timed(lambda: kp.predict(window[-1], T))
    out = {DE_PRECISION_METHODS["cutoff"]: (pred, sec + jsec)}
    rounded = window.to(torch.float32).to(torch.float64)
    kp = Koopman(partition)
    _, sec = _timed(lambda: kp.fit(rounded))
    pred, jsec = _timed(lambda: kp.predict(rounded[-1], T))
    out[DE_PRECISION_METHODS["rounded"]] = (pred, sec + jsec)
    return out


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
    snap = lambda t: snaps[t - lo]  # noqa: E731
    loss_fn = lambda th: de.batched_loss(problem, th.to(torch.float64))  # noqa: E731
    out = {"train_seconds": tr.seconds, "step_seconds_per_network": step_seconds / E, "n_params": D,
           "partition": partition.describe()}

    # -- item 1: baselines from t2 ------------------------------------------------------------
    t1, t2, T = cfg.de_t1, cfg.de_t2, cfg.de_T
    setting = f"window {t1}-{t2}, T = {T} steps"
    window = snaps[t1 - lo: t2 - lo + 1]
    ref = losses[t2:, :]                  # Adadelta continuation, every step
    rows, curves = [], {"T": list(range(0, T + 1, cfg.de_eval_every))}
    l_t2 = losses[t2]
    kp = Koopman(partition)
    _, fit_s = _timed(lambda: kp.fit(window))
    pred, jump_s = _timed(lambda: kp.predict(snap(t2), T))
    k_sec = (fit_s + jump_s) / E
    rows.append(result_row("de-solver", DE_PAPER_FIT, setting, "equal steps", T,
                           loss_fn(pred), None, ref, 1, T, k_sec, 0, l_t2))
    path = kp.rollout(snap(t2), T, cfg.de_eval_every, loss_fn).loss    # nan once the weights are non-finite
    curves["koopman"] = _rows(path, len(curves["T"])).T.tolist()
    # Why the paper's fit fails here but not in the DE solver chapter (float32 training): the same
    # float64 window with the singular values below float32 resolution dropped, and the same window
    # rounded to float32 (what a float32 recording would hold) with the paper's pinv.
    for label, (p, sec) in de_precision_fits(partition, window, T).items():
        rows.append(result_row("de-solver", label, setting, "equal steps", T, loss_fn(p), None, ref, 1, T,
                               sec / E, 0, l_t2))
    for L in (t2 - t1 + 1, T, max(2, T // 10)):
        p, sec = _timed(lambda: linear_extrapolation(window, T, L))
        rows.append(result_row("de-solver", "linear extrapolation", f"{setting}, line through last {L} snapshots",
                               "equal steps", T, loss_fn(p), None, ref, 1, T, sec / E, 0, l_t2))
        if L == t2 - t1 + 1:
            level, slope = line_fit(window, L)
            curves["linear"] = torch.stack([loss_fn(level + s * slope) for s in curves["T"]]).T.tolist()
    # the optimizer itself, continued (from the recorded run; it may go past T at equal wall-clock)
    cont = losses[t2: t2 + T + 1: cfg.de_eval_every]
    curves["optimizer"] = cont.T.tolist()
    per_step = step_seconds / E
    n_budget = int(k_sec / per_step)
    n_avail = cfg.de_steps - t2
    rows.append(result_row("de-solver", f"{cfg.de_optimizer} (continued)", setting, "equal steps", T,
                           losses[t2 + T], None, ref, 1, T, T * per_step, T, l_t2, teq_fixed=1.0))
    nb = min(n_budget, n_avail)
    rows.append(result_row("de-solver", f"{cfg.de_optimizer} (continued)", setting, "equal wall-clock", nb,
                           losses[t2 + nb], None, ref, 1, T, nb * per_step, nb, l_t2, capped=n_budget > n_avail,
                           teq_fixed=nb / T))
    traces = {}
    start = snap(t2).clone()
    de_loss = lambda th, step: problem.loss(th)  # noqa: E731
    for name, lr in bar(cfg.de_baselines, desc="de-solver baselines"):
        traces[f"{name} (fresh, lr {lr:g})"] = continue_training(start, de_loss, T, name, lr=lr,
                                                                 every=cfg.de_eval_every, eval_fn=loss_fn)
    traces["L-BFGS (per network, strong Wolfe)"] = continue_lbfgs(
        start, de_loss, cfg.de_lbfgs_steps, every=max(1, cfg.de_lbfgs_steps // 50), eval_fn=loss_fn)
    rows += optimizer_rows("de-solver", setting, traces, E, k_sec, ref, 1, T, l_t2)
    curves["baselines"] = {k: {"steps": v.steps, "seconds_per_network": [s / E for s in v.seconds],
                               "loss_median": [_median(x) for x in v.losses]} for k, v in traces.items()}
    curves["koopman_seconds_per_network"] = k_sec
    curves["optimizer_step_seconds_per_network"] = step_seconds / E
    out["baselines"], out["baseline_curves"] = rows, curves

    # -- items 2 and 3: window heatmap and automatic choice -------------------------------------
    heat, crit = [], {c: [] for c in ("spectral", "one_step", "multi_step")}
    teqs = []
    for w in bar(windows, desc="de-solver windows"):
        win = snaps[w.t1 - lo: w.t2 - lo + 1]
        ktw = Koopman(partition).fit(win)
        p = ktw.predict(snap(w.t2), T)
        lp = loss_fn(p)
        r = teq_over_t(lp, losses[w.t2:], 1, T)
        err = rel_error(p, snap(w.t2 + T), snap(w.t2))
        sc = score_window(win, partition, T, max(2, int(cfg.holdout_fraction * w.length)), fitted=ktw)
        heat.append({"experiment": "de-solver", "method": "Koopman (pinv)", "setting": f"T = {T} steps",
                     "t1": w.t1, "length": w.length, "t2": w.t2, "teq_over_t_median": _median(r),
                     "loss_median": _median(lp), "loss_at_t2_median": _median(losses[w.t2]),
                     "success_rate": _frac(np.array(r) > 0), "weight_error_median": _median(err),
                     "max_spectral_radius_median": _median(sc["max_radius"])})
        teqs.append(r)
        for c in crit:
            crit[c].append(sc[c].tolist())
    out["window_heatmap"] = heat
    paper_idx = next((i for i, w in enumerate(windows) if (w.t1, w.t2) == (t1, t2)), None)
    out["window_choice"] = choice_rows("de-solver", windows, torch.tensor(teqs), crit, paper_idx, "steps")
    out["window_scores"] = {"windows": [(w.t1, w.length) for w in windows], "teq_over_t": teqs, **crit}

    # -- item 5: observables ------------------------------------------------------------------
    obs_rows = []
    true_end = snap(t2 + T)
    for spec in cfg.de_observables:
        obs = parse_observables(spec)
        otr = Koopman(partition, observables=obs)
        _, sec = _timed(lambda: otr.fit(window))
        hist = window[-obs.history:]
        p, jsec = _timed(lambda: otr.predict(hist, T))
        lp = loss_fn(p)
        r = teq_over_t(lp, ref, 1, T)
        obs_rows.append({"experiment": "de-solver", "method": f"Koopman, {obs.name} observables (pinv)",
                         "setting": setting, "observables": obs.name,
                         "features_per_block": "/".join(str(obs.n_features(m)) for m in partition.block_sizes),
                         "operator_entries_per_network": otr.operator_entries(),
                         "fit_seconds_per_network": sec / E, "jump_seconds_per_network": jsec / E,
                         "loss_median": _median(lp), "accuracy_median": None,
                         "teq_over_t_median": _median(r), "success_rate": _frac(np.array(r) > 0),
                         "weight_error_median": _median(rel_error(p, true_end, snap(t2))),
                         "max_spectral_radius_median": _median(otr.spectral_radius_)})
    out["observables"] = obs_rows
    return out


def choice_rows(experiment: str, windows: list[Window], teqs: torch.Tensor, crit: dict, paper_idx, unit: str,
                fit: str = "pinv") -> list[dict]:
    """Item 3: per criterion, the windows it picks (per member) and their ``T_eq/T``, against
    the best fixed window, the per-member oracle and the paper's window. ``teqs`` ``(n_windows, E)``."""
    rows = []
    # the window whose median over networks is best (statistics.median: the mean of the two
    # middle values for an even count, as every median of this chapter; torch.median is the lower)
    best_fixed = int(np.argmax([m if m is not None else -1.0 for m in (_median(row) for row in teqs)]))
    oracle = teqs.nan_to_num(nan=-1).amax(dim=0)
    base = {"experiment": experiment, "fit": fit}
    for c, scores in crit.items():
        s = torch.tensor(scores, dtype=torch.float64)     # (n_windows, E)
        pick = choose(s)                                  # (E,)
        got = teqs[pick, torch.arange(teqs.shape[1])]
        rows.append({**base, "method": f"criterion: {c.replace('_', '-')}", "setting": "chosen per network",
                     "windows_chosen": "; ".join(f"{windows[i].t1}+{windows[i].length}" for i in pick.tolist()),
                     "teq_over_t_median": _median(got), "rank_correlation_with_teq": rank_agreement(s, teqs),
                     "unit": unit})
    rows.append({**base, "method": "best fixed window (hindsight)", "setting": "same window for every network",
                 "windows_chosen": f"{windows[best_fixed].t1}+{windows[best_fixed].length}",
                 "teq_over_t_median": _median(teqs[best_fixed]), "rank_correlation_with_teq": None, "unit": unit})
    rows.append({**base, "method": "oracle (best window per network, hindsight)", "setting": "chosen per network",
                 "windows_chosen": None, "teq_over_t_median": _median(oracle), "rank_correlation_with_teq": None,
                 "unit": unit})
    if paper_idx is not None:
        rows.append({**base, "method": "the paper's window", "setting": "same window for every network",
                     "windows_chosen": f"{windows[paper_idx].t1}+{windows[paper_idx].length}",
                     "teq_over_t_median": _median(teqs[paper_idx]), "rank_correlation_with_teq": None, "unit": unit})
    return rows


# ------------------------------------------------------------------------------------------
# MNIST at the paper's settings: items 1, 2, 3, 5
# ------------------------------------------------------------------------------------------


def paper_partition(cfg: Config) -> list[str]:
    """Quasi-node (q = ``layer1_q``) operators in layer 1, node operators elsewhere (the paper's MNIST choice)."""
    return [f"quasi_node:{cfg.layer1_q}"] + ["node"] * (len(cfg.mlp_sizes) - 2)

#: the two fits of the paper-settings studies (the keys are the ``fit`` of the results rows)
FITS = {"pinv": FitSpec("paper"), "stable": FitSpec("float32")}
FIT_NAMES = {"pinv": "pinv, default cutoff (paper)", "stable": "pinv, float32-resolution cutoff"}


def fit_variants(partition, window: torch.Tensor, specs: dict, observables=None,
                 dtype=torch.float64) -> tuple[dict[str, Koopman], float]:
    """``({name: fitted Koopman}, seconds per network)`` of every spec in ``specs`` from one
    factorisation per block (:meth:`Koopman.fit_variants`); ``window`` ``(k, E, D)``."""
    kp = Koopman(partition, observables=observables, dtype=dtype)
    fits, sec = _timed(lambda: kp.fit_variants(window, specs))
    return fits, sec / window.shape[1]


def minibatch_loss(net, images: Images, batch: int, seed: int, shared: bool = False):
    """``loss_fn(theta (E, D), step) -> (E,)`` mean cross-entropy on a random minibatch drawn
    (with replacement) for that step; the same step always gives the same batch. ``shared``:
    one batch for all members (L-BFGS runs members one at a time)."""
    N = images.x_train.shape[0]

    def fn(theta, step):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        E = 1 if shared else theta.shape[0]
        idx = torch.randint(N, (E, batch), generator=g)
        out = net.forward(images.x_train[idx], theta) if not shared else \
            net.forward(images.x_train[idx[0]], theta)
        y = images.y_train[idx].expand(theta.shape[0], batch) if shared else images.y_train[idx]
        ce = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none")
        return ce.reshape(theta.shape[0], batch).mean(1)
    return fn


def mnist_windows(cfg: Config, S: int) -> list[Window]:
    """Heatmap windows (steps), each ending on the evaluation grid and leaving T epochs after it."""
    T = cfg.T_epochs * S
    out = []
    for start in cfg.heat_starts:
        for length in cfg.heat_lengths:
            w = Window((start - 1) * S + 1, (start - 1) * S + round(length * S))
            if w.t2 % cfg.eval_every:
                raise ValueError(f"window {w} does not end on the evaluation grid (eval_every={cfg.eval_every}); "
                                 "choose heat_lengths whose steps are multiples of eval_every")
            if w.t2 + T <= cfg.mnist_epochs * S:
                out.append(w)
    return out


def run_mnist(cfg: Config) -> dict:
    images = load_images("mnist", "paper", cfg.train_subset, cfg.test_subset)
    E = cfg.mnist_inits
    net = EnsembleMLP(cfg.mlp_sizes, "relu", E, seed=cfg.seed)
    partition = make_partition(net.shapes, paper_partition(cfg))
    S = -(-images.x_train.shape[0] // 64)
    T = cfg.T_epochs * S
    t1, t2 = (cfg.window_epochs[0] - 1) * S + 1, cfg.window_epochs[1] * S
    if t2 + T > cfg.mnist_epochs * S:
        raise ValueError(f"window ending at epoch {cfg.window_epochs[1]} plus T = {cfg.T_epochs} epochs needs "
                         f"mnist_epochs >= {cfg.window_epochs[1] + cfg.T_epochs}")
    windows = mnist_windows(cfg, S)
    lo = min([w.t1 for w in windows] + [t1])
    hi = max([w.t2 for w in windows] + [t2]) + T
    run = train_run(net, images, cfg.mnist_epochs, 0.7, cfg.eval_every, lo, hi, cfg.seed, "mnist (paper settings)")
    ev, every = run.evaluate, cfg.eval_every
    out = {"train_step_seconds_per_network": run.step_seconds / E, "n_params": net.n_params,
           "partition": partition.describe(), "steps_per_epoch": S}

    # -- item 1 ---------------------------------------------------------------------------------
    setting = f"window epochs {cfg.window_epochs[0]}-{cfg.window_epochs[1]}, T = {cfg.T_epochs} epochs"
    window = run.window(t1, t2)
    ref = run.after(t2)
    theta_t2 = run.snap(t2)
    fits, fit_s = fit_variants(partition, window, FITS)
    rows, curves = [], {"steps": list(range(0, T + 1, every)), "optimizer": run.curve(t2, T).T.tolist(),
                        "optimizer_accuracy": run.curve_acc(t2, T).T.tolist()}
    k_sec = {}
    l_t2 = run.grid[t2][0]
    for name, fit in fits.items():
        _, jump_s = _timed(lambda: fit.predict(window[-1], T))
        k_sec[name] = fit_s + jump_s / E
        l, a = koopman_curve(fit, window[-1], T, every, ev)
        curves[f"koopman_{name}"] = l.T.tolist()
        curves[f"koopman_{name}_accuracy"] = a.T.tolist()
        rows.append(result_row("mnist", f"Koopman ({FIT_NAMES[name]})", setting, "equal steps", T, l[-1], a[-1],
                               ref, every, T, k_sec[name], 0, l_t2))
    for L in cfg.extrap_L:
        L = window.shape[0] if L == 0 else L
        p, sec = _timed(lambda: linear_extrapolation(window, T, L))
        l, a = ev(p.float())
        rows.append(result_row("mnist", "linear extrapolation", f"{setting}, line through last {L} snapshots",
                               "equal steps", T, l, a, ref, every, T, sec / E, 0, l_t2))
        if L == window.shape[0]:
            level, slope = line_fit(window, L)
            curves["linear"] = torch.stack([ev((level + s * slope).float())[0] for s in curves["steps"]]).T.tolist()
    budget = k_sec["stable"]
    per_step = run.step_seconds / E
    n_avail = (max(run.grid) - t2) // every * every
    n_budget = int(budget / per_step) // every * every
    nb = min(n_budget, n_avail)
    rows.append(result_row("mnist", "adadelta (continued)", setting, "equal steps", T, run.grid[t2 + T][0],
                           run.grid[t2 + T][1], ref, every, T, T * per_step, T, l_t2, teq_fixed=1.0))
    rows.append(result_row("mnist", "adadelta (continued)", setting, "equal wall-clock", nb, run.grid[t2 + nb][0],
                           run.grid[t2 + nb][1], ref, every, T, nb * per_step, nb, l_t2, capped=n_budget > n_avail,
                           teq_fixed=nb / T))
    traces = {}
    start = theta_t2.clone()
    for name, lr in bar(cfg.mnist_baselines, desc="mnist baselines"):
        traces[f"{name} (fresh, lr {lr:g})"] = continue_training(
            start, minibatch_loss(net, images, 64, cfg.seed + 7), T, name, lr=lr, every=every, eval_fn=ev)
    lb_every = max(1, cfg.lbfgs_steps // 10)
    traces[f"L-BFGS (per network, batch {cfg.lbfgs_batch}, strong Wolfe)"] = continue_lbfgs(
        start, minibatch_loss(net, images, cfg.lbfgs_batch, cfg.seed + 11, shared=True), cfg.lbfgs_steps,
        every=lb_every, eval_fn=ev)
    rows += optimizer_rows("mnist", setting, traces, E, budget, ref, every, T, l_t2)
    curves["baselines"] = {k: {"steps": v.steps, "seconds_per_network": [s / E for s in v.seconds],
                               "loss_median": [_median(x[0]) for x in v.losses]} for k, v in traces.items()}
    curves["koopman_seconds_per_network"] = k_sec
    curves["optimizer_step_seconds_per_network"] = per_step
    out["baselines"], out["baseline_curves"] = rows, curves

    # -- items 2 and 3 ----------------------------------------------------------------------------
    heat, crit, teqs = [], {n: {c: [] for c in ("spectral", "one_step", "multi_step")} for n in FITS}, \
        {n: [] for n in FITS}
    for w in bar(windows, desc="mnist windows"):
        win = run.window(w.t1, w.t2)
        h = max(2, int(cfg.holdout_fraction * w.length))
        wf, _ = fit_variants(partition, win, FITS)
        hf, _ = fit_variants(partition, win[:-h], FITS)
        for name, fit in wf.items():
            p = fit.predict(win[-1], T)
            l, a = ev(p.float())
            r = teq_over_t(l, run.after(w.t2), every, T)
            err = rel_error(p, run.snap(w.t2 + T), run.snap(w.t2))
            sc = score_window(win, partition, T, h, fit=lambda _x, held=hf[name]: held, fitted=fit)
            heat.append({"experiment": "mnist", "method": f"Koopman ({FIT_NAMES[name]})", "fit": name,
                         "setting": f"T = {cfg.T_epochs} epochs", "t1": w.t1, "length": w.length, "t2": w.t2,
                         "teq_over_t_median": _median(r), "success_rate": _frac(np.array(r) > 0),
                         "weight_error_median": _median(err), "loss_median": _median(l),
                         "loss_at_t2_median": _median(run.grid[w.t2][0]),
                         "accuracy_median": _median(a), "max_spectral_radius_median": _median(sc["max_radius"])})
            teqs[name].append(r)
            for c in crit[name]:
                crit[name][c].append(sc[c].tolist())
    out["window_heatmap"] = heat
    paper_idx = next((i for i, w in enumerate(windows) if (w.t1, w.t2) == (t1, t2)), None)
    out["window_choice"] = sum((choice_rows("mnist", windows, torch.tensor(teqs[n]), crit[n], paper_idx, "steps", n)
                                for n in FITS), [])
    out["window_scores"] = {"windows": [(w.t1, w.length) for w in windows],
                            **{n: {"teq_over_t": teqs[n], **crit[n]} for n in FITS}}

    # -- item 5 ---------------------------------------------------------------------------------
    obs_rows = []
    for spec in bar(cfg.mnist_observables, desc="mnist observables"):
        obs = parse_observables(spec)
        n_obs = cfg.obs_members or E
        hist = run.window(t2 - obs.history + 1, t2)[:, :n_obs]
        if type(obs) is Identity and n_obs == E:  # the fits of item 1
            of, sec = fits, fit_s
        else:
            of, sec = fit_variants(partition, window[:, :n_obs], FITS, observables=obs)
        for name, fit in of.items():
            p, jsec = _timed(lambda: fit.predict(hist, T))
            l, a = ev(p.float())
            r = teq_over_t(l, ref[:, :n_obs], every, T)
            obs_rows.append({"experiment": "mnist", "method": f"Koopman, {obs.name} observables ({FIT_NAMES[name]})",
                             "fit": name, "setting": setting, "observables": obs.name,
                             "features_per_block": "/".join(str(obs.n_features(m)) for m in partition.block_sizes),
                             "operator_entries_per_network": fit.operator_entries(),
                             "fit_seconds_per_network": sec, "jump_seconds_per_network": jsec / n_obs,
                             "loss_median": _median(l), "accuracy_median": _median(a),
                             "teq_over_t_median": _median(r), "success_rate": _frac(np.array(r) > 0),
                             "weight_error_median": _median(rel_error(p, run.snap(t2 + T)[:n_obs], theta_t2[:n_obs])),
                             "max_spectral_radius_median": _median(fit.spectral_radius_), "n_networks": n_obs})
        del of
    out["observables"] = obs_rows
    out["epoch_test_loss"] = [_median(run.grid[e * S][0]) for e in range(cfg.mnist_epochs + 1)]
    del run
    return out


# ------------------------------------------------------------------------------------------
# item 4: the replication's setting and the stabilisations
# ------------------------------------------------------------------------------------------
def rep_variants(cfg: Config) -> list[tuple[str, str, FitSpec]]:
    """``(name, family, fit spec)``; families: ``f32``/``f64`` identity or ``f32-affine``/``f64-affine``.
    The first four change one thing at a time from the replication; the rest start from float64.
    ``"jax"`` is JAX's pinv cutoff on float32 data, ``10 max(m, k) eps32``, in either fit dtype."""
    return [
        ("replication: float32 fit, JAX pinv cutoff", "f32", FitSpec("jax")),
        ("replication + eigenvalue clipping to the unit disk", "f32", FitSpec("jax", clip=1.0)),
        ("replication + affine observable [w; 1]", "f32-affine", FitSpec("jax")),
        ("replication in float64 (same cutoff)", "f64", FitSpec("jax")),
        ("float64, default pinv cutoff (the paper's fit)", "f64", FitSpec("paper")),
        ("float64 + float32-resolution cutoff", "f64", FitSpec("float32")),
        (f"float64 + truncated SVD (rank {cfg.rep_rank})", "f64", FitSpec(cfg.rep_rank)),
        (f"float64 + ridge ({cfg.ridge_rel:g} s_max)", "f64", FitSpec("paper", ridge=cfg.ridge_rel)),
        ("float64 + eigenvalue clipping", "f64", FitSpec("paper", clip=1.0)),
        ("float64 + affine observable", "f64-affine", FitSpec("paper")),
        ("float64 + affine + float32 cutoff + clipping", "f64-affine", FitSpec("float32", clip=1.0)),
    ]


def run_stabilisation(cfg: Config) -> dict:
    images = load_images("mnist", "replication", cfg.train_subset, cfg.test_subset)
    E = cfg.rep_inits
    net = EnsembleMLP(cfg.mlp_sizes, "relu", E, seed=cfg.seed + 1)
    spec = (cfg.rep_partition,) + ("node",) * (len(cfg.mlp_sizes) - 2)
    partition = make_partition(net.shapes, list(spec))
    S = -(-images.x_train.shape[0] // 64)
    w0, w1 = cfg.rep_window_epochs
    t1, t2 = (w0 - 1) * S + 1, w1 * S
    Ts = [T * S for T in cfg.rep_T_epochs]
    Tmax = max(Ts)
    every = cfg.rep_curve_every
    if any(T % every for T in Ts) or every % cfg.eval_every:
        raise ValueError("rep_curve_every must divide every T (in steps) and be a multiple of eval_every")
    run = train_run(net, images, w1 + max(cfg.rep_T_epochs), None, cfg.eval_every, t1, t2, cfg.seed + 1,
                    "mnist (replication settings)")
    ev = run.evaluate
    window = run.window(t1, t2)
    opt = torch.stack([run.grid[t2 + j][0] for j in range(0, Tmax + 1, every)])
    opt_acc = torch.stack([run.grid[t2 + j][1] for j in range(0, Tmax + 1, every)])
    loss_t2 = run.grid[t2][0]
    variants = rep_variants(cfg)
    families = {"f32": (Identity(), torch.float32), "f64": (Identity(), torch.float64),
                "f32-affine": (parse_observables("affine"), torch.float32),
                "f64-affine": (parse_observables("affine"), torch.float64)}
    rows, curves, radii = [], {"steps": list(range(0, Tmax + 1, every)), "optimizer": opt.T.tolist(),
                               "optimizer_accuracy": opt_acc.T.tolist()}, {}
    for fam, (obs, dtype) in bar(families.items(), desc="stabilisation fits"):
        mine = {name: f for name, fm, f in variants if fm == fam}
        fits, fit_s = fit_variants(partition, window, mine, observables=obs, dtype=dtype)
        for name, fit in fits.items():
            l, a = koopman_curve(fit, window[-1], Tmax, every, ev)
            curves[name] = {"loss": l.T.tolist(), "accuracy": a.T.tolist()}
            rad = torch.cat([r.reshape(E, -1) for r in fit.spectral_radii_], dim=1)
            radii[name] = {"max": rad.amax(1).tolist(), "n_above_1.001": (rad > 1.001).sum(1).tolist(),
                           "quantiles_0.5_0.9_0.99": torch.quantile(rad.double(), torch.tensor(
                               [0.5, 0.9, 0.99], dtype=torch.float64), dim=1).T.tolist()}
            for T in Ts:
                j = T // every
                lk, ak, lo_, ao = l[j], a[j], opt[j], opt_acc[j]
                diverged = ~torch.isfinite(lk) | (lk > 1.5 * loss_t2)
                rows.append({"method": name, "setting": f"{partition.describe()}, window epochs {w0}-{w1}, "
                             f"{'float32' if dtype == torch.float32 else 'float64'} fit",
                             "T_epochs": T // S, "test_loss_koopman_median": _median(lk),
                             "test_accuracy_koopman_median": _median(ak), "test_loss_optimizer_median": _median(lo_),
                             "test_accuracy_optimizer_median": _median(ao),
                             "accuracy_cost_median": _median((ao - ak).nan_to_num(nan=float("nan"))),
                             "loss_ratio_median": _median(lk / lo_), "diverged_fraction": _frac(diverged.numpy()),
                             "max_spectral_radius_median": _median(rad.amax(1)), "fit_seconds_per_network": fit_s})
        del fits
    return {"stabilisation": rows, "stabilisation_curves": curves, "stabilisation_radii": radii,
            "stabilisation_loss_t2_median": _median(loss_t2), "partition": partition.describe(), "steps_per_epoch": S,
            "replication_reported": REPLICATION_REPORTED}


# ------------------------------------------------------------------------------------------
# item 6: Koopman training in cycles
# ------------------------------------------------------------------------------------------
class SegmentTrainer:
    """Adadelta on an ensemble, any number of steps at a time (crossing epochs), each member
    with its own reshuffle every pass over the data (batch 64, last batch shorter).

    The learning rate is ``lr gamma^floor(progress / S)`` with ``progress`` the optimizer steps
    plus the Koopman steps of accepted jumps (:meth:`jumped`), so that after a jump the schedule
    is where the optimizer would have been.
    """

    def __init__(self, net, images: Images, lr: float = 1.0, gamma: float | None = 0.7, batch: int = 64,
                 seed: int = 0):
        self.net, self.images, self.batch = net, images, batch
        self.lr, self.gamma = lr, gamma
        self.opt = torch.optim.Adadelta([net.theta], lr=lr)
        E = net.theta.shape[0]
        self.gens = [torch.Generator().manual_seed(1000 * seed + 500 + e) for e in range(E)]
        self.N = images.x_train.shape[0]
        self.S = -(-self.N // batch)
        self.perm, self.pos, self.progress, self.opt_steps = None, self.N, 0, 0

    def run(self, n: int, on_step=None) -> float:
        """``n`` optimizer steps; returns their seconds (``on_step(theta)`` excluded)."""
        theta, spent = self.net.theta, 0.0
        for _ in range(n):
            s = time.perf_counter()
            if self.pos >= self.N:
                self.perm = torch.stack([torch.randperm(self.N, generator=g) for g in self.gens])
                self.pos = 0
            idx = self.perm[:, self.pos:self.pos + self.batch]
            self.pos += self.batch
            lr = self.lr * (self.gamma ** (self.progress // self.S) if self.gamma else 1.0)
            for g in self.opt.param_groups:
                g["lr"] = lr
            out = self.net.forward(self.images.x_train[idx], theta)
            y = self.images.y_train[idx]
            loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="sum")
            self.opt.zero_grad(set_to_none=True)
            (loss / idx.shape[1]).backward()
            self.opt.step()
            self.progress += 1
            self.opt_steps += 1
            spent += time.perf_counter() - s
            if on_step is not None:
                on_step(theta.detach())
        return spent

    def jumped(self, T: int) -> None:
        self.progress += T


def run_cycles(cfg: Config) -> dict:
    images = load_images("mnist", "paper", cfg.train_subset, cfg.test_subset)
    E = cfg.cyc_inits
    S = -(-images.x_train.shape[0] // 64)
    every = cfg.eval_every
    partition = make_partition(EnsembleMLP(cfg.mlp_sizes, "relu", 1).shapes, paper_partition(cfg))
    total = cfg.cyc_max_epochs * S

    def fresh():
        return EnsembleMLP(cfg.mlp_sizes, "relu", E, seed=cfg.seed + 2)

    # -- the optimizer alone (same inits, same batches), evaluated every `every` steps ---------
    net = fresh()
    ev = make_evaluator(net, images)
    st = SegmentTrainer(net, images, seed=cfg.seed + 2)
    clock, alone = 0.0, []
    l0, sec = _timed(lambda: ev(net.theta)[0])
    clock += sec
    alone.append((0, clock, l0))
    for _ in bar(range(total // every), desc="optimizer alone"):
        clock += st.run(every)
        l, sec = _timed(lambda: ev(net.theta)[0])
        clock += sec
        alone.append((st.progress, clock, l))
    target = next(l for p, _, l in alone if p == cfg.cyc_target_epoch * S)

    # -- cycles ----------------------------------------------------------------------------
    net = fresh()
    ev = make_evaluator(net, images)
    st = SegmentTrainer(net, images, seed=cfg.seed + 2)
    costs = {"training": 0.0, "recording": 0.0, "fitting": 0.0, "jumping": 0.0, "evaluating": 0.0}
    trace = []

    def evaluate_now(kind):
        l, sec = _timed(lambda: ev(net.theta)[0])
        costs["evaluating"] += sec
        trace.append((st.progress, sum(costs.values()), l, kind))
        return l

    evaluate_now("start")
    for _ in range(cfg.cyc_warmup_epochs * S // every):
        costs["training"] += st.run(every)
        evaluate_now("optimizer")
    tried = accepted = 0
    buf = torch.empty(cfg.cyc_record, E, net.n_params, dtype=net.theta.dtype)
    pb = bar(total=total, desc="cycles")
    while st.progress < total:
        pos = [0]

        def record(theta):
            s = time.perf_counter()
            buf[pos[0]] = theta
            pos[0] += 1
            costs["recording"] += time.perf_counter() - s

        done = 0
        while done < cfg.cyc_record:
            n = min(every - st.opt_steps % every, cfg.cyc_record - done)
            costs["training"] += st.run(n, record)
            done += n
            if st.opt_steps % every == 0:
                evaluate_now("optimizer")
        if st.progress + cfg.cyc_T > total:
            break
        before = trace[-1][2] if trace[-1][0] == st.progress else evaluate_now("before jump")
        kp = Koopman(partition, cutoff="float32")
        _, sec = _timed(lambda: kp.fit(buf))
        costs["fitting"] += sec
        theta_new, sec = _timed(lambda: kp.predict(buf[-1], cfg.cyc_T))
        costs["jumping"] += sec
        old = net.theta.detach().clone()
        with torch.no_grad():
            net.theta.copy_(theta_new.to(net.theta.dtype).nan_to_num(nan=0.0))
        l, sec = _timed(lambda: ev(net.theta)[0])
        costs["evaluating"] += sec
        ok = torch.isfinite(l) & (l < before)
        with torch.no_grad():
            net.theta.copy_(torch.where(ok.unsqueeze(-1), net.theta, old))
        tried += E
        accepted += int(ok.sum())
        if bool(ok.any()):
            # one optimizer (one schedule) for the ensemble: a jump kept by any network moves the
            # schedule on; a jump every network rejected costs time but no progress
            st.jumped(cfg.cyc_T)
        trace.append((st.progress, sum(costs.values()), torch.where(ok, l, before), "after jump"))
        pb.update(cfg.cyc_record + (cfg.cyc_T if bool(ok.any()) else 0))
    pb.close()

    def first_hit(points):
        """Per member: (seconds, progress) of the first evaluation at or below the target."""
        secs, prog = [], []
        for e in range(E):
            hit = next(((c, p) for p, c, l, *_ in points if float(l[e]) <= float(target[e])), (None, None))
            secs.append(hit[0] / E if hit[0] is not None else float("nan"))
            prog.append(hit[1] if hit[1] is not None else float("nan"))
        return secs, prog

    a_sec, a_prog = first_hit(alone)
    c_sec, c_prog = first_hit(trace)
    setting = (f"target: the optimizer-alone test loss after epoch {cfg.cyc_target_epoch}; warm-up "
               f"{cfg.cyc_warmup_epochs} epochs; cycles of {cfg.cyc_record} recorded steps + {cfg.cyc_T}-step jump")
    rows = [
        {"method": "adadelta alone", "setting": setting, "target_test_loss_median": _median(target),
         "seconds_to_target_median": _median(a_sec), "reached_fraction": _frac(np.isfinite(a_sec)),
         "steps_to_target_median": _median(a_prog), "jumps_accepted": None, "jumps_tried": None,
         "seconds_training": alone[-1][1] / E, "seconds_recording": 0.0, "seconds_fitting": 0.0,
         "seconds_jumping": 0.0, "seconds_evaluating": None},
        {"method": "cycles: adadelta + Koopman jumps (float32-resolution cutoff)", "setting": setting,
         "target_test_loss_median": _median(target), "seconds_to_target_median": _median(c_sec),
         "reached_fraction": _frac(np.isfinite(c_sec)), "steps_to_target_median": _median(c_prog),
         "jumps_accepted": accepted, "jumps_tried": tried, "seconds_training": costs["training"] / E,
         "seconds_recording": costs["recording"] / E, "seconds_fitting": costs["fitting"] / E,
         "seconds_jumping": costs["jumping"] / E, "seconds_evaluating": costs["evaluating"] / E},
    ]
    curves = {"alone": {"progress": [p for p, *_ in alone], "seconds_per_network": [c / E for _, c, *_ in alone],
                        "loss_median": [_median(l) for *_, l in alone]},
              "cycles": {"progress": [p for p, *_ in trace], "seconds_per_network": [c / E for _, c, *_ in trace],
                         "loss_median": [_median(x[2]) for x in trace], "kind": [x[3] for x in trace]},
              "target_median": _median(target)}
    return {"cycles": rows, "cycle_curves": curves}


# ------------------------------------------------------------------------------------------
# item 7: other networks and data
# ------------------------------------------------------------------------------------------
def _divisor_near(S: int, target: int) -> int:
    divs = [d for d in range(1, S + 1) if S % d == 0]
    return min(divs, key=lambda d: (abs(d - target), d))


def study_network(cfg: Config, label: str, dataset: str, net, images: Images, spec) -> list[dict]:
    E = net.theta.shape[0]
    S = -(-images.x_train.shape[0] // 64)
    every = _divisor_near(S, max(1, S // 7))
    w0, w1 = cfg.other_window_epochs
    t1, t2 = (w0 - 1) * S + 1, w1 * S
    T = cfg.other_T_epochs * S
    partition = make_partition(net.shapes, spec)
    run = train_run(net, images, w1 + cfg.other_T_epochs, 0.7, every, t1, t2, cfg.seed + 3, f"{label}",
                    keep=(t2 + T,))
    window = run.window(t1, t2)
    ref = run.after(t2)
    opt_l, opt_a = run.grid[t2 + T]
    setting = f"window epochs {w0}-{w1}, T = {cfg.other_T_epochs} epochs; {partition.describe()}"
    base = {"network": label, "dataset": dataset, "n_params": net.theta.shape[1], "n_networks": E,
            "setting": setting, "T_epochs": cfg.other_T_epochs, "optimizer_loss_median": _median(opt_l),
            "optimizer_accuracy_median": _median(opt_a)}
    rows = []
    fits, fit_s = fit_variants(partition, window, FITS)
    for name, fit in fits.items():
        p = fit.predict(window[-1], T)
        l, a = run.evaluate(p.to(net.theta.dtype))
        r = teq_over_t(l, ref, every, T)
        rows.append({**base, "method": f"Koopman ({FIT_NAMES[name]})", "loss_median": _median(l),
                     "accuracy_median": _median(a), "teq_over_t_median": _median(r),
                     "success_rate": _frac(np.array(r) > 0),
                     "max_spectral_radius_median": _median(fit.spectral_radius_),
                     "weight_error_median": _median(rel_error(p, run.snap(t2 + T), run.snap(t2))),
                     "fit_seconds_per_network": fit_s})
    del fits
    p = linear_extrapolation(window, T)
    l, a = run.evaluate(p.to(net.theta.dtype))
    r = teq_over_t(l, ref, every, T)
    rows.append({**base, "method": "linear extrapolation (whole window)", "loss_median": _median(l),
                 "accuracy_median": _median(a), "teq_over_t_median": _median(r), "success_rate": _frac(np.array(r) > 0),
                 "max_spectral_radius_median": None,
                 "weight_error_median": _median(rel_error(p, run.snap(t2 + T), run.snap(t2))),
                 "fit_seconds_per_network": None})
    rows.append({**base, "method": "adadelta (continued)", "loss_median": _median(opt_l),
                 "accuracy_median": _median(opt_a), "teq_over_t_median": 1.0, "success_rate": 1.0,
                 "max_spectral_radius_median": None, "weight_error_median": 0.0,
                 "fit_seconds_per_network": None})
    del run
    return rows


def run_networks(cfg: Config) -> dict:
    rows = []
    mnist = load_images("mnist", "paper", cfg.train_subset, cfg.test_subset)
    wide = EnsembleMLP(cfg.wide_sizes, "relu", cfg.wide_inits, seed=cfg.seed + 4)
    spec = [f"quasi_node:{cfg.layer1_q}"] + ["node"] * (len(cfg.wide_sizes) - 2)
    rows += study_network(cfg, "wider MLP " + ":".join(map(str, cfg.wide_sizes)), "MNIST", wide, mnist, spec)
    cnn_images = load_images("mnist", "paper", cfg.cnn_train_subset or cfg.train_subset, cfg.test_subset)
    cnn = EnsembleCNN(tuple(cfg.cnn_channels), n_members=cfg.cnn_inits, seed=cfg.seed + 5)
    rows += study_network(cfg, f"CNN conv{cfg.cnn_channels[0]}-conv{cfg.cnn_channels[1]}-fc", "MNIST"
                          + (f" (first {cfg.cnn_train_subset} training images)" if cfg.cnn_train_subset else ""),
                          cnn, cnn_images, "node")
    fashion = load_images("fashion-mnist", "dataset", cfg.train_subset, cfg.test_subset)
    small = EnsembleMLP(cfg.mlp_sizes, "relu", cfg.fashion_inits, seed=cfg.seed + 6)
    rows += study_network(cfg, "paper MLP " + ":".join(map(str, cfg.mlp_sizes)),
                          f"Fashion-MNIST (normalised {fashion.normalize})", small, fashion, paper_partition(cfg))
    return {"networks": rows}


# ------------------------------------------------------------------------------------------
# the experiment
# ------------------------------------------------------------------------------------------
ITEMS = ("de", "mnist", "stabilisation", "cycles", "networks")


def run(cfg: Config) -> dict:
    bad = [i for i in cfg.items if i not in ITEMS]
    if bad:
        raise ValueError(f"unknown items {bad}; choose from {ITEMS}")
    torch.manual_seed(cfg.seed)
    out: dict = {"baselines": [], "window_heatmap": [], "window_choice": [], "stabilisation": [],
                 "observables": [], "cycles": [], "networks": [], "item_seconds": {},
                 "item_cpu_seconds": {}}
    with torch_threads(cfg.torch_threads):
        for item in cfg.items:
            _run_item(cfg, item, out)
    out["threads"] = cfg.torch_threads or torch.get_num_threads()
    return out


def _run_item(cfg: Config, item: str, out: dict) -> None:
    """Run one item and merge its rows into ``out`` (wall and process CPU seconds recorded)."""
    start, cpu = time.perf_counter(), time.process_time()
    if item == "de":
        res = run_de(cfg)
        for k in ("baselines", "window_heatmap", "window_choice", "observables"):
            out[k] += res.pop(k)
        out["de"] = res
    elif item == "mnist":
        res = run_mnist(cfg)
        for k in ("baselines", "window_heatmap", "window_choice", "observables"):
            out[k] += res.pop(k)
        out["mnist"] = res
    elif item == "stabilisation":
        res = run_stabilisation(cfg)
        out["stabilisation"] = res.pop("stabilisation")
        out["stabilisation_details"] = res
    elif item == "cycles":
        res = run_cycles(cfg)
        out["cycles"] = res["cycles"]
        out["cycle_curves"] = res["cycle_curves"]
    else:
        out["networks"] = run_networks(cfg)["networks"]
    out["item_seconds"][item] = time.perf_counter() - start
    out["item_cpu_seconds"][item] = time.process_time() - cpu
