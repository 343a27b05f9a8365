"""A small nonlinear system with a finite Koopman-invariant subspace, and fit diagnostics.

The continuous system of Brunton et al. (2016),

    x' = mu x,        y' = lam (y - x^2),

sampled every ``dt`` time units is the discrete map (exact, no integration error)

    x_{t+1} = alpha x_t,   y_{t+1} = beta y_t + c x_t^2,
    alpha = exp(mu dt),  beta = exp(lam dt),  c = lam (alpha^2 - beta) / (lam - 2 mu)

(``c = -lam dt alpha^2`` in the resonant case ``lam = 2 mu``). The observables
``z = [x, y, x^2]`` evolve linearly, ``z_{t+1} = K z_t`` with

    K = [[alpha, 0, 0], [0, beta, c], [0, 0, alpha^2]],

so the finite section on ``z`` is exact, while the identity observables ``[x, y]`` are not
closed under the dynamics. States and snapshots follow the library's column convention:
one state per column, time along the last axis.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import torch

from .errors import FitError

from .solvers import finite_section

__all__ = ["SlowManifoldMap", "lift", "relative_error", "compare_fits", "conditioning_sweep",
           "match_eigenvalues", "pydmd_exact_dmd", "PYDMD_CONDITION_WARNING", "stable_operators"]

#: start of the message of the UserWarning PyDMD emits when cond(snapshots) > 1e5
PYDMD_CONDITION_WARNING = "Input data condition number"


@dataclasses.dataclass(frozen=True)
class SlowManifoldMap:
    """``x' = mu x``, ``y' = lam (y - x^2)`` sampled exactly every ``dt``.

    ``mu`` is the slow rate and ``lam`` the fast one (``lam < 2 mu < 0`` gives an attracting
    slow manifold ``y = b x^2`` with ``b = lam / (lam - 2 mu)``).
    """

    mu: float = -0.05
    lam: float = -1.0
    dt: float = 1.0

    def __post_init__(self):
        for name in ("mu", "lam", "dt"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if self.dt <= 0:
            raise ValueError(f"dt must be > 0 (the sampling interval), got {self.dt}")

    @property
    def alpha(self) -> float:
        """Multiplier of ``x`` per step, ``exp(mu dt)``."""
        return math.exp(self.mu * self.dt)

    @property
    def beta(self) -> float:
        """Multiplier of ``y - b x^2`` per step, ``exp(lam dt)``."""
        return math.exp(self.lam * self.dt)

    @property
    def c(self) -> float:
        """Coefficient of ``x_t^2`` in ``y_{t+1}``."""
        d = self.lam - 2 * self.mu
        if d == 0:
            return -self.lam * self.dt * self.alpha ** 2
        # expm1 keeps the difference alpha^2 - beta accurate when dt is small
        diff = math.exp(self.lam * self.dt) * math.expm1((2 * self.mu - self.lam) * self.dt)
        return self.lam * diff / d

    @property
    def manifold_slope(self) -> float:
        """``b`` of the invariant slow manifold ``y = b x^2`` (needs ``lam != 2 mu``)."""
        d = self.lam - 2 * self.mu
        if d == 0:
            raise ValueError("no slow manifold y = b x^2 when lam == 2 mu (resonant case)")
        return self.lam / d

    def step(self, states: torch.Tensor) -> torch.Tensor:
        """One step of the nonlinear map: ``states`` ``(..., 2)`` rows ``[x, y]`` -> ``(..., 2)``."""
        x, y = states[..., 0], states[..., 1]
        return torch.stack([self.alpha * x, self.beta * y + self.c * x * x], dim=-1)

    def trajectory(self, x0, y0, k: int, dtype=torch.float64) -> torch.Tensor:
        """Iterate the nonlinear map: ``k`` states as columns, ``(2, k)``; or ``(B, 2, k)`` when
        ``x0``, ``y0`` are 1-d of length ``B`` (independent initial conditions)."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer number of states, got {k!r}")
        x0 = torch.as_tensor(x0, dtype=dtype)
        y0 = torch.as_tensor(y0, dtype=dtype)
        if x0.shape != y0.shape or x0.ndim > 1:
            raise ValueError(f"x0 and y0 must be scalars or 1-d of equal length, got {tuple(x0.shape)} "
                             f"and {tuple(y0.shape)}")
        out = torch.empty(tuple(x0.shape) + (2, k), dtype=dtype)
        s = torch.stack([x0, y0], dim=-1)
        out[..., 0] = s
        for t in range(1, k):
            s = self.step(s)
            out[..., t] = s
        return out

    def koopman_matrix(self, dtype=torch.float64) -> torch.Tensor:
        """The exact ``K`` ``(3, 3)`` on the observables ``[x, y, x^2]`` (column convention)."""
        a = self.alpha
        return torch.tensor([[a, 0.0, 0.0], [0.0, self.beta, self.c], [0.0, 0.0, a * a]], dtype=dtype)

    def eigenvalues(self) -> torch.Tensor:
        """The Koopman eigenvalues carried by ``[x, y, x^2]``: ``[alpha, beta, alpha^2]`` (complex)."""
        return torch.tensor([self.alpha, self.beta, self.alpha ** 2], dtype=torch.complex128)


