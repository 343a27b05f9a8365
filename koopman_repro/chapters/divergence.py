"""The divergence chapter (``notebooks/divergence.md``): the replication's run under its own
settings (losses, spreads, the two-part divergence rule), the fitted spectra, one factor at a
time between the replication's and the paper's settings, the cutoff sweep at the paper's
horizon, the replication's networks against the optimizer against itself, and the claims table with
its verdicts.

Every function takes MNIST results (``koopman_repro.experiments.mnist``) and returns rows, markdown
text or a matplotlib ``Figure``; tables are read through the declared rows
(:mod:`koopman_repro.rows.mnist`). The median over inits and the eigenvalue panel are the MNIST
chapter's (:mod:`koopman_repro.chapters.mnist`).
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from .. import rows
from ..report import NOT_MEASURED, fmt, provenance_line
from ..scorecard import LOSS_DIVERGED, LOSS_KEPT_UP, RULES, claim_row, divergence_parts, interval_text
from ..scorecard.null_model import REPLICATION_SETTING
from . import config
from .mnist import NOT_SAVED, as_floats, eigenvalues, growth, growth_label, median_over_inits, plot_eigenvalues

#: the figures this chapter's page draws (tests/book/test_browser.py counts them on the page)
FIGURES = 5

SETTINGS_COLUMNS = ["setting", "paper", "replication", "ours"]
ABLATION_COLUMNS = ["setting", "max_spectral_radius", "n_eigs_outside_unit_circle", "growth_T1", "growth_T2",
                    "test_loss_t2",
                    "koopman_loss_T1", "optimizer_loss_T1", "koopman_loss_T2", "optimizer_loss_T2"]
CLAIM_COLUMNS = ["claim", "paper", "replication", "ours (ci)", "ours (paper profile)", "verdict"]
REPLICATION_NOTE = ("Losses: median over the networks, quartiles in brackets (where the run recorded them). Koopman "
                    "growth: median over the networks of the Koopman test loss at T divided by its own value at the "
                    "start of the Koopman phase.")
RED_BARS = f"Rule for the red bars: {LOSS_DIVERGED.text}."
#: the replication's curves in the figure: (ablation curve, colour, label)
REPLICATION_CURVES = [("replication settings, layer-wise", "tab:purple", "Koopman, layer-wise"),
                      ("replication settings, default fit", "tab:blue", "Koopman, full node, library default fit"),
                      ("replication settings, default-stabilised fit", "tab:orange",
                       "Koopman, full node, default stabilised")]
#: the eigenvalue panels: (ablation eigenvalues, title)
EIGENVALUE_PANELS = [("replication settings", "replication: full node, float32, JAX cutoff"),
                     ("replication settings, layer-wise", "replication: layer-wise (nonzero part)"),
                     ("paper settings", "paper's settings: quasi-node, float64")]
#: the replication table's settings: (setting, layer-1 partition)
REP_NODE, REP_LAYER = ("replication", "node"), ("replication", "layer")
REP_DEFAULT = ("replication, default fit", "node")
PAPER_FIT, PAPER_DEFAULT = ("paper (main experiment), paper fit", "quasi_node"), \
    ("paper (main experiment), default fit", "quasi_node")


def replication_row(res: dict, setting: tuple, T: int = 2):
    """The ``replication`` row of ``setting`` = (setting, partition) at ``T`` epochs, or ``None``."""
    return next((x for x in rows.table(res, "replication") if (x.setting, x.partition) == setting
                 and x.T_epochs == T), None)


def parts(row) -> tuple[bool, bool, float]:
    """The two parts of the divergence rule (:func:`koopman_repro.scorecard.divergence_parts`) of a row."""
    return divergence_parts(row.as_dict())


# -- the replication, reproduced ----------------------------------------------------------------
def median_iqr(row, who: str) -> str:
    """``'median (q25-q75)'`` of ``who``'s (``"koopman"``, ``"optimizer"``) final test loss, the median alone
    for rows without quartiles."""
    lo, hi = row.loss_quartiles(who)
    m = fmt(row.final_loss(who), 3)
    return m if lo is None else f"{m} ({fmt(lo, 3)}-{fmt(hi, 3)})"


def replication_rows(res: dict) -> list[dict]:
    return [{"setting": r.setting, "partition": r.partition, "networks": r.n_members, "T (epochs)": r.T_epochs,
             "loss at t2": fmt(r.test_loss_t2, 3), "Koopman loss (IQR)": median_iqr(r, "koopman"),
             "Adadelta loss (IQR)": median_iqr(r, "optimizer"), "Koopman growth": fmt(parts(r)[2], 3),
             "max |λ|": fmt(r.max_spectral_radius, 6),
             "growth over T": growth(r.max_spectral_radius, r.T_epochs * res["steps_per_epoch"])}
            for r in rows.table(res, "replication")]


def replication_figure(res: dict, profile: str) -> Figure:
    """Median test loss and accuracy under the replication's settings: its own fit (full node,
    layer-wise), the library's default fits, and Adadelta."""
    cu, S = res["ablation_curves"], res["steps_per_epoch"]
    own = "replication settings, all inits" if "replication settings, all inits" in cu else "replication settings"
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for name, color, label in [(own, "tab:red", "Koopman, full node (785)")] + REPLICATION_CURVES:
        if name in cu:
            x = as_floats(cu[name]["steps"]) / S
            axes[0].plot(x, median_over_inits(cu[name]["koopman_loss"]), color=color, lw=2, label=label)
            axes[1].plot(x, 100 * median_over_inits(cu[name]["koopman_acc"]), color=color, lw=2, label=label)
    xo = as_floats(cu[own]["optimizer_steps"]) / S
    axes[0].plot(xo, median_over_inits(cu[own]["optimizer_loss"]), color="tab:green", lw=2, label="Adadelta")
    axes[1].plot(xo, 100 * median_over_inits(cu[own]["optimizer_acc"]), color="tab:green", lw=2, label="Adadelta")
    axes[0].set_ylabel("test loss (NLL per image)")
    axes[1].set_ylabel("test accuracy (%)")
    for ax in axes:
        ax.set_xlabel(f"epochs after $t_2$ (end of epoch {config(res)['replication_window_epochs'][1]})")
        ax.legend(fontsize=8)
    axes[0].set_title("Replication settings: test loss")
    axes[1].set_title("Replication settings: test accuracy")
    fig.suptitle(f"Median over {len(as_floats(cu[own]['koopman_loss']))} networks, profile {profile}")
    fig.tight_layout()
    return fig


