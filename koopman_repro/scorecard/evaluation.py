"""Evaluating the claims: each measured with both fits on this build's results and the saved
full-scale runs, and given its verdicts (:func:`evaluate`, one row per claim)."""
from __future__ import annotations

from typing import Mapping

from ..report import NOT_MEASURED
from .claims import CLAIMS, Claim
from .fits import SCORE_FITS, select_fit, why_differs
from .reading import Measured, NotMeasured
from .rules import RULES, VERDICTS, Rule


def measure(claim: Claim, results: Mapping[str, dict | None]) -> tuple[Measured | None, str]:
    """``(Measured, "")`` or ``(None, why not)``."""
    missing = [n for n in claim.needs if not results.get(n)]
    if missing:
        return None, "no " + ", ".join(f"{n}.json" for n in missing)
    try:
        return claim.extract(results), ""
    except NotMeasured as e:
        return None, str(e)


def evaluate(ours: Mapping[str, dict | None], saved_paper: Mapping[str, dict | None],
             claims: tuple[Claim, ...] = CLAIMS) -> list[dict]:
    """One row per claim: the paper's value, ours from ``ours`` (this build's results, e.g.
    profile ci) and from ``saved_paper`` (the saved full-scale runs), and the verdict.

    The verdict comes from the saved full-scale run where it measures the claim, otherwise
    from this build's results (``basis`` says which)."""
    rows = []
    fitted = {f: (select_fit(ours, f), select_fit(saved_paper, f)) for f in SCORE_FITS}
    for c in claims:
        rule = RULES[c.rule]
        m_ours, why_ours = measure(c, fitted["paper"][0])
        m_paper, why_paper = measure(c, fitted["paper"][1])
        v_ours = rule.verdict(m_ours.value if m_ours else None, c.paper_value)
        v_paper = rule.verdict(m_paper.value if m_paper else None, c.paper_value)
        if m_paper is not None:
            verdict, basis, note = v_paper, "paper profile", m_paper.note
        elif m_ours is not None:
            verdict, basis, note = v_ours, "this build", m_ours.note
        else:
            verdict, basis, note = NOT_MEASURED, "", why_ours
        rows.append({
            "key": c.key, "where": c.where, "claim": c.statement, "paper": c.paper, "rule": c.rule,
            "chapter": c.chapter,
            "ours": m_ours.shown if m_ours else None, "ours_value": m_ours.value if m_ours else None,
            "ours_verdict": v_ours, "ours_missing": why_ours,
            "paper_profile": m_paper.shown if m_paper else None,
            "paper_profile_value": m_paper.value if m_paper else None,
            "paper_profile_verdict": v_paper, "paper_profile_missing": why_paper,
            "verdict": verdict, "basis": basis, "note": note,
            **_default_columns(c, rule, fitted["default"], m_paper or m_ours, verdict, basis),
        })
    return rows


def _default_columns(c: Claim, rule: Rule, results: tuple, paper_fit: Measured | None, verdict: str,
                     paper_basis: str = "") -> dict:
    """The claim measured with the library's default fit, by the same rule and the same basis
    (the saved full-scale run where it measures the claim, else this build)."""
    ours, saved = results
    m_ours, why_ours = measure(c, ours)
    m_saved, _ = measure(c, saved)
    m, basis = (m_saved, "paper profile") if m_saved is not None else (m_ours, "this build") if m_ours else \
        (None, "")
    v = rule.verdict(m.value if m else None, c.paper_value)
    return {"default_ours": m_ours.shown if m_ours else None, "default_ours_value": m_ours.value if m_ours else None,
            "default_paper_profile": m_saved.shown if m_saved else None,
            "default_paper_profile_value": m_saved.value if m_saved else None,
            "default_shown": m.shown if m else None, "default_value": m.value if m else None,
            "default_verdict": v, "default_basis": basis, "default_note": m.note if m else why_ours,
            "differs_why": why_differs(paper_fit, m, (paper_basis, basis), (verdict, v)) if v != verdict else ""}


def counts(rows: list[dict], key: str = "verdict") -> dict[str, int]:
    """How many claims got each verdict (``key="default_verdict"``: with the default fit)."""
    return {v: sum(r[key] == v for r in rows) for v in VERDICTS}