def lift(states: torch.Tensor) -> torch.Tensor:
    """Observables ``[x, y, x^2]``: ``(..., 2, k) -> (..., 3, k)``."""
    if states.shape[-2] != 2:
        raise ValueError(f"states must have shape (..., 2, k) with rows [x, y], got {tuple(states.shape)}")
    return torch.cat([states, states[..., :1, :] ** 2], dim=-2)


def relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """``||estimate - truth||_F / ||truth||_F`` in float64."""
    e, t = estimate.to(torch.float64), truth.to(torch.float64)
    return float(torch.linalg.matrix_norm(e - t) / torch.linalg.matrix_norm(t))


def compare_fits(snapshots: torch.Tensor, truth: torch.Tensor | None,
                 fits: Sequence[tuple[str, dict]]) -> list[dict]:
    """Fit one block of ``snapshots`` ``(m, k)`` with each ``(label, finite_section kwargs)``.

    A kwarg ``dtype`` casts the snapshots first (e.g. ``torch.float32``). Returns one row per
    fit: ``label``, ``operator`` (``(m, m)`` float64, or ``None``), ``error`` (relative Frobenius
    error against ``truth``, ``nan`` without a truth), ``residual`` (``||F' - U F|| / ||F'||`` in
    float64 on the float64 snapshots) and ``failed`` (the :class:`FitError` message, or ``None``).
    """
    if snapshots.ndim != 2:
        raise ValueError(f"compare_fits takes one block (m, k), got shape {tuple(snapshots.shape)}")
    s64 = snapshots.to(torch.float64)
    F, Fp = s64[:, :-1], s64[:, 1:]
    rows = []
    for label, kwargs in fits:
        kwargs = dict(kwargs)
        dtype = kwargs.pop("dtype", torch.float64)
        row = {"label": label, "operator": None, "error": float("nan"), "residual": float("nan"),
               "failed": None}
        try:
            U = finite_section(snapshots.to(dtype), **kwargs).to(torch.float64)
        except FitError as e:
            row["failed"] = str(e)
            rows.append(row)
            continue
        row["operator"] = U
        if truth is not None:
            row["error"] = relative_error(U, truth)
        row["residual"] = relative_error(U @ F, Fp)
        rows.append(row)
    return rows


