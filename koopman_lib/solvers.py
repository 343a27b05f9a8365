"""The finite section by several linear-algebra routes, for method comparisons, and Gram accumulation.

The library's own fit is :mod:`koopman_lib.fit` (QR then SVD of every block); the routes here
(``pinv``/``svd`` through that same fit, ``lstsq``, Cholesky and ``eigh`` of the normal equations,
streaming Gram matrices) are what the benchmarks and the operators chapter compare it with.


Convention: a block's state at training step t is a column vector ``w(t)`` of
length ``m``. Snapshots are stored as columns in time order, ``(m, k)`` for one
block or ``(P, m, k)`` for ``P`` blocks of equal size. The fitted operator
``U`` (``(m, m)`` or ``(P, m, m)``) advances one step: ``w(t+1) ~= U w(t)``, so
``w(t2 + T) ~= U^T w(t2)`` with ``U^T`` the T-th matrix power. (The paper's formula
``F^+ = (F^T F)^{-1} F^T`` is the pseudo-inverse written for snapshots stored as rows.)

All fits are meant to be run in float64; see :func:`finite_section`.
"""
from __future__ import annotations

import torch

from .errors import FitError, as_batched, check_finite
from .fit import Cutoff, FitSpec, fit_operators

#: the one list of finite-section routes: ``pinv`` and ``svd`` are the library's fit (QR then SVD,
#: :mod:`koopman_lib.fit`), ``pinv`` with the machine cutoff of MATLAB's and torch's ``pinv``;
#: ``lstsq``, ``cholesky`` and ``eigh`` solve the same least-squares problem another way
METHODS = ("pinv", "lstsq", "cholesky", "svd", "eigh")
#: the routes :class:`koopman_lib.Koopman` fits with (``method=``): ``pinv`` is ``svd`` with a cutoff there
ESTIMATOR_METHODS = tuple(m for m in METHODS if m != "pinv")


