"""Record a weight trajectory w(t1) .. w(t2) in float64, stored or streamed into Gram matrices."""
from __future__ import annotations

import math
import os

import torch

from .solvers import GramAccumulator
from .partition import Partition
from .stride import check_stride


class TrajectoryRecorder:
    """Snapshot the flat parameters after each optimizer step ``t`` with ``t1 <= t <= t2``.

    Call ``recorder(t, theta)`` after every step (steps outside the window are ignored).
    ``theta`` is ``(D,)`` or ``(*batch, D)`` (e.g. an ensemble of ``E`` inits).

    ``stride=s`` keeps only the steps ``t1, t1 + s, .., t2`` (``t2 - t1`` must be a multiple
    of ``s``): ``k = (t2 - t1) / s + 1`` snapshots are allocated, and the call for a skipped
    step returns before touching ``theta`` (the recording cost shrinks by about ``s``). A
    :class:`koopman_lib.Koopman` fitted on it fits the ``s``-step map ``w(t + s) = U_s w(t)``.

    ``mode="stored"`` keeps all snapshots in one preallocated ``(k, *batch, D)`` float64
    tensor (``k = (t2 - t1) / stride + 1``), for analyses that need the trajectory.
    ``mode="streaming"`` needs a ``partition`` and keeps only the per-block Gram
    matrices (updated every ``chunk`` steps with batched GEMMs); memory ``O(sum P m^2)``.

    Faults: the memory a recording needs is estimated before anything is allocated and
    refused (``MemoryError``) above ``memory_limit`` bytes (default: the machine's physical
    memory). A snapshot of the wrong shape or out of order raises before anything is
    written. A stored recording keeps non-finite snapshots as they are (the fit refuses
    them, naming the block); a streaming recording refuses them at the step they occur,
    so its Gram matrices are never left half-updated.
    """

    def __init__(self, n_params: int, t1: int, t2: int, batch_shape: tuple[int, ...] = (),
                 mode: str = "stored", partition: Partition | None = None, chunk: int = 64,
                 dtype=torch.float64, memory_limit: int | None = None, stride: int = 1):
        if not (0 <= t1 < t2):
            raise ValueError(f"need 0 <= t1 < t2, got t1={t1}, t2={t2}")
        stride = check_stride(stride)
        if (t2 - t1) % stride:
            lo, hi = t1 + (t2 - t1) // stride * stride, t1 + -(-(t2 - t1) // stride) * stride
            raise ValueError(
                f"stride={stride} does not divide the window t2 - t1 = {t2} - {t1} = {t2 - t1}; choose t2 on "
                f"the grid t1 + j*stride (for example t2={f'{lo} or ' if lo > t1 else ''}{hi}) or a stride "
                f"that divides {t2 - t1}")
        k = (t2 - t1) // stride + 1
        if mode not in ("stored", "streaming"):
            raise ValueError(f"mode must be 'stored' or 'streaming', got {mode!r}")
        if mode == "streaming" and partition is None:
            raise ValueError("streaming mode needs the partition whose blocks it accumulates")
        if mode == "streaming" and partition.n_params != n_params:
            raise ValueError(f"the partition covers {partition.n_params} parameters but n_params={n_params}; "
                             "build the partition from the same model")
        need = self.estimate_bytes(n_params, k, batch_shape, mode, partition, chunk,
                                   torch.empty((), dtype=dtype).element_size())
        limit = physical_memory() if memory_limit is None else memory_limit
        if limit is not None and need > limit:
            raise MemoryError(
                f"a {mode} recording of {k} snapshots x {math.prod(batch_shape)} member(s) x "
                f"{n_params} parameters needs about {need / 2**30:.1f} GiB (limit {limit / 2**30:.1f} GiB); "
                "record a shorter window, fewer members, use mode='streaming' with a finer partition, "
                "or raise memory_limit"
            )
        self.n_params, self.t1, self.t2 = n_params, t1, t2
        self.batch_shape = tuple(batch_shape)
        self.mode, self.partition, self.dtype = mode, partition, dtype
        self.k, self.stride = k, stride
        self.count = 0
        self.recorded_dtype = None
        self._shape = torch.Size(self.batch_shape + (n_params,))
        if mode == "stored":
            self.snapshots = torch.empty((self.k,) + self.batch_shape + (n_params,), dtype=dtype)
            # one view per snapshot, made once (indexing per step costs more than the copy of a
            # small network's weights); dropped when the window is complete, so that they never
            # keep the snapshots alive
            self._rows = self.snapshots.unbind(0)
        else:
            self.chunk = max(2, chunk)
            self._buffer = torch.empty((self.chunk,) + self.batch_shape + (n_params,), dtype=dtype)
            self._fill = 0
            n_batch = int(torch.tensor(self.batch_shape).prod()) if self.batch_shape else 1
            self.accumulators = [GramAccumulator(n_batch * g.shape[0], g.shape[1], dtype) for g in partition.groups]

    @staticmethod
    def estimate_bytes(n_params: int, k: int, batch_shape: tuple[int, ...] = (), mode: str = "stored",
                       partition: Partition | None = None, chunk: int = 64, itemsize: int = 8) -> int:
        """Bytes a recording allocates: ``k`` snapshots (stored) or the chunk buffer plus
        two ``(P, m, m)`` Gram matrices per block group (streaming)."""
        n_batch = math.prod(batch_shape)
        if mode == "stored":
            return k * n_batch * n_params * itemsize
        grams = sum(2 * n_batch * int(g.shape[0]) * int(g.shape[1]) ** 2 for g in partition.groups)
        return (max(2, chunk) * n_batch * n_params + grams) * itemsize

    @property
    def complete(self) -> bool:
        return self.count == self.k

    def __call__(self, step: int, theta: torch.Tensor) -> None:
        if step < self.t1 or step > self.t2 or (step - self.t1) % self.stride:
            return                                                      # outside the window, or skipped
        if step != self.t1 + self.count * self.stride:
            raise ValueError(f"recorder expected step {self.t1 + self.count * self.stride}, got {step}; "
                             "call it after every step")
        if theta.shape != self._shape:
            raise ValueError(f"theta shape {tuple(theta.shape)} != expected {tuple(self._shape)}")
        if self.count == 0:
            self.recorded_dtype = theta.dtype   # the precision of the weights, whatever they are stored in
        if self.mode == "stored":
            self._rows[self.count].copy_(theta.detach() if theta.requires_grad else theta)
            if self.count + 1 == self.k:
                self._rows = None
        else:
            if not bool(torch.isfinite(theta).all()):
                raise ValueError(
                    f"theta holds NaN or inf at step {step}: training diverged inside the window "
                    f"t1={self.t1}..t2={self.t2}; nothing was recorded for this step. Record a window "
                    "that ends before the divergence."
                )
            self._buffer[self._fill].copy_(theta.detach())
            self._fill += 1
            if self._fill == self.chunk or step == self.t2:
                self._flush()
        self.count += 1

    def _flush(self) -> None:
        buf = self._buffer[: self._fill]
        for acc, blocks in zip(self.accumulators, self.partition.time_last(buf)):
            acc.update(blocks)                                          # (batch*P, m, c)
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

    def window(self, t1: int, t2: int) -> torch.Tensor:
        """The stored snapshots of steps ``t1..t2`` (inclusive), ``(t2 - t1 + 1, *batch, D)``
        (a view; at stride ``s``, the ``(t2 - t1) / s + 1`` kept ones, ``t1`` and ``t2`` on the
        recorded grid). Raises ``ValueError`` for a window outside what has been recorded."""
        if self.mode != "stored":
            raise ValueError("a streaming recording keeps no snapshots; record with mode='stored'")
        s = self.stride
        last = self.t1 + (self.count - 1) * s
        if not (self.t1 <= t1 < t2 <= last):
            have = f"steps {self.t1}..{last}" if self.count else "nothing yet"
            raise ValueError(
                f"window {t1}..{t2} is outside the recording ({have}); choose "
                f"{self.t1} <= t1 < t2 <= {last}, or record a wider window"
            )
        if (t1 - self.t1) % s or (t2 - self.t1) % s:
            raise ValueError(f"window {t1}..{t2} is off the recorded grid {self.t1}, {self.t1 + s}, .. "
                             f"(stride {s}); choose t1 and t2 on it")
        return self.snapshots[(t1 - self.t1) // s: (t2 - self.t1) // s + 1]


def physical_memory() -> int | None:
    """Total physical memory in bytes, or ``None`` where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
