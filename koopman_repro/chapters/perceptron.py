"""The perceptron chapter (``notebooks/perceptron.md``, supplement S8, Fig. S4): its tables,
verdicts and figures.

Every function takes the results of :mod:`koopman_repro.experiments.perceptron` (as loaded by
:func:`koopman_repro.results.load_results`) and reads the declared rows of
:mod:`koopman_repro.rows.perceptron`. Tables are lists of dicts (column -> value, for
:func:`koopman_repro.report.show_table`), notes are markdown strings, figures are matplotlib
Figures not registered with pyplot (a notebook displays one by returning it). The paper's claims
are :class:`Claim`\\ s, each with the chapter's reading and the rule that decides it; the claims the
front page judges (Fig. S4d, ``perceptron-s4``) show its verdict (:func:`claims_rows`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from koopman_lib.stride import DEFAULT_C

from .. import rows
from ..experiments.perceptron import KOOPMAN, METHODS, first_passage, relevance_mask
from ..rows.perceptron import MethodSummary, summaries
from ..scorecard import claim_row
from . import config

#: the figures this chapter's page draws (tests/book/test_browser.py counts them on the page)
FIGURES = 4

COLORS = {"rule": "black", "single_weight": "tab:orange", "node": "tab:green", "network": "tab:red"}
LABELS = {"rule": "rule", "single_weight": "Single Weight", "node": "Node", "network": "Network"}
FIT_LABELS = {"paper": "paper fit", "default": "default fit", "default-stabilised": "default, stabilised",
              "default-strided": "default, strided", "default-strided-stabilised": "default, strided, stabilised"}
#: the tables' column of a fit's stride (``MethodSummary.stride``), in words
STRIDE_COLUMN = "steps between fitted snapshots"
#: bootstrap share needed to call one method sooner than another
P_SURE = 0.95



def fits(res: dict) -> list[str]:
    """The named fits of the main comparison, in the results' order (the paper fit first)."""
    return list(res["methods_by_fit"])


def stride_text(stride: int | None) -> str:
    """A fit's stride as the tables show it: the rule has none (""); a strided fit at 1 is the default fit."""
    return "" if stride is None else str(stride)


def steps_text(steps: int | None) -> str:
    """A number of steps as the tables show it (``None``: "never")."""
    return "never" if steps is None else str(steps)


def curve(res: dict, method: str, fit: str = "paper") -> dict:
    """``{"mean", "sem"}``: the smoothed percent-error curve of ``method`` with the named fit
    ``fit`` (the rule's for ``"rule"``). ``curves_by_fit`` leaves out a fit whose operators are
    those of another (``same_operators_as``): that fit's curve is returned."""
    if method == "rule" or fit == "paper":
        return res["curves"][method]
    if method in res["curves_by_fit"][fit]:
        return res["curves_by_fit"][fit][method]
    return curve(res, method, summaries(res)[fit][method].same_operators_as)


# -- the setup -----------------------------------------------------------------------------------
def default_fit_note(res: dict) -> str:
    """How many of the sweeps' default fits have the paper fit's operators, bit for bit."""
    sweeps = rows.table(res, "window_sweep", "perceptron") + rows.table(res, "input_sweep", "perceptron")
    dflt = [r for r in sweeps if r.fit == "default" and r.method != "rule"]
    n_same = sum(r.same_operators_as == "paper" for r in dflt)
    return (
        f"The perceptron's weights are float64 numbers (uniform initial weights moved by $\\pm\\eta$), so the "
        f"recording's precision is float64 and the default cutoff is the paper's: in {n_same} of the {len(dflt)} "
        "default fits of this run (every partition, window and input setting) the operators are the paper's bit for "
        "bit, and their evolution is not run twice. The default fit differs from the paper's where weights are "
        "recorded in float32, as in the gradient-trained networks of the next chapters.")


