"""The MNIST chapter (``notebooks/mnist.md``): Table 2 of the paper with each of the book's
fits, the test-loss curves, the optimizer against itself, the strided fits, the float64 run, the
optimizer's state as observables, Fig. 3b's weight trajectories, the fitted spectra, the Cholesky
check, the cost, where each fit stops keeping up, the cutoff and stride sweeps and the summary with its verdicts.

Every function takes MNIST results (``koopman_repro.experiments.mnist``, as loaded by
:func:`koopman_repro.results.load_results`) and returns rows (lists of dicts for
:func:`koopman_repro.report.show_table`), markdown text or a matplotlib ``Figure``. Tables are read
through the declared rows (:mod:`koopman_repro.rows.mnist`). :func:`median_over_inits`,
:func:`plot_eigenvalues` and the small readers (:func:`config`, :func:`eigenvalues`, :func:`as_floats`)
are shared with the divergence chapter.
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from koopman_lib.spectra import growth_factors

from .. import rows
from ..plots import stride_axis
from ..report import fmt
from ..scorecard import KEEPS_UP, MNIST_TABLE2, claim_row, interval_text
from . import config, keeps_up_to_stride

#: the figures this chapter's page draws (tests/book/test_browser.py counts them on the page)
FIGURES = 6

#: how the chapter names and draws each fit of ``koopman_lib.fit.FITS``: label, (colour, line style, marker)
FIT_LABEL = {"paper": "paper's fit", "default": "library default", "default-stabilised": "default, stabilised",
             "default-strided": "default, strided", "default-strided-stabilised": "default, strided, stabilised"}
FIT_STYLE = {"paper": ("black", ":", "x"), "default": ("tab:blue", "-", None),
             "default-stabilised": ("tab:orange", "--", None), "default-strided": ("tab:cyan", "-.", "^"),
             "default-strided-stabilised": ("tab:brown", (0, (5, 1, 1, 1)), "v")}
#: what the chapter writes where a saved run lacks a field (older files)
NOT_SAVED = "not in this saved run"
#: the paper's Table 2 (success as a fraction, median T_eq/T, median speedup timed as the paper did)
PAPER = {"success_rate": MNIST_TABLE2[0] / 100, "teq_over_t_median": MNIST_TABLE2[1],
         "speedup_paper_style_median": float(MNIST_TABLE2[2])}
#: the summary's quantities, and the front page's rule (with the scale of its values) for those the paper has
SUMMARY_LABELS = {"success_rate": "success rate", "teq_over_t_median": "median $T_{eq}/T$",
                  "speedup_paper_style_median": "median speedup, paper style",
                  "speedup_fast_loop_median": "median speedup, fast loop"}
#: the scorecard's claim of each summary quantity the paper has (its verdict is the front page's)
SUMMARY_CLAIMS = {"success_rate": "mnist-success", "teq_over_t_median": "mnist-teq",
                  "speedup_paper_style_median": "mnist-speedup"}
CHOLESKY_COLUMNS = ["block_size", "n_blocks", "cond_F_median", "cond_F_max", "cholesky_failed_blocks",
                    "rel_diff_median", "rel_diff_max"]


def as_floats(x) -> np.ndarray:
    """JSON lists (``None`` for nan) as a float array."""
    return np.array(x, dtype=float)



def median_over_inits(y) -> np.ndarray:
    """Median over inits (axis 0) of the finite values of ``y`` ``(inits, points)``; nan where no
    init has one."""
    y = np.atleast_2d(as_floats(y))
    out = np.full(y.shape[1], np.nan)
    ok = np.isfinite(y).any(0)
    out[ok] = np.nanmedian(y[:, ok], axis=0)
    return out


def plot_eigenvalues(ax, lam: np.ndarray, title: str, label_outside: str, title_size: float, legend_size: float):
    """Eigenvalues ``lam`` (complex) against the unit circle; those outside in red, labelled
    ``label_outside``."""
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    out = np.abs(lam) > 1
    ax.plot(circle.real, circle.imag, color="grey", lw=0.8)
    ax.scatter(lam[~out].real, lam[~out].imag, s=3, color="tab:blue", label="|λ| ≤ 1")
    ax.scatter(lam[out].real, lam[out].imag, s=6, color="tab:red", label=label_outside)
    ax.set_xlim(-1.1, 1.6)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(title, fontsize=title_size)
    ax.legend(fontsize=legend_size, loc="lower right")


def eigenvalues(entry: dict) -> np.ndarray:
    """The complex eigenvalues of a saved ``{"re": [...], "im": [...]}``."""
    return as_floats(entry["re"]) + 1j * as_floats(entry["im"])


def growth(radius: float | None, steps: int) -> float | None:
    """``|lambda|_max^T``: the factor by which a jump of ``T = steps`` steps multiplies the largest
    mode of an operator of spectral radius ``radius`` (the operators chapter, section "Modes and
    the unit circle"); ``None`` where there is no radius (every network stopped)."""
    if radius is None or not np.isfinite(radius):
        return None
    return float(growth_factors(torch.tensor(float(radius), dtype=torch.float64), int(steps)))


def predicted_steps(row: rows.Row, steps_per_epoch: int) -> int:
    """The optimizer steps a Table 2 row's fit predicts: its ``horizon_steps`` (a strided fit's is
    ``floor_horizon(T, s)``, up to ``s - 1`` steps short of ``T``), ``T`` in steps where an older saved
    run has no such field (every fit then used every snapshot)."""
    return row.T_epochs * steps_per_epoch if row.horizon_steps is None else row.horizon_steps


def applications(row: rows.Row, steps_per_epoch: int) -> int:
    """How many times the row's fitted operator is applied over its horizon: the predicted steps over
    the stride (a strided fit's operator is an ``s``-step one, its radius that of ``s`` steps)."""
    return predicted_steps(row, steps_per_epoch) // (row.stride or 1)


def growth_label(lam: np.ndarray, steps: int) -> str:
    """The legend of an eigenvalue panel: the count outside the unit circle beside what decides a
    jump of ``steps`` steps, the growth factor of the largest mode."""
    r = float(np.abs(lam).max())
    return f"|λ| > 1: {(np.abs(lam) > 1).sum()}; |λ|max = {r:.5f}, |λ|max^T = {fmt(growth(r, steps), 3)}"


# -- the experiment ---------------------------------------------------------------------------
def settings_note(res: dict, profile: str) -> str:
    cfg = config(res)
    return (f"Profile `{profile}`: {cfg['n_inits']} inits, test loss every {cfg['eval_every']} steps "
            f"({res['steps_per_epoch'] // cfg['eval_every']} per epoch).")


def loss_figure(res: dict, profile: str) -> Figure:
    """Test loss and accuracy over the Koopman phase: Adadelta's median, each fit's single inits
    and median (with the number of rollouts the guard stopped), the horizons as grey lines."""
    cfg, cur = config(res), res["curves"]
    members = rows.table(res, "members")
    steps = as_floats(cur["steps"]) / res["steps_per_epoch"]
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    for ax, (o, key, scale, ylabel) in zip(axes, [(as_floats(cur["optimizer_loss"]), "koopman_loss", 1,
                                                   "test loss (NLL per image)"),
                                                  (as_floats(cur["optimizer_acc"]), "koopman_acc", 100,
                                                   "test accuracy (%)")]):
        ax.plot(steps, median_over_inits(o) * scale, color="tab:green", lw=2.5, label="Adadelta (median)")
        allv = [o[np.isfinite(o)] * scale]
        for name in cfg["fits"]:
            k = as_floats(cur[key][name])
            colour, ls, marker = FIT_STYLE[name]
            n_stop = sum(m.fits[name]["rollout_stopped_at"] is not None for m in members)
            ax.plot(steps, k.T * scale, color=colour, alpha=0.2, lw=0.7)
            ax.plot(steps, median_over_inits(k) * scale, color=colour, ls=ls, lw=2, marker=marker, markevery=5,
                    label=f"Koopman, {FIT_LABEL[name]} (median; {n_stop} stopped)")
            allv.append(k[np.isfinite(k)] * scale)
        for h in cfg["horizons_epochs"]:
            ax.axvline(h, color="0.85", lw=0.8, zorder=0)
        ax.set_xlabel("epochs after $t_2$ (end of epoch 5)")
        ax.set_ylabel(ylabel)
        v = np.concatenate(allv)
        if key == "koopman_loss" and v.max() / v.min() > 5:      # a diverging curve: log scale
            ax.set_yscale("log")
        if key == "koopman_acc":
            ax.set_ylim(max(0, np.percentile(v, 2) - 1), min(100, v.max() + 0.5))
    axes[0].set_title("Test loss (thin lines: single inits)")
    axes[1].set_title("Test accuracy")
    axes[0].legend(fontsize=7.5)
    fig.suptitle(f"MNIST 784:20:20:20:10, {cfg['n_inits']} inits (profile {profile}); "
                 "grey lines: T = 1, 2, 5 epochs")
    fig.tight_layout()
    return fig


def table_row(res: dict, fit: str, T: int | None = None) -> rows.Row:
    """Table 2's row of ``fit`` at horizon ``T`` epochs (default: the paper's)."""
    T = config(res)["T_epochs"] if T is None else T
    return next(r for r in rows.table(res, "table") if r.fit == fit and r.T_epochs == T)


def fit_lines(res: dict) -> list[str]:
    """Per fit at the paper's horizon: guard stops, median largest eigenvalue modulus and median
    test losses (Koopman, Adadelta, at t2)."""
    T = config(res)["T_epochs"]
    out = []
    for name in config(res)["fits"]:
        r = table_row(res, name)
        out.append(f"**{FIT_LABEL[name]}**: {r.guard_stops} of {r.n_inits} networks stopped by the guard within "
                   f"{T} epochs; median largest eigenvalue modulus {fmt(r.max_spectral_radius_median, 6)}; "
                   f"median test loss after {T} Koopman epochs {fmt(r.koopman_loss_T_median, 4)} "
                   f"(Adadelta {fmt(r.optimizer_loss_T_median, 4)}, at $t_2$ {fmt(r.test_loss_t2_median, 4)}).")
    return out


def growth_rows(res: dict) -> list[dict]:
    """Per fit and horizon of Table 2: the jump ``T`` in steps, the median over the networks of the
    largest eigenvalue modulus and its growth factor ``|lambda|_max^T`` (the median network's:
    ``r -> r^T`` is increasing), the number of networks stopped by the guard and the median T_eq/T."""
    S = res["steps_per_epoch"]
    return [{"fit": FIT_LABEL[r.fit], "T (epochs)": r.T_epochs, "T (steps)": r.T_epochs * S,
             "stride s (steps)": r.stride or NOT_SAVED, "steps predicted": predicted_steps(r, S),
             "median largest modulus": fmt(r.max_spectral_radius_median, 6),
             "growth over T": growth(r.max_spectral_radius_median, applications(r, S)),
             "guard stops": f"{r.guard_stops} of {r.n_inits}", "median T_eq/T": r.teq_over_t_median}
            for name in config(res)["fits"] for r in sorted((x for x in rows.table(res, "table") if x.fit == name),
                                                             key=lambda x: x.T_epochs)]


def jump_words(row: rows.Row, steps: int, steps_per_epoch: int) -> str:
    """The jump of a Table 2 row in words: ``T`` in steps, and for a strided fit the steps it
    predicts as applications of its ``s``-step operator."""
    if (row.stride or 1) == 1:
        return f"$T$ = {steps} steps"
    return (f"$T$ = {steps} steps (predicted: {predicted_steps(row, steps_per_epoch)} steps, "
            f"{applications(row, steps_per_epoch)} applications of the {row.stride}-step operator)")


def growth_text(res: dict) -> str:
    """Per fit over the paper's jump: the blocks with an eigenvalue outside the unit circle, the
    growth factor of the largest mode and the guard stops; then every pair of fits on which the
    count and the growth factor disagree."""
    T = config(res)["T_epochs"]
    steps = T * res["steps_per_epoch"]
    members = rows.table(res, "members")
    lines, by_fit = [], {}
    for name in config(res)["fits"]:
        r = table_row(res, name)
        blocks = float(np.median(as_floats([sum(m.fits[name]["blocks_outside_unit_circle"]) for m in members])))
        by_fit[name] = (blocks, growth(r.max_spectral_radius_median, applications(r, res["steps_per_epoch"])),
                        r.guard_stops)
        lines.append(f"**{FIT_LABEL[name]}**: a median of {fmt(blocks, 3)} blocks per network have an eigenvalue "
                     f"outside the unit circle; the largest modulus (median) is {fmt(r.max_spectral_radius_median, 6)}, "
                     f"so over {jump_words(r, steps, res['steps_per_epoch'])} its mode grows by "
                     f"$|\\lambda|_{{\\max}}^T$ = "
                     f"{fmt(by_fit[name][1], 3)}; the guard stopped {r.guard_stops} of {r.n_inits} networks.")
    text = "\n".join(f"- {x}" for x in lines)
    for a, (na, ga, sa) in by_fit.items():
        for b, (nb, gb, sb) in by_fit.items():
            if na > nb and ga is not None and gb is not None and ga < gb:
                text += (f"\n\nThe count and the growth factor disagree: the **{FIT_LABEL[a]}** has more blocks with "
                         f"an eigenvalue outside the circle than the **{FIT_LABEL[b]}**, yet its largest mode grows "
                         f"less over the jump ({fmt(ga, 3)} against {fmt(gb, 3)}), and the guard stopped {sa} against "
                         f"{sb} networks.")
    return text


def members_rows(res: dict) -> list[dict]:
    """Per network: test loss at t2 and after the paper's horizon of Adadelta, then per fit the
    Koopman test loss and T_eq/T at that horizon."""
    fits = config(res)["fits"]
    return [{"init": m.init, "test_loss_t2": m.test_loss_t2, "optimizer_loss_T2": m.optimizer_loss(2),
             **{f"{n}: loss": m.at(n, config(res)["T_epochs"])["koopman_loss"] for n in fits},
             **{f"{n}: T_eq/T": m.at(n, config(res)["T_epochs"])["teq_over_t"] for n in fits}}
            for m in rows.table(res, "members")]


def trajectory_figure(res: dict) -> Figure:
    """Fig. 3b: a few weights of init 0 under Adadelta and under each fit, on the optimizer's range."""
    tr, S = res["trajectories"], res["steps_per_epoch"]
    o = as_floats(tr["optimizer"])
    x_opt = (tr["optimizer_from_step"] + np.arange(o.shape[1]) - tr["koopman_from_step"]) / S
    paths = {name: as_floats(tr["koopman"][name]) for name in config(res)["fits"] if name in tr["koopman"]}
    x_ko = np.arange(paths["paper"].shape[1]) / S
    fig = Figure(figsize=(15, 3.2))
    axes = fig.subplots(1, len(tr["labels"]))
    for i, ax in enumerate(axes):
        ax.plot(x_opt, o[i], color="tab:green", lw=0.6, label="Adadelta")
        for name, path in paths.items():
            colour, ls, _ = FIT_STYLE[name]
            ax.plot(x_ko, path[i], color=colour, ls=ls, lw=1.5, label=f"Koopman, {FIT_LABEL[name]}")
        lo, hi = np.nanmin(o[i]), np.nanmax(o[i])
        pad = 0.5 * (hi - lo) + 1e-6
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(tr["labels"][i], fontsize=8)
        ax.set_xlabel("epochs after $t_2$")
    axes[0].set_ylabel("parameter value")
    axes[0].legend(fontsize=7)
    fig.suptitle("Init 0: weights and biases, the last recorded epoch and two epochs after $t_2$")
    fig.tight_layout()
    return fig


def spectrum_figure(res: dict) -> Figure:
    """The eigenvalues of init 0's operators, one panel per fit made from every snapshot (the run
    saves no strided fit's spectrum); the legend gives the number outside
    the unit circle and the growth factor ``|lambda|_max^T`` over the paper's jump."""
    fits = [n for n in config(res)["fits"] if n in res["eigenvalues_init0"]]      # the every-snapshot fits
    steps = config(res)["T_epochs"] * res["steps_per_epoch"]
    fig = Figure(figsize=(4.4 * len(fits), 4.2))
    for ax, name in zip(fig.subplots(1, len(fits)), fits):
        lam = eigenvalues(res["eigenvalues_init0"][name])
        plot_eigenvalues(ax, lam, f"Init 0, {lam.size} eigenvalues,\n{FIT_LABEL[name]}",
                         growth_label(lam, steps), 10, 7)
    fig.suptitle(f"Legends: growth factor over the paper's jump, T = {steps} steps ({config(res)['T_epochs']} epochs)",
                 fontsize=9)
    fig.tight_layout()
    return fig


# -- cost -------------------------------------------------------------------------------------
def cost_rows(res: dict) -> list[dict]:
    """Seconds per network: an Adadelta epoch (example's loop, fast loop), Koopman training with each
    fit and horizon, and the paper's horizon with Cholesky fits."""
    cfg, tm = config(res), res["timing"]
    out = [{"what": "Adadelta epoch, PyTorch example's loop (one network)", "seconds": tm["epoch_seconds_paper_style"]},
           {"what": "Adadelta epoch, fast loop (one network)", "seconds": tm["epoch_seconds_fast_loop"]}]
    out += [{"what": f"Koopman training one network, {FIT_LABEL[n]}: fit + guarded rollout of {h} epoch(s)",
             "seconds": tm["koopman_seconds"][n][f"T{h}"]} for n in cfg["fits"] for h in cfg["horizons_epochs"]]
    out.append({"what": "the paper's horizon with Cholesky fits", "seconds": tm["koopman_seconds_cholesky"]})
    return out


def cost_note(res: dict) -> str:
    tm = res["timing"]
    return (f"Medians of {config(res)['timing_repeats']} interleaved repeat(s); {tm['threads']} torch thread(s); "
            f"hardware in the provenance line. Cholesky: {tm['cholesky_error'] or 'succeeded'}.")


def koopman_epochs(res: dict) -> float:
    """Koopman training one network (default fit, the paper's horizon) in epochs of the example's
    loop (a default-fit rollout runs to T; the paper fit's may be cut short by the guard)."""
    tm = res["timing"]
    return tm["koopman_seconds"]["default"][f"T{config(res)['T_epochs']}"] / tm["epoch_seconds_paper_style"]


def cost_text(res: dict) -> str:
    """What the timings bound: Koopman epochs in optimizer epochs, and the largest possible speedup."""
    tm = res["timing"]
    tk = tm["koopman_seconds"]["default"][f"T{config(res)['T_epochs']}"]
    return (f"Koopman training one network (default fit, {config(res)['T_epochs']} epochs) costs "
            f"{fmt(tk / tm['epoch_seconds_paper_style'], 2)} "
            f"epochs of the example's loop, or {fmt(tk / tm['epoch_seconds_fast_loop'], 2)} epochs "
            f"of the fast loop. Two Koopman epochs can therefore be worth at most "
            f"{fmt(2 * tm['epoch_seconds_paper_style'] / tk, 2)}x (paper style) or "
            f"{fmt(2 * tm['epoch_seconds_fast_loop'] / tk, 2)}x (fast loop), and only when they "
            f"match Adadelta ($T_{{eq}} = 2$); when Koopman training fails, $T_{{eq}} = 0$ and so is the speedup.")


# -- where it stops, the sweep, the summary ----------------------------------------------------
def best_run(res: dict, saved: dict | None, profile: str) -> tuple[dict, str]:
    """``(results, profile)`` the chapter's verdicts use: the saved full-scale run where there is one."""
    return (saved, "paper") if saved is not None else (res, profile)


def where_it_stops(res: dict) -> list[tuple[str, list, int]]:
    """Per fit: ``(fit, its Table 2 rows by horizon, the longest horizon whose median T_eq/T is at
    least KEEPS_UP (0: none))``, the front page's *range* rule."""
    table = rows.table(res, "table")
    out = []
    for name in config(res)["fits"]:
        fit_rows = sorted((x for x in table if x.fit == name), key=lambda x: x.T_epochs)
        ok = [x.T_epochs for x in fit_rows if x.teq_over_t_median >= KEEPS_UP]
        out.append((name, fit_rows, max(ok, default=0)))
    return out


def where_it_stops_rows(res: dict) -> list[dict]:
    return [{"fit": FIT_LABEL[n], "T (epochs)": x.T_epochs, "success": f"{100 * x.success_rate:.0f}%",
             "median T_eq/T": x.teq_over_t_median, "guard stops": x.guard_stops,
             "Koopman loss": x.koopman_loss_T_median, "Adadelta loss": x.optimizer_loss_T_median}
            for n, fit_rows, _ in where_it_stops(res) for x in fit_rows]


def where_it_stops_text(res: dict, which: str) -> str:
    """Per fit: how far it keeps up, the blocks with an eigenvalue outside the unit circle (layer 1,
    layers 2-4) and the guard stops; then the rule."""
    members, groups = rows.table(res, "members"), rows.table(res, "singular_values_init0")
    lines = []
    for name, fit_rows, longest in where_it_stops(res):
        fits = [m.fits[name] for m in members]
        outside = np.median(as_floats([f["blocks_outside_unit_circle"] for f in fits]), axis=0)
        reasons = [f["stop_reason"] for f in fits if f["stop_reason"]]
        why = f"{len(reasons)} of {len(fits)} networks were stopped ({reasons[0]})" if reasons else \
            "no network was stopped"
        reach = (f"keeps up to **T = {longest} epoch{'s' if longest > 1 else ''}**" if longest else
                 f"keeps up at **none** of T = {', '.join(str(x.T_epochs) for x in fit_rows)} epochs")
        grow = ", ".join(f"{fmt(growth(x.max_spectral_radius_median, applications(x, res['steps_per_epoch'])), 3)} "
                         f"over {x.T_epochs}" for x in fit_rows)
        lines.append(f"**{FIT_LABEL[name]}** {reach} (profile `{which}`). Growth factor of the largest mode, "
                     f"$|\\lambda|_{{\\max}}^T$ (median per network): {grow} epochs. Blocks with an eigenvalue "
                     f"outside the unit circle (median per network): {fmt(outside[0], 3)} of the "
                     f"{groups[0].n_blocks} layer-1 blocks of {groups[0].block_size}, {fmt(outside[1:].sum(), 3)} "
                     f"of the {sum(g.n_blocks for g in groups[1:])} node blocks of layers 2-4; {why}.")
    return "\n".join(f"- {x}" for x in lines) + f"\n\nRule: median $T_{{eq}}/T \\geq$ {KEEPS_UP}."


def cutoff_sweep_figure(res: dict, which: str) -> Figure:
    """Median T_eq/T and success against the relative cutoff, per horizon, with and without clipping."""
    sweep = rows.table(res, "cutoff_sweep")
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    for h, colour in zip(config(res)["horizons_epochs"], ["tab:purple", "tab:blue", "tab:red"]):
        for stab, ls, mk in ((False, "-", "o"), (True, "--", "s")):
            line = sorted((x for x in sweep if x.T_epochs == h and x.stabilised == stab), key=lambda x: x.rtol_layer1)
            r = as_floats([x.rtol_layer1 for x in line])
            lab = f"T = {h} epoch{'s' if h > 1 else ''}" + (", clipped to |λ| ≤ 1" if stab else "")
            axes[0].plot(r, as_floats([x.teq_over_t_median for x in line]), ls=ls, marker=mk, color=colour, label=lab)
            axes[1].plot(r, 100 * as_floats([x.success_rate for x in line]), ls=ls, marker=mk, color=colour, label=lab)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("relative cutoff (layer-1 blocks, fraction of $s_{max}$)")
        for c, txt in (("paper", "paper"), ("resolution", "default")):
            x = next(x.rtol_layer1 for x in sweep if x.cutoff == c)
            ax.axvline(x, color="0.6", lw=0.8, ls=":")
            ax.text(x, 1.01, txt, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8,
                    color="0.35")
    axes[0].axhline(KEEPS_UP, color="0.4", lw=0.8)
    axes[0].set_ylabel("median $T_{eq}/T$ over the networks")
    axes[1].set_ylabel("success (% of networks with $T_{eq} > 0$)")
    axes[0].legend(fontsize=7.5, ncols=2)
    fig.suptitle(f"Cutoff sweep, {sweep[0].n_inits} networks (profile {which})", y=1.03)
    fig.tight_layout()
    return fig


def summary_value(row, key: str) -> float | None:
    """A Table 2 value of the summary; a speedup is :meth:`~koopman_repro.rows.mnist.MnistTableRow.speedup`
    (0 when Koopman training improved no network)."""
    return row.speedup(key[len("speedup_"):-len("_median")]) if key.startswith("speedup") else getattr(row, key)


def summary_verdict(key: str, res: dict, best: dict, fit: str) -> str:
    """The front page's verdict on quantity ``key`` with ``fit`` (``"paper"`` or ``"default"``): the
    scorecard's row of its claim (:data:`SUMMARY_CLAIMS`), from ``best`` (the saved full-scale run)
    where it is not ``res``; ``"no paper value"`` where the paper has none."""
    if key not in SUMMARY_CLAIMS:
        return "no paper value"
    row = claim_row(SUMMARY_CLAIMS[key], {"mnist": res}, {} if best is res else {"mnist": best})
    prefix = "" if fit == "paper" else "default_"
    return f"{row[prefix + 'verdict']} ({interval_text(row['rule'], row[prefix + 'n'], row[prefix + 'ci_low'], row[prefix + 'ci_high'])})"


def summary_rows(res: dict, best: dict) -> list[dict]:
    """The paper's Table 2 against ours (the paper fit and the default fit), with the front page's
    verdicts and intervals; when ``best`` is not ``res`` (a saved full-scale run) its value with
    ``res``'s in brackets."""
    out = []
    for key, label in SUMMARY_LABELS.items():
        row = {"quantity": label, "paper": fmt(PAPER.get(key)) if key in PAPER else "-"}
        for name in ("paper", "default"):
            ours = summary_value(table_row(best, name), key)
            row[f"ours, {FIT_LABEL[name]}"] = (f"{fmt(ours)} (ci: {fmt(summary_value(table_row(res, name), key))})"
                                               if best is not res else fmt(ours))
            row[f"verdict, {FIT_LABEL[name]}"] = summary_verdict(key, res, best, name)
        out.append(row)
    return out


def summary_note(res: dict, which: str) -> str:
    return (f"T = {config(res)['T_epochs']} epochs, profile `{which}`; verdicts are the front page's, three-way over "
            f"95% intervals over networks (success rates in percent).")


def summary_text(best: dict) -> str:
    """What the summary means: the paper's fit, the default fit, and the speedup."""
    t0, t1, t2_ = (table_row(best, n) for n in ("paper", "default", "default-stabilised"))
    sp, spf = t1.speedup("paper_style"), t1.speedup("fast_loop")
    lines = [
        f"**With the paper's fit** {fmt(100 * t0.success_rate, 3)}% of the networks improved and the median "
        f"$T_{{eq}}/T$ is {fmt(t0.teq_over_t_median)} (paper: {MNIST_TABLE2[0]}%, {MNIST_TABLE2[1]}); "
        f"{t0.guard_stops} of "
        f"{t0.n_inits} evolutions were stopped by the guard; median largest eigenvalue modulus "
        f"{fmt(t0.max_spectral_radius_median, 6)}.",
        f"**With the library's default fit** {fmt(100 * t1.success_rate, 3)}% improved, median $T_{{eq}}/T$ "
        f"{fmt(t1.teq_over_t_median)}; stabilised: {fmt(100 * t2_.success_rate, 3)}%, "
        f"{fmt(t2_.teq_over_t_median)}. The median test loss after two Koopman epochs is "
        f"{fmt(t1.koopman_loss_T_median, 4)} (default) against {fmt(t1.optimizer_loss_T_median, 4)} for "
        f"Adadelta. The paper's MNIST code was never released, so we cannot tell which cutoff the authors' run used.",
        f"**The speedup (default fit) is {fmt(sp, 2)}x against the example's loop and {fmt(spf, 2)}x against our "
        f"fast loop** (median over the networks that improved), not {MNIST_TABLE2[2]}x. Fitting the 150 operators "
        f"and rolling them out costs about as much as {fmt(koopman_epochs(best), 2)} epochs of the "
        f"example's loop on this machine (a shared 2-core machine; the load average is in the provenance line)."]
    return "\n".join(f"- {x}" for x in lines)


# -- the optimizer against itself, the strided fits, float64 ---------------------------------------
def has_null(res: dict) -> bool:
    """Whether the run continued every network's optimizer against itself (older saved runs did not)."""
    return any(m.null is not None for m in rows.table(res, "members"))


def null_figure(res: dict, T: int | None = None) -> Figure:
    """Per network at horizon ``T`` epochs (default: the paper's): T_eq/T (left) and the test loss at
    T (right) of each fit against the optimizer against itself (Adadelta continued from the same
    state at t2 with another minibatch order); on the diagonal a fit does as well as the optimizer's
    own noise. An older saved run without it gives an empty figure that says so."""
    T = config(res)["T_epochs"] if T is None else T
    members = rows.table(res, "members")
    fig = Figure(figsize=(11, 4.4))
    axes = fig.subplots(1, 2)
    if not has_null(res):
        for ax in axes:
            ax.text(0.5, 0.5, f"the optimizer against itself: {NOT_SAVED}", ha="center", va="center")
            ax.set_axis_off()
        return fig
    for ax, (kk, nk, label) in zip(axes, [("teq_over_t", "teq_over_t", "$T_{eq}/T$"),
                                          ("koopman_loss", "null_loss", f"test loss after T = {T} epochs (NLL per image)")]):
        null = as_floats([m.null_at(T)[nk] for m in members])
        for name in config(res)["fits"]:
            colour, _, marker = FIT_STYLE[name]
            ax.scatter(null, as_floats([m.at(name, T)[kk] for m in members]), color=colour, marker=marker or "o",
                       s=18, label=f"Koopman, {FIT_LABEL[name]}")
        ok = np.isfinite(null)
        lo, hi = (float(null[ok].min()), float(null[ok].max())) if ok.any() else (0.0, 1.0)
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8, label="as good as the optimizer against itself")
        ax.set_xlabel(f"{label}, the optimizer against itself")
        ax.set_ylabel(f"{label}, Koopman")
    losses = np.concatenate([np.asarray(c.get_offsets())[:, 1] for c in axes[1].collections]).astype(float)
    if np.isfinite(losses).any() and np.nanmax(losses) / np.nanmin(losses) > 5:       # a diverged fit: log scale
        axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    axes[0].set_title("$T_{eq}/T$ per network (higher is better)")
    axes[1].set_title("test loss per network (lower is better)")
    fig.suptitle(f"{len(members)} networks, T = {T} epochs: each point one network, Koopman against the "
                 "optimizer continued from the same state with another minibatch order")
    fig.tight_layout()
    return fig


