"""The two fits every claim is measured with: the results as one fit sees them
(:func:`select_fit`), and why a claim's two verdicts differ (:func:`why_differs`)."""
from __future__ import annotations

from typing import Mapping

from .. import rows as declared
from ..report import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from .reading import Measured, declared_rows

#: every claim is measured twice: with the paper's fit and with the library's default
#: (:data:`koopman_lib.fit.FITS`); results rows say which in their ``fit`` field
SCORE_FITS = ("paper", "default")
#: the replication's rows with its own fit (JAX's float32 pinv) stand for the paper column
REPLICATION_FIT = "replication"

#: the tables a fit selects rows of: table -> the ``fit`` its rows have in the paper column
FIT_TABLES = {"table": "paper", "replication": REPLICATION_FIT}


def select_fit(results: Mapping[str, dict | None], fit: str) -> dict[str, dict | None]:
    """The results as one fit sees them: ``table`` rows whose ``fit`` is ``fit``, ``replication``
    rows with that fit (the paper column: the replication's own fit), and for a fit other than
    the paper's the ``error_ratio_median`` of that fit. Other keys are kept."""
    out: dict[str, dict | None] = {}
    for name, res in results.items():
        if not res:
            out[name] = res
            continue
        res = dict(res)
        tables = declared.tables(name) if name in declared.MODULES else {}
        for table, paper_fit in FIT_TABLES.items():
            if table in tables and isinstance(res.get(table), list):
                keep = paper_fit if fit == "paper" else fit
                rows = declared_rows(res, name, table)
                res[table] = [raw for raw, row in zip(res[table], rows) if row.fit == keep]
        if fit != "paper":
            by_fit = res.get("error_ratio_median_by_fit")
            res["error_ratio_median"] = by_fit.get(fit) if isinstance(by_fit, dict) else None
        out[name] = res
    return out


#: why the default fit's verdict is better or worse than the paper fit's: one reason per direction
DEFAULT_BETTER = ("the paper's cutoff inverts singular values below the resolution of the recorded weights, which "
                  "become eigenvalues outside the unit circle; the default does not invert them")
DEFAULT_WORSE = ("the default drops the directions below the resolution of the recorded weights that the paper's fit "
                 "inverts; here those directions carried part of the optimizer's progress")
RANK = {REPRODUCED: 2, INCONCLUSIVE: 1, NOT_REPRODUCED: 0}


def differs_reason(bases: tuple[str, str], verdicts: tuple[str, str]) -> str:
    """Why a claim's two verdicts (paper fit, default fit; from runs ``bases``) differ, in one clause."""
    if bases[0] != bases[1]:
        return (f"the two verdicts come from different runs ({bases[0]} vs {bases[1]}): the saved full-scale run "
                "has no rows for the default fit yet")
    return DEFAULT_BETTER if RANK.get(verdicts[1], -1) > RANK.get(verdicts[0], -1) else DEFAULT_WORSE


def why_differs(paper_fit: Measured | None, default_fit: Measured | None, bases: tuple[str, str] = ("", ""),
                verdicts: tuple[str, str] = ("", "")) -> str:
    """One line for a claim whose two verdicts differ: both values and verdicts. ``bases``: the run
    each verdict comes from (paper-fit, default-fit); ``verdicts``: the two verdicts."""
    if paper_fit is None or default_fit is None:
        which = "the default fit" if default_fit is None else "the paper's fit"
        return f"Not measured with {which} in these results."
    return f"paper's fit {paper_fit.shown} ({verdicts[0]}), default {default_fit.shown} ({verdicts[1]})"
