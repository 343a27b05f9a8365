"""The chapter "Koopman operators and the finite-section method" (``notebooks/koopman_operators.md``).

The chapter fits operators to the slow-manifold map of :mod:`koopman_lib.toy` (whose exact
Koopman matrix is known) with ``koopman_lib.finite_section``, ``path`` and ``jump``; this module
turns those fits into the chapter's tables (lists of dicts keyed by column), its figures
(matplotlib Figures not registered with pyplot: a notebook displays one by returning it) and
its closing checks. The two spectra figures read the saved full-scale MNIST and DE-solver runs;
they take the runs' fields as arguments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
import torch

from koopman_lib import eigenvalues
from koopman_lib.spectra import growth_factors, modal_amplitudes, modal_terms
from koopman_lib.toy import match_eigenvalues, relative_error
from koopman_repro.scorecard import EIG_EXACT, EXPONENT_MATCH, NOT_CLOSED, TO_ROUNDING

#: the figures this chapter's page draws (tests/book/test_browser.py counts them on the page)
FIGURES = 7

EPS = float(np.finfo(np.float64).eps)
#: the rules of the closing table, in the order the chapter prints them
RULES = (EIG_EXACT, NOT_CLOSED, TO_ROUNDING, EXPONENT_MATCH)
#: the lifted map's eigenvalues, in the order of ``SlowManifoldMap.eigenvalues`` (``system.alpha``,
#: ``system.beta``, ``system.alpha ** 2`` in code)
EIGENVALUE_NAMES = ("λ_x", "λ_y", "λ_x²")


def relative_distance(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """``||estimate - truth|| / ||truth||`` of two states (vectors)."""
    return relative_error(estimate[:, None], truth[:, None])


def sorted_real_eigenvalues(operator: torch.Tensor) -> np.ndarray:
    """Real parts of the eigenvalues of ``operator``, largest first."""
    return np.sort(eigenvalues(operator).numpy().real)[::-1]


# -- exact and inexact fits ----------------------------------------------------------------------
def eigenvalue_rows(true_eigs, fitted, errors, names: Sequence[str] = EIGENVALUE_NAMES) -> list[dict]:
    """One row per eigenvalue: the true value, the fitted one matched to it and their distance."""
    return [{"eigenvalue": name, "true": f"{true_eigs[i].real:.15f}",
             "fit on [x, y, x²]": f"{fitted[i].real:.15f}", "abs. error": float(errors[i])}
            for i, name in enumerate(names)]


def prediction_figure(full, k: int, pred_id, pred_lift, err_id, err_lift):
    """The true ``x`` and ``y`` (``full`` ``(2, k + horizon)``) with the predictions of the two
    fits from the window's last state (``pred_*`` ``(horizon + 1, 2)``), and their relative
    errors (``err_*`` ``(horizon + 1,)``) against the number of steps predicted."""
    horizon = len(err_id) - 1
    t_all, t_pred = np.arange(k + horizon), np.arange(k - 1, k + horizon)
    fig = Figure(figsize=(14, 3.8))
    axes = fig.subplots(1, 3)
    for ax, row, name in [(axes[0], 0, "x"), (axes[1], 1, "y")]:
        ax.axvspan(0, k - 1, color="0.9", label="fit window")
        ax.plot(t_all, full[row], color="k", lw=2, label="true (nonlinear map)")
        ax.plot(t_pred, pred_id[:, row], "--", color="C3", label="prediction, observables [x, y]")
        ax.plot(t_pred, pred_lift[:, row], ":", color="C0", lw=2.5, label="prediction, observables [x, y, x²]")
        ax.set_xlabel("step t (sampling interval Δt = 1 time unit)")
        ax.set_ylabel(f"{name}(t) (state units)")
        ax.set_title(f"{name}: truth and finite-section predictions")
    axes[0].legend(fontsize=8)
    h = np.arange(horizon + 1)
    axes[2].semilogy(h[1:], err_id[1:], "--", color="C3", label="observables [x, y]")
    axes[2].semilogy(h[1:], err_lift[1:], ":", color="C0", lw=2.5, label="observables [x, y, x²]")
    axes[2].axhline(EPS, color="0.5", lw=0.8, label="float64 eps")
    axes[2].set_xlabel("steps predicted after the window")
    axes[2].set_ylabel("relative error ‖ŵ − w‖ / ‖w‖ (dimensionless)")
    axes[2].set_title("prediction error")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


def window_start_point(t1: int, window, operator, manifold_slope: float, own, own_truth, other, other_truth) -> dict:
    """One window start of the window-start figure: the ``[x, y]`` fit ``operator`` on ``window``
    ``(2, k)`` starting at step ``t1``, its two eigenvalues (real parts, largest first), how far
    the window's first state is from the slow manifold ``y = b x^2``, and the relative errors of
    its predictions of its own trajectory (``own`` against ``own_truth``) and of a trajectory
    from another start (``other`` against ``other_truth``)."""
    e = sorted_real_eigenvalues(operator)
    return {"t1": t1, "eig_large": float(e[0]), "eig_small": float(e[1]),
            "distance": float(abs(window[1, 0] - manifold_slope * window[0, 0] ** 2)),
            "error_own": relative_distance(own, own_truth), "error_other": relative_distance(other, other_truth)}


def window_start_figure(points: Sequence[Mapping], true_eigs: Sequence[float], steps: int, other_start=(1.0, 1.5)):
    """Left: the two eigenvalues of the ``[x, y]`` fit against the window's start ``t1`` (points of
    :func:`window_start_point`), with the true ``lambda_x, lambda_y, lambda_x^2`` (``true_eigs``, in
    that order) as lines. Right: the distance from the slow manifold at ``t1`` and the relative
    errors of the ``steps``-step predictions of the window's own trajectory and of a new start."""
    t1 = np.array([p["t1"] for p in points])
    fig = Figure(figsize=(11, 4.2))
    ax, ax2 = fig.subplots(1, 2)
    for value, name, ls in zip(true_eigs, ("λ_x", "λ_y", "λ_x²"), ("-", "--", ":")):
        ax.axhline(float(np.real(value)), color="0.5", ls=ls, lw=1, label=f"true {name} = {float(np.real(value)):.4f}")
    ax.plot(t1, [p["eig_large"] for p in points], "o", ms=4, color="C0", label="fit on [x, y]: larger eigenvalue")
    ax.plot(t1, [p["eig_small"] for p in points], "s", ms=4, color="C3", label="fit on [x, y]: smaller eigenvalue")
    ax.set_xlabel("window start t1 (steps of Δt = 1 time unit)")
    ax.set_ylabel("eigenvalue λ (dimensionless)")
    ax.set_title("Eigenvalues of the [x, y] fit (k-snapshot window)")
    ax.legend(fontsize=8, loc="lower right")
    x, y = (f"{v:g}" for v in other_start)
    for key, style, label in (("distance", ("k", "-"), "distance of y from b x² at t1 (state units)"),
                              ("error_own", ("C0", "--"), f"rel. error, own trajectory, {steps} steps"),
                              ("error_other", ("C3", ":"), f"rel. error, new start ({x}, {y}), {steps} steps")):
        vals = np.array([p[key] for p in points])
        ok = vals > 0                                   # exact zeros cannot be drawn on a log axis
        ax2.semilogy(t1[ok], vals[ok], color=style[0], ls=style[1], marker=".", label=label)
    ax2.axhline(EPS, color="0.6", lw=0.8, label="float64 eps")
    ax2.set_xlabel("window start t1 (steps of Δt = 1 time unit)")
    ax2.set_ylabel("distance or relative error (see legend)")
    ax2.set_title("On the manifold: own path right, new start wrong")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