def settings_rows(res: dict) -> list[dict]:
    """The settings the paper leaves open, with the run's choice and why."""
    cfg = config(res)
    col = "setting (unstated in the paper)"
    return [
        {col: "data window before step 100", "our choice": f"{cfg['window']} steps",
         "why": "everything the rule has done so far; the effect of shorter windows is shown below"},
        {col: "sliding window", "our choice": "centred" if cfg["smooth_centered"] else "trailing",
         "why": "causal: the value at step t uses steps t-49..t only"},
        {col: "percent error", "our choice": "of output units" if cfg["error_unit"] == "output" else "of input patterns",
         "why": "each output is its own OR task"},
        {col: "weights that overflow float64", "our choice": "keep the last finite weights",
         "why": "the divergence guard of Koopman training, per simulation; counted below"},
    ]


# -- figures of the main run ---------------------------------------------------------------------
def weights_figure(res: dict) -> Figure:
    """Fig. S4b: per method (columns), the relevant (top) and irrelevant (bottom) weights of
    simulation 0 (thin) and their median over all simulations (blue), with the levels that solve
    the task (dashed) and the start of Koopman training (dotted)."""
    cfg, w = config(res), res["weights"]
    steps = np.array(w["step"])
    rel = relevance_mask(cfg["n_inputs"]).numpy()
    fig = Figure(figsize=(13, 5.5))
    axes = fig.subplots(2, 4, sharex=True, sharey="row")
    for j, m in enumerate(METHODS):
        ex = np.array(w[m]["example"])  # (n_points, 2, n_inputs), simulation 0
        for row, mask, name in ((0, rel, "relevant"), (1, ~rel, "irrelevant")):
            ax = axes[row, j]
            ax.plot(steps, ex[:, mask], color=COLORS[m], lw=0.8, alpha=0.6)
            ax.plot(steps, w[m][name], color="tab:blue", lw=2, label="median, all simulations")
            ax.axvline(cfg["koopman_start"], color="grey", ls=":", lw=1)
            ax.axhline(1.0 if row == 0 else 0.5, color="grey", lw=0.8, ls="--")
            if row == 0:
                ax.set_title(LABELS[m])
            if j == 0:
                ax.set_ylabel(f"{name} weight")
            if row == 1:
                ax.set_xlabel("training step")
    axes[0, 0].set_ylim(0, 2.5)
    axes[1, 0].set_ylim(-0.5, 1.2)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.suptitle("Weights of simulation 0 (thin) and median over all simulations (blue)\n"
                 "dashed: level that solves the task; dotted: Koopman training starts")
    fig.tight_layout()
    return fig


