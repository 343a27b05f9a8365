"""One verdict per claim across the book (issue 23, item 4): every chapter that states a verdict on one
of the front page's claims states the front page's, computed by the same rule from the same run, on the
committed full-scale results (results/paper). A chapter's own readings are named "chapter reading"."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from koopman_repro import scorecard as sc
from koopman_repro.chapters import cost, de_solver, divergence, mnist
from koopman_repro.experiments import config_of
from koopman_repro.report import paper_results

SAVED = {n: paper_results(n) for n in sc.EXPERIMENT_NAMES}
pytestmark = pytest.mark.skipif(not all(SAVED.values()), reason="results/paper lacks a results file")
CHAPTERS = Path(de_solver.__file__).parent

#: the DE chapter's Table 1 quantities -> the claim's suffix
DE_QUANTITY = {"success": "success", "T_eq/T": "teq", "speedup (paper-style timing)": "speedup"}


def front(key: str) -> dict:
    return sc.claim_row(key, {}, SAVED)


def test_de_chapter_table1_states_the_front_pages_verdicts():
    R = SAVED["de-solver"]
    d, _, _ = de_solver.main_of(R)
    checked = 0
    for line in de_solver.table1(R, [o.lower() for o in sc.DE_TABLE1], ["paper", "default"]):
        if line["training"] != d or line["quantity"] not in DE_QUANTITY:
            continue
        row = front(f"de-{line['optimizer'].lower()}-{DE_QUANTITY[line['quantity']]}")
        assert line[f"verdict: {de_solver.FIT_LABEL['paper']}"] == row["verdict"], line
        assert line[f"verdict: {de_solver.FIT_LABEL['default']}"] == row["default_verdict"], line
        checked += 1
    assert checked == 9


def test_de_chapter_range_sentence_is_the_front_pages():
    R = SAVED["de-solver"]
    C = de_solver.Chapter(R, R, config_of("de-solver", R), "paper")
    row = front("range-de")
    assert f"**{row['verdict']}** with the paper's fit" in de_solver.range_verdict_text(C)
    assert f"**{row['default_verdict']}** with the library default" in de_solver.range_verdict_text(C)


def test_mnist_chapter_summary_states_the_front_pages_verdicts():
    R = SAVED["mnist"]
    for line, key in zip(mnist.summary_rows(R, R), ("mnist-success", "mnist-teq", "mnist-speedup")):
        row = front(key)
        assert line["verdict, paper's fit"].split(" (")[0] == row["verdict"]
        assert line["verdict, library default"].split(" (")[0] == row["default_verdict"]


def test_divergence_chapter_states_the_front_pages_verdicts():
    R = SAVED["mnist"]
    lines = divergence.claim_rows(R, R)
    for i, key in ((1, "replication-divergence"), (2, "replication-divergence-layer")):
        assert lines[i]["verdict"].split(" (")[0].split(";")[0] == front(key)["verdict"]
    others = [line["verdict"] for i, line in enumerate(lines) if i not in (1, 2)]
    assert all(v.startswith("chapter reading") or v == sc.NOT_MEASURED for v in others)


def test_cost_chapter_states_the_front_pages_speed_verdicts():
    got = cost.front_page_speed({}, SAVED)
    assert got["mnist"] == f"front page: {front('mnist-speedup')['verdict']}"
    for opt in ("Adam", "Adagrad", "Adadelta"):
        assert f"{opt} {front(f'de-{opt.lower()}-speedup')['verdict']}" in got["de"]


def _verdict_calls(path: Path) -> list[str]:
    """Calls of ``<something>.verdict(`` on a scorecard rule that do not take an interval built from
    the scorecard (the only allowed one: the DE chapter's ``judged``)."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name != "judged":
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "verdict" \
                        and "RULES" in ast.unparse(call.func.value):
                    out.append(f"{path.name}:{call.lineno} {ast.unparse(call)}")
    return out


def test_no_chapter_judges_a_front_page_claim_by_a_rule_of_its_own():
    """A chapter applies the scorecard's RULES only through the scorecard (claim_row) or, for the DE
    chapter's other readings, over the scorecard's intervals (de_solver.judged)."""
    found = [c for p in sorted(CHAPTERS.glob("*.py")) for c in _verdict_calls(p)]
    assert found == [], found
