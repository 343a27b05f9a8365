"""Choosing the data window ``t1..t2`` of Koopman training without looking at the future.

The paper fixes the window by hand. Two criteria computed from the window alone:

* **spectral**: fit the block operators on the window and measure how far the edge of each
  block's spectrum is from the unit circle *over the horizon* ``T``:
  ``s_b = |T log rho_b|`` (``rho_b`` the spectral radius of block ``b``), so ``exp(s_b)`` is
  the factor by which the block's slowest mode grows or shrinks during the jump. The score
  of a window is a quantile ``q`` of ``s_b`` over blocks (``q = 1``: the worst block).
  Trajectories that have settled into slow, non-growing linear dynamics have their leading
  eigenvalues just at the circle and a score near 0; growing modes (``rho > 1``) or fast
  decay of a block that still carries weight (``rho < 1``) give large scores.
* **held-out**: fit on all but the last ``h`` snapshots, then predict those ``h`` snapshots
  (``one_step``: from each true state one step ahead; ``multi_step``: ``h`` steps from the
  state at ``t2 - h``). Errors are relative to how far the weights actually moved, so a
  value of 1 means "no better than standing still".

Snapshots are time-first ``(k, *batch, D)``; scores are per ensemble member ``(*batch,)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .estimator import Koopman
from .errors import FitError
from .partition import Partition

CRITERIA = ("spectral", "one_step", "multi_step")


@dataclass(frozen=True)
class Window:
    """Snapshots ``t1..t2`` inclusive (``t2 - t1 + 1`` of them)."""

    t1: int
    t2: int

    def __post_init__(self):
        if not 0 <= self.t1 < self.t2:
            raise ValueError(f"need 0 <= t1 < t2, got t1={self.t1}, t2={self.t2}")

    @property
    def length(self) -> int:
        return self.t2 - self.t1


def window_grid(starts: Sequence[int], lengths: Sequence[int], t_max: int) -> list[Window]:
    """All windows ``(t1, t1 + length)`` with ``t1 + length <= t_max``, starts outer, lengths inner."""
    return [Window(s, s + L) for s in starts for L in lengths if s + L <= t_max]


def spectral_score(radii: Sequence[torch.Tensor], T: int, q: float = 1.0) -> torch.Tensor:
    """``q``-quantile over blocks of ``|T log rho_b|``.

    ``radii``: per group ``(*batch, P_g)`` spectral radii (``Koopman.spectral_radii_``).
    Returns ``(*batch,)``.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    r = torch.cat([x.reshape(x.shape[:-1] + (-1,)) for x in radii], dim=-1).to(torch.float64)
    s = (T * torch.log(r.clamp_min(1e-300))).abs()
    return torch.quantile(s, q, dim=-1) if q < 1 else s.amax(dim=-1)


def _relative(err: torch.Tensor, move: torch.Tensor, batch_ndim: int) -> torch.Tensor:
    dims = tuple(range(batch_ndim, err.ndim))
    num = err.pow(2).sum(dim=dims).sqrt() if dims else err.abs()
    den = move.pow(2).sum(dim=dims).sqrt() if dims else move.abs()
    return num / den.clamp_min(torch.finfo(den.dtype).tiny)


