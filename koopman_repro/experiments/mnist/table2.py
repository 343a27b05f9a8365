"""The paper's experiment (Table 2, Fig. 3b, S10): every group of inits trained under the paper's
settings, each network fitted once per block for the table's fits and every cutoff of the sweep,
evolved with its own guard; ``T_eq`` per fit and horizon; init 0's trajectories, spectra and the
Cholesky comparison; Table 2 (success, ``T_eq/T``, the two speedups per fit and horizon)."""
from __future__ import annotations

import math

import numpy as np
import torch

from koopman_lib.estimator import Koopman, fit_named
from koopman_lib.errors import FitError
from koopman_lib.evolve import path as evolve_path
from koopman_lib.fit import singular_values
from koopman_lib.metrics import finite_median, success
from koopman_lib.progress import bar
from koopman_lib.solvers import finite_section
from ...check_values import EarlyNorms
from ..images import Run, release_memory
from .config import DTYPES, GUARD_GROWTH, Config, groups
from .cutoff_sweep import sweep_specs
from .fits import cutoff_name, grid_of, horizon_of, plain_fits, round_complex, round_weights, strided_fits
from . import scoring
from .null import NullBranch, null_entry
from ...partial import Partial
from .training import Setup, Tracker, optimizer_curve, recorded_steps, tracked_coordinates, train_group


def member_row(cfg: Config, setup: Setup, run: Run, j: int, i: int, epoch_loss: torch.Tensor) -> dict:
    """Init ``i`` (member ``j`` of ``run``): its test loss at t2 and the optimizer's after each horizon;
    ``fits`` is filled by :func:`fit_member`."""
    S, t2 = setup.S, setup.t2
    return {"init": i, "test_loss_t2": float(epoch_loss[cfg.window_epochs[1], j]),
            **{f"optimizer_loss_T{h}": float(run.loss_at(t2 + h * S)[j]) for h in cfg.horizons_epochs},
            **{f"optimizer_acc_T{h}": float(run.grid[t2 + h * S][1][j]) for h in cfg.horizons_epochs},
            "fits": {}}


def fit_entry(cfg: Config, setup: Setup, kp: Koopman, ro, opt_steps: list, epoch_losses: list,
              at: dict | None = None) -> tuple:
    """One network's entry for one fit ``kp`` and its rollout ``ro``: spectral radius, guard stop,
    layer-1 rank, blocks outside the unit circle, the fit's stride and ``T_eq`` per horizon
    (``epoch_losses``: the optimizer's test loss at t2 and after every later epoch), from the test
    loss and accuracy at each horizon (``at`` ``{h: (loss, acc)}``, else read off ``ro`` at ``h``
    epochs). Returns ``(entry, loss curve, accuracy curve)`` on the optimizer's grid ``opt_steps``
    (nan where the rollout has no value)."""
    kl = torch.full((len(opt_steps),), float("nan"), dtype=torch.float64)
    ka = kl.clone()
    for st, l, a in zip(ro.steps, ro.loss[:, 0], ro.acc[:, 0]):
        if st in opt_steps:
            kl[opt_steps.index(st)], ka[opt_steps.index(st)] = l, a
    ops = kp.operators_
    radii = [op.spectral_radius() for op in ops]                     # one eigensolve per block
    entry = {"max_spectral_radius": float(max(r.max() for r in radii)),
             "rollout_stopped_at": ro.stopped_at[0], "stop_reason": ro.reason[0],
             "mean_rank_layer1_blocks": float(ops[0].rank.double().mean()),
             "blocks_outside_unit_circle": [int((r > 1).sum()) for r in radii], "stride": kp.stride_ or 1}
    for h in cfg.horizons_epochs:
        lo, ac = at[h] if at is not None else \
            (float(kl[opt_steps.index(h * setup.S)]), float(ka[opt_steps.index(h * setup.S)]))
        entry[f"T{h}"] = scoring.score_horizon(lo, ac, epoch_losses, h, "koopman",
                                               horizon_of(h * setup.S, entry["stride"]))
    return entry, kl, ka