# -- modes and the unit circle --------------------------------------------------------------------
def _unit_circle(ax):
    """The unit circle, the axes through 0 and the three regions named."""
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    ax.fill(circle.real, circle.imag, color="0.95", zorder=0)
    ax.plot(circle.real, circle.imag, color="0.4", lw=1, label="unit circle |λ| = 1")
    ax.axhline(0, color="0.8", lw=0.6, zorder=0)
    ax.axvline(0, color="0.8", lw=0.6, zorder=0)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")


def unit_circle_figure(operators: Mapping[str, torch.Tensor], terms: torch.Tensor, names: Sequence[str]):
    """Left: the eigenvalues of each operator in ``operators`` (label -> ``(m, m)``) against the
    unit circle (inside: the mode decays; on: persists; outside: grows). Right: the size
    ``||b_j lambda_j^T phi_j||`` of each mode's term of a jump against ``T`` (``terms``
    ``(n_T, m, n_modes)``: :func:`koopman_lib.spectra.modal_terms` for ``T = 0, 1, ...``; ``names``
    one per mode) and the size of their sum ``U^T w``."""
    fig = Figure(figsize=(11, 4.4))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    _unit_circle(ax)
    for (label, U), (marker, size) in zip(operators.items(), (("o", 60), ("x", 50), ("+", 50))):
        lam = eigenvalues(U).numpy()
        ax.scatter(lam.real, lam.imag, marker=marker, s=size, label=label,
                   **({"facecolors": "none", "edgecolors": "C0"} if marker == "o" else {"color": "C3"}))
    ax.text(0, 0.35, "inside: decays", ha="center", fontsize=9)
    ax.text(0, 1.12, "on: persists", ha="center", fontsize=9)
    ax.text(1.05, -1.22, "outside: grows", ha="right", fontsize=9)
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.set_title("Fitted eigenvalues and the unit circle")
    ax.legend(fontsize=7.5, loc="lower left")
    T = np.arange(terms.shape[0])
    size = terms.abs().pow(2).sum(-2).sqrt().numpy()               # (n_T, n_modes): ||term_j||
    for j, name in enumerate(names):
        ax2.semilogy(T, size[:, j], lw=1.5, label=f"mode {name}: " + r"$\|b_j \lambda_j^T \phi_j\|$")
    total = terms.sum(-1).real.norm(dim=-1).numpy()
    ax2.semilogy(T, total, "k:", lw=2, label=r"$\|U^T w\|$ (the sum)")
    ax2.axhline(EPS * total[0], color="0.6", lw=0.8, label=r"float64 rounding of $\|w\|$")
    ax2.set_ylim(bottom=1e-20 * total[0])              # a mode far below rounding leaves the axis
    ax2.set_xlabel("steps T of the jump")
    ax2.set_ylabel("size of the term (state units)")
    ax2.set_title(r"The jump $U^T w$, mode by mode")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def mode_names(eigs, true_eigs, names: Sequence[str] = EIGENVALUE_NAMES) -> list[str]:
    """The name of the true eigenvalue nearest to each of ``eigs`` (in the order of ``eigs``)."""
    true = np.asarray(true_eigs)
    return [names[int(np.abs(true - complex(e)).argmin())] for e in np.asarray(eigs)]


