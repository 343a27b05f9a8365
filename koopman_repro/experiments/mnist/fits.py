"""Fits of the MNIST experiment through the core (:mod:`koopman_lib.fit`, ``Koopman``): one
factorisation per block serving several cutoffs, the relative cutoff of a named one, the layer-1
partition of the ablation's settings, the rounding of saved weights and eigenvalues, and what the
strided fits change: their horizons (:func:`horizon_of`) and evaluation grids (:func:`grid_of`)."""
from __future__ import annotations

import math

import numpy as np
import torch

from koopman_lib.estimator import STRIDED_FITS, Koopman
from koopman_lib.fit import FITS, Cutoff
from koopman_lib.stride import floor_horizon
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



def plain_fits(names) -> list[str]:
    """The fits of ``names`` made from every snapshot (:data:`koopman_lib.fit.FITS`)."""
    return [n for n in names if n in FITS]


def strided_fits(names) -> list[str]:
    """The strided fits of ``names`` (:data:`koopman_lib.estimator.STRIDED_FITS`: the default fits of
    every ``s``-th snapshot, ``s`` from :func:`koopman_lib.stride.choose_stride`)."""
    return [n for n in names if n in STRIDED_FITS]


def cutoff_name(name: str) -> str:
    """The cutoff (:class:`koopman_lib.fit.Cutoff` name) of the book's fit ``name`` (a strided fit's
    is its unstrided fit's)."""
    return FITS[STRIDED_FITS.get(name, name)].name


def horizon_of(T: int, stride: int) -> int:
    """The optimizer steps a fit of stride ``stride`` predicts for a horizon of ``T`` steps:
    :func:`koopman_lib.stride.floor_horizon` (up to ``stride - 1`` steps short; ``T`` at stride 1)."""
    return T if stride == 1 else floor_horizon(T, stride)


def grid_of(every: int, stride: int) -> int:
    """The evaluation grid of a fit of stride ``stride`` on a run evaluated every ``every`` steps:
    the least common multiple (every point is on the run's grid and a multiple of the stride)."""
    return math.lcm(every, stride)
