"""Training the DE solver's networks: every optimizer's ensemble in one batched loop.

The three optimizers (Adam, Adagrad, Adadelta: all elementwise) each own a view of one shared
``(n_opt * E, D)`` tensor, so every step is one batched loss/gradient for all networks and one
``torch.optim`` step per optimizer: exactly ``n_opt * E`` independent runs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.progress import bar
from koopman_lib.seeds import network_seeds

from .network import OPTIMIZERS, Oscillator, de_optimizer, learning_rate, set_lr, time_grid
from .rounding import rounded

if TYPE_CHECKING:
    from . import Config

DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass
class Training:
    """Result of :func:`train`: ``losses`` ``(n_steps + 1, M)`` (``losses[t]`` = loss of
    ``w(t)``), ``theta`` ``(M, D)`` at the end, ``stored`` ``(len(stored_steps), M, D)`` float64
    weights at ``stored_steps``; ``seconds`` the loop's wall time."""

    losses: torch.Tensor
    theta: torch.Tensor
    stored_steps: list[int]
    stored: torch.Tensor
    seconds: float
    recorders: list = field(default_factory=list)
    state_recorders: list = field(default_factory=list)


def train(problem: Oscillator, theta0: torch.Tensor, optimizer_names, cfg: Config, n_steps: int,
          recorders=None, stored_steps=(), gradient: str = "analytic", progress: bool = True,
          lr_fn=None, state_recorders=None) -> Training:
    """Train ``len(optimizer_names)`` groups of ``E`` networks for ``n_steps`` steps.

    ``theta0`` ``(n_opt * E, D)``: group ``k`` (rows ``k*E .. (k+1)*E - 1``) is trained by
    optimizer ``optimizer_names[k]``, each group owning a view of one shared tensor. Every
    step: one batched loss + gradient for all networks, ``eta(t)`` set, one step per optimizer.
    ``recorders[k]`` (optional) is called as ``recorder(t, theta_k)`` after every step ``t``.
    ``lr_fn(step)`` replaces the schedule ``eta(t)`` of ``cfg`` if given. ``state_recorders(k, view,
    optimizer)`` (optional) makes group ``k``'s recorder of weights and optimizer state (an
    :class:`koopman_lib.optimizer_state.OptimizerStateRecorder` or ``None``), called as ``recorder(t)``
    after every step ``t``; they are returned in ``Training.state_recorders`` (one per group).
    """
    M, D = theta0.shape
    n_opt = len(optimizer_names)
    if M % n_opt:
        raise ValueError(f"theta0 has {M} rows, not a multiple of {n_opt} optimizers")
    E = M // n_opt
    theta = theta0.detach().clone()
    views = [theta[k * E:(k + 1) * E] for k in range(n_opt)]
    opts = [de_optimizer(name, [v], cfg) for name, v in zip(optimizer_names, views)]
    losses = torch.empty(n_steps + 1, M, dtype=theta.dtype)
    stored_steps = sorted(set(int(s) for s in stored_steps if 0 <= s <= n_steps))
    slot = {s: i for i, s in enumerate(stored_steps)}
    stored = torch.empty(len(stored_steps), M, D, dtype=torch.float64)
    recorders = recorders or [None] * n_opt
    states = [None] * n_opt if state_recorders is None else [state_recorders(k, v, o)
                                                             for k, (v, o) in enumerate(zip(views, opts))]
    if 0 in slot:
        stored[slot[0]] = theta
    for k, rec in enumerate(recorders):
        if rec is not None:
            rec(0, views[k])
    pb = bar(total=n_steps, desc=f"de-solver training ({theta.dtype})", **({} if progress else {"disable": True}))
    start = time.perf_counter()
    for step in range(n_steps):
        if gradient == "analytic":
            loss, grad = problem.loss_and_grad(theta)
        else:
            th = theta.detach().requires_grad_(True)
            loss = problem.loss(th)
            grad = torch.autograd.grad(loss.sum(), th)[0]
            loss = loss.detach()
        losses[step] = loss
        lr = learning_rate(step, cfg.lr_numerator, cfg.lr_offset) if lr_fn is None else lr_fn(step)
        for k, (opt, v) in enumerate(zip(opts, views)):
            v.grad = grad[k * E:(k + 1) * E]
            set_lr(opt, lr)
            opt.step()
        t = step + 1
        for k, rec in enumerate(recorders):
            if rec is not None:
                rec(t, views[k])
        for rec in states:
            if rec is not None:
                rec(t)
        if t in slot:
            stored[slot[t]] = theta
        if t % 1000 == 0:
            pb.update(1000)
    seconds = time.perf_counter() - start
    pb.close()
    with torch.no_grad():
        losses[n_steps] = problem.loss(theta)
    return Training(losses, theta, stored_steps, stored, seconds, [r for r in recorders if r is not None], states)



