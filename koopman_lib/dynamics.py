"""Training as a dynamical system, on 2-D loss surfaces.

Gradient descent (GD) is the map ``x -> x - eta grad f(x)``, the explicit Euler step of
the gradient flow ``x' = -grad f(x)``. Heavy-ball momentum (Polyak) is a map on the pair
``(x_t, x_{t-1})`` and a first-order discretisation of the damped second-order ODE
``x'' + gamma x' + grad f(x) = 0``. SGD composes maps drawn at random (a random
dynamical system). A learning-rate schedule ``eta_t`` makes every one of these maps
depend on ``t`` (non-autonomous dynamics).

Near a minimum ``x*`` with Hessian ``H`` the GD map is affine,
``x_{t+1} - x* = (I - eta H)(x_t - x*) + O(|x_t - x*|^2)``, so a linear (Koopman,
finite-section) model of the trajectory can be exact there and nowhere else.

Conventions: points are float64 tensors ``(..., 2)`` (any batch shape); a path is
``(steps + 1, ..., 2)`` with ``path[0] = x0``. Every loss gives ``value`` ``(...)``,
``grad`` ``(..., 2)`` and ``hessian`` ``(..., 2, 2)`` in closed form.
"""
from __future__ import annotations

from typing import Callable, Union

import numpy as np
import torch

from .observables import Delay
from .solvers import affine_observables, finite_section

Schedule = Callable[[int], float]
Rate = Union[float, Schedule]


def _as_points(x) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.shape[-1:] != (2,):
        raise ValueError(f"points must have shape (..., 2), got {tuple(x.shape)}")
    return x


