"""The whole Koopman phase, everything counted (the benchmark's ``end_to_end``): the cheapest pipeline for the library's default
fit, and the end-to-end accounting against the optimizer (the benchmark's ``end_to_end``).

A Koopman phase is: record the weights over the window ``t1..t2`` (the *extra* time the
recording adds to training), fit the block operators, jump ``T`` steps from ``w(t2)``, and
evaluate the test loss once. It replaces the optimizer steps that would reach the same test
loss, ``T_eq``. :func:`time_pipeline` times every candidate route to the default fit's
operators on one recording (:data:`PIPELINE_FITS`), checks each against the reference (the
library's own ``Koopman(partition, fit="default")``: QR + SVD of every block) and
:func:`choose` picks the fastest that agrees within a tolerance fixed before anything is timed.
:func:`mnist_rows` and :func:`de_rows` join those timings with the per-network ``T_eq`` of an experiment's
run (the default fit's losses on every init) into one row per network.

Timing conventions: the optimizer is the fast loop (no bookkeeping per step); the paper-style
loop is the second baseline. ``speedup_after_t2 = optimizer_same_teq_s / (recording_extra_s +
fit_s + jump_s + eval_s)``; ``speedup_end_to_end`` adds the training to ``t2`` (the same for
both) to the numerator and the denominator. A network whose Koopman loss is not below its loss
at ``t2`` has ``T_eq = 0``: its phase was spent for nothing (speedups 0 after ``t2`` and below 1
end to end).

:func:`end_to_end` is the benchmark's stage: it takes the per-network ``T_eq`` from the saved
runs of the MNIST and DE solver experiments (:func:`experiment_results`, never a new run) and
the timings of the routes measured by :mod:`koopman_repro.bench.mnist` and
:mod:`koopman_repro.bench.de_solver`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from koopman_lib.estimator import Koopman
from koopman_lib.metrics import finite_median
from koopman_lib.partition import Partition

from ..paths import saved_results_dir
from .fits import rel_diff
from .profiles import BenchConfig
from .timing import clock

#: Candidate routes to the default fit's operators (``Cutoff("resolution")``), as ``Koopman``
#: settings. ``svd``: the reference, QR then SVD of every block. ``eigh``: the normal equations,
#: the Gram matrices ``F F^T`` and ``F' F^T`` formed at fit time in float64 by one batched GEMM
#: each, pseudo-inverted by a symmetric eigendecomposition with the same cutoff (eigenvalues of
#: ``F F^T`` below ``rtol^2 lambda_max``).
PIPELINE_FITS = {"svd": {"fit": "default"}, "eigh": {"cutoff": "resolution", "method": "eigh"}}
REFERENCE = "svd"
#: Agreement a candidate needs with the reference, fixed before any timing: the test loss
#: predicted after every horizon may differ by at most this fraction (a T_eq read off an
#: optimizer curve moves by far less than one evaluation interval).
LOSS_RTOL = 1e-4


def estimator(partition: Partition, route: str) -> Koopman:
    """The unfitted estimator of candidate ``route`` (a key of :data:`PIPELINE_FITS`)."""
    if route not in PIPELINE_FITS:
        raise ValueError(f"unknown route {route!r}; choose one of {tuple(PIPELINE_FITS)}")
    return Koopman(partition, **PIPELINE_FITS[route])


def time_pipeline(partition: Partition, recording: torch.Tensor, theta_t2: torch.Tensor, Ts, loss_fn,
                  repeats: int, routes=tuple(PIPELINE_FITS)) -> dict:
    """Time every candidate route on one network's ``recording`` ``(k, 1, D)`` (time first, as
    recorded) and its weights ``theta_t2`` ``(1, D)``: fits interleaved over ``repeats`` rounds
    (order reversed on odd rounds), then the jump ``kp.predict(theta_t2, T)`` for every ``T`` in
    ``Ts`` and one evaluation ``loss_fn(theta) -> float``. Medians. Agreement with the reference:
    the largest per-block relative difference of the operators and the relative difference of
    the predicted losses. Returns ``{"routes": {route: {...}}, "eval_s": s}``."""
    routes = tuple(routes)
    if REFERENCE not in routes:
        routes = (REFERENCE,) + routes
    fit_s: dict = {r: [] for r in routes}
    fitted: dict = {}
    for i in range(repeats):
        for r in (routes if i % 2 == 0 else routes[::-1]):
            s, fitted[r] = clock(lambda r=r: estimator(partition, r).fit(recording))
            fit_s[r].append(s)
    out: dict = {"routes": {}}
    eval_s = []
    ref = fitted[REFERENCE]
    preds = {}
    for r in routes:
        kp = fitted[r]
        jumps = {}
        for T in Ts:
            times = []
            for _ in range(repeats):
                s, preds[(r, T)] = clock(lambda: kp.predict(theta_t2, T))
                times.append(s)
            jumps[int(T)] = finite_median(times)
        losses = {}
        for T in Ts:
            s, losses[int(T)] = clock(lambda: loss_fn(preds[(r, T)]))
            eval_s.append(s)
        d = torch.cat([rel_diff(a.as_dense(), b.as_dense()) for a, b in zip(kp.operators_, ref.operators_)])
        out["routes"][r] = {"fit_s": finite_median(fit_s[r]), "fit_s_all": fit_s[r], "jump_s": jumps,
                            "loss": losses, "max_rel_diff_operators": float(d.max()),
                            "median_rel_diff_operators": float(d.median())}
    for r in routes:
        info = out["routes"][r]
        info["max_rel_loss_diff"] = max(abs(info["loss"][T] - out["routes"][REFERENCE]["loss"][T])
                                        / abs(out["routes"][REFERENCE]["loss"][T]) for T in info["loss"])
    out["eval_s"] = finite_median(eval_s)
    return out


def choose(timings: list[dict], T: int, loss_rtol: float = LOSS_RTOL) -> dict:
    """The route a pipeline uses, from :func:`time_pipeline` results on one or more networks:
    the smallest median fit + jump over ``T`` among the routes whose predicted losses agree with
    the reference's within ``loss_rtol`` on every network. Returns ``{"route", "loss_rtol",
    "candidates": [{route, fit_s, jump_s, agrees, max_rel_loss_diff, max_rel_diff_operators}]}``."""
    rows = []
    for r in timings[0]["routes"]:
        per = [t["routes"][r] for t in timings]
        worst = max(p["max_rel_loss_diff"] for p in per)
        rows.append({"route": r, "fit_s": finite_median([p["fit_s"] for p in per]),
                     "jump_s": finite_median([p["jump_s"][int(T)] for p in per]),
                     "agrees": bool(worst <= loss_rtol), "max_rel_loss_diff": worst,
                     "max_rel_diff_operators": max(p["max_rel_diff_operators"] for p in per)})
    ok = [c for c in rows if c["agrees"]]
    best = min(ok, key=lambda c: c["fit_s"] + c["jump_s"])
    return {"route": best["route"], "loss_rtol": loss_rtol, "candidates": rows}


def phase_row(problem: str, T: int, seed: int, teq_steps: float, censored: bool, step_s: float, t2_steps: int,
              recording_extra_s: float, fit_s: float, jump_s: float, eval_s: float,
              paper_style_step_s: float | None = None, **extra) -> dict:
    """One network's end-to-end accounting (all seconds; ``teq_steps`` and ``t2_steps`` in
    optimizer steps, ``step_s`` the fast loop's seconds per step)."""
    teq = max(0.0, float(teq_steps))
    phase = recording_extra_s + fit_s + jump_s + eval_s
    opt = teq * step_s
    train = t2_steps * step_s
    row = {"problem": problem, "T": int(T), "fit": "default", "seed": int(seed), **extra,
           "teq_steps": teq, "teq_over_t": teq / T, "censored": bool(censored),
           "train_to_t2_s": train, "recording_extra_s": recording_extra_s, "fit_s": fit_s, "jump_s": jump_s,
           "eval_s": eval_s, "koopman_phase_s": phase, "optimizer_same_teq_s": opt,
           "speedup_after_t2": opt / phase, "speedup_end_to_end": (train + opt) / (train + phase)}
    if paper_style_step_s is not None:
        row["speedup_after_t2_paper_style"] = teq * paper_style_step_s / phase
    return row


