"""The one finite-section fit: factorise a batch of blocks once, form operators for any cutoff.

Every Koopman operator the package reports is formed here. The snapshots of ``P`` blocks of
size ``m`` are ``(P, m, k)`` (columns in time order). With ``F = x[..., :-1]`` and
``F' = x[..., 1:]`` the fit is ``U = F' F^+``: one thin SVD ``F = U_F diag(S) V^T`` per block
(:func:`factorise`) serves every cutoff, ridge and rank (:meth:`Factorization.operators`).

Cutoffs (one vocabulary, :class:`Cutoff`): which singular values of ``F`` are inverted.

=================  ===============================================  ===========================================
value              singular values kept                             where it comes from
=================  ===============================================  ===========================================
``"paper"``        ``s > max(m, k) eps64 s_max``                    MATLAB's ``pinv`` on the paper's float64 fits
``"machine"``      ``s > max(m, k) eps s_max`` (eps of the fit)     ``pinv``'s default in the working precision
``"jax"``          ``s > 10 max(m, k) eps32 s_max``                 ``jnp.linalg.pinv`` on float32 data (replication)
``"float32"``      ``s > max(m, k) eps32 s_max``                    the resolution of weights recorded in float32
``"resolution"``   ``s > max(m, k) eps_rec s_max``                  the resolution of the recorded weights
                                                                    (**the library's default**)
float ``r``        ``s > r s_max``                                  an explicit relative cutoff
int ``n >= 1``     the leading ``n`` (and above ``"machine"``)      a truncated SVD of rank ``n``
int ``0``          ``s > omega(beta) median(s)``                    optimal hard threshold (Gavish & Donoho 2014)
=================  ===============================================  ===========================================

(``m, k`` are the shape of ``F``; eps64 / eps32 are the float64 / float32 machine epsilons;
eps_rec is that of the precision the weights were recorded in, before any cast for the fit:
singular values below it carry only the rounding of the recorded weights. A float64 recording
whose values are all exact float32 numbers, weights trained in float32 and cast, has the
float32 resolution: :func:`recorded_precision` finds it from the data.)

The default fit, chosen before any loss was seen (:data:`FITS`): ``"default"`` inverts only the
singular values the recording resolves (``Cutoff("resolution")``): a direction of ``F`` whose
singular value is below the rounding of the recorded weights is not a property of the
trajectory, and inverting it multiplies that rounding by up to ``1 / (max(m, k) eps_rec)``.
``"default-stabilised"`` adds clipping of the eigenvalues to the unit disk (``clip=1.0``): a
converging optimizer has no growing mode, so no fitted mode may grow. ``"paper"`` is the
paper's fit (MATLAB's ``pinv`` in float64, whatever the recording's precision).

Regularisation and stabilisation are options of the same fit (:class:`FitSpec`): ``ridge``
(Tikhonov filter ``s / (s^2 + (ridge s_max)^2)``) and ``clip`` (eigenvalues outside that radius
scaled back onto it, :func:`koopman_lib.spectra.clip_spectrum`).

Blocks with more coordinates than snapshot pairs (``m > k - 1``) keep the operator in the
low-rank form ``U = A B`` (``A`` ``(P, m, r)``, ``B`` ``(P, r, m)``): :class:`Operators` holds
either form behind one interface (apply, matrix power, eigenvalues, spectral radius).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from .errors import FitError, check_finite
from .operators import Operators
from .spectra import clip_spectrum, eigenvalues

PRESETS = ("paper", "machine", "jax", "float32", "resolution")
#: bytes of snapshots factorised at a time by :func:`fit_operators` (the work needs a few times that:
#: the float64 copy, the factorisation's copy of its input, its factors, the shifted snapshots).
#: Every block is factorised on its own, so the chunk changes no value (100 blocks of 157 x 2814:
#: identical operators at 250 MB and 64 MB, and no slower); 64 MB keeps a fit's working set near
#: 0.25 GB, which Binder's 2 GB needs
CHUNK_BYTES = 6.4e7


@dataclass(frozen=True)
class Cutoff:
    """Which singular values of ``F`` a fit inverts; ``value`` as in the module's table."""

    value: str | float | int = "resolution"

    def __post_init__(self):
        v = self.value
        if isinstance(v, Cutoff):
            object.__setattr__(self, "value", v.value)
            return
        if isinstance(v, bool) or not (isinstance(v, (str, numbers.Real))):
            raise FitError(f"cutoff must be one of {PRESETS}, a float >= 0 or an int >= 0; got {v!r}")
        if isinstance(v, str) and v not in PRESETS:
            raise FitError(f"unknown cutoff {v!r}; use one of {PRESETS}, a relative float or an integer rank")
        if isinstance(v, numbers.Real) and not isinstance(v, str) and not v >= 0:
            raise FitError(f"cutoff must be >= 0, got {v!r}")

    @property
    def is_rank(self) -> bool:
        return isinstance(self.value, numbers.Integral) and not isinstance(self.value, bool)

    @property
    def name(self) -> str:
        """A short label: the preset, ``rank:n``, ``gavish-donoho`` or the relative value."""
        if isinstance(self.value, str):
            return self.value
        if self.is_rank:
            return f"rank:{self.value}" if self.value else "gavish-donoho"
        return f"{self.value:g}"

    def rtol(self, m: int, k: int, dtype=torch.float64, recorded=None) -> float:
        """The relative cutoff ``s > rtol * s_max`` for ``F`` of shape ``(m, k)`` fitted in ``dtype``
        from snapshots recorded in ``recorded`` (default: ``dtype``); for a rank cutoff, the
        working-precision floor it never goes below."""
        v, n = self.value, max(m, k)
        if v == "resolution":
            return n * torch.finfo(recorded or dtype).eps
        if v == "paper":
            return n * torch.finfo(torch.float64).eps
        if v == "jax":
            return 10 * n * torch.finfo(torch.float32).eps
        if v == "float32":
            return n * torch.finfo(torch.float32).eps
        if v == "machine" or self.is_rank:
            return n * torch.finfo(dtype).eps
        return float(v)

    def keep(self, S: torch.Tensor, m: int, k: int, recorded=None) -> torch.Tensor:
        """Boolean mask ``(..., r)`` of the singular values ``S`` ``(..., r)`` (descending) kept
        (``recorded``: the dtype of the snapshots before the cast to ``S.dtype``)."""
        keep = S > self.rtol(m, k, S.dtype, recorded) * S[..., :1]
        if self.is_rank and self.value >= 1:
            keep = keep & (torch.arange(S.shape[-1], device=S.device) < int(self.value))
        elif self.is_rank:
            keep = keep & (S > gavish_donoho_threshold(S, m, k))
        return keep


