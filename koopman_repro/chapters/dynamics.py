"""The chapter "Training as a dynamical system" (``notebooks/dynamics.md``): figures and rows.

Every trajectory, flow, Jacobian and fit comes from :mod:`koopman_lib.dynamics`; this module
draws them and turns measurements into the rows of the chapter's closing table, each
``{"quantity": ..., "theory": ..., "measured": ...}``. Figures are matplotlib Figures
not registered with pyplot (a notebook displays one by returning it).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
import torch

from koopman_lib import dynamics as dy

#: the figures this chapter's page draws (tests/book/test_browser.py counts them on the page)
FIGURES = 9

F64 = dict(dtype=torch.float64)


# -- measurements ------------------------------------------------------------------------------
def observed_order(steps, errors) -> float:
    """Slope of log(error) against log(step): the observed order of convergence."""
    return float(np.polyfit(np.log(steps), np.log(errors), 1)[0])


def order_rows(steps, errors: Mapping[str, Sequence[float]], theory: float = 1.0) -> list[dict]:
    """One row per curve of ``errors`` (name -> error at each of ``steps``): its observed order."""
    return [{"quantity": f"order of {name}", "theory": theory, "measured": observed_order(steps, e)}
            for name, e in errors.items()]


def contraction_rate(distances, start: int, end: int) -> float:
    """Mean contraction per step of ``distances`` between steps ``start`` and ``end``."""
    return float((distances[end] / distances[start]) ** (1 / (end - start)))


# -- the three loss surfaces -------------------------------------------------------------------
def contour(ax, loss: dy.Loss2D, xlim, ylim, levels, log: bool = False):
    """Filled contours of ``loss`` on a 300 x 300 grid (of log10 of the loss if ``log``), axes
    labelled as weights."""
    X, Y = np.meshgrid(np.linspace(*xlim, 300), np.linspace(*ylim, 300))
    Z = loss(torch.from_numpy(np.stack([X, Y], -1))).numpy()
    Z = np.log10(Z + 1e-3) if log else Z
    cs = ax.contourf(X, Y, Z, levels=levels, cmap="Greys_r", alpha=0.55)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("weight $w_1$")
    ax.set_ylabel("weight $w_2$")
    return cs


def _quadratic_panel(ax, quad: dy.Quadratic, x0=(-2.5, 1.5), eta=0.07, eta_hb=0.02, beta=0.6, T=60):
    """GD zig-zags across the steep direction; the heavy ball follows its damped ODE."""
    x0 = torch.tensor(x0, **F64)
    h, gamma = eta_hb ** 0.5, (1 - beta) / eta_hb ** 0.5   # heavy ball = damped ODE with step h
    contour(ax, quad, (-3, 3), (-2.2, 2.2), 20)
    p_gd, p_hb = dy.gd(quad, x0, eta, T), dy.heavy_ball(quad, x0, eta_hb, beta, T)
    flow = dy.gradient_flow(quad, x0, np.linspace(0, T * eta, 400))
    hb_flow = dy.heavy_ball_flow(quad, x0, gamma, np.linspace(0, T * h, 400))
    ax.plot(*p_gd.T, "o-", ms=3, lw=0.8, color="tab:blue", label=f"GD, η = {eta}")
    ax.plot(*flow.T, color="navy", lw=2.5, alpha=0.7, label="gradient flow")
    ax.plot(*p_hb.T, "s-", ms=3, lw=0.8, color="tab:red", label=f"heavy ball, η = {eta_hb}, β = {beta}")
    ax.plot(*hb_flow[:, :2].T, color="darkred", lw=2.5, alpha=0.7, label=f"damped ODE, γ = {gamma:.2f}")
    ax.set_title("quadratic, condition number 25")
    ax.legend(fontsize=8, loc="lower right")


def _rosenbrock_panel(ax, rosen: dy.Rosenbrock, p_gd, eta: float, beta=0.9, T_hb=4000):
    """A curved valley: every method reaches its floor fast and then crawls along it."""
    x0, T = p_gd[0], len(p_gd) - 1
    contour(ax, rosen, (-1.6, 1.6), (-0.6, 1.6), 25, log=True)
    p_hb = dy.heavy_ball(rosen, x0, eta, beta, T_hb)
    flow = dy.gradient_flow(rosen, x0, np.linspace(0, T * eta, 400), rtol=1e-8, atol=1e-10)
    ax.plot(*p_gd[::200].T, "o", ms=3, color="tab:blue", label=f"GD, η = {eta} (every 200th step)")
    ax.plot(*flow.T, color="tab:blue", lw=2, alpha=0.5, label="gradient flow")
    ax.plot(*p_hb[::40].T, "s", ms=3, color="tab:red", label=f"heavy ball, β = {beta} (every 40th)")
    ax.plot(*rosen.minima.T, "*", ms=14, color="gold", mec="black", label="minimum")
    ax.set_title("Rosenbrock, b = 100 (contours of log10 f)")
    ax.legend(fontsize=8, loc="lower right")


def _double_well_panel(ax, well: dy.DoubleWell, eta=0.1, T=80):
    """Where GD ends depends on where it starts: paths coloured by the minimum they reach."""
    contour(ax, well, (-1.8, 1.8), (-1.3, 1.3), 20)
    for y0 in np.linspace(-1.1, 1.1, 7):
        for x_start in (-0.05, 0.05, 1.6, -1.6):
            p = dy.gd(well, torch.tensor([x_start, y0], **F64), eta, T)
            ax.plot(*p.T, "-", lw=1, color="tab:blue" if float(p[-1, 0]) > 0 else "tab:purple")
    ax.plot(*well.minima.T, "*", ms=14, color="gold", mec="black", label="minima")
    ax.plot([0], [0], "x", ms=10, color="black", label="saddle")
    ax.set_title("double well: GD paths coloured by the minimum reached")
    ax.legend(fontsize=8, loc="lower right")


def surfaces_figure(quad: dy.Quadratic, rosen: dy.Rosenbrock, well: dy.DoubleWell, rosen_gd, rosen_eta: float):
    """GD, heavy ball and their ODEs on the three surfaces (one panel each). ``rosen_gd`` is the
    long GD path on ``rosen`` (``(steps + 1, 2)``, learning rate ``rosen_eta``) that the chapter
    fits again later; the other runs are computed here."""
    fig = Figure(figsize=(16, 5))
    axes = fig.subplots(1, 3)
    _quadratic_panel(axes[0], quad)
    _rosenbrock_panel(axes[1], rosen, rosen_gd, rosen_eta)
    _double_well_panel(axes[2], well)
    fig.tight_layout()
    return fig


# -- GD and the heavy ball against their ODEs ----------------------------------------------------
def convergence_figure(steps, errors: Mapping[str, Sequence[float]], gamma: float, t_end: float):
    """Distance to the ODE solution at ``t_end`` against the step size, log-log, with a slope-1
    guide. ``errors``: the chapter's three curves, keyed ``"GD → gradient flow (NAME)"`` for the
    quadratic and the double well and ``"heavy ball → damped ODE (double well)"``."""
    steps = np.asarray(steps)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name in ("quadratic", "double well"):
        ax.loglog(steps, errors[f"GD → gradient flow ({name})"], "o-", label=f"GD vs gradient flow, {name}")
    ax.loglog(steps, errors["heavy ball → damped ODE (double well)"], "s-",
              label=f"heavy ball (η = Δt², β = 1 − {gamma}Δt) vs damped ODE, double well")
    ax.loglog(steps, 0.5 * steps, "k:", label="slope 1")
    ax.xaxis.set_minor_formatter(NullFormatter())   # the major ticks suffice; minor labels overlap
    ax.set_xlabel("step size Δt (GD: η = Δt)")
    ax.set_ylabel(f"distance to the ODE solution at t = {t_end}")
    ax.set_title("Optimizers converge to their ODEs at first order")
    ax.legend(fontsize=8)
    return fig


# -- the linearisation at a minimum -------------------------------------------------------------
def contraction_runs(quad: dy.Quadratic, x0, etas=(0.02, 0.05, 0.075), eta_hb=0.02, beta=0.6,
                     steps: int = 80) -> list[dict]:
    """GD at each of ``etas`` and the heavy ball at ``(eta_hb, beta)`` from ``x0`` on ``quad``:
    per run its ``name``, ``method`` (``"GD"`` or ``"heavy ball"``), ``distance`` to the minimum after every step (``(steps + 1,)``) and
    ``rho``, the spectral radius of the map's Jacobian at the minimum."""
    x0, xs = torch.as_tensor(x0, **F64), quad.minima[0]
    runs = [{"name": f"GD, η = {eta}", "method": "GD", "distance": (dy.gd(quad, x0, eta, steps) - xs).norm(dim=-1).numpy(),
             "rho": float(dy.sorted_eigenvalues(dy.gd_jacobian(quad, xs, eta)).abs().max())} for eta in etas]
    hb = dy.heavy_ball(quad, x0, eta_hb, beta, steps)
    runs.append({"name": f"heavy ball, η = {eta_hb}, β = {beta}", "method": "heavy ball", "distance": (hb - xs).norm(dim=-1).numpy(),
                 "rho": float(dy.sorted_eigenvalues(dy.heavy_ball_jacobian(quad, xs, eta_hb, beta)).abs().max())})
    return runs


