"""The replication's table (Rao 2024 against the paper): the replication's settings trained and
fitted, and the ``replication`` rows, each built by
:func:`replication_row`: the paper's main experiment per fit, the replication's own fit and the
table's fits under its settings, and its layer-wise operators."""
from __future__ import annotations

import math

import numpy as np
import torch

from koopman_lib.fit import FITS
from koopman_lib.metrics import finite_median
from .ablation import Joined, ablation_parts, ablation_settings, join_parts, layerwise, rows_of_parts
from .config import Config
from .fits import plain_fits
from .null import NullBranch, replication_null_rows
from ..images import Run, release_memory
from .training import Condition, Setup, comparison_epochs, optimizer_curve, train_group


def replication_row(describe: dict, T_epochs: int, n_members: int, test_loss_t2: float, koopman: tuple,
                    optimizer: tuple, max_spectral_radius: float, spreads: dict | None = None) -> dict:
    """One row of the ``replication`` table: the setting's fields ``describe`` (setting, fit, clip,
    partition, dtype, cutoff, window_epochs, normalize, steplr), the horizon, the networks, the
    median test loss at t2, the final median test loss and accuracy ``(loss, acc)`` of Koopman
    training and of the optimizer, the median largest eigenvalue modulus, and the spreads
    (:func:`spreads`) where the curves are known."""
    return {**describe, "T_epochs": T_epochs, "n_members": n_members, "test_loss_t2": test_loss_t2,
            "final_test_loss_koopman": koopman[0], "final_test_loss_optimizer": optimizer[0],
            "final_test_acc_koopman": koopman[1], "final_test_acc_optimizer": optimizer[1],
            "max_spectral_radius": max_spectral_radius, **(spreads or {})}


def spreads(curve: dict, step: int) -> dict:
    """Spread over the networks of one curve's losses at ``step`` after t2: quartiles of the
    Koopman and optimizer test losses, and the per-network growth of the Koopman loss from its
    value at the start of the Koopman phase (step 0 of the curve)."""
    def at(steps, values, t):
        v = torch.as_tensor(values, dtype=torch.float64)          # (E, n)
        j = list(steps).index(t) if t in list(steps) else None
        return v[:, j] if j is not None else torch.full((v.shape[0],), float("nan"), dtype=torch.float64)

    ko = at(curve["steps"], curve["koopman_loss"], step)
    k0 = at(curve["steps"], curve["koopman_loss"], 0)
    op = at(curve["optimizer_steps"], curve["optimizer_loss"], step)

    def q(x, p):
        x = x[torch.isfinite(x)]
        return float(torch.quantile(x, p)) if x.numel() else float("nan")

    growth = ko / k0
    return {"koopman_loss_q25": q(ko, 0.25), "koopman_loss_q75": q(ko, 0.75),
            "optimizer_loss_q25": q(op, 0.25), "optimizer_loss_q75": q(op, 0.75),
            "koopman_loss_growth_median": finite_median(growth, empty=math.nan), "koopman_loss_growth_q25": q(growth, 0.25),
            "koopman_loss_growth_q75": q(growth, 0.75),
            "networks_koopman_above_optimizer_median": int((ko > float(np.nanmedian(op.numpy()))).sum())}



