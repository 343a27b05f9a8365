"""The scorecard's second reading: Koopman training against the optimizer against itself (the null
model, koopman_repro.scorecard.null_model), on synthetic results with planted differences."""
from __future__ import annotations

import math

import numpy as np
import pytest

from koopman_repro import scorecard as sc
from koopman_repro.check_values import check_table
from koopman_repro.scorecard import null_model as nm
from test_scorecard import perceptron_results, row_of

VARIANTS = tuple(nm.PERCEPTRON_VARIANTS)


@pytest.mark.parametrize("low, high, want", [
    (0.1, 0.5, sc.BETTER), (1e-12, 1.0, sc.BETTER), (0.0, 1.0, sc.INDISTINGUISHABLE),   # zero inside: not better
    (-1.0, 0.0, sc.INDISTINGUISHABLE), (-1.0, -1e-12, sc.WORSE), (None, None, sc.INDISTINGUISHABLE)])
def test_the_reading_is_decided_by_where_zero_lies_in_the_interval(low, high, want):
    assert sc.null_word(low, high) == want


def test_a_paired_improvement_recovers_a_planted_shift_that_the_spread_over_networks_hides():
    """Networks differ by far more than Koopman's gain: paired per network the gain is clear; the two
    sides' own intervals (what an unpaired comparison would read) overlap."""
    rng = np.random.default_rng(0)
    null = rng.normal(10.0, 5.0, 200)
    koopman = null - 0.5 + rng.normal(0.0, 0.05, 200)        # 0.5 lower error on every network
    iv = sc.paired_improvement(null, koopman)
    assert iv.n == 200 and abs(iv.value - 0.5) < 0.02 and 0 < iv.ci_low < 0.5 < iv.ci_high
    assert nm.paired_reading("K", "error", null, koopman).reading == sc.BETTER
    assert nm.paired_reading("K", "error", koopman, null).reading == sc.WORSE   # the sides swapped
    higher_is_better = nm.paired_reading("K", "accuracy", null, koopman, lower_is_better=False)
    assert higher_is_better.reading == sc.WORSE
    side = [sc.intervals.median(x) for x in (null, koopman)]
    assert side[1].ci_high > side[0].ci_low           # unpaired: the intervals overlap
    noise = nm.paired_reading("K", "error", null, null + rng.normal(0.0, 0.05, 200))
    assert noise.reading == sc.INDISTINGUISHABLE
    with_missing = sc.paired_improvement(np.r_[null, np.nan], np.r_[koopman, 1.0])
    assert with_missing.n == 200                      # a network without both values is left out


@pytest.mark.parametrize("koopman, null, want", [
    ((800, 850), (851, 900), sc.BETTER), ((800, 851), (851, 900), sc.INDISTINGUISHABLE),
    ((901, 950), (851, 900), sc.WORSE), ((900, 950), (851, 900), sc.INDISTINGUISHABLE),
    ((math.inf, math.inf), (851, 900), sc.WORSE)])
def test_without_pairs_only_intervals_that_do_not_overlap_decide(koopman, null, want):
    r = nm.interval_reading("K", "steps", "level of the mean curve", koopman, null)
    assert r.reading == want and r.interval is None
    assert ("never against" in r.shown) == math.isinf(koopman[0])