def holdout_errors(snapshots: torch.Tensor, partition: Partition, holdout: int, method: str = "svd",
                   cutoff=None, ridge: float = 0.0, fit=None) -> dict[str, torch.Tensor]:
    """Fit on ``snapshots[:-holdout]`` and score the prediction of the held-out snapshots.

    ``one_step``: ``||U w(t) - w(t+1)|| / ||w(t+1) - w(t)||`` over all held-out pairs
    (norms over blocks, weights and times); ``multi_step``: ``||w_hat(t2) - w(t2)|| /
    ||w(t2) - w(t2 - h)||`` with ``w_hat`` evolved ``h`` steps from ``w(t2 - h)``. Both
    ``(*batch,)``. ``fit(snapshots) -> Koopman`` (fitted) replaces the default
    ``Koopman(partition, cutoff, ridge, method=method).fit`` in float64 (``method="pinv"`` is
    ``"svd"``, whose default cutoff is the paper's pinv cutoff).
    """
    fit = fit or _default_fit(partition, method, cutoff, ridge)
    k = snapshots.shape[0]
    if not 1 <= holdout <= k - 3:
        raise FitError(f"holdout must be between 1 and k - 3 = {k - 3} snapshots, got {holdout}")
    batch = tuple(snapshots.shape[1:-1])
    train, test = snapshots[: k - holdout], snapshots[k - holdout - 1:]  # test starts at the last train state
    tr = fit(train)
    test = test.to(torch.float64)
    err2 = torch.zeros(batch, dtype=torch.float64)
    move2 = torch.zeros(batch, dtype=torch.float64)
    for op, x in zip(tr.operators_, partition.time_last(test)):          # x: (batch*P, m, h+1)
        # one step ahead from every held-out state but the last
        pred = _one_step(op, x[..., :-1])
        e = (pred - x[..., 1:]).reshape(batch + (-1,))
        mv = (x[..., 1:] - x[..., :-1]).reshape(batch + (-1,))
        err2 += e.pow(2).sum(-1)
        move2 += mv.pow(2).sum(-1)
    one_step = err2.sqrt() / move2.sqrt().clamp_min(1e-300)
    pred = tr.predict(test[0], holdout)
    multi = _relative(pred - test[-1], test[-1] - test[0], len(batch))
    return {"one_step": one_step, "multi_step": multi}


def _one_step(op, x: torch.Tensor) -> torch.Tensor:
    """``U x`` for the :class:`koopman_lib.fit.Operators` ``op`` and states ``x`` ``(P, n, h)``
    (each column one step ahead), dense or low-rank ``U = A B``."""
    x = x.to(op.dtype)
    return op.U @ x if not op.low_rank else op.A @ (op.B @ x)


def _default_fit(partition, method, cutoff, ridge):
    method = "svd" if method == "pinv" else method

    def fit(snapshots):
        c = "paper" if cutoff is None and method == "svd" else cutoff     # the paper's pinv unless told
        return Koopman(partition, cutoff=c, ridge=ridge, method=method).fit(snapshots.to(torch.float64))
    return fit


def score_window(snapshots: torch.Tensor, partition: Partition, T: int, holdout: int, q: float = 1.0,
                 method: str = "svd", cutoff=None, ridge: float = 0.0, fit=None,
                 fitted: Koopman | None = None) -> dict[str, torch.Tensor]:
    """All criteria for one window (``snapshots`` are exactly the window ``t1..t2``).

    ``fit`` as in :func:`holdout_errors`; ``fitted``: the :class:`Koopman` already fitted on the
    whole window (saves one fit). Returns per-member ``spectral``, ``max_radius``, ``one_step``,
    ``multi_step`` ``(*batch,)``.
    """
    fit = fit or _default_fit(partition, method, cutoff, ridge)
    tr = fitted if fitted is not None else fit(snapshots)
    out = {"spectral": spectral_score(tr.spectral_radii_, T, q), "max_radius": tr.spectral_radius_}
    out.update(holdout_errors(snapshots, partition, holdout, fit=fit))
    return out


def choose(scores: torch.Tensor) -> torch.Tensor:
    """Index of the best (smallest) score per member. ``scores`` ``(n_windows, *batch)`` ->
    ``(*batch,)``; NaN scores are never chosen unless all are NaN."""
    s = torch.nan_to_num(scores.to(torch.float64), nan=float("inf"))
    return s.argmin(dim=0)


def rank_agreement(score: torch.Tensor, outcome: torch.Tensor) -> float:
    """Spearman rank correlation between ``-score`` (a criterion, lower = better) and an outcome
    (higher = better) over the finite pairs: ``+1`` means the criterion orders the windows
    exactly as the outcome does, ``0`` that it carries no information."""
    from scipy.stats import spearmanr
    a, b = (-score).flatten().to(torch.float64), outcome.flatten().to(torch.float64)
    ok = torch.isfinite(a) & torch.isfinite(b)
    if int(ok.sum()) < 3 or a[ok].unique().numel() < 2 or b[ok].unique().numel() < 2:
        return float("nan")
    return float(spearmanr(a[ok].numpy(), b[ok].numpy()).statistic)
