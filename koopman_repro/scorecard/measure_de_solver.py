"""The DE solver's claims (Table 1, Sec. 4.2, the range of T), measured from ``de-solver.json``."""
from __future__ import annotations

import numpy as np

from koopman_lib.metrics import bootstrap_interval

from . import intervals
from .reading import (Measured, NotMeasured, declared_rows, inits_note, need, number, radius_note, scalar, speedup,
                      table_rows, times)
from .rules import KEEPS_UP

NAME = "de-solver"
DE_T = 2500          # the authors' example T (steps)
DE_TABLE1 = {"Adam": (84, 0.85, 98), "Adagrad": (92, 1.00, 132), "Adadelta": (100, 1.00, 141)}


def _reading(row) -> tuple[tuple[str, str], ...]:
    """The columns that tell apart several readings of the experiment (fit, training dtype,
    fit method), as ``(name, value)`` pairs."""
    return (("fit", row.fit), ("train_dtype", row.train_dtype), ("fit_method", row.fit_method))


def main_reading(table: list) -> tuple[list, str]:
    """The rows of the main reading (those that share the first row's :func:`_reading`) and a
    note naming the reading where the table holds several (``"train_dtype float64"``)."""
    readings = [_reading(r) for r in table]
    main = [r for r, reading in zip(table, readings) if reading == readings[0]]
    varies = [(k, v) for i, (k, v) in enumerate(readings[0]) if len({str(rd[i][1]) for rd in readings}) > 1]
    return main, ", ".join(f"{k} {v}" for k, v in varies)


def de_table(results) -> tuple[list, str]:
    return main_reading(table_rows(need(results, NAME), NAME, "table"))


def de_row(results, optimizer: str):
    """The main reading's row of ``optimizer`` nearest the paper's T, and its note."""
    table, reading = de_table(results)
    rows = [r for r in table if r.optimizer.lower() == optimizer.lower()]
    if not rows:
        raise NotMeasured(f"de-solver.json has no row for {optimizer}")
    row = min(rows, key=lambda r: abs(r.T - DE_T))
    note = f"T = {row.T:g}" + ("" if row.T == DE_T else f" (no row at the paper's T = {DE_T})")
    return row, note + (f" ({reading})" if reading else "") + radius_note(row.median_max_spectral_radius)


#: why a DE value has no interval when the file lacks the per-network rows of its reading
NO_NETWORKS = "de-solver.json has no per-network rows ('networks') for this reading"


def de_networks(results, row) -> list:
    """The per-network rows (``networks``) of table row ``row``'s reading: the same training dtype,
    fit, fit method, optimizer and ``T``, by init."""
    key = (row.train_dtype, row.fit, row.fit_method, row.optimizer.lower(), row.T)
    nets = declared_rows(need(results, NAME), NAME, "networks")
    return sorted((n for n in nets if (n.train_dtype, n.fit, n.fit_method, n.optimizer.lower(), n.T) == key),
                  key=lambda n: n.init)


def de_row_interval(results, row, rule: str):
    """The interval over networks of table row ``row``'s value that rule ``rule`` reads (``"success
    rate"`` in %, ``"T_eq/T"``, ``"speedup"`` timed as the paper did); ``None`` without per-network rows.
    The scorecard's claims and the chapter's other readings (dtypes, fits) both go through it."""
    nets = de_networks(results, row)
    if not nets:
        return None
    if rule == "success rate":
        return intervals.rate_percent([n.success for n in nets])
    if rule == "T_eq/T":
        return intervals.median([n.teq_over_t for n in nets])
    return intervals.speedup([n.success for n in nets], [n.speedup_paper_style for n in nets])


def de_success(optimizer):
    def extract(results):
        row, note = de_row(results, optimizer)
        v = 100.0 * number(row.success_rate, "success_rate", NAME, row)
        iv = de_row_interval(results, row, "success rate")
        return Measured(v, f"{v:.0f}%", note + inits_note(row), iv, "" if iv else NO_NETWORKS)
    return extract


def de_teq(optimizer):
    def extract(results):
        row, note = de_row(results, optimizer)
        v = number(row.teq_over_t_median, "teq_over_t_median", NAME, row)
        iv = de_row_interval(results, row, "T_eq/T")
        return Measured(v, f"{v:.2f}", note + inits_note(row), iv, "" if iv else NO_NETWORKS)
    return extract


def de_speedup(optimizer):
    def extract(results):
        row, note = de_row(results, optimizer)
        v, why = speedup(row, "speedup_paper_style_median", NAME)
        fast = row.speedup_fast_loop_median
        extra = f"; against a fast optimizer loop: {times(fast)}" if isinstance(fast, (int, float)) else ""
        iv = de_row_interval(results, row, "speedup")
        return Measured(v, times(v), note + (f"; {why}" if why else "") + extra, iv, "" if iv else NO_NETWORKS)
    return extract


#: why the error ratio has no interval when the ``networks`` rows lack each network's own ratio and mean
#: |error| (``error_ratio``, ``mean_abs_error``: files made before them); ``{n}``: Fig. 2e's ``n_best``
NO_OWN_RATIOS = "de-solver.json keeps the ratio of the {n} best networks' medians, not one per network"