def replication_text(res: dict) -> str:
    """The replication's full-node and layer-wise losses after one and two epochs, and the layer-wise ranks."""
    node = {T: replication_row(res, REP_NODE, T) for T in (1, 2)}
    layer = {T: replication_row(res, REP_LAYER, T) for T in (1, 2)}
    cfg = config(res)
    w = cfg["replication_window_epochs"]
    pairs = (w[1] - w[0] + 1) * res["steps_per_epoch"] - 1     # snapshot pairs: the largest possible rank
    sizes = cfg["sizes"]
    dims = [n_out * (n_in + 1) for n_in, n_out in zip(sizes[:-1], sizes[1:])]   # layer-wise operator sizes
    return (f"Full node: test loss {fmt(node[1].test_loss_t2, 3)} at $t_2$, "
            f"{fmt(node[1].final_test_loss_koopman, 3)} after one Koopman epoch and "
            f"{fmt(node[2].final_test_loss_koopman, 3)} after two (Adadelta: "
            f"{fmt(node[1].final_test_loss_optimizer, 3)}, {fmt(node[2].final_test_loss_optimizer, 3)}); largest "
            f"eigenvalue modulus {fmt(node[1].max_spectral_radius, 6)}. Layer-wise: "
            f"{fmt(layer[1].final_test_loss_koopman, 3)} and {fmt(layer[2].final_test_loss_koopman, 3)} "
            f"(largest modulus {fmt(layer[1].max_spectral_radius, 6)}). With JAX's cutoff the layer-wise operators "
            f"keep only {[x for r in res['layerwise_ranks'] for x in r]} singular values (layers 1-4, init 0) of "
            f"their {', '.join(str(min(pairs, d)) for d in dims[:-1])} and {min(pairs, dims[-1])} possible: "
            f"a handful of slow directions, extrapolated.")


def two_parts(row, label: str) -> str:
    """The two-part divergence rule on one replication row, spelt out, with its verdict."""
    grows, above, growth = parts(row)
    return (f"{label}, {row.T_epochs} epoch(s), {row.n_members} networks: (1) the Koopman loss "
            f"{'grows' if grows else 'does not grow'} (median growth {fmt(growth, 3)}x); (2) it ends "
            f"{'above' if above else 'below'} Adadelta's median ({fmt(row.final_test_loss_koopman, 3)} vs "
            f"{fmt(row.final_test_loss_optimizer, 3)}): **{'diverges' if grows and above else 'does not diverge'}**.")


def two_part_text(res: dict) -> str:
    """The rule and its verdict on every row of the replication's own settings."""
    return f"Rule: {RULES['divergence'].text}.\n\n" + "\n".join(
        f"- {two_parts(r, 'full node' if r.partition == 'node' else 'layer-wise')}"
        for r in rows.table(res, "replication") if r.setting == "replication")


