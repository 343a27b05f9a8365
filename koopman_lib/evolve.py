"""Evolve block states with fitted operators: step by step (the path) or in one jump."""
from __future__ import annotations

from typing import Iterator

import torch


def _check_T(T: int) -> int:
    if not isinstance(T, int) or isinstance(T, bool) or T <= 0:
        raise ValueError(f"T must be a positive integer number of steps, got {T!r}")
    return T


def iterate(operators: torch.Tensor, w0: torch.Tensor, T: int) -> Iterator[torch.Tensor]:
    """Yield ``w(1) .. w(T)`` where ``w(t+1) = U w(t)``.

    ``operators`` ``(P, m, m)``, ``w0`` ``(P, m)``; each yielded tensor is ``(P, m)``
    (a fresh tensor, never a view of ``w0``).
    """
    _check_T(T)
    w = w0.unsqueeze(-1)
    for _ in range(T):
        w = torch.bmm(operators, w) if operators.ndim == 3 else operators @ w
        yield w.squeeze(-1)


def path(operators: torch.Tensor, w0: torch.Tensor, T: int) -> torch.Tensor:
    """The whole path ``(T+1, P, m)``, ``path[0] = w0``."""
    out = torch.empty((T + 1,) + tuple(w0.shape), dtype=w0.dtype, device=w0.device)
    out[0] = w0
    for t, w in enumerate(iterate(operators, w0, T), start=1):
        out[t] = w
    return out


def jump(operators: torch.Tensor, w0: torch.Tensor, T: int, method: str = "auto",
         max_condition: float = 1e8) -> torch.Tensor:
    """``U^T w0`` in time independent of ``T`` (up to ``log T`` for squaring).

    ``method="eig"`` diagonalises ``U = V diag(lambda) V^{-1}`` (cost independent of T) and
    falls back to squaring for blocks whose eigenvector basis has condition number above
    ``max_condition``; ``"power"`` uses repeated squaring (``O(m^3 log T)``). ``"auto"``
    picks eig for blocks with ``m <= 32`` and squaring above: on a 2-core CPU a batched
    eig of 100 blocks of 157x157 takes about 2.5 s against 0.35 s for the squarings of
    ``T = 1876``. Returns ``(P, m)``.
    """
    _check_T(T)
    if method == "auto":
        method = "eig" if operators.shape[-1] <= 32 else "power"
    if method == "power":
        return (torch.linalg.matrix_power(operators, T) @ w0.unsqueeze(-1)).squeeze(-1)
    if method != "eig":
        raise ValueError(f"unknown jump method {method!r}; use 'auto', 'eig' or 'power'")
    lam, V = torch.linalg.eig(operators)
    rhs = w0.to(V.dtype).unsqueeze(-1)
    if operators.shape[-1] < 64:  # batched LU solve fails (MKL) at larger sizes on this CPU build
        coeffs = torch.linalg.solve_ex(V, rhs)[0]
    else:
        coeffs = torch.linalg.lstsq(V, rhs).solution
    wT = (V @ (lam.pow(T).unsqueeze(-1) * coeffs)).squeeze(-1).real.to(w0.dtype)
    cond = torch.linalg.cond(V)
    bad = ~(cond < max_condition) | ~torch.isfinite(wT).all(dim=-1)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten()
        wT[idx] = jump(operators[idx], w0[idx], T, method="power")
    return wT