def mnist_rows(experiment: dict, timing: dict, T_epochs) -> list[dict]:
    """End-to-end rows of every init of an MNIST experiment run (``results["members"]``, the
    default fit's ``T_eq`` per horizon) at the horizons ``T_epochs`` (epochs), with the
    pipeline ``timing`` (``step_s``, ``recording_extra_s``, ``fit_s``, ``jump_s`` per ``T``,
    ``eval_s``, optionally ``paper_style_step_s``; per network)."""
    S = int(experiment["steps_per_epoch"])
    t2 = int(experiment["provenance"]["config"]["window_epochs"][1]) * S
    rows = []
    for h in T_epochs:
        T = h * S
        for m in experiment["members"]:
            r = m["fits"]["default"][f"T{h}"]
            rows.append(phase_row(
                "mnist", T, m["init"], r["T_eq_epochs"] * S, r["censored"], timing["step_s"], t2,
                timing["recording_extra_s"], timing["fit_s"], timing["jump_s"][T], timing["eval_s"],
                timing.get("paper_style_step_s"), optimizer="adadelta", T_epochs=h,
                loss_t2=m["test_loss_t2"], loss_koopman=r["koopman_loss"], loss_optimizer_at_T=m[f"optimizer_loss_T{h}"]))
    return rows