def modal_rows(m, w, T: int, names: Sequence[str]) -> list[dict]:
    """One row per mode of the jump ``U^T w`` (``m`` from :func:`koopman_lib.spectra.modes`):
    ``lambda_j``, ``|lambda_j|^T``, the amplitude ``b_j = psi_j^T w`` and the size of its term
    ``b_j lambda_j^T phi_j`` (``names``: one per mode, in the order of ``m.eigenvalues``)."""
    b, terms = modal_amplitudes(m, w), modal_terms(m, w, T)
    growth = growth_factors(m.eigenvalues, T)
    return [{"mode": name, "λ_j": f"{m.eigenvalues[j].real.item():.6f}", f"|λ_j|^T, T = {T}": float(growth[j]),
             "b_j = ψ_jᵀ w": f"{b[j].real.item():.4g}", "‖b_j λ_j^T φ_j‖": float(terms[..., j].abs().norm())}
            for j, name in enumerate(names)]


def saved_eigenvalues(entry: Mapping) -> np.ndarray:
    """The complex eigenvalues of a saved ``{"re": [...], "im": [...]}``."""
    return np.array(entry["re"], dtype=float) + 1j * np.array(entry["im"], dtype=float)


def growth_summary(eigenvalues_by_fit: Mapping[str, Mapping], T: int) -> dict:
    """Per fit: the number of eigenvalues outside the unit circle, the largest modulus and its
    growth factor ``|lambda|_max^T`` over a jump of ``T`` steps."""
    out = {}
    for name, entry in eigenvalues_by_fit.items():
        lam = saved_eigenvalues(entry)
        out[name] = {"outside": int((np.abs(lam) > 1).sum()), "max_modulus": float(np.abs(lam).max()),
                     "growth": float(growth_factors(torch.as_tensor(np.abs(lam).max()), T))}
    return out


