"""Reading a claim's numbers out of results dicts: declared rows, their fields, top-level scalars.

Tables are read through :func:`koopman_repro.rows.table` (declared row types, attribute access);
a table whose rows lack a declared field or carry an undeclared one raises ``ValueError`` naming
it (the file is malformed: :mod:`koopman_repro.migrations` upgrades older files on load). A value
that is absent where the results may lack it (no such file, no rows, ``None`` for a number)
raises :class:`NotMeasured`, which the scorecard shows as the reason a claim is not measured.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from koopman_lib.metrics import Interval

from .. import rows as declared


class NotMeasured(LookupError):
    """A claim whose value cannot be read from the results (the message says what is missing)."""


@dataclass(frozen=True)
class Measured:
    """``value``: what the rule is applied to; ``shown``: how the page shows it; ``interval``: the
    value over ``n`` networks with its 95% interval (:class:`koopman_lib.metrics.Interval`), or
    ``None`` with ``no_interval`` saying why the results give none."""

    value: float
    shown: str
    note: str = ""
    interval: Interval | None = None
    no_interval: str = ""

    def judged(self) -> Interval:
        """What the rule reads: the interval, or the value alone (no interval: an inconclusive verdict)."""
        return self.interval if self.interval is not None else Interval(self.value, 0, None, None)


def need(results: Mapping[str, dict | None], name: str) -> dict:
    """The results of experiment ``name``, or :class:`NotMeasured` (``no NAME.json``)."""
    r = results.get(name)
    if not r:
        raise NotMeasured(f"no {name}.json")
    return r


def declared_rows(res: dict, name: str, table: str) -> list:
    """The rows of ``res[table]`` (none when absent) as ``name``'s declared row type; ``ValueError``
    naming the field when a row lacks a declared field or has one its type does not declare."""
    cls = declared.row_type(name, table)
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for i, row in enumerate(res.get(table) or []):
        missing = [f for f in required if f not in row]
        if missing:
            raise ValueError(f"{name}.json {table!r} row {i}: declared field(s) {missing} of {cls.__name__} "
                             f"missing (koopman_repro.rows.{declared.MODULES[name]}); an older file is "
                             "upgraded in koopman_repro.migrations")
    return declared.table(res, table, name)


def table_rows(res: dict, name: str, table: str) -> list:
    """:func:`declared_rows`, or :class:`NotMeasured` when the table is absent or empty."""
    if not isinstance(res.get(table), list) or not res[table]:
        raise NotMeasured(f"{name}.json has no {table!r} rows")
    return declared_rows(res, name, table)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def number(value, field: str, name: str, row) -> float:
    """``value`` (the row's ``field``) as a float, or :class:`NotMeasured` when it is not a number."""
    if not is_number(value):
        raise NotMeasured(f"{name}.json: {field!r} missing or not a number in row {row_label(row)}")
    return float(value)


def scalar(res: dict, field: str, name: str) -> float:
    """A top-level number of a results file (not a table), or :class:`NotMeasured`."""
    v = res.get(field)
    if not is_number(v):
        raise NotMeasured(f"{name}.json has no number {field!r}")
    return v


#: the declared fields that name a row in a message, in this order
LABEL_FIELDS = ("optimizer", "method", "setting", "partition", "dtype", "T", "T_epochs")


def row_label(row) -> str:
    """``"(optimizer=adam, T=2500)"``: the row's naming fields that its type declares."""
    names = {f.name for f in dataclasses.fields(row)}
    return "(" + ", ".join(f"{k}={getattr(row, k)}" for k in LABEL_FIELDS if k in names) + ")"


def times(v: float) -> str:
    """A speedup as the page shows it: ``"15x"``."""
    return f"{v:.3g}x"


def radius_note(v) -> str:
    """``"; median largest |eigenvalue| r"`` where the row has the number."""
    return f"; median largest |eigenvalue| {v:.5g}" if is_number(v) else ""


#: the two timings of a speedup: results field -> (its median over improved inits, over all inits)
SPEEDUPS = {
    "speedup_paper_style_median": lambda r: (r.speedup_paper_style_median, r.speedup_paper_style_median_all),
    "speedup_fast_loop_median": lambda r: (r.speedup_fast_loop_median, r.speedup_fast_loop_median_all),
}


def speedup(row, field: str, name: str) -> tuple[float, str]:
    """The median speedup ``field`` (a key of :data:`SPEEDUPS`) of a DE or MNIST table row, and a
    note. Speedups are medians over the inits Koopman training improved; with none (no value)
    the median over all inits (where a failed init counts 0) is used, or 0 when the success
    rate is 0."""
    median, over_all = SPEEDUPS[field](row)
    if is_number(median):
        return float(median), ""
    if is_number(over_all):
        return float(over_all), "no init improved: median over all inits"
    if row.success_rate == 0:
        return 0.0, "no init improved, so no speedup"
    return number(median, field, name, row), ""


def inits_note(row) -> str:
    """``", 25 inits"``."""
    return f", {row.n_inits} inits"
