"""Strided fits: keep every ``s``-th snapshot, fit the ``s``-step map, and a rule for ``s``.

A window ``t1..t2`` recorded at stride ``s`` (``TrajectoryRecorder(..., stride=s)``) holds the
snapshots ``w(t1), w(t1 + s), .., w(t2)``; a :class:`koopman_lib.Koopman` fitted on it fits
``w(t + s) = U_s w(t)`` with the one fit of :mod:`koopman_lib.fit`, and predicts ``T`` optimizer
steps ahead with ``T / s`` applications of ``U_s`` (``T`` a multiple of ``s``). The Gram
products, the recording and the jump all shrink by about ``s``; what the fit keeps is the
window's *span*.

The stride rule (:func:`choose_stride`) is chosen from the recording's shape alone, before any
loss is seen: the largest ``s`` that leaves every block at least ``c`` snapshot pairs per
fitted coordinate. Why ``c = 4`` (:data:`DEFAULT_C`):

The fit of a block of size ``m`` from ``n`` snapshot pairs is a least-squares problem
``U F = F'`` with ``F`` an ``m x n`` matrix: every row of ``U`` is ``m`` unknowns determined by
``n`` equations. What the fit cannot explain (the nonlinearity of training, minibatch noise,
rounding) enters ``U`` through ``F^+``, amplified by ``1 / s_min(F)`` in the directions the
window spans. For the part of ``F`` that behaves like noise, random-matrix theory gives the
scale of that amplification: the singular values of an ``m x n`` matrix of independent
unit-variance entries fill the Marchenko-Pastur interval ``[sqrt(n) - sqrt(m), sqrt(n) +
sqrt(m)]`` (Marchenko & Pastur 1967; the smallest one sits at the lower edge with high
probability, Davidson & Szarek 2001; Edelman 1988 for the square case). With ``n = c m``:

* ``cond(F) ~ (sqrt(c) + 1) / (sqrt(c) - 1)`` and ``s_min(F) ~ sqrt(n) (1 - 1 / sqrt(c))``;
* ``c = 4``: ``cond ~ 3`` and a noise amplification ``1 / s_min`` twice that of the
  infinitely oversampled limit ``c -> oo`` (where ``cond -> 1``); ``c = 2``: ``cond ~ 5.8``
  (3.4x); ``c = 1`` (as many pairs as coordinates): ``s_min`` falls to ``O(1 / sqrt(m))`` and
  ``cond(F)`` grows like ``m`` (Edelman), so the fit is barely determined;
* the same factor in regression terms: with a Gaussian design, the variance of the
  least-squares coefficients is ``n / (n - m - 1) ~ c / (c - 1)`` times that of the limit,
  4/3 at ``c = 4``.

``c = 4`` is thus the smallest oversampling at which the conditioning of the snapshot matrix
is within a small constant (about 3, and 2 for the amplification) of the well-determined
limit, and past which a larger ``c`` buys little (``c = 9``: cond 2, amplification 1.5x).
It is a property of the matrix shape, not of any loss, and it is stated per fitted block size
``n`` (blocks grow when other observables are stacked in: pass ``observables``).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from .errors import FitError
from .fit import singular_values
from .partition import Partition

#: snapshot pairs per fitted coordinate that :func:`choose_stride` keeps (argued in the module docstring)
DEFAULT_C = 4.0


def check_stride(stride) -> int:
    """``stride`` as an ``int``: a ``TypeError`` for a non-integer, a ``ValueError`` below 1."""
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral):
        raise TypeError(f"stride must be a positive integer number of optimizer steps, got {stride!r}")
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1 (1 keeps every step), got {stride!r}")
    return int(stride)


def strides_in(T: int, stride: int, name: str = "T") -> int:
    """How many applications of an ``stride``-step operator make ``T`` optimizer steps
    (``T / stride``); a ``ValueError`` naming the stride when ``T`` is not a multiple of it."""
    if T % stride:
        lo, hi = T // stride * stride, -(-T // stride) * stride
        near = f"{hi}" if lo == 0 else f"{lo} or {hi}"
        raise ValueError(
            f"{name}={T} is not a multiple of the fit's stride s={stride}: its operators advance {stride} "
            f"optimizer steps at a time; choose {name} as a multiple of {stride} (for example {near})")
    return T // stride


def _sizes(block_sizes, observables) -> list[int]:
    if isinstance(block_sizes, Partition):
        block_sizes = [int(g.shape[1]) for g in block_sizes.groups]
    elif isinstance(block_sizes, numbers.Integral):
        block_sizes = [block_sizes]
    try:
        sizes = list(block_sizes)
    except TypeError:
        raise TypeError("block_sizes must be a Partition, an int or a sequence of ints, got "
                        f"{type(block_sizes).__name__}") from None
    if not sizes:
        raise ValueError("block_sizes is empty: give the size of every block (or the partition)")
    for m in sizes:
        if isinstance(m, bool) or not isinstance(m, numbers.Integral):
            raise TypeError(f"block sizes must be integers, got {m!r}")
        if m < 1:
            raise ValueError(f"block sizes must be >= 1, got {m}")
    if observables is not None:
        sizes = [observables.n_features(int(m)) for m in sizes]
    return [int(m) for m in sizes]


def choose_stride(k: int, block_sizes, c: float = DEFAULT_C, observables=None) -> int:
    """The largest stride ``s`` that keeps at least ``c n`` snapshot pairs for every block.

    ``k``: the snapshots of the window at stride 1 (``t2 - t1 + 1``); ``block_sizes``: the
    block sizes ``m`` (ints, or a :class:`koopman_lib.Partition`); ``observables`` (optional):
    the dictionary the fit lifts into, so that the rule applies to the lifted size
    ``n = observables.n_features(m)`` and to the ``history - 1`` pairs a delay embedding uses up.
    At stride ``s`` the window keeps ``k_s = floor((k - 1) / s) + 1`` snapshots, ``k_s - h``
    pairs (``h = 1`` but for delays), and the rule is the largest ``s`` with
    ``k_s - h >= c n`` for the largest ``n``, i.e. ``s = floor((k - 1) / ceil(c n + h - 1))``.
    Returns 1 when even every step falls short (a longer window helps, a stride cannot).
    ``c``: :data:`DEFAULT_C` (= 4), argued in the module docstring from the conditioning of the
    snapshot matrix alone.

    To record at the chosen stride, end the window on its grid: ``t2 = t1 + s * ((t2 - t1) // s)``
    (the rule's ``k_s`` is exactly the snapshots that window keeps).
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer number of snapshots, got {k!r}")
    if k < 2:
        raise ValueError(f"k must be >= 2 snapshots (one pair), got {k}")
    if isinstance(c, bool) or not isinstance(c, numbers.Real):
        raise TypeError(f"c must be a real number of pairs per coordinate, got {c!r}")
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"c must be a finite number > 0, got {c!r}")
    n = max(_sizes(block_sizes, observables))
    h = 1 if observables is None else int(observables.history)
    need = math.ceil(c * n - 1e-9 * c * n) + h - 1     # pairs floor((k-1)/s) must reach (c n rounded up)
    return max(1, (int(k) - 1) // max(need, 1))


@dataclass
class StrideSpectrum:
    """Singular values of the snapshot matrix ``F`` of every block at stride 1 (``full``) and at
    stride ``stride`` (``strided``), both ``(P, r)`` descending (``r = min(m, pairs)``). The
    strided ``F`` is a subset of the full one's columns, so ``strided[i] <= full[i]`` (Cauchy
    interlacing); a stride that keeps the window's span keeps the leading ones near
    ``full / sqrt(stride)`` (the same directions, ``1 / stride`` of the columns)."""

    stride: int
    full: torch.Tensor
    strided: torch.Tensor

    def condition(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cond(F_full), cond(F_strided))`` per block ``(P,)`` (``s_max / s_min``)."""
        return (self.full[..., 0] / self.full[..., -1], self.strided[..., 0] / self.strided[..., -1])


def strided_window(snapshots: torch.Tensor, stride: int) -> torch.Tensor:
    """Every ``stride``-th snapshot of a recording ``(k, ...)`` (time first), ending with its last
    one: ``w(t2 - s (k_s - 1)), .., w(t2 - s), w(t2)``, ``k_s = floor((k - 1) / s) + 1``. A strided
    fit must end at ``t2``, the state it jumps from; this keeps the span :func:`choose_stride`
    counts. Equal, value for value, to what ``TrajectoryRecorder(t2 - s (k_s - 1), t2, stride=s)``
    records (a view, no copy)."""
    stride = check_stride(stride)
    k = snapshots.shape[0]
    if (k - 1) // stride < 1:
        raise ValueError(f"stride={stride} leaves fewer than 2 of the {k} snapshots; use a stride <= {max(1, k - 1)}")
    return snapshots[(k - 1) % stride::stride]


def floor_horizon(T: int, stride: int) -> int:
    """The largest multiple of ``stride`` that is at most ``T`` optimizer steps: the horizon a fit of
    stride ``s`` predicts in place of a ``T`` that is not a multiple of ``s`` (up to ``s - 1`` steps
    short, which can only understate the prediction's progress)."""
    stride = check_stride(stride)
    if T < stride:
        raise ValueError(f"T={T} is shorter than the stride s={stride}: a fit of stride {stride} cannot predict it")
    return T // stride * stride


def stride_spectrum(snapshots: torch.Tensor, stride: int) -> StrideSpectrum:
    """A diagnostic of a stride: the singular values of ``F`` for blocks ``snapshots``
    ``(P, m, k)`` (time last, every step; e.g. a group of ``Partition.time_last(recording)``)
    against those of ``snapshots[..., ::stride]`` (:func:`koopman_lib.fit.singular_values`)."""
    stride = check_stride(stride)
    if not isinstance(snapshots, torch.Tensor):
        raise TypeError(f"snapshots must be a torch.Tensor (P, m, k), got {type(snapshots).__name__}")
    if snapshots.ndim != 3:
        raise FitError(f"snapshots must be (P, m, k) with time last, got {tuple(snapshots.shape)}")
    if (snapshots.shape[-1] - 1) // stride < 1:
        raise ValueError(f"stride={stride} leaves fewer than 2 of the {snapshots.shape[-1]} snapshots; "
                         f"use a stride <= {max(1, snapshots.shape[-1] - 1)}")
    return StrideSpectrum(stride, singular_values(snapshots), singular_values(snapshots[..., ::stride]))


__all__ = ["DEFAULT_C", "StrideSpectrum", "check_stride", "choose_stride", "floor_horizon", "stride_spectrum",
           "strided_window", "strides_in"]