def null_rows(res: dict) -> list[dict]:
    """Per horizon: the optimizer against itself (success, median T_eq/T, median test loss, the run's
    own median test loss) and per fit the median paired difference Koopman minus it; one row
    ``not in this saved run`` for an older run."""
    table = rows.table(res, "null_model") if res.get("null_model") else []
    if not table:
        return [{"T (epochs)": NOT_SAVED}]
    return [{"setting": r.setting, "T (epochs)": r.T_epochs, "networks": r.n_members,
             "success (%)": fmt(100 * r.success_rate, 3), "median T_eq/T": r.teq_over_t_median,
             "median test loss": r.null_loss_median, "own run's median test loss": r.optimizer_loss_median,
             **{f"Koopman - itself, T_eq/T, {FIT_LABEL.get(n, n)}": v
                for n, v in (r.koopman_minus_null_teq_over_t_median or {}).items() if n in FIT_LABEL}}
            for r in table if r.setting == "paper settings"]


def strided_rows(res: dict) -> list[dict]:
    """The strided fits beside the default fit they thin, per horizon: the stride, the steps each
    predicts (a strided fit's horizon is the largest multiple of s <= T, up to s - 1 steps short),
    success, median T_eq/T and median test loss at that horizon."""
    S = res["steps_per_epoch"]
    names = [n for n in config(res)["fits"] if n.startswith("default")]
    return [{"fit": FIT_LABEL[r.fit], "T (epochs)": r.T_epochs, "T (steps)": r.T_epochs * S,
             "stride s (steps)": r.stride or NOT_SAVED, "steps predicted": predicted_steps(r, S),
             "success (%)": fmt(100 * r.success_rate, 3), "median T_eq/T": r.teq_over_t_median,
             "median Koopman test loss": r.koopman_loss_T_median}
            for r in sorted((x for x in rows.table(res, "table") if x.fit in names),
                            key=lambda x: (x.T_epochs, names.index(x.fit)))]


