"""The image classifiers shared by the MNIST experiment and "Beyond the paper".

- Data: the image data sets they train on (MNIST, Fashion-MNIST), pixels in [0, 1] read (and
  checksum-verified) once per process (:func:`raw_images`), the two input normalisations the book
  compares, and a normalised train/test pair (:class:`Images`, :func:`load_images`).
- Training with a recorded trajectory: :func:`train_run` trains an ensemble (Adadelta, StepLR,
  batch 64 by default; each member shuffles with its own seed, :func:`shuffle_seed`), stores the weights
  after every step of a window and evaluates the test set on a grid of steps; it returns a
  :class:`Run` (snapshots, test losses and accuracies, optimizer seconds per step).
- Evaluation: :func:`make_evaluator` ``theta -> (test loss, test accuracy)``.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from koopman_lib.data import load_mnist
from koopman_lib.ensembles import evaluate
from koopman_lib.progress import bar
from koopman_lib.recorder import TrajectoryRecorder
from koopman_lib.seeds import shuffle_seed
from koopman_lib.training import EnsembleTrainer

#: (mean, std) of the PyTorch MNIST example, which the paper used
PAPER_NORMALIZE = (0.1307, 0.3081)
#: (mean, std) of the replication (Rao 2024)
REPLICATION_NORMALIZE = (0.5, 0.5)


@functools.lru_cache(maxsize=2)
def raw_images(dataset: str = "mnist") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train (60000, 784), y_train, x_test (10000, 784), y_test)``, pixels in [0, 1] (float32).
    Cached: treat the tensors as read-only."""
    xtr, ytr = load_mnist("train", dataset=dataset, normalize=None)
    xte, yte = load_mnist("test", dataset=dataset, normalize=None)
    return xtr, ytr, xte, yte


def normalise(x: torch.Tensor, normalize: tuple) -> torch.Tensor:
    """``(x - mean) / std`` for ``normalize = (mean, std)``."""
    m, s = normalize
    return (x - m) / s


@dataclass
class Images:
    """Normalised training and test images ``(N, 784)`` with their labels; ``normalize`` = (mean, std)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    normalize: tuple


def load_images(dataset: str = "mnist", normalize="paper", train_subset: int | None = None,
                test_subset: int | None = None) -> Images:
    """``normalize``: ``"paper"`` (0.1307/0.3081), ``"replication"`` (0.5/0.5), ``"dataset"``
    (mean and std of the training images) or a ``(mean, std)`` pair."""
    xtr, ytr, xte, yte = raw_images(dataset)
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
    return Images(normalise(xtr, (m, s)), ytr, normalise(xte, (m, s)), yte, (round(m, 4), round(s, 4)))


def make_evaluator(net, images: Images):
    """``theta (E, D) -> (test loss (E,), test accuracy (E,))``; ``nan`` for non-finite members."""
    return lambda theta: evaluate(net, images.x_test, images.y_test, theta.detach())


def release_memory() -> None:
    """Free what reference cycles hold and hand the freed heap back to the system (glibc keeps it
    otherwise, and the resident memory, what Binder limits, stays at its high-water mark) between
    the stages of an experiment. Changes no result."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


