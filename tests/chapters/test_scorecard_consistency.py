"""One verdict per claim across the book (issue 23, item 5): every chapter that states a verdict on one
of the front page's claims states the front page's, computed by the same rule from the same run, on the
committed full-scale results (results/paper) and on small synthetic results. A chapter's own readings
are named "chapter reading" and never use a verdict's words.

The check reads what the chapters *return* (cells and sentences), not how they compute it: every
statement a chapter makes about a row is paired with the front page's claims that row is about (none
for a row of no claim, or of another run than the one the front page judges), and the verdict words in
it (:data:`WORDS`) must be exactly the front page's verdicts on those claims, in order."""
from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest

from koopman_repro import scorecard as sc
from koopman_repro.chapters import beyond, cost, de_solver, divergence, mnist, perceptron
from koopman_repro.experiments import config_of
from koopman_repro.report import largest_saved_run, paper_results

SAVED = {n: paper_results(n) for n in sc.EXPERIMENT_NAMES}
pytestmark = pytest.mark.skipif(not all(SAVED.values()), reason="results/paper lacks a results file")
CHAPTERS = Path(de_solver.__file__).parent

#: the DE chapter's Table 1 quantities -> the claim's suffix
DE_QUANTITY = {"success": "success", "T_eq/T": "teq", "speedup (paper-style timing)": "speedup"}

#: the scorecard's verdict words (and the retired "partly"), the longest first
WORDS = re.compile(r"not reproduced|reproduced|inconclusive|partly")


def misstated(statements: list[tuple[list[tuple[str, str]], str]], ours: dict, saved: dict) -> list[str]:
    """The statements whose verdict words are not the front page's: each is ``(claims, text)``, with
    ``claims`` the ``(claim key, fit prefix)`` pairs the text speaks about (``[]``: a chapter reading,
    which may use no verdict word)."""
    rows = {}
    bad = []
    for claims, text in statements:
        want = []
        for key, prefix in claims:
            rows.setdefault(key, sc.claim_row(key, ours, saved))
            want.append(rows[key][prefix + "verdict"])
        said = WORDS.findall(text)
        if said != [w for w in want if w != sc.NOT_MEASURED]:
            bad.append(f"{claims}: says {said}, the front page {want}: {text!r}")
    return bad


# -- what each chapter states, paired with the claims it speaks about -------------------------------
def de_statements(R: dict) -> list:
    d = de_solver.main_of(R)[0]
    out = []
    for line in de_solver.table1(R, [o.lower() for o in sc.DE_TABLE1], ["paper", "default"]):
        error_ratio = line["quantity"].startswith("error ratio")
        key = "de-error-ratio" if error_ratio else f"de-{line['optimizer'].lower()}-{DE_QUANTITY.get(line['quantity'])}"
        on_front = line["training"] == d and (error_ratio or line["quantity"] in DE_QUANTITY)
        for fit, prefix in (("paper", ""), ("default", "default_")):
            out.append(([(key, prefix)] if on_front else [], line[f"verdict: {de_solver.FIT_LABEL[fit]}"]))
    C = de_solver.Chapter(R, R, config_of("de-solver", R), "paper")
    out.append(([("range-de", ""), ("range-de", "default_")], de_solver.range_verdict_text(C)))
    return out


def mnist_statements(R: dict) -> list:
    claims = [mnist.SUMMARY_CLAIMS.get(k) for k in mnist.SUMMARY_LABELS]
    return [([(key, prefix)] if key else [], line[f"verdict, {label}"])
            for line, key in zip(mnist.summary_rows(R, R), claims)
            for label, prefix in (("paper's fit", ""), ("library default", "default_"))]


def divergence_statements(R: dict) -> list:
    claims = {1: "replication-divergence", 2: "replication-divergence-layer"}
    return [([(claims[i], "")] if i in claims else [], line["verdict"])
            for i, line in enumerate(divergence.claim_rows(R, R))]


def cost_statements(ours: dict, saved: dict) -> list:
    got = cost.front_page_speed(ours, saved)
    return [([("mnist-speedup", "")], got["mnist"]),
            ([(f"de-{o.lower()}-speedup", "") for o in sc.DE_TABLE1], got["de"])]


#: the Beyond summary's rows that measure a front-page claim (this test's own list, not the chapter's)
BEYOND_CLAIMS = {"MNIST T_eq/T, paper's fit (pinv default cutoff)": ("mnist-teq", ""),
                 "MNIST T_eq/T, float32-resolution cutoff": ("mnist-teq", "default_"),
                 "DE solver T_eq/T, Koopman (pinv)": ("de-adadelta-teq", ""),
                 "replication setting: Koopman test loss after 1 / 2 epochs": ("replication-divergence", "")}