def contraction_rows(runs: Sequence[dict], start: int = 40) -> list[dict]:
    """Per run of :func:`contraction_runs`: the measured contraction per step over its last steps
    (from ``start``) against ``rho(J)``."""
    return [{"quantity": f"contraction per step on the quadratic, {r['name']}", "theory": r["rho"],
             "measured": contraction_rate(r["distance"], start, len(r["distance"]) - 1)} for r in runs]


def _jacobian_eigenvalue_panel(ax, quad, hessian_eigenvalues):
    etas = np.linspace(0.0, 0.1, 201)
    for lam in hessian_eigenvalues:
        ax.plot(etas, 1 - etas * lam, label=f"1 − η h, Hessian eigenvalue h = {lam:.0f}")
    ax.axhspan(-1, 1, color="tab:green", alpha=0.1, label="|eigenvalue| < 1: converges")
    ax.axvline(dy.max_stable_eta(quad.H), color="black", ls=":", label="η = 2 / h_max")
    ax.set_ylim(-2, 1.2)
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("eigenvalue of J = I − ηH")
    ax.set_title("GD Jacobian at the minimum (quadratic)")
    ax.legend(fontsize=8)


def _rate_panel(ax, runs, through: int = 40):
    for r in runs:
        d, t = r["distance"], np.arange(len(r["distance"]))
        line, = ax.semilogy(d, label=r["name"])
        guide = "∝ ρ(J)^t, ρ = {:.3f}" if r["method"] == "GD" else "ρ = {:.3f}"
        ax.semilogy(d[through] * r["rho"] ** (t - float(through)), ":", color=line.get_color(),
                    label=guide.format(r["rho"]))
    ax.set_xlabel("step t")
    ax.set_ylabel("distance to the minimum")
    ax.set_title("Convergence at the rate ρ(J)")
    ax.legend(fontsize=7, ncol=2)