def float64_rows(res: dict) -> list[dict]:
    """The paper's experiment trained in float32 and in float64, side by side for each fit the float64
    run has, at the paper's horizon: networks, success, median T_eq/T, median test loss at t2 and after
    T of Koopman and Adadelta; one row ``not in this saved run`` where there is no float64 run."""
    T = config(res)["T_epochs"]
    f64 = [r for r in rows.table(res, "table_float64") if r.T_epochs == T] if res.get("table_float64") else []
    if not f64:
        return [{"training precision": "float64", "fit": NOT_SAVED}]
    pairs = [pair for r in f64 for pair in (("float32", table_row(res, r.fit, T)), ("float64", r))]
    return [{"training precision": p, "fit": FIT_LABEL[r.fit], "networks": r.n_inits,
             "success (%)": fmt(100 * r.success_rate, 3), "median T_eq/T": r.teq_over_t_median,
             "median test loss at t2": r.test_loss_t2_median, "median Koopman test loss": r.koopman_loss_T_median,
             "median Adadelta test loss": r.optimizer_loss_T_median} for p, r in pairs]


# -- where the strided fit stops: the stride sweep (issue 24) ------------------------------------------
def has_stride_sweep(res: dict) -> bool:
    """Whether the run swept the strided fits over the strides (older saved runs did not)."""
    return bool(res.get("stride_sweep"))