def error_curves_figure(res: dict) -> Figure:
    """Fig. S4d, one panel per named fit (rows of up to three): every method's smoothed percent
    error, mean +- SEM."""
    cfg, fit_names = config(res), fits(res)
    by_fit = summaries(res)
    st = np.array(res["curves"]["step"])
    ncols = min(3, len(fit_names))
    nrows = -(-len(fit_names) // ncols)
    fig = Figure(figsize=(5 * ncols, 4.5 * nrows))
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    for ax in axes.ravel()[len(fit_names):]:
        ax.remove()
    for j, (ax, f) in enumerate(zip(axes.ravel(), fit_names)):
        for m in METHODS:
            c = curve(res, m, f)
            mean, sem = np.array(c["mean"]), np.array(c["sem"])
            ax.plot(st, mean, color=COLORS[m], label=LABELS[m])
            ax.fill_between(st, mean - sem, mean + sem, color=COLORS[m], alpha=0.25)
        ax.axvline(cfg["koopman_start"], color="grey", ls=":", label="Koopman training starts")
        ax.set_xlabel("training step")
        if j % ncols == 0:
            ax.set_ylabel("percent error (smoothed over 50 steps)")
        twin = {by_fit[f][m].same_operators_as for m in KOOPMAN}
        ax.set_title(FIT_LABELS[f] + (f" (the {FIT_LABELS[twin.pop()]}'s operators)"
                                      if len(twin) == 1 and None not in twin else ""))
    axes[0, 0].legend()
    fig.suptitle(f"Perceptron, {cfg['n_sims']} simulations: mean ± SEM, per fit")
    fig.tight_layout()
    return fig


# -- tables and notes of the main run ------------------------------------------------------------
def reach_rows(res: dict) -> list[dict]:
    """Per fit and method: the fit's stride (optimizer steps between the snapshots it fitted: 1 but
    for the strided fits, where 1 means the strided fit is the default fit), final error, the three
    "steps to" measures and the mean error after the switch (fixed levels 10% and 5% on the
    smoothed mean curve)."""
    out = []
    for f, by_method in summaries(res).items():
        for m in METHODS:
            s = by_method[m]
            mean = np.array(curve(res, m, f)["mean"])
            ci = s.steps_to_rule_final_ci95
            out.append({"fit": FIT_LABELS[f], "method": LABELS[m], STRIDE_COLUMN: stride_text(s.stride),
                        "final error (%)": s.final_percent_error,
                        "steps to own asymptote": s.steps_to_asymptote,
                        "steps to rule's final + 1": steps_text(s.steps_to_rule_final),
                        "95% interval": "{} to {}".format(*ci) if ci else "not resampled",
                        "steps to 10%": steps_text(first_passage(mean, 10.0)),
                        "steps to 5%": steps_text(first_passage(mean, 5.0)),
                        "mean error after step 100 (%)": s.mean_percent_error_after_start})
    return out


def single_weight_note(res: dict) -> str:
    """Single Weight against the rule with the paper fit: on the way down and at the end."""
    s = summaries(res)["paper"]
    sw, rl = s["single_weight"], s["rule"]
    to10 = {m: first_passage(np.array(curve(res, m)["mean"]), 10.0) for m in ("rule", "single_weight")}
    reach10 = (f"{to10['rule'] - to10['single_weight']} steps sooner" if None not in to10.values() else
               f"at step {steps_text(to10['single_weight'])} against the rule's {steps_text(to10['rule'])}")
    return (
        "With the paper fit (and the default fit, the same operators here), "
        f"Single Weight is ahead of the rule on the way down: it reaches 10% error {reach10} and its "
        f"mean error after step 100 is {rl.mean_percent_error_after_start - sw.mean_percent_error_after_start:.1f} "
        f"points lower. At the end the two meet: Single Weight gets to the rule's final error + 1 point at step "
        f"{sw.steps_to_rule_final} against the rule's {rl.steps_to_rule_final}, sooner in only "
        f"{sw.p_sooner_than_rule:.0%} of the resamples, and its own final error is {sw.final_percent_error:.1f}% "
        f"against the rule's {rl.final_percent_error:.1f}%. Node and Network level off at "
        f"{s['node'].final_percent_error:.1f}% and {s['network'].final_percent_error:.1f}%: they stop improving "
        f"early (hence their small 'steps to own asymptote') at a level far above the rule's.")


def stabilised_note(res: dict) -> str:
    """The stabilised default fit against the paper fit: final errors, and why clipping stalls it."""
    cfg, by_fit = config(res), summaries(res)
    stab, pap = by_fit["default-stabilised"], by_fit["paper"]
    sw_curve = curve(res, "single_weight", "default-stabilised")["mean"]
    t0, t_after = cfg["koopman_start"], min(cfg["koopman_start"] + cfg["smooth"], cfg["steps"])
    worse = [LABELS[m] for m in KOOPMAN if stab[m].final_percent_error > pap[m].final_percent_error]
    return (
        ("The stabilised default ends at a higher error than the paper fit with every partition. " if len(worse) == 3 else
         f"The stabilised default ends at a higher error than the paper fit with {', '.join(worse) or 'no partition'}. ") +
        f"Its Single Weight operators end at "
        f"{stab['single_weight'].final_percent_error:.1f}% error (paper fit "
        f"{pap['single_weight'].final_percent_error:.1f}%, rule {stab['rule'].final_percent_error:.1f}%); its "
        f"curve hardly moves after the switch ({sw_curve[t_after - 1]:.1f}% at step {t_after}). A single-weight "
        f"operator is its eigenvalue, and a relevant weight has to grow: with the paper fit, "
        f"{pap['single_weight'].frac_sims_radius_above_1:.0%} of the simulations have a weight with $|\\lambda| > 1$. "
        f"Clipping sets those eigenvalues to 1, "
        f"so the weights that must grow stay where they were at step {t0}; only the decaying ones keep moving. Node and "
        f"Network end at {stab['node'].final_percent_error:.1f}% and {stab['network'].final_percent_error:.1f}% "
        f"(paper fit {pap['node'].final_percent_error:.1f}% and {pap['network'].final_percent_error:.1f}%).")


#: what the chapter writes where a saved run lacks a field (older files)
NOT_SAVED = "not in this saved run"


def block_sizes(res: dict) -> dict[str, int]:
    """The block size ``m`` of each Koopman variant: one weight, the ``n1`` weights into one output, the
    ``2 n1`` weights of the network (two outputs)."""
    n = config(res)["n_inputs"]
    return {"single_weight": 1, "node": n, "network": 2 * n}


def strided_note(res: dict) -> str:
    """What the strided fit is, the stride the rule chose per partition from the window's shape (snapshots,
    block size, the pairs it keeps) and how it compares with the default fit (final error, mean error after
    the switch); one sentence saying so for a run without strided fits."""
    by_fit = summaries(res)
    if "default-strided" not in by_fit:
        return f"The strided fits: {NOT_SAVED}."
    k, m = config(res)["window"] + 1, block_sizes(res)
    st, df = by_fit["default-strided"], by_fit["default"]
    chosen = "; ".join(f"{LABELS[v]} ($m$ = {m[v]}) $s$ = {st[v].stride}, keeping {(k - 1) // st[v].stride} "
                       "pairs" for v in KOOPMAN)
    same = [LABELS[v] for v in KOOPMAN if st[v].stride == 1]
    compare = "; ".join(f"{LABELS[v]} {st[v].final_percent_error:.1f}% against {df[v].final_percent_error:.1f}% "
                        f"(mean error after the switch {st[v].mean_percent_error_after_start:.1f}% against "
                        f"{df[v].mean_percent_error_after_start:.1f}%)" for v in KOOPMAN if st[v].stride != 1)
    return (f"**The strided fit** is the default fit made from every $s$-th snapshot of the window instead of every "
            f"one: its operator $U_s$ moves the weights $s$ steps at a time, and between two of its predictions the "
            f"weights are held. The stride rule chooses $s$ from the window's shape alone ({k} snapshots and the block "
            f"size $m$, never an error): the largest $s$ that leaves at least {DEFAULT_C:g} snapshot pairs per "
            f"coordinate of a block, here {chosen}."
            + (f" At stride 1 ({', '.join(same)}) the strided fit is the default fit." if same else "")
            + (f" Final error of the strided fit against the default fit: {compare}." if compare else ""))


def diagnostics_rows(res: dict) -> list[dict]:
    """Per fit and Koopman variant: the fit's stride, final error and the operators' diagnostics (the
    spectral radii are those of the operators of one stride, ``U_s``)."""
    return [{"fit": FIT_LABELS[f], "method": LABELS[m], STRIDE_COLUMN: stride_text(s.stride),
             "final error (%)": s.final_percent_error,
             "rank-deficient blocks": s.frac_rank_deficient_blocks,
             "simulations with spectral radius > 1": s.frac_sims_radius_above_1,
             "largest spectral radius": s.max_radius, "simulations overflowed": s.frac_sims_overflowed}
            for f, by_method in summaries(res).items() for m, s in by_method.items() if m != "rule"]


def radius_note(res: dict) -> str:
    """The data window, what "above 1" means, and how far the stabilised radii are above 1."""
    over = max(summaries(res)["default-stabilised"][m].max_radius for m in KOOPMAN) - 1
    return (f"Data window: {config(res)['window']} steps. A spectral radius counts as above 1 beyond $1 + 10^{{-9}}$. " + (
        f"The stabilised operators' largest radius is $1 + {over:.1e}$, not exactly 1: the clip rebuilds each operator as "
        "$V \\,\\mathrm{diag}(\\lambda)\\, V^{-1}$ from its eigenvectors, and the rounding of that product grows with "
        "how close to parallel the eigenvectors are; over the remaining steps such a radius changes nothing visible."
        if over > 0 else "The stabilised operators' spectral radius is at most 1."))


# -- the sweeps ----------------------------------------------------------------------------------
def window_figure(res: dict) -> Figure:
    """The window sweep (paper fit): final error, mean error after the switch (the rule's as a
    dashed line) and the share of rank-deficient blocks against the data window."""
    sweep = [r for r in rows.table(res, "window_sweep", "perceptron") if r.fit == "paper"]
    rule = summaries(res)["paper"]["rule"]
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3)
    for m in KOOPMAN:
        rows_m = sorted((r for r in sweep if r.method == m), key=lambda r: r.window)
        w = [r.window for r in rows_m]
        axes[0].plot(w, [r.final_percent_error for r in rows_m], "o-", color=COLORS[m], label=LABELS[m])
        axes[1].plot(w, [r.mean_percent_error_after_start for r in rows_m], "o-", color=COLORS[m], label=LABELS[m])
        axes[2].plot(w, [r.frac_rank_deficient_blocks for r in rows_m], "o-", color=COLORS[m], label=LABELS[m])
    axes[0].axhline(rule.final_percent_error, color="black", ls="--", label="rule")
    axes[1].axhline(rule.mean_percent_error_after_start, color="black", ls="--", label="rule")
    axes[0].set_ylabel("final error at step 1000 (%)")
    axes[1].set_ylabel("mean error, steps 101-1000 (%)")
    axes[2].set_ylabel("share of blocks with rank(F) < m")
    for ax, t in zip(axes, ("final error", "error after the switch", "rank deficiency of F (paper fit)")):
        ax.set_xlabel("data window before step 100 (steps)")
        ax.set_title(t)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def advantages(sweep: list, fit: str = "paper") -> dict:
    """``{(n_inputs, group_size): {method: rule error - method error}}`` in percentage points,
    errors averaged over every step after Koopman training starts, from the input-sweep rows
    (:class:`~koopman_repro.rows.perceptron.PerceptronInputSweepRow`) of the named fit ``fit``."""
    out: dict = {}
    for r in sweep:
        if r.fit == fit:
            out.setdefault((r.n_inputs, r.group_size), {})[r.method] = r.mean_percent_error_after_start
    return {k: {m: v["rule"] - v[m] for m in v if m != "rule"} for k, v in out.items()}