def _heavy_ball_spectrum_panel(ax, quad, eta=0.02, betas=(0.0, 0.3, 0.6, 0.9)):
    """Eigenvalues of the heavy-ball Jacobian for each momentum, with the circle of radius
    ``sqrt(beta)`` on which the complex (underdamped) pairs sit; the legend sits outside the
    axes, off the origin where the ``beta = 0`` eigenvalues of the ``x_{t-1}`` half lie."""
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 200))
    ax.plot(circle.real, circle.imag, color="grey", lw=0.8, label="unit circle")
    for b in betas:
        lam = dy.sorted_eigenvalues(dy.heavy_ball_jacobian(quad, quad.minima[0], eta, b)).numpy()
        dots, = ax.plot(lam.real, lam.imag, "o", label=f"β = {b}")
        if b > 0:
            ax.plot(np.sqrt(b) * circle.real, np.sqrt(b) * circle.imag, "--", lw=0.8,
                    color=dots.get_color(), label=f"|λ| = √β = {np.sqrt(b):.2f}")
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(f"Heavy-ball Jacobian eigenvalues (η = {eta})")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))


def jacobian_figure(quad: dy.Quadratic, hessian_eigenvalues, runs: Sequence[dict]):
    """Three panels: the GD Jacobian's eigenvalues against the learning rate, the runs of
    :func:`contraction_runs` with their predicted rate ``rho(J)^t`` (dotted, drawn through each
    run's distance at step 40, not fitted), and the heavy-ball Jacobian's eigenvalues for four
    momenta (``eta`` of the heavy-ball run)."""
    fig = Figure(figsize=(16, 4.5))
    axes = fig.subplots(1, 3)
    _jacobian_eigenvalue_panel(axes[0], quad, hessian_eigenvalues)
    _rate_panel(axes[1], runs)
    _heavy_ball_spectrum_panel(axes[2], quad)
    fig.tight_layout()
    return fig


