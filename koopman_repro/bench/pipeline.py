"""The whole Koopman phase, everything counted (the benchmark's ``end_to_end``): the cheapest pipeline for the
library's default fit and for its strided fit (:data:`PHASE_FITS`), and the end-to-end accounting against the
optimizer.

A Koopman phase is: record the weights over the window ``t1..t2`` (the *extra* time the
recording adds to training), fit the block operators, jump ``T`` steps from ``w(t2)``, and
evaluate the test loss once. It replaces the optimizer steps that would reach the same test
loss, ``T_eq``. :func:`time_pipeline` times every candidate route to the default fit's
operators on one recording (:data:`PIPELINE_FITS`), checks each against the reference (the
library's own ``Koopman(partition, fit="default")``: QR + SVD of every block) and
:func:`choose` picks the fastest that agrees within a tolerance fixed before anything is timed.
:func:`mnist_rows` and :func:`de_rows` join those timings with the per-network ``T_eq`` of an experiment's
run (the fit's losses on every init) into one row per network.

The strided fit (``"default-strided"``) is timed by the same :func:`time_pipeline` on its own
recording: a training run of the same network recorded by a ``TrajectoryRecorder(stride=s)``
(``s`` by :func:`koopman_lib.stride.choose_stride` from the window's shape), whose calls for the
steps it does not keep return at once, so that its extra recording time is measured, not a full
recording's subsampled. It evolves ``floor_horizon(T, s)`` steps; ``T_eq / T`` is over the nominal
``T``. The three speedup targets read the strided fit's rows (:data:`TARGET_FIT`,
:func:`phase_headlines`); the DE target counts the optimizers the fit keeps up with
(:func:`keeps_up`); a missed target's reason is :func:`phase_reason`.

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

import math
from pathlib import Path

import torch

from koopman_lib.estimator import Koopman
from koopman_lib.metrics import finite_median
from koopman_lib.partition import Partition
from koopman_lib.stride import floor_horizon

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
#: The fits whose whole Koopman phase the benchmark times, each on its own recording: the library's
#: default fit (every step of the window recorded) and the strided fit (:data:`koopman_lib.estimator.
#: STRIDED_FITS` ``"default-strided"``: the recorder keeps every ``s``-th step, ``s`` by
#: :func:`koopman_lib.stride.choose_stride` from the window's shape; it evolves ``floor_horizon(T, s)``).
PHASE_FITS = ("default", "default-strided")
#: The fit the three speedup targets read (issue 24 states them with the strided fit); the default
#: fit's values are kept beside them as readings (``<key>_default_fit``).
TARGET_FIT = "default-strided"
#: target key -> (problem, the row field whose median it is); MNIST at the longest horizon (T = 2 epochs)
PHASE_TARGETS = {"koopman_phase_speedup_mnist_T2": ("mnist", "speedup_after_t2"),
                 "end_to_end_speedup_mnist_T2": ("mnist", "speedup_end_to_end"),
                 "de_after_t2_speedup": ("de-solver", "speedup_after_t2")}


def estimator(partition: Partition, route: str, stride: int = 1) -> Koopman:
    """The unfitted estimator of candidate ``route`` (a key of :data:`PIPELINE_FITS`) for a
    recording that keeps every ``stride``-th step."""
    if route not in PIPELINE_FITS:
        raise ValueError(f"unknown route {route!r}; choose one of {tuple(PIPELINE_FITS)}")
    return Koopman(partition, stride=stride, **PIPELINE_FITS[route])


def time_pipeline(partition: Partition, recording: torch.Tensor, theta_t2: torch.Tensor, Ts, loss_fn,
                  repeats: int, routes=tuple(PIPELINE_FITS), stride: int = 1) -> dict:
    """Time every candidate route on one network's ``recording`` ``(k, 1, D)`` (time first, as
    recorded) and its weights ``theta_t2`` ``(1, D)``: fits interleaved over ``repeats`` rounds
    (order reversed on odd rounds), then the jump ``kp.predict(theta_t2, T)`` for every ``T`` in
    ``Ts`` and one evaluation ``loss_fn(theta) -> float``. Medians. Agreement with the reference:
    the largest per-block relative difference of the operators and the relative difference of
    the predicted losses. Returns ``{"routes": {route: {...}}, "eval_s": s, "stride", "horizon"}``.

    The one timing of both fits of :data:`PHASE_FITS`: ``stride`` > 1 for a recording that kept
    every ``stride``-th step (a strided recorder's snapshots); the routes then fit the
    ``stride``-step map and each ``T`` is evolved ``horizon[T] = floor_horizon(T, stride)`` steps
    (results keyed by the nominal ``T``)."""
    routes = tuple(routes)
    if REFERENCE not in routes:
        routes = (REFERENCE,) + routes
    horizon = {int(T): int(T) if stride == 1 else floor_horizon(int(T), stride) for T in Ts}
    fit_s: dict = {r: [] for r in routes}
    fitted: dict = {}
    for i in range(repeats):
        for r in (routes if i % 2 == 0 else routes[::-1]):
            s, fitted[r] = clock(lambda r=r: estimator(partition, r, stride).fit(recording))
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
                s, preds[(r, T)] = clock(lambda: kp.predict(theta_t2, horizon[int(T)]))
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
    out["stride"], out["horizon"] = int(stride), horizon
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
              paper_style_step_s: float | None = None, fit: str = "default", stride: int = 1,
              horizon: int | None = None, **extra) -> dict:
    """One network's end-to-end accounting (all seconds; ``teq_steps`` and ``t2_steps`` in
    optimizer steps, ``step_s`` the fast loop's seconds per step) for the fit ``fit`` (a name of
    :data:`PHASE_FITS`) recorded every ``stride`` steps, which evolved ``horizon`` steps for the
    nominal horizon ``T`` (``floor_horizon(T, stride)``; ``T`` at stride 1). ``T_eq / T`` is over
    the nominal ``T``."""
    teq = max(0.0, float(teq_steps))
    phase = recording_extra_s + fit_s + jump_s + eval_s
    opt = teq * step_s
    train = t2_steps * step_s
    row = {"problem": problem, "T": int(T), "fit": fit, "stride": int(stride),
           "horizon": int(T if horizon is None else horizon), "seed": int(seed), **extra,
           "teq_steps": teq, "teq_over_t": teq / T, "censored": bool(censored),
           "train_to_t2_s": train, "recording_extra_s": recording_extra_s, "fit_s": fit_s, "jump_s": jump_s,
           "eval_s": eval_s, "koopman_phase_s": phase, "optimizer_same_teq_s": opt,
           "speedup_after_t2": opt / phase, "speedup_end_to_end": (train + opt) / (train + phase)}
    if paper_style_step_s is not None:
        row["speedup_after_t2_paper_style"] = teq * paper_style_step_s / phase
    return row


def _timed(timing: dict, T: int) -> dict:
    """The :func:`phase_row` arguments of ``timing`` (:func:`phase_timing` plus the step times) at horizon ``T``."""
    return {"recording_extra_s": timing["recording_extra_s"], "fit_s": timing["fit_s"], "jump_s": timing["jump_s"][T],
            "eval_s": timing["eval_s"], "stride": timing.get("stride", 1),
            "horizon": (timing.get("horizon") or {}).get(T, T)}


def mnist_rows(experiment: dict, timing: dict, T_epochs, fit: str = "default") -> list[dict]:
    """End-to-end rows of every init of an MNIST experiment run (``results["members"]``, the
    ``fit``'s ``T_eq`` per horizon) at the horizons ``T_epochs`` (epochs), with the
    pipeline ``timing`` (``step_s``, ``recording_extra_s``, ``fit_s``, ``jump_s`` per ``T``,
    ``eval_s``, optionally ``paper_style_step_s``, ``stride`` and ``horizon`` per ``T``; per network)."""
    S = int(experiment["steps_per_epoch"])
    t2 = int(experiment["provenance"]["config"]["window_epochs"][1]) * S
    rows = []
    for h in T_epochs:
        T = h * S
        for m in experiment["members"]:
            r = m["fits"][fit][f"T{h}"]
            rows.append(phase_row(
                "mnist", T, m["init"], r["T_eq_epochs"] * S, r["censored"], timing["step_s"], t2,
                paper_style_step_s=timing.get("paper_style_step_s"), fit=fit, **_timed(timing, T),
                optimizer="adadelta", T_epochs=h, loss_t2=m["test_loss_t2"], loss_koopman=r["koopman_loss"],
                loss_optimizer_at_T=m[f"optimizer_loss_T{h}"]))
    return rows


def de_rows(experiment: dict, timing: dict, T: int, fit: str = "default") -> list[dict]:
    """End-to-end rows of every network of a DE solver run (``results["networks"]``) trained in
    the run's first dtype, fit ``fit``, horizon ``T`` (steps), per optimizer; ``timing["step_s"]``
    and ``timing["paper_style_step_s"]`` are per optimizer."""
    cfg = experiment["provenance"]["config"]
    dtype = cfg["train_dtypes"][0]
    rows = []
    for n in experiment["networks"]:
        if n["fit"] != fit or n["T"] != T or n["train_dtype"] != dtype:
            continue
        o = n["optimizer"]
        rows.append(phase_row(
            "de-solver", T, n["init"], n["teq"], n["censored"], timing["step_s"][o], int(cfg["t2"]),
            paper_style_step_s=timing["paper_style_step_s"][o], fit=fit, **_timed(timing, T), optimizer=o,
            train_dtype=dtype, loss_t2=n["loss_t2"], loss_koopman=n["loss_koopman"],
            loss_optimizer_at_T=n["loss_optimizer_at_T"]))
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Medians per (problem, fit, optimizer, T) of the end-to-end rows."""
    def key(r):
        return r["problem"], r.get("fit", "default"), r.get("optimizer"), r["T"]
    keys = list(dict.fromkeys(key(r) for r in rows))
    out = []
    for k in keys:
        sel = [r for r in rows if key(r) == k]
        p, fit, o, T = k
        row = {"problem": p, "fit": fit, "stride": sel[0].get("stride", 1), "optimizer": o, "T": T,
               "horizon": sel[0].get("horizon", T), "T_epochs": sel[0].get("T_epochs"), "n_networks": len(sel),
               "success_rate": sum(r["teq_steps"] > 0 for r in sel) / len(sel)}
        for field in ("teq_over_t", "train_to_t2_s", "recording_extra_s", "fit_s", "jump_s", "eval_s",
                      "koopman_phase_s", "optimizer_same_teq_s", "speedup_after_t2", "speedup_end_to_end",
                      "speedup_after_t2_paper_style", "loss_t2", "loss_koopman", "loss_optimizer_at_T"):
            row[f"{field}_median" if field.startswith("speedup") or field == "teq_over_t" else field] = \
                finite_median([r.get(field) for r in sel if r.get(field) is not None])
        out.append(row)
    return out


def keeps_up(summ: list[dict], fit: str = TARGET_FIT) -> dict:
    """Per DE solver optimizer, whether ``fit`` keeps up with it (the optimizers ``de_after_t2_speedup``
    counts): its median ``T_eq/T`` over the networks (:func:`summary`) at least the scorecard's bound
    for that optimizer (:data:`koopman_repro.scorecard.rules.RULES` ``"T_eq/T"``: Table 1's median
    minus 0.10; :data:`~koopman_repro.scorecard.rules.KEEPS_UP` for an optimizer Table 1 does not
    list). ``{optimizer: {"teq_over_t_median", "threshold", "success_rate", "keeps_up", "why"}}``."""
    from ..scorecard.measure_de_solver import DE_TABLE1
    from ..scorecard.rules import KEEPS_UP, RULES
    paper = {k.lower(): v[1] for k, v in DE_TABLE1.items()}
    out = {}
    for s in summ:
        if s["problem"] != "de-solver" or s.get("fit", "default") != fit:
            continue
        o, v = s["optimizer"], s["teq_over_t_median"]
        thr = RULES["T_eq/T"].bound(paper[o]) if o in paper else KEEPS_UP
        ok = v is not None and v >= thr
        out[o] = {"teq_over_t_median": v, "threshold": thr, "success_rate": s["success_rate"], "keeps_up": bool(ok),
                  "why": (f"{o}: median T_eq/T {fmt_num(v)} {'>=' if ok else 'below'} the scorecard's {thr:.2f} "
                          f"(success {s['success_rate']:.0%})")}
    return out


def fmt_num(v) -> str:
    """``v`` to 3 significant digits, ``n/a`` for ``None``."""
    return "n/a" if v is None else f"{v:.3g}"


def phase_headlines(rows: list[dict], summ: list[dict], T_epochs: int) -> dict:
    """The three speedup targets (:data:`PHASE_TARGETS`) from the rows of :data:`TARGET_FIT` (MNIST
    at ``T_epochs``; the DE solver over the optimizers the fit keeps up with, :func:`keeps_up`), the
    default fit's values beside them as readings (``<key>_default_fit``; the DE one over every
    optimizer), and ``de_keeps_up``. Medians over the networks; ``None`` without rows."""
    keeps = keeps_up(summ, TARGET_FIT)
    out: dict = {"de_keeps_up": keeps}
    for fit, suffix in ((TARGET_FIT, ""), ("default", "_default_fit")):
        for key, (problem, field) in PHASE_TARGETS.items():
            sel = [r for r in rows if r["problem"] == problem and r.get("fit", "default") == fit
                   and (problem != "mnist" or r.get("T_epochs") == T_epochs)]
            if problem == "de-solver" and fit == TARGET_FIT:
                sel = [r for r in sel if keeps.get(r["optimizer"], {}).get("keeps_up")]
            out[key + suffix] = finite_median([r[field] for r in sel]) if sel else None
    return out


def _parts_text(z: dict) -> tuple[str, str]:
    """The dominant part of a summary row's phase, and all the parts, in words."""
    parts = {"extra recording": z["recording_extra_s"], "fit": z["fit_s"], "jump": z["jump_s"],
             "evaluation": z["eval_s"]}
    top = max(parts, key=parts.get)
    share = parts[top] / z["koopman_phase_s"] if z["koopman_phase_s"] > 0 else math.nan
    return top, (f"the phase takes {fmt_num(z['koopman_phase_s'])} s, the {top} dominating ({fmt_num(parts[top])} s, "
                 f"{share:.0%}; " + ", ".join(f"{k} {fmt_num(v)} s" for k, v in parts.items() if k != top)
                 + f") against {fmt_num(z['optimizer_same_teq_s'])} s of fast-loop steps to the same loss "
                 f"(median T_eq/T {fmt_num(z['teq_over_t_median'])})")


def phase_reason(key: str, results: dict) -> str:
    """Why the speedup target ``key`` (:data:`PHASE_TARGETS`) is missed or not measured, from the
    measured parts of the :data:`TARGET_FIT` phase in ``results["end_to_end_summary"]``: which part
    dominates the phase's time, against the optimizer's time to the same loss; end to end, the
    ceiling a free phase would give (``(train + optimizer) / train``); for the DE solver, the
    optimizers left out because the fit does not keep up with them (``results["de_keeps_up"]``)."""
    problem, _ = PHASE_TARGETS[key]
    summ = [z for z in results.get("end_to_end_summary") or []
            if z["problem"] == problem and z.get("fit", "default") == TARGET_FIT]
    if problem == "mnist" and summ:
        last = max(z["T_epochs"] or 0 for z in summ)
        summ = [z for z in summ if z["T_epochs"] == last]
    if not summ:
        return f"no end-to-end rows of the {TARGET_FIT} fit in this run (" + \
            "; ".join(results.get("end_to_end_notes") or ["not measured"]) + ")"
    keeps = results.get("de_keeps_up") or {}
    if problem == "de-solver":
        out = [f"{z['optimizer']} ({TARGET_FIT}, s = {z['stride']}): {_parts_text(z)[1]}" for z in summ
               if keeps.get(z["optimizer"], {}).get("keeps_up")]
        left = [v["why"] for v in keeps.values() if not v["keeps_up"]]
        head = "; ".join(out) if out else f"the {TARGET_FIT} fit keeps up with no optimizer"
        return head + (f"; left out (the fit does not keep up): {'; '.join(left)}" if left else "")
    z = summ[0]
    text = f"MNIST ({TARGET_FIT}, s = {z['stride']}, T = {z['T_epochs']} epochs): {_parts_text(z)[1]}"
    if key.startswith("end_to_end"):
        ceiling = (z["train_to_t2_s"] + z["optimizer_same_teq_s"]) / z["train_to_t2_s"]
        text += (f"; training to t2 ({fmt_num(z['train_to_t2_s'])} s) is on both sides, so even a free phase "
                 f"would give at most {fmt_num(ceiling)}x")
    return text


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


def phase_parts(run: dict, fit: str) -> dict | None:
    """What one bench run (an MNIST run or the DE run) measured of ``fit``'s phase, ``{"stride",
    "record_seconds", "pipeline"}``: the default fit's is the run's recording of every step; the
    strided fit's is ``run["strided"]``, its own training run recorded at the rule's stride (the
    recorder skipping the steps it does not keep). ``None`` where the run did not measure it."""
    if fit == "default":
        rec = run.get("record_seconds")
        return {"stride": 1, "record_seconds": rec["stored"] if isinstance(rec, dict) else rec,
                "pipeline": run["pipeline"]}
    return run.get("strided")


def phase_timing(parts: list[dict], route: str, Ts) -> dict:
    """The Koopman phase by ``route`` from one or more runs' :func:`phase_parts` (medians over the
    runs): ``recording_extra_s``, ``fit_s``, ``eval_s``, ``stride``, and ``jump_s`` and ``horizon``
    (steps evolved) per nominal ``T`` of ``Ts``."""
    pipes = [p["pipeline"] for p in parts]
    return {"stride": int(parts[0]["stride"]),
            "recording_extra_s": finite_median([p["record_seconds"] for p in parts]),
            "fit_s": finite_median([q["routes"][route]["fit_s"] for q in pipes]),
            "jump_s": {T: finite_median([q["routes"][route]["jump_s"][T] for q in pipes]) for T in Ts},
            "horizon": {T: (pipes[0].get("horizon") or {}).get(T, T) for T in Ts},
            "eval_s": finite_median([q["eval_s"] for q in pipes])}


def _mnist_end_to_end(cfg: BenchConfig, runs: list[dict], fit: str, route: str, paper_style_step_s: float,
                      mn: dict | None, profile: str, results_dir) -> tuple[list[dict], str | None]:
    """The MNIST end-to-end rows of fit ``fit`` of the saved run ``mn`` with this benchmark's
    ``runs`` timings of ``route``, or no rows and the reason."""
    spe = runs[0]["steps_per_epoch"]
    Ts = [n * spe for n in cfg.T_epochs]
    if mn is None:
        return [], _missing("mnist", profile, results_dir)
    mc = mn["provenance"]["config"]
    if not (list(mc["window_epochs"]) == list(cfg.window_epochs) and list(mc["partition"]) == list(cfg.mnist_partition)
            and list(mc["sizes"]) == list(cfg.mnist_sizes) and mn["steps_per_epoch"] == spe):
        return [], "mnist: the experiment's window, partition or sizes differ from the timed run"
    parts = [phase_parts(r, fit) for r in runs]
    if fit not in mn["members"][0]["fits"]:
        return [], f"mnist, {fit}: the experiment's run has no {fit} fit"
    have = sorted({int(m["fits"][fit].get("stride", 1)) for m in mn["members"]})
    if have != [parts[0]["stride"]]:
        return [], f"mnist, {fit}: the experiment's stride {have} is not the timed recording's ({parts[0]['stride']})"
    timing = {"step_s": finite_median([r["optimizer_step_seconds"] for r in runs]),
              "paper_style_step_s": paper_style_step_s, **phase_timing(parts, route, Ts)}
    return mnist_rows(mn, timing, cfg.T_epochs, fit), None


def _de_end_to_end(de: dict, fit: str, route: str, dr: dict | None, profile: str,
                   results_dir) -> tuple[list[dict], str | None]:
    """The DE solver end-to-end rows of fit ``fit`` of the saved run ``dr`` with the benchmark's
    ``de`` timings of ``route``, or no rows and the reason."""
    if dr is None:
        return [], _missing("de-solver", profile, results_dir)
    dc = dr["provenance"]["config"]
    if not (dc["t2"] - dc["t1"] + 1 == de["k"] and de["T"] in dc["Ts"] and dc["train_dtypes"][0] == de["train_dtype"]):
        return [], (f"de-solver: the experiment's window ({dc['t2'] - dc['t1'] + 1} snapshots), "
                    f"horizons or dtype differ from the timed run ({de['k']} snapshots)")
    parts = phase_parts(de, fit)
    if not any(n["fit"] == fit for n in dr["networks"]):
        return [], f"de-solver, {fit}: the experiment's run has no {fit} fit"
    if fit != "default" and (dr.get("stride_rule") or {}).get("stride") != parts["stride"]:
        return [], (f"de-solver, {fit}: the experiment's stride {(dr.get('stride_rule') or {}).get('stride')} is not "
                    f"the timed recording's ({parts['stride']})")
    timing = {"step_s": de["step_seconds_fast_loop"], "paper_style_step_s": de["step_seconds_paper_style"],
              **phase_timing([parts], route, [de["T"]])}
    return de_rows(dr, timing, de["T"], fit), None


def end_to_end(cfg: BenchConfig, runs: list[dict], de: dict, paper_style_step_s: float, results_dir=None) -> dict:
    """The whole Koopman phase against the optimizer, per network of the experiment runs of
    ``cfg.end_to_end_profile`` (their ``T_eq`` of each fit of :data:`PHASE_FITS`), with this
    benchmark's timings of each fit's cheapest route (:func:`choose`) on networks trained the same
    way: ``end_to_end`` (rows), ``end_to_end_summary`` (medians per problem, fit, optimizer and
    horizon), ``pipeline`` (the choice per problem, ``"<problem>, default-strided"`` for the strided
    fit's) and the headline medians (:func:`phase_headlines`). Rows of a problem whose experiment
    settings differ from the timed ones (window, partition, sizes, stride) are left out and the
    reason recorded in ``end_to_end_notes``."""
    out: dict = {"end_to_end": [], "end_to_end_summary": [], "end_to_end_notes": [], "pipeline": {},
                 **{k + sfx: None for k in PHASE_TARGETS for sfx in ("", "_default_fit")}, "de_keeps_up": {}}
    spe = runs[0]["steps_per_epoch"]
    problems = {"mnist": (runs, cfg.T_epochs[-1] * spe), "de-solver": ([de], de["T"])}
    picks = {}
    for fit in PHASE_FITS:
        for problem, (rs, T) in problems.items():
            parts = [phase_parts(r, fit) for r in rs]
            if all(p is not None for p in parts):
                picks[problem, fit] = choose([p["pipeline"] for p in parts], T)
                out["pipeline"][problem if fit == "default" else f"{problem}, {fit}"] = picks[problem, fit]
    if not cfg.end_to_end_profile:
        out["end_to_end_notes"].append("no end_to_end_profile: no experiment run to take T_eq from")
        return out
    profile, runs_used = cfg.end_to_end_profile, {}
    mn = experiment_results("mnist", profile, results_dir)
    dr = experiment_results("de-solver", profile, results_dir)
    for fit in PHASE_FITS:
        for problem, saved in (("mnist", mn), ("de-solver", dr)):
            if (problem, fit) not in picks:
                out["end_to_end_notes"].append(f"{problem}, {fit}: not timed by this run")
                continue
            route = picks[problem, fit]["route"]
            rows, note = (_mnist_end_to_end(cfg, runs, fit, route, paper_style_step_s, saved, profile, results_dir)
                          if problem == "mnist" else _de_end_to_end(de, fit, route, saved, profile, results_dir))
            out["end_to_end"] += rows
            if note is None:
                runs_used[problem] = saved["provenance"]
            elif note not in out["end_to_end_notes"]:
                out["end_to_end_notes"].append(note)
    rows = out["end_to_end"]
    out["end_to_end_summary"] = summary(rows)
    out["end_to_end_runs"] = {k: {f: v.get(f) for f in ("git_sha", "utc_time", "profile", "seed")}
                              for k, v in runs_used.items()}
    out.update(phase_headlines(rows, out["end_to_end_summary"], cfg.T_epochs[-1]))
    return out