def input_advantages(res: dict, fit: str = "paper") -> dict:
    """:func:`advantages` of the input sweep of ``res``."""
    return advantages(rows.table(res, "input_sweep", "perceptron"), fit)


def advantage_figure(res: dict) -> Figure:
    """S8.3: per input setting, each Koopman variant's advantage over the rule (paper fit)."""
    adv = input_advantages(res)
    keys = list(adv)
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    width = 0.25
    for j, m in enumerate(KOOPMAN):
        ax.bar(np.arange(len(keys)) + (j - 1) * width, [adv[k][m] for k in keys], width, color=COLORS[m],
               label=LABELS[m])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(keys)), [f"n1={n}, g={g}" for n, g in keys])
    ax.set_ylabel("rule error − Koopman error\n(points, mean over steps 101-1000)")
    ax.set_title(f"Advantage of Koopman training over the rule, paper fit ({config(res)['sweep_sims']} simulations each)")
    ax.legend()
    return fig


def input_sweep_rows(res: dict) -> list[dict]:
    """The input sweep's rows of the paper fit."""
    return [{"n1": r.n_inputs, "group": r.group_size, "method": LABELS[r.method],
             "final error (%)": r.final_percent_error, "mean error after step 100 (%)": r.mean_percent_error_after_start,
             "rank-deficient blocks": r.frac_rank_deficient_blocks}
            for r in rows.table(res, "input_sweep", "perceptron") if r.fit == "paper"]


