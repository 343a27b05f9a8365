"""The scorecard's second reading: Koopman training against the optimizer against itself (the null
model, koopman_repro.scorecard.null_model), on synthetic results with planted differences."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from koopman_repro import scorecard as sc
from koopman_repro.check_values import check_table
from koopman_repro.scorecard import null_model as nm
from test_scorecard import mnist_results, perceptron_results, row_of

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
    # without a null model (older files): the claim says so, no value and no error
    plain = sc.claim_row("perceptron-s4", {"perceptron": perceptron_results()}, {})
    assert plain["null_model"] == sc.not_saved_text(nm.PERCEPTRON_NULL) and plain["null_readings"] == []


def test_the_answer_counts_the_claims_by_the_state_of_their_null_model():
    rows = sc.evaluate({"perceptron": perceptron_with_null({m: 1.0 for m in VARIANTS})}, {})
    text = sc.answer.noise_sentence(rows)
    deterministic = sum(c.null_model == sc.NULL_MODEL_DETERMINISTIC for c in sc.CLAIMS)
    wired = sum(c.null is not None for c in sc.CLAIMS)
    assert wired == 6            # the perceptron's ordering and every MNIST claim but its speedup
    assert text == (f"The optimizer against itself (its own noise): measured for 1 claim(s) (perceptron-s4), carried "
                    f"by the intervals for {deterministic} (deterministic training), {sc.NOT_SAVED} for {wired - 1}.")
    assert deterministic == 7      # DE success and T_eq/T per optimizer, and its range


# -- MNIST ---------------------------------------------------------------------------------------
HORIZONS = (1, 2, 5)
MNIST_FITS = ("paper", "default")


def mnist_with_null(loss_gain: dict[str, float], teq_gain: dict[str, float], n: int = 40, spread: float = 0.05,
                    fits=MNIST_FITS) -> dict:
    """Synthetic MNIST results with the optimizer against itself: per network and horizon, the branch's
    test loss and T_eq/T, spread over networks by far more than the planted gains; each fit's Koopman
    loss lower than the branch's by ``loss_gain[fit]`` and its T_eq/T higher by ``teq_gain[fit]``
    (plus a little noise per network)."""
    rng = np.random.default_rng(2)
    res = mnist_results(n=n)
    for m in res["members"]:
        null = {f"T{h}": {"null_loss": 0.2 + rng.normal(0, spread), "teq_over_t": 1.0 + rng.normal(0, 5 * spread),
                          "T_eq_epochs": float(h), "Q": h, "R": 0.0, "censored": False, "null_acc": 0.9}
                for h in HORIZONS}
        m["null"] = null
        m["fits"] = {f: {f"T{h}": {"koopman_loss": null[f"T{h}"]["null_loss"] - loss_gain[f] + rng.normal(0, 1e-3),
                                   "teq_over_t": null[f"T{h}"]["teq_over_t"] + teq_gain[f] + rng.normal(0, 1e-3),
                                   "T_eq_epochs": h * 0.97, "speedup_paper_style": 15.0, "speedup_fast_loop": 0.8}
                         for h in HORIZONS} for f in fits}
    res["table"].append({**res["table"][0], "fit": "default"})
    return res


@pytest.mark.parametrize("gain, want", [(0.01, sc.BETTER), (-0.01, sc.WORSE), (0.0, sc.INDISTINGUISHABLE)])
def test_mnist_readings_follow_the_planted_paired_difference_for_each_fit_and_measure(gain, want):
    """A gain of a fifth of the spread over networks is read per network; none is the noise itself."""
    res = mnist_with_null({"paper": gain, "default": -gain}, {"paper": 10 * gain, "default": -10 * gain})
    other = {sc.BETTER: sc.WORSE, sc.WORSE: sc.BETTER, sc.INDISTINGUISHABLE: sc.INDISTINGUISHABLE}[want]
    for fit, reading in (("paper", want), ("default", other)):
        loss, teq = sc.mnist_null({"mnist": res}, fit, 2)
        assert (loss.reading, teq.reading) == (reading, reading)
        assert loss.level == teq.level == "paired per network" and loss.interval.n == teq.interval.n == 40
        assert loss.measure == "test loss after T = 2 epochs (NLL per image)" and teq.measure == "T_eq/T at T = 2 epochs"


def test_mnist_readings_are_the_experiments_own_paired_medians():
    """The scorecard's paired median is the null_model table's Koopman-minus-branch median (mnist.null.null_row,
    the experiment's code) with the sign of an improvement: one pairing, two callers."""
    from koopman_repro.experiments.mnist.null import paper_null_rows
    res = mnist_with_null({"paper": 0.01, "default": 0.0}, {"paper": 0.1, "default": -0.1}, n=25)
    cfg = SimpleNamespace(fits=MNIST_FITS, horizons_epochs=HORIZONS)
    table = {r["T_epochs"]: r for r in paper_null_rows(cfg, res["members"])}
    for fit in MNIST_FITS:
        for h in HORIZONS:
            loss, teq = sc.mnist_null({"mnist": res}, fit, h)
            assert loss.interval.value == pytest.approx(-table[h]["koopman_minus_null_loss_median"][fit])
            assert teq.interval.value == pytest.approx(table[h]["koopman_minus_null_teq_over_t_median"][fit])


def test_every_mnist_claim_carries_the_null_reading_of_both_fits():
    res = mnist_with_null({"paper": 0.01, "default": -0.01}, {"paper": 0.1, "default": -0.1})
    rows = {r["key"]: r for r in sc.evaluate({"mnist": res}, {})}
    for key in ("mnist-success", "mnist-teq"):
        r = rows[key]
        assert r["null_model"].startswith(f"null model ({sc.MNIST_NULL}), Koopman training against {nm.NOISE}")
        assert [x["reading"] for x in r["null_readings"]] == [sc.BETTER, sc.BETTER]
        assert [x["reading"] for x in r["default_null_readings"]] == [sc.WORSE, sc.WORSE]
        assert "paper fit better than (+0.01" in r["null_model"] and "default fit worse than" in r["default_null_model"]
    # the range claim: T_eq/T at every horizon the run saved
    r = rows["range-mnist"]
    assert [x["measure"] for x in r["null_readings"]] == [f"T_eq/T at T = {h} epochs" for h in HORIZONS]
    assert {x["reading"] for x in r["null_readings"]} == {sc.BETTER}
    assert rows["mnist-speedup"]["null_model"] == "" and rows["mnist-speedup"]["null_readings"] == []


def test_an_mnist_run_without_the_null_model_says_not_in_this_saved_run():
    """Older files (no ``null`` per network, no ``null_model`` table): every claim that reads the null
    model says so, with no value and no error; a fit the saved networks lack says so alone."""
    rows = {r["key"]: r for r in sc.evaluate({"mnist": mnist_results()}, {})}
    for key, what in (("mnist-success", sc.MNIST_NULL), ("mnist-teq", sc.MNIST_NULL), ("range-mnist", sc.MNIST_NULL),
                      ("replication-divergence", sc.MNIST_REPLICATION_NULL),
                      ("replication-divergence-layer", sc.MNIST_REPLICATION_NULL)):
        for prefix in ("", "default_"):
            assert rows[key][f"{prefix}null_model"] == sc.not_saved_text(what) and rows[key][f"{prefix}null_readings"] == []
    assert "Against the optimizer against itself (paired per network): not in this saved run." in \
        sc.answer.mnist_paragraph(rows)
    # the null model saved, the default fit not: its reading alone is not in this saved run
    paper_only = mnist_with_null({"paper": 0.01}, {"paper": 0.1}, fits=("paper",))
    row = sc.claim_row("mnist-teq", {"mnist": paper_only}, {})
    assert row["null_readings"] and row["default_null_model"] == sc.not_saved_text(sc.MNIST_NULL)
    # no mnist.json at all
    assert sc.claim_row("mnist-teq", {}, {})["null_model"] == sc.not_saved_text(sc.MNIST_NULL)


def test_the_answer_reads_the_mnist_null_readings():
    res = mnist_with_null({"paper": 0.01, "default": 0.0}, {"paper": -0.1, "default": 0.0})
    rows = sc.evaluate({"mnist": res}, {})
    k = {r["key"]: r for r in rows}
    text = sc.answer.mnist_paragraph(k)
    loss, teq = k["mnist-teq"]["null_readings"]
    assert (f"Against the optimizer against itself (paired per network): the paper's fit: test loss better "
            f"({loss['value']:+.2g}), T_eq/T worse ({teq['value']:+.2g}); the library default: test loss "
            "indistinguishable (") in text
    # other readings, another answer: nothing is typed in
    k["mnist-teq"]["null_readings"] = [{**loss, "reading": sc.WORSE}]
    assert "the paper's fit: test loss worse (" in sc.answer.mnist_paragraph(k)
    assert len(sc.answer_markdown(rows, None).split()) <= 240


def with_replication_null(gain: float, n: int = 30, spread: float = 0.3) -> dict:
    """Synthetic MNIST results with the replication's networks against themselves at T = 2 epochs: the
    ``null_model`` row of the experiment's own code (mnist.null.null_row) and the replication's Koopman
    curves (``ablation_curves``), node-wise lower than the branch by ``gain`` per network, layer-wise
    higher by ``gain``."""
    from koopman_repro.experiments.mnist.null import null_row
    rng = np.random.default_rng(3)
    S, steps = 10, list(range(0, 21, 5))
    null = 0.3 + rng.normal(0, spread, n)
    curves = {name: {"steps": steps, "koopman_loss": [[float(v)] * len(steps) for v in
                                                      null + sign * gain + rng.normal(0, 1e-3, n)]}
              for name, sign in (("replication settings, all inits", -1), ("replication settings, layer-wise", 1))}
    ko_at_T = {name: [c[steps.index(2 * S)] for c in curve["koopman_loss"]] for name, curve in curves.items()}
    row = null_row(nm.REPLICATION_SETTING, 2, list(range(n)),
                   [{"null_loss": float(v), "teq_over_t": 1.0, "T_eq_epochs": 2.0, "censored": False} for v in null],
                   [0.3] * n, [0.2] * n, ko_at_T, {})
    return {**mnist_results(), "null_model": [row], "ablation_curves": curves, "steps_per_epoch": S}, row


@pytest.mark.parametrize("gain, node, layer", [(0.05, sc.BETTER, sc.WORSE), (0.0, sc.INDISTINGUISHABLE,
                                                                              sc.INDISTINGUISHABLE)])
def test_the_replications_divergence_is_read_against_its_own_networks_branches(gain, node, layer):
    res, table = with_replication_null(gain)
    rows = {r["key"]: r for r in sc.evaluate({"mnist": res}, {})}
    for key, want, curve in (("replication-divergence", node, "replication settings, all inits"),
                             ("replication-divergence-layer", layer, "replication settings, layer-wise")):
        (r,) = rows[key]["null_readings"]
        assert r["reading"] == want and r["n"] == 30 and r["level"] == "paired per network"
        assert r["value"] == pytest.approx(-table["koopman_minus_null_loss_median"][curve])
        assert rows[key]["null_model"].startswith(f"null model ({sc.MNIST_REPLICATION_NULL})")
    # the default column reads the replication's default-fit curve, which this run lacks
    assert rows["replication-divergence"]["default_null_model"] == sc.not_saved_text(sc.MNIST_REPLICATION_NULL)
