"""Evolve block states with fitted operators: step by step (the path) or in one jump."""
from __future__ import annotations

import numbers
from typing import Iterator

import torch


def _check_T(T: int) -> int:
    """``T`` as an ``int``; a clear ``ValueError`` for anything but a positive integer
    (numpy and torch integer scalars are accepted)."""
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or int(T) <= 0:
        raise ValueError(f"T must be a positive integer number of steps, got {T!r}")
    return int(T)


def iterate(operators: torch.Tensor, w0: torch.Tensor, T: int) -> Iterator[torch.Tensor]:
    """Yield ``w(1) .. w(T)`` where ``w(t+1) = U w(t)``.

    ``operators`` ``(P, m, m)``, ``w0`` ``(P, m)``; each yielded tensor is ``(P, m)``
    (a fresh tensor, never a view of ``w0``). ``T`` is checked when this is called,
    not at the first step.
    """
    return _iterate(operators, w0, _check_T(T))


def _iterate(operators: torch.Tensor, w0: torch.Tensor, T: int) -> Iterator[torch.Tensor]:
    w = w0.unsqueeze(-1)
    for _ in range(T):
        w = torch.bmm(operators, w) if operators.ndim == 3 else operators @ w
        yield w.squeeze(-1)


def path(operators: torch.Tensor, w0: torch.Tensor, T: int, method: str = "step") -> torch.Tensor:
    """The whole path ``(T+1, P, m)``, ``path[0] = w0``.

    ``method="step"``: ``T`` matrix-vector products (memory-bound: every step reads all
    operators). ``"doubling"``: the Krylov block ``[w, Uw, .., U^(j-1) w]`` is doubled by
    one product with ``U^j`` (kept up to date by squaring), so the work is
    ``O(m^2 T + m^3 log T)`` flops in matrix-matrix products; same states up to rounding
    (powers by squaring instead of one factor at a time).
    """
    T = _check_T(T)
    if method == "doubling":
        out = torch.empty(tuple(w0.shape) + (T + 1,), dtype=w0.dtype, device=w0.device)
        out[..., 0] = w0
        A, width = operators, 1
        while width < T + 1:
            n = min(width, T + 1 - width)
            out[..., width:width + n] = A @ out[..., :n]
            width += n
            if width < T + 1:
                A = A @ A
        return out.movedim(-1, 0).contiguous()
    if method != "step":
        raise ValueError(f"unknown path method {method!r}; use 'step' or 'doubling'")
    out = torch.empty((T + 1,) + tuple(w0.shape), dtype=w0.dtype, device=w0.device)
    out[0] = w0
    for t, w in enumerate(iterate(operators, w0, T), start=1):
        out[t] = w
    return out


def _power_apply(operators: torch.Tensor, w0: torch.Tensor, T: int) -> torch.Tensor:
    """``U^T w0`` by binary powering applied to the vector: ``floor(log2 T)`` squarings of
    ``U`` and one matrix-vector product per set bit of ``T`` (``torch.linalg.matrix_power``
    would also multiply the matrices of the set bits together: about 1.5x the work)."""
    w, A = w0.unsqueeze(-1), operators
    while True:
        if T & 1:
            w = A @ w
        T >>= 1
        if not T:
            return w.squeeze(-1)
        A = A @ A


#: ``jump(method="auto")`` switches from squaring to eig at ``T >= 2**AUTO_EIG_LOG2_T``
AUTO_EIG_LOG2_T = 32


def jump(operators: torch.Tensor, w0: torch.Tensor, T: int, method: str = "auto",
         max_condition: float = 1e8) -> torch.Tensor:
    """``U^T w0`` in time independent of ``T`` (up to ``log T`` for squaring).

    ``method="eig"`` diagonalises ``U = V diag(lambda) V^{-1}`` (cost independent of T) and
    falls back to squaring for blocks whose eigenvector basis has condition number above
    ``max_condition``; ``"power"`` uses repeated squaring (``O(m^3 log T)``). ``"auto"``
    picks squaring unless ``T >= 2**AUTO_EIG_LOG2_T``: measured on the 2-core CPU (cost
    chapter), the ``floor(log2 T)`` batched squarings are 3-10x faster than a batched
    ``eig`` (plus its condition check) for every block size from 8 to 256 and T up to
    1e4, and a general eig costs tens of matrix products. Returns ``(P, m)``.
    """
    T = _check_T(T)
    if method == "auto":
        method = "eig" if T >= 2 ** AUTO_EIG_LOG2_T else "power"
    if method == "power":
        return _power_apply(operators, w0, T)
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