# ------------------------------------------------------------------------------------------
# training with a recorded trajectory
# ------------------------------------------------------------------------------------------
@dataclass
class Run:
    """A trained ensemble: snapshots after steps ``lo..lo + k - 1`` ``(k, E, D)`` (the training
    dtype), the test loss and accuracy ``grid[step] = (loss (E,), acc (E,))`` at the evaluated
    steps (multiples of ``every``), the weights after the steps of ``keep`` in ``kept``, and the
    optimizer seconds per ensemble step with the recording, evaluations and callbacks excluded."""

    net: object
    images: Images
    S: int                              # steps per epoch
    lo: int
    snaps: torch.Tensor
    grid: dict
    every: int
    step_seconds: float
    evaluate: Callable
    kept: dict = field(default_factory=dict)
    # the weights after the ``head.shape[0]`` steps before ``lo`` of the first ``head.shape[1]``
    # members only (``(h, n, D)``), when only they need the longer window: :meth:`subset` joins them
    head: torch.Tensor | None = None

    @property
    def E(self) -> int:
        return self.snaps.shape[1]

    def snap(self, step: int) -> torch.Tensor:
        """The weights ``(E, D)`` after step ``step`` (stored or kept)."""
        if step in self.kept:
            return self.kept[step]
        if not self.lo <= step < self.lo + self.snaps.shape[0]:
            raise ValueError(f"step {step} was not stored")
        return self.snaps[step - self.lo]

    def window(self, t1: int, t2: int) -> torch.Tensor:
        """Snapshots after steps ``t1..t2`` ``(t2 - t1 + 1, E, D)`` (a view)."""
        if t1 < self.lo or t2 > self.lo + self.snaps.shape[0] - 1:
            raise ValueError(f"steps {t1}..{t2} are outside the stored {self.lo}..{self.lo + self.snaps.shape[0] - 1}")
        return self.snaps[t1 - self.lo: t2 - self.lo + 1]

    def epoch_window(self, e0: int, e1: int) -> tuple[int, int]:
        """Steps of 'after every step of epochs e0..e1' (1-based): ``((e0-1) S + 1, e1 S)``."""
        return (e0 - 1) * self.S + 1, e1 * self.S

    def loss_at(self, step: int) -> torch.Tensor:
        return self.grid[step][0]

    def epoch_losses(self, epochs: int) -> torch.Tensor:
        """``(epochs + 1, E)`` test losses at the end of epochs 0..epochs."""
        return torch.stack([self.grid[e * self.S][0] for e in range(epochs + 1)])

    def curve(self, t2: int, T: int) -> torch.Tensor:
        """Optimizer test losses at ``t2, t2 + every, ..`` up to ``t2 + T`` ``(T/every + 1, E)``."""
        return torch.stack([self.grid[t2 + j][0] for j in range(0, T + 1, self.every)])

    def curve_acc(self, t2: int, T: int) -> torch.Tensor:
        return torch.stack([self.grid[t2 + j][1] for j in range(0, T + 1, self.every)])

    def after(self, t2: int) -> torch.Tensor:
        """All optimizer test losses from ``t2`` on (every ``every`` steps), ``(n, E)``."""
        last = max(self.grid)
        return torch.stack([self.grid[s][0] for s in range(t2, last + 1, self.every)])

    def subset(self, n: int) -> "Run":
        """The first ``n`` members as a run of their own (views, no copies; with :attr:`head`, when it
        covers them, one copy of their snapshots from the head's first step on)."""
        lo, snaps = self.lo, self.snaps[:, :n]
        if self.head is not None and n <= self.head.shape[1]:
            lo, snaps = self.lo - self.head.shape[0], torch.cat([self.head[:, :n], snaps])
        return Run(self.net, self.images, self.S, lo, snaps,
                   {s: (l[:n], a[:n]) for s, (l, a) in self.grid.items()}, self.every, self.step_seconds,
                   self.evaluate, {s: w[:n] for s, w in self.kept.items()})

    @staticmethod
    def join(runs: list["Run"]) -> "Run":
        """Runs of consecutive chunks of networks (same network, data, steps and grid), without their
        snapshots, as one run of them all: test losses, accuracies and kept weights joined in network
        order, the first run's settings and step time."""
        if len(runs) == 1:
            return runs[0]
        first = runs[0]
        return replace(first, snaps=first.snaps.new_empty((0, sum(q.E for q in runs)) + first.snaps.shape[2:]),
                       grid={s: tuple(torch.cat([q.grid[s][i] for q in runs]) for i in (0, 1)) for s in first.grid},
                       kept={s: torch.cat([q.kept[s] for q in runs]) for s in first.kept}, head=None)

    def without_snapshots(self) -> "Run":
        """The same run with no stored snapshots (test losses, accuracies and kept weights only), so
        that what is left of it after its fits does not keep its recording in memory."""
        return Run(self.net, self.images, self.S, self.lo, self.snaps.new_empty((0,) + self.snaps.shape[1:]),
                   self.grid, self.every, self.step_seconds, self.evaluate, self.kept)


def train_run(net, images: Images, epochs: int, gamma, every: int, lo: int, hi: int, seed: int,
              desc: str = "training", lr: float = 1.0, keep=(), members=None, batch_size: int = 64,
              eval_span: tuple[int, int] | None = None,
              on_step: Callable[[int, torch.Tensor], None] | None = None,
              on_epoch: Callable[[EnsembleTrainer], None] | None = None) -> Run:
    """Train ``net`` (Adadelta, lr ``lr``, StepLR ``gamma`` per epoch, batch ``batch_size``) for ``epochs``
    epochs on the fast ensemble loop; member ``e`` shuffles with ``shuffle_seed(seed, members[e])``
    (``members``: default ``0..E-1``). Stores the weights (training dtype) after steps ``lo..hi``
    (step 0 too when ``lo`` is 0), and after each step in ``keep`` (``Run.kept``); evaluates the
    test set at step 0, at every epoch end and after every ``every``-th step (within ``eval_span``
    ``(first, last)`` if given); calls ``on_step(step, theta)`` after every step and
    ``on_epoch(trainer)`` after every epoch (the :class:`~koopman_lib.training.EnsembleTrainer`
    itself, e.g. to :meth:`~koopman_lib.training.EnsembleTrainer.branch` from its state). The time
    spent recording, evaluating and in ``on_step`` and ``on_epoch`` is not counted in
    ``Run.step_seconds``."""
    E = net.theta.shape[0]
    members = range(E) if members is None else members
    tr = EnsembleTrainer(net, images.x_train, images.y_train, batch_size, "adadelta", lr, gamma,
                         member_seeds=[shuffle_seed(seed, i) for i in members])
    S = tr.steps_per_epoch
    if S % every:
        raise ValueError(f"eval_every={every} must divide the {S} steps of an epoch")
    hi = min(hi, epochs * S)
    lo = max(lo, 0)
    rec = TrajectoryRecorder(net.theta.shape[1], lo, hi, batch_shape=(E,), dtype=net.theta.dtype)
    evaluate = make_evaluator(net, images)
    first, last = eval_span or (0, epochs * S)
    grid = {0: evaluate(net.theta)}
    rec(0, net.theta)                           # step 0 is stored when the window starts there
    overhead = 0.0
    kept = {}

    def after_step(step, theta):
        nonlocal overhead
        s = time.perf_counter()
        rec(step, theta)
        if step in keep:
            kept[step] = theta.clone()
        if on_step is not None:
            on_step(step, theta)
        if step % S == 0 or (step % every == 0 and first <= step <= last):
            grid[step] = evaluate(theta)
        overhead += time.perf_counter() - s

    total = 0.0
    for _ in bar(range(epochs), desc=desc):
        total += tr.run_epoch(after_step).seconds
        if on_epoch is not None:
            on_epoch(tr)
    step_seconds = (total - overhead) / (epochs * S)
    return Run(net, images, S, lo, rec.snapshots, grid, every, step_seconds, evaluate, kept)