def eigenvalue_figure(res: dict) -> Figure:
    """Init 0's eigenvalues under the replication's settings (full node, layer-wise) and the paper's."""
    eig = res["ablation_eigenvalues"]
    panels = [(k, t) for k, t in EIGENVALUE_PANELS if k in eig]
    if "paper settings" not in eig:
        panels.append(("main", "paper's settings: quasi-node, float64"))
    fig = Figure(figsize=(5 * len(panels), 4.3))
    for ax, (key, title) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels):
        lam = eigenvalues(res["eigenvalues_init0"]["paper"] if key == "main" else eig[key])
        plot_eigenvalues(ax, lam, title, growth_label(lam, 2 * res["steps_per_epoch"]), 9, 6.5)
    fig.suptitle(f"Eigenvalues of the fitted operators of init 0 and the unit circle; growth factors over two epochs "
                 f"(T = {2 * res['steps_per_epoch']} steps)")
    fig.tight_layout()
    return fig


# -- the optimizer against itself ---------------------------------------------------------------
#: the replication's Koopman results drawn against the optimizer against itself: (ablation curve, colour,
#: marker, label); the replication's own fit first (its curve over all the replication's networks)
NULL_CURVES = [("replication settings, all inits", "tab:red", "o", "Koopman, full node, replication's own fit")] + \
    [(name, colour, marker, label) for (name, colour, label), marker in zip(REPLICATION_CURVES, ("s", "^", "v"))]


def replication_null_rows(res: dict) -> list:
    """The ``null_model`` rows of the replication's networks (Adadelta continued from its state at t2
    with another minibatch order), by horizon; empty for a run saved without them."""
    table = rows.table(res, "null_model") if res.get("null_model") else []
    return sorted((r for r in table if r.setting == REPLICATION_SETTING), key=lambda r: r.T_epochs)


def koopman_losses_at(res: dict, curve: str, T: int, networks: list[int]) -> np.ndarray | None:
    """The Koopman test loss after ``T`` epochs of each of ``networks`` ``(n,)`` on ablation curve
    ``curve`` (NaN where the guard stopped a network's rollout before T, or the curve lacks the
    network); ``None`` where the run has no such curve. Network ``i`` is row ``i`` of the curve (each
    network is its own seed), as the scorecard's paired reading reads it."""
    c, S = (res.get("ablation_curves") or {}).get(curve), res["steps_per_epoch"]
    if c is None:
        return None
    steps = list(c["steps"])
    loss = as_floats(c["koopman_loss"])                                  # (networks, len(steps))
    if T * S not in steps:                                               # every network stopped before T
        return np.full(len(networks), np.nan)
    at = loss[:, steps.index(T * S)]
    return np.array([at[i] if i < len(at) else np.nan for i in networks])


def null_pairs(res: dict, row) -> list[tuple[str, str, str, np.ndarray]]:
    """The Koopman results of :data:`NULL_CURVES` the run has, on the networks of ``null_model`` row
    ``row`` at its horizon: ``(label, colour, marker, Koopman test loss (n,))``, in the order of
    ``row.null_loss``."""
    out = []
    for name, colour, marker, label in NULL_CURVES:
        koopman = koopman_losses_at(res, name, row.T_epochs, row.networks)
        if koopman is not None:
            out.append((label, colour, marker, koopman))
    return out


def log_axes(ax, lo: float, hi: float) -> None:
    """Both axes of ``ax`` logarithmic, labelled at 1, 2 and 5 times the powers of ten in ``[lo, hi]``."""
    ticks = [m * 10.0 ** e for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
             for m in (1, 2, 5) if lo <= m * 10.0 ** e <= hi]
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())


def null_figure(res: dict) -> Figure | None:
    """Per replication horizon (one panel each), per network of the replication: its Koopman test loss
    after T epochs (the replication's own fit, the layer-wise operators and the library's refits, where
    the run has them) against the test loss of the optimizer against itself at the same T, with the
    diagonal (as good as the optimizer's own noise), both axes over the same range; log axes where a
    loss is more than 5 times the smallest. ``None`` for a run saved without the optimizer against itself."""
    table = replication_null_rows(res)
    if not table:
        return None
    fig = Figure(figsize=(5.5 * len(table), 4.8))
    axes = np.atleast_1d(fig.subplots(1, len(table)))
    for ax, row in zip(axes, table):
        null = as_floats(row.null_loss)
        shown = [null[np.isfinite(null)]]
        for label, colour, marker, koopman in null_pairs(res, row):
            stopped = int((~np.isfinite(koopman)).sum())
            ax.scatter(null, koopman, color=colour, marker=marker, s=22, alpha=0.8,
                       label=label + (f" ({stopped} of {len(koopman)} stopped before T)" if stopped else ""))
            shown.append(koopman[np.isfinite(koopman)])
        v = np.concatenate(shown)
        log = v.min() > 0 and v.max() / v.min() > 5                       # a diverging Koopman loss: log axes
        lo, hi = (v.min() / 1.15, v.max() * 1.15) if log else (v.min() - 0.05 * np.ptp(v), v.max() + 0.05 * np.ptp(v))
        ax.plot([lo, hi], [lo, hi], color="0.3", lw=1, label="diagonal: as good as Adadelta against itself")
        if log:
            log_axes(ax, lo, hi)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel("Adadelta against itself: test loss after T (NLL per image)")
        ax.set_ylabel("Koopman: test loss after T (NLL per image)")
        ax.set_title(f"T = {row.T_epochs} epoch(s), {row.n_members} networks", fontsize=10)
    axes[0].legend(fontsize=7)
    fig.suptitle("Replication settings: each point one network, Koopman against Adadelta continued from the same "
                 "state at $t_2$ with another minibatch order", fontsize=10)
    fig.tight_layout()
    return fig


