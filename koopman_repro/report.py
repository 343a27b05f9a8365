"""Helpers for the chapters: saved full-scale results, provenance lines, verdicts, tables."""
from __future__ import annotations

import math
import re
from pathlib import Path

from .paths import resolve, saved_results_dir
from .results import load_results

PAPER_RESULTS = saved_results_dir("paper")

#: verdict labels, in order of agreement. The scorecard's three-way verdicts (decided by equivalence
#: over an interval, :mod:`koopman_repro.scorecard.rules`) are REPRODUCED, INCONCLUSIVE and
#: NOT_REPRODUCED, or NOT_MEASURED; PARTLY is left to the chapters' own readings (a claim of several
#: parts of which some hold), never a scorecard verdict
REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_MEASURED = "reproduced", "partly", "not reproduced", "not measured"
INCONCLUSIVE = "inconclusive"


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


# -- tables for readers -----------------------------------------------------------------------------
#: the header a reader sees for each column name the results use: words and units, never the
#: field's code name. A column not listed here shows its own name, which must then read as words
#: (``markdown_table`` refuses a code name, :func:`is_code_name`).
HEADERS: dict[str, str] = {
    # shared by several chapters
    "seconds": "time (s)",
    "success_rate": "success rate",
    "teq_over_t_median": "median T_eq / T",
    "loss_median": "median loss",
    "accuracy_median": "median accuracy",
    "loss_at_t2_median": "median loss at t2",
    "koopman_loss_median": "median Koopman loss",
    "optimizer_loss_median": "median optimizer loss",
    "weight_error_median": "median weight error",
    "max_spectral_radius_median": "median largest spectral radius",
    "median_max_spectral_radius": "median largest spectral radius",
    "max_spectral_radius": "largest spectral radius",
    "censored_fraction": "share censored",
    "censored": "censored",
    "fit_seconds_per_network": "fit per network (s)",
    "seconds_per_network": "time per network (s)",
    "train_dtype": "training",
    "fit_method": "fit method",
    "n_inits": "networks",
    "n_params": "parameters",
    "T_epochs": "T (epochs)",
    "error_ratio": "error ratio",
    # "Beyond the paper"
    "capped_at_steps_run": "capped at the steps run",
    "windows_chosen": "windows chosen",
    "rank_correlation_with_teq": "rank correlation with T_eq",
    "test_loss_koopman_median": "median test loss, Koopman",
    "test_loss_optimizer_median": "median test loss, optimizer",
    "test_accuracy_koopman_median": "median test accuracy, Koopman",
    "test_accuracy_optimizer_median": "median test accuracy, optimizer",
    "accuracy_cost_median": "median accuracy cost",
    "diverged_fraction": "share diverged",
    "features_per_block": "features per block",
    "operator_entries_per_network": "operator entries per network",
    "target_test_loss_median": "median target test loss",
    "seconds_to_target_median": "median time to target (s)",
    "reached_fraction": "share reaching the target",
    "steps_to_target_median": "median steps to target",
    "jumps_accepted": "jumps accepted",
    "jumps_tried": "jumps tried",
    "seconds_training": "training (s)",
    "seconds_recording": "recording (s)",
    "seconds_fitting": "fitting (s)",
    "seconds_jumping": "jumping (s)",
    "seconds_evaluating": "evaluating (s)",
    # the DE solver
    "final_loss_median": "median final loss",
    "median_max_abs_error": "median max. abs. error",
    "best_max_abs_error": "best max. abs. error",
    "median_energy_drift": "median energy drift",
    "median_relative_weight_error": "median rel. weight error",
    "median_kept_rank_fraction": "median share of rank kept",
    "speedup_paper_style_median": "median speedup, paper-style timing",
    "speedup_fast_loop_median": "median speedup, fast loop",
    "speedup_paper_style_median_all": "median speedup over all networks, paper-style",
    # MNIST and the divergence
    "test_loss_t2": "test loss at t2",
    "koopman_loss_T1": "Koopman loss, T1",
    "optimizer_loss_T1": "optimizer loss, T1",
    "koopman_loss_T2": "Koopman loss, T2",
    "optimizer_loss_T2": "optimizer loss, T2",
    "growth_T1": "growth of the largest mode, T1",
    "growth_T2": "growth of the largest mode, T2",
    "n_eigs_outside_unit_circle": "eigenvalues outside the unit circle",
    "block_size": "block size",
    "n_blocks": "blocks",
    "cond_F_median": "median cond(F)",
    "cond_F_max": "largest cond(F)",
    "cholesky_failed_blocks": "blocks where Cholesky failed",
    "rel_diff_median": "median rel. difference",
    "rel_diff_max": "largest rel. difference",
    # the cost chapter
    "s7_construction": "construction (S7)",
    "s7_per_step": "per step (S7)",
    "construction_gflop": "construction (GFLOP)",
    "step_mflop": "step (MFLOP)",
    "jump_gflop": "jump (GFLOP)",
    "backprop_step_mflop": "backprop step (MFLOP)",
    "fit_s": "fit (s)",
    "step_s": "step (s)",
    "jump_s": "jump (s)",
    "eval_s": "evaluation (s)",
    "backprop_step_s": "backprop step (s)",
    "fitted_all": "fitted, all sizes",
    "speedup_vs_pinv_loop": "speedup vs the pinv loop",
    "median_rel_diff_vs_pinv": "median rel. diff. vs pinv",
    "max_rel_diff_vs_pinv": "largest rel. diff. vs pinv",
    "prediction_rel_diff_vs_pinv": "prediction rel. diff. vs pinv",
    "test_loss_after_jump": "test loss after the jump",
    "optimizer_seconds_same_T": "optimizer, same T (s)",
    "speedup_vs_optimizer": "speedup vs the optimizer",
    "seconds_per_snapshot": "per snapshot (s)",
    "overhead_window": "overhead in the window",
    "overhead_to_t2": "overhead up to t2",
    "memory_MB": "memory (MB)",
    "ci_seconds": "profile ci (s)",
    "paper_seconds": "profile paper (s)",
    "loss_t2": "loss at t2",
    "loss_koopman": "Koopman loss",
    "t_eq_epochs": "T_eq (epochs)",
    "t_eq_censored": "T_eq censored",
    "train_to_t2_s": "training to t2 (s)",
    "recording_streaming_s": "recording, streamed (s)",
    "optimizer_after_t2_s": "optimizer after t2 (s)",
    "without_koopman_s": "without Koopman (s)",
    "with_koopman_s": "with Koopman (s)",
    "speedup_end_to_end": "speedup, end to end",
    "speedup_after_t2": "speedup after t2",
    "wall_minutes": "wall time (min)",
    "load_average (1 min)": "load average (1 min)",
    "utc_time": "finished (UTC)",
}

