"""The S7 scaling study: per-block construction cost against block size ``m``, snapshot count
``k`` and blocks per batch ``P``; per-step and jump cost against ``m`` and the horizon ``T``; and
the fitted log-log exponents next to the ones supplement S7 predicts."""
from __future__ import annotations

import math

import numpy as np
import torch

from koopman_lib.errors import FitError
from koopman_lib.evolve import jump
from koopman_lib.metrics import finite_median
from koopman_lib.progress import bar
from koopman_lib.solvers import finite_section, solve_normal_equations, solve_normal_equations_pinv
from koopman_lib.toy import stable_operators

from .fits import gram_matrices, pinv_loop, random_walk
from .profiles import BenchConfig
from .steps import koopman_steps
from .timing import failsafe, interleaved


def loglog_slope(x, y) -> float | None:
    """Least-squares slope of ``log y`` against ``log x`` (the scaling exponent)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


SCALING_FITS = ("pinv_loop", "lstsq_batched", "cholesky_batched", "gram_accumulation", "streaming_solve",
                "streaming_eigh")
#: predicted per-block exponents (S7: O(max(m^3, k m^2)) construction, O(m^2) per step)
PREDICTED = {
    ("construction", "m"): {"pinv_loop": 2, "lstsq_batched": 2, "cholesky_batched": 2, "gram_accumulation": 2,
                            "streaming_solve": 3, "streaming_eigh": 3},
    ("construction", "k"): {"pinv_loop": 1, "lstsq_batched": 1, "cholesky_batched": 1, "gram_accumulation": 1,
                            "streaming_solve": 0, "streaming_eigh": 0},
    # per block: a batch of P blocks costs P times one block (exponent 0 per block, 1 in total)
    ("construction", "P"): {"pinv_loop": 0, "lstsq_batched": 0, "cholesky_batched": 0, "gram_accumulation": 0,
                            "streaming_solve": 0, "streaming_eigh": 0},
    ("evolution", "m"): {"step": 2, "jump_power": 3, "jump_eig": 3},
    ("evolution", "T"): {"steps": 1, "jump_power": 0, "jump_eig": 0},
}


def _scaling_fit_point(P: int, m: int, k: int, repeats: int, slow_repeats: int, seed: int) -> dict[str, float]:
    x = random_walk(P, m, k, seed)
    grams = gram_matrices(x)
    fns = {"pinv_loop": lambda: pinv_loop(x), "lstsq_batched": lambda: finite_section(x, "lstsq"),
           "cholesky_batched": lambda: finite_section(x, "cholesky"), "gram_accumulation": lambda: gram_matrices(x),
           "streaming_solve": lambda: solve_normal_equations(*grams),
           "streaming_eigh": lambda: solve_normal_equations_pinv(*grams)}
    times, outs = interleaved({k_: failsafe(f) for k_, f in fns.items()}, repeats, {"pinv_loop": slow_repeats})
    return {k_: (None if isinstance(outs[k_], FitError) else finite_median(v) / P) for k_, v in times.items()}


def scaling_construction(cfg: BenchConfig) -> list[dict]:
    """Per-block construction seconds against ``m`` (``k`` fixed), ``k`` (``m`` fixed) and the
    number of blocks ``P`` in one batch (``m``, ``k`` fixed)."""
    rows = []
    B = cfg.scaling_blocks
    grid = [("m", B, m, cfg.scaling_k_fixed) for m in cfg.scaling_m] + \
        [("k", B, cfg.scaling_m_fixed, k) for k in cfg.scaling_k] + \
        [("P", P, cfg.scaling_m_fixed, cfg.scaling_k_fixed) for P in cfg.scaling_P]
    for axis, P, m, k in bar(grid, desc="S7 construction scaling"):
        pt = _scaling_fit_point(P, m, k, cfg.repeats, cfg.slow_repeats, cfg.seed)
        for method, s in pt.items():
            rows.append({"axis": axis, "P": P, "m": m, "k": k, "method": method, "seconds_per_block": s})
    return rows


def scaling_evolution(cfg: BenchConfig) -> list[dict]:
    """Per-block seconds of one step, and of a jump, against ``m`` (``T`` fixed) and ``T``."""
    rows = []
    P = cfg.evolve_blocks
    for m in bar(cfg.evolve_m, desc="S7 evolution scaling (m)"):
        U, w = stable_operators(P, m, cfg.seed + m), torch.randn(P, m, dtype=torch.float64)
        T = cfg.evolve_T_fixed
        fns = {"step": lambda: koopman_steps([U], [w], cfg.evolve_steps),
               "jump_power": lambda: jump(U, w, T, "power"), "jump_eig": lambda: jump(U, w, T, "eig")}
        times, _ = interleaved(fns, cfg.repeats)
        for method, v in times.items():
            s = finite_median(v) / P / (cfg.evolve_steps if method == "step" else 1)
            rows.append({"axis": "m", "m": m, "T": T if method != "step" else 1, "method": method, "seconds_per_block": s})
    m = cfg.evolve_m_fixed
    U, w = stable_operators(P, m, cfg.seed), torch.randn(P, m, dtype=torch.float64)
    for T in bar(cfg.evolve_T, desc="S7 evolution scaling (T)"):
        fns = {"jump_power": lambda: jump(U, w, T, "power"), "jump_eig": lambda: jump(U, w, T, "eig")}
        if T <= 10000:
            fns["steps"] = lambda: koopman_steps([U], [w], T)
        times, _ = interleaved(fns, cfg.repeats)
        for method, v in times.items():
            rows.append({"axis": "T", "m": m, "T": T, "method": method, "seconds_per_block": finite_median(v) / P})
    return rows


def exponents(construction: list[dict], evolution: list[dict], min_points: int = 3) -> list[dict]:
    """Fitted log-log exponents (on the upper half of each grid, at least ``min_points``
    points, where fixed per-call overheads matter least) next to the S7 predictions."""
    out = []
    for kind, rows in (("construction", construction), ("evolution", evolution)):
        for axis in ("m", "k", "P", "T"):
            sub = [r for r in rows if r["axis"] == axis]
            for method in dict.fromkeys(r["method"] for r in sub):
                pts = sorted((r[axis], math.nan if r["seconds_per_block"] is None else r["seconds_per_block"])
                             for r in sub if r["method"] == method)
                if len(pts) < 2:
                    continue
                upper = pts[max(0, min(len(pts) - min_points, len(pts) // 2)):]
                pred = PREDICTED.get((kind, axis), {}).get(method)
                out.append({"kind": kind, "axis": axis, "method": method, "fitted": loglog_slope(*zip(*upper)),
                            "fitted_all": loglog_slope(*zip(*pts)), "predicted": pred,
                            "range": f"{upper[0][0]}..{upper[-1][0]}"})
    return out

