"""What the studies of :mod:`koopman_repro.experiments.beyond` share: the configuration and its
profiles, small helpers (medians, timings, ``T_eq/T``, weight errors), the image classifiers' data,
training with a recorded trajectory (:class:`Run`, :func:`train_run`) and evaluation (defined in
:mod:`koopman_repro.experiments.images`, which the MNIST experiment shares, and re-exported here), the
test loss along a Koopman path, the paper's MNIST partition and the two fits of the paper-settings
studies, and the NN DE solver's recorded run (:class:`DeRun`) with the two runs' windows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from koopman_lib.baselines import line_fit
from koopman_lib.estimator import Koopman
from koopman_lib.fit import FitSpec
from koopman_lib.metrics import t_eq_parts
from .. import images as _images
from ..images import PAPER_NORMALIZE, REPLICATION_NORMALIZE, Images, Run, make_evaluator, train_run  # noqa: F401



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
    de_observables: tuple = ("identity", "affine", "delay:2", "delay:4", "poly:2:x", "state")  # "state": the
    #                                     weights and Adadelta's state (observables.STATE)
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
    replication_window_epochs: tuple = (4, 5)  # the replication's notebook's t1, t2 = 3, 5 (0-indexed): weights after
                                               # every step of epochs 4-5, Koopman training from the end of the 5th
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
    cyc_variants: tuple = ("weights", "weights + optimizer state")  # what a jump carries (cycles.VARIANTS):
    #                                     the weights alone, or the weights and Adadelta's state (issue 25)
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
    networks: tuple[int, ...] | None = None  # None: every network of every study; else network i of every
    #                                     study that has at least i + 1 networks, alone (the regeneration
    #                                     check reruns a few: a network is its own seed, study_networks)


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
        de_observables=("identity", "affine", "delay:2", "poly:2:x", "state"),
        mnist_inits=2, mnist_epochs=7, eval_every=67, mnist_baselines=(("adam", 1e-3), ("sgd_momentum", 1e-2)),
        lbfgs_steps=60, heat_starts=(2, 3), heat_lengths=(0.5, 1), mnist_observables=("identity", "affine"),
        obs_members=None, rep_inits=1, rep_partition="quasi_node:157", rep_curve_every=469,
        cyc_inits=2, cyc_warmup_epochs=1, cyc_target_epoch=4, cyc_max_epochs=5,
        # the state cycles at paper / full only: at ci they took 249 s (against 28 s for the weights-only
        # cycles) and peaked at 2.85 GiB (Binder's limit is 2): the augmented blocks of 471 observables
        # exceed the cycle's 469 snapshots, and their low-rank fits and jumps are slow
        cyc_variants=("weights",),
        other_epochs=3, other_window_epochs=(2, 2), other_T_epochs=1, wide_inits=1, cnn_inits=1,
        cnn_train_subset=15000, fashion_inits=2),
}


# ------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------
def _frac(mask) -> float:
    m = np.asarray(mask, dtype=bool).ravel()
    return float(m.mean()) if m.size else float("nan")


def _timed(fn):
    s = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - s


def study_networks(cfg: Config, n: int) -> list[int]:
    """The networks a study of ``n`` networks trains: ``0..n-1``, or those of ``cfg.networks``
    below ``n``. Network ``i`` of a study seeded ``s`` draws its initial weights from
    ``network_seed(s, i)`` and its data order from ``shuffle_seed(s', i)`` (the study's seeds), so
    it is the same network whichever others are trained beside it."""
    return list(range(n)) if cfg.networks is None else [i for i in cfg.networks if i < n]


def per_network(networks: list[int], prefix: str, values: dict) -> dict[int, dict[str, float]]:
    """Check values ``{network: {prefix + key: value}}`` from ``values`` ``{key: one value per
    network, in the order of networks}``."""
    out: dict[int, dict[str, float]] = {i: {} for i in networks}
    for key, vals in values.items():
        for i, v in zip(networks, torch.as_tensor(vals, dtype=torch.float64).reshape(-1).tolist(), strict=True):
            out[i][prefix + key] = v
    return out


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


#: float64 bytes of the last ``L`` snapshots that :func:`line_fit_chunked` hands the core's line fit at
#: a time (it converts what it is given to float64 and centres it: two copies)
LINE_FIT_BYTES = 1e8


def line_fit_chunked(window: torch.Tensor, L: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`koopman_lib.baselines.line_fit` of ``window`` ``(k, E, D)``, network by network and
    ``LINE_FIT_BYTES`` of coordinates at a time: ``(level, slope)`` ``(E, D)``. Each weight's line is
    its own, so the values are those of one call on the whole window (bit for bit on one thread,
    tested) without its two float64 copies of the whole window (the ci run's peak); network ``i``'s
    values do not depend on the others (the batched fit sums in an order that depends on how many
    networks share the batch on more threads)."""
    k, E, D = window.shape
    c = max(1, int(LINE_FIT_BYTES // (8 * (k if L is None else L))))
    fits = [[line_fit(window[:, e:e + 1, a:a + c], L) for a in range(0, D, c)] for e in range(E)]
    return tuple(torch.cat([torch.cat([f[j] for f in row], dim=-1) for row in fits]) for j in (0, 1))


def extrapolate(window: torch.Tensor, T: int, L: int | None = None) -> torch.Tensor:
    """:func:`koopman_lib.baselines.linear_extrapolation` of ``window`` ``(k, E, D)`` (``level + T
    slope``), from :func:`line_fit_chunked`."""
    if not isinstance(T, int) or T < 0:
        raise ValueError(f"T must be a non-negative integer, got {T!r}")
    level, slope = line_fit_chunked(window, L)
    return level + T * slope


def load_images(dataset: str = "mnist", normalize="paper", train_subset: int | None = None,
                test_subset: int | None = None) -> Images:
    """:func:`koopman_repro.experiments.images.load_images`, then the process's cache of raw pixels
    (:func:`~koopman_repro.experiments.images.raw_images`) emptied: a study holds its normalised copy
    only (0.22 GB less for MNIST beside it), each study reading the files again (under a second)."""
    out = _images.load_images(dataset, normalize, train_subset, test_subset)
    _images.raw_images.cache_clear()
    return out


def rel_error(pred: torch.Tensor, true_end: torch.Tensor, true_start: torch.Tensor) -> torch.Tensor:
    """``||pred - w(t2+T)|| / ||w(t2+T) - w(t2)||`` per member ``(E,)`` (``inf`` if not finite)."""
    pred, true_end, true_start = (x.double() for x in (pred, true_end, true_start))
    err = (pred - true_end).norm(dim=-1) / (true_end - true_start).norm(dim=-1)
    return torch.where(torch.isfinite(err), err, torch.full_like(err, float("inf")))


# ------------------------------------------------------------------------------------------
# image classifiers: the test loss along a Koopman path (data, training and evaluation: ..images)
# ------------------------------------------------------------------------------------------
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
# the paper's settings (items 1, 2, 3, 5): the two recorded runs, their windows, partition and fits
# ------------------------------------------------------------------------------------------
@dataclass
class DeRun:
    """The NN DE solver's recorded run: float64 snapshots after steps ``lo..de_steps`` ``(n, E,
    D)``, the training losses ``(de_steps + 1, E)`` (``losses[t]`` = loss of ``w(t)``), the
    optimizer's seconds per ensemble step and ``loss_fn(theta (E, D)) -> (E,)``."""

    problem: object
    partition: object
    losses: torch.Tensor
    snaps: torch.Tensor
    lo: int
    step_seconds: float
    loss_fn: object

    @property
    def E(self) -> int:
        return self.snaps.shape[1]

    def snap(self, t: int) -> torch.Tensor:
        return self.snaps[t - self.lo]

    def window(self, t1: int, t2: int) -> torch.Tensor:
        """Snapshots after steps ``t1..t2`` ``(t2 - t1 + 1, E, D)`` (a view)."""
        return self.snaps[t1 - self.lo: t2 - self.lo + 1]


def de_schedule(cfg: Config) -> tuple[int, int, int, str]:
    """The NN DE solver's window ``t1..t2``, ``T`` (steps) and the ``setting`` of its rows."""
    t1, t2, T = cfg.de_t1, cfg.de_t2, cfg.de_T
    return t1, t2, T, f"window {t1}-{t2}, T = {T} steps"


def mnist_schedule(cfg: Config, S: int) -> tuple[int, int, int, str]:
    """MNIST at the paper's settings (``S`` steps per epoch): the window ``t1..t2`` (after every
    step of epochs ``window_epochs``), ``T`` (steps) and the ``setting`` of its rows."""
    T = cfg.T_epochs * S
    t1, t2 = (cfg.window_epochs[0] - 1) * S + 1, cfg.window_epochs[1] * S
    return t1, t2, T, f"window epochs {cfg.window_epochs[0]}-{cfg.window_epochs[1]}, T = {cfg.T_epochs} epochs"


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