def null_note(res: dict) -> str:
    """What :func:`null_figure` shows, with per horizon the median over networks of Adadelta against
    itself and of the paired difference per Koopman result (Koopman minus itself, networks the guard
    stopped left out); one sentence saying so where the run has no such branch."""
    table = replication_null_rows(res)
    if not table:
        return f"The optimizer against itself on the replication's networks: {NOT_SAVED}."
    lines = []
    for row in table:
        null = as_floats(row.null_loss)
        diffs = [(label, koopman - null) for label, _, _, koopman in null_pairs(res, row)]
        lines.append(f"$T$ = {row.T_epochs} epoch(s), {row.n_members} networks: Adadelta against itself "
                     f"{fmt(row.null_loss_median, 3)} (median; the networks' own runs {fmt(row.optimizer_loss_median, 3)}); "
                     "median paired difference, Koopman minus itself: "
                     + ", ".join(f"{label} {fmt(float(np.median(d[np.isfinite(d)])), 3) if np.isfinite(d).any() else 'n/a (every network stopped)'}"
                                 for label, d in diffs))
    return ("Above the diagonal Koopman training ends worse than Adadelta continued from the same state, on it "
            "as good. The front page's reading of each claim (better than, worse than or indistinguishable from "
            "the optimizer's own noise) is in the conclusion below.\n\n" + "\n".join(f"- {x}" for x in lines))


# -- one factor at a time ----------------------------------------------------------------------
def ablation_rows(res: dict) -> list[dict]:
    """The ablation's rows, eigenvalue moduli to 6 digits, with the growth factor ``|lambda|_max^T`` of
    the largest mode (median over inits) over one and two epochs (``growth_T1``, ``growth_T2``)."""
    S = res["steps_per_epoch"]
    return [{**r.as_dict(), "max_spectral_radius": fmt(r.max_spectral_radius, 6),
             "growth_T1": growth(r.max_spectral_radius, S), "growth_T2": growth(r.max_spectral_radius, 2 * S)}
            for r in rows.table(res, "ablation")]


def growth_text(res: dict) -> str:
    """The ablation's starting points by the growth factor of their largest mode over one and two
    epochs, and, where it happens, the setting with the most eigenvalues outside the unit circle
    that is not the one whose largest mode grows most."""
    S, ab = res["steps_per_epoch"], rows.table(res, "ablation")
    lines = [f"**{r.setting}**: largest modulus {fmt(r.max_spectral_radius, 6)} (median over inits), growth factor "
             f"$|\\lambda|_{{\\max}}^T$ = {fmt(growth(r.max_spectral_radius, S), 3)} over one epoch ($T$ = {S}) and "
             f"{fmt(growth(r.max_spectral_radius, 2 * S), 3)} over two; {fmt(r.n_eigs_outside_unit_circle, 3)} "
             f"eigenvalues outside the circle; Koopman / Adadelta test loss after two epochs "
             f"{fmt(r.koopman_over_optimizer_T2) if r.koopman_over_optimizer_T2 is not None else 'n/a (every network stopped by the guard)'}."
             for r in ab if r.is_base]
    text = "\n".join(f"- {x}" for x in lines)
    ok = [r for r in ab if r.max_spectral_radius is not None and r.n_eigs_outside_unit_circle is not None]
    kept = [r for r in ok if kept_up(r.koopman_over_optimizer_T2)]
    lost = [r for r in ok if diverged(r.koopman_over_optimizer_T2)]
    if kept and lost:
        a = max(kept, key=lambda r: r.n_eigs_outside_unit_circle)      # kept up with the most eigenvalues outside
        b = min(lost, key=lambda r: r.n_eigs_outside_unit_circle)      # diverged with the fewest
        if a.n_eigs_outside_unit_circle > b.n_eigs_outside_unit_circle:
            text += (f"\n\nThe count misleads, the growth factor does not: **{a.setting}** kept up with "
                     f"{fmt(a.n_eigs_outside_unit_circle, 3)} eigenvalues outside the circle, whose largest grows by "
                     f"{fmt(growth(a.max_spectral_radius, 2 * S), 3)} over two epochs; **{b.setting}** diverged with "
                     f"only {fmt(b.n_eigs_outside_unit_circle, 3)}, whose largest grows by "
                     f"{fmt(growth(b.max_spectral_radius, 2 * S), 3)}.")
    return text


