"""Koopman training of one training run: every optimizer's recorded window fitted with every named
fit and fit method, jumped to every ``T`` of the curve grid, and compared with what the optimizer did.

A *reading* is one optimizer's networks under one fit: :func:`analyse` returns its spectral radii,
kept ranks, Koopman losses, and per ``T`` the ``T_eq`` parts, the error ratio of Fig. 2e, the
relative weight errors and the per-layer squared error and travel (for :mod:`.where_it_stops`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from koopman_lib.estimator import Koopman
from koopman_lib.fit import singular_values, spectrum_summary
from koopman_lib.metrics import error_ratio, t_eq_parts

from .fit_methods import horizon, koopman_fit, koopman_fits
from .network import Oscillator, batched_loss
from .rounding import rounded
from .timing import time_koopman
from .training import Training, inits

if TYPE_CHECKING:
    from . import Config


def t_grid(T_max: int, n: int, Ts) -> list[int]:
    """``n`` integer points on ``0..T_max`` plus every ``T`` in ``Ts``."""
    g = set(int(round(x)) for x in np.linspace(0, T_max, n)) | set(int(T) for T in Ts)
    return sorted(g)


def block_condition_numbers(snapshots: torch.Tensor, partition) -> torch.Tensor:
    """``cond(F)`` (largest / smallest singular value) of every block, ``(E, n_blocks)``.

    ``snapshots`` ``(k, E, D)`` float64; ``F`` is the block's ``(m, k - 1)`` data matrix.
    """
    E = snapshots.shape[1]
    out = []
    for x in partition.time_last(snapshots):
        s = singular_values(x)                                    # (E*P, min(m, k-1))
        out.append((s[..., 0] / s[..., -1]).reshape(E, -1))
    return torch.cat(out, dim=1)


@dataclass
class Run:
    """One training run in one dtype, as the readings need it: the problem, the partition, the
    trained networks ``tr`` (``n_opt * E`` rows, optimizer ``k`` owning rows ``k*E .. (k+1)*E - 1``),
    their float64 losses ``(n_steps + 1, n_opt * E)``, the ``T`` grid of the curves, the stored
    steps of the weight window (Fig. 2d) and the layers (:func:`~.where_it_stops.layer_blocks`)."""

    cfg: Config
    dtype_name: str
    dtype: torch.dtype
    problem: Oscillator
    partition: object
    names: list
    tr: Training
    losses: torch.Tensor
    grid: list
    window: list
    layers: dict
    horizons: tuple = ()  # every horizon a fit predicts (true weights kept at t2 + h)

    @property
    def E(self) -> int:
        return len(self.inits)

    @property
    def inits(self) -> list[int]:
        """The networks of the run (:func:`~.training.inits`): row ``k*E + e`` is network ``inits[e]``."""
        return inits(self.cfg)

    @property
    def D(self) -> int:
        return self.tr.theta.shape[1]

    def stored_at(self, step: int, rows) -> torch.Tensor:
        """The stored float64 weights at ``step`` of the networks ``rows``."""
        return self.tr.stored[self.tr.stored_steps.index(step), rows]


@dataclass
class Window:
    """One optimizer's networks around ``t2``: the recording ``snaps`` ``(k, E, D)`` (float64,
    ``w(t1) .. w(t2)``), the optimizer's losses from ``t2`` on (``opt_losses[i]`` = loss of
    ``w(t2 + i)``, ``(n_steps - t2 + 1, E)``) and the true weights ``true_at[h]`` ``(E, D)`` at every
    horizon ``h`` a fit predicts (:func:`~.fit_methods.horizon` of each ``T``)."""

    snaps: torch.Tensor
    opt_losses: torch.Tensor
    true_at: dict

    @property
    def theta_t2(self) -> torch.Tensor:
        return self.snaps[-1]


def teq_parts(cfg: Config, loss: float, opt_losses) -> tuple:
    """``T_eq`` of a loss reached by Koopman training against one network's optimizer losses from ``t2``
    (``opt_losses[i]`` = loss of ``w(t2 + i)``), counted from ``cfg.T_origin`` and from the other origin:
    the one scoring of every reading (the named fits, the state-augmented fits, the stride sweep)."""
    off = 1 if cfg.T_origin == "t2+1" else 0
    return t_eq_parts(loss, opt_losses[off:]), t_eq_parts(loss, opt_losses[1 - off:])


def analyse(kp: Koopman, w: Window, run: Run) -> dict:
    """One reading: the fitted ``kp`` jumped from ``w(t2)`` to every ``T`` of the grid (``paths``; a fit
    of stride ``s`` to its horizon :func:`~.fit_methods.horizon` ``(T, s)``), its Koopman losses, spectral
    radii and kept ranks, and per ``T`` of ``Ts`` what it is compared by (the true weights at the horizon;
    ``T_eq`` of the loss at the horizon, divided by ``T`` downstream: a strided fit's ``T_eq/T`` can only
    be understated). ``kp``: a fitted :class:`koopman_lib.Koopman` or anything with its ``predict``,
    ``stride_``, ``spectral_radii_`` and ``operators_`` (:class:`~.state_fit.StateJump`)."""
    cfg, E, D, grid, theta_t2 = run.cfg, run.E, run.D, run.grid, w.theta_t2
    s = kp.stride_ or 1
    radii = torch.cat([r.reshape(E, -1) for r in kp.spectral_radii_], dim=1)  # (E, n_blocks)
    rank = (None if any(op.rank is None for op in kp.operators_)
            else torch.cat([op.rank.reshape(E, -1) for op in kp.operators_], dim=1))
    pg = torch.empty(len(grid), E, D, dtype=torch.float64)
    for i, T in enumerate(grid):
        h = horizon(T, s)
        pg[i] = theta_t2 if h == 0 else kp.predict(theta_t2, h)
    kl = batched_loss(run.problem, pg.reshape(-1, D).to(run.dtype)).reshape(len(grid), E).to(torch.float64)
    by_T = {}
    for T in cfg.Ts:
        h = horizon(T, s)
        i, true_end = grid.index(T), w.true_at[h]
        err, travel = pg[i] - true_end, true_end - theta_t2
        parts = [teq_parts(cfg, float(kl[i, e]), w.opt_losses[:, e].numpy()) for e in range(E)]
        by_T[T] = {
            "horizon": h, "parts": [p[0] for p in parts], "other": [p[1] for p in parts],
            "error_ratio": error_ratio(pg[i].numpy(), true_end.numpy(), theta_t2.numpy(), cfg.n_best),
            # the same quantity for each network alone (its own median |error| / median |evolution|)
            "error_ratio_networks": [error_ratio(pg[i, e:e + 1].numpy(), true_end[e:e + 1].numpy(),
                                                 theta_t2[e:e + 1].numpy(), 1)["ratio"] for e in range(E)],
            "rel_error": (err.norm(dim=1) / travel.norm(dim=1)).tolist(),
            "mean_abs_error": err.abs().mean(1).tolist(),  # Fig. 2e's key for its best networks
            "layer_error_sq": torch.stack([err[:, sl].pow(2).sum(1) for sl in run.layers["slices"]], 1),
            "layer_travel_sq": torch.stack([travel[:, sl].pow(2).sum(1) for sl in run.layers["slices"]], 1)}
    i, true_end = grid.index(cfg.T_main), w.true_at[horizon(cfg.T_main, s)]
    best = by_T[cfg.T_main]["error_ratio"]["networks"]
    return {"radii": radii, "rank": rank, "koopman_loss": kl.T, "by_T": by_T, "paths": pg, "stride": s,
            "fig2e": {"networks": best, "error": rounded((pg[i] - true_end)[best].abs()),
                      "evolution": rounded((true_end - theta_t2)[best].abs())}}


def fig2d(res: dict, w: Window, run: Run, k: int) -> dict:
    """Fig. 2d of one optimizer: the network with the median ``T_eq/T`` (main fit, ``T_main``), its six
    most moving weights, true on the window and predicted by every fit on the grid."""
    cfg, E, name = run.cfg, run.E, run.names[k]
    main = res[cfg.fits[0]][name]
    ratios = np.array([p.value for p in main["by_T"][cfg.T_main]["parts"]]) / cfg.T_main
    ex = int(np.argmin(np.abs(ratios - np.median(ratios))))
    T_max = max(cfg.Ts)
    movers = torch.argsort((run.stored_at(cfg.t2 + T_max, k * E + ex) - w.theta_t2[ex]).abs(), descending=True)[:6]
    true = torch.stack([run.stored_at(s, k * E + ex) for s in run.window])[:, movers].T
    return {"network": ex, "params": movers.tolist(), "steps": run.window, "true": rounded(true),
            "T": run.grid, "predicted": {f: rounded(res[f][name]["paths"][:, ex, movers].T) for f in cfg.fits}}


def read_optimizer(run: Run, k: int, snaps: torch.Tensor, res: dict, res_m: dict) -> dict:
    """Every reading of optimizer ``k`` from its recording ``snaps`` ``(k, E, D)``: the named fits into
    ``res[fit][name]``, the fit methods into ``res_m[method][name]`` (``"pinv"`` is the paper fit's),
    and what is kept of its window: ``cond_F`` ``(E, n_blocks)``, init 0's spectra ``sv0``, the
    optimizer's curve on the grid, Fig. 2d, the timed single-network Koopman training and the
    :class:`Window` (the state-augmented fits and the stride sweep are scored against it)."""
    cfg, E, name = run.cfg, run.E, run.names[k]
    rows = slice(k * E, (k + 1) * E)
    cond_F = block_condition_numbers(snaps, run.partition)  # (E, n_blocks)
    sv0 = spectrum_summary(run.partition.time_last(snaps[:, :1]))  # init 0's spectra (operators chapter)
    opt_losses = run.losses[cfg.t2:, rows]  # (n_steps - t2 + 1, E): index i = loss of w(t2 + i)
    w = Window(snaps, opt_losses, {h: run.stored_at(cfg.t2 + h, rows) for h in run.horizons})
    # every named fit from one factorisation per block; the fit-method comparison at the paper's cutoff
    for f, kp in koopman_fits(run.partition, snaps, cfg.fits).items():
        res[f][name] = analyse(kp, w, run)
    for method in cfg.fit_methods:
        same = method == "pinv" and "paper" in cfg.fits  # "pinv" is the paper's fit
        res_m[method][name] = res["paper"][name] if same else analyse(koopman_fit(run.partition, method).fit(snaps),
                                                                      w, run)
    figure = fig2d(res, w, run, k)
    for a in list(res_m.values()) + list(res.values()):
        a[name].pop("paths", None)
    return {"cond_F": cond_F, "sv0": sv0, "opt_curve": opt_losses[torch.tensor(run.grid)].T, "fig2d": figure,
            "koopman_time": time_koopman(run.partition, snaps, cfg), "window": w}