def split_pairs(snapshots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``F = snapshots[..., :-1]`` and ``F' = snapshots[..., 1:]``."""
    if snapshots.shape[-1] < 2:
        raise FitError(
            f"need at least 2 snapshots in time, got {snapshots.shape[-1]}; widen the window t1..t2."
        )
    return snapshots[..., :-1], snapshots[..., 1:]


def finite_section(
    snapshots: torch.Tensor,
    method: str = "pinv",
    rank: int | None = None,
    ridge: float = 0.0,
    rcond: float | None = None,
) -> torch.Tensor:
    """Fit ``U ~= F' F^+`` for one block or a batch of blocks.

    Parameters
    ----------
    snapshots : tensor ``(m, k)`` or ``(P, m, k)``
        Columns are the block state at consecutive training steps.
    method : ``"pinv"`` | ``"lstsq"`` | ``"cholesky"`` | ``"svd"`` | ``"eigh"``
        ``pinv`` is the paper's (MATLAB ``pinv``: singular values below
        ``max(m, k) * eps * s_max`` dropped), computed by the one factorisation of
        :mod:`koopman_lib.fit` (``svd`` is the same fit with an optional ``rank``). ``lstsq`` uses the SVD-based
        ``gelsd`` driver (minimum-norm on rank-deficient data). ``cholesky``
        solves the normal equations ``U (F F^T + ridge I) = F' F^T``; it is the
        fast path and refuses rank-deficient data with a :class:`FitError`.
        ``svd`` keeps the leading ``rank`` singular values (all above the ``pinv`` cutoff by
        default). ``eigh`` solves the
        same normal equations with a pseudo-inverse of ``F F^T`` from its symmetric
        eigendecomposition (:func:`solve_normal_equations_pinv`): as fast as
        ``cholesky`` up to an ``O(m^3)`` term, works from streamed Gram matrices and on
        rank-deficient windows, and equals ``pinv`` with the singular-value cutoff
        ``rcond`` (default ``sqrt(m * eps)``) up to ``eps * cond(F)^2`` rounding.
    rank : int, optional
        Truncation rank for ``svd``.
    ridge : float
        ``cholesky`` only: solve with ``F F^T + ridge I`` (an absolute shift; the relative
        Tikhonov filter of the SVD fit is ``Koopman(partition, ridge=...)``).
    rcond : float, optional
        Relative singular-value cutoff for ``pinv`` / ``lstsq`` / ``eigh`` (defaults as above).

    Returns
    -------
    tensor ``(m, m)`` or ``(P, m, m)``, same dtype as ``snapshots``.
    """
    if method not in METHODS:
        raise FitError(f"unknown method {method!r}; choose one of {METHODS}")
    if ridge < 0:
        raise FitError(f"ridge must be >= 0, got {ridge}")
    if ridge > 0 and method != "cholesky":
        raise FitError(f"ridge is not used by method {method!r}; use method='cholesky' (absolute shift of F F^T) "
                       "or Koopman(partition, ridge=...) (Tikhonov relative to s_max)")
    if rank is not None and method != "svd":
        raise FitError("rank truncation needs method='svd'")
    x, squeeze = as_batched(snapshots)
    if not x.is_floating_point():
        raise FitError(f"snapshots must be floating point, got {x.dtype}; use float64")
    # one copy into (P, m, k) order for the factorisations: a time-first recording permuted to
    # (P, m, k) would otherwise be copied again by every product and reduction (4-5x slower);
    # ``eigh`` (the pipeline's route, koopman_repro.bench.pipeline) reads it twice, by two batched GEMMs
    # that take the strided view as it is
    if method != "eigh":
        x = x.contiguous()
    check_finite(x)
    F, Fp = split_pairs(x)
    if method in ("pinv", "svd"):
        if method == "svd" and rank is not None:
            cutoff = Cutoff(int(rank))
        else:
            cutoff = Cutoff("machine" if rcond is None else float(rcond))
        U = fit_operators(x, FitSpec(cutoff), low_rank=False).U
    elif method == "lstsq":
        U = _lstsq(F, Fp, rcond)
    elif method == "cholesky":
        U = solve_normal_equations(F @ F.mT, Fp @ F.mT, ridge)
    else:
        U = solve_normal_equations_pinv(F @ F.mT, Fp @ F.mT, rcond)
    return U[0] if squeeze else U


def _lstsq(F: torch.Tensor, Fp: torch.Tensor, rcond: float | None) -> torch.Tensor:
    # U F = F'  <=>  F^T U^T = F'^T
    if rcond is None:
        rcond = max(F.shape[-2:]) * torch.finfo(F.dtype).eps
    sol = torch.linalg.lstsq(F.mT, Fp.mT, rcond=rcond, driver="gelsd").solution
    return sol.mT


def pinv_reference(snapshots: torch.Tensor) -> torch.Tensor:
    """``F' pinv(F)`` one block at a time, ``torch.linalg.pinv`` on the wide ``F`` (MATLAB's ``Fp * pinv(F)``)."""
    x, squeeze = as_batched(snapshots)
    F, Fp = split_pairs(x)
    U = torch.stack([Fp[i] @ torch.linalg.pinv(F[i]) for i in range(x.shape[0])])
    return U[0] if squeeze else U


def gram_condition(gram: torch.Tensor, L: torch.Tensor, iters: int = 12) -> torch.Tensor:
    """Estimate ``cond(gram)`` ``(P,)`` from power iteration (largest eigenvalue) and inverse
    iteration through the Cholesky factor ``L`` (smallest eigenvalue). Both estimates err
    towards a smaller condition number; a failed factorisation gives ``inf``."""
    g = torch.Generator(device="cpu").manual_seed(0)
    start = torch.rand(gram.shape[-1], 1, generator=g, dtype=gram.dtype).to(gram.device) + 0.5
    v = start.expand(gram.shape[:-1] + (1,)).clone()
    u = v.clone()
    for _ in range(iters):
        v = gram @ v
        v = v / v.norm(dim=-2, keepdim=True).clamp_min(torch.finfo(gram.dtype).tiny)
        u = torch.cholesky_solve(u, L)
        u = u / u.norm(dim=-2, keepdim=True).clamp_min(torch.finfo(gram.dtype).tiny)
    lam_max = (v.mT @ gram @ v).reshape(gram.shape[:-2])
    lam_min = (u.mT @ gram @ u).reshape(gram.shape[:-2])
    cond = lam_max / lam_min.clamp_min(torch.finfo(gram.dtype).tiny)
    return torch.where(torch.isfinite(cond) & (lam_min > 0), cond, torch.full_like(cond, float("inf")))


def solve_normal_equations(gram: torch.Tensor, cross: torch.Tensor, ridge: float = 0.0,
                           max_rel_error: float = 1e-3) -> torch.Tensor:
    """Solve ``U gram = cross`` for ``U`` by Cholesky.

    ``gram = F F^T`` ``(P, m, m)`` and ``cross = F' F^T`` ``(P, m, m)``. Raises
    :class:`FitError` naming the blocks whose Gram matrix is not positive definite or so
    ill-conditioned that ``cond(gram) * eps > max_rel_error`` (fewer independent snapshots
    than the block size, constant coordinates, or ``cond(F)`` above about ``1e6`` in float64).
    """
    if ridge > 0:
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        gram = gram + ridge * eye
    L, info = torch.linalg.cholesky_ex(gram)
    # A factorisation can "succeed" on a numerically singular Gram matrix and return garbage
    # (the solution's relative error grows like cond(gram) * eps = cond(F)^2 * eps). Estimate
    # cond(gram) with a few power / inverse-power iterations (O(m^2) each, batched) and refuse
    # when cond(gram) * eps > max_rel_error.
    cond = gram_condition(gram, L)
    eps = torch.finfo(gram.dtype).eps
    singular = (info != 0) | ~(cond * eps <= max_rel_error)
    bad = torch.nonzero(singular.reshape(-1)).flatten()
    if bad.numel():
        raise FitError(
            f"Cholesky failed for block(s) {bad[:10].tolist()} (of {singular.numel()}): the snapshot "
            "Gram matrix F F^T is singular or numerically singular (fewer independent snapshots than "
            "the block size, a constant coordinate, or cond(F)^2 beyond float precision). Use "
            "method='pinv' or 'lstsq' (minimum norm), or ridge > 0."
        )
    return torch.cholesky_solve(cross.mT, L).mT


def solve_normal_equations_pinv(gram: torch.Tensor, cross: torch.Tensor, rcond: float | None = None) -> torch.Tensor:
    """Minimum-norm ``U = cross gram^+`` from the symmetric eigendecomposition of ``gram``.

    ``gram = F F^T`` and ``cross = F' F^T``, ``(P, m, m)``. Since ``F^+ = F^T (F F^T)^+``,
    this is ``F' F^+`` with the singular values of ``F`` below ``rcond * s_max`` dropped,
    i.e. eigenvalues of ``gram`` below ``rcond^2 * lambda_max``. The default
    ``rcond = sqrt(m * eps)`` (eigenvalue cutoff ``m * eps * lambda_max``, MATLAB's ``pinv``
    tolerance applied to ``gram``) drops exactly the directions that float64 Gram matrices
    cannot resolve. Never fails on singular or ill-conditioned Gram matrices.
    """
    lam, V = torch.linalg.eigh(gram)
    m = gram.shape[-1]
    cut = (rcond * rcond) if rcond is not None else m * torch.finfo(gram.dtype).eps
    tol = cut * lam[..., -1:].clamp_min(0)
    inv = torch.where(lam > tol, 1.0 / lam, torch.zeros_like(lam))
    return ((cross @ V) * inv.unsqueeze(-2)) @ V.mT


class GramAccumulator:
    """Streaming finite section: accumulate ``F F^T`` and ``F' F^T`` chunk by chunk.

    Memory is ``O(P m^2)`` instead of ``O(P m k)``. Feed consecutive snapshots in
    time order with :meth:`update` (chunks ``(P, m, c)``); :meth:`operators` solves
    the normal equations by Cholesky and gives the same ``U`` as
    ``finite_section(all_snapshots, "cholesky")``.
    """

    def __init__(self, n_blocks: int, block_size: int, dtype=torch.float64, device=None):
        shape = (n_blocks, block_size, block_size)
        self.gram = torch.zeros(shape, dtype=dtype, device=device)
        self.cross = torch.zeros(shape, dtype=dtype, device=device)
        self.last: torch.Tensor | None = None
        self.n_snapshots = 0

    def update(self, chunk: torch.Tensor) -> None:
        """Add snapshots ``chunk`` ``(P, m, c)``, consecutive in time after those seen so far."""
        if chunk.shape[:2] != self.gram.shape[:2]:
            raise FitError(
                f"chunk shape {tuple(chunk.shape)} does not match accumulator blocks "
                f"{tuple(self.gram.shape[:2])}"
            )
        chunk = chunk.to(self.gram.dtype)
        check_finite(chunk, "streamed snapshots")
        full = chunk if self.last is None else torch.cat([self.last, chunk], dim=-1)
        if full.shape[-1] >= 2:
            F, Fp = full[..., :-1], full[..., 1:]
            self.gram.baddbmm_(F, F.mT)
            self.cross.baddbmm_(Fp, F.mT)
        self.last = chunk[..., -1:].clone()
        self.n_snapshots += chunk.shape[-1]

    def operators(self, ridge: float = 0.0, method: str = "cholesky", rcond: float | None = None) -> torch.Tensor:
        """Operators ``(P, m, m)`` from the accumulated Gram matrices: ``method="cholesky"``
        (:func:`solve_normal_equations`, refuses singular windows) or ``"eigh"``
        (:func:`solve_normal_equations_pinv`, minimum norm with cutoff ``rcond``)."""
        if self.n_snapshots < 2:
            raise FitError("the accumulator has seen fewer than 2 snapshots; record a longer window")
        if method == "cholesky":
            return solve_normal_equations(self.gram, self.cross, ridge)
        if method == "eigh":
            if ridge > 0:
                raise FitError("ridge is not used by method 'eigh'; use method='cholesky'")
            return solve_normal_equations_pinv(self.gram, self.cross, rcond)
        raise FitError(f"a streaming recording is fitted with method 'cholesky' or 'eigh', not {method!r}")


def affine_observables(snapshots: torch.Tensor) -> torch.Tensor:
    """Append a constant row: ``(..., m, k) -> (..., m+1, k)`` (observable ``[w; 1]``)."""
    ones = torch.ones_like(snapshots[..., :1, :])
    return torch.cat([snapshots, ones], dim=-2)
