"""The MNIST claims (Table 2, the range of T) and the replication's divergence, measured from
``mnist.json``."""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Mapping

import numpy as np

from . import intervals
from .fits import REPLICATION_FIT
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


#: the replication's Koopman curves (``mnist.json`` ``ablation_curves``, per network) each divergence
#: claim reads: (layer-1 operators, the scorecard's fit column) -> curve
REPLICATION_CURVES = {("node", "paper"): "replication settings, all inits",
                      ("node", "default"): "replication settings, default fit",
                      ("layer", "paper"): "replication settings, layer-wise"}


def replication_curve(res: dict, kind: str, fit: str) -> dict | None:
    """The per-network curve (:data:`REPLICATION_CURVES`) of the replication's ``kind`` operators and
    ``fit`` in results ``res``; ``None`` where the file has none."""
    return (res.get("ablation_curves") or {}).get(REPLICATION_CURVES.get((kind, fit), ""))


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


#: the per-network columns of a replication row's networks that the divergence rule reads, in
#: :func:`divergence_networks`' order: Koopman test loss at the horizon and at the start of the Koopman
#: phase, Adadelta's test loss at the horizon, and the Koopman loss's growth (the first over the second)
NETWORK_COLUMNS = ("koopman_loss", "koopman_loss_start", "optimizer_loss", "koopman_loss_growth")


def divergence_networks(res: dict, row, kind: str) -> tuple[list[np.ndarray] | None, str]:
    """``(columns, "")``: the per-network values :data:`NETWORK_COLUMNS` of replication row ``row``'s
    networks at the row's horizon (one entry per network, in the same order in every column), read
    from their per-network curve (``ablation_curves``: the curve the null model pairs with the same
    networks, :data:`REPLICATION_CURVES`); ``(None, why)`` without that curve or the
    horizon in it, or when its medians are not the row's (then it is not the row's networks)."""
    fit = "paper" if row.fit == REPLICATION_FIT else row.fit
    curve = replication_curve(res, kind, fit)
    at = int(row.T_epochs or 0) * int(res.get("steps_per_epoch") or 0)
    if not curve or not {0, at} <= set(curve.get("steps") or ()) or at not in (curve.get("optimizer_steps") or ()):
        return None, NO_REPLICATION_NETWORKS
    ko = np.asarray(curve["koopman_loss"], dtype=float)
    ko_T, ko_0 = ko[:, list(curve["steps"]).index(at)], ko[:, list(curve["steps"]).index(0)]
    opt = np.asarray(curve["optimizer_loss"], dtype=float)[:, list(curve["optimizer_steps"]).index(at)]
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = [ko_T, ko_0, opt, ko_T / ko_0]
    medians = intervals.finite_medians(intervals.paired(columns))
    agree = [(row.final_test_loss_koopman, medians[0]), (row.final_test_loss_optimizer, medians[2]),
             (row.koopman_loss_growth_median, medians[3])]
    if len(ko) != row.n_members or not all(_same(a, b) for a, b in agree):
        return None, NOT_THE_ROWS_NETWORKS
    return columns, ""


def _same(a, b) -> bool:
    """Two medians that agree: equal to rounding, or both missing (``None``, NaN: no finite value)."""
    finite = [x is not None and math.isfinite(float(x)) for x in (a, b)]
    return not any(finite) or all(finite) and math.isclose(float(a), float(b), rel_tol=1e-9)


def divergence_statistic(rows: np.ndarray) -> float:
    """The divergence rule's value ``(grows + above) / 2`` (:func:`divergence_parts`) on the medians over
    ``rows`` (networks, columns :data:`NETWORK_COLUMNS`) of their finite values, as the results' row
    takes them."""
    ko, start, opt, growth = intervals.finite_medians(rows)
    grows, above, _ = divergence_parts({"final_test_loss_koopman": ko, "final_test_loss_optimizer": opt,
                                        "koopman_loss_growth_median": growth, "test_loss_t2": start})
    return (grows + above) / 2


def mnist_divergence(kind: str = "node"):
    """The two-part divergence rule after ``MNIST_T`` epochs under the replication's settings, with its
    bootstrap 95% interval over the row's networks (:func:`.intervals.composite`: the networks resampled,
    both parts recomputed on their medians, :func:`divergence_statistic`) where the file holds their
    per-network curve (:func:`divergence_networks`)."""
    def extract(results):
        res = need(results, NAME)
        rows = [r for r in table_rows(res, NAME, "replication") if is_replication_row(r, kind)]
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
        nets, why = divergence_networks(res, row, kind)
        iv, why = intervals.composite(nets, divergence_statistic) if nets is not None else (None, why)
        return Measured((grows + above) / 2, shown, note, iv, why)
    return extract


#: why a replication finding has no interval when the file lacks its networks' own losses
NO_REPLICATION_NETWORKS = ("mnist.json has no per-network curve ('ablation_curves') of the replication's networks "
                           "at this horizon, only their medians and quartiles")
#: why it has none when the curve found is not of the row's networks
NOT_THE_ROWS_NETWORKS = ("the per-network curve of the replication's networks does not give this row's medians, so "
                         "it is not of the same networks")