def loss_at(kp: Koopman, ro, theta, T: int, evaluate) -> tuple[float, float]:
    """Test loss and accuracy of ``kp``'s prediction ``T`` steps from ``theta`` ``(1, D)``, read off its
    guarded rollout ``ro`` (one more guarded rollout where ``T`` is off its grid); ``(nan, nan)`` where
    the guard stopped it at or before ``T``."""
    if ro.stopped_at[0] is not None and ro.stopped_at[0] <= T:
        return math.nan, math.nan
    r = ro if T in ro.steps else kp.rollout(theta, T, loss_fn=evaluate, max_growth=GUARD_GROWTH)
    i = list(r.steps).index(T)
    return float(r.loss[i, 0]), float(r.acc[i, 0])


def strided_member(cfg: Config, setup: Setup, run: Run, window, theta_t2, j: int, opt_steps: list,
                   epoch_loss: torch.Tensor, row: dict, curves: dict) -> None:
    """Member ``j``'s strided fits (:func:`koopman_lib.estimator.fit_named`: the default fits of
    every ``s``-th snapshot), into ``row["fits"]`` and ``curves``: each evolved with its own guard
    over :func:`.fits.horizon_of` the longest horizon, evaluated on the grid :func:`.fits.grid_of`
    (multiples of ``s`` on the run's grid), and at each horizon's :func:`.fits.horizon_of` (up to
    ``s - 1`` steps short of ``h`` epochs; one more guarded rollout where that step is off the grid)."""
    theta = theta_t2[j:j + 1]
    for name, kp in fit_named(setup.partition, window[:, j:j + 1], strided_fits(cfg.fits),
                              dtype=DTYPES[cfg.fit_dtype]).items():
        s = kp.stride_
        ro = kp.rollout(theta, horizon_of(setup.H, s), every=grid_of(cfg.eval_every, s), loss_fn=run.evaluate,
                        max_growth=GUARD_GROWTH)
        at = {h: loss_at(kp, ro, theta, horizon_of(h * setup.S, s), run.evaluate) for h in cfg.horizons_epochs}
        row["fits"][name], kl, ka = fit_entry(cfg, setup, kp, ro, opt_steps,
                                              epoch_loss[cfg.window_epochs[1]:, j].tolist(), at)
        curves[name] = (kl, ka)


def fit_member(cfg: Config, setup: Setup, run: Run, window, theta_t2, j: int, i: int, opt_steps: list,
               epoch_loss: torch.Tensor, keep_dense: bool) -> tuple[dict, dict, dict]:
    """Fit and evolve member ``j`` (init ``i``) with every fit of the table (the strided ones by
    :func:`strided_member`) and the sweep. Returns ``(member row, {fit: (loss curve, accuracy curve)}
    of the table's fits, {fit: dense Koopman}`` (the table's fits of every snapshot, only when
    ``keep_dense``: init 0's Fig. 3b paths, eigenvalues, Cholesky check))."""
    row, curves, dense = member_row(cfg, setup, run, j, i, epoch_loss), {}, {}
    # one factorisation per block serves the table's fits and every cutoff of the sweep
    fits = Koopman(setup.partition, dtype=DTYPES[cfg.fit_dtype]).fit_variants(window[:, j:j + 1], sweep_specs(cfg))
    for name, kp in fits.items():
        # each network evolves with its own guard (weights non-finite or 1000x their norm at t2,
        # checked at every evaluation point); the table's fits are evaluated every eval_every
        # steps (the curves), the other cutoffs of the sweep once per epoch
        main = name in cfg.fits
        ro = kp.rollout(theta_t2[j:j + 1], setup.H, every=cfg.eval_every if main else setup.S,
                        loss_fn=run.evaluate, max_growth=GUARD_GROWTH)
        row["fits"][name], kl, ka = fit_entry(cfg, setup, kp, ro, opt_steps,
                                              epoch_loss[cfg.window_epochs[1]:, j].tolist())
        if main:
            curves[name] = (kl, ka)
            if keep_dense:
                dense[name] = Koopman.from_operators(setup.partition, [op.as_dense() for op in kp.operators_])
    strided_member(cfg, setup, run, window, theta_t2, j, opt_steps, epoch_loss, row, curves)
    return row, curves, dense


