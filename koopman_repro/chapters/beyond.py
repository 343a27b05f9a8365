"""The chapter "Beyond the paper" (``notebooks/beyond.md``): its tables, verdicts and figures.

Every function reads a ``beyond`` results file (as loaded by
:func:`koopman_repro.results.load_results`) or the declared rows of one of its tables
(:func:`rows`, :mod:`koopman_repro.rows.beyond`) and returns rows (dicts, one per table row, in
column order), a verdict sentence (Markdown) or a matplotlib Figure. Thresholds come from
:mod:`koopman_repro.scorecard`; the chapter prints their rules beside the verdicts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from .. import rows as declared
from ..experiments import config_for
from ..experiments.beyond import DE_PAPER_FIT, DE_PRECISION_METHODS
from ..experiments.beyond.cycles import CURVE_KEYS, VARIANTS
from ..experiments.beyond.observables import STATE
from ..report import NOT_MEASURED, fmt
from ..scorecard import (BEATS_OPTIMIZER, CRITERION_INFORMATIVE, CYCLES_FASTER, LOSS_TIE, OBSERVABLE_COSTLIER,
                         OBSERVABLE_HELPS, PROGRESS, SUMMARY_DIVERGENCE, SUMMARY_KEEPS_UP, WINDOW_CHOICE_GOOD,
                         WINDOW_MATTERS, WINDOW_MATTERS_A_LOT, claim_row, compare_loss)

#: the figures this chapter's page draws (tests/book/test_browser.py counts them on the page)
FIGURES = 7

#: losses above this (or diverged, non-finite) are drawn at the top of a log axis
CAP = 1e3
#: method names of the results' rows that the verdicts single out
STABLE_FIT = "Koopman (pinv, float32-resolution cutoff)"
MNIST_PAPER_FIT = "Koopman (pinv, default cutoff (paper))"
LINE = "linear extrapolation"
LINE_WHOLE = "linear extrapolation (whole window)"
REPLICATION_FIT = "replication: float32 fit, JAX pinv cutoff"


# -- rows -----------------------------------------------------------------------------------
def rows(results: dict | None, table: str) -> list:
    """The declared rows of ``results[table]`` (empty when there are no results or no such table)."""
    return declared.table(results, table, "beyond") if results else []


def pick(rows_: Sequence, **fields) -> list:
    """The rows whose fields equal the given values."""
    return [r for r in rows_ if all(getattr(r, k) == v for k, v in fields.items())]


def one(rows_: Sequence, **fields):
    """The first row whose fields equal the given values, or ``None``."""
    got = pick(rows_, **fields)
    return got[0] if got else None


def num(x) -> float:
    """``x`` as a float; ``None`` (a missing or non-finite value in JSON) is NaN."""
    return float("nan") if x is None else float(x)


def columns(rows_: Sequence, names: Sequence[str]) -> list[dict]:
    """The rows as dicts of the named fields, in that order (a table to show)."""
    return [{n: getattr(r, n) for n in names} for r in rows_]


def capped_median(curves) -> np.ndarray:
    """Median over networks (rows) of per-network curves; a diverged value counts as +inf and
    the median is capped at :data:`CAP`."""
    a = np.array(curves, dtype=float)
    a = np.where(np.isfinite(a), a, np.inf)
    return np.minimum(np.median(a, axis=0), CAP)


@dataclass(frozen=True)
class Runs:
    """This build's results beside the saved full-scale run of profile ``saved_profile``."""
    res: dict
    saved: dict | None
    profile: str
    saved_profile: str

    def verdicts(self, verdict: Callable[..., str], table: str, *args) -> list[str]:
        """``verdict(rows of table, *args)`` from this build and, where it exists and differs in
        profile, from the saved full-scale run, each with a label."""
        out = [f"*This build ({self.profile}):* " + verdict(rows(self.res, table), *args)]
        if self.saved and self.profile != self.saved_profile:
            out.append(f"*Full-scale run ({self.saved_profile} profile, `results/{self.saved_profile}/beyond.json`):* "
                       + verdict(rows(self.saved, table), *args))
        elif self.profile != self.saved_profile:
            out.append(f"*Full-scale run ({self.saved_profile} profile):* not run yet.")
        return out


# -- settings -------------------------------------------------------------------------------
def config_diff(profiles: Sequence[str] = ("ci", "paper", "full")) -> list[dict]:
    """One row per ``Config`` field whose value differs between the profiles."""
    cfgs = {name: config_for("beyond", name) for name in profiles}
    first = next(iter(cfgs.values()))
    return [{"setting": f.name, **{name: str(getattr(c, f.name)) for name, c in cfgs.items()}}
            for f in dataclasses.fields(first) if len({str(getattr(c, f.name)) for c in cfgs.values()}) > 1]


def saved_run_sentence(saved: dict | None, saved_profile: str) -> str | None:
    """Wall-clock, per-item minutes and machine load of the saved full-scale run."""
    if not saved:
        return None
    hw = saved["provenance"]["hardware"]
    return (f"The saved full-scale run (profile `{saved_profile}`) took {fmt(saved.get('wall_seconds') / 60)} minutes "
            f"of wall-clock ({', '.join(f'{k}: {fmt(v / 60)}' for k, v in saved.get('item_seconds', {}).items())} "
            f"minutes) on {hw.get('cpu_count')} {hw.get('cpu')} cores with {saved.get('threads', 1)} torch thread; "
            f"the load average was {hw.get('load_average_at_start')} at the start and {hw.get('load_average')} at "
            "the end (other runs shared the machine), so its timings are inflated by contention and are comparable "
            "only within that run.")



# -- 1. baselines ---------------------------------------------------------------------------
BASELINE_COLUMNS = ("method", "comparison", "steps", "loss_median", "accuracy_median", "loss_at_t2_median",
                    "teq_over_t_median", "censored_fraction", "seconds_per_network", "capped_at_steps_run")


def baselines_tables(B: Sequence) -> list[tuple[str, list[dict]]]:
    """``(caption, rows)`` of the baselines table, one per experiment that was run."""
    out = []
    for exp in ("de-solver", "mnist"):
        got = pick(B, experiment=exp)
        if got:
            out.append((f"**{exp}**, {got[0].setting}:", columns(got, BASELINE_COLUMNS)))
    return out


def _loss_label(key: str) -> str:
    return "DE loss" if key == "de" else "test loss (nats)"


