"""Observables beyond the identity: ``[w; 1]``, time delays (Hankel) and small polynomial dictionaries.

The paper fits its operators on the identity observable ``g(w) = w``. Koopman practice
(extended DMD) lifts the state into a dictionary of functions first and fits the operator
there. Every dictionary here keeps the block state ``w`` as the *first* ``m`` rows of the
lifted state, so going back to the weights is reading those rows (the projection is exact).

Shapes follow :mod:`koopman_lib.operators`: snapshots of a batch of ``P`` blocks of size
``m`` are ``(P, m, k)`` (columns in time order); lifted snapshots are ``(P, n, k - h + 1)``
where ``n = n_features(m)`` and ``h = history`` is how many consecutive states one lifted
state needs (``d`` for ``d`` delays, 1 otherwise).

Evolution modes:
``"linear"``: the lifted state evolves linearly, ``z(t+1) = K z(t)``, and ``w`` is read
off ``z`` (a true Koopman / EDMD prediction, ``O(1)`` in ``T`` with a jump).
``"relift"``: one step of ``K`` gives the next ``w`` only, which is lifted again before the
next step (``w(t+1) = C K psi(w(t-h+1..t))``, a nonlinear map; step by step only).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from .evolve import jump as _jump
from .operators import FitError, check_finite, clip_spectrum, finite_section, spectral_radius
from .partition import Partition
from .trainer import KoopmanTrainer

MODES = ("linear", "relift")


# -- dictionaries --------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """``psi(w) = w`` (the paper's choice)."""

    name = "identity"
    #: whether the last lifted coordinate is the constant 1 (its operator row is then fixed to e_n)
    constant = False

    @property
    def history(self) -> int:
        return 1

    def n_features(self, m: int) -> int:
        return m

    def stats(self, x: torch.Tensor) -> dict:
        """Window statistics the lift needs (none here). ``x`` ``(P, m, k)``."""
        return {}

    def lift(self, x: torch.Tensor, stats: dict) -> torch.Tensor:
        """``(P, m, k) -> (P, n, k - history + 1)``."""
        return x


@dataclass(frozen=True)
class Affine(Identity):
    """``psi(w) = [w; 1]``: a constant observable, so ``w(t+1) = A w(t) + b`` (a straight
    line ``w(t) = w0 + t v`` is then represented exactly, which the identity cannot do
    without an eigenvalue exactly at 1 in a direction that also carries ``w``)."""

    name = "affine"
    constant = True

    def n_features(self, m: int) -> int:
        return m + 1

    def lift(self, x, stats):
        return _append_ones(x)


@dataclass(frozen=True)
class Delay(Identity):
    """Time-delay (Hankel) embedding ``psi = [w(t); w(t-1); ...; w(t-d+1)]`` (+ ``[1]`` if
    ``affine``). ``delays = d >= 1``; ``d = 1`` is the identity."""

    delays: int = 2
    affine: bool = False

    def __post_init__(self):
        if not isinstance(self.delays, int) or self.delays < 1:
            raise ValueError(f"delays must be an integer >= 1, got {self.delays!r}")

    @property
    def name(self) -> str:
        return f"delay{self.delays}" + ("+1" if self.affine else "")

    @property
    def constant(self) -> bool:
        return self.affine

    @property
    def history(self) -> int:
        return self.delays

    def n_features(self, m):
        return m * self.delays + int(self.affine)

    def lift(self, x, stats):
        d, k = self.delays, x.shape[-1]
        if k < d:
            raise FitError(f"a {d}-delay embedding needs at least {d} consecutive snapshots, got {k}")
        # newest first: rows [w(t); w(t-1); ...]
        z = torch.cat([x[..., d - 1 - j: k - j] for j in range(d)], dim=-2)
        return _append_ones(z) if self.affine else z


@dataclass(frozen=True)
class Polynomial(Identity):
    """``psi(w) = [w; u^2; ...; u^degree; (u_i u_j, i < j if cross); 1]`` with
    ``u = (w - mean) / std`` per coordinate over the fitting window (standardising keeps
    the powers of small weights on the scale of ``w`` and the fit well conditioned).

    ``n = m * degree + 1`` (+ ``m (m - 1) / 2`` with ``cross``).
    """

    degree: int = 2
    cross: bool = False

    def __post_init__(self):
        if not isinstance(self.degree, int) or self.degree < 2:
            raise ValueError(f"degree must be an integer >= 2 (1 is Affine), got {self.degree!r}")

    constant = True

    @property
    def name(self) -> str:
        return f"poly{self.degree}" + ("x" if self.cross else "")

    def n_features(self, m):
        return m * self.degree + 1 + (m * (m - 1) // 2 if self.cross else 0)

    def stats(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True) if x.shape[-1] > 1 else torch.ones_like(mean)
        scale = std.abs().amax(dim=-2, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        std = torch.where(std > 1e-8 * scale, std, scale)  # frozen coordinates: use the block scale
        return {"mean": mean, "std": std}

    def lift(self, x, stats):
        u = (x - stats["mean"]) / stats["std"]
        parts = [x] + [u ** p for p in range(2, self.degree + 1)]
        if self.cross and x.shape[-2] > 1:
            i, j = torch.triu_indices(x.shape[-2], x.shape[-2], offset=1)
            parts.append(u[..., i, :] * u[..., j, :])
        return _append_ones(torch.cat(parts, dim=-2))


def _append_ones(z: torch.Tensor) -> torch.Tensor:
    return torch.cat([z, torch.ones_like(z[..., :1, :])], dim=-2)


def parse_observables(spec: str):
    """``"identity" | "affine" | "delay:d" | "delay:d+1" | "poly:deg" | "poly:deg:x"`` -> dictionary."""
    try:
        if spec == "identity":
            return Identity()
        if spec == "affine":
            return Affine()
        if spec.startswith("delay:"):
            body = spec.split(":", 1)[1]
            return Delay(int(body.removesuffix("+1")), body.endswith("+1"))
        if spec.startswith("poly:"):
            parts = spec.split(":")
            return Polynomial(int(parts[1]), len(parts) > 2 and parts[2] == "x")
    except ValueError as e:
        raise ValueError(f"bad observables spec {spec!r}: {e}") from None
    raise ValueError(f"unknown observables {spec!r}; use 'identity', 'affine', 'delay:d', 'delay:d+1', "
                     "'poly:deg' or 'poly:deg:x'")


# -- one batch of blocks -------------------------------------------------------------------
@dataclass
class LiftedOperators:
    """Operators ``K`` ``(P, n, n)`` fitted on lifted snapshots, with what is needed to use them."""

    operators: torch.Tensor
    observables: Identity
    stats: dict
    m: int
    mode: str = "linear"

    def lifted_state(self, hist: torch.Tensor) -> torch.Tensor:
        """``hist`` ``(P, m, h)`` (the last ``h >= history`` states, oldest first) -> ``z`` ``(P, n)``."""
        h = self.observables.history
        if hist.shape[-1] < h:
            raise FitError(f"{self.observables.name} needs the last {h} states to start from, got {hist.shape[-1]}")
        return self.observables.lift(hist[..., -h:].to(self.operators.dtype), self.stats)[..., -1]

    def iterate(self, hist: torch.Tensor, T: int) -> Iterator[torch.Tensor]:
        """Yield ``w(1) .. w(T)``, each ``(P, m)``."""
        _check_T(T)
        if self.mode == "linear":
            z = self.lifted_state(hist).unsqueeze(-1)
            for _ in range(T):
                z = torch.bmm(self.operators, z)
                yield z[:, : self.m, 0].clone()
        else:
            h = self.observables.history
            window = hist[..., -h:].to(self.operators.dtype)
            for _ in range(T):
                w = (self.operators[:, : self.m] @ self.lifted_state(window).unsqueeze(-1)).squeeze(-1)
                window = torch.cat([window[..., 1:], w.unsqueeze(-1)], dim=-1)
                yield w

    def predict(self, hist: torch.Tensor, T: int) -> torch.Tensor:
        """``w(T)`` ``(P, m)``: one jump in ``linear`` mode, ``T`` steps in ``relift`` mode."""
        _check_T(T)
        if self.mode == "linear":
            return _jump(self.operators, self.lifted_state(hist), T)[:, : self.m]
        for w in self.iterate(hist, T):
            pass
        return w

    def strided(self, hist: torch.Tensor, every: int, n: int) -> Iterator[torch.Tensor]:
        """Yield ``w(every), w(2 every), .., w(n every)`` (``linear`` mode: ``K^every`` is formed
        once by repeated squaring, then applied ``n`` times)."""
        _check_T(every)
        _check_T(n)
        if self.mode != "linear":
            it = self.iterate(hist, every * n)
            for t, w in enumerate(it, start=1):
                if t % every == 0:
                    yield w
            return
        A = torch.linalg.matrix_power(self.operators, every)
        z = self.lifted_state(hist).unsqueeze(-1)
        for _ in range(n):
            z = torch.bmm(A, z)
            yield z[:, : self.m, 0].clone()


def _check_T(T) -> int:
    if not isinstance(T, int) or isinstance(T, bool) or T <= 0:
        raise ValueError(f"the number of steps must be a positive integer, got {T!r}")
    return T


def fit_lifted(snapshots: torch.Tensor, observables: Identity | None = None, method: str = "pinv",
               rank: int | None = None, ridge: float = 0.0, rcond: float | None = None,
               clip_radius: float | None = None, mode: str = "linear") -> LiftedOperators:
    """Fit ``K`` with ``psi(t+1) ~= K psi(t)`` on ``snapshots`` ``(P, m, k)`` (or ``(m, k)``).

    The fit runs in the dtype of ``snapshots`` (use float64). ``method``/``rank``/``ridge``/
    ``rcond`` as :func:`koopman_lib.finite_section`; ``clip_radius`` projects eigenvalues
    outside that radius onto it (:func:`koopman_lib.clip_spectrum`).
    """
    observables = observables or Identity()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    x = snapshots.unsqueeze(0) if snapshots.ndim == 2 else snapshots
    if x.ndim != 3:
        raise FitError(f"snapshots must be (m, k) or (P, m, k), got {tuple(snapshots.shape)}")
    check_finite(x)
    stats = observables.stats(x)
    z = observables.lift(x, stats)
    if z.shape[-1] < 2:
        raise FitError(f"{observables.name} leaves {z.shape[-1]} lifted snapshot(s); widen the window")
    K = finite_section(z, method, rank, ridge, rcond)
    if observables.constant:  # the constant observable stays exactly 1
        K[..., -1, :] = 0
        K[..., -1, -1] = 1
    if clip_radius is not None:
        K = clip_spectrum(K, clip_radius)
    return LiftedOperators(K, observables, stats, x.shape[-2], mode)


# -- many regularised fits from one SVD ----------------------------------------------------
@dataclass(frozen=True)
class Filter:
    """How ``U = F' F^+`` inverts the singular values ``s`` of ``F`` (one SVD serves them all).

    ``rtol``: drop ``s <= rtol * s_max`` (a pinv cutoff). ``None`` or ``"default"`` is
    ``max(n, k) eps`` of the fit dtype (MATLAB's and torch's ``pinv``); ``"jax"`` is
    ``10 max(n, k) eps`` (``jax.numpy.linalg.pinv``); ``"float32"`` is ``max(n, k) eps32``
    whatever the fit dtype (the resolution of weights trained in float32); ``"jax-float32"``
    is ``10 max(n, k) eps32`` whatever the fit dtype; a float is used as given.
    ``rank``: keep at most the leading ``rank`` singular values (truncated SVD).
    ``ridge``: Tikhonov filter ``s / (s^2 + (ridge s_max)^2)`` (relative to each block's
    largest singular value). ``clip``: afterwards scale eigenvalues outside that radius
    onto it (:func:`koopman_lib.clip_spectrum`).
    """

    rtol: float | str | None = None
    rank: int | None = None
    ridge: float = 0.0
    clip: float | None = None

    def cutoff(self, n: int, k: int, dtype) -> float:
        if self.rtol is None or self.rtol == "default":
            return max(n, k) * torch.finfo(dtype).eps
        if self.rtol == "jax":
            return 10 * max(n, k) * torch.finfo(dtype).eps
        if self.rtol == "float32":
            return max(n, k) * torch.finfo(torch.float32).eps
        if self.rtol == "jax-float32":
            return 10 * max(n, k) * torch.finfo(torch.float32).eps
        if isinstance(self.rtol, (int, float)) and not isinstance(self.rtol, bool) and self.rtol >= 0:
            return float(self.rtol)
        raise ValueError(f"rtol must be None, 'default', 'jax', 'float32', 'jax-float32' or a float >= 0, got {self.rtol!r}")


def thin_svd(F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``F = U diag(S) V^T`` for a batch ``(P, m, k)``, returning ``U (P, m, r)``, ``S (P, r)``,
    ``V (P, k, r)`` with ``r = min(m, k)``.

    A Householder QR of the long side first (``F^T = Q R`` when ``k >= m``), then the SVD of the
    small ``r x r`` factor: both steps are backward stable, so the singular values are as
    accurate as a direct SVD, and on this CPU build it is about 8x faster than
    ``torch.linalg.svd`` for blocks of 157 x 2813.
    """
    m, k = F.shape[-2:]
    if k >= m:
        Q, R = torch.linalg.qr(F.mT)                 # F^T = Q R, Q (k, m), R (m, m)
        Ur, S, Vh = torch.linalg.svd(R.mT)           # F = R^T Q^T = Ur S (Q Vh^T)^T
        return Ur, S, Q @ Vh.mT
    Q, R = torch.linalg.qr(F)                        # F = Q R, Q (m, k), R (k, k)
    Ur, S, Vh = torch.linalg.svd(R)
    return Q @ Ur, S, Vh.mT


def svd_operators(z: torch.Tensor, filters: dict, chunk: int = 64, constant: bool = False) -> dict:
    """``{name: U (P, n, n)}`` for every :class:`Filter` in ``filters``, from one SVD per block of
    the (lifted) snapshots ``z`` ``(P, n, k)``; blocks are processed ``chunk`` at a time to bound
    the SVD's memory. ``constant``: the last row of ``z`` is the constant 1, whose operator row
    is set to ``e_n`` exactly (before any clipping)."""
    if not filters:
        raise ValueError("give at least one filter")
    check_finite(z)
    P, n, k = z.shape
    if k < 2:
        raise FitError(f"need at least 2 snapshots in time, got {k}; widen the window")
    out = {name: torch.empty(P, n, n, dtype=z.dtype) for name in filters}
    for a in range(0, P, chunk):
        F, Fp = z[a:a + chunk, :, :-1], z[a:a + chunk, :, 1:]
        UF, S, V = thin_svd(F)
        FpV = Fp @ V
        smax = S[..., :1]
        for name, f in filters.items():
            keep = S > f.cutoff(n, k - 1, z.dtype) * smax
            if f.rank is not None:
                if f.rank < 1:
                    raise FitError(f"rank must be >= 1, got {f.rank}")
                keep = keep & (torch.arange(S.shape[-1]) < f.rank)
            if f.ridge > 0:
                inv = S / (S * S + (f.ridge * smax) ** 2)
            else:
                inv = 1.0 / torch.where(keep, S, torch.ones_like(S))
            inv = torch.where(keep, inv, torch.zeros_like(inv))
            out[name][a:a + chunk] = (FpV * inv.unsqueeze(-2)) @ UF.mT
    if constant:
        for U in out.values():
            U[..., -1, :] = 0
            U[..., -1, -1] = 1
    for name, f in filters.items():
        if f.clip is not None:
            for a in range(0, P, chunk):
                out[name][a:a + chunk] = clip_spectrum(out[name][a:a + chunk], f.clip)
    return out


# -- a whole network (all block groups of a partition, batched over an ensemble) ----------
@dataclass
class ObservableTrainer:
    """:class:`koopman_lib.KoopmanTrainer` with a dictionary of observables per block.

    ``fit(snapshots (k, *batch, D))`` fits every block group in ``dtype``; ``predict``,
    ``iterate`` and ``strided`` start from ``history`` ``(h, *batch, D)`` (the last ``h``
    recorded states, oldest first; ``(*batch, D)`` is accepted when ``h = 1``) and return
    weights ``(*batch, D)`` in ``dtype``. With ``Identity()`` and ``mode="linear"`` it gives
    the same operators and predictions as ``KoopmanTrainer``.
    """

    partition: Partition
    observables: Identity = field(default_factory=Identity)
    method: str = "pinv"
    rcond: float | None = None
    ridge: float = 0.0
    rank: int | None = None
    clip_radius: float | None = None
    mode: str = "linear"
    dtype: torch.dtype = torch.float64
    fits_: list[LiftedOperators] | None = None
    batch_shape_: tuple[int, ...] = ()

    def fit(self, snapshots: torch.Tensor) -> "ObservableTrainer":
        if snapshots.ndim < 2:
            raise FitError(f"snapshots must be (k, D) or (k, *batch, D), got {tuple(snapshots.shape)}")
        k = snapshots.shape[0]
        self.batch_shape_ = tuple(snapshots.shape[1:-1])
        fits = []
        for g, blocks in zip(self.partition.groups, self.partition.blocks(snapshots)):
            x = blocks.reshape(k, -1, g.shape[1]).permute(1, 2, 0).to(self.dtype)  # (batch*P, m, k)
            fits.append(fit_lifted(x, self.observables, self.method, self.rank, self.ridge, self.rcond,
                                   self.clip_radius, self.mode))
        self.fits_ = fits
        return self

    def fit_filters(self, snapshots: torch.Tensor, filters: dict, chunk: int = 64) -> dict:
        """Fit once per block (one SVD, in ``dtype``) and return ``{name: fitted ObservableTrainer}``
        for every :class:`Filter` in ``filters`` (the trainer's own ``method``/``rcond``/``ridge``/
        ``rank``/``clip_radius`` are not used). ``snapshots`` ``(k, *batch, D)``."""
        if snapshots.ndim < 2:
            raise FitError(f"snapshots must be (k, D) or (k, *batch, D), got {tuple(snapshots.shape)}")
        k = snapshots.shape[0]
        batch = tuple(snapshots.shape[1:-1])
        fits = {name: [] for name in filters}
        for g, blocks in zip(self.partition.groups, self.partition.blocks(snapshots)):
            x = blocks.reshape(k, -1, g.shape[1]).permute(1, 2, 0).to(self.dtype)
            check_finite(x)
            stats = self.observables.stats(x)
            z = self.observables.lift(x, stats)
            del x
            ops = svd_operators(z, filters, chunk, constant=self.observables.constant)
            del z
            for name, K in ops.items():
                fits[name].append(LiftedOperators(K, self.observables, stats, int(g.shape[1]), self.mode))
        out = {}
        for name in filters:
            tr = ObservableTrainer(self.partition, self.observables, method="svd", mode=self.mode, dtype=self.dtype,
                                   clip_radius=filters[name].clip)
            tr.fits_, tr.batch_shape_ = fits[name], batch
            out[name] = tr
        return out

    @property
    def history(self) -> int:
        return self.observables.history

    def _hist_blocks(self, history: torch.Tensor) -> list[torch.Tensor]:
        if self.fits_ is None:
            raise FitError("call fit() before predicting")
        want = self.batch_shape_ + (self.partition.n_params,)
        if tuple(history.shape) == want:
            history = history.unsqueeze(0)
        if tuple(history.shape[1:]) != want:
            raise FitError(f"history shape {tuple(history.shape)} does not match (h,) + {want} of the fit")
        h = history.shape[0]
        return [b.reshape(h, -1, g.shape[1]).permute(1, 2, 0).to(self.dtype)
                for b, g in zip(self.partition.blocks(history), self.partition.groups)]

    def _assemble(self, flat_blocks: list[torch.Tensor]) -> torch.Tensor:
        blocks = [b.reshape(self.batch_shape_ + tuple(g.shape)) for b, g in zip(flat_blocks, self.partition.groups)]
        return self.partition.assemble(blocks)

    def predict(self, history: torch.Tensor, T: int) -> torch.Tensor:
        """``theta(t2 + T)`` ``(*batch, D)``."""
        hb = self._hist_blocks(history)
        return self._assemble([f.predict(h, T) for f, h in zip(self.fits_, hb)])

    def iterate(self, history: torch.Tensor, T: int) -> Iterator[torch.Tensor]:
        """Yield ``theta(t2+1) .. theta(t2+T)``."""
        hb = self._hist_blocks(history)
        for step in zip(*[f.iterate(h, T) for f, h in zip(self.fits_, hb)]):
            yield self._assemble(list(step))

    def strided(self, history: torch.Tensor, every: int, n: int) -> Iterator[torch.Tensor]:
        """Yield ``theta(t2 + every), .., theta(t2 + n every)`` (cheap for long horizons)."""
        hb = self._hist_blocks(history)
        for step in zip(*[f.strided(h, every, n) for f, h in zip(self.fits_, hb)]):
            yield self._assemble(list(step))

    def as_koopman_trainer(self) -> KoopmanTrainer:
        """The identity-observable fit as a fitted :class:`KoopmanTrainer` (same operators)."""
        if self.fits_ is None:
            raise FitError("call fit() first")
        if type(self.observables) is not Identity or self.mode != "linear":
            raise FitError("only identity observables in linear mode are plain Koopman operators on the weights")
        kt = KoopmanTrainer(self.partition, method=self.method)
        kt.operators_ = [f.operators for f in self.fits_]
        kt.batch_shape_ = self.batch_shape_
        return kt

    def spectral_radii(self) -> list[torch.Tensor]:
        """Per group, ``(*batch, P_g)`` spectral radii of the lifted operators."""
        if self.fits_ is None:
            raise FitError("call fit() first")
        return [spectral_radius(f.operators).reshape(self.batch_shape_ + (g.shape[0],))
                for f, g in zip(self.fits_, self.partition.groups)]

    def max_spectral_radius(self) -> torch.Tensor:
        return torch.cat([r.reshape(self.batch_shape_ + (-1,)) for r in self.spectral_radii()], -1).amax(-1)

    def operator_entries(self) -> int:
        """Number of operator entries per ensemble member (memory / cost proxy)."""
        return sum(int(g.shape[0]) * self.observables.n_features(int(g.shape[1])) ** 2 for g in self.partition.groups)


def lifted_flops(partition: Partition, observables: Identity, k: int) -> float:
    """Rough flop count of one pinv fit (SVD of ``n x k`` per block: ``4 n^2 k + 8 n^3``)."""
    total = 0.0
    for g in partition.groups:
        n = observables.n_features(int(g.shape[1]))
        total += int(g.shape[0]) * (4 * n * n * k + 8 * n ** 3)
    return total


__all__ = ["Identity", "Affine", "Delay", "Polynomial", "parse_observables", "LiftedOperators", "fit_lifted",
           "Filter", "svd_operators", "ObservableTrainer", "lifted_flops", "MODES"]
