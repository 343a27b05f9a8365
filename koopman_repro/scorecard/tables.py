"""The scorecard as markdown: the claims table (:func:`table_markdown`) and the rules
(:func:`rules_markdown`) the front page prints beside it."""
from __future__ import annotations

from typing import Callable, Mapping

from ..report import NOT_MEASURED
from .rules import RULES


def _cell(x) -> str:
    return "" if x is None else str(x).replace("|", "\\|").replace("\n", " ")


def rules_markdown() -> str:
    lines = ["| rule | verdict from our value |", "|---|---|"]
    lines += [f"| {_cell(r.key)} | {_cell(r.text)} |" for r in RULES.values()]
    return "\n".join(lines)


def table_markdown(rows: list[dict], ours_label: str = "ours (ci)", chapters: Mapping[str, str] | None = None,
                   name: Callable[[dict], str] | None = None) -> str:
    """The scorecard as a markdown table. ``chapters`` maps a chapter name to a link
    target; claims whose chapter is in it get a link. ``name(row)``: the claim's label
    (default: its full statement)."""
    head = ["claim", "paper", "ours, paper's fit", "verdict", "ours, library's default fit", "verdict", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    label = ours_label.replace("ours ", "").strip("()") or "this build"

    def value(paper_profile, build):
        """The full-scale value, with this build's in brackets."""
        if paper_profile is None:
            return f"{build} ({label})" if build is not None else "not measured"
        return f"{paper_profile} ({label}: {build if build is not None else 'not measured'})"

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
        lines.append("| " + " | ".join(_cell(x) for x in (claim, r["paper"], value(r["paper_profile"], r["ours"]),
                                                          verdict, default, d_verdict, note)) + " |")
    return "\n".join(lines)