def sweep_fits(res: dict) -> list[str]:
    """The fits of the run's stride sweep, in the chapter's order."""
    have = {r.fit for r in rows.table(res, "stride_sweep")}
    return [f for f in FIT_LABEL if f in have]


def sweep_line(res: dict, fit: str) -> list[rows.Row]:
    """Fit ``fit``'s rows of the stride sweep, by stride."""
    return sorted((r for r in rows.table(res, "stride_sweep") if r.fit == fit), key=lambda r: r.stride)


def sweep_rule(res: dict) -> int:
    """The stride the rule (``koopman_lib.stride.choose_stride``) picks for the run's window."""
    return next(r.stride for r in rows.table(res, "stride_sweep") if r.rule)


def sweep_spread(res: dict, fit: str, strides: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The quartiles ``(lower, upper)``, each ``(len(strides),)``, of the networks' T_eq/T with ``fit`` at
    each of ``strides`` (``stride_sweep_members``, at the paper's horizon); nan where no network has one."""
    h = config(res)["T_epochs"]
    per = res.get("stride_sweep_members") or {}
    q = np.full((2, len(strides)), np.nan)
    for i, s in enumerate(strides):
        v = as_floats([m["strides"][str(s)][fit][f"T{h}"]["teq_over_t"] for m in per.values()
                       if str(s) in m["strides"]])
        if np.isfinite(v).any():
            q[:, i] = np.nanpercentile(v, [25, 75])
    return q[0], q[1]


def log_tick(v: float, _pos=None) -> str:
    """A log axis's tick label: plain numbers at 1, 2, 3 and 5 times a power of ten, no label elsewhere."""
    mantissa = v / 10 ** np.floor(np.log10(v) + 1e-9) if v > 0 else 0.0
    return f"{v:g}" if any(abs(mantissa - m) < 1e-6 for m in (1, 2, 3, 5)) else ""


def stride_sweep_figure(res: dict) -> Figure:
    """Top: median T_eq/T over the networks (the middle half of them shaded) against the stride s, per
    strided fit, with the optimizer's own level (T_eq/T = 1) and the keeps-up rule; bottom: the fit's
    median seconds per network and the snapshots it keeps against s. The rule's stride marked. An older
    saved run without the sweep gives an empty figure that says so."""
    fig = Figure(figsize=(7, 7.4), layout="constrained")
    ax, bx = fig.subplots(2, 1, sharex=True)
    if not has_stride_sweep(res):
        for a in (ax, bx):
            a.text(0.5, 0.5, f"the stride sweep: {NOT_SAVED}", ha="center", va="center")
            a.set_axis_off()
        return fig
    fits, s_rule = sweep_fits(res), sweep_rule(res)
    for f in fits:
        line = sweep_line(res, f)
        x = [r.stride for r in line]
        colour, ls, marker = FIT_STYLE[f]
        lo, hi = sweep_spread(res, f, x)
        ax.fill_between(x, lo, hi, color=colour, alpha=0.15, lw=0, label=f"{FIT_LABEL[f]}: middle half of the networks")
        ax.plot(x, as_floats([r.teq_over_t_median for r in line]), color=colour, ls=ls, marker=marker or "o", ms=4,
                label=f"{FIT_LABEL[f]}: median")
    ax.axhline(1.0, color="0.3", lw=0.9, label="the optimizer's own level, $T_{eq}/T$ = 1")
    ax.axhline(KEEPS_UP, color="0.6", lw=0.8, ls="--", label=f"keeps up: median $T_{{eq}}/T \\geq$ {KEEPS_UP}")
    line = sweep_line(res, fits[0])
    x = [r.stride for r in line]
    bx.plot(x, [r.fit_seconds_median for r in line], color="black", marker="o", ms=4,
            label="fit time per network (median; both fits share one factorisation)")
    cx = bx.twinx()
    cx.plot(x, [r.snapshots for r in line], color="tab:green", ls="--", marker="s", ms=4, label="snapshots kept")
    for a in (ax, bx):
        stride_axis(a, x, s_rule)
    ax.set_xlabel("")
    T, n = line[0].T_epochs, line[0].n_inits
    ax.set_ylabel(f"$T_{{eq}}/T$ at T = {T} epochs")
    ax.set_title(f"{n} networks, T = {T} epochs: the prediction against the stride", fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", fontsize=7, ncols=2)
    for a in (bx, cx):
        a.set_yscale("log")
        a.yaxis.set_major_formatter(FuncFormatter(log_tick))
        a.yaxis.set_minor_formatter(FuncFormatter(log_tick))
    bx.set_ylabel("fit time per network (s)")
    cx.set_ylabel("snapshots kept (of the window)")
    bx.set_title("the fit's cost against the stride", fontsize=10)
    handles = bx.get_legend_handles_labels()[0] + cx.get_legend_handles_labels()[0]
    bx.legend(handles=handles, fontsize=7)
    return fig


def stride_sweep_rows(res: dict) -> list[dict]:
    """One row per stride of the sweep (at most 7): whether it is the rule's, snapshots kept, snapshot
    pairs per coordinate of the largest block, steps predicted, median fit time per network, and per
    fit success and median T_eq/T; one row ``not in this saved run`` for an older run."""
    if not has_stride_sweep(res):
        return [{"stride s (steps)": NOT_SAVED}]
    fits = sweep_fits(res)
    lines = {f: {r.stride: r for r in sweep_line(res, f)} for f in fits}
    out = []
    for s, r in lines[fits[0]].items():
        row = {"stride s (steps)": s, "the rule's stride": "yes" if r.rule else "", "snapshots kept": r.snapshots,
               "snapshot pairs per coordinate": fmt(r.pairs_per_coordinate, 3), "steps predicted": r.horizon_steps,
               "fit time per network (s)": fmt(r.fit_seconds_median, 2)}
        for f in fits:
            x = lines[f].get(s)
            row[f"success (%), {FIT_LABEL[f]}"] = fmt(100 * x.success_rate, 3) if x else "n/a"
            row[f"median T_eq/T, {FIT_LABEL[f]}"] = fmt(x.teq_over_t_median, 2) if x else "n/a"
        out.append(row)
    return out


def stride_sweep_text(res: dict) -> str:
    """Per strided fit: up to which stride its median T_eq/T keeps up (``keeps_up_to_stride``) and where
    it stops; then what the rule's stride costs (snapshots, fit time against the smallest stride) and
    gives (median T_eq/T and success against the smallest stride)."""
    if not has_stride_sweep(res):
        return f"The stride sweep (every network at strides 1 to 32) is {NOT_SAVED}."
    fits, s_rule = sweep_fits(res), sweep_rule(res)
    lines = []
    for f in fits:
        line = sweep_line(res, f)
        up = keeps_up_to_stride(line)
        after = next((r for r in line if up is None or r.stride > up), None)
        if after is None:
            reach = f"keeps up at every stride of the sweep, up to s = {line[-1].stride}"
        elif up is None:
            reach = (f"keeps up at **none** of the strides (median $T_{{eq}}/T$ {fmt(line[0].teq_over_t_median, 2)} "
                     f"at s = {line[0].stride})")
        else:
            reach = (f"keeps up to **s = {up}** and stops at s = {after.stride} (median $T_{{eq}}/T$ "
                     f"{fmt(after.teq_over_t_median, 2)})")
        base, rule = line[0], next(r for r in line if r.stride == s_rule)
        lines.append(f"**{FIT_LABEL[f]}** {reach}. At the rule's s = {s_rule}: median $T_{{eq}}/T$ "
                     f"{fmt(rule.teq_over_t_median, 2)} and success {fmt(100 * rule.success_rate, 3)}%, against "
                     f"{fmt(base.teq_over_t_median, 2)} and {fmt(100 * base.success_rate, 3)}% at s = {base.stride}.")
    base, rule = sweep_line(res, fits[0])[0], next(r for r in sweep_line(res, fits[0]) if r.stride == s_rule)
    factor = base.fit_seconds_median / rule.fit_seconds_median if rule.fit_seconds_median else float("nan")
    cost = (f"The rule's s = {s_rule} keeps {rule.snapshots} of the {base.snapshots} snapshots "
            f"({fmt(rule.pairs_per_coordinate, 3)} snapshot pairs per coordinate of the largest block) and predicts "
            f"{rule.horizon_steps} of the {base.horizon_steps} steps; its fit takes {fmt(rule.fit_seconds_median, 2)} s "
            f"per network against {fmt(base.fit_seconds_median, 2)} s at s = {base.stride}, {fmt(factor, 2)} times "
            f"less (median over the {rule.n_inits} networks, on this run's shared machine).")
    same = "" if base.all_same_networks else (" Not every network trained again for the sweep matched the main "
                                              "table's at $t_2$: the sweep's networks are not all the table's.")
    return "\n".join(f"- {x}" for x in lines) + f"\n\n{cost}{same} Rule: median $T_{{eq}}/T \\geq$ {KEEPS_UP}."


# -- the optimizer's state as observables (issue 25) ----------------------------------------------
#: the two sides of the state table: the main run's fit of the weights alone, and the fit with Adadelta's
#: state stacked under the weights (``koopman_repro.experiments.mnist.state``)
WEIGHTS_ONLY, WITH_STATE = "weights only", "weights + Adadelta state"


def state_fits(res: dict) -> list[str]:
    """The fits of the state pass: the run's ``state_fits`` (the experiment's default,
    ``Config.state_fits``, for a run saved before the pass existed)."""
    from ..experiments.mnist.config import Config
    return list(config(res).get("state_fits") or Config.state_fits)


def state_horizons(res: dict) -> list[int]:
    """The paper's horizon first, then the run's other horizons in order."""
    T = config(res)["T_epochs"]
    return [T] + [h for h in config(res)["horizons_epochs"] if h != T]


def state_pairs(res: dict, fit: str, T: int) -> tuple[rows.Row, np.ndarray, np.ndarray] | None:
    """The state row of ``fit`` at ``T`` and, per network of the state pass, ``(T_eq/T with the weights
    alone, T_eq/T with the state)`` ``(n,)`` each, the weights-only values read from the main run's same
    networks (each init is its own seed: the same network); ``None`` where the run has no such row."""
    row = next((r for r in rows.table(res, "table_state") if r.fit == fit and r.T_epochs == T), None)
    if row is None:
        return None
    state = {m.init: m for m in rows.table(res, "members_state")}
    main = {m.init: m for m in rows.table(res, "members") if m.init in state}
    inits = sorted(set(state) & set(main))
    return (row, as_floats([main[i].at(fit, T)["teq_over_t"] for i in inits]),
            as_floats([state[i].at(fit, T)["teq_over_t"] for i in inits]))


def median_text(values: np.ndarray) -> str:
    """The median of ``values`` (networks) with its bootstrap 95% interval."""
    from ..scorecard.intervals import median
    iv = median(values)
    return fmt(iv.value) if iv.ci_low is None else f"{fmt(iv.value)} (95%: {fmt(iv.ci_low)} to {fmt(iv.ci_high)})"


def state_rows(res: dict) -> list[dict]:
    """Per fit of the state pass and horizon (the paper's first): the weights alone against the weights
    with Adadelta's state, on the same networks: success and median T_eq/T (with its bootstrap 95%
    interval) of each, and the median paired difference (state minus weights only); the state side
    ``not in this saved run`` where the run has no state pass."""
    out = []
    for fit in state_fits(res):
        for T in state_horizons(res):
            got = state_pairs(res, fit, T)
            row = {"fit": FIT_LABEL[fit], "T (epochs)": T}
            if got is None:
                w = table_row(res, fit, T) if any(r.fit == fit for r in rows.table(res, "table")) else None
                out.append({**row, "networks": w.n_inits if w else NOT_SAVED,
                            f"success, {WEIGHTS_ONLY} (%)": fmt(100 * w.success_rate, 3) if w else NOT_SAVED,
                            f"success, {WITH_STATE} (%)": NOT_SAVED,
                            f"median T_eq/T, {WEIGHTS_ONLY}": fmt(w.teq_over_t_median) if w else NOT_SAVED,
                            f"median T_eq/T, {WITH_STATE}": NOT_SAVED, "median difference (state - weights)": NOT_SAVED})
                continue
            r, weights, state = got
            out.append({**row, "networks": len(state),
                        f"success, {WEIGHTS_ONLY} (%)": fmt(100 * float(np.mean(weights > 0)), 3),
                        f"success, {WITH_STATE} (%)": fmt(100 * r.success_rate, 3),
                        f"median T_eq/T, {WEIGHTS_ONLY}": median_text(weights),
                        f"median T_eq/T, {WITH_STATE}": median_text(state),
                        "median difference (state - weights)": median_text(state - weights)})
    return out


def state_text(res: dict) -> str:
    """What the state table means at the paper's horizon, per fit: success and median T_eq/T with and
    without the state on the same networks, and whether the interval of the median paired difference
    lies above zero, below it, or holds it; one sentence saying so where the run has no state pass."""
    from ..scorecard.intervals import median
    T = config(res)["T_epochs"]
    lines = []
    for fit in state_fits(res):
        got = state_pairs(res, fit, T)
        if got is None:
            return (f"The optimizer's state as observables: {NOT_SAVED} (the run has no state pass; the weights-only "
                    "values above are the main run's).")
        r, weights, state = got
        d = median(state - weights)
        word = ("no interval (too few networks)" if d.ci_low is None else
                "the state helps: the whole 95% interval of the paired difference is above zero" if d.ci_low > 0 else
                "the state hurts: the whole 95% interval of the paired difference is below zero" if d.ci_high < 0 else
                "no difference shown: the 95% interval of the paired difference holds zero")
        lines.append(f"**{FIT_LABEL[fit]}**, $T$ = {T} epochs, {len(state)} networks: with the state "
                     f"{fmt(100 * r.success_rate, 3)}% improved (weights only {fmt(100 * float(np.mean(weights > 0)), 3)}%), "
                     f"median $T_{{eq}}/T$ {fmt(float(np.median(state)))} against {fmt(float(np.median(weights)))}; "
                     f"median difference per network {fmt(d.value)}: {word}.")
    return "\n".join(f"- {x}" for x in lines)