#: at most this many rows are shown; the rest of a longer table is collapsed below them
MAX_ROWS = 12
#: the text column of a page at a 1280 px window (sphinx-book-theme: article.bd-article's content
#: box, measured by tests/book/test_browser.py) and what one character and one cell's padding and
#: border take there (16 px text; a digit is about 9 px wide, a wide letter more: 10.5 px is the measured margin)
TEXT_COLUMN_PX, CHAR_PX, CELL_PX = 676, 10.5, 18
#: what a dropdown's frame and padding take from the width of the table it holds
DROPDOWN_PX = 40

#: A code name is how a program spells a name: words joined by underscores (``teq_over_t_median``,
#: ``loss_t2``, ``n_params``) or run together in camel case (``naturalWidth``). A reader's header
#: writes words with spaces. The only underscores a reader meets are the subscripts of the book's
#: notation: a one- or two-letter symbol with one short subscript (``T_eq``, ``t_1``, ``x_k``),
#: which are allowed. The browser checks and :func:`markdown_table` use this one rule.
_JOINED = re.compile(r"(?<![\\w])[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?![\\w])")
_CAMEL = re.compile(r"(?<![\\w])[a-z]+[A-Z][a-z]+[A-Za-z]*(?![\\w])")


def is_code_name(text: str) -> bool:
    """Whether ``text`` (a table header) holds a code name (see the rule above)."""
    for m in _JOINED.finditer(text):
        head, *subs = m.group().split("_")
        if not (len(head) <= 2 and len(subs) == 1 and len(subs[0]) <= 3):
            return True
    return bool(_CAMEL.search(text))