def input_sweep_note(res: dict) -> str:
    """What the input sweep shows: Single Weight's advantage with independent inputs, where Node
    and Network are behind the rule, and whether grouped inputs put them ahead."""
    adv = input_advantages(res)
    indep = sorted(n for n, g in adv if g == 1)
    sw_adv = ", ".join(f"{adv[(n, 1)]['single_weight']:+.2f}" for n in indep)
    behind = [n for n in indep if adv[(n, 1)]["node"] < 0 and adv[(n, 1)]["network"] < 0]
    text = [f"With independent inputs (n1 = {', '.join(map(str, indep))}), Single Weight's advantage is {sw_adv} points."]
    if behind == indep:
        text.append("Node and Network are behind the rule at every size, so there is no good result for more inputs "
                    "to degrade.")
    else:
        text.append("Node and Network are behind the rule at n1 = " + ", ".join(map(str, behind)) + ".")
    for n, g in (k for k in adv if k[1] > 1):
        ahead = adv[(n, g)]["node"] > 0 and adv[(n, g)]["network"] > 0
        text.append(f"With groups of {g} out of {n} inputs, Node and Network are "
                    + ("ahead of the rule." if ahead else "still not ahead of the rule."))
    return " ".join(text)


# -- the paper's claims, measured ----------------------------------------------------------------
#: the chapter's own readings of a claim of several parts (never the front page's verdict words)
HOLDS, HOLDS_IN_PART, DOES_NOT_HOLD = "holds", "holds in part", "does not hold"
#: the front page's claim that the Fig. S4d claims (the chapter's first two) are parts of
SCORECARD_CLAIM = "perceptron-s4"
#: how many of :func:`claims` (the first) are parts of :data:`SCORECARD_CLAIM`
S4_PARTS = 2
#: the fits the front page judges: fit -> the prefix of its fields in a scorecard row
FRONT_FITS = {"paper": "", "default": "default_"}


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: what we measure, the chapter's reading, and the rule that decides it."""
    claim: str
    measure: str
    reading: str
    rule: str


