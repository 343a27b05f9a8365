"""Data and training of the MNIST experiment: the images, the networks of each init, the
training conditions (normalisation, StepLR), one trained and recorded group of inits, and the
step layout every study shares (:class:`Setup`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.partition import Partition, make_partition
from koopman_lib.recorder import TrajectoryRecorder
from koopman_lib.seeds import network_seed, shuffle_seed
from ..images import PAPER_NORMALIZE, Images, Run, make_evaluator, normalise, raw_images, train_run
from .config import DTYPES, Config


@dataclass
class Data:
    """Raw MNIST in [0, 1] (float32) plus labels, normalised on request."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    raw_train: np.ndarray  # uint8 (N, 28, 28), for the paper-style (per-sample transform) loop

    @classmethod
    def load(cls, train_subset=None, test_subset=None) -> "Data":
        from koopman_lib.data import FILES, locate, read_idx
        xtr, ytr, xte, yte = raw_images("mnist")
        raw = read_idx(locate(FILES["train"][0]))
        if train_subset:
            xtr, ytr, raw = xtr[:train_subset], ytr[:train_subset], raw[:train_subset]
        if test_subset:
            xte, yte = xte[:test_subset], yte[:test_subset]
        return cls(xtr, ytr, xte, yte, raw)

    def normalized(self, normalize, dtype=torch.float32):
        return normalise(self.x_train, normalize).to(dtype), normalise(self.x_test, normalize).to(dtype)


def member_seeds(cfg: Config, i: int) -> tuple[int, int]:
    """(init seed, shuffle seed) of init ``i``: the same in every training condition, so the
    paper run, the replication run and the ablation runs of init ``i`` are paired."""
    return network_seed(cfg.seed, i), shuffle_seed(cfg.seed, i)


def make_net(cfg: Config, ids: list[int]) -> EnsembleMLP:
    dtype = DTYPES[cfg.train_dtype]
    return EnsembleMLP(cfg.sizes, cfg.activation, len(ids), dtype=dtype,
                       seeds=[member_seeds(cfg, i)[0] for i in ids])


@dataclass(frozen=True)
class Condition:
    """A training condition: input normalisation and StepLR factor (``None``: constant lr)."""

    normalize: tuple
    gamma: float | None

    @property
    def name(self) -> str:
        norm = "norm 0.1307/0.3081" if tuple(self.normalize) == PAPER_NORMALIZE else \
            f"norm {self.normalize[0]}/{self.normalize[1]}"
        return f"{norm}, " + (f"StepLR {self.gamma}" if self.gamma else "no StepLR")


def tracked_coordinates(sh) -> list[tuple[str, int]]:
    """A few weights and biases shown in the trajectory figure (Fig. 3b): ``(label, index)`` in the
    flat parameters of a network with layers ``sh`` (``EnsembleMLP.shapes``)."""
    off = [0]
    for s in sh:
        off.append(off[-1] + s.size)
    centre = min(14 * 28 + 14, sh[0].fan_in - 1)
    return [
        (f"layer 1, node 0, weight from pixel {centre}", off[0] + 0 * sh[0].row + centre),
        ("layer 1, node 3, bias", off[0] + 3 * sh[0].row + sh[0].fan_in),
        ("layer 2, node 5, weight 7", off[1] + 5 * sh[1].row + 7),
        ("layer 3, node 2, bias", off[2] + 2 * sh[2].row + sh[2].fan_in),
        ("output, node 4, weight 10", off[3] + 4 * sh[3].row + 10),
    ]


class Tracker:
    """Per-step callback: the coordinates ``coords`` of member 0 after steps ``first..last``,
    ``values`` ``(last - first + 1, len(coords))`` (float64)."""

    def __init__(self, coords: list[int], first: int, last: int):
        self.coords, self.first = torch.tensor(coords), first
        self.values = torch.empty(last - first + 1, len(coords), dtype=torch.float64)

    def __call__(self, step: int, theta: torch.Tensor) -> None:
        if self.first <= step < self.first + self.values.shape[0]:
            self.values[step - self.first] = theta[0, self.coords]


def recorded_steps(cfg: Config, S: int) -> tuple[int, int]:
    """The steps every training run stores: after every step of ``cfg.window_epochs`` and of the
    replication's ``cfg.replication_window_epochs`` (``S`` steps per epoch)."""
    first = min(cfg.window_epochs[0], cfg.replication_window_epochs[0])
    last = max(cfg.window_epochs[1], cfg.replication_window_epochs[1])
    return (first - 1) * S + 1, last * S