def diverged(ratio: float | None) -> bool:
    """A Koopman / Adadelta loss ratio that counts as diverged (``None``: every network stopped)."""
    return ratio is None or not np.isfinite(ratio) or LOSS_DIVERGED.holds(ratio)


def kept_up(ratio: float | None) -> bool:
    """A Koopman / Adadelta loss ratio that counts as kept up."""
    return ratio is not None and LOSS_KEPT_UP.holds(ratio)


def ablation_figure(res: dict, profile: str) -> Figure:
    """Per setting: the loss ratio after two epochs (log) and the largest eigenvalue modulus above 1."""
    ab = rows.table(res, "ablation")
    fig = Figure(figsize=(12, 0.45 * len(ab) + 1.5))
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(ab))[::-1]
    ratio = as_floats([r.koopman_over_optimizer_T2 for r in ab])
    colors = ["tab:red" if diverged(v) else "tab:blue" for v in ratio]
    axes[0].barh(y, np.log10(np.where(np.isfinite(ratio), ratio, 1e6)), color=colors)
    axes[0].axvline(0, color="black", lw=0.8)
    axes[0].set_xlabel("log10(Koopman / Adadelta test loss after 2 epochs); 6 = guard stop")
    for yi, v in zip(y, ratio):
        axes[0].text(np.log10(v) if np.isfinite(v) else 6, yi, f" {v:.2f}" if np.isfinite(v) else " stopped",
                     va="center", fontsize=7, clip_on=False)
    floor = -7
    axes[1].barh(y, np.log10(np.maximum(as_floats([r.max_spectral_radius for r in ab]) - 1, 10.0 ** floor)) - floor,
                 left=floor, color=colors)
    axes[1].set_xlim(left=floor)
    axes[1].set_xlabel("log10(max |λ| - 1)  (bars start at -7: |λ| ≤ 1 + 1e-7)")
    axes[0].set_yticks(y)
    axes[0].set_yticklabels([r.setting for r in ab], fontsize=8)
    axes[0].set_title("Loss after two Koopman epochs (red: diverged)")
    axes[1].set_title("Largest eigenvalue modulus above 1")
    fig.suptitle(f"Ablation, median over {config(res)['n_ablation_inits']} init(s), profile {profile}")
    fig.tight_layout()
    return fig


def switch_lines(ablation: list) -> str:
    """Per switched factor of one direction: the loss ratio before and after, and whether it changes
    the outcome (kept up or not)."""
    base = next(r for r in ablation if r.is_base)
    lines = []
    for r in ablation:
        if not r.is_base:
            changes = kept_up(base.koopman_over_optimizer_T2) != kept_up(r.koopman_over_optimizer_T2)
            lines.append(f"- {r.setting}: loss ratio after two epochs {fmt(base.koopman_over_optimizer_T2)} -> "
                         f"{fmt(r.koopman_over_optimizer_T2)}{' (**changes the outcome**)' if changes else ''}")
    return "\n".join(lines)


def direction_texts(res: dict, saved: bool = False) -> list[str]:
    """One paragraph per ablation direction: the switches from its starting point (:func:`switch_lines`);
    ``saved``: worded for the saved paper-profile run."""
    ab = rows.table(res, "ablation")
    head, what = ("Profile `paper`, starting", "") if saved else \
        ("Starting", "Koopman/Adadelta test-loss ratio after two epochs; ")
    return [f"**{head} from the {'replication' if direction == 'from_replication' else 'paper'}'s settings** "
            f"({what}rule: {LOSS_KEPT_UP.text}):\n\n" + switch_lines([r for r in ab if r.direction == direction])
            for direction in config(res)["ablation_directions"]]


def saved_ablation_note(saved: dict) -> str:
    return f"Profile `paper` ({config(saved)['n_ablation_inits']} inits, medians; {provenance_line(saved)}):"