def growth_markdown(summary: Mapping[str, Mapping], T: int) -> str:
    """The growth summary (:func:`growth_summary`) in words, and every pair of fits whose counts of
    eigenvalues outside the circle and growth factors disagree on which is worse."""
    text = f"Over the jump ($T$ = {T} steps): " + "; ".join(
        f"**{name}**: {s['outside']} eigenvalues outside the circle, largest $|\\lambda|$ = {s['max_modulus']:.5f}, "
        f"growth factor $|\\lambda|_{{\\max}}^T$ = {s['growth']:.3g}" for name, s in summary.items()) + "."
    flips = [(a, b) for a in summary for b in summary
             if summary[a]["outside"] > summary[b]["outside"] and summary[a]["growth"] < summary[b]["growth"]]
    for a, b in flips:
        text += (f" The **{a}** fit has more eigenvalues outside the circle than the **{b}** fit "
                 f"({summary[a]['outside']} against {summary[b]['outside']}), yet its largest mode grows "
                 f"{summary[b]['growth'] / summary[a]['growth']:.3g} times less over the jump.")
    return text


#: colour and line style of each named fit in the growth-factor figure
FIT_STYLES = {"paper": ("tab:red", "-"), "default": ("tab:blue", "--"), "default-stabilised": ("tab:orange", ":")}


def growth_figure(eigenvalues_by_fit: Mapping[str, Mapping], steps_per_epoch: int, horizons_epochs: Sequence[int],
                  jump_epochs: int = 2):
    """Growth factors of one MNIST network's operators (the saved run's ``eigenvalues_init0``: fit
    -> ``{"re": [...], "im": [...]}``). Left: ``|lambda|_max^T`` of each fit against the jump
    length ``T`` (in epochs of ``steps_per_epoch`` steps; the run's ``horizons_epochs`` marked).
    Right: ``|lambda|^T`` of every eigenvalue outside the unit circle over a ``jump_epochs`` jump,
    largest first."""
    fig = Figure(figsize=(11, 4.2))
    ax, ax2 = fig.subplots(1, 2)
    T_max = max(horizons_epochs) * steps_per_epoch
    T = np.linspace(0, T_max, 400)
    T_jump = jump_epochs * steps_per_epoch
    for name, entry in eigenvalues_by_fit.items():
        colour, ls = FIT_STYLES.get(name, ("k", "-"))
        mod = np.abs(saved_eigenvalues(entry))
        g = growth_factors(torch.as_tensor(mod.max()), torch.as_tensor(T)).numpy()
        ax.semilogy(T / steps_per_epoch, g, color=colour, ls=ls, lw=2, label=f"{name}: max |λ| = {mod.max():.5f}")
        outside = -np.sort(-mod[mod > 1])
        gj = growth_factors(torch.as_tensor(outside), T_jump).numpy()
        ax2.semilogy(np.arange(1, outside.size + 1), gj, color=colour, ls=ls, marker=".", ms=4,
                     label=f"{name}: {outside.size} outside the circle")
    for h in horizons_epochs:
        ax.axvline(h, color="0.8", lw=0.8, zorder=0)
    ax.axhline(1, color="0.5", lw=0.8)
    ax.set_xlabel(f"jump length T (epochs of {steps_per_epoch} steps; grey: the horizons)")
    ax.set_ylabel("growth factor |λ|_max^T (dimensionless)")
    ax.set_title("Largest mode: growth over the jump")
    ax.legend(fontsize=8)
    ax2.axhline(1, color="0.5", lw=0.8)
    ax2.set_xlabel("eigenvalues outside the circle, largest |λ| first (rank)")
    ax2.set_ylabel(f"|λ|^T over {jump_epochs} epochs (T = {T_jump} steps)")
    ax2.set_title("Every growing mode: count against size")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def method_rows(fits: Mapping[str, torch.Tensor], truth: torch.Tensor, reference: str = "pinv") -> list[dict]:
    """Per method: the relative distance of its operator from the ``reference`` method's, and
    its relative error against the exact ``truth``."""
    return [{"method": m, f"rel. distance from {reference}": relative_error(U, fits[reference]),
             "rel. error vs exact U⋆": relative_error(U, truth)} for m, U in fits.items()]


# -- the conditioning sweep ------------------------------------------------------------------------
#: colour and marker of each fit of the sweep
SWEEP_STYLES = {"pinv": ("C0", "o"), "lstsq": ("C1", "s"), "cholesky": ("C3", "^"), "svd": ("C2", "x"),
                "svd, rank 2": ("C4", "v"), "pinv, float32": ("C5", "D")}


