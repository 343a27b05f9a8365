"""Spectra of fitted operators: eigenvalues, spectral radius, and clipping to a disk.

``operators`` are dense ``(m, m)`` or ``(P, m, m)`` tensors (see :class:`koopman_lib.operators.Operators`
for the low-rank form). An eigenvalue ``lambda`` of a fitted operator is a mode that the jump
multiplies by ``lambda^T`` over ``T`` steps: inside the unit circle it decays, on it it
persists, outside it grows.

:func:`modes` gives the eigendecomposition ``U = sum_j lambda_j phi_j psi_j^T`` (right and left
eigenvectors), :func:`modal_terms` / :func:`modal_jump` the jump mode by mode,
``U^T w = sum_j b_j lambda_j^T phi_j`` with ``b_j = psi_j^T w``, and :func:`growth_factors` ``|lambda|^T``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .errors import FitError
from .lu import inv_ex


def eigenvalues(operators: torch.Tensor) -> torch.Tensor:
    """Complex eigenvalues, ``(..., m)``."""
    return torch.linalg.eigvals(operators)


def spectral_radius(operators: torch.Tensor) -> torch.Tensor:
    """Largest eigenvalue modulus of each operator, ``(...)``."""
    return eigenvalues(operators).abs().amax(dim=-1)


def clip_spectrum(operators: torch.Tensor, radius: float = 1.0) -> torch.Tensor:
    """Scale every eigenvalue with ``|lambda| > radius`` back onto the circle of that radius.

    Operators are rebuilt as ``V diag(lambda') V^{-1}`` (real part kept). The rebuild inherits
    the conditioning of ``V`` (nearly parallel eigenvectors put the rebuilt eigenvalues up to a
    few 1e-6 off), and a block whose ``V`` is singular cannot be rebuilt: such blocks, whose
    spectral radius is still above ``radius``, are scaled as a whole by ``radius / rho``, so every
    returned block has spectral radius at most ``radius`` (as :func:`spectral_radius` measures it).
    """
    lam, V = torch.linalg.eig(operators)
    mod = lam.abs()
    scale = torch.where(mod > radius, radius / mod.clamp_min(1e-300), torch.ones_like(mod))
    lam = lam * scale
    Vinv, info = inv_ex(V)
    rebuilt = (V * lam.unsqueeze(-2)) @ Vinv
    ok = (info == 0).reshape(info.shape + (1, 1))
    out = torch.where(ok, rebuilt.real.to(operators.dtype), operators).clone()
    # recheck only the blocks the rebuild may have left outside: those with an eigenvalue put on
    # the circle (rounding can leave it a few eps outside) or a singular or ill-conditioned V
    # (rebuild error ~ eps cond(V)); the others keep their eigenvalues well inside
    eps = torch.finfo(out.dtype).eps
    kappa = torch.linalg.matrix_norm(V) * torch.linalg.matrix_norm(Vinv)
    doubt = (mod > radius * (1 - 1e-6)).any(-1) | (info != 0) | ~torch.isfinite(kappa) | (kappa * eps > 1e-9)
    flat, dflat = out.reshape((-1,) + out.shape[-2:]), doubt.reshape(-1)
    if bool(dflat.any()):
        sub = flat[dflat]
        # the eigenvalues of a nearly defective block are computed to ~sqrt(eps), so a shrink to the
        # circle can measure a little outside: shrink again, with a wider margin, until it does not
        for margin in (8 * eps, 1e-12, 1e-10, 1e-8):
            rho = spectral_radius(sub)
            if not bool((rho > radius).any()):
                break
            shrink = torch.where(rho > radius, radius / rho.clamp_min(1e-300) * (1 - margin), torch.ones_like(rho))
            sub = sub * shrink.reshape(-1, 1, 1)
        flat[dflat] = sub
    return flat.reshape(out.shape)


# -- modes: the eigendecomposition an operator's powers are made of -----------------------------
class Modes(NamedTuple):
    """The eigendecomposition ``U = Phi diag(lambda) Psi`` of diagonalisable operators.

    ``eigenvalues`` ``(..., m)``; ``right`` ``(..., m, m)``, whose column ``j`` is the right
    eigenvector ``phi_j`` (``U phi_j = lambda_j phi_j``); ``left`` ``(..., m, m)``, whose row ``j``
    is the left eigenvector ``psi_j^T`` (``psi_j^T U = lambda_j psi_j^T``), scaled so that
    ``psi_j^T phi_k = delta_jk`` (``left = right^{-1}``). All complex.
    """

    eigenvalues: torch.Tensor
    right: torch.Tensor
    left: torch.Tensor


def modes(operators: torch.Tensor, max_condition: float = 1e12) -> Modes:
    """Eigenvalues with right and left eigenvectors of ``operators`` ``(m, m)`` or ``(P, m, m)``.

    Then ``U = sum_j lambda_j phi_j psi_j^T`` and ``U^T w = sum_j lambda_j^T (psi_j^T w) phi_j``
    (:func:`modal_terms`). Raises :class:`FitError` for an operator whose eigenvector basis is
    singular or has condition number above ``max_condition`` (a defective or nearly defective
    operator has no modal expansion that can be trusted; use :func:`koopman_lib.jump` with
    ``method="power"``).
    """
    lam, V = torch.linalg.eig(operators)
    W, info = inv_ex(V)
    kappa = torch.linalg.matrix_norm(V) * torch.linalg.matrix_norm(W)
    bad = (info != 0) | ~torch.isfinite(kappa) | (kappa > max_condition)
    if bool(bad.any()):
        raise FitError(f"operator(s) {torch.nonzero(bad.reshape(-1)).flatten().tolist()} are not diagonalisable "
                       f"to working precision (eigenvector condition number above {max_condition:.0e}); "
                       "they have no modal expansion: use jump(..., method='power').")
    return Modes(lam, V, W)


def modal_amplitudes(m: Modes, w: torch.Tensor) -> torch.Tensor:
    """``b_j = psi_j^T w``, the amplitude of each mode in the state ``w`` ``(m,)`` or ``(P, m)``."""
    return (m.left @ w.to(m.left.dtype).unsqueeze(-1)).squeeze(-1)


def modal_terms(m: Modes, w: torch.Tensor, T: int) -> torch.Tensor:
    """The jump mode by mode: column ``j`` of the result ``(..., m, m)`` is
    ``b_j lambda_j^T phi_j``; their sum over the last axis is ``U^T w`` (:func:`modal_jump`)."""
    if isinstance(T, bool) or int(T) != T or T < 0:
        raise ValueError(f"T must be a non-negative integer number of steps, got {T!r}")
    return m.right * (modal_amplitudes(m, w) * m.eigenvalues.pow(int(T))).unsqueeze(-2)


def modal_jump(m: Modes, w: torch.Tensor, T: int) -> torch.Tensor:
    """``U^T w = sum_j b_j lambda_j^T phi_j``, real when ``w`` is (in ``w``'s dtype)."""
    out = modal_terms(m, w, T).sum(-1)
    return out if w.is_complex() else out.real.to(w.dtype)


def growth_factors(eigenvalues: torch.Tensor, T: int) -> torch.Tensor:
    """``|lambda|^T``: the factor by which a jump of ``T`` steps multiplies each mode's size
    (above 1 it grows, below 1 it decays)."""
    return torch.as_tensor(eigenvalues).abs().pow(T)
