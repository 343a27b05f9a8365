"""The DE solver's claims (Table 1, Sec. 4.2, the range of T), measured from ``de-solver.json``."""
from __future__ import annotations

from .reading import (Measured, NotMeasured, inits_note, need, number, radius_note, scalar, speedup,
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


def de_success(optimizer):
    def extract(results):
        row, note = de_row(results, optimizer)
        v = 100.0 * number(row.success_rate, "success_rate", NAME, row)
        return Measured(v, f"{v:.0f}%", note + inits_note(row))
    return extract


def de_teq(optimizer):
    def extract(results):
        row, note = de_row(results, optimizer)
        v = number(row.teq_over_t_median, "teq_over_t_median", NAME, row)
        return Measured(v, f"{v:.2f}", note + inits_note(row))
    return extract


def de_speedup(optimizer):
    def extract(results):
        row, note = de_row(results, optimizer)
        v, why = speedup(row, "speedup_paper_style_median", NAME)
        fast = row.speedup_fast_loop_median
        extra = f"; against a fast optimizer loop: {times(fast)}" if isinstance(fast, (int, float)) else ""
        return Measured(v, times(v), note + (f"; {why}" if why else "") + extra)
    return extract


def de_error_ratio(results):
    v = scalar(need(results, NAME), "error_ratio_median", NAME)
    return Measured(float(v), f"{v:.2g}", "median |error| / median |true evolution| over the 10 best networks")


def de_range(results):
    by_T: dict[float, list[float]] = {}
    for r in de_table(results)[0]:
        by_T.setdefault(float(r.T), []).append(number(r.teq_over_t_median, "teq_over_t_median", NAME, r))
    ok = [T for T, v in by_T.items() if min(v) >= KEEPS_UP]
    best = max(ok, default=0.0)
    tested = ", ".join(f"{T:g}" for T in sorted(by_T))
    return Measured(best / DE_T, f"T = {best:g} steps" if best else "none",
                    f"T tested: {tested}; every optimizer's median T_eq/T >= {KEEPS_UP}")