def series(sweep: Sequence[Mapping], label: str, field: str):
    """``(cond_F, field values, failure messages)`` of one fit of a ``conditioning_sweep``, in
    sweep order (``failed`` is ``None`` where the fit succeeded)."""
    rs = [r for r in sweep if r["label"] == label]
    return np.array([r["cond_F"] for r in rs]), np.array([r[field] for r in rs]), [r["failed"] for r in rs]


def exponent(sweep: Sequence[Mapping], label: str, lo: float = 1e2, hi: float = 1e-3, field: str = "error") -> float:
    """Fitted exponent ``p`` in error ~ cond(F)^p over the successful fits of ``label`` with
    ``cond(F) > lo`` and ``0 < error < hi`` (``nan`` with fewer than three such fits); ``field="residual"``
    fits the residual instead."""
    cond, err, failed = series(sweep, label, field)
    sel = np.array([f is None for f in failed]) & (cond > lo) & (err < hi) & (err > 0)
    if sel.sum() < 3:
        return float("nan")
    return float(np.polyfit(np.log10(cond[sel]), np.log10(err[sel]), 1)[0])


def _short(x: float) -> str:
    """A number as briefly as a caption writes it: 1, 0.5, 1e-6."""
    return f"{x:g}".replace("e-0", "e-")


def conditioning_figure(sweep: Sequence[Mapping], labels: Sequence[str], k: int, dts: Sequence[float]):
    """Operator error (left) and residual (right) of each fit in ``labels`` against cond(F),
    with the guides ``eps cond(F)`` and ``eps cond(F)^2``; fits that refused (``FitError``) are
    marked at the top. ``k`` snapshots per fit, sampling intervals ``dts`` (first to last)."""
    fig = Figure(figsize=(13, 4.6))
    axes = fig.subplots(1, 2)
    for label in labels:
        c, s = SWEEP_STYLES[label]
        for ax, field in zip(axes, ["error", "residual"]):
            cond, val, failed = series(sweep, label, field)
            ok = np.array([f is None for f in failed])
            ax.loglog(cond[ok], val[ok], marker=s, ms=4, color=c, lw=1, label=label)
            if (~ok).any():
                ax.scatter(cond[~ok], np.full((~ok).sum(), 3.0), marker="|", s=120, color=c,
                           label=f"{label}: refused (FitError)")
    cgrid = np.logspace(1, 12, 50)
    axes[0].loglog(cgrid, EPS * cgrid, "k--", lw=0.8, label="ε·cond(F)")
    axes[0].loglog(cgrid, EPS * cgrid ** 2, "k:", lw=0.8, label="ε·cond(F)²")
    axes[0].set_ylim(1e-17, 10)
    axes[0].set_ylabel("relative operator error ‖U − U⋆‖ / ‖U⋆‖ (dimensionless)")
    axes[0].set_title("error of the fitted operator")
    axes[1].set_ylim(1e-17, 10)
    axes[1].set_ylabel("relative residual ‖F′ − U F‖ / ‖F′‖ (dimensionless)")
    axes[1].set_title("how well the operator reproduces the data")
    for ax in axes:
        ax.set_xlabel("cond(F) (dimensionless; smaller Δt → larger)")
    handles, labels_ = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle(f"Finite-section fits of the lifted map, k = {k} snapshots, Δt from {_short(dts[0])} to {_short(dts[-1])}")
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return fig


