"""The DE solver's network and loss: the oscillator, its tangent forward pass, the analytic
gradient, the fast optimizer loop, and the authors' own ``nn.Module`` loop (for the paper-style
timing and the tests).

The nonlinear oscillator ``H = p^2/2 + x^2/2 + lam x^4/4`` (``x' = p``, ``p' = -x - lam x^3``),
``x(0) = x0``, ``p(0) = p0`` on ``t in [0, t_max]``. An MLP outputs ``N(t) = (N1, N2)``; the trial
solution ``x_hat = x0 + f(t) N1``, ``p_hat = p0 + f(t) N2`` with ``f(t) = 1 - exp(-t)`` meets the
initial condition exactly, and the loss on a fixed grid of times is

    L = mean_i (x_hat'(t_i) - p_hat(t_i))^2 + mean_i (p_hat'(t_i) + x_hat + lam x_hat^3)^2.

``E`` independent networks live in one ``theta`` ``(E, D)`` (the layout of
:class:`koopman_lib.ensembles.EnsembleMLP`). The time derivatives ``N'(t)`` come from forward-mode
tangent propagation (values and tangents stacked along the batch axis, one ``bmm`` per layer);
:meth:`Oscillator.loss_and_grad` returns the loss and its exact gradient by a hand-written reverse
pass through that tangent network (checked against autograd in the tests), about twice as fast as
autograd at this size.
"""
from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from koopman_lib.partition import LayerShape
from koopman_lib.training import make_optimizer

if TYPE_CHECKING:
    from . import Config

OPTIMIZERS = ("adam", "adagrad", "adadelta")


#: elements per SIMD block, rounded up: an elementwise kernel runs whole blocks of SIMD lanes (at most
#: 2 x 16 float32 with AVX-512) and finishes the rest with scalar code, and ``torch.sigmoid``'s two
#: paths round differently (by an ulp, float32 and float64, measured on torch 2.13 with AVX-512; tanh,
#: sin, cos, exp and the arithmetic agree there, and go through the same padding in case another build
#: differs). Which elements fall in the scalar rest depends on how many networks share the batch, so a
#: network's training would depend on the others: see :func:`_every_element_simd`.
SIMD_BLOCK = 64


def _every_element_simd(fn, z: torch.Tensor) -> torch.Tensor:
    """``fn(z)`` for an elementwise ``fn``, evaluated on ``z`` flattened and zero-padded to a whole
    number of :data:`SIMD_BLOCK` elements, so that every element takes the SIMD path: a network's
    values are the same whichever other networks share the batch (a network is its own seed)."""
    pad = -z.numel() % SIMD_BLOCK
    if not pad:
        return fn(z)
    return fn(torch.nn.functional.pad(z.reshape(-1), (0, pad)))[:z.numel()].view(z.shape)


def _sigmoid(z):
    a = _every_element_simd(torch.sigmoid, z)
    s = a * (1 - a)
    return a, s, s * (1 - 2 * a)


def _tanh(z):
    a = _every_element_simd(torch.tanh, z)
    s = 1 - a * a
    return a, s, -2 * a * s


def _sin(z):
    a = _every_element_simd(torch.sin, z)
    return a, _every_element_simd(torch.cos, z), -a


#: activation -> z |-> (sigma(z), sigma'(z), sigma''(z))
ACTIVATIONS = {"sigmoid": _sigmoid, "tanh": _tanh, "sin": _sin}


def time_grid(n_points: int = 200, t_max: float = 4 * math.pi, t_one_quirk: bool = True,
              dtype=torch.float64) -> torch.Tensor:
    """The fixed training times ``(n_points,)``: ``linspace(0, t_max, n_points)``.

    With ``t_one_quirk`` point 2 is set to 1.0, as the solver's ``perturbPoints`` does at
    noise 0 (it writes -1 there and then reflects negative times about t = 0).
    """
    t = torch.linspace(0.0, t_max, n_points, dtype=dtype)
    if t_one_quirk:
        t[2] = 1.0
    return t


def learning_rate(step: int, numerator: float = 8.0, offset: float = 1000.0) -> float:
    """``eta(t) = numerator / (offset + t)`` for the step that turns ``w(t)`` into ``w(t+1)``."""
    return numerator / (offset + step)