def gavish_donoho_threshold(S: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """Optimal hard threshold for singular values in unknown white noise (Gavish & Donoho 2014,
    eq. 4 approximation): ``omega(beta) * median(S)``, ``beta = min(m, k) / max(m, k)``; ``(..., 1)``."""
    beta = min(m, k) / max(m, k)
    omega = 0.56 * beta ** 3 - 0.95 * beta ** 2 + 1.82 * beta + 1.43
    return omega * S.median(dim=-1, keepdim=True).values


def as_cutoff(cutoff) -> Cutoff:
    """``cutoff`` as a :class:`Cutoff` (``None`` is the default, ``"resolution"``)."""
    if cutoff is None:
        return Cutoff()
    return cutoff if isinstance(cutoff, Cutoff) else Cutoff(cutoff)


@dataclass(frozen=True)
class FitSpec:
    """One fit from a factorisation: ``cutoff`` (:class:`Cutoff` value), ``ridge`` (Tikhonov,
    relative to each block's largest singular value) and ``clip`` (eigenvalue radius, or ``None``)."""

    cutoff: str | float | int | Cutoff = "resolution"
    ridge: float = 0.0
    clip: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "cutoff", as_cutoff(self.cutoff))
        if not self.ridge >= 0:
            raise FitError(f"ridge must be >= 0, got {self.ridge!r}")
        if self.clip is not None and not self.clip > 0:
            raise FitError(f"clip must be a radius > 0 or None, got {self.clip!r}")

    @property
    def name(self) -> str:
        s = self.cutoff.name
        if self.ridge:
            s += f"+ridge:{self.ridge:g}"
        if self.clip is not None:
            s += f"+clip:{self.clip:g}"
        return s


