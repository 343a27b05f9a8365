"""A fast training loop for ensembles of independent MLPs on preloaded tensors.

The ``E`` members of a :class:`koopman_lib.ensembles.EnsembleMLP` share one flat parameter
leaf ``theta`` ``(E, D)``. Every step draws, for each member, its own minibatch by an
index gather from tensors already in memory (no ``DataLoader``, no per-sample
transforms, no ``.item()`` calls), sums the members' mean losses (so each member gets
exactly its own gradient) and takes one optimizer step on ``theta``. With an
elementwise optimizer (Adadelta, Adam, Adagrad, SGD without weight decay coupling
across members) this is exactly ``E`` independent training runs, each with its own
shuffle of the data every epoch.

API (stable; other modules import it):

- :class:`EnsembleTrainer` ``(net, x, y, batch_size=64, optimizer="adadelta", lr=1.0,
  gamma=None, seed=0, loss="cross_entropy", optimizer_kwargs=None, drop_last=False,
  member_seeds=None)``:
  resumable state (optimizer, one shuffle generator per member, ``step``, ``epoch``);
  :meth:`EnsembleTrainer.run_epoch` ``(on_step=None) -> EpochStats`` and
  :meth:`EnsembleTrainer.train` ``(epochs, on_step=None, on_epoch=None) -> list[EpochStats]``.
- :func:`train_epochs` ``(net, x, y, epochs, ...) -> (EnsembleTrainer, list[EpochStats])``:
  the one-call form.
- :func:`evaluate` ``(net, x, y, theta=None, batch_size=10000, loss="cross_entropy")
  -> (loss (E,), acc (E,))``: test loss (summed over samples, divided by ``N``, as the
  PyTorch MNIST example) and accuracy, batched over members, without autograd.
- :func:`ensemble_forward` ``(net, x, theta) -> (E, B, out)``: the forward pass with a
  shared input computed as one GEMM for the first layer.
- :func:`make_optimizer` ``(name, params, lr, **options)``.

``on_step(step, theta)`` is called after every optimizer step with the global step
count (1-based, counted over all epochs run by this trainer) and the detached ``theta``
``(E, D)``; :class:`koopman_lib.TrajectoryRecorder` instances can be passed directly.
``gamma`` is the StepLR factor applied once per epoch: epoch ``e`` (1-based) runs with
learning rate ``lr * gamma**(e-1)`` (``None`` or ``1`` switches the decay off).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .ensembles import LOSSES, EnsembleMLP, _loss_sum, ensemble_forward
from .seeds import shuffle_seeds

#: optimizer name -> (torch class, the options it takes besides ``lr``)
OPTIMIZERS = {
    "adadelta": (torch.optim.Adadelta, ("rho", "eps")),
    "adam": (torch.optim.Adam, ("betas", "eps")),
    "adagrad": (torch.optim.Adagrad, ("eps",)),
    "sgd": (torch.optim.SGD, ()),
    "sgd_momentum": (torch.optim.SGD, ("momentum",)),
}

StepCallback = Callable[[int, torch.Tensor], None]


def make_optimizer(name, params, lr: float = 1.0, **options) -> torch.optim.Optimizer:
    """The one optimizer factory: ``torch.optim`` optimizer ``name`` (:data:`OPTIMIZERS`) with
    ``lr`` and its own ``options`` (``None`` values are left at torch's defaults; ``sgd_momentum``
    is SGD with ``momentum``, default 0.9). On an ensemble leaf ``(E, D)`` every elementwise
    optimizer is exactly ``E`` independent runs. ``name`` may also be a callable
    ``(params, lr=..., **options) -> Optimizer``.
    """
    if callable(name):
        return name(params, lr=lr, **options)
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)} or pass a callable")
    cls, allowed = OPTIMIZERS[name]
    options = {k: v for k, v in options.items() if v is not None}
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise ValueError(f"optimizer {name!r} takes {list(allowed) or 'no options'} besides lr, not {extra}")
    if name == "sgd_momentum":
        options.setdefault("momentum", 0.9)
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    return cls(params, lr=lr, **options)


@dataclass
class EpochStats:
    """One epoch of an ensemble: ``epoch`` (1-based), ``steps`` taken, wall ``seconds``,
    the learning rate used, and the members' mean training loss ``train_loss`` ``(E,)``."""

    epoch: int
    steps: int
    seconds: float
    lr: float
    train_loss: torch.Tensor