@dataclass(frozen=True)
class SweepFindings:
    """What the conditioning sweep shows, as numbers (see :func:`sweep_findings`)."""

    #: fitted exponent p in error ~ cond(F)^p per method
    exponents: dict
    #: cond(F) of the sweep's Cholesky fits that returned an operator with error above ``bad``
    cholesky_bad: list
    cholesky_total: int
    #: cond(F) of the Cholesky fits that refused (FitError)
    cholesky_refused: list
    #: (min, max) operator error and min residual of the rank-2 SVD fit
    rank2_error: tuple
    rank2_min_residual: float
    #: (error, cond(F)) of the first float32 pinv fit with error above ``float32_bad``, or None
    float32_first_bad: tuple | None

    def markdown(self) -> str:
        """The chapter's bullet list of these findings."""
        chol_bad, refused = self.cholesky_bad, self.cholesky_refused
        return "\n".join([
            "- Fitted exponents $p$ in error $\\propto \\operatorname{cond}(F)^p$: "
            + ", ".join(f"`{k}` {v:.2f}" for k, v in self.exponents.items()) + ".",
            "- `cholesky` returned an operator with relative error above $10^{-2}$ without complaint in "
            f"{len(chol_bad)} of {self.cholesky_total} cases"
            + (f" (cond(F) from {min(chol_bad):.1e} to {max(chol_bad):.1e})" if chol_bad else "")
            + f", and refused with a `FitError` in {len(refused)}"
            + (f" (from cond(F) = {min(refused):.1e})." if refused else "."),
            f"- The rank-2 SVD fit has relative operator error between {self.rank2_error[0]:.2f} and "
            f"{self.rank2_error[1]:.2f} everywhere, while its residual falls to {self.rank2_min_residual:.0e}.",
            (f"- `pinv` on float32 snapshots jumps to relative error {self.float32_first_bad[0]:.2f} from cond(F) = "
             f"{self.float32_first_bad[1]:.1e}." if self.float32_first_bad else "- `pinv` in float32 stayed below 0.1."),
        ])


def sweep_findings(sweep: Sequence[Mapping], exponent_labels=("pinv", "lstsq", "svd", "cholesky"),
                   bad: float = 1e-2, float32_bad: float = 1e-1) -> SweepFindings:
    """The sweep's exponents, the Cholesky fits that went wrong silently (error above ``bad``) or
    refused, the rank-2 fit's error range and the first float32 ``pinv`` fit above ``float32_bad``."""
    chol = [r for r in sweep if r["label"] == "cholesky"]
    r2 = [r for r in sweep if r["label"] == "svd, rank 2"]
    f32 = next((r for r in sweep if r["label"] == "pinv, float32" and r["error"] > float32_bad), None)
    return SweepFindings(
        exponents={lab: exponent(sweep, lab) for lab in exponent_labels},
        cholesky_bad=[r["cond_F"] for r in chol if r["failed"] is None and r["error"] > bad],
        cholesky_total=len(chol),
        cholesky_refused=[r["cond_F"] for r in chol if r["failed"] is not None],
        rank2_error=(min(r["error"] for r in r2), max(r["error"] for r in r2)),
        rank2_min_residual=min(r["residual"] for r in r2),
        float32_first_bad=(f32["error"], f32["cond_F"]) if f32 else None)


def condition_rows(sweep: Sequence[Mapping], label: str = "pinv", every: int = 4) -> list[dict]:
    """Every ``every``-th sampling interval of the sweep: cond(F), its square and cond(F F^T) as
    formed in float64 (one row per interval, from the fits of ``label``)."""
    return [{"Δt": r["dt"], "cond(F)": r["cond_F"], "cond(F)²": r["cond_F"] ** 2,
             "cond of F Fᵀ as formed in float64": r["cond_gram"]}
            for r in sweep if r["label"] == label][::every]


# -- spectra of saved recordings -------------------------------------------------------------------
def _singular_value_panel(ax, groups, colours, alpha, lw, marker=None):
    """Each block's relative singular values (thin) and their median per group (thick)."""
    for g, colour in zip(groups, colours):
        S = np.array(g["relative_singular_values"])                   # (blocks, r), each row descending
        idx = np.arange(1, S.shape[1] + 1)
        ax.plot(idx, S.T, color=colour, alpha=alpha, lw=lw)
        ax.plot(idx, np.median(S, axis=0), color=colour, lw=2, label=f"{g['n_blocks']} blocks of {g['block_size']} (median)",
                **({"marker": marker, "ms": 3} if marker else {}))
    ax.set_yscale("log")
    ax.set_xlabel("index of the singular value")
    ax.set_ylabel("singular value / largest (dimensionless)")