# -- fits near a minimum ---------------------------------------------------------------------------
def linearisation_rows(radii, err_centred, err_raw, n_order: int = 6) -> list[dict]:
    """Eigenvalue errors of the centred and the raw fit at the smallest start distance, and the
    order in ``r`` of the centred fit's error over the ``n_order`` smallest ``radii``."""
    r0 = f"{radii[0]:.0e}".replace("e-0", "e-")   # 1e-4, not 1e-04
    return [{"quantity": f"eigenvalue error of the centred fit, r = {r0} (tilted double well)",
             "theory": 0.0, "measured": err_centred[0]},
            {"quantity": "order of that error in r", "theory": 1.0,
             "measured": observed_order(radii[:n_order], err_centred[:n_order])},
            {"quantity": f"eigenvalue error of the raw fit, r = {r0}", "theory": 0.0,
             "measured": err_raw[0]}]


def window_rows(starts, distances, fitted: Mapping[int, Mapping[str, Sequence[float]]], slow_mode: float) -> list[dict]:
    """One row per fit window: its start, the distance to the minimum there, the real parts of
    the eigenvalues of each fit (``fitted[start][kind]``, two each) and the slow mode squared."""
    return [{"window start": s, "distance to (1, 1)": distances[s],
             **{f"{kind} fit: λ{i + 1}": f"{lam[i]:.6f}" for kind, lam in fitted[s].items() for i in range(2)},
             "slow mode squared": f"{slow_mode ** 2:.6f}"} for s in starts]


def fit_errors_figure(radii, errors: Mapping[str, Sequence[float]], eta: float, steps: int,
                      distances, starts, window: int):
    """Left: max eigenvalue error of each fit (``errors``: ``centred``, ``affine``, ``raw``)
    against the start distance ``r``. Right: the long Rosenbrock run's distance to the minimum
    and its fit windows (``window`` steps from each of ``starts``)."""
    fig = Figure(figsize=(14, 4.5))
    axes = fig.subplots(1, 2)
    ax = axes[0]
    ax.loglog(radii, errors["centred"], "o-", label="centred: x − x*")
    ax.loglog(radii, errors["affine"], "s--", label="affine: [x; 1] (constant eigenvalue dropped)")
    ax.loglog(radii, errors["raw"], "^-", label="raw x (the paper's observables)")
    ax.loglog(radii, radii, "k:", label="slope 1")
    ax.set_xlabel("starting distance r from the minimum")
    ax.set_ylabel("max |fitted eigenvalue − eig(I − ηH)|")
    ax.set_title(f"Tilted double well: fitted vs linearised eigenvalues (η = {eta}, {steps} steps)")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.semilogy(distances, color="tab:blue", label="distance to the minimum")
    for s in starts:
        ax.axvspan(s, s + window, color="tab:orange", alpha=0.6)
    ax.set_xlabel("GD step")
    ax.set_ylabel("distance to (1, 1)")
    ax.set_title(f"The long run from (−1.2, 1) and the {window}-step fit windows (orange)")
    ax.legend()
    fig.tight_layout()
    return fig