def _baseline_curves_panel(ax, exp: str, key: str, cur: dict, steps: np.ndarray) -> None:
    ax.plot(steps, capped_median(cur["optimizer"]), "k-", lw=2, label="Adadelta (continued)")
    if key == "de":
        ax.plot(steps, capped_median(cur["koopman"]), "C3-", label="Koopman (pinv)")
    else:
        ax.plot(steps, capped_median(cur["koopman_pinv"]), "C3--", label="Koopman (pinv, default cutoff)")
        ax.plot(steps, capped_median(cur["koopman_stable"]), "C3-", label="Koopman (float32-resolution cutoff)")
    ax.plot(steps, capped_median(cur["linear"]), "C0-", label="linear extrapolation (whole window)")
    for i, (name, tr) in enumerate(cur["baselines"].items()):
        ax.plot(np.array(tr["steps"], dtype=float), np.minimum(np.array(tr["loss_median"], dtype=float), CAP),
                color=f"C{4 + i}", lw=1, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("steps after $t_2$")
    ax.set_ylabel(_loss_label(key) + f"; diverged drawn at {CAP:g}")
    ax.set_title(f"{exp}: loss along the T steps (median over networks)")
    ax.legend(fontsize=7)


def _baseline_clock_panel(ax, exp: str, key: str, cur: dict, steps: np.ndarray, B: Sequence) -> None:
    ax.plot(steps * cur["optimizer_step_seconds_per_network"], capped_median(cur["optimizer"]), "k-", lw=2,
            label="Adadelta (continued)")
    for i, (name, tr) in enumerate(cur["baselines"].items()):
        ax.plot(np.array(tr["seconds_per_network"], dtype=float),
                np.minimum(np.array(tr["loss_median"], dtype=float), CAP), color=f"C{4 + i}", lw=1, label=name)
    ks = cur["koopman_seconds_per_network"]
    ks = ks if isinstance(ks, dict) else {"pinv": ks}
    for name, sec in ks.items():
        method = (DE_PAPER_FIT if key == "de" else
                  f"Koopman ({'pinv, default cutoff (paper)' if name == 'pinv' else 'pinv, float32-resolution cutoff'})")
        r = one(B, experiment=exp, comparison="equal steps", method=method)
        y = num(r.loss_median if r else None)
        ax.plot([sec], [min(y, CAP) if np.isfinite(y) else CAP], "C3*" if name != "pinv" else "C3x", ms=12,
                label=f"Koopman ({name}) after T steps")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("seconds per network (batched ensemble work, this machine)")
    ax.set_ylabel(_loss_label(key))
    ax.set_title(f"{exp}: loss against wall-clock")
    ax.legend(fontsize=7)


def baselines_figure(results: dict):
    """Median loss of every method along the T steps (left) and against wall-clock (right), one
    row of panels per experiment (DE solver, MNIST)."""
    import matplotlib.pyplot as plt
    B = rows(results, "baselines")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for row, exp, key in ((0, "de-solver", "de"), (1, "mnist", "mnist")):
        if key not in results:
            continue
        cur = results[key]["baseline_curves"]
        steps = np.array(cur["T"] if key == "de" else cur["steps"], dtype=float)
        _baseline_curves_panel(axes[row, 0], exp, key, cur, steps)
        _baseline_clock_panel(axes[row, 1], exp, key, cur, steps, B)
    fig.tight_layout()
    return fig


def verdict_baselines_of(exp: str, B: Sequence) -> str:
    """Koopman training against the best straight line (equal steps) and the continued optimizer
    (equal wall-clock) on ``exp`` (rule: :func:`koopman_repro.scorecard.compare_loss`)."""
    equal = pick(B, experiment=exp, comparison="equal steps")
    kname = DE_PAPER_FIT if exp == "de-solver" else STABLE_FIT
    k = one(equal, method=kname)
    lines = pick(equal, method=LINE)
    if not equal or not k or not lines:
        return f"{exp}: not run."
    lin = min(lines, key=lambda r: num(r.loss_median))
    opt_wall = [r for r in pick(B, experiment=exp, comparison="equal wall-clock") if "continued" in r.method]
    ow = opt_wall[0] if opt_wall else None
    better_lin = {"better": "better than", "tie": "about as good as", "worse": "worse than"}[
        compare_loss(num(k.loss_median), num(lin.loss_median))]
    vs_opt = {"better": "beat", "tie": f"matched (within {LOSS_TIE:.0%})", "worse": "did not beat"}[
        compare_loss(num(k.loss_median), num(ow.loss_median if ow else None))]
    opt_T = one(equal, method=ow.method) if ow else None
    opt_T_seconds = opt_T.seconds_per_network if opt_T else None
    capped = (" (the time budget allowed more optimizer steps than this run recorded, so the optimizer's "
              "number is an upper bound on its loss)" if ow and ow.capped_at_steps_run else "")
    fresh = [r for r in equal if "fresh" in r.method or "L-BFGS" in r.method]
    best_fresh = min(fresh, key=lambda r: num(r.loss_median)) if fresh else None
    return (f"**{exp}**: {kname} reached a median loss of {fmt(k.loss_median)} "
            f"($T_{{eq}}/T$ = {fmt(num(k.teq_over_t_median))}); the best straight line reached {fmt(lin.loss_median)} "
            f"($T_{{eq}}/T$ = {fmt(num(lin.teq_over_t_median))}, {lin.setting.split(', ')[-1]}), so Koopman training "
            f"was **{better_lin} linear extrapolation** here. Given Koopman's own time "
            f"({fmt(k.seconds_per_network)} s per network), the continued optimizer took "
            f"{ow.steps if ow else None} steps and reached {fmt(ow.loss_median if ow else None)}{capped}: Koopman "
            f"training **{vs_opt} simply continuing the optimizer at equal wall-clock**; the optimizer's own "
            f"{k.steps} steps took {fmt(opt_T_seconds)} s per network, so Koopman's fit and jump cost "
            f"{fmt(num(k.seconds_per_network) / num(opt_T_seconds))} times the optimizer's time for the same $T$ "
            f"steps. The best fresh optimizer at equal steps was {best_fresh.method if best_fresh else None} with "
            f"{fmt(best_fresh.loss_median if best_fresh else None)}. **Verdict ({exp}): Koopman training was "
            f"{better_lin} linear extrapolation at equal steps and {vs_opt} continuing the optimizer at equal "
            "wall-clock.**")


def verdict_baselines(B: Sequence) -> str:
    """:func:`verdict_baselines_of` the DE solver, then MNIST."""
    return verdict_baselines_of("de-solver", B) + "\n\n" + verdict_baselines_of("mnist", B)


# -- 1b. why the DE solver chapter finds the opposite ---------------------------------------
def precision_rows_of(results: dict | None) -> dict:
    """The DE solver's equal-steps rows for the paper's fit and the two precision fits, keyed by
    method (``DE_PAPER_FIT``, then ``DE_PRECISION_METHODS``); ``None`` where there is no such row."""
    equal = pick(rows(results, "baselines"), experiment="de-solver", comparison="equal steps")
    return {m: one(equal, method=m) for m in (DE_PAPER_FIT, *DE_PRECISION_METHODS.values())}


def de_chapter_row(results: dict | None, label: str) -> dict:
    """The DE solver chapter's main reading (Adadelta, its ``main`` T, training precision and fit
    method) as a row of the precision table."""
    if not results:
        return {"source": label, "training": "not run yet"}
    m = results["main"]
    nets = pick(declared.table(results, "networks", "de-solver"), optimizer="adadelta", T=m["T"],
                train_dtype=m["train_dtype"], fit_method=m["fit_method"])
    c = results["provenance"]["config"]
    return {"source": label, "training": m["train_dtype"], "fit": f"{m['fit_method']}, default cutoff (paper)",
            "window": f"{c['t1']}-{c['t2']}, T = {m['T']}", "networks": len(nets),
            "loss_at_t2_median": float(np.median([n.loss_t2 for n in nets])),
            "koopman_loss_median": float(np.median([n.loss_koopman for n in nets])),
            "teq_over_t_median": float(np.median([n.teq_over_t for n in nets])),
            "success_rate": float(np.mean([n.success for n in nets]))}


def precision_rows(results: dict | None, label: str) -> list[dict]:
    """This chapter's float64 DE rows (the paper's fit and the two precision fits) as rows of the
    precision table."""
    if not results:
        return [{"source": label, "training": "not run yet"}]
    c = results["provenance"]["config"]
    out = []
    for method, r in precision_rows_of(results).items():
        fit = method.removeprefix("Koopman ").strip("()")
        if r is None:
            out.append({"source": label, "training": "float64", "fit": fit, "window": "not run yet"})
            continue
        out.append({"source": label, "training": "float64", "fit": fit,
                    "window": f"{c['de_t1']}-{c['de_t2']}, T = {c['de_T']}", "networks": c["de_inits"],
                    "loss_at_t2_median": r.loss_at_t2_median, "koopman_loss_median": r.loss_median,
                    "teq_over_t_median": r.teq_over_t_median, "success_rate": r.success_rate})
    return out


def precision_table(de_ci: dict | None, de_saved: dict | None, res: dict | None, saved: dict | None,
                    profile: str, saved_profile: str) -> list[dict]:
    """The DE solver chapter's rows (this build, paper profile) above this chapter's (this build,
    the saved full-scale run)."""
    return [de_chapter_row(de_ci, f"DE solver chapter ({profile})"),
            de_chapter_row(de_saved, "DE solver chapter (paper profile)"),
            *precision_rows(res, f"this chapter ({profile})"),
            *precision_rows(saved, f"this chapter ({saved_profile} profile)")]


def precision_verdict(de_results: dict | None, ours: dict | None) -> str:
    """float32 training (DE solver chapter) against this chapter's float64 fits, in one sentence."""
    if not de_results or not ours:
        return "not run yet."
    d = de_chapter_row(de_results, "")
    k, cut, rnd = precision_rows_of(ours).values()

    def teq(r):
        return fmt(r.teq_over_t_median if r else None)

    def pct(r):
        return fmt(100 * num(r.success_rate if r else None))
    return (f"float32 training (DE solver chapter): median $T_{{eq}}/T$ = {fmt(d['teq_over_t_median'])}, success "
            f"{fmt(100 * d['success_rate'])} %; float64 training with the paper's fit (this chapter): "
            f"{teq(k)}, success {pct(k)} %; the same float64 window with a float32-resolution cutoff: {teq(cut)} "
            f"({pct(cut)} %), rounded to float32: {teq(rnd)} ({pct(rnd)} %).")


# -- 2. the data window ---------------------------------------------------------------------
HEATMAP_COLUMNS = ("experiment", "method", "t1", "length", "teq_over_t_median", "success_rate", "loss_median",
                   "loss_at_t2_median", "weight_error_median", "max_spectral_radius_median")
#: (experiment, fit or None, title) of the heat-map panels, in order
HEATMAP_PANELS = (("de-solver", None, "DE solver, Koopman (pinv)"),
                  ("mnist", "pinv", "MNIST, pinv default cutoff (paper)"),
                  ("mnist", "stable", "MNIST, float32-resolution cutoff"))


def _of(rows_: Sequence, exp: str, fit: str | None) -> list:
    return pick(rows_, experiment=exp, **({"fit": fit} if fit else {}))


def window_grid(rows_: Sequence, field: str) -> tuple[list, list, np.ndarray]:
    """``(t1s, lengths, G)`` with ``G[length, t1]`` the rows' ``field`` (NaN where missing)."""
    t1s = sorted({r.t1 for r in rows_})
    lens = sorted({r.length for r in rows_})
    G = np.full((len(lens), len(t1s)), np.nan)
    for r in rows_:
        v = getattr(r, field)
        G[lens.index(r.length), t1s.index(r.t1)] = np.nan if v is None else v
    return t1s, lens, G


def window_heatmap_figure(H: Sequence):
    """Median T_eq/T (top) and log10 weight error (bottom) over window start and length, one
    column per panel of :data:`HEATMAP_PANELS` that has rows."""
    import matplotlib.pyplot as plt
    panels = [p for p in HEATMAP_PANELS if _of(H, p[0], p[1])]
    fig, axes = plt.subplots(2, len(panels), figsize=(4.6 * len(panels), 7.5), squeeze=False)
    for j, (exp, fit, title) in enumerate(panels):
        for i, (field, label, cmap, vmin, vmax) in enumerate((
                ("teq_over_t_median", "median $T_{eq}/T$", "viridis", 0, 1.5),
                ("weight_error_median", "median log10 weight error (clipped to [-3, 2])", "magma_r", -1, 2))):
            t1s, lens, G = window_grid(_of(H, exp, fit), field)
            if field == "weight_error_median":
                G = np.log10(np.where(np.isfinite(G) & (G > 0), G, 1e2).clip(1e-3, 1e2))
            ax = axes[i, j]
            im = ax.imshow(G, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
            ax.set_xticks(range(len(t1s)), [str(t) for t in t1s], rotation=45, fontsize=7)
            ax.set_yticks(range(len(lens)), [str(L) for L in lens], fontsize=7)
            ax.set_xlabel("window start $t_1$ (step)")
            ax.set_ylabel("window length $t_2 - t_1$ (steps)")
            ax.set_title(f"{title}\n{label}", fontsize=9)
            for (a, b), v in np.ndenumerate(G):
                ax.text(b, a, "n/a" if np.isnan(v) else f"{v:.2g}", ha="center", va="center", fontsize=7, color="w")
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def window_spread(H: Sequence) -> float:
    """The largest, over experiments, of max minus min median T_eq/T across the window grid."""
    def teqs(e):
        return np.array([num(r.teq_over_t_median) for r in pick(H, experiment=e)], dtype=float)
    return max(np.nanmax(teqs(e)) - np.nanmin(teqs(e)) for e in {r.experiment for r in H})


def verdict_window(H: Sequence) -> str:
    """How much the window matters (rules ``WINDOW_MATTERS_A_LOT``, ``WINDOW_MATTERS``, ``PROGRESS``)."""
    if not H:
        return "not run."
    parts = []
    for exp, fit in (("de-solver", None), ("mnist", "stable"), ("mnist", "pinv")):
        got = _of(H, exp, fit)
        if not got:
            continue
        vals = [num(r.teq_over_t_median) for r in got]
        best = got[int(np.nanargmax(vals))]
        n_ok = sum(PROGRESS.holds(v) for v in vals)
        parts.append(f"{exp}{' (' + fit + ')' if fit else ''}: median $T_{{eq}}/T$ ranges from {fmt(min(vals))} "
                     f"to {fmt(max(vals))} over {len(got)} windows ({n_ok} with any progress); the best window "
                     f"starts at step {best.t1} and is {best.length} steps long")
    spread = window_spread(H)
    if WINDOW_MATTERS_A_LOT.holds(spread):
        v = ("the window matters a great deal** (median $T_{eq}/T$ moves by more than 0.5 across the grid): the "
             "result of Koopman training is a property of the window as much as of the method.")
    elif WINDOW_MATTERS.holds(spread):
        v = "the window matters** (median $T_{eq}/T$ moves by 0.2 to 0.5 across the grid)."
    else:
        v = "within this grid the window matters little** (median $T_{eq}/T$ moves by less than 0.2)."
    return "; ".join(parts) + ". **Verdict: " + v


# -- 3. choosing the window -----------------------------------------------------------------
CHOICE_COLUMNS = ("experiment", "fit", "method", "windows_chosen", "teq_over_t_median", "rank_correlation_with_teq")
CRITERIA = ("spectral", "one_step", "multi_step")


def window_scores_figure(results: dict):
    """Each window criterion's score (log10) against the realised T_eq/T, every window and network."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    sets = [("de-solver", results.get("de", {}).get("window_scores"))]
    if "mnist" in results:
        sets.append(("mnist (stable fit)", results["mnist"]["window_scores"]["stable"]))
    for ax, crit in zip(axes, CRITERIA):
        for k, (label, sc) in enumerate(sets):
            if not sc:
                continue
            x = np.array(sc[crit], dtype=float).ravel()
            y = np.array(sc["teq_over_t"], dtype=float).ravel()
            ok = np.isfinite(x) & np.isfinite(y)
            ax.scatter(np.log10(np.maximum(x[ok], 1e-6)), y[ok], s=14, color=f"C{k}", label=label, alpha=0.7)
        ax.set_xlabel(f"log10 {crit.replace('_', '-')} score (lower is predicted better)")
        ax.set_ylabel("$T_{eq}/T$ realised")
        ax.set_title(f"criterion: {crit.replace('_', '-')}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _choice_sentence(got: Sequence) -> tuple[str, bool | None]:
    """One experiment's sentence and whether its best criterion came close to the hindsight
    choice (``None``: no window gave progress, nothing to choose)."""
    crit = [r for r in got if r.method.startswith("criterion")]
    best = max(crit, key=lambda r: num(r.teq_over_t_median))
    fixed_teq = num(getattr(one(got, method="best fixed window (hindsight)"), "teq_over_t_median", None))
    paper = one(got, method="the paper's window")
    corr = [num(r.rank_correlation_with_teq) for r in crit]
    text = (f"{got[0].experiment}: the best criterion ({best.method.split(': ')[1]}) reached a median $T_{{eq}}/T$ "
            f"of {fmt(best.teq_over_t_median)}, against {fmt(fixed_teq)} for the best fixed window in hindsight "
            f"and {fmt(paper.teq_over_t_median if paper else None)} for the paper's window; rank correlations "
            f"of the three criteria with the outcome: {', '.join(fmt(c) for c in corr)}")
    if not PROGRESS.holds(fixed_teq):
        return text + " (no window of the grid gave a median $T_{eq}/T$ above 0, so there was nothing to choose)", None
    good = WINDOW_CHOICE_GOOD.holds(num(best.teq_over_t_median), of=fixed_teq)
    informative = CRITERION_INFORMATIVE.holds(max(corr)) if corr else False
    return text + (" (" + ("close to" if good else "well short of") + " the hindsight choice; the scores "
                   + ("carry" if informative else "carry little") + " information about the outcome)"), good


def verdict_choice(C: Sequence) -> str:
    """Whether a criterion computed from the window alone finds windows as good as the hindsight
    choice (rules ``WINDOW_CHOICE_GOOD``, ``CRITERION_INFORMATIVE``, ``PROGRESS``)."""
    out, verdicts = [], []
    for exp, fit in (("de-solver", "pinv"), ("mnist", "stable")):
        got = pick(C, experiment=exp, fit=fit)
        if got:
            text, good = _choice_sentence(got)
            out.append(text)
            if good is not None:
                verdicts.append(good)
    if not out:
        return "not run."
    if not verdicts:
        return "; ".join(out) + ". **Verdict: untestable here: no window gave progress.**"
    return "; ".join(out) + (". **Verdict: " + ("a criterion computed from the window alone chose windows about as "
                             "good as the best fixed window in hindsight wherever a good window existed.**"
                             if all(verdicts) else "no criterion computed from the window alone reliably found "
                             "windows as good as the hindsight choice.**"))


# -- 4. stabilisation -----------------------------------------------------------------------
STABILISATION_COLUMNS = ("method", "T_epochs", "test_loss_koopman_median", "test_loss_optimizer_median",
                         "test_accuracy_koopman_median", "test_accuracy_optimizer_median", "accuracy_cost_median",
                         "diverged_fraction", "max_spectral_radius_median", "fit_seconds_per_network")


def replication_window(results: dict) -> tuple:
    """(first, last) epoch (1-based) of the window a results file's replication study recorded."""
    return tuple(results["provenance"]["config"]["replication_window_epochs"])


def replication_sentence(results: dict) -> str:
    first, last = replication_window(results)
    return (f"The replication study of the results shown recorded the weights after every step of epochs "
            f"{first}-{last} (1-based) and started Koopman training from the end of epoch {last} ($t_2$).")


def replication_reported(results: dict) -> dict:
    """The replication's reported Koopman test losses after 1 and 2 epochs (``"n/a"`` if not stored)."""
    return results.get("stabilisation_details", {}).get(
        "replication_reported", {"koopman_test_loss_T1": "n/a", "koopman_test_loss_T2": "n/a"})


def stabilisation_figure(results: dict):
    """Median test loss (left) and accuracy (right) along every stabilisation's Koopman path,
    against the continued optimizer; ``None`` when the results have no curves."""
    import matplotlib.pyplot as plt
    det = results.get("stabilisation_details", {})
    if not det:
        return None
    cur = det["stabilisation_curves"]
    steps = np.array(cur["steps"], dtype=float) / det.get("steps_per_epoch", 938)
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    names = [k for k in cur if k not in ("steps", "optimizer", "optimizer_accuracy")]
    for i, name in enumerate(names):
        ls = "--" if name.startswith("replication") else "-"
        axes[0].plot(steps, capped_median(cur[name]["loss"]), ls, color=plt.cm.tab20(i % 20), label=name, lw=1.2)
        acc = np.array(cur[name]["accuracy"], dtype=float)
        axes[1].plot(steps, np.median(np.where(np.isfinite(acc), acc, 0.0), axis=0), ls, color=plt.cm.tab20(i % 20),
                     lw=1.2)
    axes[0].plot(steps, capped_median(cur["optimizer"]), "k-", lw=2.5, label="Adadelta (continued)")
    axes[1].plot(steps, np.median(np.array(cur["optimizer_accuracy"], dtype=float), axis=0), "k-", lw=2.5)
    axes[0].set_yscale("log")
    axes[0].set_ylabel(f"test loss (nats; diverged drawn at {CAP:g})")
    axes[1].set_ylabel("test accuracy (diverged drawn at 0)")
    for ax in axes:
        ax.set_xlabel(f"epochs after $t_2$ (end of epoch {replication_window(results)[1]})")
    axes[0].set_title("replication's settings: Koopman paths by stabilisation")
    axes[1].set_title("test accuracy along the same paths")
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7.5)
    return fig


def never_diverged(S4: Sequence, skip_replication: bool = True) -> list[str]:
    """The methods (sorted) whose diverged fraction is 0 at every horizon."""
    return sorted({r.method for r in S4 if not (skip_replication and r.method.startswith("replication: "))
                   and all(x.diverged_fraction == 0 for x in pick(S4, method=r.method))})


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def _best_per_horizon(S4: Sequence) -> str:
    per_T = []
    for T in sorted({r.T_epochs for r in S4}):
        ok = [r for r in pick(S4, T_epochs=T) if r.diverged_fraction == 0]
        best = min(ok, key=lambda r: num(r.accuracy_cost_median)) if ok else None
        per_T.append(f"T = {T}: " + (f"{len(ok)} variant(s) did not diverge, the best {best.method} "
                                      f"(accuracy {fmt(best.test_accuracy_koopman_median)} against "
                                      f"Adadelta's {fmt(best.test_accuracy_optimizer_median)})"
                                      if ok else "every variant diverged"))
    return "; ".join(per_T)


def verdict_stable(S4: Sequence, reported: dict) -> str:
    """Which stabilisations never diverged under the replication's settings, and their accuracy cost."""
    if not S4:
        return "not run."
    rep = pick(S4, method=REPLICATION_FIT)
    rep_div = {r.T_epochs: r.diverged_fraction for r in rep}
    cured = never_diverged(S4)
    cost = {m: {r.T_epochs: r.accuracy_cost_median for r in pick(S4, method=m)} for m in cured}
    txt = (f"Under the replication's settings ({rep[0].setting}) its own fit diverged in "
           f"{_pct(rep_div.get(1))} / {_pct(rep_div.get(2))} / {_pct(rep_div.get(5))} of the networks after 1 / 2 / 5 "
           f"epochs (median test loss {', '.join(fmt(r.test_loss_koopman_median) for r in rep)} against Adadelta's "
           f"{', '.join(fmt(r.test_loss_optimizer_median) for r in rep)}; the replication reported about "
           f"{reported['koopman_test_loss_T1']} and {reported['koopman_test_loss_T2']} after 1 and 2 epochs). ")
    if not cured:
        return txt + "**Verdict: no single variant removed the divergence at every horizon.** " + \
            _best_per_horizon(S4) + "."
    best = min(cured, key=lambda m: num(cost[m].get(max(cost[m]))))
    return txt + ("**Verdict: the variants that never diverged are " + "; ".join(cured) + ".** Their accuracy "
                  "cost against Adadelta after 1 / 2 / 5 epochs: " +
                  "; ".join(f"{m}: {' / '.join(fmt(cost[m].get(t)) for t in sorted(cost[m]))}" for m in cured) +
                  f". The cheapest in accuracy at the longest horizon is {best}.")


# -- 5. observables -------------------------------------------------------------------------
OBSERVABLE_COLUMNS = ("experiment", "method", "features_per_block", "operator_entries_per_network",
                      "fit_seconds_per_network", "loss_median", "teq_over_t_median", "weight_error_median",
                      "max_spectral_radius_median")


def observables_figure(O: Sequence):
    """Median T_eq/T against fit seconds per network, one marker per observable (filled: the
    float32-resolution cutoff, hollow: the pinv default cutoff); blue DE solver, orange MNIST."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 4.2))
    mark = dict(zip(sorted({r.observables for r in O}), "osD^vP*X"))
    for k, exp in enumerate(("de-solver", "mnist")):
        for r in pick(O, experiment=exp):
            pinv = r.fit == "pinv"
            ax.scatter([num(r.fit_seconds_per_network)], [num(r.teq_over_t_median)], s=45, marker=mark[r.observables],
                       alpha=0.8, facecolors="none" if pinv else f"C{k}", edgecolors=f"C{k}",
                       label=f"{exp}: {r.observables}" + (" (pinv default cutoff)" if pinv else
                                                          " (float32-resolution cutoff)" if r.fit else ""))
    ax.set_xscale("log")
    ax.set_xlabel("fit seconds per network (log scale)")
    ax.set_ylabel("median $T_{eq}/T$")
    ax.set_title("observables: accuracy against cost (blue: DE solver, orange: MNIST)")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


def verdict_obs(O: Sequence) -> str:
    """Whether a richer observable beat the identity, and at what fit cost (rules
    ``OBSERVABLE_HELPS``, ``OBSERVABLE_COSTLIER``)."""
    if not O:
        return "not run."
    out, helped, costlier = [], [], []
    for exp, fit in (("de-solver", None), ("mnist", "stable")):
        got = _of(O, exp, fit)
        if not got:
            continue
        ident = one(got, observables="identity")
        ident_teq = ident.teq_over_t_median if ident else None
        best = max(got, key=lambda r: num(r.teq_over_t_median))
        ratio = num(best.fit_seconds_per_network) / max(num(ident.fit_seconds_per_network if ident else None), 1e-12)
        out.append(f"{exp}: identity $T_{{eq}}/T$ {fmt(ident_teq)}, best "
                   f"{best.observables} {fmt(best.teq_over_t_median)} at {fmt(ratio)}x the identity's fit time")
        if OBSERVABLE_HELPS.holds(num(best.teq_over_t_median) - num(ident_teq)):
            helped.append(exp)
            costlier.append(OBSERVABLE_COSTLIER.holds(ratio))
    if not helped:
        v = "richer observables did not improve on the identity (by more than 0.1 in $T_{eq}/T$)."
    else:
        cost = ("at a higher fit cost" if all(costlier) else "without a higher fit cost" if not any(costlier)
                else "sometimes at a higher fit cost")
        v = f"a richer observable improved $T_{{eq}}/T$ by more than 0.1 on {' and '.join(helped)}, {cost}."
    return "; ".join(out) + ". **Verdict: " + v + "**"


def state_observable_sentence(O: Sequence) -> str:
    """What Adadelta's state as observables (spec ``STATE`` on the DE solver: each block's weights with
    the square roots of ``square_avg`` and ``acc_delta``) changes against the identity, and where its
    jump still stops (:data:`NOT_SAVED` where the results lack the row)."""
    de = _of(O, "de-solver", None)
    st, ident = one(de, observables=STATE), one(de, observables="identity")
    if st is None or ident is None:
        return f"The weights with Adadelta's state as observables (DE solver): {NOT_SAVED}."
    s_teq, i_teq = num(st.teq_over_t_median), num(ident.teq_over_t_median)
    ratio = num(st.fit_seconds_per_network) / max(num(ident.fit_seconds_per_network), 1e-12)
    change = ("improves on" if OBSERVABLE_HELPS.holds(s_teq - i_teq) else "does not improve on (by more than 0.1)")
    stop = (f"its jump still stops short of the continued optimizer: in $T$ steps it reaches the loss Adadelta "
            f"reaches in {fmt(100 * s_teq)} % of them" if s_teq < 1 else
            "its jump reaches at least the continued optimizer's loss after $T$ steps")
    return (f"On the DE solver, adding Adadelta's two accumulators (square roots) to each block's weights "
            f"({st.features_per_block} features per block against {ident.features_per_block}) moves the median "
            f"$T_{{eq}}/T$ from {fmt(i_teq)} to {fmt(s_teq)}, the success rate from {_pct(ident.success_rate)} to "
            f"{_pct(st.success_rate)}, the median weight error after the jump from {fmt(ident.weight_error_median)} "
            f"to {fmt(st.weight_error_median)} and the median largest $|\\lambda|$ from "
            f"{fmt(ident.max_spectral_radius_median)} to {fmt(st.max_spectral_radius_median)}, at {fmt(ratio)}x the "
            f"identity's fit time: the state {change} the identity, and {stop}." + (
                "" if one(O, experiment="mnist", observables=STATE) else " No MNIST fit in these results carries the state."))


# -- 6. cycles ------------------------------------------------------------------------------
#: what a jump carries, one row of the cycles table each: the optimizer alone, then the cycles' variants
CYCLE_VARIANTS = ("optimizer alone", *VARIANTS)
#: a row or a field a results file does not hold (older files, or a profile that does not run it)
NOT_SAVED = "not in this saved run"
#: the curves of the cycles figure beside the optimizer alone: variant -> (style, label)
CYCLE_CURVE_STYLES = {"weights": ("C3.-", "cycles: jumps of the weights"),
                      "weights + optimizer state": ("C2.--", "cycles: jumps of the weights + Adadelta's state")}


def cycles_by_variant(CY: Sequence) -> dict:
    """The cycles rows by what a jump carries (:data:`CYCLE_VARIANTS`); rows of files made before
    the variants (``variant`` None) are the optimizer alone, then the weights-only cycles."""
    out = {}
    for i, r in enumerate(CY):
        out.setdefault(r.variant or ("optimizer alone" if i == 0 else "weights"), r)
    return out


#: the cycles table's headers (words and units), one column each
CYCLE_HEADS = ("what a jump carries", "jumps kept of tried", "time to target (s)", "steps to target",
               "final test loss (nats)", "fitting (s)", "jumping (s)")


def _cycle_cells(v: str, r) -> dict:
    steps = num(r.steps_to_target_median)
    return dict(zip(CYCLE_HEADS, (
        v, "no jumps" if v == "optimizer alone" else f"{r.jumps_accepted} of {r.jumps_tried}",
        "not reached" if r.seconds_to_target_median is None else fmt(r.seconds_to_target_median),
        f"{steps:.0f}" if np.isfinite(steps) else "not reached",
        NOT_SAVED if r.final_test_loss_median is None else fmt(r.final_test_loss_median),
        fmt(r.seconds_fitting), fmt(r.seconds_jumping))))


def cycles_table(CY: Sequence, run_variants: Sequence[str] | None = None) -> list[dict]:
    """One row per :data:`CYCLE_VARIANTS` entry, headers in words and units (:data:`CYCLE_HEADS`): jumps
    kept of those tried, the median over networks of the seconds per network and of the steps (optimizer
    steps + kept jump steps) to the target, the median test loss at the last evaluation, and the
    seconds per network spent fitting and jumping. A variant without a row is "not run at this profile" when
    ``run_variants`` (the run's ``cyc_variants``) leaves it out, else :data:`NOT_SAVED`."""
    by, out = cycles_by_variant(CY), []
    for v in CYCLE_VARIANTS:
        if v in by:
            out.append(_cycle_cells(v, by[v]))
            continue
        why = ("not run at this profile (`cyc_variants`)" if run_variants is not None and v != "optimizer alone"
               and v not in run_variants else NOT_SAVED)
        out.append(dict(zip(CYCLE_HEADS, (v, why, *[""] * (len(CYCLE_HEADS) - 2)))))
    return out


def cycles_table_of(results: dict | None) -> list[dict]:
    """:func:`cycles_table` of a results file (its ``cyc_variants`` from its configuration, where recorded)."""
    if not results:
        return []
    return cycles_table(rows(results, "cycles"), results.get("provenance", {}).get("config", {}).get("cyc_variants"))


def cycles_figure(results: dict):
    """Median test loss against wall-clock per network, the optimizer alone and the cycles of each
    variant in the results (the state cycles' curve ``cycle_curves["cycles_state"]`` where present),
    with the target; ``None`` when the results have no curves."""
    import matplotlib.pyplot as plt
    cc = results.get("cycle_curves")
    if not cc:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.3))
    ax.plot(cc["alone"]["seconds_per_network"], np.minimum(np.array(cc["alone"]["loss_median"], dtype=float), CAP),
            "k-", label="Adadelta alone")
    for v, (style, label) in CYCLE_CURVE_STYLES.items():
        cur = cc.get(CURVE_KEYS[v])
        if cur:
            ax.plot(cur["seconds_per_network"], np.minimum(np.array(cur["loss_median"], dtype=float), CAP), style,
                    label=label)
    ax.axhline(cc["target_median"], color="grey", ls=":", label="target (median)")
    ax.set_yscale("log")
    ax.set_xlabel("wall-clock seconds per network (all costs)")
    ax.set_ylabel("test loss (nats, median)")
    ax.set_title("Koopman training in cycles against the optimizer alone")
    ax.legend()
    return fig


