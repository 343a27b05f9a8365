"""A fast training loop for ensembles of independent MLPs on preloaded tensors.

The ``E`` members of a :class:`koopman_lib.nets.EnsembleMLP` share one flat parameter
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
  resumable state (optimizer, shuffle generator, ``step``, ``epoch``);
  :meth:`EnsembleTrainer.run_epoch` ``(on_step=None) -> EpochStats`` and
  :meth:`EnsembleTrainer.train` ``(epochs, on_step=None, on_epoch=None) -> list[EpochStats]``.
- :func:`train_epochs` ``(net, x, y, epochs, ...) -> (EnsembleTrainer, list[EpochStats])``:
  the one-call form.
- :func:`evaluate` ``(net, x, y, theta=None, batch_size=10000, loss="cross_entropy")
  -> (loss (E,), acc (E,))``: test loss (summed over samples, divided by ``N``, as the
  PyTorch MNIST example) and accuracy, batched over members, without autograd.
- :func:`ensemble_forward` ``(net, x, theta) -> (E, B, out)``: the forward pass with a
  shared input computed as one GEMM for the first layer.
- :func:`make_optimizer` ``(params, name, lr, **kwargs)``.

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

from .nets import ACTIVATIONS, EnsembleMLP

OPTIMIZERS = {
    "adadelta": torch.optim.Adadelta,
    "adam": torch.optim.Adam,
    "adagrad": torch.optim.Adagrad,
    "sgd": torch.optim.SGD,
}
LOSSES = ("cross_entropy", "mse")

StepCallback = Callable[[int, torch.Tensor], None]


def make_optimizer(params, name: str = "adadelta", lr: float = 1.0, **kwargs) -> torch.optim.Optimizer:
    """``torch.optim`` optimizer ``name`` (adadelta | adam | adagrad | sgd) with ``lr`` and ``kwargs``.

    ``name`` may also be a callable ``(params, lr=..., **kwargs) -> Optimizer``.
    """
    if callable(name):
        return name(params, lr=lr, **kwargs)
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)} or pass a callable")
    return OPTIMIZERS[name](params, lr=lr, **kwargs)


@dataclass
class EpochStats:
    """One epoch of an ensemble: ``epoch`` (1-based), ``steps`` taken, wall ``seconds``,
    the learning rate used, and the members' mean training loss ``train_loss`` ``(E,)``."""

    epoch: int
    steps: int
    seconds: float
    lr: float
    train_loss: torch.Tensor


def ensemble_forward(net: EnsembleMLP, x: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
    """Outputs ``(E, B, out)`` of every member on a shared input ``x`` ``(B, in)``
    (or per-member inputs ``(E, B, in)``). For a shared input the first layer is one
    GEMM ``x @ [W_1; ...; W_E]^T`` instead of ``E`` products with an expanded copy."""
    theta = net.theta if theta is None else theta
    if x.ndim == 3:
        return net.forward(x, theta)
    if x.ndim != 2:
        raise ValueError(f"x must be (B, in) or (E, B, in), got {tuple(x.shape)}")
    E = theta.shape[0]
    act = ACTIVATIONS[net.activation]
    layers = list(net.layers(theta))
    h = None
    for i, (W, b) in enumerate(layers):
        if i == 0:
            n_out = W.shape[1]
            h = (x @ W.reshape(E * n_out, -1).T).reshape(x.shape[0], E, n_out).transpose(0, 1) + b.unsqueeze(1)
        else:
            h = torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
        if i < len(layers) - 1:
            h = act(h)
    return h


def _loss_sum(out: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-member summed loss ``(E,)`` of outputs ``(E, B, C)`` against ``target`` ``(E, B)`` / ``(E, B, C)``."""
    if loss == "cross_entropy":
        ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1), reduction="none")
        return ce.reshape(out.shape[:2]).sum(1)
    if loss == "mse":
        return (out - target).pow(2).reshape(out.shape[0], -1).sum(1)
    raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")


@torch.no_grad()
def evaluate(net: EnsembleMLP, x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor | None = None,
             batch_size: int = 10000, loss: str = "cross_entropy") -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and accuracy of every member on ``(x (N, in), y (N,))``.

    ``theta`` ``(E, D)`` defaults to ``net.theta``; it is cast to ``x``'s dtype (so float64
    Koopman predictions are evaluated like weights loaded back into the float32 model).
    Returns ``loss`` ``(E,)`` = sum over samples / ``N`` (the PyTorch MNIST example's
    test loss) and ``acc`` ``(E,)`` = fraction correct (``nan`` for ``loss="mse"``).
    """
    theta = (net.theta if theta is None else theta).detach().to(x.dtype)
    if theta.ndim == 1:
        theta = theta.unsqueeze(0)
    E, N = theta.shape[0], x.shape[0]
    total = torch.zeros(E, dtype=torch.float64)
    correct = torch.zeros(E, dtype=torch.float64)
    for s in range(0, N, batch_size):
        xb, yb = x[s:s + batch_size], y[s:s + batch_size]
        out = ensemble_forward(net, xb, theta)
        target = yb.unsqueeze(0).expand(E, *yb.shape)
        total += _loss_sum(out, target, loss).double()
        if loss == "cross_entropy":
            correct += (out.argmax(-1) == target).sum(1).double()
    acc = correct / N if loss == "cross_entropy" else torch.full((E,), float("nan"), dtype=torch.float64)
    return total / N, acc


class EnsembleTrainer:
    """Resumable minibatch training of all members of ``net`` on preloaded ``x``, ``y``.

    ``x`` ``(N, in)`` and ``y`` ``(N,)`` (class labels, ``loss="cross_entropy"``) or
    ``(N, out)`` (``loss="mse"``) stay in memory; each epoch every member gets its own
    random permutation and the batches are gathered with it. By default the permutations
    of all members are one batched ``argsort`` of uniform noise ``(E, N)`` from a generator
    seeded with ``seed``; with ``member_seeds`` (one int per member) member ``e`` draws
    ``torch.randperm(N)`` from its own generator seeded ``member_seeds[e]``, so its batches
    do not depend on which other members share the ensemble (paired comparisons across
    runs). The last, shorter batch is kept (``drop_last=False``, as a ``DataLoader``):
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
        self.optimizer = make_optimizer([net.theta], optimizer, lr, **(optimizer_kwargs or {}))
        self.generator = torch.Generator().manual_seed(seed)
        self.member_generators = None
        if member_seeds is not None:
            member_seeds = [int(s) for s in member_seeds]
            if len(member_seeds) != net.theta.shape[0]:
                raise ValueError(f"member_seeds has {len(member_seeds)} entries for {net.theta.shape[0]} members")
            self.member_generators = [torch.Generator().manual_seed(s) for s in member_seeds]
        self.step = 0   # optimizer steps taken so far
        self.epoch = 0  # epochs completed so far

    @property
    def steps_per_epoch(self) -> int:
        n, b = self.x.shape[0], self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def lr_for_epoch(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (1-based): ``lr * gamma**(epoch - 1)``."""
        return self.lr0 * (self.gamma ** (epoch - 1) if self.gamma is not None else 1.0)

    def _permutations(self, E: int, N: int) -> torch.Tensor:
        if self.member_generators is None:
            return torch.rand(E, N, generator=self.generator).argsort(dim=1)
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