# -- losses ------------------------------------------------------------------------------------
class Loss2D:
    """A smooth loss on the plane with closed-form gradient and Hessian (batched)."""

    name = "loss"
    #: local minima, ``(n, 2)``
    minima: torch.Tensor

    def value(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def hessian(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x) -> torch.Tensor:
        return self.value(_as_points(x))


class Quadratic(Loss2D):
    """``f(x) = 1/2 (x - c)^T H (x - c)`` with ``H`` symmetric positive definite ``(2, 2)``."""

    name = "quadratic"

    def __init__(self, H, center=(0.0, 0.0)):
        H = torch.as_tensor(H, dtype=torch.float64)
        if H.shape != (2, 2) or not torch.allclose(H, H.T):
            raise ValueError(f"H must be a symmetric (2, 2) matrix, got {H.tolist()}")
        if bool((torch.linalg.eigvalsh(H) <= 0).any()):
            raise ValueError("H must be positive definite (a minimum, not a saddle)")
        self.H, self.center = H, _as_points(center)
        self.minima = self.center.reshape(1, 2)

    @classmethod
    def ill_conditioned(cls, kappa: float = 25.0, angle: float = np.pi / 6, center=(0.0, 0.0)):
        """Eigenvalues ``1`` and ``kappa``, eigenvectors rotated by ``angle`` from the axes."""
        c, s = np.cos(angle), np.sin(angle)
        R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
        return cls(R @ torch.diag(torch.tensor([1.0, kappa], dtype=torch.float64)) @ R.T, center)

    # elementwise products, not matmul: 2x2 products through BLAS cost far more in thread
    # start-up than in arithmetic, and on a busy machine a multithreaded BLAS call can stall
    def value(self, x):
        d = x - self.center
        return 0.5 * (d * self.grad(x)).sum(-1)

    def grad(self, x):
        return ((x - self.center).unsqueeze(-1) * self.H).sum(-2)

    def hessian(self, x):
        return self.H.expand(x.shape[:-1] + (2, 2))


class Rosenbrock(Loss2D):
    """``f(x, y) = (a - x)^2 + b (y - x^2)^2``: one minimum at ``(a, a^2)`` at the end of a
    curved, flat-bottomed valley (Rosenbrock 1960)."""

    name = "rosenbrock"

    def __init__(self, a: float = 1.0, b: float = 100.0):
        self.a, self.b = float(a), float(b)
        self.minima = torch.tensor([[a, a * a]], dtype=torch.float64)

    def value(self, x):
        u, v = x[..., 0], x[..., 1]
        return (self.a - u) ** 2 + self.b * (v - u * u) ** 2

    def grad(self, x):
        u, v = x[..., 0], x[..., 1]
        r = v - u * u
        return torch.stack([-2 * (self.a - u) - 4 * self.b * u * r, 2 * self.b * r], -1)

    def hessian(self, x):
        u, v = x[..., 0], x[..., 1]
        huu = 2 - 4 * self.b * (v - u * u) + 8 * self.b * u * u
        huv = -4 * self.b * u
        hvv = torch.full_like(u, 2 * self.b)
        return torch.stack([torch.stack([huu, huv], -1), torch.stack([huv, hvv], -1)], -2)


class DoubleWell(Loss2D):
    """``f(x, y) = (x^2 - 1)^2 / 4 + k y^2 / 2 + tilt x``: (for small tilt) minima near
    ``(+-1, 0)`` and a saddle near the origin, so the basin reached depends on the start."""

    name = "double well"

    def __init__(self, k: float = 2.0, tilt: float = 0.0):
        self.k, self.tilt = float(k), float(tilt)
        roots = np.roots([1.0, 0.0, -1.0, self.tilt])  # f_x = x^3 - x + tilt = 0
        xs = sorted(r.real for r in roots if abs(r.imag) < 1e-12 and 3 * r.real ** 2 - 1 > 0)
        self.minima = torch.tensor([[x, 0.0] for x in xs], dtype=torch.float64)

    def value(self, x):
        u, v = x[..., 0], x[..., 1]
        return (u * u - 1) ** 2 / 4 + self.k * v * v / 2 + self.tilt * u

    def grad(self, x):
        u, v = x[..., 0], x[..., 1]
        return torch.stack([u ** 3 - u + self.tilt, self.k * v], -1)

    def hessian(self, x):
        u = x[..., 0]
        zero = torch.zeros_like(u)
        return torch.stack([torch.stack([3 * u * u - 1, zero], -1),
                            torch.stack([zero, torch.full_like(u, self.k)], -1)], -2)


# -- learning-rate schedules -------------------------------------------------------------------
def constant(eta: float) -> Schedule:
    """``eta_t = eta``."""
    return lambda t: float(eta)


def step_decay(eta0: float, factor: float, every: int) -> Schedule:
    """``eta_t = eta0 * factor ** (t // every)`` (e.g. PyTorch ``StepLR``)."""
    return lambda t: float(eta0 * factor ** (t // every))


def inverse_time(a: float, b: float) -> Schedule:
    """``eta_t = a / (b + t)`` (the paper's DE-solver schedule is ``8 / (1000 + t)``)."""
    return lambda t: float(a / (b + t))


def as_schedule(eta: Rate) -> Schedule:
    """A float is a constant schedule; a callable ``t -> eta_t`` is used as is."""
    if callable(eta):
        return eta
    if not isinstance(eta, (int, float)) or eta <= 0:
        raise ValueError(f"a learning rate must be a positive number or a callable t -> eta_t, got {eta!r}")
    return constant(float(eta))


def _check_steps(steps: int) -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    return steps


# -- discrete dynamics -------------------------------------------------------------------------
def gd(loss: Loss2D, x0, eta: Rate, steps: int) -> torch.Tensor:
    """Gradient descent ``x_{t+1} = x_t - eta_t grad f(x_t)``; path ``(steps+1, ..., 2)``."""
    sched, x = as_schedule(eta), _as_points(x0)
    out = torch.empty((_check_steps(steps) + 1,) + tuple(x.shape), dtype=torch.float64)
    out[0] = x
    for t in range(steps):
        out[t + 1] = out[t] - sched(t) * loss.grad(out[t])
    return out


def heavy_ball(loss: Loss2D, x0, eta: Rate, beta: float, steps: int, v0=None) -> torch.Tensor:
    """Polyak's heavy ball (Polyak 1964): ``v_{t+1} = beta v_t - eta_t grad f(x_t)``,
    ``x_{t+1} = x_t + v_{t+1}`` (so ``v_t = x_t - x_{t-1}``); ``v0`` defaults to 0.

    Equivalently ``x_{t+1} = x_t - eta_t grad f(x_t) + beta (x_t - x_{t-1})``. Path ``(steps+1, ..., 2)``.
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    sched, x = as_schedule(eta), _as_points(x0)
    v = torch.zeros_like(x) if v0 is None else _as_points(v0).expand_as(x).clone()
    out = torch.empty((_check_steps(steps) + 1,) + tuple(x.shape), dtype=torch.float64)
    out[0] = x
    for t in range(steps):
        v = beta * v - sched(t) * loss.grad(out[t])
        out[t + 1] = out[t] + v
    return out


def sgd(loss: Loss2D, x0, eta: Rate, steps: int, noise: float, n_paths: int = 1,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """SGD as a random dynamical system: ``x_{t+1} = x_t - eta_t (grad f(x_t) + noise xi_t)``
    with ``xi_t`` i.i.d. standard normal in the plane (a model of minibatch gradient noise).

    ``x0`` ``(2,)`` is copied to ``n_paths`` independent realisations; path ``(steps+1, n_paths, 2)``.
    """
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    sched = as_schedule(eta)
    x = _as_points(x0).expand(n_paths, 2)
    out = torch.empty((_check_steps(steps) + 1, n_paths, 2), dtype=torch.float64)
    out[0] = x
    for t in range(steps):
        xi = torch.randn(n_paths, 2, generator=generator, dtype=torch.float64)
        out[t + 1] = out[t] - sched(t) * (loss.grad(out[t]) + noise * xi)
    return out


def heavy_ball_from_ode(h: float, gamma: float) -> tuple[float, float]:
    """``(eta, beta) = (h^2, 1 - gamma h)``: heavy ball as a step-``h`` discretisation of
    ``x'' + gamma x' + grad f = 0`` (with ``x_t ~ x(t h)`` and ``v_t ~ h x'(t h)``)."""
    if h <= 0 or not 0 < gamma * h <= 1:
        raise ValueError(f"need h > 0 and 0 < gamma h <= 1, got h={h}, gamma={gamma}")
    return h * h, 1.0 - gamma * h


# -- continuous flows (scipy solve_ivp) --------------------------------------------------------
def _solve(rhs, y0, t_eval, method, rtol, atol):
    from scipy.integrate import solve_ivp
    t_eval = np.asarray(t_eval, dtype=float)
    sol = solve_ivp(rhs, (float(t_eval[0]), float(t_eval[-1])), np.asarray(y0, dtype=float), t_eval=t_eval,
                    method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}; try method='Radau' for a stiff loss")
    return torch.from_numpy(sol.y.T.copy())


def gradient_flow(loss: Loss2D, x0, t_eval, method: str = "LSODA", rtol: float = 1e-10,
                  atol: float = 1e-12) -> torch.Tensor:
    """Solve ``x' = -grad f(x)`` from ``x0`` ``(2,)``; returns ``(len(t_eval), 2)``."""
    x0 = _as_points(x0)
    if x0.shape != (2,):
        raise ValueError("gradient_flow integrates one initial point (2,); loop over a batch")

    def rhs(t, y):
        return -loss.grad(torch.from_numpy(y)).numpy()
    return _solve(rhs, x0.numpy(), t_eval, method, rtol, atol)


def heavy_ball_flow(loss: Loss2D, x0, gamma: float, t_eval, v0=(0.0, 0.0), method: str = "LSODA",
                    rtol: float = 1e-10, atol: float = 1e-12) -> torch.Tensor:
    """Solve ``x'' + gamma x' + grad f(x) = 0`` with ``x(0) = x0``, ``x'(0) = v0``.

    Returns ``(len(t_eval), 4)``: columns ``x`` (2) then ``x'`` (2).
    """
    x0, v0 = _as_points(x0), _as_points(v0)
    if x0.shape != (2,) or v0.shape != (2,):
        raise ValueError("heavy_ball_flow integrates one initial point (2,); loop over a batch")

    def rhs(t, y):
        g = loss.grad(torch.from_numpy(y[:2])).numpy()
        return np.concatenate([y[2:], -gamma * y[2:] - g])
    return _solve(rhs, np.concatenate([x0.numpy(), v0.numpy()]), t_eval, method, rtol, atol)


# -- linearisation -----------------------------------------------------------------------------
def gd_jacobian(loss: Loss2D, x, eta: float) -> torch.Tensor:
    """Jacobian of the GD map at ``x``: ``I - eta H(x)``, ``(..., 2, 2)``."""
    x = _as_points(x)
    return torch.eye(2, dtype=torch.float64) - eta * loss.hessian(x)


def heavy_ball_jacobian(loss: Loss2D, x, eta: float, beta: float) -> torch.Tensor:
    """Jacobian of the heavy-ball map on the state ``(x_t, x_{t-1})`` at a fixed point ``(x, x)``:
    ``[[(1 + beta) I - eta H, -beta I], [I, 0]]``, ``(..., 4, 4)``."""
    x = _as_points(x)
    H = loss.hessian(x)
    I = torch.eye(2, dtype=torch.float64).expand_as(H)
    top = torch.cat([(1 + beta) * I - eta * H, -beta * I], -1)
    bottom = torch.cat([I, torch.zeros_like(H)], -1)
    return torch.cat([top, bottom], -2)


def sorted_eigenvalues(J: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of ``J`` ``(..., m, m)``, complex, sorted by real part then imaginary part."""
    lam = torch.linalg.eigvals(J)
    lam = torch.gather(lam, -1, torch.sort(lam.imag, dim=-1, stable=True).indices)
    return torch.gather(lam, -1, torch.sort(lam.real, dim=-1, stable=True).indices)


def zigzag_eta(H) -> float:
    """GD on a minimum with Hessian ``H`` zig-zags (the Jacobian ``I - eta H`` has a negative
    eigenvalue ``1 - eta h_max``, so the steep coordinate changes sign every step) iff
    ``eta > 1 / h_max``."""
    return float(1.0 / torch.linalg.eigvalsh(torch.as_tensor(H, dtype=torch.float64)).max())


def max_stable_eta(H) -> float:
    """GD converges to a minimum with Hessian ``H`` iff ``0 < eta < 2 / lambda_max(H)``."""
    return float(2.0 / torch.linalg.eigvalsh(torch.as_tensor(H, dtype=torch.float64)).max())


def sgd_stationary_variance(lam, eta: float, noise: float):
    """Stationary variance of SGD on a quadratic along a Hessian eigen-direction ``lam``:
    ``eta^2 noise^2 / (1 - (1 - eta lam)^2)`` (for ``|1 - eta lam| < 1``)."""
    lam = np.asarray(lam, dtype=float)
    rho = 1 - eta * lam
    if np.any(np.abs(rho) >= 1):
        raise ValueError("no stationary distribution: |1 - eta lambda| >= 1")
    return eta ** 2 * noise ** 2 / (1 - rho ** 2)


def propagator(H, etas) -> torch.Tensor:
    """``prod_t (I - eta_t H)`` (latest factor on the left): linearised GD under a schedule."""
    H = torch.as_tensor(H, dtype=torch.float64)
    P = torch.eye(H.shape[-1], dtype=torch.float64)
    for e in etas:
        P = (torch.eye(H.shape[-1], dtype=torch.float64) - float(e) * H) @ P
    return P


# -- the Koopman link --------------------------------------------------------------------------
def delay_states(path: torch.Tensor, delays: int = 2) -> torch.Tensor:
    """Time-delay states of a path ``(k, m)`` (time first): row ``j`` is
    ``[x_{t}; x_{t-1}; ...; x_{t-d+1}]`` with ``t = j + d - 1``, newest first; ``(k - d + 1, m d)``.

    With ``d = 2`` the heavy ball is a linear map on these states (on a quadratic), while it
    is no map at all on ``x_t`` alone."""
    x = torch.as_tensor(path, dtype=torch.float64)
    if x.ndim != 2:
        raise ValueError(f"path must be (k, m), got {tuple(x.shape)}")
    return Delay(delays).lift(x.T[None], {})[0].T.contiguous()


def fit_operator(path: torch.Tensor, center=None, affine: bool = False, method: str = "pinv",
                 delays: int = 1) -> torch.Tensor:
    """Finite-section operator of one 2-D path ``(k, 2)`` (time first).

    ``center`` subtracts a point first (linear dynamics about a known minimum); ``affine``
    appends the constant observable ``1`` (state ``[x; 1]``, operator ``(3, 3)``), which
    represents ``x_{t+1} = J x_t + b`` exactly. Neither: the paper's identity observables on
    the raw coordinates, ``(2, 2)``. ``delays = d > 1`` fits on the delay states
    ``[x_t; ...; x_{t-d+1}]`` (:func:`delay_states`, operator ``(2d, 2d)``, ``+1`` with ``affine``).
    """
    x = torch.as_tensor(path, dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"path must be (k, 2), got {tuple(x.shape)}")
    if center is not None:
        x = x - _as_points(center)
    snaps = delay_states(x, delays).T.contiguous()
    if affine:
        snaps = affine_observables(snaps)
    return finite_section(snaps, method=method)