def de_rows(experiment: dict, timing: dict, T: int) -> list[dict]:
    """End-to-end rows of every network of a DE solver run (``results["networks"]``) trained in
    the run's first dtype, default fit, horizon ``T`` (steps), per optimizer; ``timing["step_s"]``
    and ``timing["paper_style_step_s"]`` are per optimizer."""
    cfg = experiment["provenance"]["config"]
    dtype = cfg["train_dtypes"][0]
    rows = []
    for n in experiment["networks"]:
        if n["fit"] != "default" or n["T"] != T or n["train_dtype"] != dtype:
            continue
        o = n["optimizer"]
        rows.append(phase_row(
            "de-solver", T, n["init"], n["teq"], n["censored"], timing["step_s"][o], int(cfg["t2"]),
            timing["recording_extra_s"], timing["fit_s"], timing["jump_s"][T], timing["eval_s"],
            timing["paper_style_step_s"][o], optimizer=o, train_dtype=dtype,
            loss_t2=n["loss_t2"], loss_koopman=n["loss_koopman"], loss_optimizer_at_T=n["loss_optimizer_at_T"]))
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Medians per (problem, optimizer, T) of the end-to-end rows."""
    keys = []
    for r in rows:
        k = (r["problem"], r.get("optimizer"), r["T"])
        if k not in keys:
            keys.append(k)
    out = []
    for p, o, T in keys:
        sel = [r for r in rows if (r["problem"], r.get("optimizer"), r["T"]) == (p, o, T)]
        row = {"problem": p, "optimizer": o, "T": T, "T_epochs": sel[0].get("T_epochs"), "n_networks": len(sel),
               "success_rate": sum(r["teq_steps"] > 0 for r in sel) / len(sel)}
        for key in ("teq_over_t", "train_to_t2_s", "recording_extra_s", "fit_s", "jump_s", "eval_s", "koopman_phase_s",
                    "optimizer_same_teq_s", "speedup_after_t2", "speedup_end_to_end", "speedup_after_t2_paper_style",
                    "loss_t2", "loss_koopman", "loss_optimizer_at_T"):
            row[f"{key}_median" if key.startswith("speedup") or key == "teq_over_t" else key] = \
                finite_median([r.get(key) for r in sel if r.get(key) is not None])
        out.append(row)
    return out



def experiment_results(name: str, profile: str, results_dir=None) -> dict | None:
    """The run of experiment ``name`` at ``profile`` with its current config: from ``results_dir``
    (e.g. the book build's, where the chapters ran it), else the committed ``results/<profile>``,
    else ``None``. The benchmark never starts an experiment itself (the MNIST paper run alone takes
    over an hour): run ``koopman reproduce <name> --profile <profile> --out <results_dir>`` first."""
    from ..experiments import _matching_results
    dirs = ([Path(results_dir)] if results_dir is not None else []) + [saved_results_dir(profile)]
    for d in dirs:
        got = _matching_results(name, profile, d)
        if got is not None:
            return got
    return None


def _missing(name: str, profile: str, results_dir) -> str:
    return (f"{name}: no run at profile {profile} with the current config in {results_dir} "
            f"or results/{profile} (koopman reproduce {name} --profile {profile})")


def _mnist_end_to_end(cfg: BenchConfig, runs: list[dict], route: str, paper_style_step_s: float, mn: dict | None,
                      profile: str, results_dir) -> tuple[list[dict], str | None]:
    """The MNIST end-to-end rows of the saved run ``mn`` with this benchmark's ``runs`` timings of
    ``route``, or no rows and the reason."""
    spe = runs[0]["steps_per_epoch"]
    Ts = [n * spe for n in cfg.T_epochs]
    if mn is None:
        return [], _missing("mnist", profile, results_dir)
    mc = mn["provenance"]["config"]
    if not (list(mc["window_epochs"]) == list(cfg.window_epochs) and list(mc["partition"]) == list(cfg.mnist_partition)
            and list(mc["sizes"]) == list(cfg.mnist_sizes) and mn["steps_per_epoch"] == spe):
        return [], "mnist: the experiment's window, partition or sizes differ from the timed run"
    timing = {"step_s": finite_median([r["optimizer_step_seconds"] for r in runs]),
              "recording_extra_s": finite_median([r["record_seconds"]["stored"] for r in runs]),
              "fit_s": finite_median([r["pipeline"]["routes"][route]["fit_s"] for r in runs]),
              "jump_s": {T: finite_median([r["pipeline"]["routes"][route]["jump_s"][T] for r in runs]) for T in Ts},
              "eval_s": finite_median([r["pipeline"]["eval_s"] for r in runs]), "paper_style_step_s": paper_style_step_s}
    return mnist_rows(mn, timing, cfg.T_epochs), None


def _de_end_to_end(de: dict, route: str, dr: dict | None, profile: str, results_dir) -> tuple[list[dict], str | None]:
    """The DE solver end-to-end rows of the saved run ``dr`` with the benchmark's ``de`` timings of
    ``route``, or no rows and the reason."""
    if dr is None:
        return [], _missing("de-solver", profile, results_dir)
    dc = dr["provenance"]["config"]
    if not (dc["t2"] - dc["t1"] + 1 == de["k"] and de["T"] in dc["Ts"] and dc["train_dtypes"][0] == de["train_dtype"]):
        return [], (f"de-solver: the experiment's window ({dc['t2'] - dc['t1'] + 1} snapshots), "
                    f"horizons or dtype differ from the timed run ({de['k']} snapshots)")
    timing = {"step_s": de["step_seconds_fast_loop"], "paper_style_step_s": de["step_seconds_paper_style"],
              "recording_extra_s": de["record_seconds"], "fit_s": de["pipeline"]["routes"][route]["fit_s"],
              "jump_s": {de["T"]: de["pipeline"]["routes"][route]["jump_s"][de["T"]]},
              "eval_s": de["pipeline"]["eval_s"]}
    return de_rows(dr, timing, de["T"]), None


def end_to_end(cfg: BenchConfig, runs: list[dict], de: dict, paper_style_step_s: float, results_dir=None) -> dict:
    """The whole Koopman phase against the optimizer, per network of the experiment runs of
    ``cfg.end_to_end_profile`` (their default fit's ``T_eq``), with this benchmark's timings of the
    cheapest route (:func:`choose`) on networks trained the same way:
    ``end_to_end`` (rows), ``end_to_end_summary`` (medians), ``pipeline`` (the choice) and the
    headline medians. Rows of a problem whose experiment settings differ from the timed ones
    (window, partition, sizes) are left out and the reason recorded in ``end_to_end_notes``."""
    out: dict = {"end_to_end": [], "end_to_end_summary": [], "end_to_end_notes": [], "pipeline": {},
                 "koopman_phase_speedup_mnist_T2": None, "end_to_end_speedup_mnist_T2": None,
                 "de_after_t2_speedup": None}
    spe = runs[0]["steps_per_epoch"]
    out["pipeline"]["mnist"] = pick = choose([r["pipeline"] for r in runs], cfg.T_epochs[-1] * spe)
    out["pipeline"]["de-solver"] = pick_de = choose([de["pipeline"]], de["T"])
    if not cfg.end_to_end_profile:
        out["end_to_end_notes"].append("no end_to_end_profile: no experiment run to take T_eq from")
        return out
    profile, runs_used = cfg.end_to_end_profile, {}
    mn = experiment_results("mnist", profile, results_dir)
    rows, note = _mnist_end_to_end(cfg, runs, pick["route"], paper_style_step_s, mn, profile, results_dir)
    out["end_to_end"] += rows
    if note is None:
        runs_used["mnist"] = mn["provenance"]
    else:
        out["end_to_end_notes"].append(note)
    dr = experiment_results("de-solver", profile, results_dir)
    rows, note = _de_end_to_end(de, pick_de["route"], dr, profile, results_dir)
    out["end_to_end"] += rows
    if note is None:
        runs_used["de-solver"] = dr["provenance"]
    else:
        out["end_to_end_notes"].append(note)
    rows = out["end_to_end"]
    out["end_to_end_summary"] = summary(rows)
    out["end_to_end_runs"] = {k: {f: v.get(f) for f in ("git_sha", "utc_time", "profile", "seed")}
                              for k, v in runs_used.items()}
    m2 = [r for r in rows if r["problem"] == "mnist" and r["T_epochs"] == cfg.T_epochs[-1]]
    if m2:
        out["koopman_phase_speedup_mnist_T2"] = finite_median([r["speedup_after_t2"] for r in m2])
        out["end_to_end_speedup_mnist_T2"] = finite_median([r["speedup_end_to_end"] for r in m2])
    d = [r for r in rows if r["problem"] == "de-solver"]
    if d:
        out["de_after_t2_speedup"] = finite_median([r["speedup_after_t2"] for r in d])
    return out