class Oscillator:
    """The NN DE solver's loss for an ensemble ``theta`` ``(E, D)``.

    ``sizes`` are the MLP sizes ``(1, ..., 2)``; ``theta`` uses the node-matrix layout of
    :class:`koopman_lib.ensembles.EnsembleMLP` (rows ``[W | b]``, layer after layer).
    """

    def __init__(self, sizes=(1, 10, 10, 2), activation: str = "sigmoid", t: torch.Tensor | None = None,
                 x0: float = 1.3, p0: float = 1.0, lam: float = 1.0):
        if sizes[0] != 1 or sizes[-1] != 2:
            raise ValueError(f"the solver maps t (1 input) to (N1, N2) (2 outputs); got sizes {tuple(sizes)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.sizes, self.activation = tuple(sizes), activation
        self.shapes = [LayerShape(f"layer{i}", o, i_, True) for i, (i_, o) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.n_params = sum(s.size for s in self.shapes)
        self.x0, self.p0, self.lam = x0, p0, lam
        self.set_times(time_grid() if t is None else t)

    def set_times(self, t: torch.Tensor) -> None:
        """Evaluation times ``(B,)``; ``f = 1 - exp(-t)`` and ``f' = exp(-t)`` are cached."""
        self.t = t
        self.fp = torch.exp(-t)
        self.f = 1 - self.fp

    def to(self, dtype) -> "Oscillator":
        out = copy.copy(self)
        out.set_times(self.t.to(dtype))
        return out

    def _layers(self, theta):
        off = 0
        for s in self.shapes:
            node = theta[:, off:off + s.size].reshape(theta.shape[0], s.n_out, s.row)
            off += s.size
            yield node[..., :s.fan_in], node[..., s.fan_in]

    def network(self, theta: torch.Tensor, cache: list | None = None):
        """``N`` and ``dN/dt`` at the times, each ``(E, 2, B)``, by tangent propagation.

        Activations are kept as ``(E, features, B)`` (values and tangents side by side along
        the last axis, ``(E, features, 2B)``), so each layer is one ``bmm`` whose long axis is
        the times: several times faster on a CPU than the ``(E, B, features)`` layout.
        If ``cache`` is a list, the intermediates the reverse pass needs are appended to it.
        """
        B = self.t.shape[0]
        act = ACTIVATIONS[self.activation]
        layers = list(self._layers(theta))
        n = len(layers)
        a = da = None
        for l, (W, b) in enumerate(layers):
            if l == 0:  # z = w t + b, dz/dt = w
                w = W[..., 0].unsqueeze(-1)  # (E, out, 1)
                z = torch.addcmul(b.unsqueeze(-1), w, self.t.view(1, 1, B))
                dz = w  # broadcast over t
                H = None
            else:
                H = torch.cat([a, da], dim=2)  # (E, in, 2B): values, then tangents
                Z = torch.bmm(W, H)
                z, dz = Z[..., :B] + b.unsqueeze(-1), Z[..., B:]
            if l == n - 1:
                if cache is not None:
                    cache.append((H, None, None, None, None))
                return z, dz
            a, s, s2 = act(z)
            da = s * dz
            if cache is not None:
                cache.append((H, a, s, s2, dz))

    def residuals(self, theta: torch.Tensor):
        """``x_hat, p_hat, r1 = x_hat' - p_hat, r2 = p_hat' + x_hat + lam x_hat^3``, each ``(E, B)``."""
        N, dN = self.network(theta)
        return self._residuals(N, dN)

    def _residuals(self, N, dN):
        f, fp = self.f, self.fp
        N1, N2, dN1, dN2 = N[:, 0], N[:, 1], dN[:, 0], dN[:, 1]
        x = self.x0 + f * N1
        p = self.p0 + f * N2
        r1 = fp * N1 + f * dN1 - p
        r2 = fp * N2 + f * dN2 + x + self.lam * x ** 3
        return x, p, r1, r2

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """Per-network loss ``(E,)`` (differentiable by autograd)."""
        _, _, r1, r2 = self.residuals(theta)
        return (r1 * r1).mean(1) + (r2 * r2).mean(1)

    def solution(self, theta: torch.Tensor):
        """``x_hat(t), p_hat(t)`` at the times, each ``(E, B)``."""
        with torch.no_grad():
            x, p, _, _ = self.residuals(theta)
        return x, p

    def loss_and_grad(self, theta: torch.Tensor):
        """Per-network loss ``(E,)`` and its gradient ``(E, D)`` (no autograd).

        A reverse pass through the tangent network of :meth:`network`; equal to
        ``torch.autograd.grad(loss(theta).sum(), theta)`` up to rounding.
        """
        theta = theta.detach()
        E, B = theta.shape[0], self.t.shape[0]
        cache: list = []
        N, dN = self.network(theta, cache)
        x, p, r1, r2 = self._residuals(N, dN)
        loss = (r1 * r1).mean(1) + (r2 * r2).mean(1)
        f, fp = self.f, self.fp
        g1, g2 = r1 * (2.0 / B), r2 * (2.0 / B)
        gz = torch.stack([g1 * fp + g2 * (1 + 3 * self.lam * x * x) * f, g2 * fp - g1 * f], dim=1)  # (E, 2, B)
        gdz = torch.stack([g1 * f, g2 * f], dim=1)
        layers = list(self._layers(theta))
        grads = [None] * len(layers)
        for l in range(len(layers) - 1, -1, -1):
            W, _ = layers[l]
            H = cache[l][0]
            if l > 0:
                G = torch.cat([gz, gdz], dim=2)  # (E, out, 2B)
                gW = torch.bmm(G, H.transpose(1, 2))
                gb = gz.sum(2)
                gH = torch.bmm(W.transpose(1, 2), G)  # (E, in, 2B)
                ga, gda = gH[..., :B], gH[..., B:]
                _, a, s, s2, dz = cache[l - 1]
                gdz = gda * s
                gz = ga * s + gda * dz * s2
            else:
                gW = ((gz * self.t.view(1, 1, B)).sum(2) + gdz.sum(2)).unsqueeze(-1)
                gb = gz.sum(2)
            grads[l] = torch.cat([gW, gb.unsqueeze(-1)], dim=-1).reshape(E, -1)
        return loss, torch.cat(grads, dim=1)


# -- the authors' style of training step (for the paper-style timing and the tests) --------------
class OriginalNet(nn.Module):
    """The solver's network as an ``nn.Module``: ``t (B, 1) -> (N1 (B, 1), N2 (B, 1))``."""

    def __init__(self, sizes=(1, 10, 10, 2), activation: str = "sigmoid"):
        super().__init__()
        acts = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
        if activation not in acts:
            raise ValueError(f"OriginalNet supports {sorted(acts)}, got {activation!r}")
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                mods.append(acts[activation]())
        self.body = nn.Sequential(*mods)

    def forward(self, t):
        r = self.body(t)
        return r[:, 0:1], r[:, 1:2]


def perturb_points(grid: torch.Tensor, t0: float, tf: float, sig: float = 0.0) -> torch.Tensor:
    """The solver's evaluation points ``(B, 1)``: grid + noise, point 2 written as -1 and every
    negative time reflected about ``t0`` (so point 2 lands at 1.0), point 0 forced to ``t0``.

    Only the paper-style timing calls it, always with ``sig = 0`` (the paper's noise), so it draws
    nothing: the experiment's networks train on the fixed grid :func:`time_grid` and have no data
    order. ``sig > 0`` would draw from torch's global generator, shared by every network."""
    t = grid + (grid[1] - grid[0]) * torch.randn_like(grid) * sig if sig else grid.clone()
    t[2] = -1.0
    t[t < t0] = t0 - t[t < t0]
    t[t > tf] = 2 * tf - t[t > tf]
    t[0] = t0
    return t


def original_loss(model: nn.Module, t: torch.Tensor, x0=1.3, p0=1.0, lam=1.0) -> torch.Tensor:
    """The solver's loss with autograd time derivatives (``create_graph=True``); ``t`` ``(B, 1)``
    with ``requires_grad``."""
    N1, N2 = model(t)
    f = 1 - torch.exp(-t)
    x, p = x0 + f * N1, p0 + f * N2
    ones = torch.ones_like(t)
    xd = torch.autograd.grad(x, t, ones, create_graph=True)[0]
    pd = torch.autograd.grad(p, t, ones, create_graph=True)[0]
    return ((xd - p) ** 2).mean() + ((pd + x + lam * x ** 3) ** 2).mean()


def de_optimizer(name: str, params, cfg: Config) -> torch.optim.Optimizer:
    """Adam (betas of Table S4), Adagrad (defaults), Adadelta (rho of Table S6) through the one
    :func:`koopman_lib.training.make_optimizer`; lr set per step."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
    options = {"adam": {"betas": cfg.adam_betas}, "adadelta": {"rho": cfg.adadelta_rho}}.get(name, {})
    return make_optimizer(name, params, learning_rate(0, cfg.lr_numerator, cfg.lr_offset), **options)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def fast_steps(problem: Oscillator, th: torch.Tensor, opt: torch.optim.Optimizer, cfg: Config, start: int, n: int,
               on_step=None) -> None:
    """The fast loop: ``n`` optimizer steps of the networks ``th`` ``(E, D)`` (updated in place by
    ``opt``) with the analytic gradient and nothing else per step (no bookkeeping, no host syncs),
    at steps ``start .. start + n - 1`` of the learning-rate schedule; ``on_step(step, th)`` after
    each (``step`` counted from 1)."""
    for step in range(start, start + n):
        _, g = problem.loss_and_grad(th)
        th.grad = g
        set_lr(opt, learning_rate(step, cfg.lr_numerator, cfg.lr_offset))
        opt.step()
        if on_step is not None:
            on_step(step + 1, th)


def batched_loss(problem: Oscillator, theta: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """``problem.loss`` of many networks ``(M, D) -> (M,)`` in chunks, without autograd."""
    with torch.no_grad():
        return torch.cat([problem.loss(theta[i:i + chunk]) for i in range(0, theta.shape[0], chunk)])