def perceptron_with_null(shift: dict[str, float], n: int = 60, spread: float = 5.0, fits=("paper",)) -> dict:
    """Synthetic perceptron results with a null model: per simulation, the null branch's mean error
    after the start and each variant's, lower than the null's by ``shift[variant]`` points."""
    rng = np.random.default_rng(1)
    null = 12.0 + rng.normal(0.0, spread, n)
    values = {i: {f"null:{nm.MEAN_ERROR}": null[i], f"rule:{nm.MEAN_ERROR}": null[i] + rng.normal(0, 0.1)}
              for i in range(n)}
    for f in fits:
        for m in VARIANTS:
            for i in range(n):
                values[i][f"{m}/{f}:{nm.MEAN_ERROR}"] = null[i] - shift[m] + rng.normal(0.0, 0.1)
    res = perceptron_results()
    res["null_model"] = [row_of("perceptron", "null_model", method="rule, other inputs", steps_to_rule_final=920,
                                steps_to_rule_final_ci95=[911, 939])]
    res["check_values"] = check_table(values)
    res["methods_by_fit"] = {f: {"single_weight": {"steps_to_rule_final_ci95": [876, 952]},
                                 "node": {"steps_to_rule_final_ci95": [1001, 1001]},
                                 "network": {"steps_to_rule_final_ci95": [700, 800]}} for f in fits}
    res["provenance"]["config"] = {"steps": 1000, "n_sims": n}
    return res


def test_each_variant_gets_the_reading_its_planted_difference_gives():
    res = perceptron_with_null({"single_weight": 1.0, "node": -3.0, "network": 0.0})
    got = {(r.subject, r.level): r.reading for r in sc.perceptron_null({"perceptron": res}, "paper")}
    assert got == {("Single Weight", "paired per network"): sc.BETTER, ("Node", "paired per network"): sc.WORSE,
                   ("Network", "paired per network"): sc.INDISTINGUISHABLE,
                   ("Single Weight", "level of the mean curve (no pairs)"): sc.INDISTINGUISHABLE,
                   ("Node", "level of the mean curve (no pairs)"): sc.WORSE,
                   ("Network", "level of the mean curve (no pairs)"): sc.BETTER}


def test_the_scorecard_row_carries_the_null_reading_of_the_run_that_decides():
    res = perceptron_with_null({"single_weight": 1.0, "node": -3.0, "network": -3.0}, fits=("paper", "default"))
    for row in list(res["table"]):
        res["table"].append({**row, "fit": "default"})
    row = sc.claim_row("perceptron-s4", {"perceptron": res}, {})
    assert row["basis"] == "this build"
    assert row["null_model"].startswith(f"null model ({nm.PERCEPTRON_NULL}), Koopman training against {nm.NOISE}")
    assert "Single Weight better than (+1.01 [" in row["null_model"] and "Node worse than (-2.97 [" in row["null_model"]
    assert [r["reading"] for r in row["null_readings"][:3]] == [sc.BETTER, sc.WORSE, sc.WORSE]
    assert row["default_null_readings"] and row["default_null_model"].startswith("null model (")
    # a saved full-scale run decides: its null model is the one read, the build's is not
    saved = perceptron_with_null({"single_weight": -2.0, "node": -3.0, "network": -3.0})
    row = sc.claim_row("perceptron-s4", {"perceptron": res}, {"perceptron": saved})
    assert row["basis"] == "paper profile" and row["null_readings"][0]["reading"] == sc.WORSE
    # without a null model (older files): the claim keeps "not measured yet"
    plain = sc.claim_row("perceptron-s4", {"perceptron": perceptron_results()}, {})
    assert plain["null_model"] == sc.NULL_MODEL_PENDING and plain["null_readings"] == []


def test_the_answer_counts_the_claims_by_the_state_of_their_null_model():
    rows = sc.evaluate({"perceptron": perceptron_with_null({m: 1.0 for m in VARIANTS})}, {})
    text = sc.answer.noise_sentence(rows)
    deterministic = sum(c.null_model == sc.NULL_MODEL_DETERMINISTIC for c in sc.CLAIMS)
    pending = sum(c.null_model == sc.NULL_MODEL_PENDING for c in sc.CLAIMS) - 1      # the perceptron's is measured
    assert text == (f"The optimizer against itself (its own noise): measured for 1 claim(s) (perceptron-s4), carried "
                    f"by the intervals for {deterministic} (deterministic training), not measured yet for {pending}.")
    assert deterministic == 7      # DE success and T_eq/T per optimizer, and its range
