"""The front door: :class:`Koopman`, an estimator in the spirit of PyDMD's ``DMD().fit(X)``.

>>> kp = Koopman(partition, cutoff="paper").fit(recording)    # (k, *batch, D), time first
>>> theta_T = kp.predict(theta_t2, T=1000)                      # (*batch, D) in one jump
>>> kp.spectral_radius_                                         # (*batch,)

Construct with a partition and a fit spec, ``fit`` a recording, then ``predict`` (one jump),
``rollout`` (guarded, strided evaluation) or ``path`` (every step, in chunks). Fitted
attributes end in ``_``. Every fit goes through :mod:`koopman_lib.fit` and every evolution
through :func:`koopman_lib.evolve.rollout` / :mod:`koopman_lib.evolve`.
"""
from __future__ import annotations

import copy
import math
from typing import Iterator

import torch

from .evolve import Rollout, _check_T, jump as _jump, path as _path, rollout as _rollout
from .fit import (CHUNK_BYTES, DEFAULT_FIT, FITS, Cutoff, FitSpec, Operators, fit_operators, named_fit,
                  recorded_precision)
from .observables import Identity
from .errors import FitError, NotFittedError
from .solvers import ESTIMATOR_METHODS, finite_section
from .partition import Partition
from .recorder import TrajectoryRecorder
from .stride import DEFAULT_C, check_stride, choose_stride, strided_window, strides_in

DEFAULT_MEMORY_LIMIT = 4 * 2**30  # bytes
METHODS = ESTIMATOR_METHODS

#: The book's strided fits: a named fit of :data:`koopman_lib.fit.FITS` fitted on every ``s``-th
#: snapshot of the window (the ``s``-step map ``U_s``), ``s`` chosen by
#: :func:`koopman_lib.stride.choose_stride` from the recording's shape alone (``c = 4`` snapshot
#: pairs per coordinate of the largest block), reported clipped and unclipped as the default is.
STRIDED_FITS = {"default-strided": "default", "default-strided-stabilised": "default-stabilised"}
#: every fit name :func:`fit_named` knows: the book's fits
BOOK_FITS = tuple(FITS) + tuple(STRIDED_FITS)


