"""Timing both sides of the speedup: optimizer steps (the authors' loop, the fast loop, batched)
and one network's Koopman training (fit and jump), each fit on the path that makes the results."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from koopman_lib.estimator import Koopman, fit_named
from koopman_lib.metrics import finite_median
from koopman_lib.partition import load_flat

from .fit_methods import horizon
from .network import (Oscillator, OriginalNet, de_optimizer, fast_steps, learning_rate, original_loss,
                      perturb_points, set_lr)

if TYPE_CHECKING:
    from . import Config


def _timeit(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        s = time.perf_counter()
        fn()
        out.append(time.perf_counter() - s)
    return out



def time_paper_style(problem: Oscillator, theta_row: torch.Tensor, name: str, cfg: Config, steps: int,
                     dtype) -> float:
    """Seconds for ``steps`` steps of one network in the solver's own loop: ``nn.Module``,
    fresh evaluation points from ``perturb_points`` (noise 0), a random permutation, autograd
    time derivatives with ``create_graph``, backward, step, loss copied to NumPy and kept."""
    model = OriginalNet(problem.sizes, problem.activation).to(dtype)
    load_flat(model.body, theta_row.detach().to(torch.float64))
    opt = de_optimizer(name, model.parameters(), cfg)
    grid = torch.linspace(0.0, cfg.t_max, cfg.n_points, dtype=dtype).reshape(-1, 1)
    history = []
    start = time.perf_counter()
    for step in range(steps):
        set_lr(opt, learning_rate(step, cfg.lr_numerator, cfg.lr_offset))
        t = perturb_points(grid, 0.0, cfg.t_max, 0.0)
        idx = np.random.permutation(cfg.n_points)
        tb = t[idx]
        tb.requires_grad = True
        loss = original_loss(model, tb, cfg.x0, cfg.p0, cfg.lam)
        loss.backward()
        opt.step()
        history.append(loss.data.numpy())
        opt.zero_grad()
    return time.perf_counter() - start



def time_fast_loop(problem: Oscillator, theta: torch.Tensor, name: str, cfg: Config, steps: int) -> float:
    """Seconds for ``steps`` steps of the fast loop (:func:`fast_steps`) from the networks ``theta``
    ``(E, D)`` (not modified) with a fresh optimizer."""
    th = theta.detach().clone()
    opt = de_optimizer(name, [th], cfg)
    start = time.perf_counter()
    fast_steps(problem, th, opt, cfg, 0, steps)
    return time.perf_counter() - start


def named_fit_path(partition, fit: str):
    """One network's fit of named fit ``fit`` (:data:`koopman_lib.estimator.BOOK_FITS`) on the path that
    makes the results: ``snapshots (k, D) -> fitted Koopman`` by :func:`koopman_lib.estimator.fit_named`
    (a strided fit takes every ``s``-th snapshot of the copy, ``s`` by the rule)."""
    return lambda snap: fit_named(partition, snap, [fit])[fit]


def koopman_timed(fit, snapshots: torch.Tensor, Ts) -> tuple[float, dict, Koopman]:
    """Seconds of one network's Koopman training, timed on the path that makes the results: copy its
    snapshots ``(k, D)`` and fit them (returned first; ``fit`` an unfitted :class:`Koopman`, fitted in
    place, or a function ``snapshots -> fitted Koopman``, :func:`named_fit_path`), then ``predict`` from
    ``w(t2)`` for every ``T`` in ``Ts`` (``{T: seconds}``; a fit of stride ``s`` jumps to its horizon,
    :func:`~.fit_methods.horizon`), and the fitted estimator. Fit plus jump is the first plus one of the
    second."""
    s0 = time.perf_counter()
    snap = snapshots.contiguous()
    kp = fit.fit(snap) if isinstance(fit, Koopman) else fit(snap)
    fit_s = time.perf_counter() - s0
    jumps = {}
    for T in Ts:
        s0 = time.perf_counter()
        kp.predict(snap[-1], horizon(T, kp.stride_ or 1))
        jumps[T] = time.perf_counter() - s0
    return fit_s, jumps, kp


def time_koopman(partition, snaps: torch.Tensor, cfg: Config) -> dict:
    """Per named fit of ``cfg.fits``: the single-network Koopman training the authors timed, with
    that fit (:func:`named_fit_path`, :func:`koopman_timed`) on the first ``timing_networks`` networks of
    ``snaps`` ``(k, E, D)``, fits interleaved within each of ``timing_repeats`` repeats; medians
    ``fit_seconds``, ``fit_and_jump_seconds`` ``{T: s}`` and ``batched_fit_seconds_per_network`` (one fit
    of all ``E`` networks, ``max(2, repeats // 2)`` times)."""
    E = snaps.shape[1]
    fit_s = {f: [] for f in cfg.fits}
    total = {f: {T: [] for T in cfg.Ts} for f in cfg.fits}
    for _ in range(cfg.timing_repeats):
        for e in range(min(cfg.timing_networks, E)):
            for f in cfg.fits:
                fs, js, _ = koopman_timed(named_fit_path(partition, f), snaps[:, e], cfg.Ts)
                fit_s[f].append(fs)
                for T in cfg.Ts:
                    total[f][T].append(fs + js[T])
    out = {}
    for f in cfg.fits:
        batched = _timeit(lambda: fit_named(partition, snaps, [f]), max(2, cfg.timing_repeats // 2))
        out[f] = {"fit_seconds": finite_median(fit_s[f]),
                  "fit_and_jump_seconds": {T: finite_median(v) for T, v in total[f].items()},
                  "batched_fit_seconds_per_network": finite_median(batched) / E}
    return out


def koopman_once(kp: Koopman, snapshots: torch.Tensor, T: int) -> torch.Tensor:
    """One network's Koopman training as the authors timed it: take its snapshots ``(k, D)``
    (copied, our analogue of loading them), fit the operators, jump ``T`` steps: the same
    ``Koopman.fit`` / ``Koopman.predict`` calls that produce the reported (batched) predictions
    (:func:`koopman_timed` times these calls, one fit and a jump per ``T``)."""
    return koopman_timed(kp, snapshots, ())[2].predict(snapshots[-1], T)


def step_timing(problem: Oscillator, theta: torch.Tensor, names, koopman: dict, cfg: Config, dtype) -> dict:
    """Per optimizer: median seconds per step of the paper-style loop and the fast loop (one network,
    its first) and of the batched fast loop per network (all ``E``), repeats interleaved; with
    ``koopman[name]`` (:func:`time_koopman`) beside them."""
    E = theta.shape[0] // len(names)
    timing = {}
    for k, name in enumerate(names):
        row = theta[k * E:k * E + 1]
        paper_s, fast_s, batched_s = [], [], []
        for _ in range(cfg.timing_repeats):
            paper_s.append(time_paper_style(problem, row[0], name, cfg, cfg.timing_steps, dtype) / cfg.timing_steps)
            fast_s.append(time_fast_loop(problem, row, name, cfg, cfg.timing_steps) / cfg.timing_steps)
            batched_s.append(time_fast_loop(problem, theta[k * E:(k + 1) * E], name, cfg, cfg.timing_steps)
                             / cfg.timing_steps / E)
        timing[name] = {"paper_style_step_seconds": finite_median(paper_s),
                        "fast_loop_step_seconds": finite_median(fast_s),
                        "batched_step_seconds_per_network": finite_median(batched_s), "koopman": koopman[name],
                        "repeats": cfg.timing_repeats, "steps_per_repeat": cfg.timing_steps}
    return timing