def train_group(cfg: Config, cond: Condition, ids: list[int], data: Data, epochs: int,
                grid_from: int, grid_to: int, on_step=None, desc: str = "", first: int | None = None,
                head_members: int = 0, on_epoch=None) -> Run:
    """Train inits ``ids`` under ``cond`` for ``epochs`` epochs (:func:`.images.train_run`); record
    (stored, train dtype) the weights after every step of :func:`recorded_steps` (from step ``first``
    on if given; the first ``head_members`` members also from :func:`recorded_steps`' first step,
    in ``Run.head``, which ``Run.subset`` joins); evaluate the test set after every ``eval_every``-th
    step from ``grid_from`` to ``grid_to`` and at every epoch end (and at step 0); ``on_step(step,
    theta)`` with the initial weights (step 0) and after every step; ``on_epoch(trainer)`` after every
    epoch (:class:`.null.NullBranch`). The run keeps the test images only (its fits never need the training
    images, and a normalised copy of them is 188 MB)."""
    xtr, xte = data.normalized(cond.normalize, DTYPES[cfg.train_dtype])
    images = Images(xtr, data.y_train, xte, data.y_test, tuple(cond.normalize))
    S = -(-xtr.shape[0] // cfg.batch_size)
    net = make_net(cfg, ids)
    lo, hi = recorded_steps(cfg, S)
    head = None
    if first is not None and first > lo:
        if head_members:
            head = TrajectoryRecorder(net.theta.shape[1], lo, first - 1, batch_shape=(head_members,),
                                      dtype=net.theta.dtype)
        lo = first
    if on_step is not None:
        on_step(0, net.theta)
    steps = on_step
    if head is not None:
        def steps(step, theta):
            head(step, theta[:head_members])
            if on_step is not None:
                on_step(step, theta)
    run = train_run(net, images, epochs, cond.gamma, cfg.eval_every, lo, hi, cfg.seed,
                    desc or cond.name, cfg.lr, members=ids, batch_size=cfg.batch_size, eval_span=(grid_from, grid_to),
                    on_step=steps, on_epoch=on_epoch)
    run.images = Images(xtr.new_empty((0, xtr.shape[1])), data.y_train[:0], xte, data.y_test, tuple(cond.normalize))
    run.evaluate = make_evaluator(net, run.images)   # the same test images; train_run's held the training copy
    run.head = None if head is None else head.snapshots
    return run



def optimizer_curve(run: Run, t2: int, T: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """The optimizer's test losses and accuracies ``(n, E)`` at the steps ``0, every, .., T`` after ``t2``."""
    return list(range(0, T + 1, run.every)), run.curve(t2, T), run.curve_acc(t2, T)


def comparison_epochs(cfg: Config) -> int:
    """Epochs a run of the replication or the ablation trains: to the later window's end plus the
    longer horizon of the paper's and the replication's."""
    return max(cfg.window_epochs[1], cfg.replication_window_epochs[1]) + \
        max(cfg.T_epochs, max(cfg.replication_T_epochs))


def window_len(cfg, S) -> int:
    """Snapshots in the paper's recorded window (``S`` steps per epoch)."""
    return (cfg.window_epochs[1] - cfg.window_epochs[0] + 1) * S


@dataclass
class Setup:
    """What every study of one run shares: the data, the layer shapes, the paper's partition and
    condition, and the step layout (``S`` steps per epoch, ``t2`` the end of the paper's window,
    ``T`` the paper's horizon, ``H`` the longest horizon, the test-loss grid ``grid_from..grid_to``,
    ``after`` the optimizer epochs after ``t2``)."""

    data: Data
    shapes: list
    partition: Partition
    paper_cond: Condition
    S: int
    t2: int
    T: int
    H: int
    grid_from: int
    grid_to: int
    after: int

    @classmethod
    def make(cls, cfg: Config) -> "Setup":
        data = Data.load(cfg.train_subset, cfg.test_subset)
        shapes = EnsembleMLP(cfg.sizes, cfg.activation, 1).shapes
        S = -(-data.x_train.shape[0] // cfg.batch_size)
        t2, H = cfg.window_epochs[1] * S, max(cfg.horizons_epochs) * S   # every fit is evolved to the longest horizon
        rep_t2 = cfg.replication_window_epochs[1] * S
        return cls(data, shapes, make_partition(shapes, list(cfg.partition)),
                   Condition(tuple(cfg.normalize), cfg.gamma), S, t2, cfg.T_epochs * S, H, min(t2, rep_t2), max(t2 + H, rep_t2 + max(cfg.replication_T_epochs) * S),
                   cfg.epochs - cfg.window_epochs[1])

    def partition_of(self, spec) -> Partition:
        """The partition of these layers for the per-layer ``spec`` (e.g. ``("layer",) * 4``)."""
        return make_partition(self.shapes, list(spec))
