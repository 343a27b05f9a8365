"""Evaluating the claims: each measured with both fits on this build's results and the saved
full-scale runs, and given its verdicts (:func:`evaluate`, one row per claim)."""
from __future__ import annotations

from typing import Mapping

from ..report import NOT_MEASURED
from .claims import CLAIMS, Claim
from .fits import SCORE_FITS, differs_reason, select_fit, why_differs
from .null_model import not_saved_text, null_text
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


def reading(c: Claim, rule: Rule, results: Mapping[str, dict | None]) -> dict:
    """Claim ``c`` measured on ``results`` (one fit's view): ``shown``, ``value``, its interval
    (``n``, ``ci_low``, ``ci_high``, or ``no_interval`` saying why there is none), the rule's
    ``verdict``, ``note`` and ``missing`` (why it is not measured)."""
    m, why = measure(c, results)
    iv = m.judged() if m else None
    return {"shown": m.shown if m else None, "value": m.value if m else None,
            "n": iv.n if iv else None, "ci_low": iv.ci_low if iv else None, "ci_high": iv.ci_high if iv else None,
            "no_interval": m.no_interval if m else "", "verdict": rule.verdict(iv, c.paper_value),
            "note": m.note if m else why, "missing": why, "measured": m}


#: the fields of a :func:`reading` a row keeps for each run, with the run's prefix
RUN_FIELDS = ("value", "verdict", "missing", "n", "ci_low", "ci_high", "no_interval")
#: the fields of the deciding reading a row keeps (without prefix for the paper's fit)
DECIDING = ("n", "ci_low", "ci_high", "no_interval", "note")


def null_reading(c: Claim, results: Mapping[str, dict | None], fit: str) -> tuple[str, list[dict]]:
    """The claim's null-model field and readings (:mod:`.null_model`) on ``results`` (the run its
    verdict comes from) with the named ``fit``: the claim's static text (``c.null_model``) where it
    has no null-model function; :func:`~.null_model.not_saved_text` where the results hold no null
    model for it (an older saved run, or no run decides)."""
    if c.null is None:
        return c.null_model, []
    try:
        readings = c.null(results, fit) if results else []
    except NotMeasured:
        readings = []
    if not readings:
        return not_saved_text(c.null_what), []
    return null_text(readings, c.null_what), [r.as_dict() for r in readings]


def decide(build: dict, saved: dict) -> tuple[dict, str]:
    """The reading a verdict comes from: the saved full-scale run where it measures the claim, else
    this build; and that basis (``""`` when neither measures it)."""
    if saved["value"] is not None:
        return saved, "paper profile"
    return build, "this build" if build["value"] is not None else ""


def evaluate(ours: Mapping[str, dict | None], saved_paper: Mapping[str, dict | None],
             claims: tuple[Claim, ...] = CLAIMS) -> list[dict]:
    """One row per claim: the paper's value, ours from ``ours`` (this build's results, e.g.
    profile ci) and from ``saved_paper`` (the saved full-scale runs), each with its interval over
    networks and its verdict, with the paper's fit and with the library's default.

    The verdict comes from the saved full-scale run where it measures the claim, otherwise
    from this build's results (``basis`` says which)."""
    rows = []
    fitted = {f: (select_fit(ours, f), select_fit(saved_paper, f)) for f in SCORE_FITS}
    for c in claims:
        rule = RULES[c.rule]
        (b, s), (db, ds) = ([reading(c, rule, r) for r in fitted[f]] for f in SCORE_FITS)
        best, basis = decide(b, s)
        d_best, d_basis = decide(db, ds)
        row = {"key": c.key, "where": c.where, "claim": c.statement, "paper": c.paper, "rule": c.rule,
               "chapter": c.chapter, "source": c.source,
               "ours": b["shown"], "paper_profile": s["shown"], "verdict": best["verdict"] if basis else NOT_MEASURED,
               "basis": basis, **{k: best[k] for k in DECIDING},
               "default_ours": db["shown"], "default_paper_profile": ds["shown"], "default_shown": d_best["shown"],
               "default_value": d_best["value"], "default_verdict": d_best["verdict"] if d_basis else NOT_MEASURED,
               "default_basis": d_basis, **{f"default_{k}": d_best[k] for k in DECIDING}}
        for prefix, r in (("ours", b), ("paper_profile", s), ("default_ours", db), ("default_paper_profile", ds)):
            row.update({f"{prefix}_{k}": r[k] for k in RUN_FIELDS})
        for prefix, f, b_ in (("", "paper", basis), ("default_", "default", d_basis)):
            on = fitted[f][1] if b_ == "paper profile" else fitted[f][0] if b_ else {}
            row[f"{prefix}null_model"], row[f"{prefix}null_readings"] = null_reading(c, on, f)
        row["differs_why"] = _differs((best, basis), (d_best, d_basis))
        row["differs_reason"] = differs_reason((basis, d_basis), (row["verdict"], row["default_verdict"])) \
            if row["differs_why"] and best["measured"] and d_best["measured"] else ""
        rows.append(row)
    return rows


def _differs(paper_fit: tuple[dict, str], default_fit: tuple[dict, str]) -> str:
    """Why the claim's two verdicts differ (``""`` when they agree)."""
    (p, p_basis), (d, d_basis) = paper_fit, default_fit
    if p["verdict"] == d["verdict"]:
        return ""
    return why_differs(p["measured"], d["measured"], (p_basis, d_basis), (p["verdict"], d["verdict"]))


def counts(rows: list[dict], key: str = "verdict", source: str | None = None) -> dict[str, int]:
    """How many claims got each verdict (``key="default_verdict"``: with the default fit);
    ``source``: only the paper's claims (``"paper"``) or the replication's findings
    (``"replication"``), which are counted apart (their "reproduced" means Koopman training fails)."""
    rows = [r for r in rows if source is None or r["source"] == source]
    return {v: sum(r[key] == v for r in rows) for v in VERDICTS}


def claim_row(key: str, ours: Mapping[str, dict | None], saved_paper: Mapping[str, dict | None]) -> dict:
    """The scorecard's row of the claim named ``key`` (:func:`evaluate` on that claim alone): the
    verdict a chapter that discusses the claim shows (``row["verdict"]`` with the paper's fit,
    ``row["default_verdict"]`` with the library's default)."""
    claim = next((c for c in CLAIMS if c.key == key), None)
    if claim is None:
        raise KeyError(f"no scorecard claim {key!r}")
    return evaluate(ours, saved_paper, (claim,))[0]
