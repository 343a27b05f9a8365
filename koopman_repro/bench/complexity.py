"""The S7 complexity table: per partition of a network, its blocks, the operation counts of
construction, a step, a jump and a backprop step, and measured seconds where the blocks are
small enough to fit quickly."""
from __future__ import annotations

import torch

from koopman_lib.errors import FitError
from koopman_lib.estimator import Koopman
from koopman_lib.metrics import finite_median
from koopman_lib.partition import LayerShape, make_partition

from .profiles import BenchConfig
from .steps import block_states, dense_operators, koopman_steps
from .timing import interleaved

S7_FORMULAS = {  # width n, depth n, ~n^3 weights, k snapshots (supplement S7)
    "single": ("O(k n^3)", "O(n^3)"),
    "quasi_node": ("O(max(k q n^3, q^2 n^3))", "O(q n^3)"),
    "node": ("O(max(k n^4, n^5))", "O(n^4)"),
    "layer": ("O(max(k n^5, n^7))", "O(n^5)"),
    "network": ("O(max(k n^6, n^9))", "O(n^6)"),
}


def complexity_table(net_name: str, shapes: list[LayerShape], specs: list[str], k: int, batch: int, T: int,
                     snapshots: torch.Tensor | None, max_m: int, repeats: int, backprop_step_s: float | None) -> list[dict]:
    """One row per partition: blocks, sizes, operation counts (construction by the Gram /
    Cholesky route and S7's ``sum P max(k m^2, m^3)``; per step ``2 sum P m^2``; jump by
    squaring), the backprop step count ``6 j D`` for comparison, and measured seconds where
    every block has ``m <= max_m`` and ``snapshots`` ``(k, D)`` are given (in the dtype they were recorded in:
    the fit finds that precision either way and converts one block group at a time)."""
    rows = []
    D = sum(s.size for s in shapes)
    nbits = T.bit_length() - 1
    for spec in specs:
        part = make_partition(shapes, spec)
        Pm = [(int(g.shape[0]), int(g.shape[1])) for g in part.groups]
        mmax = max(m for _, m in Pm)
        kind = spec.split(":")[0]
        row = {"network": net_name, "partition": spec, "blocks": part.describe(), "n_blocks": part.n_blocks,
               "max_m": mmax, "operator_entries": part.operator_entries(),
               "operator_MB": part.operator_entries() * 8 / 2**20,
               "s7_construction": S7_FORMULAS[kind][0], "s7_per_step": S7_FORMULAS[kind][1],
               "construction_gflop": sum(P * (4 * m * m * (k - 1) + 7 * m ** 3 / 3) for P, m in Pm) / 1e9,
               "s7_construction_gflop": sum(P * max(k * m * m, m ** 3) for P, m in Pm) / 1e9,
               "step_mflop": sum(2 * P * m * m for P, m in Pm) / 1e6,
               "jump_gflop": sum(P * 2 * m ** 3 * nbits for P, m in Pm) / 1e9,
               "backprop_step_mflop": 6 * batch * D / 1e6,
               "fit_s": None, "fit_method": None, "step_s": None, "jump_s": None,
               "backprop_step_s": backprop_step_s}
        if snapshots is not None and mmax <= max_m:
            method = "cholesky"
            try:
                Koopman(part, method=method).fit(snapshots[:, None])
            except FitError:  # a singular Gram matrix: its eigh pseudo-inverse instead
                method = "eigh"
            theta = snapshots[-1:].double()  # snapshots in the training dtype; the fit converts per block
            kt = Koopman(part, method=method)
            t_fit, _ = interleaved({"fit": lambda: kt.fit(snapshots[:, None])}, repeats)
            w0, ops = block_states(kt, theta), dense_operators(kt)
            n_steps = 100
            t_ev, _ = interleaved({"step": lambda: koopman_steps(ops, w0, n_steps),
                                   "jump": lambda: kt.predict(theta, T)}, repeats)
            row.update(fit_s=finite_median(t_fit["fit"]), fit_method=method, step_s=finite_median(t_ev["step"]) / n_steps,
                       jump_s=finite_median(t_ev["jump"]))
        rows.append(row)
    return rows


def layer_shapes(sizes) -> list[LayerShape]:
    """The dense layers of an MLP with widths ``sizes`` (input first)."""
    return [LayerShape(f"l{i}", o, i_) for i, (i_, o) in enumerate(zip(sizes[:-1], sizes[1:]))]


def complexity_tables(cfg: BenchConfig, mnist: dict, mnist_snaps: torch.Tensor, de: dict, de_snaps: torch.Tensor,
                      step_s: float) -> list[dict]:
    """The complexity rows of the three networks: the paper's MNIST network (timed on the first
    MNIST run's recording ``mnist_snaps``; ``step_s`` its optimizer step), the DE solver (timed on
    ``de_snaps``) and the >= 100k-parameter MLP of "Beyond the paper" (operation counts only)."""
    rows = complexity_table("MNIST 784:20:20:20:10", layer_shapes(cfg.mnist_sizes),
                            ["single", "quasi_node:157", "node", "layer", "network"], mnist["k"], cfg.batch_size,
                            mnist["T"], mnist_snaps, cfg.complexity_max_m, cfg.complexity_repeats, step_s)
    de_sizes = de["sizes"]
    rows += complexity_table("NN DE solver " + ":".join(map(str, de_sizes)), layer_shapes(de_sizes),
                             ["single", "node", "layer", "network"], de["k"], de["n_points"], cfg.de_T,
                             de_snaps, cfg.complexity_max_m, cfg.complexity_repeats, de["optimizer_step_seconds"])
    from ..experiments.beyond import Config as BeyondConfig
    wide = BeyondConfig().wide_sizes
    rows += complexity_table("MLP " + ":".join(map(str, wide)), layer_shapes(wide),
                             ["quasi_node:157", "node", "layer"], mnist["k"], cfg.batch_size, mnist["T"],
                             None, cfg.complexity_max_m, cfg.complexity_repeats, None)
    return rows
