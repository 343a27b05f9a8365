"""The MNIST claims (Table 2, the range of T) and the replication's divergence, measured from
``mnist.json``."""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Mapping

from . import intervals
from .measure_de_solver import longest_keeping_up
from .reading import (Measured, NotMeasured, declared_rows, inits_note, need, number, radius_note, row_label,
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


#: why an MNIST value has no interval when the file lacks the per-network rows of its fit
NO_MEMBERS = "mnist.json has no per-network rows ('members') for this fit and horizon"


def mnist_members(results, fit: str, T: int) -> list[dict]:
    """Each network's entry (``members`` row ``.at(fit, T)``) of fit ``fit`` at horizon ``T``, by init."""
    members = sorted(declared_rows(need(results, NAME), NAME, "members"), key=lambda m: m.init)
    return [m.at(fit, T) for m in members if fit in m.fits and f"T{T}" in m.fits[fit]]


def mnist_success(results):
    row, note = mnist_row(results)
    v = 100.0 * number(row.success_rate, "success_rate", NAME, row)
    nets = mnist_members(results, row.fit, row.T_epochs)
    iv = intervals.rate_percent([e["T_eq_epochs"] > 0 for e in nets]) if nets else None
    return Measured(v, f"{v:.0f}%", note + inits_note(row), iv, "" if nets else NO_MEMBERS)


def mnist_teq(results):
    row, note = mnist_row(results)
    v = number(row.teq_over_t_median, "teq_over_t_median", NAME, row)
    nets = mnist_members(results, row.fit, row.T_epochs)
    iv = intervals.median([e["teq_over_t"] for e in nets]) if nets else None
    return Measured(v, f"{v:.2f}", note + inits_note(row), iv, "" if nets else NO_MEMBERS)


def mnist_speedup_interval(results, row, field: str = "speedup_paper_style"):
    """The median speedup ``field`` (per network) over the improved networks of ``row``'s fit and
    horizon, with its interval; ``None`` without per-network rows."""
    nets = mnist_members(results, row.fit, row.T_epochs)
    return intervals.speedup([e["T_eq_epochs"] > 0 for e in nets], [e[field] for e in nets]) if nets else None


def mnist_speedup(results):
    row, note = mnist_row(results)
    v, why = speedup(row, "speedup_paper_style_median", NAME)
    note += f"; {why}" if why else ""
    fast = row.speedup_fast_loop_median
    extra = f"; against a fast optimizer loop: {times(fast)}" if isinstance(fast, (int, float)) else ""
    iv = mnist_speedup_interval(results, row)
    return Measured(v, times(v), note + extra, iv, "" if iv else NO_MEMBERS)


def mnist_range(results):
    table = table_rows(need(results, NAME), NAME, "table")
    by_T = {float(r.T_epochs): [number(r.teq_over_t_median, "teq_over_t_median", NAME, r)] for r in table}
    Ts = sorted(by_T)
    best = longest_keeping_up(Ts, by_T)
    columns = [[e["teq_over_t"] for e in mnist_members(results, table[0].fit, int(T))] for T in Ts]
    iv, why = intervals.composite(columns, lambda rows: longest_keeping_up(
        Ts, dict(zip(Ts, intervals.finite_medians(rows)))) / MNIST_T) if all(columns) else (None, NO_MEMBERS)
    return Measured(best / MNIST_T, f"T = {best:g} epochs" if best else "none",
                    f"median T_eq/T >= {KEEPS_UP}", iv, why)


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
        return Measured((grows + above) / 2, shown, note, no_interval=NO_REPLICATION_NETWORKS)
    return extract


#: why the replication's findings have no interval
NO_REPLICATION_NETWORKS = ("mnist.json keeps medians and quartiles of the replication's networks, not each "
                           "network's loss")
