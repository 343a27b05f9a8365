"""One factor at a time between the replication's settings and the paper's: the ablation's
settings, their fits and rollouts (one row per setting, with the curves and spectra the chapter
plots), and the replication's layer-wise operators (low-rank form)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from koopman_lib.estimator import Koopman
from koopman_lib.fit import FitSpec
from koopman_lib.metrics import finite_median
from koopman_lib.progress import bar
from .config import DTYPES, Config
from .fits import LOW_RANK_MEMORY_LIMIT, layer1_spec, round_complex, rtol_of
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
        t2 = window[1] * S
        fitted = fit_members(Koopman(partition, dtype=DTYPES[dtype]), snaps, run.snap(t2),
                             {v: FitSpec(v[0], clip=v[1]) for v in variants}, T_ep * S, cfg.eval_every, run.evaluate)
        for c, (ev, radius, n_out, eig0, _) in fitted.items():
            results[(key, c)] = (ev, radius, n_out, run, t2, eig0)
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


@dataclass
class Joined:
    """The rollouts of several networks made one by one, as one rollout of them all: the
    evaluation steps of the longest, losses and accuracies ``(steps, E)`` (``nan`` after a
    network's rollout stopped, as in a rollout of them together)."""

    steps: list
    loss: torch.Tensor
    acc: torch.Tensor

    @classmethod
    def of(cls, rollouts: list) -> "Joined":
        steps = max((ev.steps for ev in rollouts), key=len)

        def joined(values):
            return torch.cat([torch.cat([x, x.new_full((len(steps) - x.shape[0],) + x.shape[1:], float("nan"))])
                              for x in values], 1)
        return cls(steps, joined(ev.loss for ev in rollouts), joined(ev.acc for ev in rollouts))


def fit_members(estimator: Koopman, snaps: torch.Tensor, theta0: torch.Tensor, specs: dict, T: int, every: int,
                evaluate) -> dict:
    """Fit ``estimator`` with every fit of ``specs`` to each network of the recording ``snaps``
    ``(k, E, D)`` on its own (memory: one network's operators at a time; the same values as fitting
    them together) and evolve each from ``theta0`` ``(E, D)`` ``T`` steps (test loss every
    ``every`` steps). Returns ``{name: (rollout (:class:`Joined`), largest eigenvalue modulus (E,),
    eigenvalues outside the unit circle (E,), network 0's eigenvalues, network 0's ranks per block
    group)}``."""
    parts: dict = {name: [] for name in specs}
    for e in range(snaps.shape[1]):
        fits = estimator.fit_variants(snaps[:, e:e + 1], specs)
        for name in specs:
            kp = fits.pop(name)
            ev = kp.rollout(theta0[e:e + 1], T, every=every, loss_fn=evaluate)
            lams = [op.eigenvalues().reshape(-1) for op in kp.operators_]
            parts[name].append((ev, torch.stack([lam.abs().amax() for lam in lams]).amax(),
                                sum((lam.abs() > 1).sum() for lam in lams), torch.cat(lams),
                                [op.rank.reshape(-1).tolist() for op in kp.operators_]))
            del kp, lams
        del fits
    return {name: (Joined.of([p[0] for p in ps]), torch.stack([p[1] for p in ps]), torch.stack([p[2] for p in ps]),
                   ps[0][3], ps[0][4]) for name, ps in parts.items()}


def layerwise(cfg, run, partition_layer, S):
    """The replication's layer-wise operators (float32, its cutoff) in low-rank form."""
    window = tuple(cfg.replication_window_epochs)
    snaps = run.window(*run.epoch_window(*window))
    t2 = window[1] * S
    T_ep = max(cfg.replication_T_epochs)
    c = cfg.replication_cutoff
    fitted = fit_members(Koopman(partition_layer, dtype=torch.float32, memory_limit=LOW_RANK_MEMORY_LIMIT), snaps,
                         run.snap(t2), {c: c}, T_ep * S, cfg.eval_every, run.evaluate)
    ev, radius, _, eig0, ranks = fitted[c]
    return ev, radius, t2, round_complex(eig0), ranks
