"""The MNIST claims (Table 2, the range of T) and the replication's divergence, measured from
``mnist.json``."""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Mapping

from .reading import (Measured, NotMeasured, inits_note, need, number, radius_note, row_label,
                      speedup, table_rows, times)
from .rules import KEEPS_UP

NAME = "mnist"
MNIST_T = 2          # epochs
MNIST_TABLE2 = (100, 0.97, 15)


def mnist_row(results):
    """The table's row at the paper's T (else its first row), and its note."""
    table = table_rows(need(results, NAME), NAME, "table")
    at_T = [r for r in table if r.T_epochs == MNIST_T]
    row = (at_T or table)[0]
    return row, f"T = {row.T_epochs:g} epochs" + radius_note(row.max_spectral_radius_median)


def mnist_success(results):
    row, note = mnist_row(results)
    v = 100.0 * number(row.success_rate, "success_rate", NAME, row)
    return Measured(v, f"{v:.0f}%", note + inits_note(row))


def mnist_teq(results):
    row, note = mnist_row(results)
    v = number(row.teq_over_t_median, "teq_over_t_median", NAME, row)
    return Measured(v, f"{v:.2f}", note + inits_note(row))


def mnist_speedup(results):
    row, note = mnist_row(results)
    v, why = speedup(row, "speedup_paper_style_median", NAME)
    note += f"; {why}" if why else ""
    fast = row.speedup_fast_loop_median
    extra = f"; against a fast optimizer loop: {times(fast)}" if isinstance(fast, (int, float)) else ""
    return Measured(v, times(v), note + extra)


def mnist_range(results):
    table = table_rows(need(results, NAME), NAME, "table")
    ok = [float(r.T_epochs) for r in table
          if number(r.teq_over_t_median, "teq_over_t_median", NAME, r) >= KEEPS_UP]
    best = max(ok, default=0.0)
    return Measured(best / MNIST_T, f"T = {best:g} epochs" if best else "none",
                    f"median T_eq/T >= {KEEPS_UP}")


def is_replication_row(r, kind: str = "node") -> bool:
    """A ``replication`` row with the replication's own settings (float32, its window and
    normalisation) and ``kind`` operators in layer 1: ``"node"`` (full node, 785-dim) or
    ``"layer"`` (layer-wise)."""
    label = str(r.setting).lower()
    part = str(r.partition).lower().replace("_", "-")
    match = part in ("node", "full-node") if kind == "node" else part.startswith("layer")
    if "replication" in label or "rao" in label:
        return match
    return match and "32" in str(r.dtype)


#: the fields of a replication row the divergence rule reads
DIVERGENCE_FIELDS = ("final_test_loss_koopman", "final_test_loss_optimizer", "koopman_loss_growth_median",
                     "test_loss_t2")


def divergence_parts(row) -> tuple[bool, bool, float]:
    """The two parts of the divergence rule for one replication row (``mnist.json``
    ``replication``, a declared row or, from a chapter, its dict): ``(grows, above, growth)``.
    ``growth``: median over the networks of the Koopman test loss at the row's horizon over its
    own value at the start of the Koopman phase (rows without it: the ratio of the medians);
    ``grows``: ``growth > 1``; ``above``: the median Koopman loss ends above Adadelta's median.
    A row whose Koopman loss is missing (every network stopped by the guard) counts as both."""
    if isinstance(row, Mapping):
        row = SimpleNamespace(**{f: row.get(f) for f in DIVERGENCE_FIELDS})
    ko, opt = row.final_test_loss_koopman, row.final_test_loss_optimizer
    if ko is None or not math.isfinite(float(ko)):
        return True, True, math.inf
    growth = row.koopman_loss_growth_median
    if growth is None or not math.isfinite(float(growth)):
        start = row.test_loss_t2
        growth = float(ko) / float(start) if start else math.nan
    return float(growth) > 1.0, float(ko) > float(opt), float(growth)


def mnist_divergence(kind: str = "node"):
    """The two-part divergence rule after ``MNIST_T`` epochs under the replication's settings."""
    def extract(results):
        rows = [r for r in table_rows(need(results, NAME), NAME, "replication") if is_replication_row(r, kind)]
        rows = [r for r in rows if r.T_epochs == MNIST_T] or rows
        if not rows:
            raise NotMeasured(f"mnist.json 'replication' has no row with the replication's settings and "
                              f"{kind} operators")
        row = max(rows, key=lambda r: float(r.T_epochs or 0))
        ko = number(row.final_test_loss_koopman, "final_test_loss_koopman", NAME, row)
        opt = number(row.final_test_loss_optimizer, "final_test_loss_optimizer", NAME, row)
        grows, above, growth = divergence_parts(row)
        radius, n = row.max_spectral_radius, row.n_members
        note = (f"{row_label(row)}" + (f"; {n} networks" if n else "")
                + (f"; spectral radius {radius:.4g}" if isinstance(radius, (int, float)) else ""))
        shown = (f"(1) grows {growth:.3g}x: {'yes' if grows else 'no'}; (2) {ko:.3g} vs Adadelta {opt:.3g}: "
                 f"{'above' if above else 'not above'}")
        return Measured((grows + above) / 2, shown, note)
    return extract
