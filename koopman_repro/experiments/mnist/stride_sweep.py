"""Where the strided fit stops on MNIST (issue 24, item 4): the book's two strided fits (the library's
default and its stabilised form, :data:`koopman_lib.estimator.STRIDED_FITS`) fitted on every ``s``-th
snapshot of the paper's window, ``s`` in :data:`STRIDES` and the rule's stride
(:func:`koopman_lib.stride.choose_stride`, from the window's shape alone: marked ``rule``), on every
network of the paper's experiment, evolved the paper's horizon (``floor_horizon``: up to ``s - 1`` steps
short of ``T``) and scored by the table's scoring (:func:`.table2.fit_entry` ->
:func:`.scoring.score_horizon`) against each network's own Adadelta run: prediction quality (success,
median ``T_eq / T``, median test loss) against cost (fit seconds, snapshots kept).

The strides are fixed before any loss is seen: powers of two from 1 to 32 (the issue asks for 1 to at
least 32), plus the rule's. At ``s = 1`` the sweep's fits are the table's ``default`` and
``default-stabilised`` fits and at the rule's ``s`` its ``default-strided`` ones, value for value (tested).

A separate pass, as :mod:`.precision` and :mod:`.state`: the networks are trained again to ``t2`` in
the main table's groups of ``group_size`` (each network is its own seed, so it is the network of the
main table: its test loss at ``t2`` is compared and stored as ``same_network``), one group's recording
at a time (5 recordings of the window at paper: 0.95 GB in float32; 1 at ci), each group a resumable
stage ``stride-sweep-<inits>``. It runs with the cutoff sweep (both are the sweeps of "where it
stops" over every network; the regeneration check switches both off with ``cutoff_sweep=()``).

Cost, per network at profile paper: training to ``t2`` (5 epochs) and 2 fits x 7 strides, the fit at
``s = 1`` about as long as the table's default fit, each larger ``s`` about ``1 / s`` of it."""
from __future__ import annotations

import math
import time
from dataclasses import replace

import torch

from koopman_lib.estimator import STRIDED_FITS, Koopman
from koopman_lib.fit import FITS
from koopman_lib.metrics import finite_median
from koopman_lib.progress import bar
from koopman_lib.stride import choose_stride, strided_window

from ..images import release_memory
from .config import DTYPES, GUARD_GROWTH, Config, groups
from .fits import grid_of, horizon_of
from .table2 import fit_entry, loss_at
from .training import Setup, train_group, window_len

#: the strides of the sweep, chosen a priori (the rule's stride is added)
STRIDES = (1, 2, 4, 8, 16, 32)
#: the fits of the sweep: the book's two strided fits at every stride
SWEEP_FITS = tuple(STRIDED_FITS)


def sweep_strides(cfg: Config, setup: Setup) -> tuple[list[int], int]:
    """``(strides, rule)``: :data:`STRIDES` that leave the window at least 2 snapshots, with the rule's
    stride for the paper's window and partition, in order."""
    k = window_len(cfg, setup.S)
    rule = choose_stride(k, setup.partition)
    return sorted({s for s in STRIDES if s < k} | {rule}), rule


def network_points(cfg: Config, setup: Setup, run, window, theta_t2, j: int, epoch_losses: list,
                   strides: list[int]) -> dict:
    """Network ``j`` of ``run`` at every stride: ``{"<s>": {"fit_seconds", "snapshots", fit: entry}}``,
    each entry :func:`.table2.fit_entry`'s at the paper's horizon (``epoch_losses``: the network's own
    Adadelta test losses at t2 and after every later epoch)."""
    theta = theta_t2[j:j + 1]
    h = cfg.T_epochs
    one_horizon = replace(cfg, horizons_epochs=(h,))
    out = {}
    for s in strides:
        snaps = strided_window(window[:, j:j + 1], s)
        t0 = time.perf_counter()
        fits = Koopman(setup.partition, stride=s, dtype=DTYPES[cfg.fit_dtype]).fit_variants(
            snaps, {f: FITS[STRIDED_FITS[f]] for f in SWEEP_FITS})
        point = {"fit_seconds": time.perf_counter() - t0, "snapshots": int(snaps.shape[0])}
        T = horizon_of(h * setup.S, s)
        for f, kp in fits.items():
            ro = kp.rollout(theta, T, every=grid_of(cfg.eval_every, s), loss_fn=run.evaluate,
                            max_growth=GUARD_GROWTH)
            at = loss_at(kp, ro, theta, T, run.evaluate)
            entry, _, _ = fit_entry(one_horizon, setup, kp, ro, list(ro.steps), epoch_losses, {h: at})
            point[f] = entry
        out[str(s)] = point
    return out