#: The named fits of the book and the results files (``fit`` key): the paper's, the library's
#: default and the default with its documented stabilisation (see the module docstring).
FITS = {"paper": FitSpec("paper"), "default": FitSpec("resolution"),
        "default-stabilised": FitSpec("resolution", clip=1.0)}
DEFAULT_FIT = FITS["default"]


def named_fit(name: str) -> FitSpec:
    """The :class:`FitSpec` of a name in :data:`FITS`."""
    try:
        return FITS[name]
    except KeyError:
        raise FitError(f"unknown fit {name!r}; use one of {tuple(FITS)} or a FitSpec") from None


def recorded_precision(snapshots: torch.Tensor, chunk_bytes: float = CHUNK_BYTES):
    """The precision the values of ``snapshots`` were recorded in: ``torch.float32`` when a
    float64 tensor holds only exact float32 numbers (weights trained in float32, then cast),
    else its own dtype. Reads the tensor in chunks of about ``chunk_bytes``."""
    if snapshots.dtype != torch.float64:
        return snapshots.dtype
    flat = snapshots.reshape(snapshots.shape[0], -1) if snapshots.ndim > 1 else snapshots.reshape(-1, 1)
    per = max(1, int(chunk_bytes // max(1, flat.shape[1] * 8)))
    for a in range(0, flat.shape[0], per):
        x = flat[a:a + per]
        if not torch.equal(x.float().double(), x):
            return torch.float64
    return torch.float32


# -- the factorisation ------------------------------------------------------------------------
@dataclass
class Factorization:
    """``F = U_F diag(S) V^T`` for a batch of blocks, kept as ``UF`` ``(P, n, r0)``, ``S``
    ``(P, r0)`` and ``FpV = F' V`` ``(P, n, r0)`` (``r0 = min(n, k - 1)``): everything a fit
    ``U = F' V diag(f(S)) U_F^T`` needs, for any cutoff, rank or ridge. ``k``: snapshots per block."""

    UF: torch.Tensor
    S: torch.Tensor
    FpV: torch.Tensor
    k: int
    recorded: torch.dtype | None = None   # the dtype the snapshots were recorded in (before the cast)

    @property
    def n(self) -> int:
        return int(self.UF.shape[-2])

    @property
    def low_rank(self) -> bool:
        """True when the blocks are larger than the rank bound (thin factors are kept, not ``U``)."""
        return self.UF.shape[-2] > self.UF.shape[-1]

    def filter_factors(self, spec: FitSpec) -> tuple[torch.Tensor, torch.Tensor]:
        """``(f(S), keep)`` ``(P, r0)``: the inverted singular values of ``spec`` and the kept mask."""
        S = self.S
        keep = spec.cutoff.keep(S, self.n, self.k - 1, self.recorded)
        if spec.ridge > 0:
            inv = S / (S * S + (spec.ridge * S[..., :1]) ** 2)
        else:
            inv = 1.0 / torch.where(keep, S, torch.ones_like(S))
        return torch.where(keep, inv, torch.zeros_like(inv)), keep

    def operators(self, spec: FitSpec | None = None, constant: bool = False, n_out: int | None = None,
                  low_rank: bool | None = None) -> Operators:
        """The operators of ``spec`` (default: the paper's cutoff). ``constant``: the last
        coordinate is the constant observable 1, whose operator row is set to ``e_n`` exactly
        (before any clipping). ``low_rank`` (default: when ``n > k - 1``) keeps ``U = A B``."""
        spec = spec or FitSpec()
        inv, keep = self.filter_factors(spec)
        rank = keep.sum(-1)
        low = self.low_rank if low_rank is None else low_rank
        if low and not constant and spec.clip is None:
            return Operators(A=self.FpV * inv.unsqueeze(-2), B=self.UF.mT, rank=rank, n_out=n_out)
        U = (self.FpV * inv.unsqueeze(-2)) @ self.UF.mT
        if constant:
            U[..., -1, :] = 0
            U[..., -1, -1] = 1
        if spec.clip is not None:
            U = clip_spectrum(U, spec.clip)
        return Operators(U=U, rank=rank, n_out=n_out)


def factorise(snapshots: torch.Tensor, recorded=None) -> Factorization:
    """Thin SVD of ``F = snapshots[..., :-1]`` with ``F' V`` for a batch ``(P, n, k)`` (time last),
    in the dtype of ``snapshots`` (``recorded``: the dtype they were recorded in, if they were cast).

    A Householder QR of the long side first (``F^T = Q R`` when ``F`` is wide), then the SVD of
    the small triangular factor: both steps are backward stable, so the singular values carry
    the same ``O(eps |F|)`` error as a direct SVD, at several times less cost for the wide
    blocks of real recordings (157 x 2813 on MNIST).
    """
    if snapshots.ndim != 3:
        raise FitError(f"snapshots must be (P, n, k), got {tuple(snapshots.shape)}; put time last")
    if not snapshots.is_floating_point():
        raise FitError(f"snapshots must be floating point, got {snapshots.dtype}; use float64")
    k = snapshots.shape[-1]
    if k < 2:
        raise FitError(f"need at least 2 snapshots in time, got {k}; widen the window t1..t2")
    F, Fp = snapshots[..., :-1], snapshots[..., 1:]
    if F.shape[-2] <= F.shape[-1]:          # wide: F^T = Q R, F = R^T Q^T
        Q, R = torch.linalg.qr(F.mT)
        UF, S, Vh = torch.linalg.svd(R.mT)
        return Factorization(UF, S, (Fp @ Q) @ Vh.mT, k, recorded)
    Q, R = torch.linalg.qr(F)                # tall: F = Q R
    Ur, S, Vh = torch.linalg.svd(R)
    return Factorization(Q @ Ur, S, Fp @ Vh.mT, k, recorded)


def singular_values(snapshots: torch.Tensor) -> torch.Tensor:
    """Singular values ``(P, min(n, k-1))`` (descending) of ``F = snapshots[..., :-1]`` for blocks
    ``(P, n, k)`` (time last): the spectrum every cutoff of the table above is applied to."""
    if snapshots.ndim != 3 or snapshots.shape[-1] < 2:
        raise FitError(f"snapshots must be (P, n, k) with k >= 2, got {tuple(snapshots.shape)}")
    return torch.linalg.svdvals(snapshots[..., :-1])


def spectrum_summary(blocks, digits: int = 4) -> list[dict]:
    """Per block group ``(P, m, k)`` (time last, e.g. ``Partition.time_last(recording)``): the
    singular values of ``F`` relative to each block's largest (``digits`` significant digits) and
    the relative cutoffs of a float32 and a float64 recording (``Cutoff("float32")``,
    ``Cutoff("paper")``) for that shape: what a figure of the spectrum against the resolution needs."""
    out = []
    for x in blocks:
        S = singular_values(x.to(torch.float64))
        rel = (S / S[..., :1]).tolist()
        m, k = int(x.shape[-2]), int(x.shape[-1]) - 1
        out.append({"block_size": m, "n_blocks": int(x.shape[0]), "k": k,
                    "relative_singular_values": [[float(f"{v:.{digits}g}") for v in r] for r in rel],
                    "cutoff_float32": Cutoff("float32").rtol(m, k), "cutoff_float64": Cutoff("paper").rtol(m, k)})
    return out


def numerical_rank(snapshots: torch.Tensor, cutoff="machine") -> torch.Tensor:
    """Singular values of ``F`` kept by ``cutoff`` (default: the working precision, as
    ``torch.linalg.matrix_rank``), ``(P,)``."""
    S = singular_values(snapshots)
    return as_cutoff(cutoff).keep(S, snapshots.shape[-2], snapshots.shape[-1] - 1).sum(-1)


def fit_operators(snapshots: torch.Tensor, specs, dtype=None, constant: bool = False, n_out: int | None = None,
                  chunk_bytes: float = CHUNK_BYTES, low_rank: bool | None = None, recorded=None):
    """Operators of a batch of blocks ``(P, n, k)`` (time last; any strides) for one
    :class:`FitSpec` (returns :class:`Operators`) or a dict of them (returns ``{name: Operators}``),
    from one factorisation per block, in ``dtype`` (default: that of ``snapshots``). Blocks are
    cast and factorised about ``chunk_bytes`` of snapshots at a time (the factorisation needs a
    few times that), so the peak memory does not grow with the number of blocks. ``recorded``: the
    dtype the weights were recorded in (default: that of ``snapshots``), for ``Cutoff("resolution")``."""
    single = not isinstance(specs, dict)
    specs = {"fit": specs} if single else specs
    if not specs:
        raise FitError("give at least one fit spec")
    specs = {name: s if isinstance(s, FitSpec) else FitSpec(s) for name, s in specs.items()}
    if snapshots.ndim != 3:
        raise FitError(f"snapshots must be (P, n, k), got {tuple(snapshots.shape)}; put time last")
    dtype = dtype or snapshots.dtype
    if recorded is None and any(s.cutoff.value == "resolution" for s in specs.values()):
        recorded = recorded_precision(snapshots)
    P, n, k = snapshots.shape
    itemsize = torch.empty((), dtype=dtype).element_size()
    per = max(1, int(chunk_bytes // max(1, n * k * itemsize)))
    out: dict = {}
    for a in range(0, P, per):
        x = snapshots[a:a + per].to(dtype)
        check_finite(x)
        fac = factorise(x, recorded=recorded or snapshots.dtype)
        del x
        for name, s in specs.items():
            ops = fac.operators(s, constant, n_out, low_rank)
            out[name] = ops if per >= P else _place(out.get(name), ops, a, P)
            del ops
        del fac
    out = {name: o if isinstance(o, Operators) else Operators(U=o["U"], A=o["A"], B=o["B"], rank=o["rank"],
                                                              n_out=o["n_out"])
           for name, o in out.items()}
    return out["fit"] if single else out


def _place(acc: dict | None, ops: Operators, a: int, P: int) -> dict:
    """Write the operators of blocks ``a, a + 1, ..`` into tensors for all ``P`` blocks, allocated
    at the first chunk: the chunks' operators are never held all at once beside their
    concatenation (the same values as concatenating them; half the peak memory)."""
    fields = {"U": ops.U, "A": ops.A, "B": ops.B, "rank": ops.rank}
    if acc is None:
        acc = {k: None if v is None else v.new_empty((P,) + tuple(v.shape[1:])) for k, v in fields.items()}
        acc["n_out"] = ops.n_out
    for k, v in fields.items():
        if (v is None) != (acc[k] is None) or (v is not None and v.shape[1:] != acc[k].shape[1:]):
            raise FitError(f"the operators of blocks {a}.. differ in form or size ({k}) from the first chunk's")
        if v is not None:
            acc[k][a:a + v.shape[0]] = v
    return acc


__all__ = ["Cutoff", "FitSpec", "FITS", "DEFAULT_FIT", "named_fit", "recorded_precision", "Operators", "Factorization", "factorise", "fit_operators", "as_cutoff",
           "gavish_donoho_threshold", "PRESETS", "CHUNK_BYTES", "singular_values", "numerical_rank",
           "spectrum_summary"]
