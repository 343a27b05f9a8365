"""Helpers for the chapters: saved full-scale results, provenance lines, verdicts, tables."""
from __future__ import annotations

import math
from pathlib import Path

from .paths import resolve, saved_results_dir
from .results import load_results

PAPER_RESULTS = saved_results_dir("paper")

#: verdict labels, in order of agreement
REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_MEASURED = "reproduced", "partly", "not reproduced", "not measured"


def paper_results(name: str) -> dict | None:
    """The saved full-scale (profile ``paper``) results of experiment ``name``, or ``None``."""
    return saved_results(name, "paper")


def saved_results(name: str, profile: str) -> dict | None:
    """The committed results ``results/PROFILE/NAME.json`` of experiment ``name``, or ``None``."""
    path = saved_results_dir(profile) / f"{name}.json"
    return load_results(path, name) if path.is_file() else None


def largest_saved_run(name: str) -> tuple[str, dict | None]:
    """``(profile, results)`` of the committed run of ``name`` a chapter shows: the most recent
    one (a later run was made by later code), and of two equally recent the larger (profile
    ``full``, which only ``beyond`` has, before ``paper``); results ``None`` when neither was saved."""
    runs = [(p, r) for p in ("full", "paper") if (r := saved_results(name, p))]
    if not runs:
        return "paper", None
    when = lambda run: str(run[1].get("provenance", {}).get("utc_time", ""))  # noqa: E731  ISO 8601 sorts
    return max(runs, key=when)  # max keeps the first of equals: full before paper


def provenance_line(results: dict | None) -> str:
    """One line: profile, git SHA, UTC time, hardware, wall time."""
    if not results:
        return "not run"
    p = results.get("provenance", {})
    dirty = p.get("git_dirty_code")  # older files get it in koopman_repro.migrations
    sha = (p.get("git_sha") or "unknown")[:10] + ("+dirty" if dirty else "")
    hw = p.get("hardware", {})
    wall = results.get("wall_seconds")
    wall_s = f", {wall / 60:.1f} min" if isinstance(wall, (int, float)) else ""
    load = hw.get("load_average_at_start") or hw.get("load_average")
    load_s = f", load average {load[0]:.1f} on {hw.get('cpu_count')} cores" if load else ""
    return (f"profile `{p.get('profile')}`, commit `{sha}`, {p.get('utc_time')}, "
            f"{hw.get('cpu')} ({hw.get('torch_threads')} threads){load_s}{wall_s}")


def verdict_ratio(paper: float, ours: float | None, tol: float = 0.25, partly_tol: float = 0.75) -> str:
    """Verdict for a positive quantity: within ``tol`` relative -> reproduced; within
    ``partly_tol`` (or on the same side of a threshold the caller checks) -> partly."""
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return NOT_MEASURED
    rel = abs(ours - paper) / abs(paper)
    if rel <= tol:
        return REPRODUCED
    if rel <= partly_tol:
        return PARTLY
    return NOT_REPRODUCED


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        return f"{x:.{digits}g}"
    return str(x)


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A GitHub/MyST markdown table from a list of dicts."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(out)


def show_table(rows: list[dict], columns: list[str] | None = None):
    """Display a markdown table in a notebook."""
    from IPython.display import Markdown, display
    display(Markdown(markdown_table(rows, columns)))