#: networks per seed stream: the initial weights of network ``i`` come from
#: :func:`koopman_lib.seeds.network_seed` ``(seed, stream * STREAM + i)`` (:func:`init_seeds`), so
#: ``n_inits`` and ``check_inits`` are at most this
STREAM = 100_000
#: the seed streams: ``"paired"`` every optimizer's network ``i`` (``same_inits``: paired runs); with
#: ``same_inits=False`` optimizer ``OPTIMIZERS[k]``'s own stream ``1 + k`` (by its place in
#: :data:`~.network.OPTIMIZERS`, not in ``cfg.optimizers``, so a run of fewer optimizers draws the same
#: networks); ``"solver check"`` the networks of :func:`~.ode_check.solver_check`
STREAMS = {"paired": 0, **{name: 1 + k for k, name in enumerate(OPTIMIZERS)}, "solver check": 1 + len(OPTIMIZERS)}


def inits(cfg: Config) -> list[int]:
    """The networks (initialisations) a run makes, the same for every optimizer: ``cfg.networks``,
    by default ``0 .. n_inits - 1``."""
    return list(range(cfg.n_inits)) if cfg.networks is None else [int(i) for i in cfg.networks]


def init_seeds(seed: int, stream: str, networks) -> list[int]:
    """The seeds of the initial weights of ``networks`` in seed stream ``stream`` (:data:`STREAMS`): a
    network is its own seed, whichever other networks share the run."""
    return network_seeds(seed, [STREAMS[stream] * STREAM + i for i in networks])


def _setup(cfg: Config, dtype):
    """The problem and the initial weights ``(n_opt * E, D)`` (optimizer ``k`` owning rows ``k*E ..
    (k+1)*E - 1``) of the networks :func:`inits`, each drawn in float64 from its own seed
    (:func:`init_seeds`), then cast to ``dtype``.

    Training draws no other randomness: every step evaluates the loss on the same fixed grid of
    times (full batch, no collocation noise: ``perturb_points`` is called with noise 0, and only by
    the paper-style timing, whose losses are thrown away), so a network has no data order."""
    sizes = (1,) + tuple(cfg.hidden) + (2,)
    t = time_grid(cfg.n_points, cfg.t_max, cfg.t_one_quirk, dtype)
    problem = Oscillator(sizes, cfg.activation, t, cfg.x0, cfg.p0, cfg.lam)
    ids = inits(cfg)
    streams = ["paired"] * len(cfg.optimizers) if cfg.same_inits else list(cfg.optimizers)
    theta0 = torch.cat([EnsembleMLP(sizes, cfg.activation, len(ids), dtype=torch.float64,
                                    seeds=init_seeds(cfg.seed, s, ids)).theta.detach() for s in streams])
    return problem, theta0.to(dtype)



def log_steps(n_steps: int, n: int) -> list[int]:
    """About ``n`` log-spaced steps in ``0..n_steps`` (0 included)."""
    s = np.unique(np.round(np.logspace(0, math.log10(max(n_steps, 1)), n)).astype(int))
    return [0] + [int(x) for x in s if 0 < x <= n_steps]



def training_curves(losses: torch.Tensor, names, cfg: Config) -> dict:
    """The training losses ``(n_steps + 1, n_opt * E)`` at about ``loss_curve_points`` log-spaced
    steps: per optimizer the median over its networks and every network's curve."""
    E = len(inits(cfg))
    ls = log_steps(cfg.n_steps, cfg.loss_curve_points)
    curves = {"steps": ls}
    for k, name in enumerate(names):
        L = losses[ls, k * E:(k + 1) * E]
        curves[name] = {"median": rounded(L.median(1).values), "members": rounded(L.T)}
    return curves
