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
from ..images import release_memory
from .training import Condition, comparison_epochs, optimizer_curve, train_group


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



def ablation_conditions(settings: list[dict]) -> list[Condition]:
    """The training conditions the ablation's ``settings`` need, in the order they first appear."""
    conds: list[Condition] = []
    for s in settings:
        c = Condition(tuple(s["normalize"]), s["gamma"])
        if c not in conds:
            conds.append(c)
    return conds


def ablation_parts(cfg: Config, settings: list[dict], run, partition_of, S: int) -> dict[str, dict]:
    """Fit and evolve every setting of ``settings`` (all of the training condition of ``run``) on each
    network of ``run``: ``{setting name: part}``, a part holding each network's values (last axis
    ``E``): ``"steps"`` and ``"koopman_loss"`` / ``"koopman_acc"`` ``(steps, E)`` (NaN after a rollout
    stopped), ``"radius"`` and ``"n_out"`` ``(E,)``, ``"loss_t2"`` ``(E,)``, ``"optimizer"``: per horizon
    ``"T<h>"`` ``[loss (E,), acc (E,)]``, the optimizer's curve ``"optimizer_steps"``,
    ``"optimizer_loss"`` / ``"optimizer_acc"`` ``(n, E)``, and ``"eig0"``, the first network's
    eigenvalues (:func:`.fits.round_complex`: the base settings' spectra in the chapter). Parts of disjoint networks join with
    :func:`join_parts`; :func:`rows_of_parts` makes the rows."""
    T_ep = max(max(cfg.replication_T_epochs), cfg.T_epochs)
    # settings that share a window, partition and dtype share one SVD per block
    keyf = lambda s: (tuple(s["window"]), s["partition"], s["dtype"])
    groups: dict = {}
    for i, s in enumerate(settings):
        groups.setdefault(keyf(s), []).append(i)
    results: dict = {}
    for key in bar(list(groups), desc="ablation fits"):
        window, part, dtype = key
        partition = partition_of(layer1_spec(part))
        snaps = run.window(*run.epoch_window(*window))
        variants = sorted({(settings[i]["cutoff"], settings[i].get("clip")) for i in groups[key]}, key=str)
        t2 = window[1] * S
        fitted = fit_members(Koopman(partition, dtype=DTYPES[dtype]), snaps, run.snap(t2),
                             {v: FitSpec(v[0], clip=v[1]) for v in variants}, T_ep * S, cfg.eval_every, run.evaluate)
        for c, (ev, radius, n_out, eig0, _) in fitted.items():
            results[(key, c)] = (ev, radius, n_out, t2, eig0)
    out = {}
    for s in settings:
        ev, radius, n_out, t2, eig0 = results[(keyf(s), (s["cutoff"], s.get("clip")))]
        opt_steps, opt_loss, opt_acc = optimizer_curve(run, t2, T_ep * S)
        out[s["name"]] = {
            "steps": list(ev.steps), "koopman_loss": ev.loss, "koopman_acc": ev.acc, "radius": radius,
            "n_out": n_out, "loss_t2": run.loss_at(t2), "eig0": round_complex(eig0),
            "optimizer": {f"T{T}": [run.loss_at(t2 + T * S), run.grid[t2 + T * S][1]] for T in _horizons(cfg)},
            "optimizer_steps": opt_steps, "optimizer_loss": opt_loss, "optimizer_acc": opt_acc}
    return out


def _horizons(cfg: Config) -> list[int]:
    return sorted(set(cfg.replication_T_epochs) | {cfg.T_epochs})


def join_parts(parts: list[dict]) -> dict:
    """The parts (:func:`ablation_parts`) of one setting on disjoint networks as one part of them all, in
    the order given (the first part's ``eig0``)."""
    if len(parts) == 1:
        return parts[0]
    ev = Joined.of([Joined(p["steps"], p["koopman_loss"], p["koopman_acc"]) for p in parts])
    cat = lambda key: torch.cat([torch.as_tensor(p[key]) for p in parts], -1)
    return {"steps": ev.steps, "koopman_loss": ev.loss, "koopman_acc": ev.acc, "radius": cat("radius"),
            "n_out": cat("n_out"), "loss_t2": cat("loss_t2"), "eig0": parts[0]["eig0"],
            "optimizer": {k: [torch.cat([torch.as_tensor(p["optimizer"][k][j]) for p in parts]) for j in (0, 1)]
                          for k in parts[0]["optimizer"]},
            "optimizer_steps": parts[0]["optimizer_steps"], "optimizer_loss": cat("optimizer_loss"),
            "optimizer_acc": cat("optimizer_acc")}