def cycles_faster(alone_seconds: float, cycles_seconds: float) -> bool:
    """Rule ``CYCLES_FASTER``: the cycles reached the target, and sooner by more than 10 % or when
    the optimizer alone did not (NaN: not reached)."""
    return bool(np.isfinite(cycles_seconds) and (not np.isfinite(alone_seconds)
                                                 or CYCLES_FASTER.holds(cycles_seconds, of=alone_seconds)))


def _faster_words(sa: float, sc: float) -> str:
    return "faster (by more than 10 %)" if cycles_faster(sa, sc) else "not faster"


def _state_cycles_sentence(sa: float, s) -> str:
    """What the cycles that carry Adadelta's state did (row ``s``, None: not in the results)."""
    if s is None:
        return "The cycles whose jumps carry Adadelta's state as well: " + NOT_SAVED + "."
    ss = num(s.seconds_to_target_median)
    reach = f"reached the target in {fmt(ss)} s" if np.isfinite(ss) else "did not reach the target"
    return (f"The cycles whose jumps carry Adadelta's state as well {reach} ({s.jumps_accepted} of {s.jumps_tried} "
            f"jumps kept; fitting {fmt(s.seconds_fitting)} s and jumping {fmt(s.seconds_jumping)} s per network; "
            f"final median test loss {fmt(s.final_test_loss_median)}): with every cost counted, "
            f"**{_faster_words(sa, ss)} than the optimizer alone**.")