class EnsembleTrainer:
    """Resumable minibatch training of all members of ``net`` on preloaded ``x``, ``y``.

    ``x`` ``(N, in)`` and ``y`` ``(N,)`` (class labels, ``loss="cross_entropy"``) or
    ``(N, out)`` (``loss="mse"``) stay in memory; each epoch every member gets its own
    random permutation and the batches are gathered with it. Member ``e`` draws
    ``torch.randperm(N)`` from its own generator seeded ``member_seeds[e]`` (default
    :func:`koopman_lib.seeds.shuffle_seed` ``(seed, e)``), so its batches do not depend on
    which other members share the ensemble (a network is its own seed). The last, shorter batch is kept (``drop_last=False``, as a ``DataLoader``):
    ``ceil(N / batch_size)`` steps per epoch.
    """

    def __init__(self, net: EnsembleMLP, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64,
                 optimizer="adadelta", lr: float = 1.0, gamma: float | None = None, seed: int = 0,
                 loss: str = "cross_entropy", optimizer_kwargs: dict | None = None, drop_last: bool = False,
                 member_seeds=None):
        if x.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ValueError(f"x must be (N, in) and y (N, ...) with the same N; got {tuple(x.shape)}, {tuple(y.shape)}")
        if x.shape[1] != net.sizes[0]:
            raise ValueError(f"x has {x.shape[1]} features but the network expects {net.sizes[0]}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
        if batch_size < 1 or batch_size > x.shape[0]:
            raise ValueError(f"batch_size must be in 1..{x.shape[0]}, got {batch_size}")
        if not net.theta.requires_grad:
            raise ValueError("net.theta must be a leaf with requires_grad=True")
        self.net, self.x, self.y = net, x.to(net.theta.dtype), y
        self.batch_size, self.loss, self.drop_last = batch_size, loss, drop_last
        self.lr0 = float(lr)
        self.gamma = None if gamma in (None, 1, 1.0) else float(gamma)
        self.optimizer = make_optimizer(optimizer, [net.theta], lr, **(optimizer_kwargs or {}))
        E = net.theta.shape[0]
        member_seeds = shuffle_seeds(seed, range(E)) if member_seeds is None else [int(s) for s in member_seeds]
        if len(member_seeds) != E:
            raise ValueError(f"member_seeds has {len(member_seeds)} entries for {E} members")
        self.member_generators = [torch.Generator().manual_seed(s) for s in member_seeds]
        self.step = 0   # optimizer steps taken so far
        self.epoch = 0  # epochs completed so far

    def branch(self, member_seeds) -> "EnsembleTrainer":
        """A second trainer that continues from exactly this one's state (weights, optimizer
        state, position in the learning-rate schedule, ``step`` and ``epoch``) with other
        minibatch orders: member ``e`` shuffles from a new generator seeded ``member_seeds[e]``
        (e.g. :func:`koopman_lib.seeds.branch_seed`). The optimizer continued with another stream
        of randomness: the noise floor a prediction of this optimizer is read against. The
        branch owns copies of the weights and the optimizer state; training either trainer
        leaves the other as it was. ``branch.net`` is a copy of ``net`` holding the branch's
        weights."""
        import copy
        member_seeds = [int(s) for s in member_seeds]
        E = self.net.theta.shape[0]
        if len(member_seeds) != E:
            raise ValueError(f"member_seeds has {len(member_seeds)} entries for {E} members")
        other = copy.copy(self)
        other.net = copy.copy(self.net)
        other.net.theta = self.net.theta.detach().clone().requires_grad_(True)
        other.optimizer = type(self.optimizer)([other.net.theta], **self.optimizer.defaults)
        other.optimizer.load_state_dict(copy.deepcopy(self.optimizer.state_dict()))
        other.member_generators = [torch.Generator().manual_seed(s) for s in member_seeds]
        return other

    @property
    def steps_per_epoch(self) -> int:
        n, b = self.x.shape[0], self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def lr_for_epoch(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (1-based): ``lr * gamma**(epoch - 1)``."""
        return self.lr0 * (self.gamma ** (epoch - 1) if self.gamma is not None else 1.0)

    def _permutations(self, E: int, N: int) -> torch.Tensor:
        return torch.stack([torch.randperm(N, generator=g) for g in self.member_generators])

    def run_epoch(self, on_step: StepCallback | None = None) -> EpochStats:
        """One pass over the data for every member; returns its :class:`EpochStats`."""
        net, theta, opt = self.net, self.net.theta, self.optimizer
        E, N, B = theta.shape[0], self.x.shape[0], self.batch_size
        lr = self.lr_for_epoch(self.epoch + 1)
        for g in opt.param_groups:
            g["lr"] = lr
        start = time.perf_counter()
        perm = self._permutations(E, N)
        running = torch.zeros(E, dtype=torch.float64)
        n_steps = self.steps_per_epoch
        for i in range(n_steps):
            idx = perm[:, i * B:(i + 1) * B]
            xb, yb = self.x[idx], self.y[idx]
            out = net.forward(xb, theta)
            per_member = _loss_sum(out, yb, self.loss)
            batch_loss = per_member.sum() / idx.shape[1]
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            running += per_member.detach().double() / idx.shape[1]
            self.step += 1
            if on_step is not None:
                on_step(self.step, theta.detach())
        self.epoch += 1
        return EpochStats(self.epoch, n_steps, time.perf_counter() - start, lr, running / n_steps)

    def train(self, epochs: int, on_step: StepCallback | None = None,
              on_epoch: Callable[[EpochStats], None] | None = None) -> list[EpochStats]:
        """Run ``epochs`` more epochs; ``on_epoch(stats)`` after each."""
        out = []
        for _ in range(epochs):
            stats = self.run_epoch(on_step)
            if on_epoch is not None:
                on_epoch(stats)
            out.append(stats)
        return out


def train_epochs(net: EnsembleMLP, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int = 64,
                 optimizer="adadelta", lr: float = 1.0, gamma: float | None = None, seed: int = 0,
                 on_step: StepCallback | None = None, on_epoch: Callable[[EpochStats], None] | None = None,
                 **kwargs) -> tuple[EnsembleTrainer, list[EpochStats]]:
    """Train every member of ``net`` for ``epochs`` epochs (see :class:`EnsembleTrainer`).

    Returns the trainer (to continue training later) and one :class:`EpochStats` per epoch.
    ``kwargs`` go to :class:`EnsembleTrainer` (``loss``, ``optimizer_kwargs``, ``drop_last``).
    """
    trainer = EnsembleTrainer(net, x, y, batch_size, optimizer, lr, gamma, seed, **kwargs)
    return trainer, trainer.train(epochs, on_step, on_epoch)