def rows_of_parts(cfg: Config, settings: list[dict], parts: dict[str, dict], S: int) -> tuple[list, dict, dict]:
    """One row per setting of ``settings`` (medians over the networks of its part, ``parts[name]``),
    with the curves and base settings' eigenvalues the chapter plots: ``(rows, curves, eigenvalues)``."""
    rows, curves, eigs = [], {}, {}
    T_ep = max(max(cfg.replication_T_epochs), cfg.T_epochs)
    med = lambda x: finite_median(torch.as_tensor(x), empty=math.nan)
    for s in settings:
        p = parts[s["name"]]
        steps, ko_loss, ko_acc = list(p["steps"]), torch.as_tensor(p["koopman_loss"]), torch.as_tensor(p["koopman_acc"])
        row = {"direction": s["direction"], "factor": s["factor"], "setting": s["name"],
               "fit": s.get("fit", "replication" if s["direction"] == "from_replication" else "paper"),
               "clip": s.get("clip"),
               "normalize": f"{s['normalize'][0]}/{s['normalize'][1]}",
               "steplr": s["gamma"] is not None, "window_epochs": f"{s['window'][0]}-{s['window'][1]}",
               "partition": s["partition"], "dtype": s["dtype"], "cutoff": s["cutoff"],
               "rtol_layer1": rtol_of(s["cutoff"], 157 if s["partition"] == "quasi_node" else 785,
                                      (s["window"][1] - s["window"][0] + 1) * S - 1),
               "n_members": int(torch.as_tensor(p["loss_t2"]).numel()),
               "max_spectral_radius": med(p["radius"]),
               "n_eigs_outside_unit_circle": med(p["n_out"]),
               "test_loss_t2": med(p["loss_t2"])}
        for T in _horizons(cfg):
            j = steps.index(T * S) if T * S in steps else None
            opt_loss, opt_acc = p["optimizer"][f"T{T}"]
            row[f"koopman_loss_T{T}"] = med(ko_loss[j]) if j is not None else float("nan")
            row[f"optimizer_loss_T{T}"] = med(opt_loss)
            row[f"koopman_acc_T{T}"] = med(ko_acc[j]) if j is not None else float("nan")
            row[f"optimizer_acc_T{T}"] = med(opt_acc)
        row["loss_growth_T2"] = row[f"koopman_loss_T{T_ep}"] / row["test_loss_t2"]
        row["koopman_over_optimizer_T2"] = row[f"koopman_loss_T{T_ep}"] / row[f"optimizer_loss_T{T_ep}"]
        rows.append(row)
        curves[s["name"]] = {"steps": steps, "koopman_loss": ko_loss.T, "koopman_acc": ko_acc.T,
                             "optimizer_steps": list(p["optimizer_steps"]),
                             "optimizer_loss": torch.as_tensor(p["optimizer_loss"]).T,
                             "optimizer_acc": torch.as_tensor(p["optimizer_acc"]).T}
        if s["factor"] == "none (base)":
            eigs[s["name"]] = p["eig0"]
    return rows, curves, eigs


def ablation_rows(cfg, settings, runs_by_cond, partition_of, S):
    """Fit and evolve every setting on the networks of its condition's run (``runs_by_cond``); one
    row per setting, plus what the chapter plots (:func:`rows_of_parts`)."""
    parts = {}
    for cond, run in runs_by_cond.items():
        sets = [s for s in settings if Condition(tuple(s["normalize"]), s["gamma"]) == cond]
        parts.update(ablation_parts(cfg, sets, run, partition_of, S))
    return rows_of_parts(cfg, settings, parts, S)


def ablation_chunk(cfg: Config, setup, ids: list[int]) -> dict[str, dict]:
    """Train networks ``ids`` under every condition of the ablation, one condition at a time (its
    recording released before the next), and fit them: ``{setting name: part}`` (:func:`ablation_parts`)."""
    settings = ablation_settings(cfg)
    epochs = comparison_epochs(cfg)
    out: dict = {}
    for cond in ablation_conditions(settings):
        sets = [s for s in settings if Condition(tuple(s["normalize"]), s["gamma"]) == cond]
        first = min((s["window"][0] - 1) * setup.S + 1 for s in sets)
        run = train_group(cfg, cond, ids, setup.data, epochs, setup.grid_from, setup.grid_to,
                          desc=f"ablation {cond.name}", first=first)
        out.update(ablation_parts(cfg, sets, run, setup.partition_of, setup.S))
        del run
        release_memory()
    return out


def ablation_study(cfg: Config, setup, partial) -> tuple[list, dict, dict]:
    """The ablation on networks ``0..n_ablation_inits - 1``, in chunks of ``ablation_group_size``
    (each network is its own seed, so a network is the same in any chunk and the same as in the main
    experiment and the replication; a chunk's recordings are released before the next), each chunk kept
    by ``partial`` (stage ``ablation-<first>-<last>``): ``(rows, curves, eigenvalues)`` (:func:`rows_of_parts`)."""
    settings = ablation_settings(cfg)
    ids = list(range(cfg.n_ablation_inits))
    chunks = [ids[i:i + cfg.ablation_group_size] for i in range(0, len(ids), cfg.ablation_group_size)]
    parts = [partial.stage(f"ablation-{c[0]}-{c[-1]}", lambda c=c: ablation_chunk(cfg, setup, c)) for c in chunks]
    return rows_of_parts(cfg, settings, {s["name"]: join_parts([p[s["name"]] for p in parts]) for s in settings},
                         setup.S)


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