def window_eigenvalues_figure(starts, fitted: Mapping[int, Mapping[str, Sequence[float]]], slow_mode: float,
                              fast_mode: float, window: int):
    """The fitted eigenvalues of each window against the window's start: ``1 - Re λ`` on a log
    axis (open markers where ``Re λ > 1``, i.e. plotted at ``|1 - Re λ|``), with the slow mode
    ``1 - η h_min``, its square, and the fast mode ``1 - η h_max`` that no window contains.
    ``fitted[start][kind]``: real parts of the two eigenvalues of each fit (``centred``, ``raw``)."""
    fig = Figure(figsize=(9, 4.8))
    ax = fig.subplots()
    starts = np.asarray(starts)
    styles = {"centred": ("o", "tab:blue", "centred fit: w − w*"), "raw": ("^", "tab:orange", "raw fit: w")}
    for kind, (marker, color, label) in styles.items():
        gap = np.array([1 - np.asarray(fitted[s][kind]) for s in starts])      # (windows, 2)
        for i in range(gap.shape[1]):
            pos = gap[:, i] > 0
            ax.semilogy(starts[pos], gap[pos, i], marker, color=color, ms=7, label=label if i == 0 else None)
            ax.semilogy(starts[~pos], np.maximum(-gap[~pos, i], 1e-12), marker, color=color, mfc="none", ms=7,
                        label=f"{label}, Re λ > 1 (at |1 − Re λ|)" if i == 0 and (~pos).any() else None)
    for value, style, name in ((slow_mode, "-", "slow mode 1 − η h_min"), (slow_mode ** 2, "--", "slow mode squared"),
                               (fast_mode, ":", f"fast mode 1 − η h_max = {fast_mode:.2f}, in no window")):
        ax.axhline(1 - value, color="black", ls=style, lw=1, label=name)
    ax.set_xlabel(f"start of the {window}-step window (GD step)")
    ax.set_ylabel("1 − Re λ of the fitted eigenvalues")
    ax.set_title("Rosenbrock: what each window's fit sees")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


# -- the slow manifold -------------------------------------------------------------------------------
def slow_manifold_figure(system, starts, main: tuple, t1: int, k: int, fit_starts, fitted: Mapping[str, Sequence]):
    """Left: phase portrait of ``system`` (:class:`koopman_lib.toy.SlowManifoldMap`): the
    trajectories from ``starts`` (``(x0, y0)`` pairs, ``t1 + k`` steps), the invariant parabola
    ``y = b x^2`` and the fitted window, steps ``t1 .. t1 + k - 1`` of the trajectory from
    ``main``. Right: the eigenvalues of the fits on windows of ``k`` steps started at each of
    ``fit_starts`` (``fitted[name]``: ``(len(fit_starts), n)`` real parts per observables) against
    the start, with the system's Koopman eigenvalues."""
    fig = Figure(figsize=(12, 4.8))
    axes = fig.subplots(1, 2)
    ax, b = axes[0], system.manifold_slope
    for x0, y0 in starts:
        tr = system.trajectory(x0, y0, t1 + k).numpy()
        ax.plot(*tr, ".-", lw=0.6, ms=4, color="tab:blue", alpha=0.7)
        ax.plot([x0], [y0], "o", ms=5, color="tab:blue")
    xs = np.linspace(-2.3, 2.3, 200)
    ax.plot(xs, b * xs ** 2, color="black", lw=1.5, label=f"invariant parabola y = b x², b = {b:.3f}")
    win = system.trajectory(*main, t1 + k).numpy()[:, t1:]
    ax.plot(*win, "-", color="tab:orange", lw=6, alpha=0.8, label=f"fit window: steps {t1}–{t1 + k - 1} from {main}")
    ax.plot([], [], ".-", color="tab:blue", label="trajectories (one dot per step, start: large dot)")
    ax.set_xlabel("x (state, no unit)")
    ax.set_ylabel("y (state, no unit)")
    ax.set_title("Fast approach to the parabola, slow motion along it")
    ax.legend(fontsize=7, loc="upper center")
    ax = axes[1]
    for (name, lam), marker in zip(fitted.items(), ("o", "x")):
        lam = np.asarray(lam)
        for i in range(lam.shape[1]):
            ax.plot(fit_starts, lam[:, i], marker, ms=6, color="tab:green" if marker == "o" else "tab:purple",
                    label=name if i == 0 else None)
    for value, style, name in ((system.alpha, "-", "$e^{\\mu\\Delta t}$ (along)"),
                               (system.alpha ** 2, "--", "$e^{2\\mu\\Delta t}$ (along, squared)"),
                               (system.beta, ":", "$e^{\\nu\\Delta t}$ (towards the parabola)")):
        ax.axhline(value, color="black", ls=style, lw=1, label=name)
    ax.axvline(t1, color="tab:orange", lw=2, alpha=0.6, label="start of the window on the left")
    ax.set_xlabel(f"start of the {k}-step window (step)")
    ax.set_ylabel("fitted eigenvalue (real part)")
    ax.set_title("The fits see the modes the window excites")
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig


# -- momentum: the state needs the previous step --------------------------------------------------
def heavy_ball_fit_figure(steps, errors: Mapping[str, Sequence[float]], eigenvalues: Mapping[str, Sequence[complex]],
                          beta: float):
    """Left: relative prediction error of each fit (``errors[name]``, one value per entry of
    ``steps`` after the fit window), log axis floored at 1e-17. Right: the eigenvalues
    (``eigenvalues[name]``, complex) with the unit circle and the circle ``|λ| = sqrt(beta)``."""
    fig = Figure(figsize=(12, 4.6))
    axes = fig.subplots(1, 2)
    markers = ("s", "o", "x")
    for (name, e), m in zip(errors.items(), markers):
        axes[0].semilogy(steps, np.maximum(np.asarray(e), 1e-17), m + "-", ms=3, label=name)
    axes[0].set_xlabel("steps predicted after the fit window")
    axes[0].set_ylabel("relative error ‖prediction − heavy ball‖ / ‖heavy ball‖")
    axes[0].set_title("Prediction by iterating each fitted operator")
    axes[0].legend(fontsize=8)
    ax, circle = axes[1], np.exp(1j * np.linspace(0, 2 * np.pi, 200))
    ax.plot(circle.real, circle.imag, color="grey", lw=0.8, label="unit circle")
    ax.plot(np.sqrt(beta) * circle.real, np.sqrt(beta) * circle.imag, "--", color="grey", lw=0.8,
            label=f"|λ| = √β = {np.sqrt(beta):.3f}")
    for (name, lam), m, size in zip(eigenvalues.items(), markers, (9, 7, 11)):
        lam = np.asarray(lam)
        ax.plot(lam.real, lam.imag, m, ms=size, mfc="none", mew=1.5, label=f"{name} ({len(lam)})")
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title("Eigenvalues (how many: in brackets)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


def heavy_ball_fit_rows(errors: Mapping[str, Sequence[float]], exact: str) -> list[dict]:
    """Per fit (``errors[name]``: relative prediction error at each step after the window, step 0
    first): its largest error over the prediction; theory 0 for the fit named ``exact`` (the
    operator on the state the heavy ball is a map of), "> 0" for the others."""
    return [{"quantity": f"heavy ball on the quadratic, {name}: largest relative error over "
             f"{len(e) - 1} predicted steps", "theory": 0.0 if name == exact else "> 0 (2 eigenvalues for 4 modes)",
             "measured": float(np.max(e))} for name, e in errors.items()]


def zigzags(path, direction) -> bool:
    """Whether the coordinate of ``path`` ``(steps + 1, 2)`` along ``direction`` changes sign at
    every step (GD's zig-zag across a steep direction)."""
    c = np.asarray(torch.as_tensor(path, **F64) @ torch.as_tensor(direction, **F64))
    return bool((c[1:] * c[:-1] < 0).all())


def zigzag_onset(quad: dy.Quadratic, x0, direction, etas, steps: int = 5) -> float:
    """The smallest learning rate of ``etas`` (increasing) at which GD on ``quad`` from ``x0``
    zig-zags along ``direction`` over ``steps`` steps (``nan`` if none does)."""
    for eta in etas:
        if zigzags(dy.gd(quad, x0, float(eta), steps) - quad.minima[0], direction):
            return float(eta)
    return float("nan")


# -- SGD -------------------------------------------------------------------------------------------
def sgd_figure(quad: dy.Quadratic, paths, eta: float, sigma: float, lags, acf, slow_eigenvalue: float):
    """Left: five SGD paths (``paths`` ``(steps + 1, n_paths, 2)``), GD from the same start and
    every path's end point on the quadratic. Right: the measured autocorrelation ``acf`` at
    ``lags`` along the slow direction against ``(1 - eta lambda)^lag`` of the mean map."""
    fig = Figure(figsize=(13, 4.8))
    axes = fig.subplots(1, 2)
    ax = axes[0]
    contour(ax, quad, (-3, 3), (-2.2, 2.2), 20)
    for i in range(5):
        ax.plot(*paths[:, i].T, lw=0.7, alpha=0.8)
    ax.plot(*dy.gd(quad, paths[0, 0], eta, len(paths) - 1).T, "k-", lw=2, label="GD (σ = 0)")
    ax.scatter(*paths[-1].T, s=4, color="tab:red", label=f"{paths.shape[1]} SGD runs at step {len(paths) - 1}")
    ax.set_title(f"SGD on the quadratic: η = {eta}, gradient noise σ = {sigma}")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(lags, acf, "o", ms=3, label="measured autocorrelation, slow direction")
    ax.plot(lags, (1 - eta * slow_eigenvalue) ** lags, "k-", label="(1 − η h_min)^lag from the mean map")
    ax.set_xlabel("lag (steps)")
    ax.set_ylabel("autocorrelation")
    ax.set_title("Stationary SGD fluctuations decay at the rate of the mean map")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sgd_rows(hessian_eigenvalues, var_theory, var_measured, eta: float, fitted_eigenvalues,
             path_steps: int) -> list[dict]:
    """Stationary variance along each Hessian eigendirection, theory against measured, then the
    eigenvalues of the finite section fitted on one SGD path of ``path_steps`` steps against
    those of the mean map ``1 - eta lambda`` (paired in increasing order)."""
    rows = [{"quantity": f"SGD stationary variance along h = {lam:.0f}", "theory": float(var_theory[i]),
             "measured": float(var_measured[i])} for i, lam in enumerate(hessian_eigenvalues)]
    mean_map = sorted(1 - eta * np.asarray(hessian_eigenvalues))
    return rows + [{"quantity": f"finite section on one SGD path ({path_steps} steps): eigenvalue near {lam:.2f}",
                    "theory": float(lam), "measured": float(fit)} for lam, fit in zip(mean_map, fitted_eigenvalues)]


# -- learning-rate schedules -------------------------------------------------------------------------
def schedule_rows(paths: Mapping[str, torch.Tensor], predicted: Mapping[str, Sequence[float]], minimum,
                  t1: int, t2: int) -> list[dict]:
    """Per schedule: the distance to ``minimum`` at the last step predicted by the operator fitted
    on steps ``t1``..``t2`` (``predicted[name][-1]``) over the true one (``paths[name][-1]``)."""
    minimum = torch.as_tensor(minimum, **F64)
    return [{"quantity": f"fixed operator from steps {t1}-{t2}, distance at step {len(path) - 1} predicted / "
             f"true ({name.split(':')[0]})", "theory": 1.0,
             "measured": float(predicted[name][-1] / float((path[-1] - minimum).norm()))}
            for name, path in paths.items()]


def schedules_figure(schedules: Mapping[str, dy.Schedule], paths: Mapping[str, torch.Tensor],
                     predicted: Mapping[str, Sequence[float]], t1: int, t2: int):
    """Left: each schedule's GD distance to the minimum (the origin; solid) and the fitted
    operator's prediction from ``t2`` (dotted), fit window shaded. Right: the schedules."""
    fig = Figure(figsize=(14, 4.5))
    axes = fig.subplots(1, 2)
    for (name, sched), color in zip(schedules.items(), ("tab:blue", "tab:red", "tab:green")):
        T_total = len(paths[name]) - 1
        axes[0].semilogy(np.arange(T_total + 1), paths[name].norm(dim=-1).numpy(), color=color, label=name)
        axes[0].semilogy(np.arange(t2, T_total + 1), predicted[name], ":", color=color, lw=2)
        axes[1].plot([sched(t) for t in range(T_total)], color=color, label=name)
    axes[0].axvspan(t1, t2, color="grey", alpha=0.2, label="fit window")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("distance to the minimum")
    axes[0].set_title(f"GD (solid) and the fitted operator iterated from step {t2} (dotted)")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("learning rate η_t")
    axes[1].set_title("The schedules")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig
