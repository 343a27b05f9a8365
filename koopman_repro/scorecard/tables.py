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


def bound_text(rule: str, x: float) -> str:
    """A value in the units its claim's rule reads (``"84%"``, ``"98x"``, ``"0.85"``)."""
    if rule == "success rate":
        return f"{x:.0f}%"
    if rule in ("speedup", "10x"):
        return f"{x:.3g}x"
    return f"{x:.2f}" if rule in ("T_eq/T", "ordering", "divergence", "range") else f"{x:.2g}"


def interval_text(rule: str, n, low, high, no_interval: str = "") -> str:
    """``"95%: 65%-94%, n = 25"``, or ``"no interval"`` (``no_interval`` says why, in the notes)."""
    if low is None or high is None:
        return "no interval"
    return f"95%: {bound_text(rule, low)}-{bound_text(rule, high)}, n = {n}"


def rules_markdown() -> str:
    lines = ["| rule | verdict from our interval | tolerance, and why |", "|---|---|---|"]
    lines += [f"| {_cell(r.key)} | {_cell(r.text)} | {_cell(r.why)} |" for r in RULES.values()]
    return "\n".join(lines)


HEAD = ["claim", "paper", "ours, paper's fit", "verdict", "ours, library's default fit", "verdict", "notes"]


def _value(r: dict, prefix: str, label: str) -> str:
    """The deciding run's value with its interval, and the other run's value in brackets."""
    saved, build = r[f"{prefix}paper_profile"], r[f"{prefix}ours"]
    iv = interval_text(r["rule"], r.get(f"{prefix}n"), r.get(f"{prefix}ci_low"), r.get(f"{prefix}ci_high"))
    if saved is None:
        return f"{build} [{iv}] ({label})" if build is not None else "not measured"
    return f"{saved} [{iv}] ({label}: {build if build is not None else 'not measured'})"


def note_line(r: dict) -> str:
    """The claim's notes in one line: its rule and bound, how it was measured, why it has no interval,
    its null-model field."""
    why = r.get("no_interval") or r.get("default_no_interval")
    return (f"rule: {r['rule']}. {r['note']}" + (f"; no interval: {why}" if why else "")
            + (f"; {r['null_model']}" if r.get("null_model") else ""))


def _table_cells(rows: list[dict], ours_label: str, chapters: Mapping[str, str] | None,
                 name: Callable[[dict], str] | None) -> list[list[str]]:
    """One list of cells per claim, in the order of :data:`HEAD`."""
    label = ours_label.replace("ours ", "").strip("()") or "this build"
    out = []
    for r in rows:
        where = r["where"]
        if chapters and r["chapter"] in chapters:
            where = f"[{where}]({chapters[r['chapter']]})"
        claim = f"**{_cell(where)}**: {_cell(name(r) if name else r['claim'])}"
        verdict = f"**{r['verdict']}**" + (f" ({r['basis']})" if r["basis"] else "")
        d_verdict = f"**{r.get('default_verdict', NOT_MEASURED)}**" + \
            (f" ({r['default_basis']})" if r.get("default_basis") else "")
        out.append([_cell(x) for x in (claim, r["paper"], _value(r, "", label), verdict,
                                       _value(r, "default_", label), d_verdict, note_line(r))])
    return out


def differs_paragraph(rows: list[dict]) -> str:
    """One paragraph for a group of claims: where the two fits' verdicts differ, and why (one reason
    per direction)."""
    differ = [r for r in rows if r.get("differs_why")]
    if not differ:
        return "The two fits get the same verdicts here."
    by_reason: dict[str, list[str]] = {}
    for r in differ:
        by_reason.setdefault(r.get("differs_reason", ""), []).append(f"{r['key']}: {r['differs_why']}")
    return "*Why the fits' verdicts differ.* " + " ".join(
        "; ".join(items) + (f". Why: {reason}." if reason else ".") for reason, items in by_reason.items())


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
    return "\n".join(lines + ["", differs_paragraph(rows), "",
                              "```{dropdown} Notes: each claim's rule and measurement", *notes, "```"])