def conditioning_sweep(dts: Sequence[float], fits: Sequence[tuple[str, dict]], k: int = 40,
                       x0: float = 1.0, y0: float = 0.5, mu: float = -0.05, lam: float = -1.0) -> list[dict]:
    """Shrink the sampling interval ``dt`` and fit the lifted snapshots each way.

    With ``k`` fixed, a smaller ``dt`` means a shorter stretch of a smooth trajectory: the
    snapshots become nearly collinear and ``cond(F)`` grows (about ``dt^-2`` for three modes).
    Returns one row per ``(dt, fit)`` with ``dt``, ``cond_F``, ``cond_gram`` (``cond(F F^T)``),
    and the fields of :func:`compare_fits` (``operator`` dropped).
    """
    rows = []
    for dt in dts:
        system = SlowManifoldMap(mu=mu, lam=lam, dt=float(dt))
        Z = lift(system.trajectory(x0, y0, k))
        F = Z[:, :-1]
        cond_F = float(torch.linalg.cond(F))
        cond_gram = float(torch.linalg.cond(F @ F.T))
        for r in compare_fits(Z, system.koopman_matrix(), fits):
            r.pop("operator")
            rows.append({"dt": float(dt), "cond_F": cond_F, "cond_gram": cond_gram, **r})
    return rows


def match_eigenvalues(estimate, truth) -> tuple[np.ndarray, np.ndarray]:
    """Pair two sets of eigenvalues (complex, same length) to minimise the total distance.

    Returns ``(estimate_paired, abs_differences)``: ``estimate_paired[i]`` is the estimate
    matched with ``truth[i]``.
    """
    from scipy.optimize import linear_sum_assignment
    a = np.asarray(estimate, dtype=complex).ravel()
    b = np.asarray(truth, dtype=complex).ravel()
    if a.shape != b.shape:
        raise ValueError(f"need as many estimated eigenvalues as true ones, got {a.size} and {b.size}")
    cost = np.abs(a[:, None] - b[None, :])
    rows, cols = linear_sum_assignment(cost)
    paired = np.empty_like(b)
    paired[cols] = a[rows]
    return paired, np.abs(paired - b)


def pydmd_exact_dmd(snapshots: torch.Tensor) -> dict:
    """Exact DMD of PyDMD without truncation (``DMD(svd_rank=-1, exact=True)``) on one block.

    ``snapshots`` ``(m, k)``, columns in time order. Returns ``eigs`` (complex ``(r,)``),
    ``modes`` (``(m, r)``) and, when the rank ``r`` equals ``m``, ``operator``: the full
    ``(m, m)`` operator ``modes diag(eigs) modes^+`` (real part; ``None`` when ``r < m``).
    PyDMD's own warnings (e.g. on the condition number) pass through to the caller.
    """
    from pydmd import DMD
    X = snapshots.detach().to(torch.float64).cpu().numpy()
    dmd = DMD(svd_rank=-1, exact=True)
    dmd.fit(X)
    eigs, modes = np.asarray(dmd.eigs), np.asarray(dmd.modes)
    operator = None
    if modes.shape[1] == X.shape[0]:
        op = modes @ np.diag(eigs) @ np.linalg.pinv(modes)
        operator = torch.from_numpy(np.ascontiguousarray(op.real))
    return {"eigs": eigs, "modes": modes, "operator": operator}


def stable_operators(P: int, m: int, seed: int = 0, radius: float = 0.999) -> torch.Tensor:
    """Random non-normal operators ``(P, m, m)`` (float64) with spectral radius ``<= radius``:
    ``Q (diag(lambda) + R) Q^T`` with ``Q`` random orthogonal, real ``|lambda| <= radius`` and a
    small strictly upper triangular ``R`` (synthetic input for evolution timings and tests)."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(P, m, m, generator=g, dtype=torch.float64))[0]
    lam = radius * (torch.rand(P, m, generator=g, dtype=torch.float64) * 2 - 1)
    R = torch.triu(torch.randn(P, m, m, generator=g, dtype=torch.float64), 1) * (0.1 / math.sqrt(m))
    return Q @ (torch.diag_embed(lam) + R) @ Q.mT