def mnist_spectra_figure(singular_values: Sequence[Mapping], eigenvalues_by_fit: Mapping[str, Mapping]):
    """Left: the relative singular values of one MNIST network's blocks (the saved run's
    ``singular_values_init0``: per group ``relative_singular_values`` (blocks, r), ``n_blocks``,
    ``block_size``, ``cutoff_float32``, ``cutoff_float64``) against the two resolutions of the
    first group. Right: the eigenvalues of its operators with each fit (``eigenvalues_init0``:
    fit -> ``{"re": [...], "im": [...]}``), with the unit circle."""
    fig = Figure(figsize=(12, 4.4))
    axes = fig.subplots(1, 2)
    _singular_value_panel(axes[0], singular_values, ["tab:blue", "tab:purple"], alpha=0.12, lw=0.7)
    g0 = singular_values[0]
    for key, ls, label in (("cutoff_float32", "--", "float32 resolution (the default)"),
                           ("cutoff_float64", ":", "float64 resolution (the paper's cutoff)")):
        axes[0].axhline(g0[key], color="black", ls=ls, lw=1, label=f"{label}: {g0[key]:.1e}")
    axes[0].set_title("Snapshot matrices of one MNIST network")
    axes[0].legend(fontsize=8)
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    axes[1].plot(circle.real, circle.imag, color="grey", lw=0.8)
    for name, colour, size in (("paper", "tab:red", 10), ("default", "tab:blue", 6), ("default-stabilised", "tab:orange", 3)):
        e = eigenvalues_by_fit[name]
        lam = np.array(e["re"]) + 1j * np.array(e["im"])
        axes[1].scatter(lam.real, lam.imag, s=size, color=colour,
                        label=f"{name}: {int((np.abs(lam) > 1).sum())} outside, max |λ| {np.abs(lam).max():.5f}")
    n_operators = sum(g["n_blocks"] for g in singular_values)
    axes[1].set_xlim(-0.6, 1.3)
    axes[1].set_ylim(-0.9, 0.9)
    axes[1].set_aspect("equal")
    axes[1].set_xlabel("Re λ")
    axes[1].set_ylabel("Im λ")
    axes[1].set_title(f"Eigenvalues of its {n_operators} operators")
    axes[1].legend(fontsize=7.5, loc="lower left")
    fig.tight_layout()
    return fig


def de_spectra_runs(de: Mapping | None, optimizer: str = "adadelta") -> dict:
    """dtype -> the saved DE-solver run's ``singular_values_init0`` groups of ``optimizer``
    (only the dtypes that kept them; empty without a run)."""
    runs = {d: part.get("singular_values_init0", {}).get(optimizer)
            for d, part in ((de or {}).get("by_dtype") or {}).items()}
    return {d: g for d, g in runs.items() if g}


def de_spectra_figure(runs: Mapping[str, Sequence[Mapping]], optimizer: str = "Adadelta"):
    """One panel per training dtype of :func:`de_spectra_runs`: the blocks' relative singular
    values and the two resolutions of the largest block."""
    fig = Figure(figsize=(6 * len(runs), 4.2))
    axes = fig.subplots(1, len(runs), squeeze=False)
    for ax, (d, groups) in zip(axes[0], runs.items()):
        _singular_value_panel(ax, groups, ["tab:green", "tab:blue", "tab:purple"], alpha=0.25, lw=0.8, marker="o")
        big = max(groups, key=lambda g: g["block_size"])
        ax.axhline(big["cutoff_float32"], color="black", ls="--", lw=1, label=f"float32 resolution: {big['cutoff_float32']:.1e}")
        ax.axhline(big["cutoff_float64"], color="black", ls=":", lw=1, label=f"float64 resolution: {big['cutoff_float64']:.1e}")
        ax.set_title(f"DE solver, {optimizer}, trained in {d}")
        ax.legend(fontsize=7.5)
    fig.tight_layout()
    return fig


def resolution_counts(group: Mapping) -> dict:
    """Per block of one group of saved singular values: how many the paper's cutoff (float64
    resolution) and the default (float32 resolution) invert, and how many lie between the two.
    Returns ``n_singular`` (per block), the medians ``paper``, ``default``, ``between`` and
    ``between_max``."""
    S = np.array(group["relative_singular_values"])
    paper, default = (S > group["cutoff_float64"]).sum(1), (S > group["cutoff_float32"]).sum(1)
    between = ((S > group["cutoff_float64"]) & (S <= group["cutoff_float32"])).sum(1)
    return {"n_singular": S.shape[1], "paper": int(np.median(paper)), "default": int(np.median(default)),
            "between": int(np.median(between)), "between_max": int(between.max())}