def reading(n_true: int, n_total: int) -> str:
    """The chapter's reading of a claim of ``n_total`` parts: holds if all hold, holds in part if some
    do, does not hold if none does."""
    return HOLDS if n_true == n_total else HOLDS_IN_PART if n_true else DOES_NOT_HOLD


def _resampled(m: dict[str, MethodSummary]) -> bool:
    return m["rule"].p_sooner_than_rule is not None


def sooner_claim(m: dict[str, MethodSummary]) -> Claim:
    """Fig. S4d: every Koopman variant reaches the rule's final error (+ 1 point) sooner than the
    rule; with a bootstrap, in at least :data:`P_SURE` of the resamples."""
    rule_steps = m["rule"].steps_to_rule_final
    reach = {k: m[k].steps_to_rule_final for k in KOOPMAN}
    boot = _resampled(m)
    if boot:  # a resampling of the simulations decides, not the point estimate alone
        sooner = [k for k in KOOPMAN if m[k].p_sooner_than_rule >= P_SURE]
    else:
        sooner = [k for k in KOOPMAN if reach[k] is not None and reach[k] < rule_steps]
    p = {k: f" (p = {m[k].p_sooner_than_rule:.2f})" if boot else "" for k in KOOPMAN}
    return Claim(
        "All three Koopman variants reach asymptotic performance sooner than the rule (Fig. S4d)",
        f"steps to the rule's final error + 1 point: rule {rule_steps}; " +
        "; ".join(f"{LABELS[k]} {steps_text(reach[k])}{p[k]}" for k in KOOPMAN) +
        f". Final error: rule {m['rule'].final_percent_error:.1f}%, " +
        ", ".join(f"{LABELS[k]} {m[k].final_percent_error:.1f}%" for k in KOOPMAN),
        reading(len(sooner), 3),
        "a variant is sooner if it reaches the rule's final error (within 1 point) before the rule "
        "does" + (f" in at least {P_SURE:.0%} of bootstrap resamples of the simulations (p)" if boot else "")
        + "; the claim holds if all three are, holds in part if some are")


