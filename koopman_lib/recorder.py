"""Record a weight trajectory w(t1) .. w(t2) in float64, stored or streamed into Gram matrices."""
from __future__ import annotations

import torch

from .operators import GramAccumulator
from .partition import Partition


class TrajectoryRecorder:
    """Snapshot the flat parameters after each optimizer step ``t`` with ``t1 <= t <= t2``.

    Call ``recorder(t, theta)`` after every step (steps outside the window are ignored).
    ``theta`` is ``(D,)`` or ``(*batch, D)`` (e.g. an ensemble of ``E`` inits).

    ``mode="stored"`` keeps all snapshots in one preallocated ``(k, *batch, D)`` float64
    tensor (``k = t2 - t1 + 1``), for analyses that need the trajectory.
    ``mode="streaming"`` needs a ``partition`` and keeps only the per-block Gram
    matrices (updated every ``chunk`` steps with batched GEMMs); memory ``O(sum P m^2)``.
    """

    def __init__(self, n_params: int, t1: int, t2: int, batch_shape: tuple[int, ...] = (),
                 mode: str = "stored", partition: Partition | None = None, chunk: int = 64,
                 dtype=torch.float64):
        if not (0 <= t1 < t2):
            raise ValueError(f"need 0 <= t1 < t2, got t1={t1}, t2={t2}")
        if mode not in ("stored", "streaming"):
            raise ValueError(f"mode must be 'stored' or 'streaming', got {mode!r}")
        if mode == "streaming" and partition is None:
            raise ValueError("streaming mode needs the partition whose blocks it accumulates")
        self.n_params, self.t1, self.t2 = n_params, t1, t2
        self.batch_shape = tuple(batch_shape)
        self.mode, self.partition, self.dtype = mode, partition, dtype
        self.k = t2 - t1 + 1
        self.count = 0
        if mode == "stored":
            self.snapshots = torch.empty((self.k,) + self.batch_shape + (n_params,), dtype=dtype)
        else:
            self.chunk = max(2, chunk)
            self._buffer = torch.empty((self.chunk,) + self.batch_shape + (n_params,), dtype=dtype)
            self._fill = 0
            n_batch = int(torch.tensor(self.batch_shape).prod()) if self.batch_shape else 1
            self.accumulators = [GramAccumulator(n_batch * g.shape[0], g.shape[1], dtype) for g in partition.groups]

    @property
    def complete(self) -> bool:
        return self.count == self.k

    def __call__(self, step: int, theta: torch.Tensor) -> None:
        if step < self.t1 or step > self.t2:
            return
        if step != self.t1 + self.count:
            raise ValueError(f"recorder expected step {self.t1 + self.count}, got {step}; call it after every step")
        if tuple(theta.shape) != self.batch_shape + (self.n_params,):
            raise ValueError(f"theta shape {tuple(theta.shape)} != expected {self.batch_shape + (self.n_params,)}")
        if self.mode == "stored":
            self.snapshots[self.count].copy_(theta.detach())
        else:
            self._buffer[self._fill].copy_(theta.detach())
            self._fill += 1
            if self._fill == self.chunk or step == self.t2:
                self._flush()
        self.count += 1

    def _flush(self) -> None:
        buf = self._buffer[: self._fill]
        for acc, blocks in zip(self.accumulators, self.partition.blocks(buf)):
            c = blocks.shape[0]
            # (c, *batch, P, m) -> (batch*P, m, c)
            acc.update(blocks.reshape(c, -1, blocks.shape[-1]).permute(1, 2, 0))
        self._fill = 0

    def last(self) -> torch.Tensor:
        """The most recent snapshot, ``(*batch, D)`` (a copy)."""
        if self.count == 0:
            raise ValueError("nothing recorded yet")
        if self.mode == "stored":
            return self.snapshots[self.count - 1].clone()
        blocks = [a.last.squeeze(-1) for a in self.accumulators]
        blocks = [b.reshape(self.batch_shape + (g.shape[0], g.shape[1])) for b, g in zip(blocks, self.partition.groups)]
        return self.partition.assemble(blocks)
