"""The scorecard as markdown: the claims table (:func:`table_markdown`) and the rules
(:func:`rules_markdown`) the front page prints beside it."""
from __future__ import annotations

from typing import Callable, Mapping

from ..report import NOT_MEASURED
from .rules import RULES

#: the figures the front page (notebooks/scorecard.md) draws: the scorecard figure
#: (tests/book/test_browser.py counts them on the page)
FIGURES = 1


def _cell(x) -> str:
    return "" if x is None else str(x).replace("|", "\\|").replace("\n", " ")


def rules_markdown() -> str:
    lines = ["| rule | verdict from our value |", "|---|---|"]
    lines += [f"| {_cell(r.key)} | {_cell(r.text)} |" for r in RULES.values()]
    return "\n".join(lines)


HEAD = ["claim", "paper", "ours, paper's fit", "verdict", "ours, library's default fit", "verdict", "notes"]


def _table_cells(rows: list[dict], ours_label: str, chapters: Mapping[str, str] | None,
                 name: Callable[[dict], str] | None) -> list[list[str]]:
    """One list of cells per claim, in the order of :data:`HEAD`."""
    label = ours_label.replace("ours ", "").strip("()") or "this build"

    def value(paper_profile, build):
        """The full-scale value, with this build's in brackets."""
        if paper_profile is None:
            return f"{build} ({label})" if build is not None else "not measured"
        return f"{paper_profile} ({label}: {build if build is not None else 'not measured'})"

    out = []
    for r in rows:
        where = r["where"]
        if chapters and r["chapter"] in chapters:
            where = f"[{where}]({chapters[r['chapter']]})"
        claim = f"**{_cell(where)}**: {_cell(name(r) if name else r['claim'])}"
        verdict = f"**{r['verdict']}**" + (f" ({r['basis']})" if r["basis"] else "")
        default = value(r.get("default_paper_profile"), r.get("default_ours"))
        d_verdict = f"**{r.get('default_verdict', NOT_MEASURED)}**" + \
            (f" ({r['default_basis']})" if r.get("default_basis") else "")
        note = f"rule: {r['rule']}. {r['note']}" + \
            (f" *Why the verdicts differ:* {r['differs_why']}" if r.get("differs_why") else "")
        out.append([_cell(x) for x in (claim, r["paper"], value(r["paper_profile"], r["ours"]),
                                       verdict, default, d_verdict, note)])
    return out


def table_markdown(rows: list[dict], ours_label: str = "ours (ci)", chapters: Mapping[str, str] | None = None,
                   name: Callable[[dict], str] | None = None) -> str:
    """The scorecard as a markdown table. ``chapters`` maps a chapter name to a link
    target; claims whose chapter is in it get a link. ``name(row)``: the claim's label
    (default: its full statement)."""
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _table_cells(rows, ours_label, chapters, name)]
    return "\n".join(lines)


def front_page_markdown(rows: list[dict], ours_label: str = "ours (ci)", chapters: Mapping[str, str] | None = None,
                        name: Callable[[dict], str] | None = None) -> str:
    """The scorecard for the front page, narrow enough for the text column: the table of
    :func:`table_markdown` without its notes column, and each claim's notes (its rule, how it
    was measured, why its verdicts differ) in a collapsed list below the table."""
    cells = _table_cells(rows, ours_label, chapters, name)
    lines = ["| " + " | ".join(HEAD[:-1]) + " |", "|" + "---|" * (len(HEAD) - 1)]
    lines += ["| " + " | ".join(c[:-1]) + " |" for c in cells]
    notes = [f"- {c[0]}: {c[-1]}".replace("\\|", "|") for c in cells]
    return "\n".join(lines + ["", "```{dropdown} Notes: each claim's rule and measurement", *notes, "```"])