def header(column: str) -> str:
    """The header a reader sees for ``column`` (:data:`HEADERS`, else the column itself)."""
    return HEADERS.get(column, column)


def _cell(x) -> str:
    return fmt(x).replace("|", "\\|").replace("\n", " ")


_MARKUP = re.compile(r"\[|\]\([^)]*\)|\*\*|\\|\$|`")


def min_width_px(cells: list[str]) -> float:
    """The narrowest a column of these cells can be drawn: its longest unbreakable word (text wraps
    at spaces), in pixels, with the cell's padding; link targets and markup are not drawn."""
    words = [w for c in cells for w in _MARKUP.sub("", c).split()] or [""]
    return max(len(w) for w in words) * CHAR_PX + CELL_PX


def column_groups(table: list[list[str]], keys: int = 1, width: float = TEXT_COLUMN_PX) -> list[list[int]]:
    """Columns of ``table`` (header first, then the rows, as cells) in groups that each fit
    ``width``: one group when the whole table fits; else the first ``keys`` columns (what names a
    row; fewer when they would take more than half the width) start every group and the others
    are packed in order."""
    n = len(table[0])
    w = [min_width_px([row[i] for row in table]) for i in range(n)]
    if sum(w) <= width or n <= 1:
        return [list(range(n))]
    keys = max(1, min(keys, n - 1))
    while keys > 1 and sum(w[:keys]) > width / 2:  # the names of a row leave room for its values
        keys -= 1
    head = list(range(min(keys, n)))
    groups: list[list[int]] = []
    for i in range(len(head), n):
        if groups and sum(w[j] for j in groups[-1]) + w[i] <= width:
            groups[-1].append(i)
        else:
            groups.append(head + [i])
    return groups


def _pipe_table(table: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])] + \
           ["| " + " | ".join(r) + " |" for r in table[1:]]


def label_columns(rows: list[dict], columns: list[str], most: int = 4) -> int:
    """How many leading columns name a row: those whose every value is text or a whole number (a
    method, an optimizer, a fit, a seed, a horizon T), at most ``most`` and at least one."""
    def names(v) -> bool:
        return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
    n = 0
    while n < min(most, len(columns)) and all(names(r.get(columns[n])) for r in rows):
        n += 1
    return max(n, 1)


def markdown_table(rows: list[dict], columns: list[str] | None = None, *, keys: int | None = None,
                   max_rows: int = MAX_ROWS, csv: str | None = None) -> str:
    """A MyST markdown table from a list of dicts, for readers: headers from :data:`HEADERS`
    (a code name left over raises ``ValueError``); a table wider than the text column split into
    tables of fewer columns, each led by the ``keys`` columns that name a row
    (:func:`column_groups`); of more than ``max_rows`` rows the first ``max_rows`` shown and the
    rest in a collapsed dropdown below; ``csv``, a file holding every row, named under it.
    ``keys`` defaults to :func:`label_columns`."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0])
    heads = [header(c).replace("|", "\\|") for c in columns]
    code = [h for h in heads if is_code_name(h)]
    if code:
        raise ValueError(f"table headers {code} are code names: give them a reader's header in "
                         "koopman_repro.report.HEADERS")
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    parts = []
    keys = label_columns(rows, columns) if keys is None else keys
    width = TEXT_COLUMN_PX - (DROPDOWN_PX if len(cells) > max_rows else 0)
    for group in column_groups([heads] + cells, keys, width):
        head = [heads[i] for i in group]
        body = [[row[i] for i in group] for row in cells]
        part = _pipe_table([head] + body[:max_rows])
        if len(body) > max_rows:
            rest = len(body) - max_rows
            part += ["", f"```{{dropdown}} The other {rest} row{'s' * (rest != 1)} ({len(body)} in all)",
                     *_pipe_table([head] + body[max_rows:]), "```"]
        parts.append("\n".join(part))
    if csv:
        parts.append(f"Every row: `{csv}`.")
    return "\n\n".join(parts)


def show_table(rows: list[dict], columns: list[str] | None = None, **kw):
    """Display a table for readers (:func:`markdown_table`) in a notebook."""
    from IPython.display import Markdown, display
    display(Markdown(markdown_table(rows, columns, **kw)))