def fit_group(cfg: Config, setup: Setup, run: Run, window, theta_t2, ids: list, members: list, curves: dict,
              keep_dense: bool, null: dict) -> dict:
    """Fit every member of one trained group, appending to ``members`` and ``curves``, each member
    with its entry of the optimizer against itself (``null``: the group's :meth:`.null.NullBranch.curve`,
    scored by :func:`.null.null_entry`; ``None``: none); returns init 0's dense fits when ``keep_dense`` (else ``{}``)."""
    opt_steps, opt_loss, opt_acc = optimizer_curve(run, setup.t2, setup.H)
    epoch_loss = run.epoch_losses(cfg.epochs)            # (epochs+1, E)
    epoch_acc = torch.stack([run.grid[e * setup.S][1] for e in range(cfg.epochs + 1)])
    curves["steps"] = opt_steps
    init0 = {}
    for j, i in enumerate(bar(ids, desc="fits + rollouts")):
        row, kcurves, dense = fit_member(cfg, setup, run, window, theta_t2, j, i, opt_steps, epoch_loss,
                                         keep_dense and j == 0)
        for name, (kl, ka) in kcurves.items():
            curves["koopman_loss"].setdefault(name, []).append(kl)
            curves["koopman_acc"].setdefault(name, []).append(ka)
        init0.update(dense)
        members.append(row)
        if null is not None:
            row["null"] = null_entry(null, j, epoch_loss[cfg.window_epochs[1]:, j].tolist(), cfg.horizons_epochs,
                                     setup.S)
            curves["null_loss"].append(null["loss"][:, j])
            curves["null_acc"].append(null["acc"][:, j])
        curves["optimizer_loss"].append(opt_loss[:, j])
        curves["optimizer_acc"].append(opt_acc[:, j])
        curves["epoch_loss"].append(epoch_loss[:, j])
        curves["epoch_acc"].append(epoch_acc[:, j])
    return init0


def trajectories(cfg: Config, setup: Setup, track: Tracker, init0: dict, theta_t2) -> tuple[dict, dict]:
    """Fig. 3b: a few weights of init 0 under the optimizer (``track``) and under each table fit's
    dense operators (``init0``) from t2 over the paper's horizon; and init 0's eigenvalues per fit.
    Returns ``(trajectories, eigenvalues_init0)``."""
    coords = tracked_coordinates(setup.shapes)
    traj = {"labels": [c for c, _ in coords], "optimizer_from_step": track.first,
            "optimizer": round_weights(track.values.T), "koopman_from_step": setup.t2, "koopman": {}}
    eigenvalues = {}
    for name in plain_fits(cfg.fits):
        kt = init0[name]
        kpaths = []
        for _, coord in coords:
            for g, idx in enumerate(setup.partition.groups):
                hit = (idx == coord).nonzero()
                if hit.numel():
                    p, col = int(hit[0, 0]), int(hit[0, 1])
                    U = kt.operators_[g].U[p:p + 1]                     # init 0's operator
                    w0 = theta_t2[0, idx[p]].to(torch.float64).unsqueeze(0)
                    kpaths.append(evolve_path(U, w0, setup.T)[:, 0, col])
                    break
        traj["koopman"][name] = round_weights(torch.stack(kpaths))
        eigenvalues[name] = round_complex(torch.cat([op.eigenvalues().reshape(-1) for op in kt.operators_]))
    return traj, eigenvalues


def cholesky_check(partition, snaps, theta_t2, T, kt_pinv, evaluate_fn, loss_pinv) -> dict:
    """Init 0: pinv operators (``kt_pinv``, dense) vs Cholesky on the normal equations (= a
    streaming Gram recording), block group by block group."""
    x64 = snaps.to(torch.float64)
    out = {"blocks": [], "loss_pinv_T": loss_pinv}
    chol_ops = []
    for g, (idx, x) in enumerate(zip(partition.groups, partition.time_last(x64))):   # x: (P, m, k)
        S = singular_values(x)
        cond = S[..., 0] / S[..., -1]
        U_p = kt_pinv.operators_[g].as_dense()                        # init 0
        try:
            U_c = finite_section(x, "cholesky")
            rel = ((U_c - U_p).flatten(1).norm(dim=1) / U_p.flatten(1).norm(dim=1))
            failed = 0
            chol_ops.append(U_c)
        except FitError as e:
            rel = torch.full((idx.shape[0],), float("nan"))
            failed = idx.shape[0]
            chol_ops.append(None)
            out.setdefault("errors", []).append(str(e)[:200])
        out["blocks"].append({"block_size": int(idx.shape[1]), "n_blocks": int(idx.shape[0]),
                              "cond_F_median": float(cond.median()), "cond_F_max": float(cond.max()),
                              "rel_diff_median": finite_median(rel, empty=math.nan),
                              "rel_diff_max": (float(np.nanmax(rel.numpy())) if torch.isfinite(rel).any()
                                               else float("nan")),
                              "cholesky_failed_blocks": failed})
    if all(c is not None for c in chol_ops):
        kc = Koopman.from_operators(partition, chol_ops, (), method="cholesky")
        wc = kc.predict(theta_t2, T)
        wp = kt_pinv.predict(theta_t2, T)
        out["weights_rel_diff_T"] = float((wc - wp).norm() / wp.norm())
        out["loss_cholesky_T"] = float(evaluate_fn(wc)[0][0])
    return out



