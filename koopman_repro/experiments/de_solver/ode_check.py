"""Does the trained network solve the ODE? The trial solution against ``solve_ivp`` and the drift
of the energy, at the end of training and for the original solver's own settings."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.metrics import finite_median

from .network import Oscillator, time_grid
from .rounding import rounded
from .training import init_seeds, inits, log_steps, train

if TYPE_CHECKING:
    from . import Config


def reference_solution(t: np.ndarray, x0=1.3, p0=1.0, lam=1.0, tol=1e-12):
    """``x(t), p(t)`` of the oscillator by ``scipy.integrate.solve_ivp`` (DOP853, rtol = atol = tol)."""
    from scipy.integrate import solve_ivp
    t = np.asarray(t, dtype=float)
    sol = solve_ivp(lambda _, u: [u[1], -u[0] - lam * u[0] ** 3], (0.0, float(t.max())), [x0, p0],
                    method="DOP853", rtol=tol, atol=tol, t_eval=t)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y[0], sol.y[1]


def energy(x, p, lam=1.0):
    """``H = p^2/2 + x^2/2 + lam x^4/4`` (elementwise)."""
    return 0.5 * p ** 2 + 0.5 * x ** 2 + lam * x ** 4 / 4


def trial_errors(problem: Oscillator, theta: torch.Tensor, cfg: Config):
    """The trial solutions of the networks ``theta`` ``(M, D)`` on ``ode_points`` times in
    ``[0, t_max]`` against the reference: ``(t, x_ref, p_ref, x, p, max_abs_error (M,),
    energy_drift (M,))``, the error the larger of those in ``x`` and ``p``, the drift the largest
    ``|H(x, p) - H(x0, p0)|``."""
    t_fine = np.linspace(0.0, cfg.t_max, cfg.ode_points)
    x_ref, p_ref = reference_solution(t_fine, cfg.x0, cfg.p0, cfg.lam, cfg.ode_tol)
    fine = problem.to(torch.float64)
    fine.set_times(torch.tensor(t_fine, dtype=torch.float64))
    x_net, p_net = (a.numpy() for a in fine.solution(theta.to(torch.float64)))
    E0 = float(energy(cfg.x0, cfg.p0, cfg.lam))
    max_err = np.maximum(np.abs(x_net - x_ref).max(1), np.abs(p_net - p_ref).max(1))
    drift = np.abs(energy(x_net, p_net, cfg.lam) - E0).max(1)
    return t_fine, x_ref, p_ref, x_net, p_net, max_err, drift


def ode_part(problem: Oscillator, theta: torch.Tensor, losses: torch.Tensor, name: str, cfg: Config,
             dtype_name: str) -> dict:
    """The ODE check of optimizer ``name``'s networks ``theta`` ``(E, D)`` at the end of training
    (``losses`` ``(n_steps + 1, E)``): its ``ode_check`` row (medians, best and worst over its networks),
    every network's error and energy drift, and its trial solutions ``x``, ``p`` ``(E, n)`` on every
    ``stride``-th time of the fine grid (:func:`ode_check_rows` joins the optimizers)."""
    _, _, _, x_net, p_net, max_err, drift = trial_errors(problem, theta, cfg)
    row = {"train_dtype": dtype_name, "optimizer": name, "median_max_abs_error": finite_median(max_err),
           "best_max_abs_error": float(max_err.min()), "worst_max_abs_error": float(max_err.max()),
           "median_energy_drift": finite_median(drift), "final_loss_median": finite_median(losses[-1].tolist())}
    stride = _stride(cfg)
    return {"row": row, "max_abs_error": max_err.tolist(), "energy_drift": drift.tolist(),
            "x": x_net[:, ::stride], "p": p_net[:, ::stride]}


def _stride(cfg: Config) -> int:
    return max(1, cfg.ode_points // 250)


def ode_check_rows(parts: list[dict], names, cfg: Config) -> tuple[list[dict], dict]:
    """``(rows, curves)`` of the ODE check at the end of training from every optimizer's
    :func:`ode_part` (in the order of ``names``): one ``ode_check`` row per optimizer, and the reference,
    the best network's solution and every network's error and energy drift."""
    ids = inits(cfg)
    E = len(ids)
    t_fine = np.linspace(0.0, cfg.t_max, cfg.ode_points)
    x_ref, p_ref = reference_solution(t_fine, cfg.x0, cfg.p0, cfg.lam, cfg.ode_tol)
    max_err = np.array([e for p in parts for e in p["max_abs_error"]], dtype=float)
    best = int(np.argmin(max_err))
    part, e = parts[best // E], best % E
    E0 = float(energy(cfg.x0, cfg.p0, cfg.lam))
    stride = _stride(cfg)
    ode = {"t": rounded(t_fine[::stride]), "x_ref": rounded(x_ref[::stride]), "p_ref": rounded(p_ref[::stride]),
           "best_network": {"optimizer": names[best // E], "init": ids[e], "x": rounded(part["x"][e]),
                            "p": rounded(part["p"][e])},
           "energy0": E0, "reference_energy_drift": float(np.abs(energy(x_ref, p_ref, cfg.lam) - E0).max()),
           "max_abs_error": max_err.tolist(), "energy_drift": [d for p in parts for d in p["energy_drift"]]}
    return [p["row"] for p in parts], ode


def solver_check(cfg: Config) -> dict:
    """The solver code at the original solver's own settings (``check_*`` fields: 1:50:50:2, sin,
    Adam, constant learning rate): loss curve and max error against ``solve_ivp``."""
    sizes = (1,) + tuple(cfg.check_hidden) + (2,)
    t = time_grid(cfg.n_points, cfg.t_max, cfg.t_one_quirk, torch.float64)
    problem = Oscillator(sizes, cfg.check_activation, t, cfg.x0, cfg.p0, cfg.lam)
    seeds = init_seeds(cfg.seed, "solver check", range(cfg.check_inits))  # its own networks, not the main ones
    theta0 = EnsembleMLP(sizes, "sigmoid", cfg.check_inits, dtype=torch.float64, seeds=seeds).theta.detach()
    tr = train(problem, theta0, ["adam"], cfg, cfg.check_steps, progress=False, lr_fn=lambda _: cfg.check_lr)
    _, _, _, x, p, err, drift = trial_errors(problem, tr.theta, cfg)
    ls = log_steps(cfg.check_steps, 100)
    stride = max(1, cfg.ode_points // 250)
    b = int(np.argmin(err))
    return {"sizes": sizes, "activation": cfg.check_activation, "lr": cfg.check_lr, "steps": cfg.check_steps,
            "final_loss": tr.losses[-1].tolist(), "max_abs_error": err.tolist(), "energy_drift": drift.tolist(),
            "curve_steps": ls, "curve": rounded(tr.losses[ls].T),
            "x": rounded(x[b, ::stride]), "p": rounded(p[b, ::stride]), "seconds": tr.seconds}