def verdict_cycles(CY: Sequence) -> str:
    """Seconds to the target, the optimizer alone against the cycles (weights only, then weights and
    Adadelta's state where the results hold them), every cost counted."""
    by = cycles_by_variant(CY)
    a, c = by.get("optimizer alone"), by.get("weights")
    if a is None or c is None:
        return "not run."
    sa, sc = num(a.seconds_to_target_median), num(c.seconds_to_target_median)
    reach = (f"the cycles in {fmt(sc)} s" if np.isfinite(sc) else
             "the cycles did not reach it within the run's budget of steps (`cyc_max_epochs`)")
    txt = (f"The optimizer alone reached the target in {fmt(sa)} s per network; {reach} "
           f"({c.jumps_accepted} of {c.jumps_tried} jumps kept; fitting {fmt(c.seconds_fitting)} s and "
           f"jumping {fmt(c.seconds_jumping)} s per network). ")
    if not c.jumps_accepted:
        txt += "No jump lowered the test loss, so the cycles were the optimizer plus overhead. "
    return txt + (f"**Verdict: with every cost counted, Koopman cycles were {_faster_words(sa, sc)} than the "
                  "optimizer alone.** " + _state_cycles_sentence(sa, by.get("weights + optimizer state")))


def state_block_size(cfg) -> tuple[int, int]:
    """``(observables, snapshots)`` of the largest block of a state cycle at ``cfg``: the block's
    weights and each of Adadelta's state buffers, against the ``cyc_record`` snapshots of a cycle."""
    from koopman_lib.ensembles import EnsembleMLP
    from koopman_lib.optimizer_state import OPTIMIZER_BUFFERS
    from koopman_lib.partition import make_partition
    from ..experiments.beyond.common import paper_partition
    part = make_partition(EnsembleMLP(cfg.mlp_sizes, "relu", 1).shapes, paper_partition(cfg))
    return (1 + len(OPTIMIZER_BUFFERS["Adadelta"])) * max(part.block_sizes), cfg.cyc_record


def state_cycles_note(ci_cfg, saved: dict | None, saved_profile: str) -> str:
    """Why the ``ci`` profile runs the weights-only cycles only, with the state cycles' cost from the
    saved run where it holds them (:data:`NOT_SAVED` where not)."""
    n, k = state_block_size(ci_cfg)
    txt = (f"The `ci` profile runs the weights-only cycles only (`cyc_variants` = {tuple(ci_cfg.cyc_variants)}): a "
           f"jump that carries Adadelta's state fits blocks of up to {n} observables (a block's weights and its "
           f"two accumulators) from cycles of {k} snapshots, {'more' if n > k else 'no fewer'} observables than "
           "snapshots; those low-rank fits and jumps take several times the weights-only cycles' time and take "
           "the rerun's memory past the 2 GB a Binder notebook gets. ")
    by = cycles_by_variant(rows(saved, "cycles"))
    s, w = by.get("weights + optimizer state"), by.get("weights")
    if s is None or w is None:
        return txt + f"Their cost in the saved {saved_profile}-profile run: {NOT_SAVED}."
    cost = [sum(num(getattr(r, f)) for f in ("seconds_training", "seconds_recording", "seconds_fitting",
                                             "seconds_jumping", "seconds_evaluating")) for r in (s, w)]
    return txt + (f"In the saved {saved_profile}-profile run the state cycles took {fmt(cost[0])} s per network in "
                  f"all (fitting {fmt(s.seconds_fitting)} s, jumping {fmt(s.seconds_jumping)} s) against "
                  f"{fmt(cost[1])} s for the weights-only cycles (fitting {fmt(w.seconds_fitting)} s, jumping "
                  f"{fmt(w.seconds_jumping)} s).")


