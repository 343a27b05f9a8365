"""Table 1 of the paper, per reading: the ``table`` rows (one per training dtype, fit, ``T`` and
optimizer, with speedups), the per-network ``networks`` rows, the ``fit_methods_table`` rows (the
fit-method comparison, no timing) and the operators' ``spectra``."""
from __future__ import annotations

from koopman_lib.estimator import STRIDED_FITS
from koopman_lib.metrics import finite_median

from .fit_methods import cutoff_name, fit_label
from .readings import Run
from .rounding import rounded


def network_rows(a: dict, run: Run, k: int, T: int, keys: dict, cond_F, kept, tm=None) -> list[dict]:
    """One row per network of optimizer ``k`` in reading ``a`` (an :func:`~.readings.analyse`
    result) at ``T``; ``kept`` the networks' kept-rank fractions (or ``None``), ``cond_F`` the blocks'
    ``cond(F)`` ``(E, n_blocks)`` (or ``None``), ``tm`` the optimizer's timing (without it, no speedups)."""
    cfg, E, name = run.cfg, run.E, run.names[k]
    bt = a["by_T"][T]
    rho = a["radii"].amax(1)
    kt = None if tm is None else tm["koopman"][keys["fit"]]["fit_and_jump_seconds"][T]
    nets = []
    for e, (p, pa) in enumerate(zip(bt["parts"], bt["other"])):
        nets.append({**keys, "optimizer": name, "init": run.inits[e], "T": T, "horizon": bt["horizon"],
                     "teq": p.value, "teq_over_t": p.value / T, "censored": p.censored, "success": p.value > 0,
                     "teq_over_t_other_origin": pa.value / T,
                     "loss_t2": float(run.losses[cfg.t2, k * E + e]),
                     "loss_koopman": float(a["koopman_loss"][e, run.grid.index(T)]),
                     "loss_optimizer_at_T": float(run.losses[cfg.t2 + T, k * E + e]),
                     "relative_weight_error": bt["rel_error"][e],
                     "error_ratio": bt["error_ratio_networks"][e],
                     "mean_abs_error": bt["mean_abs_error"][e],
                     "speedup_paper_style": None if kt is None else p.value * tm["paper_style_step_seconds"] / kt,
                     "speedup_fast_loop": None if kt is None else p.value * tm["fast_loop_step_seconds"] / kt,
                     "max_spectral_radius": float(rho[e]),
                     "kept_rank_fraction": None if kept is None else kept[e],
                     "max_cond_F": None if cond_F is None else float(cond_F[e].max())})
    return nets


def summarise(a: dict, run: Run, k: int, T: int, keys: dict, cond_F, tm=None) -> tuple[dict, list[dict]]:
    """``(table row, network rows)`` of one reading ``a`` of optimizer ``k`` at ``T``: medians over its
    networks; with ``tm`` (the optimizer's timing) the speedups, over the successes and over all."""
    E, name = run.E, run.names[k]
    k_max = run.cfg.t2 - run.cfg.t1  # snapshot pairs per block
    possible = sum(min(int(g.shape[1]), k_max) * int(g.shape[0]) for g in run.partition.groups)
    bt = a["by_T"][T]
    rho = a["radii"].amax(1)
    kept = None if a["rank"] is None else (a["rank"].sum(1).double() / possible).tolist()
    nets = network_rows(a, run, k, T, keys, cond_F, kept, tm)
    ok = [x for x in nets if x["success"]]
    row = {"optimizer": name, "n_inits": E, "success_rate": len(ok) / E,
           "teq_over_t_median": finite_median([x["teq_over_t"] for x in nets]), "T": T, **keys,
           "stride": a["stride"], "horizon": bt["horizon"],
           "error_ratio": bt["error_ratio"]["ratio"],
           "teq_over_t_median_other_origin": finite_median([x["teq_over_t_other_origin"] for x in nets]),
           "censored": sum(x["censored"] for x in nets),
           "median_relative_weight_error": finite_median(bt["rel_error"]),
           "median_max_spectral_radius": finite_median(rho.tolist()),
           "median_kept_rank_fraction": finite_median(kept) if kept else None,
           "median_max_cond_F": None if cond_F is None else finite_median(cond_F.amax(1).tolist())}
    if tm is not None:
        row.update({"speedup_paper_style_median": finite_median([x["speedup_paper_style"] for x in ok]),
                    "speedup_fast_loop_median": finite_median([x["speedup_fast_loop"] for x in ok]),
                    "speedup_paper_style_median_all": finite_median([x["speedup_paper_style"] for x in nets]),
                    "speedup_fast_loop_median_all": finite_median([x["speedup_fast_loop"] for x in nets]),
                    "koopman_fit_and_jump_seconds": tm["koopman"][keys["fit"]]["fit_and_jump_seconds"][T]})
    return row, nets


def table_rows(run: Run, res: dict, res_m: dict, cond_F: dict, timing: dict) -> tuple[list, list, list]:
    """``(table, networks, fit_methods_table)``: the named fits' rows (fit, then ``T``, then optimizer)
    with their timing, and the fit methods' rows at the paper's cutoff (``fit`` ``"paper"``) followed by
    the strided fits' (``fit`` their name, ``fit_method`` :func:`~.fit_methods.fit_label`, ``stride`` and
    ``horizon`` the steps between snapshots and the steps predicted)."""
    cfg = run.cfg
    table, networks, methods_table = [], [], []
    for f in cfg.fits:
        keys = {"train_dtype": run.dtype_name, "fit": f, "fit_method": fit_label(f), "cutoff": cutoff_name(f)}
        for T in cfg.Ts:
            for k, name in enumerate(run.names):
                row, nets = summarise(res[f][name], run, k, T, keys, cond_F[name], timing[name])
                table.append(row)
                networks += nets
    # the fit methods at the paper's cutoff, then the strided fits beside them (every s-th snapshot)
    readings = [({"fit": "paper", "fit_method": m}, res_m[m]) for m in cfg.fit_methods]
    readings += [({"fit": f, "fit_method": fit_label(f)}, res[f]) for f in cfg.fits if f in STRIDED_FITS]
    for keys, r in readings:
        keys = {"train_dtype": run.dtype_name, **keys}
        for T in cfg.Ts:
            for k, name in enumerate(run.names):
                methods_table.append(summarise(r[name], run, k, T, keys, cond_F[name])[0])
    return table, networks, methods_table


def spectra(res: dict, run: Run) -> dict:
    """Per fit and optimizer: each network's largest spectral radius, its number of blocks with a
    radius above 1, and every block's radius minus 1 (rounded to 4 digits)."""
    return {f: {name: {"max_spectral_radius": a.amax(1).tolist(),
                       "n_blocks_radius_above_1": (a > 1).sum(1).tolist(), "n_blocks": int(a.shape[1]),
                       "radius_minus_1": rounded(a - 1, 4)}
                for name in run.names for a in [res[f][name]["radii"]]} for f in run.cfg.fits}