# -- the cutoff, the conclusions, the claims -----------------------------------------------------
def sweep_rows(res: dict) -> list[dict]:
    """The cutoff sweep at two epochs, every cutoff with and without clipping."""
    return [{"cutoff": x.cutoff, "clipped": "yes" if x.stabilised else "no", "rtol (layer 1)": x.rtol_layer1,
             "layer-1 rank": x.mean_rank_layer1_blocks, "max |λ|": fmt(x.max_spectral_radius, 6),
             "success": f"{100 * x.success_rate:.0f}%", "median T_eq/T": x.teq_over_t_median,
             "Koopman loss": x.koopman_loss_median, "Adadelta loss": x.optimizer_loss_median,
             "guard stops": x.guard_stops} for x in rows.table(res, "cutoff_sweep") if x.T_epochs == 2]


def sweep_note(res: dict) -> str:
    sweep = [x for x in rows.table(res, "cutoff_sweep") if x.T_epochs == 2]
    return f"Profile `{res['provenance']['profile']}`, {sweep[0].n_inits} networks."


def sweep_figure(res: dict) -> Figure:
    """Median Koopman test loss after two epochs against the cutoff, with and without clipping, and Adadelta's."""
    sw = [x for x in rows.table(res, "cutoff_sweep") if x.T_epochs == 2]
    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for stab, ls, mk, colour in ((False, "-", "o", "black"), (True, "--", "s", "tab:orange")):
        line = sorted((x for x in sw if x.stabilised == stab), key=lambda x: x.rtol_layer1)
        ax.plot(as_floats([x.rtol_layer1 for x in line]), as_floats([x.koopman_loss_median for x in line]), ls=ls, marker=mk,
                color=colour, label="Koopman, 2 epochs" + (", clipped to |λ| ≤ 1" if stab else ""))
    ax.axhline(sw[0].optimizer_loss_median, color="tab:green", ls="-.", label="Adadelta, 2 epochs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("relative cutoff rtol (layer-1 blocks)")
    ax.set_ylabel("median test loss (NLL per image)")
    ax.set_title("Paper's settings, only the cutoff varied (missing points: every network stopped)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ablation_value(res: dict, setting: str, field: str):
    """A field of the ablation row ``setting`` (``None`` where there is no such row)."""
    r = next((x for x in rows.table(res, "ablation") if x.setting == setting), None)
    return None if r is None else getattr(r, field)


def conclusion_text(res: dict, saved: dict | None = None) -> str:
    """The replication's two claims with the front page's verdicts (three-way, over networks; from
    ``saved``, the paper-profile run, where there is one) and its reading against the optimizer
    against itself, the two-part rule spelt out as the chapter's reading, and what StepLR, the cutoff
    and float64 change on the ablation's networks."""
    ratio = lambda s: ablation_value(res, s, "koopman_over_optimizer_T2")  # noqa: E731
    layer2 = replication_row(res, REP_LAYER)
    lines = []
    for what, setting in (("node-wise", REP_NODE), ("layer-wise", REP_LAYER)):
        row = front_page_row(res, saved, setting)
        lines.append(f"The replication's divergence, {what} operators after two epochs: the front page's verdict is "
                     f"**{row['verdict']}** ({interval_text(row['rule'], row['n'], row['ci_low'], row['ci_high'])}"
                     f"{'; ' + row['no_interval'] if row['no_interval'] else ''}); "
                     f"{two_part_verdict(saved or res, setting)}. {row['null_model'][0].upper()}{row['null_model'][1:]}.")
    lines += [
        f"On the ablation's init(s) node-wise operators under the replication's settings give "
        f"{fmt(ratio('replication settings'))} times Adadelta's test loss after two epochs. Switching on the paper's "
        f"**StepLR** alone gives {fmt(ratio('replication settings, StepLR -> paper'))}; switching the **cutoff** to "
        f"MATLAB's gives a largest eigenvalue modulus of "
        f"{fmt(ablation_value(res, 'replication settings, pinv cutoff -> paper', 'max_spectral_radius'), 5)} and a "
        f"loss ratio of {fmt(ratio('replication settings, pinv cutoff -> paper'))} (n/a meaning the evolution blew "
        f"up); float64 fits alone give {fmt(ratio('replication settings, fit dtype -> paper'))}.",
        f"Layer-wise operators under the replication's settings: {fmt(layer2.final_test_loss_koopman, 3)} after "
        f"two epochs against Adadelta's {fmt(layer2.final_test_loss_optimizer, 3)} (profile "
        f"`{res['provenance']['profile']}`)."]
    return "\n".join(f"- {x}" for x in lines)


def which_switch(res: dict) -> tuple[list[str], list[str]]:
    """The factors whose switch from the replication's settings ends the divergence (kept up), and the rest."""
    moved = [r for r in rows.table(res, "ablation") if r.direction == "from_replication" and not r.is_base]
    fixes = [r.factor for r in moved if kept_up(r.koopman_over_optimizer_T2)]
    return fixes, [r.factor for r in moved if r.factor not in fixes]


def which_switch_text(res: dict, which: str) -> str:
    base = next(r for r in rows.table(res, "ablation") if r.setting == "replication settings")
    fixes, keeps = which_switch(res)
    return (f"Which single switch towards the paper's settings ends the divergence (profile `{which}`, "
            f"{base.n_members} networks per setting, rule: {LOSS_KEPT_UP.text}; base ratio "
            f"{fmt(base.koopman_over_optimizer_T2)}): {', '.join(fixes) or 'none'}; the divergence stays with: "
            f"{', '.join(keeps) or 'none'}. The paper's settings as written diverge for a different reason, the "
            f"cutoff (see the eigenvalues above).")


def claim_cell(res: dict | None, setting: tuple, T: int) -> str:
    """``'loss (Adadelta loss)'`` of a replication row; ``'not run yet'`` without results, ``'n/a'`` without the row."""
    if res is None:
        return "not run yet"
    row = replication_row(res, setting, T)
    return "n/a" if row is None else \
        f"{fmt(row.final_test_loss_koopman, 3)} (Adadelta {fmt(row.final_test_loss_optimizer, 3)})"


def grows(res: dict, setting: tuple) -> bool:
    """The paper's settings: a Koopman loss above the stated factor times Adadelta's after 2 epochs
    (or none: every network stopped)."""
    row = replication_row(res, setting)
    return row.final_test_loss_koopman is None or LOSS_DIVERGED.holds(row.final_test_loss_koopman,
                                                                       of=row.final_test_loss_optimizer)


#: the chapter's reading of the two-part rule, by how many parts hold (2, 1, 0)
PARTS_HOLD = {2: "both parts hold", 1: "one part holds", 0: "neither part holds"}


def two_part_verdict(res: dict, setting: tuple) -> str:
    """The two parts of the divergence rule (RULES['divergence']) on one row, spelt out: the chapter's
    reading (how many parts hold); the front page's verdict on its two claims is :func:`front_page_verdict`."""
    g, a, growth = parts(replication_row(res, setting))
    return (f"chapter reading: {PARTS_HOLD[g + a]}: (1) grows {fmt(growth, 3)}x {'yes' if g else 'no'}, "
            f"(2) above Adadelta {'yes' if a else 'no'}")


#: the replication rows that are the front page's claims: setting -> claim key
SCORECARD_CLAIMS = {REP_NODE: "replication-divergence", REP_LAYER: "replication-divergence-layer"}


def front_page_row(res: dict, saved: dict | None, setting: tuple) -> dict:
    """The front page's row (:func:`koopman_repro.scorecard.claim_row`) of the claim of ``setting``:
    its verdict and its reading against the optimizer against itself (``"null_model"``) from ``saved``
    where there is one, else from ``res``."""
    return claim_row(SCORECARD_CLAIMS[setting], {"mnist": res}, {"mnist": saved} if saved else {})


def front_page_verdict(res: dict, saved: dict | None, setting: tuple) -> str:
    """The front page's verdict on the claim of ``setting`` (:func:`front_page_row`), then the chapter's
    reading of its two parts."""
    row = front_page_row(res, saved, setting)
    if row["no_interval"]:
        why = f" (no interval: {row['no_interval']})"
    elif row["ci_low"] not in (None, ""):
        why = (f" (share of the two parts that hold, 95% interval over {row['n']} networks: "
               f"{float(row['ci_low']):.2f}-{float(row['ci_high']):.2f})")
    else:
        why = ""
    return f"{row['verdict']}{why}; " + two_part_verdict(saved or res, setting)


def close_after_one_epoch(res: dict) -> bool:
    """The replication's full-node Koopman loss still counts as kept up after one epoch."""
    node1 = replication_row(res, REP_NODE, 1)
    return node1.final_test_loss_koopman is not None and \
        LOSS_KEPT_UP.holds(node1.final_test_loss_koopman, of=node1.final_test_loss_optimizer)


#: the claims table: (claim, paper, replication, our setting, T)
CLAIMS = [
    ("replication, full node: loss after 1 Koopman epoch", "-", "about 0.27 (Adadelta about 0.2)", REP_NODE, 1),
    ("replication, full node: loss after 2 Koopman epochs", "-", "about 1.0 (Adadelta about 0.2)", REP_NODE, 2),
    ("replication, layer-wise: loss after 2 Koopman epochs", "-", "about 0.40 (Adadelta about 0.2)", REP_LAYER, 2),
    ("paper's settings (quasi-node, float64, paper's pinv): loss after 2 Koopman epochs",
     "T_eq/T 0.97, all 25 succeed", "-", PAPER_FIT, 2),
    ("replication's settings, full node, library default fit: loss after 2 Koopman epochs", "-", "-", REP_DEFAULT, 2),
    ("paper's settings, library default fit: loss after 2 Koopman epochs", "T_eq/T 0.97, all 25 succeed", "-",
     PAPER_DEFAULT, 2),
]


def claim_verdicts(res: dict, saved: dict | None = None) -> list[str]:
    """The verdict of each claim of :data:`CLAIMS`, on ``saved`` where there is one, else ``res`` ("not
    measured" where that run has no such row): the front page's for the replication's two claims, the
    chapter's own readings (named so) for the others."""
    best = saved or res
    verdicts = [
        lambda: "chapter reading: " + ("still close after one epoch" if close_after_one_epoch(best) else
                                       "already off after one epoch"),
        lambda: front_page_verdict(res, saved, REP_NODE),
        lambda: front_page_verdict(res, saved, REP_LAYER),
        lambda: "chapter reading: " + ("diverges (the paper's fit fails as stated)" if grows(best, PAPER_FIT)
                                       else "does not diverge"),
        lambda: two_part_verdict(best, REP_DEFAULT),
        lambda: "chapter reading: " + ("diverges" if grows(best, PAPER_DEFAULT) else "does not diverge")]
    return [NOT_MEASURED if replication_row(best, setting, T) is None else verdict()
            for (*_, setting, T), verdict in zip(CLAIMS, verdicts)]


def claim_rows(res: dict, saved: dict | None) -> list[dict]:
    """The replication's and the paper's claims against ours (ci and the saved paper profile), with verdicts
    on the saved run where there is one."""
    return [{"claim": claim, "paper": paper, "replication": rep, "ours (ci)": claim_cell(res, setting, T),
             "ours (paper profile)": claim_cell(saved, setting, T), "verdict": verdict}
            for (claim, paper, rep, setting, T), verdict in zip(CLAIMS, claim_verdicts(res, saved))]


def claim_note(saved: dict | None) -> str:
    return (f"Verdicts use the {'paper' if saved is not None else 'ci'} profile; the replication's two claims get "
            "the front page's three-way verdict. Rules: replication rows (2 epochs): "
            f"{RULES['divergence'].text}; after one epoch: {LOSS_KEPT_UP.text}; the paper's settings: "
            f"{LOSS_DIVERGED.text} (n/a: every network stopped by the guard).")


def loss_pair(row) -> str:
    return "n/a" if row is None else (f"{fmt(row.final_test_loss_koopman, 3)} against Adadelta's "
                                      f"{fmt(row.final_test_loss_optimizer, 3)}")


def fits_text(best: dict, which: str) -> str:
    """The replication's and the paper's settings, each with its own fit and the library's default fit."""
    rep_own, rep_def = replication_row(best, REP_NODE), replication_row(best, REP_DEFAULT)
    rep_stab = replication_row(best, ("replication, default-stabilised fit", "node"))
    pap_own, pap_def = replication_row(best, PAPER_FIT), replication_row(best, PAPER_DEFAULT)
    d_own, d_def = parts(rep_own), parts(rep_def)
    cutoff_decides = (pap_own is not None and pap_def is not None
                      and (pap_own.final_test_loss_koopman is None or grows(best, PAPER_FIT))
                      and not grows(best, PAPER_DEFAULT))
    lines = [
        f"**The replication's settings.** With its own fit (float32, JAX's cutoff) the node-wise Koopman loss after "
        f"two epochs is {loss_pair(rep_own)} ({'diverges' if all(d_own[:2]) else 'does not diverge'} by the two-part "
        f"rule); with the library's default fit it is {loss_pair(rep_def)} "
        f"({'diverges' if all(d_def[:2]) else 'does not diverge'})"
        + (f"; with the default fit clipped to the unit disk {loss_pair(rep_stab)}" if rep_stab else "") + ". "
        + ("A fit that inverts only what the recording resolves does not remove this divergence, so its cause is not "
           "the cutoff: without learning-rate decay the recorded window is not a contracting linear dynamics."
           if all(d_def[:2]) else "The principled fit removes it, so in these runs the cutoff was the cause."),
        f"**The paper's settings.** With the paper's fit the loss after two Koopman epochs is {loss_pair(pap_own)} "
        f"(n/a: every network stopped by the guard); with the default fit {loss_pair(pap_def)}. "
        + ("Here the cutoff is the whole difference: the paper's fit inverts directions below the float32 resolution "
           "of the recorded weights." if cutoff_decides else "The two fits do not differ in kind here."),
    ]
    return "\n\n".join(lines) + (f"\n\n(Profile `{which}`; the MNIST chapter has the success rates and "
                                 "$T_{eq}/T$ of every fit at 1, 2 and 5 epochs.)")
