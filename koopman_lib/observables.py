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
        return _append_ones(x)


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
        # newest first: rows [w(t); w(t-1); ...]
        z = torch.cat([x[..., d - 1 - j: k - j] for j in range(d)], dim=-2)
        return _append_ones(z) if self.affine else z


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
        u = (x - stats["mean"]) / stats["std"]
        parts = [x] + [u ** p for p in range(2, self.degree + 1)]
        if self.cross and x.shape[-2] > 1:
            i, j = torch.triu_indices(x.shape[-2], x.shape[-2], offset=1)
            parts.append(u[..., i, :] * u[..., j, :])
        return _append_ones(torch.cat(parts, dim=-2))


def _append_ones(z: torch.Tensor) -> torch.Tensor:
    return torch.cat([z, torch.ones_like(z[..., :1, :])], dim=-2)


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