# -- jumps, PyDMD, the closing checks -------------------------------------------------------------
def jump_row(T: int, truth, stepwise, by_eig, by_power) -> dict:
    """A row of the jump table: ``T`` steps by ``path`` and by ``jump`` (eig, power) against the
    true lifted state ``truth``, and the two routes against each other."""
    return {"T": T, "‖w(t2+T)‖": float(truth.norm()), "path vs truth": relative_distance(stepwise, truth),
            "jump (eig) vs truth": relative_distance(by_eig, truth),
            "jump (power) vs truth": relative_distance(by_power, truth),
            "jump (eig) vs path": relative_distance(by_eig, stepwise)}


def pydmd_rows(cases: Sequence[tuple], fits: Sequence[tuple]) -> list[dict]:
    """One row per case ``(name, snapshots, exact eigenvalues or None)`` with its fits
    ``(PyDMD's result, its condition warnings, our operator, cond(snapshots))``: the operators'
    and eigenvalues' differences, and each one's eigenvalue error where the exact ones are known."""
    rows = []
    for (name, _, exact), (out, expected, ours, cond) in zip(cases, fits):
        ours_eigs = eigenvalues(ours).numpy()
        row = {"snapshots": name, "cond(snapshots)": cond, "PyDMD condition warning": len(expected) > 0,
               "rel. operator difference": relative_error(out["operator"], ours),
               "max eigenvalue difference": float(match_eigenvalues(out["eigs"], ours_eigs)[1].max())}
        row["max eig. error vs exact (ours / PyDMD)"] = (
            f"{match_eigenvalues(ours_eigs, exact)[1].max():.1e} / {match_eigenvalues(out['eigs'], exact)[1].max():.1e}"
            if exact is not None else "no exact operator on [x, y]")
        rows.append(row)
    return rows


def verdict(ok: bool) -> str:
    """The closing table's verdict word."""
    return "agrees" if ok else "does not agree"


def check_rows(eig_err, err_id, err_lift, fits: Mapping[str, torch.Tensor], exponents: Mapping[str, float],
               pydmd: Sequence[Mapping], reference: str = "pinv") -> list[dict]:
    """The chapter's closing table: each check, what theory says, what we measured and the
    verdict by :data:`RULES`. ``err_*``: relative prediction errors by steps after the window;
    ``fits``: the four methods' operators on the well-conditioned lifted window; ``exponents``:
    of the conditioning sweep; ``pydmd``: the rows of :func:`pydmd_rows` (the first two
    well conditioned)."""
    horizon, svd_based = len(err_id) - 1, ["pinv", "lstsq", "svd"]
    agree = max(relative_error(U, fits[reference]) for U in fits.values())
    pydmd_diff = max(r["rel. operator difference"] for r in pydmd[:2])
    return [
        {"check": "eigenvalues λ_x, λ_y, λ_x² from [x, y, x²]", "theory": "exact",
         "ours (ci)": f"max error {eig_err.max():.1e}", "verdict": verdict(EIG_EXACT.holds(eig_err.max()))},
        {"check": f"prediction error of [x, y] after {horizon} steps", "theory": "not closed: O(1) error",
         "ours (ci)": f"{err_id[horizon]:.2f} (lifted: {err_lift[horizon]:.1e})",
         "verdict": verdict(NOT_CLOSED.holds(err_id[horizon]) and TO_ROUNDING.holds(err_lift[horizon]))},
        {"check": "four methods agree, cond(F) ≈ 10", "theory": "to rounding",
         "ours (ci)": f"max rel. distance {agree:.1e}", "verdict": verdict(TO_ROUNDING.holds(agree))},
        {"check": "SVD-based error ∝ cond(F)^p", "theory": "p = 1",
         "ours (ci)": ", ".join(f"{m} {exponents[m]:.2f}" for m in svd_based),
         "verdict": verdict(all(EXPONENT_MATCH.holds(abs(exponents[m] - 1)) for m in svd_based))},
        {"check": "normal-equations error ∝ cond(F)^p", "theory": "p = 2",
         "ours (ci)": f"cholesky {exponents['cholesky']:.2f}",
         "verdict": verdict(EXPONENT_MATCH.holds(abs(exponents["cholesky"] - 2)))},
        {"check": "PyDMD exact DMD vs finite_section, cond(F) ≈ 10", "theory": "same operator",
         "ours (ci)": f"rel. difference {pydmd_diff:.1e}", "verdict": verdict(TO_ROUNDING.holds(pydmd_diff))},
    ]