def soonest_claim(m: dict[str, MethodSummary]) -> Claim:
    """Fig. S4d: Single Weight alone is the soonest Koopman variant (with a bootstrap: strictly
    soonest in at least :data:`P_SURE` of the resamples)."""
    boot = _resampled(m)
    finite = {k: m[k].steps_to_rule_final for k in KOOPMAN if m[k].steps_to_rule_final is not None}
    best = min(finite.values()) if finite else None
    ties = [k for k in finite if finite[k] == best]
    ok = m["single_weight"].p_soonest >= P_SURE if boot else ties == ["single_weight"]
    return Claim(
        "Of the three, Single Weight gets there soonest (Fig. S4d)",
        ("soonest Koopman variant: " + ", ".join(LABELS[k] for k in ties) + f" ({best} steps)"
         if ties else "no Koopman variant reaches the rule's final error") +
        (f"; Single Weight strictly soonest in {m['single_weight'].p_soonest:.0%} of resamples" if boot else ""),
        reading(int(ok), 1),
        "holds if Single Weight alone has the fewest steps to the rule's final error among the "
        "three variants" + (f", in at least {P_SURE:.0%} of bootstrap resamples" if boot else ""))


def more_inputs_claim(adv: dict) -> Claim | None:
    """S8.3: with more independent inputs Node and Network degrade (a positive advantage at
    n1 = 4 falls below half) and Single Weight keeps at least half of a positive advantage.
    ``None`` without n1 = 4 and a larger n1 of independent inputs in ``adv`` (:func:`advantages`)."""
    indep = sorted(n for (n, g) in adv if g == 1)
    if len(indep) < 2 or indep[0] != 4:
        return None
    lo, hi = adv[(4, 1)], adv[(indep[-1], 1)]
    single_kept = lo["single_weight"] > 0 and hi["single_weight"] >= 0.5 * lo["single_weight"]
    others_degrade = all(lo[k] > 0 and hi[k] < 0.5 * lo[k] for k in ("node", "network"))
    return Claim(
        f"More inputs (n1 = {indep[-1]}, activity 1/n1): Node and Network degrade, Single Weight "
        "stays comparable (S8.3)",
        "advantage over the rule (points, mean error after the start) at n1 = 4 -> "
        f"{indep[-1]}: " + "; ".join(f"{LABELS[k]} {lo[k]:+.2f} -> {hi[k]:+.2f}" for k in KOOPMAN),
        reading(int(single_kept) + int(others_degrade), 2),
        "Node/Network degrade: positive advantage at n1 = 4 that falls below half at the largest n1; "
        "Single Weight comparable: keeps at least half of a positive advantage; holds if both")


def correlated_claim(adv: dict) -> Claim | None:
    """S8.3: grouped inputs give Node and Network a positive advantage larger than independent
    inputs of the same n1. ``None`` without a grouped setting (and its independent twin) in ``adv``."""
    corr = sorted(k for k in adv if k[1] > 1 and (k[0], 1) in adv)
    if not corr:
        return None
    restored = [k for k in corr if all(adv[k][j] > max(0.0, adv[(k[0], 1)][j]) for j in ("node", "network"))]
    return Claim(
        "Correlated inputs in the same half restore the Koopman results (S8.3)",
        "; ".join(f"n1 = {n}, groups of {g}: Node {adv[(n, 1)]['node']:+.2f} -> {adv[(n, g)]['node']:+.2f}, "
                  f"Network {adv[(n, 1)]['network']:+.2f} -> {adv[(n, g)]['network']:+.2f}" for n, g in corr),
        reading(len(restored), len(corr)),
        "restored: Node and Network both gain a positive advantage larger than with independent "
        "inputs of the same n1; holds if so for every correlated setting")


