"""Observables beyond the identity: ``[w; 1]``, time delays (Hankel) and small polynomial dictionaries.

The paper fits its operators on the identity observable ``g(w) = w``. Koopman practice
(extended DMD) lifts the state into a dictionary of functions first and fits the operator
there. Every dictionary here keeps the block state ``w`` as the *first* ``m`` rows of the
lifted state, so going back to the weights is reading those rows (the projection is exact).

Shapes follow :mod:`koopman_lib.solvers`: snapshots of a batch of ``P`` blocks of size
``m`` are ``(P, m, k)`` (columns in time order); lifted snapshots are ``(P, n, k - h + 1)``
where ``n = n_features(m)`` and ``h = history`` is how many consecutive states one lifted
state needs (``d`` for ``d`` delays, 1 otherwise).

The lifted state evolves linearly, ``z(t+1) = K z(t)``, and ``w`` is read off ``z`` (a true
Koopman / EDMD prediction, ``O(1)`` in ``T`` with a jump): ``Koopman(partition,
observables=Affine())`` fits and evolves it (:mod:`koopman_lib.estimator`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import FitError
from .partition import Partition


# -- dictionaries --------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """``psi(w) = w`` (the paper's choice)."""

    name = "identity"
    #: whether the last lifted coordinate is the constant 1 (its operator row is then fixed to e_n)
    constant = False

    @property
    def history(self) -> int:
        return 1

    def n_features(self, m: int) -> int:
        return m

    def stats(self, x: torch.Tensor) -> dict:
        """Window statistics the lift needs (none here). ``x`` ``(P, m, k)``."""
        return {}

    def lift(self, x: torch.Tensor, stats: dict) -> torch.Tensor:
        """``(P, m, k) -> (P, n, k - history + 1)``."""
        return x


@dataclass(frozen=True)
class Affine(Identity):
    """``psi(w) = [w; 1]``: a constant observable, so ``w(t+1) = A w(t) + b`` (a straight
    line ``w(t) = w0 + t v`` is then represented exactly, which the identity cannot do
    without an eigenvalue exactly at 1 in a direction that also carries ``w``)."""

    name = "affine"
    constant = True

    def n_features(self, m: int) -> int:
        return m + 1

    def lift(self, x, stats):
        z = _empty_lifted(x, x.shape[-2] + 1, x.shape[-1])
        z[..., :-1, :] = x
        z[..., -1, :] = 1
        return z


@dataclass(frozen=True)
class Delay(Identity):
    """Time-delay (Hankel) embedding ``psi = [w(t); w(t-1); ...; w(t-d+1)]`` (+ ``[1]`` if
    ``affine``). ``delays = d >= 1``; ``d = 1`` is the identity."""

    delays: int = 2
    affine: bool = False

    def __post_init__(self):
        if not isinstance(self.delays, int) or self.delays < 1:
            raise ValueError(f"delays must be an integer >= 1, got {self.delays!r}")

    @property
    def name(self) -> str:
        return f"delay{self.delays}" + ("+1" if self.affine else "")

    @property
    def constant(self) -> bool:
        return self.affine

    @property
    def history(self) -> int:
        return self.delays

    def n_features(self, m):
        return m * self.delays + int(self.affine)

    def lift(self, x, stats):
        d, k = self.delays, x.shape[-1]
        if k < d:
            raise FitError(f"a {d}-delay embedding needs at least {d} consecutive snapshots, got {k}")
        # newest first: rows [w(t); w(t-1); ...], written into one tensor (no concatenation copies)
        m = x.shape[-2]
        z = _empty_lifted(x, self.n_features(m), k - d + 1)
        for j in range(d):
            z[..., j * m:(j + 1) * m, :] = x[..., d - 1 - j: k - j]
        if self.affine:
            z[..., -1, :] = 1
        return z


@dataclass(frozen=True)
class Polynomial(Identity):
    """``psi(w) = [w; u^2; ...; u^degree; (u_i u_j, i < j if cross); 1]`` with
    ``u = (w - mean) / std`` per coordinate over the fitting window (standardising keeps
    the powers of small weights on the scale of ``w`` and the fit well conditioned).

    ``n = m * degree + 1`` (+ ``m (m - 1) / 2`` with ``cross``).
    """

    degree: int = 2
    cross: bool = False

    def __post_init__(self):
        if not isinstance(self.degree, int) or self.degree < 2:
            raise ValueError(f"degree must be an integer >= 2 (1 is Affine), got {self.degree!r}")

    constant = True

    @property
    def name(self) -> str:
        return f"poly{self.degree}" + ("x" if self.cross else "")

    def n_features(self, m):
        return m * self.degree + 1 + (m * (m - 1) // 2 if self.cross else 0)

    def stats(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True) if x.shape[-1] > 1 else torch.ones_like(mean)
        scale = std.abs().amax(dim=-2, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        std = torch.where(std > 1e-8 * scale, std, scale)  # frozen coordinates: use the block scale
        return {"mean": mean, "std": std}

    def lift(self, x, stats):
        """``(P, m, k) -> (P, n, k)``, built in one tensor. Up to degree 3, ``u`` is computed in the rows
        of ``u^degree``, the lower power and the products read it there, and it is raised in place last:
        the same elementwise operations as ``torch.cat([x, u ** 2, ...])`` (squares and cubes are
        products), so the same bits, without holding ``u``, the powers and their concatenation at once.
        Higher powers call ``pow``, whose rounding depends on the memory layout it runs over (vectorised
        and scalar paths), so they are computed on ``u`` as before and copied in."""
        mean, std = stats["mean"], stats["std"]
        m, d = x.shape[-2], self.degree
        dtype = torch.promote_types(torch.promote_types(x.dtype, mean.dtype), std.dtype)  # u's dtype
        z = _empty_lifted(x, self.n_features(m), x.shape[-1], dtype)
        z[..., :m, :] = x

        def rows(p):                                                  # the rows of u^p
            return z[..., (p - 1) * m: p * m, :]

        in_place = d <= 3
        if in_place:
            u = rows(d)
            torch.sub(x, mean, out=u)
            u.div_(std)
        else:
            u = (x - mean) / std
        for p in range(2, d):
            if p <= 3:
                torch.pow(u, p, out=rows(p))
            else:
                rows(p).copy_(u ** p)
        if self.cross:
            r = d * m                                                 # u_i u_j, i < j, row-major
            for i in range(m - 1):
                torch.mul(u[..., i:i + 1, :], u[..., i + 1:, :], out=z[..., r: r + m - 1 - i, :])
                r += m - 1 - i
        if in_place:
            u.pow_(d)
        else:
            rows(d).copy_(u ** d)
        z[..., -1, :] = 1
        return z


def _empty_lifted(x: torch.Tensor, n: int, k: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialised lifted tensor ``(..., n, k)`` for snapshots ``x`` ``(..., m, k0)`` (``x``'s batch
    shape and device, ``dtype`` or ``x``'s)."""
    return torch.empty((*x.shape[:-2], n, k), dtype=dtype or x.dtype, device=x.device)


def parse_observables(spec: str):
    """``"identity" | "affine" | "delay:d" | "delay:d+1" | "poly:deg" | "poly:deg:x"`` -> dictionary."""
    try:
        if spec == "identity":
            return Identity()
        if spec == "affine":
            return Affine()
        if spec.startswith("delay:"):
            body = spec.split(":", 1)[1]
            return Delay(int(body.removesuffix("+1")), body.endswith("+1"))
        if spec.startswith("poly:"):
            parts = spec.split(":")
            return Polynomial(int(parts[1]), len(parts) > 2 and parts[2] == "x")
    except ValueError as e:
        raise ValueError(f"bad observables spec {spec!r}: {e}") from None
    raise ValueError(f"unknown observables {spec!r}; use 'identity', 'affine', 'delay:d', 'delay:d+1', "
                     "'poly:deg' or 'poly:deg:x'")


def lifted_flops(partition: Partition, observables: Identity, k: int) -> float:
    """Rough flop count of one pinv fit (SVD of ``n x k`` per block: ``4 n^2 k + 8 n^3``)."""
    total = 0.0
    for g in partition.groups:
        n = observables.n_features(int(g.shape[1]))
        total += int(g.shape[0]) * (4 * n * n * k + 8 * n ** 3)
    return total


__all__ = ["Identity", "Affine", "Delay", "Polynomial", "parse_observables", "lifted_flops"]