def sweep_group(cfg: Config, setup: Setup, ids: list[int], epoch_loss: dict, test_loss_t2: dict) -> dict:
    """Train inits ``ids`` to ``t2`` (the paper's settings) and sweep each: ``{"<init>": {"same_network":
    test loss at t2 equal to the main table's, "strides": network_points(...)}}`` (``epoch_loss``,
    ``test_loss_t2``: per init, from the main table's run)."""
    strides, _ = sweep_strides(cfg, setup)
    run = train_group(cfg, setup.paper_cond, ids, setup.data, cfg.window_epochs[1], setup.grid_from, setup.t2,
                      desc=f"stride sweep: train inits {ids[0]}-{ids[-1]}")
    window = run.window(*run.epoch_window(*cfg.window_epochs))
    theta_t2 = run.snap(setup.t2).clone()
    out = {}
    for j, i in enumerate(bar(ids, desc="stride sweep: fits")):
        out[str(i)] = {"same_network": float(run.loss_at(setup.t2)[j]) == test_loss_t2[i],
                       "strides": network_points(cfg, setup, run, window, theta_t2, j, epoch_loss[i], strides)}
    del run, window
    release_memory()
    return out


def stride_sweep(cfg: Config, setup: Setup, partial, members: list, curves: dict) -> dict:
    """``{"stride_sweep": rows, "stride_sweep_members": per network}`` of the networks of the main table
    (``members``, ``curves["epoch_loss"]`` their Adadelta runs' per-epoch test losses), empty without the
    cutoff sweep (:data:`STRIDES`, :func:`sweep_rows`)."""
    if not cfg.cutoff_sweep or not members:
        return {"stride_sweep": [], "stride_sweep_members": {}}
    e2 = cfg.window_epochs[1]
    epoch_loss = {m["init"]: curves["epoch_loss"][n, e2:].tolist() for n, m in enumerate(members)}
    t2_loss = {m["init"]: m["test_loss_t2"] for m in members}
    per: dict = {}
    for g in groups(cfg):
        per.update(partial.stage("stride-sweep-" + "-".join(map(str, g)),
                                 lambda g=g: sweep_group(cfg, setup, g, epoch_loss, t2_loss)))
    return {"stride_sweep": sweep_rows(cfg, setup, per, {m["init"]: m for m in members}),
            "stride_sweep_members": per}


def sweep_rows(cfg: Config, setup: Setup, per: dict, members: dict) -> list[dict]:
    """One row per fit and stride: snapshots kept and pairs per coordinate of the largest block, the
    steps predicted, success (``T_eq > 0``), median ``T_eq / T``, median Koopman and Adadelta test loss at
    the horizon, median largest eigenvalue modulus, median fit seconds per network."""
    strides, rule = sweep_strides(cfg, setup)
    m = max(int(g.shape[1]) for g in setup.partition.groups)
    h = cfg.T_epochs
    rows = []
    for f in SWEEP_FITS:
        for s in strides:
            pts = [(i, p["strides"][str(s)]) for i, p in per.items()]
            ent = [pt[f][f"T{h}"] for _, pt in pts]
            n = len(ent)
            rows.append({"fit": f, "stride": s, "rule": s == rule, "T_epochs": h,
                         "horizon_steps": horizon_of(h * setup.S, s), "n_inits": n,
                         "snapshots": pts[0][1]["snapshots"], "pairs_per_coordinate": (pts[0][1]["snapshots"] - 1) / m,
                         "success_rate": sum(e["T_eq_epochs"] > 0 for e in ent) / n,
                         "teq_over_t_median": finite_median([e["teq_over_t"] for e in ent]),
                         "koopman_loss_median": finite_median([e["koopman_loss"] for e in ent], empty=math.nan),
                         "optimizer_loss_median": finite_median([members[int(i)][f"optimizer_loss_T{h}"]
                                                                 for i, _ in pts]),
                         "median_max_spectral_radius": finite_median([pt[f]["max_spectral_radius"] for _, pt in pts]),
                         "fit_seconds_median": finite_median([pt["fit_seconds"] for _, pt in pts]),
                         "all_same_networks": all(p["same_network"] for p in per.values())})
    return rows
