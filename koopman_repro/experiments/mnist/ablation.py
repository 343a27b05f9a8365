"""One factor at a time between the replication's settings and the paper's: the ablation's
settings, their fits and rollouts (one row per setting, with the curves and spectra the chapter
plots), and the replication's layer-wise operators (low-rank form)."""
from __future__ import annotations

import math

import torch

from koopman_lib.estimator import Koopman
from koopman_lib.fit import FitSpec
from koopman_lib.metrics import finite_median
from koopman_lib.progress import bar
from .config import DTYPES, Config
from .fits import LOW_RANK_MEMORY_LIMIT, fit_cutoffs, layer1_spec, round_complex, rtol_of
from .training import Condition, optimizer_curve


def ablation_settings(cfg: Config) -> list[dict]:
    """One-factor-at-a-time settings. Each factor has a replication value and a paper value."""
    factors = {
        "normalisation": ("normalize", tuple(cfg.replication_normalize), tuple(cfg.normalize)),
        "StepLR": ("gamma", None, cfg.gamma),
        "window": ("window", tuple(cfg.replication_window_epochs), tuple(cfg.window_epochs)),
        "partition": ("partition", "node", "quasi_node"),
        "fit dtype": ("dtype", "float32", cfg.fit_dtype),
        "pinv cutoff": ("cutoff", cfg.replication_cutoff, cfg.cutoff),
    }
    rep = {key: r for key, r, _ in factors.values()}
    pap = {key: p for key, _, p in factors.values()}
    out = []
    for direction in cfg.ablation_directions:
        base, other = (rep, pap) if direction == "from_replication" else (pap, rep)
        base_name = "replication settings" if direction == "from_replication" else "paper settings"
        out.append({"direction": direction, "factor": "none (base)", "name": base_name, **base})
        for fname, (key, _, _) in factors.items():
            s = dict(base)
            s[key] = other[key]
            to = "paper" if direction == "from_replication" else "replication"
            out.append({"direction": direction, "factor": fname, "name": f"{base_name}, {fname} -> {to}", **s})
    return out



def ablation_rows(cfg, settings, runs_by_cond, partition_of, S):
    """Fit and evolve every ablation setting; one row per setting, plus what the chapter plots."""
    rows, curves, eigs = [], {}, {}
    T_ep = max(max(cfg.replication_T_epochs), cfg.T_epochs)
    # group settings that share a training run, window, partition and dtype (one SVD per block)
    keyf = lambda s: (tuple(s["normalize"]), s["gamma"], tuple(s["window"]), s["partition"], s["dtype"])
    groups: dict = {}
    for i, s in enumerate(settings):
        groups.setdefault(keyf(s), []).append(i)
    results: dict = {}
    for key in bar(list(groups), desc="ablation fits"):
        normalize, gamma, window, part, dtype = key
        run = runs_by_cond[Condition(normalize, gamma)]
        partition = partition_of(layer1_spec(part))
        snaps = run.window(*run.epoch_window(*window))
        variants = sorted({(settings[i]["cutoff"], settings[i].get("clip")) for i in groups[key]}, key=str)
        fits = Koopman(partition, dtype=DTYPES[dtype]).fit_variants(
            snaps, {v: FitSpec(v[0], clip=v[1]) for v in variants})
        t2 = window[1] * S
        theta0 = run.snap(t2)
        for c in variants:
            kp = fits.pop(c)
            ev = kp.rollout(theta0, T_ep * S, every=cfg.eval_every, loss_fn=run.evaluate)
            lams = [op.eigenvalues().reshape(run.E, -1) for op in kp.operators_]     # (E, P*m) per group
            radius = torch.stack([lam.abs().amax(-1) for lam in lams]).amax(0)
            n_out = sum((lam.abs() > 1).sum(-1) for lam in lams)
            eig0 = torch.cat([lam[0] for lam in lams])
            results[(key, c)] = (ev, radius, n_out, run, t2, eig0)
            del kp, lams
        del fits
    for i, s in enumerate(settings):
        ev, radius, n_out, run, t2, eig0 = results[(keyf(s), (s["cutoff"], s.get("clip")))]
        steps = ev.steps
        row = {"direction": s["direction"], "factor": s["factor"], "setting": s["name"],
               "fit": s.get("fit", "replication" if s["direction"] == "from_replication" else "paper"),
               "clip": s.get("clip"),
               "normalize": f"{s['normalize'][0]}/{s['normalize'][1]}",
               "steplr": s["gamma"] is not None, "window_epochs": f"{s['window'][0]}-{s['window'][1]}",
               "partition": s["partition"], "dtype": s["dtype"], "cutoff": s["cutoff"],
               "rtol_layer1": rtol_of(s["cutoff"], 157 if s["partition"] == "quasi_node" else 785,
                                      (s["window"][1] - s["window"][0] + 1) * S - 1),
               "n_members": run.E,
               "max_spectral_radius": finite_median(radius, empty=math.nan),
               "n_eigs_outside_unit_circle": finite_median(n_out, empty=math.nan),
               "test_loss_t2": finite_median(run.loss_at(t2), empty=math.nan)}
        for T in sorted(set(cfg.replication_T_epochs) | {cfg.T_epochs}):
            j = steps.index(T * S) if T * S in steps else None
            ko = ev.loss[j] if j is not None else torch.full((run.E,), float("nan"))
            row[f"koopman_loss_T{T}"] = finite_median(ko, empty=math.nan)
            row[f"optimizer_loss_T{T}"] = finite_median(run.loss_at(t2 + T * S), empty=math.nan)
            row[f"koopman_acc_T{T}"] = finite_median(ev.acc[j], empty=math.nan) if j is not None else float("nan")
            row[f"optimizer_acc_T{T}"] = finite_median(run.grid[t2 + T * S][1], empty=math.nan)
        row["loss_growth_T2"] = row[f"koopman_loss_T{T_ep}"] / row["test_loss_t2"]
        row["koopman_over_optimizer_T2"] = row[f"koopman_loss_T{T_ep}"] / row[f"optimizer_loss_T{T_ep}"]
        rows.append(row)
        opt_steps, opt_loss, opt_acc = optimizer_curve(run, t2, T_ep * S)
        curves[s["name"]] = {"steps": steps, "koopman_loss": ev.loss.T, "koopman_acc": ev.acc.T,
                             "optimizer_steps": opt_steps, "optimizer_loss": opt_loss.T, "optimizer_acc": opt_acc.T}
        if s["factor"] == "none (base)":
            eigs[s["name"]] = round_complex(eig0)
    return rows, curves, eigs


def layerwise(cfg, run, partition_layer, S):
    """The replication's layer-wise operators (float32, its cutoff) in low-rank form."""
    window = tuple(cfg.replication_window_epochs)
    snaps = run.window(*run.epoch_window(*window))
    kp = fit_cutoffs(partition_layer, snaps, torch.float32, [cfg.replication_cutoff],
                     memory_limit=LOW_RANK_MEMORY_LIMIT)[cfg.replication_cutoff]
    ops = kp.operators_
    t2 = window[1] * S
    T_ep = max(cfg.replication_T_epochs)
    ev = kp.rollout(run.snap(t2), T_ep * S, every=cfg.eval_every, loss_fn=run.evaluate)
    radius = torch.stack([op.spectral_radius().reshape(run.E, -1).amax(-1) for op in ops]).amax(0)
    ranks = [op.rank.reshape(run.E, -1)[0].tolist() for op in ops]   # init 0, per block
    eig0 = round_complex(torch.cat([op.eigenvalues().reshape(run.E, -1)[0] for op in ops]))
    return ev, radius, t2, eig0, ranks

