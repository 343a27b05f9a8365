"""Fitted Koopman operators, dense or low-rank, behind one interface.

:class:`Operators` holds one operator per block of a partition: dense ``U`` ``(P, m, m)``, or the
low-rank form ``U = A B`` (``A`` ``(P, m, r)``, ``B`` ``(P, r, m)``) that a fit keeps for blocks
with more coordinates than snapshot pairs. It applies them, takes matrix powers, reports
eigenvalues and spectral radii, and clips the spectrum. :mod:`koopman_lib.fit` makes them.
"""
from __future__ import annotations

import torch

from .errors import FitError
from .spectra import clip_spectrum, eigenvalues


class Operators:
    """``P`` block operators of size ``n``: dense ``U`` ``(P, n, n)`` or low rank ``U = A B`` with
    ``A`` ``(P, n, r)``, ``B`` ``(P, r, n)``.

    ``n_out`` (default ``n``): the leading coordinates of the state that are the weights (a
    lifted state ``[w; psi(w)]`` has ``n > n_out``). ``rank`` ``(P,)``: singular values kept by
    the fit (when known).
    """

    def __init__(self, U: torch.Tensor | None = None, A: torch.Tensor | None = None,
                 B: torch.Tensor | None = None, rank: torch.Tensor | None = None, n_out: int | None = None):
        if (U is None) == (A is None or B is None):
            raise FitError("give either U or both A and B")
        if U is not None and (U.ndim != 3 or U.shape[-1] != U.shape[-2]):
            raise FitError(f"U must be (P, n, n), got {tuple(U.shape)}")
        self.U, self.A, self.B, self.rank = U, A, B, rank
        self.M = None if A is None else B @ A        # (P, r, r): the nonzero spectrum of A B
        self.n_out = self.n if n_out is None else int(n_out)

    @property
    def low_rank(self) -> bool:
        return self.U is None

    @property
    def n(self) -> int:
        return int((self.U if self.U is not None else self.A).shape[-2])

    @property
    def n_blocks(self) -> int:
        return int((self.U if self.U is not None else self.A).shape[0])

    @property
    def dtype(self):
        return (self.U if self.U is not None else self.A).dtype

    def as_dense(self) -> torch.Tensor:
        """``U`` ``(P, n, n)`` (forms ``A B`` for the low-rank form: small blocks and tests only)."""
        return self.U if self.U is not None else self.A @ self.B

    def apply(self, w: torch.Tensor) -> torch.Tensor:
        """``U w`` for ``w`` ``(P, n)``."""
        w = w.to(self.dtype).unsqueeze(-1)
        out = torch.bmm(self.U, w) if self.U is not None else torch.bmm(self.A, torch.bmm(self.B, w))
        return out.squeeze(-1)

    def matrix_power(self, T: int) -> torch.Tensor:
        """``U^T`` ``(P, n, n)`` (dense; for the low-rank form ``A M^(T-1) B``)."""
        if self.U is not None:
            return torch.linalg.matrix_power(self.U, T)
        return self.A @ torch.linalg.matrix_power(self.M, T - 1) @ self.B

    def eigenvalues(self) -> torch.Tensor:
        """Eigenvalues ``(P, n)`` (dense) or the ``r`` possibly nonzero ones of ``A B`` (low rank)."""
        return eigenvalues(self.U if self.U is not None else self.M)

    def spectral_radius(self) -> torch.Tensor:
        """Largest eigenvalue modulus ``(P,)``."""
        return self.eigenvalues().abs().amax(-1)

    def clip(self, radius: float) -> "Operators":
        """Eigenvalues outside ``radius`` scaled onto it (dense operators only)."""
        if self.U is None:
            raise FitError("eigenvalue clipping needs dense operators (m <= k - 1); record a longer window")
        return Operators(U=clip_spectrum(self.U, radius), rank=self.rank, n_out=self.n_out)

    def take(self, idx) -> "Operators":
        """The operators of blocks ``idx``."""
        if self.U is not None:
            return Operators(U=self.U[idx], rank=None if self.rank is None else self.rank[idx], n_out=self.n_out)
        return Operators(A=self.A[idx], B=self.B[idx], rank=None if self.rank is None else self.rank[idx],
                         n_out=self.n_out)

    @staticmethod
    def cat(parts: list["Operators"]) -> "Operators":
        """Blocks of several :class:`Operators` (same form and size) as one."""
        if len(parts) == 1:
            return parts[0]
        rank = None if any(p.rank is None for p in parts) else torch.cat([p.rank for p in parts])
        if parts[0].U is not None:
            return Operators(U=torch.cat([p.U for p in parts]), rank=rank, n_out=parts[0].n_out)
        return Operators(A=torch.cat([p.A for p in parts]), B=torch.cat([p.B for p in parts]), rank=rank,
                         n_out=parts[0].n_out)

    # -- the state an evolution carries (see :func:`koopman_lib.evolve.rollout`) ----------
    def start(self, z: torch.Tensor) -> torch.Tensor:
        """The evolution state ``(P, *, 1)`` at step 0 from the (lifted) state ``z`` ``(P, n)``."""
        z = z.to(self.dtype).unsqueeze(-1)
        return z if self.U is not None else torch.bmm(self.B, z)

    def advance(self, state: torch.Tensor, n: int, powers: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_n, state_n)``: the weights ``(P, n_out)`` and the state ``n >= 1`` steps on.

        Dense: the state is ``z_t`` and ``z_{t+n} = U^n z_t``. Low rank: the state is
        ``y_t = B z_t``; ``z_{t+n} = A M^(n-1) y_t`` and ``y_{t+n} = M^n y_t``. Matrix powers are
        formed by repeated squaring and cached in ``powers`` (keyed by ``n``), so strided
        evaluation pays ``~log2(n)`` matrix products once instead of ``n`` passes over ``U``.
        """
        S = self.U if self.U is not None else self.M
        p = n if self.U is not None else n - 1

        def power(e):
            if e == 0:
                return None
            if powers is None:
                return torch.linalg.matrix_power(S, e)
            if e not in powers:
                powers[e] = torch.linalg.matrix_power(S, e)
            return powers[e]

        Sp = power(p)
        y = state if Sp is None else torch.bmm(Sp, state)
        if self.U is not None:
            return y[:, : self.n_out, 0], y
        z = torch.bmm(self.A, y)
        return z[:, : self.n_out, 0], torch.bmm(self.M, y)
