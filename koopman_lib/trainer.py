"""KoopmanTrainer: fit block operators on a recorded trajectory, then evolve the weights."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from .evolve import iterate as _iterate, jump as _jump
from .operators import FitError, clip_spectrum, finite_section, spectral_radius
from .partition import Partition
from .recorder import TrajectoryRecorder

DEFAULT_MEMORY_LIMIT = 4 * 2**30  # bytes


@dataclass
class Rollout:
    """Result of a guarded step-by-step evolution.

    ``theta``: the last finite weights ``(*batch, D)``; ``steps``: the steps at which
    ``losses`` were evaluated; ``stopped_at``: the step at which the guard stopped the
    evolution (``None`` if it ran to the end) and ``reason``.
    """

    theta: torch.Tensor
    steps: list[int] = field(default_factory=list)
    losses: list = field(default_factory=list)
    stopped_at: int | None = None
    reason: str | None = None


class KoopmanTrainer:
    """Fit per-block Koopman operators (finite section) and evolve weights with them.

    Parameters mirror :func:`koopman_lib.finite_section`; ``clip_radius`` optionally
    projects eigenvalues onto the disk of that radius after fitting.
    The recording passed to :meth:`fit` is only read, never modified.
    """

    def __init__(self, partition: Partition, method: str = "pinv", rcond: float | None = None,
                 ridge: float = 0.0, rank: int | None = None, clip_radius: float | None = None,
                 memory_limit: int = DEFAULT_MEMORY_LIMIT):
        self.partition = partition
        self.method, self.rcond, self.ridge, self.rank = method, rcond, ridge, rank
        self.clip_radius = clip_radius
        self.memory_limit = memory_limit
        self.operators_: list[torch.Tensor] | None = None
        self.batch_shape_: tuple[int, ...] = ()

    # -- fitting ---------------------------------------------------------------------------
    def estimate_bytes(self, n_snapshots: int, n_batch: int = 1, itemsize: int = 8) -> int:
        """Rough peak memory of a fit: operators, the snapshot blocks and an SVD workspace."""
        peak = 0
        for g in self.partition.groups:
            P, m = int(g.shape[0]) * n_batch, int(g.shape[1])
            peak = max(peak, P * (3 * m * m + 3 * m * n_snapshots) * itemsize)
        return peak

    def _check_memory(self, k: int, n_batch: int, itemsize: int) -> None:
        need = self.estimate_bytes(k, n_batch, itemsize)
        if need > self.memory_limit:
            raise MemoryError(
                f"fitting {self.partition.describe()} on {k} snapshots needs about {need / 2**30:.1f} GiB "
                f"(limit {self.memory_limit / 2**30:.1f} GiB); use a finer partition (node or quasi_node), "
                "fewer snapshots, or raise memory_limit"
            )

    def fit(self, snapshots: torch.Tensor) -> "KoopmanTrainer":
        """Fit on ``snapshots`` ``(k, D)`` or ``(k, *batch, D)`` (time first)."""
        if snapshots.ndim < 2:
            raise FitError(f"snapshots must be (k, D) or (k, *batch, D), got {tuple(snapshots.shape)}")
        k = snapshots.shape[0]
        batch = tuple(snapshots.shape[1:-1])
        n_batch = int(torch.tensor(batch).prod()) if batch else 1
        self._check_memory(k, n_batch, snapshots.element_size())
        ops = []
        for g, blocks in zip(self.partition.groups, self.partition.blocks(snapshots)):
            x = blocks.reshape(k, -1, g.shape[1]).permute(1, 2, 0)  # (batch*P, m, k)
            ops.append(self._finish(finite_section(x, self.method, self.rank, self.ridge, self.rcond)))
        self.operators_, self.batch_shape_ = ops, batch
        return self

    def fit_recorder(self, recorder: TrajectoryRecorder) -> "KoopmanTrainer":
        """Fit from a recorder (stored: as :meth:`fit`; streaming: Cholesky or ``eigh`` on its
        Gram matrices)."""
        if not recorder.complete:
            raise FitError(f"the recording holds {recorder.count} of {recorder.k} snapshots; finish t1..t2 first")
        if recorder.mode == "stored":
            return self.fit(recorder.snapshots)
        if self.method not in ("cholesky", "eigh"):
            raise FitError("a streaming recording keeps only Gram matrices: fit it with method='cholesky' or 'eigh'")
        self.operators_ = [self._finish(a.operators(self.ridge, self.method, self.rcond)) for a in recorder.accumulators]
        self.batch_shape_ = recorder.batch_shape
        return self

    def _finish(self, U: torch.Tensor) -> torch.Tensor:
        return clip_spectrum(U, self.clip_radius) if self.clip_radius is not None else U

    # -- evolution -------------------------------------------------------------------------
    def _require_fit(self, theta0: torch.Tensor) -> list[torch.Tensor]:
        if self.operators_ is None:
            raise FitError("call fit() before predicting")
        if tuple(theta0.shape) != self.batch_shape_ + (self.partition.n_params,):
            raise FitError(
                f"theta0 shape {tuple(theta0.shape)} does not match the fitted recording "
                f"{self.batch_shape_ + (self.partition.n_params,)}"
            )
        return [b.reshape(-1, b.shape[-1]) for b in self.partition.blocks(theta0.to(self.operators_[0].dtype))]

    def _assemble(self, flat_blocks: list[torch.Tensor]) -> torch.Tensor:
        blocks = [b.reshape(self.batch_shape_ + tuple(g.shape)) for b, g in zip(flat_blocks, self.partition.groups)]
        return self.partition.assemble(blocks)

    def predict(self, theta0: torch.Tensor, T: int, method: str = "auto") -> torch.Tensor:
        """``theta(t2 + T)`` from ``theta0 = theta(t2)`` in one jump; ``(*batch, D)``."""
        w0 = self._require_fit(theta0)
        return self._assemble([_jump(U, w, T, method) for U, w in zip(self.operators_, w0)])

    def iterate(self, theta0: torch.Tensor, T: int) -> Iterator[torch.Tensor]:
        """Yield ``theta(t2+1) .. theta(t2+T)`` step by step, each ``(*batch, D)``.

        The fit, the shape of ``theta0`` and ``T`` are checked when this is called."""
        w0 = self._require_fit(theta0)
        streams = [_iterate(U, w, T) for U, w in zip(self.operators_, w0)]
        return (self._assemble(list(step_blocks)) for step_blocks in zip(*streams))

    def rollout(self, theta0: torch.Tensor, T: int, loss_fn: Callable[[torch.Tensor], object] | None = None,
                every: int = 1, max_growth: float = 1e3, loss_limit: float | None = None) -> Rollout:
        """Guarded step-by-step evolution.

        ``loss_fn(theta)`` is called at step 0, every ``every`` steps and at step ``T``.
        The guard stops at the first step whose weights are non-finite, whose norm exceeds
        ``max_growth`` times the initial norm, or whose loss is non-finite or above
        ``loss_limit``; ``theta`` is then the last weights that passed.
        """
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer number of steps, got {every!r}")
        if not max_growth > 0:
            raise ValueError(f"max_growth must be > 0, got {max_growth!r}")
        steps = self.iterate(theta0, T)  # checks the fit, the shape of theta0 and T first
        out = Rollout(theta=theta0.detach().clone())
        norm0 = float(theta0.double().norm())
        if loss_fn is not None:
            out.steps.append(0)
            out.losses.append(loss_fn(out.theta))
        for t, theta in enumerate(steps, start=1):
            reason = None
            if not bool(torch.isfinite(theta).all()):
                reason = "non-finite weights"
            elif float(theta.norm()) > max_growth * max(norm0, 1e-12):
                reason = f"weight norm grew more than {max_growth:g}x"
            loss = None
            if reason is None and loss_fn is not None and (t % every == 0 or t == T):
                loss = loss_fn(theta)
                worst = float(torch.as_tensor(loss, dtype=torch.float64).max())
                if worst != worst or worst == float("inf"):
                    reason = "non-finite loss"
                elif loss_limit is not None and worst > loss_limit:
                    reason = f"loss above {loss_limit:g}"
            if reason is not None:
                out.stopped_at, out.reason = t, reason
                return out
            out.theta = theta
            if loss is not None:
                out.steps.append(t)
                out.losses.append(loss)
        return out

    # -- diagnostics -----------------------------------------------------------------------
    def spectral_radii(self) -> list[torch.Tensor]:
        """Per group, spectral radius of every block operator, ``(*batch, P_g)``."""
        if self.operators_ is None:
            raise FitError("call fit() first")
        return [spectral_radius(U).reshape(self.batch_shape_ + (g.shape[0],))
                for U, g in zip(self.operators_, self.partition.groups)]

    def max_spectral_radius(self) -> torch.Tensor:
        """Largest spectral radius over all blocks, ``(*batch,)``."""
        return torch.cat([r.reshape(self.batch_shape_ + (-1,)) for r in self.spectral_radii()], -1).amax(-1)