# -- 7. other networks ----------------------------------------------------------------------
NETWORK_COLUMNS = ("network", "dataset", "n_params", "method", "loss_median", "accuracy_median",
                   "optimizer_loss_median", "teq_over_t_median", "success_rate", "max_spectral_radius_median")


def networks_figure(N: Sequence, other_window_epochs, other_T_epochs):
    """Median T_eq/T of every method on every other network (bars)."""
    import matplotlib.pyplot as plt
    nets = list(dict.fromkeys(r.network + " / " + r.dataset.split(" (")[0] for r in N))
    methods = list(dict.fromkeys(r.method for r in N))
    fig, ax = plt.subplots(figsize=(9, 4))
    w = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        vals = [num(getattr(one(N, method=m, network=n.split(" / ")[0]), "teq_over_t_median", None)) for n in nets]
        ax.bar(np.arange(len(nets)) + j * w, np.nan_to_num(vals), w, label=m)
    ax.set_xticks(np.arange(len(nets)) + w * (len(methods) - 1) / 2, nets, fontsize=8)
    ax.set_ylabel("median $T_{eq}/T$")
    ax.set_title(f"other networks: window epochs {other_window_epochs}, T = {other_T_epochs} epochs")
    ax.legend(fontsize=7)
    return fig


def _teq_of(N: Sequence, network: str, method: str) -> float:
    r = one(N, network=network, method=method)
    return num(r.teq_over_t_median if r else None)