class Koopman:
    """Per-block Koopman operators of a network's weight trajectory (finite section).

    Parameters
    ----------
    partition : :class:`koopman_lib.Partition`
        Which weights share an operator (``make_partition(model, "node")``).
    cutoff : :class:`koopman_lib.fit.Cutoff` value
        ``"resolution"`` (default: the singular values the recorded weights resolve, from the
        recording's precision), ``"paper"``, ``"machine"``, ``"jax"``, ``"float32"``, a relative
        float, an integer rank or ``0`` (Gavish-Donoho); see :mod:`koopman_lib.fit`.
    ridge, clip : float
        Tikhonov filter (relative to ``s_max``) and eigenvalue-clipping radius.
    fit : a name of :data:`koopman_lib.fit.FITS` (``"paper"``, ``"default"``,
        ``"default-stabilised"``) or a :class:`~koopman_lib.fit.FitSpec`, instead of ``cutoff``,
        ``ridge`` and ``clip``.
    method : ``"svd"`` | ``"lstsq"`` | ``"cholesky"`` | ``"eigh"``
        ``svd`` (default) is the one factorisation of :mod:`koopman_lib.fit`; the others are
        the normal-equation and LAPACK solvers of :func:`koopman_lib.finite_section` (the only
        ones a streaming recording, which keeps Gram matrices, can use: ``cholesky``, ``eigh``).
    observables : a dictionary of :mod:`koopman_lib.observables` (default: the identity)
        The lifted state evolves linearly; the weights are its first ``m`` rows.
    dtype : the dtype of the fit (float64).
    stride : int, optional
        Optimizer steps between consecutive snapshots: the fit is the ``s``-step map
        ``w(t + s) = U_s w(t)`` and ``predict`` / ``rollout`` / ``path`` take ``T`` (and
        ``every``) in optimizer steps, multiples of ``s``, applying the operators ``T / s``
        times. Default: the recorder's ``stride`` when fitted from a
        :class:`koopman_lib.TrajectoryRecorder`, else 1; a plain tensor recorded every ``s``
        steps needs ``stride=s``. With delay observables the delays are ``s`` steps apart (the
        last ``h`` snapshots of the strided recording start a prediction). ``stride_`` is the
        fitted stride; :attr:`spectral_radius_` is that of ``U_s`` (per ``s`` steps).
        :func:`koopman_lib.stride.choose_stride` picks ``s`` from the recording's shape alone.
    """

    def __init__(self, partition: Partition, cutoff=None, ridge: float = 0.0, clip: float | None = None,
                 method: str = "svd", observables=None, dtype=torch.float64,
                 memory_limit: int = DEFAULT_MEMORY_LIMIT, fit: str | FitSpec | None = None,
                 stride: int | None = None):
        if not isinstance(partition, Partition):
            raise TypeError(f"partition must be a koopman_lib.Partition (make_partition(model, 'node')), "
                           f"got {type(partition).__name__}")
        if method not in METHODS:
            raise FitError(f"unknown method {method!r}; choose one of {METHODS}")
        if method == "cholesky" and cutoff is not None:
            raise FitError("method='cholesky' keeps every singular value; drop cutoff or use method='svd'")
        if fit is not None:
            if cutoff is not None or ridge or clip is not None:
                raise FitError("give either fit= (a name or a FitSpec) or cutoff/ridge/clip, not both")
            spec = fit if isinstance(fit, FitSpec) else named_fit(fit)
            cutoff, ridge, clip = spec.cutoff, spec.ridge, spec.clip
        if method != "svd" and (ridge or clip is not None):
            raise FitError(f"ridge and clip are options of method='svd', not {method!r}")
        self.partition, self.method, self.dtype = partition, method, dtype
        self.spec = FitSpec(DEFAULT_FIT.cutoff if cutoff is None else cutoff, ridge, clip)
        self.cutoff = None if cutoff is None else self.spec.cutoff
        self.observables = observables or Identity()
        self.memory_limit = memory_limit
        self.stride = None if stride is None else check_stride(stride)
        self.stride_: int | None = None
        self.operators_: list[Operators] | None = None
        self.recorded_dtype_ = None
        self.stats_: list[dict] = []
        self.batch_shape_: tuple[int, ...] = ()

    # -- fitting ---------------------------------------------------------------------------
    def estimate_bytes(self, n_snapshots: int, n_batch: int = 1, itemsize: int = 8) -> int:
        """Rough peak memory of a fit: the fitted operators of every group (dense ``n x n``, or
        the thin factors ``A``, ``B`` when ``n > k - 1``) plus the largest working set: the
        ``svd`` fit factorises about :data:`koopman_lib.fit.CHUNK_BYTES` of snapshots at a time
        (several copies), after lifting a whole group when the observables are not the identity;
        the other methods hold a whole group and its Gram-size workspace."""
        k = n_snapshots
        lifted = type(self.observables) is not Identity
        ops, work = 0, 0
        for g in self.partition.groups:
            P, n = int(g.shape[0]) * n_batch, self.observables.n_features(int(g.shape[1]))
            ops += P * n * min(n, 2 * max(k - 1, 1)) * itemsize
            if self.method == "svd":
                group = (P * n * k * itemsize if lifted else 0) + 4 * max(CHUNK_BYTES, n * k * itemsize)
            else:
                group = P * (3 * n * n + 3 * n * k) * itemsize
            work = max(work, group)
        return int(ops + work)

    def _check_memory(self, k: int, n_batch: int) -> None:
        need = self.estimate_bytes(k, n_batch, torch.empty((), dtype=self.dtype).element_size())
        if need > self.memory_limit:
            raise MemoryError(
                f"fitting {self.partition.describe()} on {k} snapshots needs about {need / 2**30:.1f} GiB "
                f"(limit {self.memory_limit / 2**30:.1f} GiB); use a finer partition (node or quasi_node), "
                "fewer snapshots, or raise memory_limit")

    def _groups(self, recording: torch.Tensor, precision: bool = True):
        """Per group: (lifted block snapshots ``(batch*P, n, k')`` in the fit dtype, stats, m).
        ``precision``: find the precision the weights were recorded in (a pass over a float64
        recording, :func:`koopman_lib.fit.recorded_precision`; only ``Cutoff("resolution")``
        needs it), else take the recording's dtype."""
        if not isinstance(recording, torch.Tensor):
            raise TypeError("the recording must be a torch.Tensor (k, D) or (k, *batch, D), time first; got "
                            f"{type(recording).__name__}")
        if recording.ndim < 2:
            raise FitError("the recording must be a tensor (k, D) or (k, *batch, D), time first; got "
                           f"{getattr(recording, 'shape', type(recording).__name__)}")
        k = recording.shape[0]
        self.recorded_dtype_ = recorded_precision(recording) if precision else recording.dtype
        self.batch_shape_ = tuple(recording.shape[1:-1])
        self._check_memory(k, math.prod(self.batch_shape_))
        lifted = type(self.observables) is not Identity
        for g, x in zip(self.partition.groups, self.partition.iter_time_last(recording)):
            m = int(g.shape[1])                                               # x: (batch*P, m, k)
            if not lifted:
                yield x, {}, m
                continue
            x = x.to(self.dtype)
            stats = self.observables.stats(x)
            z = self.observables.lift(x, stats)
            if z.shape[-1] < 2:
                raise FitError(f"{self.observables.name} leaves {z.shape[-1]} lifted snapshot(s); widen the window")
            yield z, stats, m

    def fit(self, recording) -> "Koopman":
        """Fit on a recording ``(k, D)`` or ``(k, *batch, D)`` (time first) or a complete
        :class:`koopman_lib.TrajectoryRecorder`. The recording is only read."""
        if isinstance(recording, TrajectoryRecorder):
            return self._fit_recorder(recording)
        ops, stats = [], []
        for x, st, m in self._groups(recording, self.spec.cutoff.value == "resolution"):
            ops.append(self._fit_group(x, m))
            stats.append(st)
        self.operators_, self.stats_ = ops, stats
        self.stride_ = self.stride or 1
        return self

    def _fit_group(self, x: torch.Tensor, m: int) -> Operators:
        constant = self.observables.constant
        if self.method == "svd":
            return fit_operators(x, self.spec, self.dtype, constant=constant, n_out=m, recorded=self.recorded_dtype_)
        rcond = None if self.cutoff is None else self.cutoff.rtol(x.shape[-2], x.shape[-1] - 1, self.dtype,
                                                                  self.recorded_dtype_)
        # one contiguous copy in the fit dtype (finite_section would otherwise copy the converted view again)
        U = finite_section(torch.empty(x.shape, dtype=self.dtype, device=x.device).copy_(x), self.method, rcond=rcond)
        if constant:
            U[..., -1, :] = 0
            U[..., -1, -1] = 1
        return Operators(U=U, n_out=m)

    def fit_variants(self, recording: torch.Tensor, specs: dict) -> dict[str, "Koopman"]:
        """``{name: fitted Koopman}`` for every :class:`koopman_lib.fit.FitSpec` (or cutoff value)
        in ``specs``, from one factorisation per block (method ``svd``)."""
        if self.method != "svd":
            raise FitError("fit_variants shares one SVD between fits: use method='svd'")
        specs = {n: s if isinstance(s, FitSpec) else FitSpec(s) for n, s in specs.items()}
        per = {n: [] for n in specs}
        stats = []
        for x, st, m in self._groups(recording, any(s.cutoff.value == "resolution" for s in specs.values())):
            for n, ops in fit_operators(x, specs, self.dtype, constant=self.observables.constant, n_out=m,
                                        recorded=self.recorded_dtype_).items():
                per[n].append(ops)
            stats.append(st)
        out = {}
        for n, s in specs.items():
            kp = self._variant(s, self.stride)
            kp.operators_, kp.stats_, kp.batch_shape_ = per[n], stats, self.batch_shape_
            kp.recorded_dtype_ = self.recorded_dtype_
            kp.stride_ = self.stride or 1
            out[n] = kp
        return out

    def _variant(self, spec: FitSpec, stride: int | None) -> "Koopman":
        """An unfitted copy of this estimator (its class, partition, observables, dtype, memory
        limit; a :class:`koopman_lib.StateKoopman` stays one) with the fit ``spec`` and ``stride``."""
        kp = copy.copy(self)
        kp.spec, kp.cutoff = spec, spec.cutoff
        kp.stride = None if stride is None else check_stride(stride)
        kp.operators_, kp.stats_, kp.stride_ = None, [], None
        return kp

    def fit_named(self, recording: torch.Tensor, names, c: float = DEFAULT_C) -> dict[str, "Koopman"]:
        """``{name: fitted estimator}`` for every name of :data:`BOOK_FITS` in ``names``, each a
        copy of this estimator (its class, partition, observables) with that fit.

        ``recording`` ``(k, *batch, D)`` holds every step of the window ``t1..t2``. The fits of
        :data:`koopman_lib.fit.FITS` share one factorisation per block (:meth:`fit_variants`); the
        strided fits (:data:`STRIDED_FITS`) share a second one, of
        :func:`koopman_lib.stride.strided_window` ``(recording, s)`` with
        ``s = choose_stride(k, self.partition, c, self.observables)`` (the blocks this estimator
        fits: for a :class:`koopman_lib.StateKoopman`, the weights with the state stacked in), and
        have ``stride_ = s``: they predict horizons that are multiples of ``s``
        (:func:`koopman_lib.stride.floor_horizon`)."""
        names = list(names)
        unknown = [n for n in names if n not in BOOK_FITS]
        if unknown:
            raise FitError(f"unknown fits {unknown}; use names of {BOOK_FITS}")
        plain = {n: named_fit(n) for n in names if n in FITS}
        strided = {n: named_fit(STRIDED_FITS[n]) for n in names if n in STRIDED_FITS}
        out = self._variant(self.spec, None).fit_variants(recording, plain) if plain else {}
        if strided:
            observables = None if type(self.observables) is Identity else self.observables
            s = choose_stride(recording.shape[0], self.partition, c, observables)
            out.update(self._variant(self.spec, s).fit_variants(strided_window(recording, s), strided))
        return {n: out[n] for n in names}

    def _fit_recorder(self, recorder: TrajectoryRecorder) -> "Koopman":
        if not recorder.complete:
            raise FitError(f"the recording holds {recorder.count} of {recorder.k} snapshots; finish t1..t2 first")
        if self.stride is not None and self.stride != recorder.stride:
            raise FitError(f"this Koopman has stride={self.stride} but the recorder kept every {recorder.stride}-th "
                           f"step; drop stride= (the recorder's is taken) or record with stride={self.stride}")
        if recorder.mode == "stored":
            self.fit(recorder.snapshots)
            self.stride_ = recorder.stride
            return self
        if self.method not in ("cholesky", "eigh") or type(self.observables) is not Identity:
            raise FitError("a streaming recording keeps only Gram matrices of the weights: fit it with "
                           "Koopman(partition, method='cholesky' or 'eigh')")
        recorded = recorder.recorded_dtype or recorder.dtype
        self.recorded_dtype_ = recorded
        self.operators_ = [Operators(U=a.operators(0.0, self.method, None if self.cutoff is None else self.cutoff.rtol(
            a.gram.shape[-1], recorder.k - 1, self.dtype, recorded))) for a in recorder.accumulators]
        self.stats_ = [{} for _ in self.operators_]
        self.batch_shape_ = recorder.batch_shape
        self.stride_ = recorder.stride
        return self

    @classmethod
    def from_operators(cls, partition: Partition, operators: list, batch_shape: tuple = (), **kwargs) -> "Koopman":
        """A fitted estimator from given per-group operators: :class:`Operators` or dense tensors
        ``(batch*P_g, m, m)`` (member-major). For tests and hand-made operators."""
        kp = cls(partition, **kwargs)
        ops = [o if isinstance(o, Operators) else Operators(U=o) for o in operators]
        if len(ops) != len(partition.groups):
            raise FitError(f"got {len(ops)} operator groups for a partition of {len(partition.groups)}")
        n = math.prod(batch_shape)
        for o, g in zip(ops, partition.groups):
            if o.n_blocks != n * int(g.shape[0]) or o.n_out != int(g.shape[1]):
                raise FitError(f"operators of {o.n_blocks} blocks of size {o.n_out} do not match the group "
                               f"{n} x {tuple(g.shape)}")
        kp.operators_, kp.stats_, kp.batch_shape_ = ops, [{} for _ in ops], tuple(batch_shape)
        kp.stride_ = kp.stride or 1
        return kp

    # -- evolution -------------------------------------------------------------------------
    @property
    def history(self) -> int:
        """How many consecutive recorded states a prediction starts from (1 but for delays)."""
        return self.observables.history

    def _start(self, start: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per group the lifted states ``(batch*P, n)`` and ``theta0`` ``(*batch, D)``."""
        if self.operators_ is None:
            raise NotFittedError("this Koopman estimator is not fitted yet: call fit(recording) before predicting")
        want = self.batch_shape_ + (self.partition.n_params,)
        h = self.observables.history
        hist = start.unsqueeze(0) if tuple(start.shape) == want else start
        if tuple(hist.shape[1:]) != want or (h == 1 and hist.shape[0] != 1):
            raise FitError(f"the starting weights have shape {tuple(start.shape)}; the fit needs {want} "
                           f"(or (h,) + {want}, the last h recorded states, for a {self.observables.name} fit)")
        if hist.shape[0] < h:
            raise FitError(f"{self.observables.name} needs the last {h} states to start from, got {hist.shape[0]}")
        z0 = []
        for x, op, st in zip(self.partition.time_last(hist[-h:]), self.operators_, self.stats_):
            z0.append(self.observables.lift(x.to(op.dtype), st)[..., -1])      # x: (batch*P, m, h)
        return z0, hist[-1]

    def predict(self, start: torch.Tensor, T: int) -> torch.Tensor:
        """``theta(t2 + T)`` ``(*batch, D)`` in one jump from ``start = theta(t2)`` ``(*batch, D)``
        (or the last ``history`` recorded states ``(h, *batch, D)``), in the fit dtype.
        ``T`` is in optimizer steps, a multiple of the fit's stride ``s`` (``T / s`` applications)."""
        T = _check_T(T)
        z0, _ = self._start(start)
        T = self._strides(T)
        ws = []
        for op, z, g in zip(self.operators_, z0, self.partition.groups):
            if op.low_rank:
                w, _ = op.advance(op.start(z), T)
            else:
                w = _jump(op.U, z, T, "power")[:, : op.n_out]
            ws.append(w.reshape(self.batch_shape_ + tuple(g.shape)))
        return self.partition.assemble(ws)

    def rollout(self, start: torch.Tensor, T: int, every: int | None = None, loss_fn=None,
                max_growth: float | None = None, loss_limit: float | None = None, jump: bool = True,
                dtype=None) -> Rollout:
        """Guarded evolution of every network of the batch (:func:`koopman_lib.evolve.rollout`):
        ``loss_fn(theta (E, D))`` at steps ``0, every, 2 every, .., T``; ``Rollout.theta``
        ``(E, D)`` holds each network's last weights that passed the guard (``E`` = the batch,
        flattened; 1 for an unbatched fit). ``T``, ``every`` and the steps are optimizer steps,
        multiples of the fit's stride."""
        z0, theta0 = self._start(start)
        E = math.prod(self.batch_shape_)
        return _rollout(self.partition, self.operators_, z0, theta0.reshape(E, -1).to(self.dtype), T, every, loss_fn,
                        max_growth, loss_limit, jump, dtype, stride=self.stride_ or 1)

    def path(self, start: torch.Tensor, T: int, chunk: int = 256) -> Iterator[torch.Tensor]:
        """Yield ``theta(t2+1) .. theta(t2+T)`` in time chunks ``(c, *batch, D)``, one matrix
        product per block group and step (:func:`koopman_lib.path`); memory ``O(chunk)`` in time.
        At stride ``s``: ``theta(t2+s), theta(t2+2s), .., theta(t2+T)`` (``T / s`` states, ``T`` a
        multiple of ``s``)."""
        T = _check_T(T)
        z0, _ = self._start(start)
        return self._path(z0, self._strides(T), chunk)

    def _strides(self, T: int, name: str = "T") -> int:
        """Applications of the fitted ``stride_``-step operators that make ``T`` optimizer steps."""
        s = self.stride_ or 1
        return T if s == 1 else strides_in(T, s, name)

    def _path(self, zs, T, chunk):
        # dense groups: one product per step (koopman_lib.path); low-rank groups ``U = A B``: the
        # state y = B z steps by M = B A and the weights are A y (Operators.advance, one step)
        states = [op.start(z) if op.low_rank else z for op, z in zip(self.operators_, zs)]
        done = 0
        while done < T:
            c = min(chunk, T - done)
            ws = []
            for g, op in enumerate(self.operators_):
                if op.low_rank:
                    steps = []
                    for _ in range(c):
                        w, states[g] = op.advance(states[g], 1)
                        steps.append(w)
                    ws.append(torch.stack(steps))                                        # (c, batch*P, n_out)
                else:
                    p = _path(op.U, states[g], c)[1:]                                    # (c, batch*P, n)
                    states[g] = p[-1]
                    ws.append(p[..., : op.n_out])
            yield self.partition.assemble([w.reshape((c,) + self.batch_shape_ + tuple(g.shape))
                                           for w, g in zip(ws, self.partition.groups)])
            done += c

    # -- diagnostics -----------------------------------------------------------------------
    @property
    def spectral_radii_(self) -> list[torch.Tensor]:
        """Per group, the spectral radius of every block operator, ``(*batch, P_g)``."""
        if self.operators_ is None:
            raise NotFittedError("this Koopman estimator is not fitted yet: call fit(recording) first")
        return [op.spectral_radius().reshape(self.batch_shape_ + (int(g.shape[0]),))
                for op, g in zip(self.operators_, self.partition.groups)]

    @property
    def spectral_radius_(self) -> torch.Tensor:
        """Largest spectral radius over all blocks, ``(*batch,)``: that of the ``stride_``-step
        operators ``U_s`` (per ``s`` optimizer steps; ``rho ** (1 / s)`` per step)."""
        return torch.cat([r.reshape(self.batch_shape_ + (-1,)) for r in self.spectral_radii_], -1).amax(-1)

    def operator_entries(self) -> int:
        """Operator entries per network (a memory / cost proxy)."""
        return sum(int(g.shape[0]) * self.observables.n_features(int(g.shape[1])) ** 2 for g in self.partition.groups)

    def __repr__(self) -> str:
        fitted = "fitted" if self.operators_ is not None else "not fitted"
        s = self.stride_ or self.stride or 1
        return (f"Koopman({self.partition.describe()}, method={self.method!r}, fit={self.spec.name!r}, "
                f"observables={self.observables.name!r}, {f'stride={s}, ' if s != 1 else ''}{fitted})")


def fit_named(partition: Partition, recording: torch.Tensor, names, c: float = DEFAULT_C,
              **options) -> dict[str, Koopman]:
    """``{name: fitted Koopman}`` for every name of :data:`BOOK_FITS` in ``names``:
    ``Koopman(partition, **options).fit_named(recording, names, c)`` (:meth:`Koopman.fit_named`).
    ``options`` go to :class:`Koopman` (``dtype``, ``observables``, ``memory_limit``)."""
    return Koopman(partition, **options).fit_named(recording, names, c)


__all__ = ["BOOK_FITS", "Koopman", "Cutoff", "FitSpec", "Rollout", "METHODS", "STRIDED_FITS", "fit_named"]
