"""The abstract's speed claim ("more than 10x faster"), measured across the DE solver and MNIST."""
from __future__ import annotations

import numpy as np

from . import intervals
from .measure_de_solver import DE_TABLE1, NO_NETWORKS, de_networks, de_row
from .measure_mnist import NO_MEMBERS, mnist_members, mnist_row
from .reading import Measured, speedup, times


def speed_columns(results, field: str) -> list[list[float]]:
    """Per group (each DE optimizer, then MNIST) two columns, success (0/1) and the per-network
    speedup ``field`` (without ``_median``); empty columns where the per-network rows are missing."""
    cols = []
    for opt in DE_TABLE1:
        nets = de_networks(results, de_row(results, opt)[0])
        cols += [[float(n.success) for n in nets], [getattr(n, field) for n in nets]]
    row = mnist_row(results)[0]
    nets = mnist_members(results, row.fit, row.T_epochs)
    return cols + [[float(e["T_eq_epochs"] > 0) for e in nets], [e[field] for e in nets]]


def smallest_speedup(rows: np.ndarray) -> float:
    """The smallest over the groups (column pairs of :func:`speed_columns`) of each group's median
    speedup over its improved networks."""
    return min(intervals.speedup_statistic(rows[:, i:i + 2]) for i in range(0, rows.shape[1], 2))


def faster_10x(field: str = "speedup_paper_style_median"):
    """The smallest median speedup (``field``, a key of :data:`.reading.SPEEDUPS`) over the DE
    optimizers and MNIST, with the interval of the whole claim over resampled networks."""
    def extract(results):
        speeds = []
        for opt in DE_TABLE1:
            row, _ = de_row(results, opt)
            speeds.append((f"DE solver, {opt}", speedup(row, field, "de-solver")[0]))
        row, _ = mnist_row(results)
        speeds.append(("MNIST, Adadelta", speedup(row, field, "mnist")[0]))
        name, v = min(speeds, key=lambda s: s[1])
        cols = speed_columns(results, field.removesuffix("_median"))
        iv, why = intervals.composite(cols, smallest_speedup) if all(cols) else \
            (None, f"{NO_NETWORKS}; or {NO_MEMBERS}")
        return Measured(v, times(v), f"smallest of {len(speeds)}: {name}", iv, why)
    return extract
