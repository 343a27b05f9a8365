"""The stages of a run (issue 22, item 5): one optimizer's networks in one training dtype, trained alone
and read with every fit (:func:`optimizer_stage`), then the stages of a dtype joined into the rows a
batched run of every optimizer gives (:func:`join_stages`).

Training one optimizer at a time changes no value: a network is its own seed and its rounding does not
depend on the other networks in the batch (package docstring), and a training step costs about the same
per network alone as batched (measured at profile paper, 1 thread: 1.35 ms per step for one optimizer's 25
networks in float32, 5.2 ms for all three's 75). It holds one optimizer's recordings at a time, a third of
a batched run's (at profile paper in float64 training: 0.30 GB of weights and up to 0.91 GB of state
instead of 0.91 GB and 2.4 GB). Each stage's result is plain data, kept by :class:`koopman_repro.partial.Partial`
as ``<dtype>-<optimizer>``, so an interrupted run resumes at the first stage it had not finished.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from koopman_lib.partition import make_partition
from koopman_lib.recorder import TrajectoryRecorder

from ...check_values import EARLY_STEPS, EarlyNorms, merge
from .fit_methods import fit_stride, horizon
from .ode_check import ode_check_rows, ode_part
from .readings import Run, read_optimizer, t_grid
from .rounding import rounded
from .state_fit import read_state, state_keys, state_layout, state_recorder_factory, state_rows
from .stride_sweep import sweep_rows
from .table import spectra, table_rows
from .timing import step_timing
from .training import DTYPES, _setup, inits, train, training_curves
from .where_it_stops import layer_blocks, where_it_stops

if TYPE_CHECKING:
    from . import Config


def fit_horizons(cfg: Config, partition, n_params: int) -> list[int]:
    """Every horizon a fit of the run predicts for a ``T`` of ``Ts`` (:func:`~.fit_methods.horizon`): the
    weights' fits at their strides, and the state-augmented fits at theirs (for the augmented blocks)."""
    k = cfg.t2 - cfg.t1 + 1
    strides = {fit_stride(f, k, partition) for f in cfg.fits}
    for name in (o for o in cfg.optimizers if o in cfg.state_optimizers):
        aug = state_layout(name, cfg, n_params).augment(partition)
        strides |= {fit_stride(f, k, aug) for f in cfg.state_fits}
    return sorted({horizon(T, s) for T in cfg.Ts for s in strides})


def read_all(run: Run, recorders, state_recorders) -> dict:
    """Every reading of every optimizer of ``run``, one optimizer at a time: the named fits, the fit methods
    and the stride sweep of its weight recording, which is then freed (the window keeps ``w(t2)`` only),
    then the state-augmented fits of its state recording, then freed."""
    cfg = run.cfg
    out = {"res": {f: {} for f in cfg.fits}, "res_m": {m: {} for m in cfg.fit_methods},
           "res_state": {f: {} for f in cfg.state_fits}, "kept": {}, "sweep": [], "state_keys": {}}
    for k, name in enumerate(run.names):
        kept = out["kept"][name] = read_optimizer(run, k, recorders[k].snapshots, out["res"], out["res_m"])
        w = kept.pop("window")
        if cfg.sweep_strides:
            out["sweep"] += sweep_rows(run, w, k)
        recorders[k].snapshots = None  # free the weight recording: only w(t2) is read from here on
        w = replace(w, snaps=w.snaps[-1:].clone())
        rec = state_recorders[k] if state_recorders else None
        if rec is not None:
            read_state(run, k, rec, w, out["res_state"])
            out["state_keys"][name] = state_keys(rec, run.partition)
            rec.snapshots = None  # free the state recording
    return out


def train_optimizer(cfg: Config, dtype_name: str, name: str) -> tuple[Run, list]:
    """Optimizer ``name``'s networks (:func:`~.training.inits`, the rows of its seed stream) trained alone
    in ``dtype_name``, its weights (float64) and state recorded over the window: ``(run, recorders)``."""
    dtype = DTYPES[dtype_name]
    torch.manual_seed(cfg.seed)  # the global generators feed only the paper-style timing's permutation
    np.random.seed(cfg.seed)     # (whose losses are thrown away); every network draws from its own seed
    problem, theta0 = _setup(cfg, dtype)
    E, k = len(inits(cfg)), list(cfg.optimizers).index(name)
    theta0 = theta0[k * E:(k + 1) * E]
    partition = make_partition(problem.shapes, list(cfg.partition))
    recorders = [TrajectoryRecorder(theta0.shape[1], cfg.t1, cfg.t2, (E,), mode="stored")]
    grid = t_grid(max(cfg.Ts), cfg.curve_points, cfg.Ts)
    window = list(range(cfg.t1, cfg.n_steps + 1, cfg.window_stride))
    horizons = fit_horizons(cfg, partition, problem.n_params)
    steps = set(window) | {cfg.t2 + T for T in grid} | {cfg.t2 + h for h in horizons} | set(EARLY_STEPS)
    tr = train(problem, theta0, [name], cfg, cfg.n_steps, recorders, sorted(steps), cfg.gradient,
               state_recorders=state_recorder_factory(cfg, [name], dtype))
    run = Run(cfg, dtype_name, dtype, problem, partition, [name], tr, tr.losses.to(torch.float64), grid, window,
              layer_blocks(partition, problem.shapes), tuple(horizons))
    return run, recorders


