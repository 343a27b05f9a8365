"""One module per chapter of the book: its tables, verdicts and figures as tested functions.

A chapter module reads results (``koopman_repro.experiments.chapter_results``, the declared rows
of :mod:`koopman_repro.rows`) and returns rows, verdicts and matplotlib figures; the notebook
calls it in one line per table or figure and keeps only what teaches (the equations and short
cells that call the library). ``tests/chapters/test_<chapter>.py`` checks each function's values
on small results written by the tests (``tests/chapters/conftest.py``).
"""
from __future__ import annotations

from ..scorecard import KEEPS_UP


def say(text: str) -> None:
    """Display a computed sentence as Markdown (in a notebook)."""
    from IPython.display import Markdown, display
    display(Markdown(text))


def config(res: dict) -> dict:
    """The configuration of the run ``res`` came from, as its provenance saved it (a plain dict)."""
    return res["provenance"]["config"]


def keeps_up_to_stride(pts) -> int | None:
    """The largest stride up to which every stride of ``pts`` (a stride sweep's rows of one reading:
    ``.stride``, ``.teq_over_t_median``) keeps up (median T_eq/T >= ``KEEPS_UP``); ``None``: not even
    at the smallest."""
    last = None
    for r in sorted(pts, key=lambda r: r.stride):
        if r.teq_over_t_median is None or not r.teq_over_t_median >= KEEPS_UP:
            break
        last = r.stride
    return last