def new_curves() -> dict:
    """Per-network curves of the paper's experiment, filled by :func:`fit_group` (lists of ``(n,)`` tensors)."""
    return {"steps": None, "optimizer_loss": [], "optimizer_acc": [], "epoch_loss": [], "epoch_acc": [],
            "koopman_loss": {}, "koopman_acc": {}, "null_loss": [], "null_acc": []}


def paper_group(cfg: Config, setup: Setup, ids: list[int], init0_studies=None) -> dict:
    """Train inits ``ids`` under the paper's settings and fit every member: ``{"members": rows,
    "curves": per-network curves (:func:`new_curves`), "early": {init: early weight norms}
    (:class:`koopman_repro.check_values.EarlyNorms`), "init0": init0_studies(run, window, theta_t2,
    track, init0, members)}`` (``None`` without ``init0_studies``, which the first group gets). The
    group's recording is released before it returns."""
    # Fig. 3b: a few weights of init 0 from one epoch before t2 to the end of the grid
    track = Tracker([c for _, c in tracked_coordinates(setup.shapes)],
                    max(recorded_steps(cfg, setup.S)[0], setup.t2 - setup.S), setup.grid_to) \
        if init0_studies else None
    early = EarlyNorms(ids)
    hooks = [h for h in (track, early) if h is not None]

    def on_step(step, theta):
        for h in hooks:
            h(step, theta)

    # the optimizer against itself: Adadelta continued from its state at t2 over the longest horizon
    null = NullBranch.of(cfg, setup.paper_cond, setup.data, ids, cfg.window_epochs[1], max(cfg.horizons_epochs)) \
        if cfg.null_model else None
    run = train_group(cfg, setup.paper_cond, ids, setup.data, cfg.epochs, setup.grid_from, setup.grid_to,
                      on_step=on_step, desc=f"train {cfg.train_dtype} inits {ids[0]}-{ids[-1]}", on_epoch=null)
    window = run.window(*run.epoch_window(*cfg.window_epochs))
    theta_t2 = run.snap(setup.t2).clone()      # not a view: the recording goes with the group
    members, curves = [], new_curves()
    init0 = fit_group(cfg, setup, run, window, theta_t2, ids, members, curves, init0_studies is not None,
                      null and null.curve())
    release_memory()      # what the fits left on the heap, before init 0's studies (the run's peak, issue 26)
    studies = init0_studies(run, window, theta_t2, track, init0, members) if init0_studies else None
    return {"members": members, "curves": curves, "early": early.values(), "init0": studies}


def paper_experiment(cfg: Config, setup: Setup, init0_studies, partial: Partial,
                     stage: str = "group-") -> tuple[list, dict, dict, dict]:
    """Train every group of inits (:func:`.config.groups`) under the paper's settings and fit every
    member, one group at a time (:func:`paper_group`; a group that ``partial`` kept from an
    interrupted run with this config is read back: stages named ``stage`` and the inits). Returns ``(members, curves (stacked),
    init0_studies(...) of the first group, {init: early weight norms})``."""
    members: list = []
    curves, early, first = new_curves(), {}, {}
    for gi, ids in enumerate(groups(cfg)):
        done = partial.stage(stage + "-".join(map(str, ids)),
                             lambda: paper_group(cfg, setup, ids, init0_studies if gi == 0 else None))
        release_memory()
        members += done["members"]
        early.update(done["early"])
        first = done["init0"] if gi == 0 else first
        for k, v in done["curves"].items():
            if k == "steps":
                curves[k] = v
            elif isinstance(v, list):
                curves[k] += v
            elif isinstance(v, dict):
                for name, c in v.items():
                    curves[k].setdefault(name, []).extend(c)
    curves = {k: (torch.stack(v) if isinstance(v, list) and v and isinstance(v[0], torch.Tensor) else
                  None if isinstance(v, list) and not v and k.startswith("null") else
                  {n: torch.stack(c) for n, c in v.items()} if isinstance(v, dict) else v)
              for k, v in curves.items()}
    return members, curves, first, early