def claims(res: dict, fit: str = "paper") -> list[Claim]:
    """The perceptron claims of the paper (Fig. S4d, S8.3) as measured by ``res`` with the named
    fit ``fit`` (an empty list if ``res`` has no results for that fit). The S8.3 claims are
    measured only for fits of the input sweep (``Config.sweep_fits``)."""
    m = summaries(res).get(fit)
    if m is None:
        return []
    adv = input_advantages(res, fit)
    return [c for c in (sooner_claim(m), soonest_claim(m), more_inputs_claim(adv), correlated_claim(adv))
            if c is not None]


def front_page_row(res: dict, paper: dict | None) -> dict:
    """The front page's row of :data:`SCORECARD_CLAIM` (:func:`koopman_repro.scorecard.claim_row`) from
    this build ``res`` and the saved paper-profile run ``paper``: its verdicts and null-model reading."""
    return claim_row(SCORECARD_CLAIM, {"perceptron": res}, {"perceptron": paper} if paper else {})


def verdict_cell(i: int, fit: str, c: Claim, front: dict) -> str:
    """The verdict cell of claim ``i`` with ``fit``: the front page's verdict where the claim is a part
    of its claim and the front page judges the fit, then the chapter's own reading."""
    own = f"chapter reading: {c.reading}"
    if i < S4_PARTS and fit in FRONT_FITS:
        return f"front page: {front[FRONT_FITS[fit] + 'verdict']}; {own}"
    return own


def claims_rows(res: dict, paper: dict | None, profile: str) -> list[dict]:
    """Paper against ours: per claim and fit, the measure of this run (``profile``) and of the
    saved paper-profile run ``paper`` (``None``: not run yet); the verdict of the Fig. S4d claims is
    the front page's (:func:`verdict_cell`), every claim's own reading (from the paper run where it
    exists) is named "chapter reading"."""
    fit_names = fits(res)
    ours = {f: claims(res, f) for f in fit_names}
    theirs = {f: claims(paper, f) if paper else [] for f in fit_names}
    front = front_page_row(res, paper)
    out = []
    for i, c in enumerate(ours["paper"]):
        for f in fit_names:
            if i >= len(ours[f]):
                continue
            o, p = ours[f][i], theirs[f][i] if i < len(theirs[f]) else None
            out.append({"paper claim": c.claim if f == fit_names[0] else "", "fit": FIT_LABELS[f],
                        f"ours ({profile})": o.measure, "ours (paper profile)": p.measure if p else "not run yet",
                        "verdict": verdict_cell(i, f, p or o, front)})
    return out


def null_model_note(res: dict, paper: dict | None) -> str:
    """The front page's second reading of the Fig. S4d claim: Koopman training against the rule
    continued from the Koopman start on other inputs (the optimizer against itself)."""
    front = front_page_row(res, paper)
    return (f"**Against the rule's own noise** (front page, {SCORECARD_CLAIM}, paper fit, "
            f"{front['basis'] or 'no run'}): {front['null_model']}.")


def claim_rules_note(res: dict) -> str:
    """How each chapter reading is decided, numbered as the claims, and where the verdict comes from."""
    return (f"The verdict of claims (1) and (2), the parts of the front page's claim `{SCORECARD_CLAIM}` (Fig. S4d), is "
            "the front page's, by its rule (every ordering over the whole bootstrap interval); the chapter readings "
            "are decided as follows: " + " ".join(f"({i + 1}) {c.rule}." for i, c in enumerate(claims(res))))
