"""Baselines for Koopman training: extrapolate each weight along a line, or keep optimizing.

The reviewers asked whether Koopman training does more than extrapolate a trajectory the
optimizer has already found, and how it compares with stronger optimizers (Adam, momentum,
a quasi-Newton method that also builds a local linear model). The rivals here:

* :func:`linear_extrapolation`: a least-squares line per weight through the last ``L``
  snapshots, evaluated ``T`` steps past the last one. Cost ``O(L D)``.
* :func:`continue_training`: any torch optimizer (:func:`make_optimizer`: SGD, SGD with
  momentum, Adam, Adadelta, Adagrad) on an ensemble ``theta`` ``(E, D)``, timing the steps
  separately from the (optional) evaluations.
* :class:`MemberLBFGS`: ``torch.optim.LBFGS``, one optimizer per ensemble member so that the
  ``E`` runs stay independent (one L-BFGS on the stacked parameters would couple them
  through the shared history and line search).

Shapes: snapshots are time-first, ``(k, *batch, D)`` as recorded by
:class:`koopman_lib.TrajectoryRecorder`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .training import OPTIMIZERS as _ALL_OPTIMIZERS, make_optimizer

OPTIMIZERS = tuple(_ALL_OPTIMIZERS)


# -- extrapolation -------------------------------------------------------------------------
def line_fit(snapshots: torch.Tensor, L: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares line through the last ``L`` snapshots of every weight.

    ``snapshots`` ``(k, *batch, D)``; ``L`` defaults to all ``k`` (``2 <= L <= k``).
    Returns ``(level, slope)``, each ``(*batch, D)`` in float64: the line's value at the
    last snapshot and its change per step.
    """
    k = snapshots.shape[0]
    L = k if L is None else L
    if not isinstance(L, int) or not 2 <= L <= k:
        raise ValueError(f"L must be an integer with 2 <= L <= {k} (the number of snapshots), got {L!r}")
    y = snapshots[k - L:].to(torch.float64)
    if not bool(torch.isfinite(y).all()):
        raise ValueError("snapshots contain NaN or inf; extrapolate from a window before the divergence")
    t = torch.arange(L, dtype=torch.float64) - (L - 1) / 2  # centred times, last one at (L-1)/2
    mean = y.mean(dim=0)
    slope = torch.tensordot(t, y - mean, dims=([0], [0])) / (t * t).sum()
    return mean + slope * (L - 1) / 2, slope


def linear_extrapolation(snapshots: torch.Tensor, T: int, L: int | None = None) -> torch.Tensor:
    """``theta(t2 + T)`` ``(*batch, D)`` from a least-squares line per weight over the last ``L``
    snapshots (``snapshots[-1]`` is ``theta(t2)``)."""
    if not isinstance(T, int) or T < 0:
        raise ValueError(f"T must be a non-negative integer, got {T!r}")
    level, slope = line_fit(snapshots, L)
    return level + T * slope


def linear_path(snapshots: torch.Tensor, steps: Sequence[int], L: int | None = None) -> torch.Tensor:
    """The extrapolated line at several ``steps`` past ``t2``: ``(len(steps), *batch, D)``."""
    level, slope = line_fit(snapshots, L)
    s = torch.as_tensor(list(steps), dtype=torch.float64).reshape((-1,) + (1,) * level.ndim)
    return level + s * slope


# -- optimizers ----------------------------------------------------------------------------
# ``make_optimizer`` is :func:`koopman_lib.training.make_optimizer` (imported above).


@dataclass
class Trace:
    """A continued run: ``steps[i]`` optimizer steps after the start, ``seconds[i]`` the time
    spent in those steps (evaluations excluded), ``losses[i]`` the evaluation there
    (``(E,)`` per-member values); ``theta`` the final weights ``(E, D)``; ``evals`` the number
    of loss/gradient evaluations the optimizer made (L-BFGS makes more than one per step)."""

    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    losses: list = field(default_factory=list)
    theta: torch.Tensor | None = None
    evals: int = 0