def add_speedups(rows: list[dict], timing: dict, t_ko: float, after: int) -> None:
    """Add to each network's horizon entry in ``rows`` its equivalent run time (S10 eq. 13) with
    the paper-style and the fast-loop epoch times of ``timing`` over the ``after`` optimizer epochs
    after t2, and the two speedups against ``t_ko``, the timed Koopman path of that fit and horizon."""
    scoring.add_equivalent_times(rows, timing, after)
    for r in rows:
        r["speedup_paper_style"] = r["equivalent_seconds_paper_style"] / t_ko
        r["speedup_fast_loop"] = r["equivalent_seconds_fast_loop"] / t_ko


def table_row(members: list, name: str, h: int, t_ko: float, S: int) -> dict:
    """Table 2's row of fit ``name`` at horizon ``h`` epochs over ``members`` (with speedups,
    :func:`add_speedups`): success, median T_eq/T, the speedups (median over the inits Koopman
    training improved, None when none did; over all inits, a failed one counting 0, in ``*_all``)."""
    rows = [m["fits"][name][f"T{h}"] for m in members]
    teq = np.array([r["T_eq_epochs"] for r in rows])
    ok = [r for r in rows if r["T_eq_epochs"] > 0]
    stops = [m["fits"][name]["rollout_stopped_at"] for m in members]
    nan = math.nan
    return {
        "variant": f"paper settings, {name} fit", "fit": name, "cutoff": cutoff_name(name),
        "n_inits": len(members), "T_epochs": h, "stride": members[0]["fits"][name]["stride"],
        "horizon_steps": rows[0]["horizon_steps"],
        "success_rate": float(success(teq).mean()),
        "teq_over_t_median": float(np.median(teq / h)),
        "speedup_paper_style_median": finite_median([r["speedup_paper_style"] for r in ok], empty=nan) if ok else None,
        "speedup_fast_loop_median": finite_median([r["speedup_fast_loop"] for r in ok], empty=nan) if ok else None,
        "speedup_paper_style_median_all": finite_median([r["speedup_paper_style"] for r in rows], empty=nan),
        "speedup_fast_loop_median_all": finite_median([r["speedup_fast_loop"] for r in rows], empty=nan),
        "koopman_seconds": t_ko,
        "censored_fraction": float(np.mean([r["censored"] for r in rows])),
        "koopman_loss_T_median": finite_median([r["koopman_loss"] for r in rows], empty=nan),
        "optimizer_loss_T_median": finite_median([m[f"optimizer_loss_T{h}"] for m in members], empty=nan),
        "test_loss_t2_median": finite_median([m["test_loss_t2"] for m in members], empty=nan),
        "koopman_acc_T_median": finite_median([r["koopman_acc"] for r in rows], empty=nan),
        "optimizer_acc_T_median": finite_median([m[f"optimizer_acc_T{h}"] for m in members], empty=nan),
        "max_spectral_radius_median": finite_median([m["fits"][name]["max_spectral_radius"] for m in members],
                                                    empty=nan),
        "guard_stops": int(sum(s is not None and s <= h * S for s in stops)),
    }


def table_rows(cfg: Config, members: list, timing: dict, after: int, S: int) -> list[dict]:
    """Table 2, one row per (fit, horizon): success, T_eq/T and the two speedups, each speedup
    against the timed fit + rollout of that very fit and horizon."""
    table = []
    for name in cfg.fits:
        for h in cfg.horizons_epochs:
            t_ko = timing["koopman_seconds"][name][f"T{h}"]            # the timed path of this row
            add_speedups([m["fits"][name][f"T{h}"] for m in members], timing, t_ko, after)
            table.append(table_row(members, name, h, t_ko, S))
    return table