def best_networks_ratio(rows, n_best: int) -> float:
    """The median own error ratio of the ``n_best`` networks with the smallest mean |error| (``rows``: one
    per network, columns ``mean_abs_error``, ``error_ratio``): Fig. 2e's choice of networks, each network's
    own ratio (not the ratio of the medians pooled over their weights, which the results keep)."""
    rows = np.asarray(rows, dtype=float)
    best = np.argsort(rows[:, 0], kind="stable")[:n_best]
    return float(np.median(rows[best, 1]))


def de_error_ratio_interval(results, row, n_best: int) -> tuple:
    """``(interval, "")`` of :func:`best_networks_ratio` over table row ``row``'s networks, resampled
    (the ``n_best`` chosen again in each resample), or ``(None, why)`` without their own ratios."""
    nets = de_networks(results, row)
    if not nets:
        return None, NO_NETWORKS
    if any(n.error_ratio is None or n.mean_abs_error is None for n in nets):
        return None, NO_OWN_RATIOS.format(n=n_best)
    rows = [[n.mean_abs_error, n.error_ratio] for n in nets]
    return bootstrap_interval(rows, statistic=lambda a: best_networks_ratio(a, n_best)), ""


def de_error_ratio(results):
    """Fig. 2e's ratio (the results' ``error_ratio_median``: the median |error| over the weights of the
    ``n_best`` networks of smallest mean |error|, over their median |true evolution|, of the main reading's
    optimizer at the main ``T``) with an interval by resampling networks: in each resample the ``n_best``
    of smallest ``mean_abs_error`` are kept and the median of their own ``error_ratio`` taken; none where
    the ``networks`` rows lack those fields (files made before them)."""
    res = need(results, NAME)
    v = scalar(res, "error_ratio_median", NAME)
    n_best = int(((res.get("provenance") or {}).get("config") or {}).get("n_best", 10))
    opt, T = res.get("error_ratio_optimizer") or "adadelta", (res.get("main") or {}).get("T", DE_T)
    row = next((r for r in de_table(results)[0] if r.optimizer.lower() == opt and r.T == T), None)
    iv, why = de_error_ratio_interval(results, row, n_best) if row is not None else (None, NO_NETWORKS)
    note = f"median |error| / median |true evolution| over the {n_best} best networks"
    if iv is not None:
        note += (f" (their weights pooled); interval: networks resampled, the {n_best} of smallest mean |error| "
                 f"kept in each resample, the median of their own ratios ({iv.value:.2g} on these networks): a "
                 "per-network ratio is not the pooled ratio of medians")
    return Measured(float(v), f"{v:.2g}", note, iv, why)


def longest_keeping_up(Ts: list[float], medians) -> float:
    """The largest of ``Ts`` whose medians (one per optimizer, ``medians[T]``) are all >= KEEPS_UP (0: none)."""
    return max((T for T in Ts if np.min(medians[T]) >= KEEPS_UP), default=0.0)


def de_range_interval(results, table: list) -> tuple:
    """The range claim recomputed on resampled networks (paired by init across optimizers and T)."""
    cells = sorted({(float(r.T), r.optimizer.lower()) for r in table})
    by_cell = {(float(r.T), r.optimizer.lower()): r for r in table}
    columns = [[n.teq_over_t for n in de_networks(results, by_cell[c])] for c in cells]
    if not all(columns):
        return None, NO_NETWORKS
    Ts = sorted({T for T, _ in cells})

    def claim(rows):
        med = intervals.finite_medians(rows)
        return longest_keeping_up(Ts, {T: [m for (t, _), m in zip(cells, med) if t == T] for T in Ts}) / DE_T
    return intervals.composite(columns, claim)


def de_range(results):
    table = de_table(results)[0]
    by_T: dict[float, list[float]] = {}
    for r in table:
        by_T.setdefault(float(r.T), []).append(number(r.teq_over_t_median, "teq_over_t_median", NAME, r))
    best = longest_keeping_up(sorted(by_T), by_T)
    tested = ", ".join(f"{T:g}" for T in sorted(by_T))
    iv, why = de_range_interval(results, table)
    return Measured(best / DE_T, f"T = {best:g} steps" if best else "none",
                    f"T tested: {tested}; every optimizer's median T_eq/T >= {KEEPS_UP}", iv, why)


def ode_state(results) -> dict:
    """The state the main reading's trained networks are in against the reference solution
    (``by_dtype[train_dtype]["ode"]``): ``n`` networks, the median of their largest error
    ``median_error`` (best ``best_error``), the amplitude of x ``amplitude``, the median largest
    energy drift ``median_drift`` and the initial energy ``energy0``; :class:`NotMeasured` without it."""
    res = need(results, NAME)
    d = (res.get("main") or {}).get("train_dtype")
    ode = (res.get("by_dtype") or {}).get(d, {}).get("ode")
    if not ode or not ode.get("max_abs_error"):
        raise NotMeasured("de-solver.json has no ODE check of its main reading")
    errs = np.asarray(ode["max_abs_error"], dtype=float)
    return {"n": len(errs), "median_error": float(np.median(errs)), "best_error": float(errs.min()),
            "amplitude": float(np.abs(ode["x_ref"]).max()), "median_drift": float(np.median(ode["energy_drift"])),
            "energy0": float(ode["energy0"]), "train_dtype": d}