def beyond_statements(ours: dict, saved: dict, res: dict) -> list:
    runs = beyond.Runs(res, res, "paper", "paper")
    table = beyond.summary_table(runs, saved.get("de-solver"), beyond.front_page_rows(ours, saved))
    return [([BEYOND_CLAIMS[r["quantity"]]] if r["quantity"] in BEYOND_CLAIMS else [], r["verdict (paper profile)"])
            for r in table]


def perceptron_statements(ours: dict, saved: dict) -> list:
    res = saved["perceptron"]
    rows = perceptron.claims_rows(res, res, "paper")
    out, claim = [], -1
    for r in rows:
        claim += bool(r["paper claim"])
        prefix = {"paper fit": "", "default fit": "default_"}.get(r["fit"])
        on_front = claim < 2 and prefix is not None          # Fig. S4d: the front page's perceptron-s4
        out.append(([("perceptron-s4", prefix)] if on_front else [], r["verdict"]))
    return out


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


# -- every statement of every chapter, on the committed results and on synthetic ones ----------------
def test_no_chapter_states_a_verdict_word_the_front_page_does_not_give():
    _, beyond_saved = largest_saved_run("beyond")
    statements = (de_statements(SAVED["de-solver"]) + mnist_statements(SAVED["mnist"])
                  + divergence_statements(SAVED["mnist"]) + cost_statements({}, SAVED)
                  + beyond_statements({}, SAVED, beyond_saved) + perceptron_statements({}, SAVED))
    assert len(statements) > 40 and sum(bool(c) for c, _ in statements) > 25
    assert misstated(statements, {}, SAVED) == []


def test_the_check_catches_a_chapter_that_states_its_own_verdict():
    """A chapter reading that used a verdict word, or a verdict other than the front page's, is caught."""
    key = ("mnist-teq", "")
    front = sc.claim_row("mnist-teq", {}, SAVED)["verdict"]
    other = next(v for v in (sc.REPRODUCED, sc.NOT_REPRODUCED) if v != front)
    assert misstated([([key], f"front page: {front}; chapter reading: keeps up")], {}, SAVED) == []
    assert misstated([([key], f"front page: {front}; chapter reading: {other}")], {}, SAVED)
    assert misstated([([key], f"{other}")], {}, SAVED)
    assert misstated([([], "chapter reading: partly")], {}, SAVED)
    assert misstated([([], "chapter reading: holds in part")], {}, SAVED) == []


def sure_perceptron(res: dict) -> dict:
    """``res`` with every Koopman variant reaching the rule's final error early and surely, Single
    Weight first (every resample): the front page's ordering verdict becomes reproduced."""
    res = copy.deepcopy(res)
    steps = {"rule": 900, "single_weight": 100, "node": 200, "network": 300}
    for row in res["table"]:
        row.update(steps_to_rule_final=steps[row["method"]], p_sooner_than_rule=0.0 if row["method"] == "rule" else 1.0,
                   p_soonest=1.0 if row["method"] == "single_weight" else 0.0)
    for by_method in res["methods_by_fit"].values():
        for m, summary in by_method.items():
            summary.update(steps_to_rule_final=steps[m], p_sooner_than_rule=0.0 if m == "rule" else 1.0,
                           p_soonest=1.0 if m == "single_weight" else 0.0)
    return res


def test_chapters_follow_the_front_page_when_synthetic_results_change_its_verdicts():
    """Synthetic results that move the front page's verdicts (MNIST T_eq/T, Table 1's Adadelta, the
    perceptron's ordering): the Beyond and perceptron chapters' statements move with them."""
    import test_scorecard as synth
    _, beyond_saved = largest_saved_run("beyond")
    seen = set()
    for teq in (0.97, 0.3):
        mn = synth.mnist_results()
        mn["members"] = [synth.member(i, paper=(teq, 15.0)) for i in range(25)]
        saved = {"de-solver": synth.de_results(teq=teq), "mnist": mn, "perceptron": None}
        seen.add(sc.claim_row("mnist-teq", {}, saved)["verdict"])
        assert misstated(beyond_statements({}, saved, beyond_saved), {}, saved) == []
    assert seen == {sc.REPRODUCED, sc.NOT_REPRODUCED}     # the synthetic cases do move the verdict
    sure = {**SAVED, "perceptron": sure_perceptron(SAVED["perceptron"])}
    assert sc.claim_row("perceptron-s4", {}, sure)["verdict"] != sc.claim_row("perceptron-s4", {}, SAVED)["verdict"]
    for saved in (SAVED, sure):
        assert misstated(perceptron_statements({}, saved), {}, saved) == []
