"""The library's exception types and the input checks that raise them.

- :class:`FitError` (a ``ValueError``): a fit that cannot be done as asked; the message says why
  and what to do (too few snapshots, NaN in a recording, an unknown cutoff).
- :class:`NotFittedError`: an estimator used before :meth:`~koopman_lib.Koopman.fit`.
- Wrong argument types raise ``TypeError``; wrong values ``ValueError`` (or its subclasses
  ``FitError`` and :class:`~koopman_lib.partition.PartitionError`).
"""
from __future__ import annotations

import torch


class FitError(ValueError):
    """A finite-section fit that cannot be done as asked (the message says why and what to do)."""


class NotFittedError(ValueError, AttributeError):
    """An estimator was asked to predict, roll out or report fitted attributes before ``fit``."""


def as_batched(snapshots: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(snapshots, torch.Tensor):
        raise TypeError(f"snapshots must be a torch.Tensor, got {type(snapshots).__name__}")
    if snapshots.ndim == 2:
        return snapshots.unsqueeze(0), True
    if snapshots.ndim == 3:
        return snapshots, False
    raise FitError(
        f"snapshots must have shape (m, k) or (P, m, k); got {tuple(snapshots.shape)}. "
        "Put time along the last axis (columns in time order)."
    )


def check_finite(snapshots: torch.Tensor, what: str = "snapshots") -> None:
    """Raise :class:`FitError` naming the first blocks that hold NaN or inf."""
    x, _ = as_batched(snapshots)
    # a sum is non-finite whenever a term is, and it reads a strided view (a time-first recording
    # seen as blocks) about ten times faster than an elementwise test: the exact test runs only
    # when a sum is not finite (a NaN or inf, or an overflow of huge but finite values)
    if bool(torch.isfinite(x.sum(dim=(-2, -1))).all()):
        return
    bad = ~torch.isfinite(x).flatten(1).all(dim=1)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten()[:10].tolist()
        raise FitError(
            f"{what} contain NaN or inf in block(s) {idx} (of {x.shape[0]}). The recorded "
            "trajectory diverged or was corrupted; record a window before the divergence."
        )
