"""Finite-section (DMD-style) approximations of Koopman operators.

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

METHODS = ("pinv", "lstsq", "cholesky", "svd", "eigh")


class FitError(ValueError):
    """A finite-section fit that cannot be done as asked (the message says why and what to do)."""


def _as_batched(snapshots: torch.Tensor) -> tuple[torch.Tensor, bool]:
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
    x, _ = _as_batched(snapshots)
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
    x, squeeze = _as_batched(snapshots)
    if not x.is_floating_point():
        raise FitError(f"snapshots must be floating point, got {x.dtype}; use float64")
    # one copy into (P, m, k) order for the factorisations: a time-first recording permuted to
    # (P, m, k) would otherwise be copied again by every product and reduction (4-5x slower);
    # ``eigh`` (the pipeline's route, koopman_lib.pipeline) reads it twice, by two batched GEMMs
    # that take the strided view as it is
    if method != "eigh":
        x = x.contiguous()
    check_finite(x)
    F, Fp = split_pairs(x)
    if method in ("pinv", "svd"):
        from .fit import Cutoff, FitSpec, fit_operators  # the one factorisation (fit imports this module)
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
    x, squeeze = _as_batched(snapshots)
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


def eigenvalues(operators: torch.Tensor) -> torch.Tensor:
    """Complex eigenvalues, ``(..., m)``."""
    return torch.linalg.eigvals(operators)


def spectral_radius(operators: torch.Tensor) -> torch.Tensor:
    """Largest eigenvalue modulus of each operator, ``(...)``."""
    return eigenvalues(operators).abs().amax(dim=-1)


def clip_spectrum(operators: torch.Tensor, radius: float = 1.0) -> torch.Tensor:
    """Scale every eigenvalue with ``|lambda| > radius`` back onto the circle of that radius.

    Operators are rebuilt as ``V diag(lambda') V^{-1}`` (real part kept). The rebuild inherits
    the conditioning of ``V`` (nearly parallel eigenvectors put the rebuilt eigenvalues up to a
    few 1e-6 off), and a block whose ``V`` is singular cannot be rebuilt: such blocks, whose
    spectral radius is still above ``radius``, are scaled as a whole by ``radius / rho``, so every
    returned block has spectral radius at most ``radius`` (as :func:`spectral_radius` measures it).
    """
    lam, V = torch.linalg.eig(operators)
    mod = lam.abs()
    scale = torch.where(mod > radius, radius / mod.clamp_min(1e-300), torch.ones_like(mod))
    lam = lam * scale
    Vinv, info = torch.linalg.inv_ex(V)
    rebuilt = (V * lam.unsqueeze(-2)) @ Vinv
    ok = (info == 0).reshape(info.shape + (1, 1))
    out = torch.where(ok, rebuilt.real.to(operators.dtype), operators).clone()
    # recheck only the blocks the rebuild may have left outside: those with an eigenvalue put on
    # the circle (rounding can leave it a few eps outside) or a singular or ill-conditioned V
    # (rebuild error ~ eps cond(V)); the others keep their eigenvalues well inside
    eps = torch.finfo(out.dtype).eps
    kappa = torch.linalg.matrix_norm(V) * torch.linalg.matrix_norm(Vinv)
    doubt = (mod > radius * (1 - 1e-6)).any(-1) | (info != 0) | ~torch.isfinite(kappa) | (kappa * eps > 1e-9)
    flat, dflat = out.reshape((-1,) + out.shape[-2:]), doubt.reshape(-1)
    if bool(dflat.any()):
        sub = flat[dflat]
        # the eigenvalues of a nearly defective block are computed to ~sqrt(eps), so a shrink to the
        # circle can measure a little outside: shrink again, with a wider margin, until it does not
        for margin in (8 * eps, 1e-12, 1e-10, 1e-8):
            rho = spectral_radius(sub)
            if not bool((rho > radius).any()):
                break
            shrink = torch.where(rho > radius, radius / rho.clamp_min(1e-300) * (1 - margin), torch.ones_like(rho))
            sub = sub * shrink.reshape(-1, 1, 1)
        flat[dflat] = sub
    return flat.reshape(out.shape)


def affine_observables(snapshots: torch.Tensor) -> torch.Tensor:
    """Append a constant row: ``(..., m, k) -> (..., m+1, k)`` (observable ``[w; 1]``)."""
    ones = torch.ones_like(snapshots[..., :1, :])
    return torch.cat([snapshots, ones], dim=-2)
