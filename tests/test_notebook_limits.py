"""Notebooks keep what teaches; chapter logic lives in tested modules (koopman_repro.chapters).

Limits (issue 21): at most 10 function definitions across all notebooks, and no code cell
over 15 lines, hidden or visible, except exercise solutions (cells tagged ``solution``).
A line is a non-blank line of a cell's source, comments included; the MyST cell options
(``:tags:`` lines, or a ``---`` block at the top of the cell) are not code.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.md"))
MAX_DEFS, MAX_CELL_LINES = 10, 15
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)


def code_cells(path: Path) -> list[tuple[list[str], list[str]]]:
    """``(tags, code lines)`` of every code cell of a MyST notebook."""
    out = []
    for body in CELL.findall(path.read_text()):
        lines = body.splitlines()
        options = []
        if lines and lines[0].strip() == "---":
            end = lines.index("---", 1)
            options, lines = lines[1:end], lines[end + 1:]
        while lines and lines[0].startswith(":"):
            options, lines = options + [lines[0]], lines[1:]
        tags = re.findall(r"[\w-]+", " ".join(o.split(":", 2)[-1] for o in options if "tags" in o))
        out.append((tags, [ln for ln in lines if ln.strip()]))
    return out


def test_the_counter_sees_cells_tags_and_lines(tmp_path):
    nb = tmp_path / "x.md"
    nb.write_text("text\n```{code-cell} ipython3\n:tags: [hide-input]\n\nx = 1\n\n# c\n```\n"
                  "```{code-cell} ipython3\n---\ntags: [solution]\n---\ndef f():\n    pass\n```\n")
    assert code_cells(nb) == [(["hide-input"], ["x = 1", "# c"]), (["solution"], ["def f():", "    pass"])]


def test_at_most_ten_function_definitions_across_all_notebooks():
    defs = {p.name: sum(1 for _, lines in code_cells(p) for ln in lines if re.match(r"\s*def ", ln))
            for p in NOTEBOOKS}
    assert sum(defs.values()) <= MAX_DEFS, {k: v for k, v in defs.items() if v}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_code_cell_over_fifteen_lines(path):
    long = [(i, len(lines)) for i, (tags, lines) in enumerate(code_cells(path))
            if len(lines) > MAX_CELL_LINES and "solution" not in tags]
    assert not long, f"{path.name}: cells (index, lines) over {MAX_CELL_LINES} lines: {long}"
