"""The cutoff sweep of the MNIST experiment: every cutoff of ``cfg.cutoff_sweep``, with and
without clipping to the unit disk, fitted for every init of the main experiment; its table."""
from __future__ import annotations

import math

import numpy as np

from koopman_lib.fit import FITS, FitSpec
from koopman_lib.metrics import finite_median, success
from .config import Config
from .fits import rtol_of


def sweep_specs(cfg: Config) -> dict:
    """``{name: FitSpec}`` fitted for every init: the table's fits (:data:`koopman_lib.fit.FITS`)
    and every cutoff of the sweep with and without clipping to the unit disk (named
    ``"<cutoff>"`` / ``"<cutoff>+clip:1"``; a sweep entry equal to a table fit is that fit)."""
    specs = {name: FITS[name] for name in cfg.fits if name in FITS}     # the strided fits: fit_named
    for c in cfg.cutoff_sweep:
        for stab in cfg.sweep_stabilised:
            spec = FitSpec(c, clip=1.0 if stab else None)
            if spec not in specs.values():
                specs[spec.name] = spec
    return specs


def sweep_name(cfg: Config, cutoff, stabilised: bool) -> str:
    """The key of ``members[i]["fits"]`` that holds the sweep entry ``(cutoff, stabilised)``."""
    spec = FitSpec(cutoff, clip=1.0 if stabilised else None)
    return next((n for n, s in sweep_specs(cfg).items() if s == spec), spec.name)



def sweep_rows(cfg: Config, members: list, k: int, S: int) -> list[dict]:
    """The cutoff sweep: per (cutoff, stabilised, horizon) over every init, success and median
    T_eq/T (the table's rule), median Koopman loss, spectral radius, layer-1 rank, guard stops."""
    rows = []
    for c in cfg.cutoff_sweep:
        for stab in cfg.sweep_stabilised:
            name = sweep_name(cfg, c, stab)
            fits = [m["fits"][name] for m in members]
            for h in cfg.horizons_epochs:
                teq = np.array([f[f"T{h}"]["T_eq_epochs"] for f in fits])
                rows.append({
                    "cutoff": c, "stabilised": stab, "T_epochs": h, "n_inits": len(members),
                    "success_rate": float(success(teq).mean()),
                    "teq_over_t_median": float(np.median(teq / h)),
                    "rtol_layer1": rtol_of(c, 157, k),
                    "mean_rank_layer1_blocks": finite_median([f["mean_rank_layer1_blocks"] for f in fits],
                                                             empty=math.nan),
                    "max_spectral_radius": finite_median([f["max_spectral_radius"] for f in fits], empty=math.nan),
                    "koopman_loss_median": finite_median([f[f"T{h}"]["koopman_loss"] for f in fits], empty=math.nan),
                    "optimizer_loss_median": finite_median([m[f"optimizer_loss_T{h}"] for m in members],
                                                           empty=math.nan),
                    "guard_stops": int(sum(f["rollout_stopped_at"] is not None
                                           and f["rollout_stopped_at"] <= h * S for f in fits))})
    return rows