def verdict_nets(N: Sequence) -> str:
    """Koopman (stable fit) against the straight line on every other network, and whether it beat
    the continued optimizer on any (rule ``BEATS_OPTIMIZER``)."""
    if not N:
        return "not run."
    names = list(dict.fromkeys(r.network for r in N))
    out, wins = [], 0
    for n in names:
        k, lin = _teq_of(N, n, STABLE_FIT), _teq_of(N, n, LINE_WHOLE)
        out.append(f"{n}: Koopman {fmt(k)}, line {fmt(lin)}")
        wins += k > lin
    head = ("Median $T_{eq}/T$ with the stable fit against linear extrapolation: " + "; ".join(out) +
            f". **Verdict: Koopman training beat the straight line on {wins} of {len(out)} networks")
    if any(BEATS_OPTIMIZER.holds(_teq_of(N, n, STABLE_FIT)) for n in names):
        return head + ", and beat continuing the optimizer ($T_{eq}/T > 1$) on at least one.**"
    return head + "; it did not turn into an advantage over continuing the optimizer on any of them.**"


# -- summary --------------------------------------------------------------------------------
#: the paper's (or the replication's) value of a summary quantity, where it has one
PAPER_VALUES = {"MNIST T_eq/T, paper's fit (pinv default cutoff)": "0.97 (Table 2)",
                "MNIST T_eq/T, float32-resolution cutoff": "0.97 (Table 2, their fit)",
                "DE solver T_eq/T, Koopman (pinv)": "1.00 (Adadelta, Table 1)",
                "DE solver T_eq/T, Koopman, window rounded to float32": "1.00 (Adadelta, Table 1)",
                "replication setting: Koopman test loss after 1 / 2 epochs": "about 0.27 / 1.0 (replication)"}


def _best_line(b: Sequence, exp: str):
    lines = pick(b, experiment=exp, method=LINE)
    return max(lines, key=lambda x: num(x.teq_over_t_median)) if lines else None


def _teq(r):
    return r.teq_over_t_median if r else None