def continue_training(theta0: torch.Tensor, loss_fn: Callable, n_steps: int, optimizer: str | Callable,
                      lr: float = 1e-3, every: int = 1, eval_fn: Callable | None = None,
                      scheduler: Callable | None = None, **opt_kwargs) -> Trace:
    """Run ``n_steps`` optimizer steps on a copy of ``theta0`` ``(E, D)``.

    ``loss_fn(theta, step) -> (E,)`` per-member training losses at step ``step`` (the
    minibatch may depend on ``step``; the sum over members is differentiated, which for
    independent members gives each its own gradient). ``optimizer`` is a name for
    :func:`make_optimizer` or a callable ``params -> Optimizer``. ``eval_fn(theta) -> (E,)``
    is called at step 0, every ``every`` steps and at the end, outside the timed region.
    ``scheduler(step) -> lr`` sets the learning rate before each step if given.
    """
    theta = theta0.detach().clone().requires_grad_(True)
    opt = optimizer([theta]) if callable(optimizer) else make_optimizer(optimizer, [theta], lr, **opt_kwargs)
    out = Trace()
    spent = 0.0

    def record(step):
        out.steps.append(step)
        out.seconds.append(spent)
        if eval_fn is not None:
            with torch.no_grad():
                out.losses.append(eval_fn(theta.detach()))

    record(0)
    for step in range(1, n_steps + 1):
        start = time.perf_counter()
        if scheduler is not None:
            for gparams in opt.param_groups:
                gparams["lr"] = scheduler(step)
        opt.zero_grad(set_to_none=True)
        loss_fn(theta, step).sum().backward()
        opt.step()
        spent += time.perf_counter() - start
        out.evals += 1
        if step % every == 0 or step == n_steps:
            record(step)
    out.theta = theta.detach()
    return out


class MemberLBFGS:
    """``torch.optim.LBFGS`` run independently on each member of an ensemble ``theta`` ``(E, D)``.

    ``loss_fn(theta_e (1, D), step) -> (1,)``. Each :meth:`step` is one L-BFGS iteration
    per member (``max_iter=1``), with a strong-Wolfe line search by default (so one step
    may evaluate the loss several times; :attr:`evals` counts them all).
    """

    def __init__(self, theta0: torch.Tensor, loss_fn: Callable, lr: float = 1.0, history_size: int = 10,
                 line_search: str | None = "strong_wolfe", max_iter: int = 1):
        if theta0.ndim != 2:
            raise ValueError(f"theta0 must be (E, D), got {tuple(theta0.shape)}")
        self.loss_fn = loss_fn
        self.params = [theta0[e:e + 1].detach().clone().requires_grad_(True) for e in range(theta0.shape[0])]
        self.opts = [torch.optim.LBFGS([p], lr=lr, max_iter=max_iter, history_size=history_size,
                                       line_search_fn=line_search, tolerance_grad=0.0, tolerance_change=0.0)
                     for p in self.params]
        self.evals = 0

    def step(self, step: int) -> torch.Tensor:
        """One iteration for every member; returns the losses before the step ``(E,)``."""
        out = []
        for p, opt in zip(self.params, self.opts):
            def closure(p=p, opt=opt):
                opt.zero_grad(set_to_none=True)
                loss = self.loss_fn(p, step).sum()
                loss.backward()
                self.evals += 1
                return loss
            out.append(opt.step(closure).detach().reshape(1))
        return torch.cat(out)

    @property
    def theta(self) -> torch.Tensor:
        return torch.cat([p.detach() for p in self.params])


def continue_lbfgs(theta0: torch.Tensor, loss_fn: Callable, n_steps: int, every: int = 1,
                   eval_fn: Callable | None = None, **lbfgs_kwargs) -> Trace:
    """As :func:`continue_training` with :class:`MemberLBFGS` (``n_steps`` iterations)."""
    opt = MemberLBFGS(theta0, loss_fn, **lbfgs_kwargs)
    out = Trace()
    spent = 0.0

    def record(step):
        out.steps.append(step)
        out.seconds.append(spent)
        if eval_fn is not None:
            with torch.no_grad():
                out.losses.append(eval_fn(opt.theta))

    record(0)
    for step in range(1, n_steps + 1):
        start = time.perf_counter()
        opt.step(step)
        spent += time.perf_counter() - start
        if step % every == 0 or step == n_steps:
            record(step)
    out.theta, out.evals = opt.theta, opt.evals
    return out


def value_at_time(seconds: Sequence[float], values: Sequence, budget: float):
    """The last recorded value whose cumulative time is within ``budget`` (equal wall-clock
    comparisons); ``values[0]`` if even the first step exceeds it."""
    idx = 0
    for i, s in enumerate(seconds):
        if s <= budget:
            idx = i
    return values[idx]
