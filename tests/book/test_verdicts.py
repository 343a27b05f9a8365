"""After the book build (``pytest -m book``): no claim's verdict at profile ci contradicts its verdict on
the saved paper-profile run (issue 23, item 3).

A ci run has fewer networks, so its verdict may be *inconclusive* where the paper run's is decided; it
must never be *reproduced* where the paper run's is *not reproduced*, or the reverse. Both fits are
checked. This build's ci results (``_build/results/ci``) are read as the front page reads them, each
claim measured on the ci results alone and on the committed ``results/paper`` files alone.
"""
from __future__ import annotations

import pytest

from koopman_repro import scorecard as sc
from koopman_repro.report import paper_results
from koopman_repro.results import REPO_ROOT

pytestmark = pytest.mark.book

CI_DIR = REPO_ROOT / "_build" / "results" / "ci"
#: verdict pairs that contradict each other; inconclusive and not measured never do
CONTRADICTS = {(sc.REPRODUCED, sc.NOT_REPRODUCED), (sc.NOT_REPRODUCED, sc.REPRODUCED)}


def contradictions(ci_rows: list[dict], paper_rows: list[dict]) -> list[str]:
    """The claims (and fits) whose ci verdict contradicts the paper run's, with both values."""
    paper = {r["key"]: r for r in paper_rows}
    out = []
    for r in ci_rows:
        p = paper[r["key"]]
        for prefix, fit in (("", "paper's fit"), ("default_", "library default")):
            pair = (r[f"{prefix}verdict"], p[f"{prefix}verdict"])
            if pair in CONTRADICTS:
                value = r["ours"] if not prefix else r["default_ours"]
                saved = p["paper_profile"] if not prefix else p["default_paper_profile"]
                out.append(f"{r['key']} ({fit}): ci {pair[0]} ({value}), paper profile {pair[1]} ({saved})")
    return out


def test_the_check_finds_a_contradiction_and_only_a_contradiction():
    def row(key, verdict, default):
        return {"key": key, "verdict": verdict, "default_verdict": default, "ours": "x", "default_ours": "y",
                "paper_profile": "z", "default_paper_profile": "w"}
    ci = [row("a", sc.REPRODUCED, sc.INCONCLUSIVE), row("b", sc.INCONCLUSIVE, sc.NOT_REPRODUCED)]
    paper = [row("a", sc.NOT_REPRODUCED, sc.REPRODUCED), row("b", sc.REPRODUCED, sc.REPRODUCED)]
    assert contradictions(ci, paper) == ["a (paper's fit): ci reproduced (x), paper profile not reproduced (z)",
                                         "b (library default): ci not reproduced (y), paper profile reproduced (w)"]
    assert contradictions(ci, ci) == []


def test_no_ci_verdict_contradicts_the_paper_profile_verdict():
    ci = sc.load_results(CI_DIR, "ci") if CI_DIR.is_dir() else {}
    if not any(ci.values()):
        pytest.skip(f"no ci results in {CI_DIR} (a fresh clone before `koopman book --profile ci`)")
    saved = {n: paper_results(n) for n in sc.EXPERIMENT_NAMES}
    ci_rows = sc.evaluate(ci, {})
    paper_rows = sc.evaluate({}, saved)
    assert contradictions(ci_rows, paper_rows) == []
