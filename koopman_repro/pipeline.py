"""The whole Koopman phase, everything counted: the cheapest pipeline for the library's default
fit, and the end-to-end accounting against the optimizer (the benchmark's ``end_to_end``).

A Koopman phase is: record the weights over the window ``t1..t2`` (the *extra* time the
recording adds to training), fit the block operators, jump ``T`` steps from ``w(t2)``, and
evaluate the test loss once. It replaces the optimizer steps that would reach the same test
loss, ``T_eq``. :func:`time_pipeline` times every candidate route to the default fit's
operators on one recording (:data:`PIPELINE_FITS`), checks each against the reference (the
library's own ``Koopman(partition, fit="default")``: QR + SVD of every block) and
:func:`choose` picks the fastest that agrees within a tolerance fixed before anything is timed.
:func:`end_to_end_rows` joins those timings with the per-network ``T_eq`` of an experiment's
run (the default fit's losses on every init) into one row per network.

Timing conventions: the optimizer is the fast loop (no bookkeeping per step); the paper-style
loop is the second baseline. ``speedup_after_t2 = optimizer_same_teq_s / (recording_extra_s +
fit_s + jump_s + eval_s)``; ``speedup_end_to_end`` adds the training to ``t2`` (the same for
both) to the numerator and the denominator. A network whose Koopman loss is not below its loss
at ``t2`` has ``T_eq = 0``: its phase was spent for nothing (speedups 0 after ``t2`` and below 1
end to end).
"""
from __future__ import annotations

import gc
import time
from typing import Callable

import torch

from koopman_lib.estimator import Koopman
from koopman_lib.metrics import finite_median
from koopman_lib.partition import Partition

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


def clock(fn: Callable[[], object]) -> tuple[float, object]:
    """``(seconds, fn())`` with the garbage collector paused (every timing of the benchmarks)."""
    was = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        out = fn()
        return time.perf_counter() - start, out
    finally:
        if was:
            gc.enable()


def estimator(partition: Partition, route: str) -> Koopman:
    """The unfitted estimator of candidate ``route`` (a key of :data:`PIPELINE_FITS`)."""
    if route not in PIPELINE_FITS:
        raise ValueError(f"unknown route {route!r}; choose one of {tuple(PIPELINE_FITS)}")
    return Koopman(partition, **PIPELINE_FITS[route])


def rel_diff(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Per-block relative Frobenius difference ``||A - B|| / ||B||``, ``(P,)``."""
    return (A - B).flatten(1).norm(dim=1) / B.flatten(1).norm(dim=1).clamp_min(1e-300)


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
    pipeline ``timing`` (:func:`pipeline_timing` keys, per network)."""
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


__all__ = ["clock", "rel_diff", "PIPELINE_FITS", "REFERENCE", "LOSS_RTOL", "estimator", "time_pipeline", "choose", "phase_row",
           "mnist_rows", "de_rows", "summary"]
