"""Fits of the MNIST experiment through the core (:mod:`koopman_lib.fit`, ``Koopman``): one
factorisation per block serving several cutoffs, the relative cutoff of a named one, the layer-1
partition of the ablation's settings, and the rounding of saved weights and eigenvalues."""
from __future__ import annotations

import numpy as np
import torch

from koopman_lib.estimator import Koopman
from koopman_lib.fit import Cutoff
from koopman_lib.partition import Partition

#: ``Koopman.estimate_bytes`` counts dense ``m x m`` operators; the replication's layer-wise blocks
#: (m = 15700 > k - 1) are kept as thin factors ``A (m, r)``, ``B (r, m)`` (about ``3 m k`` numbers per
#: block, like the snapshots), so its dense estimate (~10 GB) does not apply to them
LOW_RANK_MEMORY_LIMIT = 32 * 2**30


def fit_cutoffs(partition: Partition, window: torch.Tensor, dtype, cutoffs,
                memory_limit: int | None = None) -> dict:
    """``{cutoff: fitted Koopman}`` for the recording ``window`` ``(k, E, D)`` (any float dtype, cast
    chunk by chunk to ``dtype``): one factorisation per block (QR then SVD,
    :func:`koopman_lib.fit.factorise`) serves every cutoff (:class:`koopman_lib.fit.Cutoff` values);
    blocks with ``m > k - 1`` keep the low-rank form ``U = A B``."""
    kw = {} if memory_limit is None else {"memory_limit": memory_limit}
    return Koopman(partition, dtype=dtype, **kw).fit_variants(window, {c: c for c in cutoffs})


def rtol_of(cutoff, m: int, k: int) -> float:
    """The relative singular-value cutoff of ``cutoff`` for ``F`` of shape ``(m, k)``."""
    return Cutoff(cutoff).rtol(m, k)


def round_weights(x: torch.Tensor, decimals: int = 7) -> torch.Tensor:
    """``x`` in float64, rounded to ``decimals`` (saved trajectories)."""
    return torch.round(x.double(), decimals=decimals)


def round_complex(lam: torch.Tensor, digits: int = 6) -> dict:
    """Eigenvalues ``lam`` as ``{"re": [...], "im": [...]}`` rounded to ``digits`` (saved spectra)."""
    lam = lam.reshape(-1).to(torch.complex128)
    return {"re": np.round(lam.real.numpy(), digits).tolist(), "im": np.round(lam.imag.numpy(), digits).tolist()}


def layer1_spec(kind: str) -> tuple:
    """The per-layer partition of the ablation's layer-1 setting ``kind`` (``"quasi_node"`` or ``"node"``)."""
    return ("quasi_node:157", "node", "node", "node") if kind == "quasi_node" else (kind,) * 4

