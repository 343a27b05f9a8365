"""Inverses of batches of square matrices by LU, safe on the CPU build of PyTorch.

On the CPU build of torch 2.13 (Intel oneMKL), a *batched* LU (``torch.linalg.inv_ex``,
``solve_ex``, ``lu_factor_ex`` on ``(P, m, m)``) of matrices of size ``m`` of about 155 and more
fails once ``torch.set_num_threads`` has been called with more than one thread: oneMKL prints
"Parameter 6 was incorrect on entry to DLASWP" (ZLASWP for complex) and the call never returns.
A single matrix, and any batch on one intra-op thread, is unaffected. :func:`inv_ex` therefore
runs the batched call on one thread; one thread gives the same bits as several on a process
that is not affected (checked at the MNIST block size), so no result changes.
"""
from __future__ import annotations

import torch

from .threads import torch_threads


def inv_ex(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.inv_ex(A)`` for ``A`` ``(..., m, m)``, real or complex: the inverses
    ``(..., m, m)`` and LAPACK's ``info`` ``(...)`` (0 where the matrix is invertible)."""
    with torch_threads(1):
        return torch.linalg.inv_ex(A)