def replication_runs(cfg: Config, setup: Setup) -> tuple:
    """Train the replication's condition (``n_replication_inits`` networks, its window stored) and fit
    them, in chunks of ``replication_group_size`` networks (each its own seed: the same values in any
    chunk; a chunk's recording is released before the next). Returns ``(replication fits, layer-wise,
    null_model rows)``: the first is :func:`.ablation.rows_of_parts` of the replication's own fit and
    the table's fits on all its networks, the second :func:`.ablation.layerwise` plus the run without
    its snapshots (``None`` without ``cfg.layerwise``). The ablation trains its own networks
    (:func:`.ablation.ablation_study`)."""
    if cfg.replication_group_size < 1:
        raise ValueError(f"replication_group_size must be >= 1, got {cfg.replication_group_size}")
    settings = ablation_settings(cfg)
    rep_cond = Condition(tuple(cfg.replication_normalize), None)
    rep_ids = list(range(cfg.n_replication_inits))
    rep_setting = next(s for s in settings if s["name"] == "replication settings")
    # the replication's settings with the table's fits (float64 fits of its float32 recording)
    rep_fit_settings = [{**rep_setting, "name": f"replication settings, {name} fit", "fit": name, "dtype": "float64",
                         "cutoff": FITS[name].cutoff.value, "clip": FITS[name].clip} for name in cfg.replication_fits]
    sets = [rep_setting] + rep_fit_settings
    epochs = comparison_epochs(cfg)
    # memory: the replication's rows need only its window
    first = (cfg.replication_window_epochs[0] - 1) * setup.S + 1
    parts, layers, runs, nulls = [], [], [], []
    for ids in (rep_ids[i:i + cfg.replication_group_size] for i in range(0, len(rep_ids), cfg.replication_group_size)):
        # the replication's networks: the optimizer against itself from t2 over its longest horizon
        null = NullBranch.of(cfg, rep_cond, setup.data, ids, cfg.replication_window_epochs[1],
                             max(cfg.replication_T_epochs))
        r = train_group(cfg, rep_cond, ids, setup.data, epochs, setup.grid_from, setup.grid_to,
                        desc=f"train {rep_cond.name} inits {ids[0]}-{ids[-1]}", first=first, on_epoch=null)
        parts.append(ablation_parts(cfg, sets, r, setup.partition_of, setup.S))
        if cfg.layerwise:   # the layer-wise rows need the run's test losses, not its recording
            layers.append(layerwise(cfg, r, setup.partition_of(("layer",) * 4), setup.S))
        runs.append(r.without_snapshots())
        nulls.append(null.curve())
        del r
        release_memory()
    rep_rows = rows_of_parts(cfg, sets, {s["name"]: join_parts([p[s["name"]] for p in parts]) for s in sets},
                             setup.S)
    run = Run.join(runs)
    layer = None
    if cfg.layerwise:
        (ev, radius, t2, eig0, ranks), rest = layers[0], layers[1:]
        layer = (Joined.of([ev] + [lw[0] for lw in rest]), torch.cat([radius] + [lw[1] for lw in rest]), t2, eig0,
                 ranks, run)
    null = {"steps": nulls[0]["steps"], **{k: torch.cat([c[k] for c in nulls], 1) for k in ("loss", "acc")}}
    null_rows = replication_null_rows(cfg, null, run, cfg.replication_window_epochs[1] * setup.S,
                                      _koopman_curves(rep_rows, layer))
    return rep_rows, layer, null_rows


def _koopman_curves(rep_rows: tuple, layer: tuple | None) -> dict:
    """``{setting: (steps after t2, per-network test losses (E, steps))}`` of the replication's
    Koopman results: its own fit and the refits (:func:`.ablation.ablation_rows`' curves) and the
    layer-wise operators (:func:`.ablation.layerwise`)."""
    _, curves, _ = rep_rows
    out = {name: (c["steps"], torch.as_tensor(c["koopman_loss"])) for name, c in curves.items()}
    if layer is not None:
        out["replication settings, layer-wise"] = (layer[0].steps, layer[0].loss.T)
    return out


def replication_stage(cfg: Config, setup: Setup) -> dict:
    """:func:`replication_runs` as plain data (what a resumed run reads back): ``{"fits": the
    replication's own rows, curves and eigenvalues, "null_rows": the replication's rows of the
    ``null_model`` table, "layer": None or {"rows", "curves", "eigenvalues", "ranks"} of the layer-wise
    operators}``."""
    rep_fits, layer, null_rows = replication_runs(cfg, setup)
    out = {"fits": rep_fits, "layer": None, "null_rows": null_rows}
    if layer is not None:
        rows, curves = layer_rows(cfg, layer, setup.S)
        out["layer"] = {"rows": rows, "curves": curves, "eigenvalues": layer[3], "ranks": layer[4]}
    return out


