"""The abstract's speed claim ("more than 10x faster"), measured across the DE solver and MNIST."""
from __future__ import annotations

from .measure_de_solver import DE_TABLE1, de_row
from .measure_mnist import mnist_row
from .reading import Measured, speedup, times


def faster_10x(field: str = "speedup_paper_style_median"):
    """The smallest median speedup (``field``, a key of :data:`.reading.SPEEDUPS`) over the DE
    optimizers and MNIST."""
    def extract(results):
        speeds = []
        for opt in DE_TABLE1:
            row, _ = de_row(results, opt)
            speeds.append((f"DE solver, {opt}", speedup(row, field, "de-solver")[0]))
        row, _ = mnist_row(results)
        speeds.append(("MNIST, Adadelta", speedup(row, field, "mnist")[0]))
        name, v = min(speeds, key=lambda s: s[1])
        return Measured(v, times(v), f"smallest of {len(speeds)}: {name}")
    return extract
