"""Spectra of fitted operators: eigenvalues, spectral radius, and clipping to a disk.

``operators`` are dense ``(m, m)`` or ``(P, m, m)`` tensors (see :class:`koopman_lib.operators.Operators`
for the low-rank form). An eigenvalue ``lambda`` of a fitted operator is a mode that the jump
multiplies by ``lambda^T`` over ``T`` steps: inside the unit circle it decays, on it it
persists, outside it grows.
"""
from __future__ import annotations

import torch

from .errors import FitError


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
    Vinv, info = torch.linalg.inv_ex(V)
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