def summary(results: dict | None) -> dict:
    """Quantity -> value (a number or a sentence) of the summary table, from one results file."""
    if not results:
        return {}
    b = rows(results, "baselines")
    equal = dict(experiment="mnist", comparison="equal steps")
    de_equal = dict(experiment="de-solver", comparison="equal steps")
    s4 = rows(results, "stabilisation")
    rep = {T: one(s4, method=REPLICATION_FIT, T_epochs=T) for T in (1, 2)}
    heat = [num(x.teq_over_t_median) for x in pick(rows(results, "window_heatmap"), experiment="mnist", fit="stable")]
    choice = one(rows(results, "window_choice"), experiment="mnist", fit="stable", method="criterion: one-step")
    obs = [x for x in rows(results, "observables") if (x.fit or "stable") == "stable"]
    obs_best = max(obs, key=lambda x: num(x.teq_over_t_median), default=None)
    nets = rows(results, "networks")
    net_names = list(dict.fromkeys(x.network for x in nets))
    net_wins = sum(_teq_of(nets, n, STABLE_FIT) > _teq_of(nets, n, LINE_WHOLE) for n in net_names)
    cy = cycles_by_variant(rows(results, "cycles"))
    return {
        "MNIST T_eq/T, paper's fit (pinv default cutoff)": _teq(one(b, **equal, method=MNIST_PAPER_FIT)),
        "MNIST T_eq/T, float32-resolution cutoff": _teq(one(b, **equal, method=STABLE_FIT)),
        "MNIST T_eq/T, best linear extrapolation": _teq(_best_line(b, "mnist")),
        "DE solver T_eq/T, Koopman (pinv)": _teq(one(b, **de_equal, method=DE_PAPER_FIT)),
        "DE solver T_eq/T, Koopman, window rounded to float32": _teq(
            one(b, **de_equal, method=DE_PRECISION_METHODS["rounded"])),
        "DE solver T_eq/T, best linear extrapolation": _teq(_best_line(b, "de-solver")),
        "replication setting: Koopman test loss after 1 / 2 epochs": " / ".join(
            fmt(rep[T].test_loss_koopman_median if rep[T] else None) for T in (1, 2)),
        "MNIST window grid: median T_eq/T, worst / best window (float32 cutoff)":
            f"{fmt(np.nanmin(np.array(heat)))} / {fmt(np.nanmax(np.array(heat)))}" if heat else None,
        "MNIST window chosen by one-step held-out error: median T_eq/T": _teq(choice),
        "stabilisations that never diverged": f"{len(never_diverged(s4, False))} of {len({x.method for x in s4})}",
        "observables: best median T_eq/T (which)": f"{fmt(obs_best.teq_over_t_median)} "
                                                   f"({obs_best.experiment}, {obs_best.observables})"
                                                   if obs_best else None,
        "other networks: Koopman beats the straight line": f"{net_wins} of {len(net_names)}",
        "cycles: seconds to target, alone / cycles": " / ".join(
            "not reached" if x.seconds_to_target_median is None else fmt(x.seconds_to_target_median)
            for x in (cy.get("optimizer alone"), cy.get("weights")) if x is not None),
    }


#: the summary's quantities that measure one of the front page's claims: quantity -> (claim key, the
#: prefix of the fit's fields in the claim's row: "" the paper's fit, "default_" the library default)
SCORECARD_CLAIMS = {
    "MNIST T_eq/T, paper's fit (pinv default cutoff)": ("mnist-teq", ""),
    "MNIST T_eq/T, float32-resolution cutoff": ("mnist-teq", "default_"),
    "DE solver T_eq/T, Koopman (pinv)": ("de-adadelta-teq", ""),
    "replication setting: Koopman test loss after 1 / 2 epochs": ("replication-divergence", ""),
}


def front_page_rows(ours: Mapping[str, dict | None], saved: Mapping[str, dict | None]) -> dict[str, dict]:
    """The front page's rows (:func:`koopman_repro.scorecard.claim_row`) of the claims in
    :data:`SCORECARD_CLAIMS`, from the results the front page reads (``ours``: this build's,
    ``saved``: the saved full-scale runs), by claim key."""
    return {k: claim_row(k, ours, saved) for k in dict.fromkeys(k for k, _ in SCORECARD_CLAIMS.values())}


#: the summary's rows of a Koopman fit's median T_eq/T, which the chapter reads as keeping up or not
KOOPMAN_TEQ_ROWS = ("MNIST T_eq/T, paper's fit (pinv default cutoff)", "MNIST T_eq/T, float32-resolution cutoff",
                    "DE solver T_eq/T, Koopman (pinv)", "DE solver T_eq/T, Koopman, window rounded to float32")


def chapter_reading(key: str, r: dict, vals: dict, de_saved: dict | None) -> str:
    """This chapter's own reading of summary quantity ``key`` from ``vals`` (:func:`summary` of
    results ``r``), named as such; ``de_saved`` (the DE solver chapter's paper-profile run) explains a
    DE solver row that falls behind."""
    v = vals.get(key)
    if key in KOOPMAN_TEQ_ROWS:
        if v is None:
            return "chapter reading: not run yet"
        if SUMMARY_KEEPS_UP.holds(num(v)):
            return "chapter reading: keeps up"
        extra = ""
        if key == "DE solver T_eq/T, Koopman (pinv)":
            extra = (" with float64 training (float32 training, DE solver chapter: median T_eq/T = "
                     f"{fmt(de_chapter_row(de_saved, '').get('teq_over_t_median'))}; see 'Why the DE solver chapter "
                     "finds the opposite')")
        return "chapter reading: falls behind" + extra
    if key.startswith("replication"):
        rep2 = one(rows(r, "stabilisation"), T_epochs=2, method=REPLICATION_FIT)
        return "chapter reading: " + ("diverges" if SUMMARY_DIVERGENCE.holds(num(rep2.diverged_fraction if rep2 else None))
                                      else "no divergence")
    return "new measurement (no paper value)"


def verdict_row(key: str, r: dict, vals: dict, de_saved: dict | None, front: Mapping[str, dict] | None = None) -> str:
    """The verdict cell of summary quantity ``key``: the front page's verdict on its claim (``front``:
    :func:`front_page_rows`; "not measured" without it) where it measures one, then this chapter's
    reading (:func:`chapter_reading`)."""
    own = chapter_reading(key, r, vals, de_saved)
    if key not in SCORECARD_CLAIMS:
        return own
    claim, prefix = SCORECARD_CLAIMS[key]
    row = (front or {}).get(claim)
    return f"front page: {row[prefix + 'verdict'] if row else NOT_MEASURED}; {own}"


def _cell(v) -> str:
    return v if isinstance(v, str) else fmt(v)


def summary_table(runs: Runs, de_saved: dict | None, front: Mapping[str, dict] | None = None) -> list[dict]:
    """Quantity, the paper's value, ours (this build, the saved full-scale run) and the verdict: the
    front page's where the quantity measures one of its claims (``front``: :func:`front_page_rows`),
    and this chapter's reading (from the full-scale run where it exists: its settings are the paper's,
    else this build)."""
    ours, full = summary(runs.res), summary(runs.saved)
    basis, basis_vals = (runs.saved, full) if runs.saved else (runs.res, ours)
    label = runs.saved_profile + " profile" if runs.saved else runs.profile
    return [{"quantity": k, "paper / prior work": PAPER_VALUES.get(k, "not studied"),
             f"ours ({runs.profile})": _cell(v),
             f"ours ({runs.saved_profile} profile)": _cell(full.get(k)) if runs.saved else "not run yet",
             f"verdict ({label})": verdict_row(k, basis, basis_vals, de_saved, front)}
            for k, v in ours.items()]