def optimizer_stage(cfg: Config, dtype_name: str, name: str) -> dict:
    """One stage: optimizer ``name`` trained in ``dtype_name`` (:func:`train_optimizer`), every reading of
    its window, its step timing, its rows of every table and its parts of the figures, as plain data
    (what :func:`join_stages` joins)."""
    run, recorders = train_optimizer(cfg, dtype_name, name)
    r = read_all(run, recorders, run.tr.state_recorders)
    res, kept = r["res"], r["kept"][name]
    timing = step_timing(run.problem, run.tr.theta, [name], {name: kept["koopman_time"]}, cfg, run.dtype)
    table, networks, methods_table = table_rows(run, res, r["res_m"], {name: kept["cond_F"]}, timing)
    stops = [where_it_stops(res[f][name], [r for r in table if r["fit"] == f], run.layers,
                            {"optimizer": name, "train_dtype": dtype_name, "fit": f}) for f in cfg.fits]
    state_table, state_networks = state_rows(run, r["res_state"], res, r["state_keys"])
    return {
        "table": table, "networks": networks, "fit_methods_table": methods_table, "where_it_stops": stops,
        "stride_sweep": r["sweep"], "state_observables": state_table, "state_networks": state_networks,
        "ode": ode_part(run.problem, run.tr.theta, run.losses, name, cfg, dtype_name),
        "timing": timing[name], "spectra": spectra(res, run), "curves": training_curves(run.losses, [name], cfg),
        "sv0": kept["sv0"], "cond_F": {"max": kept["cond_F"].amax(1).tolist(),
                                       "median": kept["cond_F"].median(1).values.tolist()},
        "grid": run.grid, "opt_curve": rounded(kept["opt_curve"]),
        "koopman_loss": {f: rounded(res[f][name]["koopman_loss"]) for f in cfg.fits},
        "fig2d": kept["fig2d"], "fig2e": res[cfg.fits[0]][name]["fig2e"],
        "training_seconds": run.tr.seconds, "early": early_norms(run)}


def early_norms(run: Run) -> dict[int, dict[str, float]]:
    """Each network's weight norm at :data:`~koopman_repro.check_values.EARLY_STEPS` (those up to
    ``n_steps``), per optimizer: keys ``early:{dtype}/{optimizer}/weights_norm@S``."""
    parts = []
    for k, name in enumerate(run.names):
        early = EarlyNorms(run.inits, prefix=f"{run.dtype_name}/{name}/")
        for step in (s for s in EARLY_STEPS if s in run.tr.stored_steps):
            early(step, run.stored_at(step, slice(k * run.E, (k + 1) * run.E)))
        parts.append(early.values())
    return merge(*parts)


def interleave(parts: list[list[dict]], key) -> list[dict]:
    """The rows of every optimizer's stage (``parts``, in the order of ``cfg.optimizers``) in the order a
    batched run makes them: grouped by ``key(row)`` (the groups in the order they first appear), the
    optimizers in order within a group."""
    order, groups = [], []
    for rows in parts:
        groups.append({})
        for r in rows:
            k = key(r)
            if k not in order:
                order.append(k)
            groups[-1].setdefault(k, []).append(r)
    return [r for k in order for g in groups for r in g.get(k, [])]


def _fit_T(r: dict):
    return r["fit"], r["T"]


def join_stages(cfg: Config, dtype_name: str, parts: list[dict]) -> dict:
    """The results of every optimizer trained in ``dtype_name`` (``parts``: each one's
    :func:`optimizer_stage`, in the order of ``cfg.optimizers``), as :func:`~koopman_repro.experiments.
    de_solver.run_dtype` returns them."""
    names, first = list(cfg.optimizers), parts[0]
    by = dict(zip(names, parts))
    ode_rows, ode = ode_check_rows([p["ode"] for p in parts], names, cfg)
    seconds = sum(p["training_seconds"] for p in parts)
    return {
        **{key: interleave([p[key] for p in parts], _fit_T) for key in ("table", "networks", "state_observables",
                                                                         "state_networks")},
        "fit_methods_table": interleave([p["fit_methods_table"] for p in parts],
                                        lambda r: (r["fit"], r["fit_method"], r["T"])),
        "where_it_stops": [s for p in parts for s in p["where_it_stops"]], "ode_check": ode_rows,
        "stride_sweep": [s for p in parts for s in p["stride_sweep"]], "ode": ode,
        "timing": {n: p["timing"] for n, p in by.items()},
        "spectra": {f: {n: p["spectra"][f][n] for n, p in by.items()} for f in cfg.fits},
        "curves": {"steps": first["curves"]["steps"], **{n: p["curves"][n] for n, p in by.items()}},
        "singular_values_init0": {n: p["sv0"] for n, p in by.items()},
        "cond_F": {n: p["cond_F"] for n, p in by.items()},
        "fig2b": {"T": first["grid"], "optimizer_loss": {n: p["opt_curve"] for n, p in by.items()},
                  "koopman_loss": {f: {n: p["koopman_loss"][f] for n, p in by.items()} for f in cfg.fits}},
        "fig2d": {n: p["fig2d"] for n, p in by.items()},
        "fig2e": {cfg.fits[0]: {n: p["fig2e"] for n, p in by.items()}},  # the main fit (size)
        "training_seconds": seconds, "training_step_seconds": seconds / cfg.n_steps,
        "early": merge(*(p["early"] for p in parts))}