def main_rows(cfg: Config, members: list, curves: dict, S: int) -> list[dict]:
    """The paper's main experiment, one row per table fit and replication horizon."""
    rows = []
    for name in plain_fits(cfg.fits):     # the strided fits' curves are off the replication's grid
        for Te in cfg.replication_T_epochs:
            if Te * S not in curves["steps"]:
                continue
            j = curves["steps"].index(Te * S)
            describe = {"setting": f"paper (main experiment), {name} fit", "fit": name, "partition": "quasi_node",
                        "dtype": cfg.fit_dtype, "cutoff": FITS[name].name,
                        "window_epochs": f"{cfg.window_epochs[0]}-{cfg.window_epochs[1]}",
                        "normalize": f"{cfg.normalize[0]}/{cfg.normalize[1]}", "steplr": cfg.gamma is not None}
            rows.append(replication_row(
                describe, Te, len(members), finite_median([m["test_loss_t2"] for m in members], empty=math.nan),
                (finite_median(curves["koopman_loss"][name][:, j], empty=math.nan),
                 finite_median(curves["koopman_acc"][name][:, j], empty=math.nan)),
                (finite_median(curves["optimizer_loss"][:, j], empty=math.nan),
                 finite_median(curves["optimizer_acc"][:, j], empty=math.nan)),
                finite_median([m["fits"][name]["max_spectral_radius"] for m in members], empty=math.nan)))
    return rows


#: the fields of an ablation row that describe its setting in the replication table
DESCRIBE = ("fit", "clip", "partition", "dtype", "cutoff", "window_epochs", "normalize", "steplr")


def setting_rows(cfg: Config, label: str, row: dict, curve: dict | None, S: int) -> list[dict]:
    """The replication rows of one ablation row (``label`` its setting in the replication table),
    one per replication horizon, with spreads where its ``curve`` is known."""
    return [replication_row({"setting": label, **{k: row[k] for k in DESCRIBE}}, Te, row["n_members"],
                            row["test_loss_t2"], (row[f"koopman_loss_T{Te}"], row[f"koopman_acc_T{Te}"]),
                            (row[f"optimizer_loss_T{Te}"], row[f"optimizer_acc_T{Te}"]), row["max_spectral_radius"],
                            spreads(curve, Te * S) if curve is not None else None)
            for Te in cfg.replication_T_epochs]


def layer_rows(cfg: Config, layer: tuple, S: int) -> tuple[list[dict], dict]:
    """The replication's layer-wise rows (:func:`.ablation.layerwise` plus its run), and its curves."""
    ev, radius, lt2, _, _, r = layer
    opt_steps, opt_loss, opt_acc = optimizer_curve(r, lt2, max(cfg.replication_T_epochs) * S)
    describe = {"setting": "replication", "fit": "replication", "clip": None, "partition": "layer",
                "dtype": "float32", "cutoff": cfg.replication_cutoff,
                "window_epochs": f"{cfg.replication_window_epochs[0]}-{cfg.replication_window_epochs[1]}",
                "normalize": f"{cfg.replication_normalize[0]}/{cfg.replication_normalize[1]}", "steplr": False}
    curve = {"steps": ev.steps, "koopman_loss": ev.loss.T, "koopman_acc": ev.acc.T, "optimizer_steps": opt_steps,
             "optimizer_loss": opt_loss.T, "optimizer_acc": opt_acc.T}
    rows = []
    for Te in cfg.replication_T_epochs:
        j = ev.steps.index(Te * S) if Te * S in ev.steps else None
        rows.append(replication_row(
            describe, Te, r.E, finite_median(r.loss_at(lt2), empty=math.nan),
            (finite_median(ev.loss[j], empty=math.nan) if j is not None else float("nan"),
             finite_median(ev.acc[j], empty=math.nan) if j is not None else float("nan")),
            (finite_median(r.loss_at(lt2 + Te * S), empty=math.nan),
             finite_median(r.grid[lt2 + Te * S][1], empty=math.nan)),
            finite_median(radius, empty=math.nan), spreads(curve, Te * S)))
    return rows, curve
