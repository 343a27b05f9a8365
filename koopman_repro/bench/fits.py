"""The fit benchmarks: every route to the block operators timed on the same snapshots and
compared with the paper's per-block ``pinv`` (operators, jumped weights, residual, test loss).

Every fit goes through the core (:func:`koopman_lib.solvers.finite_section`,
:class:`koopman_lib.solvers.GramAccumulator`); this module only times and compares them.
"""
from __future__ import annotations

from typing import Callable

import torch

from koopman_lib.errors import FitError
from koopman_lib.evolve import jump
from koopman_lib.fit import singular_values
from koopman_lib.metrics import finite_median
from koopman_lib.solvers import GramAccumulator, finite_section, pinv_reference

from .timing import failsafe, interleaved, ratio


def rel_diff(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Per-block relative Frobenius difference ``||A - B|| / ||B||``, ``(P,)``."""
    return (A - B).flatten(1).norm(dim=1) / B.flatten(1).norm(dim=1).clamp_min(1e-300)


#: bytes of float64 a chunk of blocks may take in the layout, the batched lstsq fit and the checks over all
#: blocks (:func:`block_chunks`): their memory stays about that of their input, not twice or three times it
CHUNK_BYTES = 2 ** 25


def block_chunks(P: int, per_block: int) -> list[slice]:
    """Slices of ``P`` blocks of ``per_block`` float64 values each, at most :data:`CHUNK_BYTES` per
    slice (at least one block). Every per-block computation here (batched matmul, SVD) treats each
    block on its own, so chunking changes no value."""
    n = max(1, int(CHUNK_BYTES // max(1, 8 * per_block)))
    return [slice(a, min(a + n, P)) for a in range(0, P, n)]


def group_snapshots(snapshots: torch.Tensor, partition) -> list[torch.Tensor]:
    """Time-first ``(k, *batch, D)`` -> per group ``(batch*P, m, k)`` (contiguous float64 copies),
    the same values as ``partition.time_last(snapshots)`` converted, filled a chunk of blocks at a
    time (no full-size copy in the recording's dtype beside the float64 one)."""
    k = snapshots.shape[0]
    flat = snapshots.reshape(k, -1)                                  # (k, batch*D)
    batch = flat.shape[1] // partition.n_params
    out = []
    for g in partition.groups:
        P, m = int(g.shape[0]), int(g.shape[1])
        # member-major, as Partition.time_last: column (b, p, j) is b * D + g[p, j]
        idx = (torch.arange(batch).view(-1, 1, 1) * partition.n_params + g).reshape(batch * P, m)
        x = torch.empty(batch * P, m, k, dtype=torch.float64)
        for sl in block_chunks(batch * P, m * k):
            x[sl] = flat[:, idx[sl]].permute(1, 2, 0)
        out.append(x)
    return out


def by_chunks(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``fn`` of snapshots ``(P, m, k)`` with one result per block (operators, condition numbers) called
    on a chunk of blocks at a time (:func:`block_chunks`) and the results concatenated: the same values
    (each block is solved on its own), with the copies ``fn`` makes of its input (LAPACK overwrites
    them) the size of a chunk, not of the whole group."""
    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([fn(x[sl]) for sl in block_chunks(x.shape[0], x.shape[1] * x.shape[2])])
    return run


def pinv_loop(x: torch.Tensor) -> torch.Tensor:
    """Paper-style: one ``finite_section(..., "pinv")`` per block (MATLAB ``pinv`` cutoff)."""
    return torch.stack([finite_section(x[i], "pinv") for i in range(x.shape[0])])


#: the fit routes compared on stored snapshots ``(P, m, k)``, by name
FIT_METHODS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "pinv_loop_naive": pinv_reference,  # MATLAB's Fp * pinv(F) verbatim, on the wide F
    "pinv_loop": pinv_loop,
    "pinv_batched": lambda x: finite_section(x, "pinv"),
    "lstsq_batched": by_chunks(lambda x: finite_section(x, "lstsq")),  # gelsd copies F and F': chunks (memory)
    "cholesky_batched": lambda x: finite_section(x, "cholesky"),
    "eigh_batched": lambda x: finite_section(x, "eigh"),
}
SLOW_FITS = ("pinv_loop_naive", "pinv_loop", "pinv_batched", "lstsq_batched")  # SVD-based: slow_repeats


def gram_matrices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(F F^T, F' F^T)`` of snapshots ``(P, m, k)`` (what a streaming recording holds)."""
    F, Fp = x[..., :-1], x[..., 1:]
    return F @ F.mT, Fp @ F.mT


def accumulate(groups: list[torch.Tensor], chunk: int = 64) -> list[GramAccumulator]:
    """Feed snapshots ``(P, m, k)`` to :class:`GramAccumulator` s in chunks, as a streaming
    recording would (untimed; used for the synthetic fits and the tests)."""
    accs = []
    for x in groups:
        a = GramAccumulator(x.shape[0], x.shape[1], x.dtype)
        for c in range(0, x.shape[-1], chunk):
            a.update(x[..., c:c + chunk])
        accs.append(a)
    return accs


def random_walk(P: int, m: int, k: int, seed: int = 0) -> torch.Tensor:
    """Synthetic snapshots ``(P, m, k)``: an offset plus a random walk (timing input only)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(P, m, k, generator=g, dtype=torch.float64).mul_(1e-2).cumsum_(-1)  # in place: one (P, m, k)
    return x.add_(torch.randn(P, m, 1, generator=g, dtype=torch.float64))


def synthetic_groups(sizes: list[tuple[int, int]], k: int, seed: int = 0) -> list[torch.Tensor]:
    """Well-conditioned synthetic snapshots with the given ``(P, m)`` groups and ``k``
    snapshots (an offset plus a random walk; ``cond(F)`` of order 1e3), where every method
    can and should give the same operators."""
    return [random_walk(P, m, k, seed + i) for i, (P, m) in enumerate(sizes)]


def residuals(U: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-block relative fit residual ``||U F - F'|| / ||F'||`` of snapshots ``(P, m, k)``, ``(P,)``,
    a chunk of blocks at a time (:func:`block_chunks`)."""
    out = []
    for sl in block_chunks(x.shape[0], x.shape[1] * x.shape[2]):
        F, Fp = x[sl, :, :-1], x[sl, :, 1:]
        out.append((U[sl] @ F - Fp).flatten(1).norm(dim=1) / Fp.flatten(1).norm(dim=1))
    return torch.cat(out)


def _condition_numbers(x: torch.Tensor) -> torch.Tensor:
    s = singular_values(x)
    return s[..., 0] / s[..., -1]


#: ``cond(F)`` per block of snapshots ``(P, m, k)``, ``(P,)``, a chunk of blocks at a time
condition_numbers = by_chunks(_condition_numbers)


def _method_row(name: str, ops, groups, ref, ref_T, w0, moved, times, t_ref, T, loss_fn) -> tuple[dict, list]:
    """The row of one fit method that gave operators ``ops``, and its per-block differences."""
    d = torch.cat([rel_diff(U, R) for U, R in zip(ops, ref)])
    wT = [jump(U, w, T, "power") for U, w in zip(ops, w0)]
    pred = float(torch.cat([(a - b).flatten() for a, b in zip(wT, ref_T)]).norm() / moved)
    res = torch.cat([residuals(U, x) for U, x in zip(ops, groups)])
    ok = torch.isfinite(d)
    row = {"method": name, "seconds": finite_median(times[name]), "repeats": len(times[name]),
           "speedup_vs_pinv_loop": ratio(t_ref, finite_median(times[name])),
           "max_rel_diff_vs_pinv": float(d[ok].max()) if ok.any() else None,
           "median_rel_diff_vs_pinv": float(d[ok].median()) if ok.any() else None,
           "prediction_rel_diff_vs_pinv": pred, "max_rel_residual": float(res.max()),
           "test_loss_after_jump": loss_fn(wT) if loss_fn is not None else None}
    return row, d.tolist()


def fit_benchmark(groups: list[torch.Tensor], accumulators: list[GramAccumulator] | None, repeats: int,
                  slow_repeats: int, T: int, methods: tuple[str, ...] | None = None,
                  loss_fn: Callable[[list[torch.Tensor]], float] | None = None) -> dict:
    """Time every fit method on the same block snapshots ``groups`` (list of ``(P, m, k)``).

    ``accumulators`` (from a streaming recording of the same window) add the streaming
    solves (Cholesky and ``eigh``). Agreement is measured against ``pinv_loop`` (the paper's
    operators): per-block relative Frobenius difference, relative difference of the jumped
    block states after ``T`` steps (relative to how far the reference moved them), relative
    fit residual, and ``loss_fn(jumped block states)`` when given. A method that refuses the
    data (singular Gram matrix) gets a row with ``failed`` and no time.
    """
    methods = methods or tuple(FIT_METHODS)
    fns = {name: failsafe(lambda f=FIT_METHODS[name]: [f(x) for x in groups]) for name in methods}
    if accumulators is not None:
        for sm in ("cholesky", "eigh"):
            fns[f"streaming_{sm}"] = failsafe(lambda sm=sm: [a.operators(method=sm) for a in accumulators])
    times, outs = interleaved(fns, repeats, {k: slow_repeats for k in SLOW_FITS})
    ref = outs["pinv_loop"]
    w0 = [x[..., -1] for x in groups]
    ref_T = [jump(U, w, T, "power") for U, w in zip(ref, w0)]
    moved = torch.cat([(a - w).flatten() for a, w in zip(ref_T, w0)]).norm()
    cond = torch.cat([condition_numbers(x) for x in groups])
    t_ref = finite_median(times["pinv_loop"])
    rows, per_block = [], {"cond_F": cond.tolist()}
    for name, ops in outs.items():
        if isinstance(ops, FitError):
            rows.append({"method": name, "seconds": None, "repeats": 0, "failed": str(ops).split(":")[0]})
            continue
        row, per_block[name] = _method_row(name, ops, groups, ref, ref_T, w0, moved, times, t_ref, T, loss_fn)
        rows.append(row)
    return {"table": rows, "times": times, "cond_F_median": float(cond.median()), "cond_F_max": float(cond.max()),
            "cond_F_min": float(cond.min()), "per_block": per_block, "operators": outs}


def stream_vs_stored(ops: dict) -> float | None:
    """Max per-block relative difference between streaming and stored Cholesky operators
    (``ops``: the ``operators`` of :func:`fit_benchmark`); ``None`` where either was refused."""
    a, b = ops.get("streaming_cholesky"), ops.get("cholesky_batched")
    if a is None or b is None or isinstance(a, FitError) or isinstance(b, FitError):
        return None
    return float(torch.cat([rel_diff(x, y) for x, y in zip(a, b)]).max())


def rank_deficiency(snapshots: torch.Tensor, partition, x_train: torch.Tensor, first_layer) -> dict:
    """Where the rank deficiency of an MNIST recording ``(k, D)`` comes from: coordinates that
    never move in the window (and the blocks holding them), input pixels constant over the
    training set ``x_train``, and how closely the weights from those pixels into one node of
    ``first_layer`` (a :class:`~koopman_lib.partition.LayerShape`) move in lockstep."""
    frozen = snapshots.amax(0) == snapshots.amin(0)
    out = {"n_frozen_coordinates": int(frozen.sum()),
           "n_blocks_with_frozen_coordinates": int(sum(int(frozen[g].any(1).sum()) for g in partition.groups)),
           "n_blocks_all_frozen": int(sum(int(frozen[g].all(1).sum()) for g in partition.groups))}
    const = torch.nonzero(x_train.std(0) == 0).flatten()
    out["n_constant_pixels"] = int(const.numel())
    if const.numel() >= 2:  # their weights into one node move in lockstep (same gradient)
        row = first_layer.row
        W = torch.stack([snapshots[:, j * row + const] for j in range(first_layer.n_out)], 1)  # (k, n_out, c)
        diff = W - W[..., :1]
        spread = (diff.amax(0) - diff.amin(0)).amax(-1)
        move = (W.amax(0) - W.amin(0)).amax(-1)
        out["constant_pixel_lockstep"] = {"max_spread_of_differences": float(spread.max()),
                                          "median_movement": float(move.median())}
    return out
