"""The scorecard's rules and extraction, on synthetic results files whose tables follow the
declared row types (koopman_repro.rows; no experiment is run)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from koopman_lib.metrics import Interval
from koopman_repro import rows as declared
from koopman_repro import scorecard as sc
from koopman_repro.scorecard import measure_de_solver as mde
from koopman_repro.results import write_json

#: a placeholder for each declared type of a required field the test does not care about
PLACEHOLDER = {"str": "n/a", "int": 0, "float": 0.0, "float | None": 0.0, "bool": False, "list": [], "dict": {}}


def row_of(experiment, table, **given):
    """A row of ``experiment``'s ``table`` with every declared required field: ``given`` ones as
    given, the others a placeholder of their type."""
    cls = declared.row_type(experiment, table)
    required = {f.name: PLACEHOLDER[f.type] for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    return {**required, **given}


def networks_of(row, n=25, teq=None, success=None, speed=None):
    """``n`` per-network rows of table row ``row``, all with the row's values (``teq``, ``success``,
    ``speed``: per-network lists instead)."""
    keys = ("train_dtype", "fit", "fit_method", "optimizer", "T")
    teq = teq or [row["teq_over_t_median"]] * n
    success = success or [i < round(row["success_rate"] * n) for i in range(n)]
    speed = speed or [row["speedup_paper_style_median"]] * n
    return [row_of("de-solver", "networks", **{k: row[k] for k in keys}, init=i, teq_over_t=teq[i],
                   success=bool(success[i]), speedup_paper_style=speed[i], speedup_fast_loop=2.0) for i in range(n)]


def de_results(scale_speed=1.0, success=None, teq=None, extra_T=True, n=25):
    rows = []
    for opt, (s, t, v) in sc.DE_TABLE1.items():
        rows.append(row_of("de-solver", "table", optimizer=opt.lower(), n_inits=n, T=2500, fit="paper",
                           train_dtype="float64", fit_method="lstsq",
                           success_rate=(success if success is not None else s / 100),
                           teq_over_t_median=teq if teq is not None else t,
                           speedup_paper_style_median=v * scale_speed, speedup_fast_loop_median=2.0))
        if extra_T:
            rows.append({**rows[-1], "T": 10000, "teq_over_t_median": 0.5})
    return {"table": rows, "networks": [x for r in rows for x in networks_of(r, n)], "error_ratio_median": 0.004,
            "ode_max_abs_error": 1e-3, "provenance": {"profile": "ci"}}


def replication(**given):
    return row_of("mnist", "replication", fit="replication", n_members=5, **given)


def member(i, **fits):
    """One network of the MNIST run: per fit (``paper=(teq, speed)``) its entry at T = 2 epochs."""
    fits = fits or {"paper": (0.97, 15.0)}
    return row_of("mnist", "members", init=i, fits={f: {"T2": {
        "T_eq_epochs": 2 * teq, "teq_over_t": teq, "speedup_paper_style": speed, "speedup_fast_loop": 0.8}}
        for f, (teq, speed) in fits.items()})


def mnist_results(loss_ko=1.0, loss_opt=0.2, loss_t2=0.18, n=25):
    return {"table": [row_of("mnist", "table", fit="paper", n_inits=n, success_rate=1.0, teq_over_t_median=0.97,
                             speedup_paper_style_median=15.0, speedup_fast_loop_median=0.8, T_epochs=2)],
            "members": [member(i) for i in range(n)],
            "replication": [
                replication(setting="ours", partition="quasi_node:157", dtype="float64", T_epochs=2,
                            final_test_loss_koopman=0.2, final_test_loss_optimizer=0.2, max_spectral_radius=1.0),
                replication(setting="ours", partition="node", dtype="float32", T_epochs=1,
                            final_test_loss_koopman=0.3, final_test_loss_optimizer=0.2, max_spectral_radius=1.001),
                replication(setting="replication", partition="node", dtype="float32", T_epochs=2,
                            test_loss_t2=loss_t2, final_test_loss_koopman=loss_ko, final_test_loss_optimizer=loss_opt,
                            max_spectral_radius=1.001),
                replication(setting="replication", partition="layer", dtype="float32", T_epochs=2,
                            test_loss_t2=0.18, final_test_loss_koopman=0.4, final_test_loss_optimizer=0.2,
                            max_spectral_radius=1.0),
                replication(setting="paper", partition="node", dtype="float64", T_epochs=2,
                            final_test_loss_koopman=9.0, final_test_loss_optimizer=0.2, max_spectral_radius=1.0)],
            "provenance": {"profile": "ci"}}


def perceptron_results(**steps):
    base = {"rule": 900, "single_weight": 300, "node": 500, "network": 600}
    base.update(steps)
    return {"table": [row_of("perceptron", "table", method=m, fit="paper", steps_to_asymptote=v,
                             steps_to_rule_final=v, final_percent_error=3.0) for m, v in base.items()],
            "provenance": {"profile": "ci"}}


def by_key(rows):
    return {r["key"]: r for r in rows}


def test_registry_is_consistent():
    keys = [c.key for c in sc.CLAIMS]
    assert len(keys) == len(set(keys))
    for c in sc.CLAIMS:
        assert c.rule in sc.RULES and set(c.needs) <= set(sc.EXPERIMENT_NAMES)
        assert c.source in ("paper", "replication")
        assert c.null_model in ("", sc.NULL_MODEL_PENDING, sc.NULL_MODEL_DETERMINISTIC)
        # the DE solver's training is deterministic: its Koopman claims say so instead of "not measured yet"
        assert (c.null_model == sc.NULL_MODEL_DETERMINISTIC) == (c.needs == ("de-solver",) and bool(c.null_model))
        # a claim that reads a null model names it in words, and has no static text instead
        assert bool(c.null) == bool(c.null_what) and not (c.null and c.null_model)
        if sc.RULES[c.rule].scale != "level":
            assert c.paper_value is not None, c.key
    assert {c.key for c in sc.CLAIMS if c.source == "replication"} == {"replication-divergence",
                                                                       "replication-divergence-layer"}
    assert all(r.why and r.text for r in sc.RULES.values())
    assert sc.VERDICTS == (sc.REPRODUCED, sc.INCONCLUSIVE, sc.NOT_REPRODUCED, sc.NOT_MEASURED)


def iv(low, high, value=None):
    return Interval((low + high) / 2 if value is None else value, 25, low, high)


# (side, scale, tolerance, paper, interval, verdict): every branch and both boundaries of each kind;
# the bound itself is within the tolerance (>= for at_least, <= for at_most)
BOUNDARY_CASES = [
    ("at_least", "points", 10, 84, iv(74.0, 90.0), sc.REPRODUCED),          # bound 74: low end on it
    ("at_least", "points", 10, 84, iv(73.999, 90.0), sc.INCONCLUSIVE),
    ("at_least", "points", 10, 84, iv(60.0, 74.0), sc.INCONCLUSIVE),        # high end on the bound: within
    ("at_least", "points", 10, 84, iv(60.0, 73.999), sc.NOT_REPRODUCED),
    ("at_least", "points", 10, 84, iv(95.0, 100.0), sc.REPRODUCED),         # better than the paper
    ("at_least", "factor", 2, 98, iv(49.0, 60.0), sc.REPRODUCED),           # bound 98 / 2
    ("at_least", "factor", 2, 98, iv(48.99, 60.0), sc.INCONCLUSIVE),
    ("at_least", "factor", 2, 98, iv(10.0, 48.99), sc.NOT_REPRODUCED),
    ("at_least", "level", 1.0, None, iv(1.0, 1.0), sc.REPRODUCED),
    ("at_least", "level", 1.0, None, iv(0.8, 1.0), sc.INCONCLUSIVE),
    ("at_least", "level", 1.0, None, iv(0.4, 0.6), sc.NOT_REPRODUCED),
    ("at_most", "level", 0.01, None, iv(0.001, 0.01), sc.REPRODUCED),       # high end on the bound
    ("at_most", "level", 0.01, None, iv(0.001, 0.0101), sc.INCONCLUSIVE),
    ("at_most", "level", 0.01, None, iv(0.01, 0.02), sc.INCONCLUSIVE),      # low end on the bound: within
    ("at_most", "level", 0.01, None, iv(0.0101, 0.02), sc.NOT_REPRODUCED),
    ("at_most", "points", 0.1, 1.0, iv(1.0, 1.1), sc.REPRODUCED),           # bound 1.1
    ("at_most", "points", 0.1, 1.0, iv(1.1001, 2.0), sc.NOT_REPRODUCED),
    ("at_most", "factor", 3, 2.0, iv(5.0, 6.0), sc.REPRODUCED),             # bound 6
    ("at_most", "factor", 3, 2.0, iv(5.0, 6.01), sc.INCONCLUSIVE),
    ("at_least", "points", 10, 84, Interval(80.0, 0, None, None), sc.INCONCLUSIVE),   # no interval
    ("at_least", "points", 10, 84, Interval(None, 0, None, None), sc.NOT_MEASURED),
    ("at_least", "level", 1.0, None, Interval(math.nan, 3, 0.0, 1.0), sc.NOT_MEASURED),
    ("at_least", "level", 1.0, None, None, sc.NOT_MEASURED),
]


@pytest.mark.parametrize("side,scale,tol,paper,measured,want", BOUNDARY_CASES)
def test_rule_branches_and_boundaries(side, scale, tol, paper, measured, want):
    assert sc.Rule("r", side, scale, tol, "", "").verdict(measured, paper) == want


def test_rules_refuse_unknown_kinds():
    with pytest.raises(ValueError, match="unknown side"):
        sc.Rule("r", "about", "points", 1.0, "", "")
    with pytest.raises(ValueError, match="unknown side"):
        sc.Rule("r", "at_least", "percent", 1.0, "", "")


def test_paper_values_measured_back_give_the_verdicts_their_intervals_allow():
    rows = by_key(sc.evaluate({"de-solver": de_results(), "mnist": mnist_results(),
                               "perceptron": perceptron_results()}, {}))
    assert all(r["verdict"] != sc.NOT_MEASURED for r in rows.values()), \
        [k for k, r in rows.items() if r["verdict"] == sc.NOT_MEASURED]
    # every network at the paper's value: a zero-width interval on the paper's value is within
    for key in ("de-adagrad-teq", "de-adadelta-speedup", "mnist-teq", "mnist-speedup", "abstract-10x",
                "range-de", "range-mnist"):
        assert rows[key]["verdict"] == sc.REPRODUCED, (key, rows[key])
        assert rows[key]["n"] == 25 and rows[key]["ci_low"] == rows[key]["ci_high"]
    # 21 of 25 successes (the paper's 84%): the Wilson interval reaches below 74%, so inconclusive
    adam = rows["de-adam-success"]
    assert adam["ours"] == "84%" and adam["verdict"] == sc.INCONCLUSIVE and adam["ci_low"] < 74 < adam["ci_high"]
    # no per-network data: no interval, and the row says why
    for key in ("de-error-ratio", "replication-divergence", "replication-divergence-layer"):
        assert rows[key]["verdict"] == sc.INCONCLUSIVE and rows[key]["ci_low"] is None and rows[key]["no_interval"]
    assert rows["perceptron-s4"]["verdict"] == sc.INCONCLUSIVE   # no bootstrap shares in these results
    assert rows["abstract-10x-fast-loop"]["verdict"] == sc.NOT_REPRODUCED  # 0.8x against the fast loop
    assert rows["replication-divergence"]["ours_value"] == 1.0  # both parts of the rule hold
    assert rows["range-de"]["ours"] == "T = 2500 steps"


def test_a_rate_needs_enough_networks_to_be_reproduced():
    few, many = (by_key(sc.evaluate({"de-solver": de_results(n=n)}, {}))["de-adam-success"] for n in (25, 400))
    assert few["verdict"] == sc.INCONCLUSIVE and many["verdict"] == sc.REPRODUCED
    assert many["ci_high"] - many["ci_low"] < few["ci_high"] - few["ci_low"]


def test_disagreements_get_the_verdict_the_rules_give():
    rows = by_key(sc.evaluate({"de-solver": de_results(scale_speed=0.2, success=0.2, teq=0.2),
                               "mnist": mnist_results(loss_ko=0.15, loss_opt=0.2),
                               "perceptron": perceptron_results(node=950, network=990)}, {}))
    assert rows["de-adam-speedup"]["verdict"] == sc.NOT_REPRODUCED  # 19.6x vs 98x: below half
    assert rows["de-adam-success"]["verdict"] == sc.NOT_REPRODUCED  # 20% vs 84%
    assert rows["de-adam-teq"]["verdict"] == sc.NOT_REPRODUCED      # 0.2 vs 0.85
    assert rows["range-de"]["verdict"] == sc.NOT_REPRODUCED and rows["range-de"]["ours"] == "none"
    assert rows["replication-divergence"]["ours_value"] == 0.0
    assert rows["perceptron-s4"]["ours_value"] == pytest.approx(3 / 5)


def with_own_ratios(res, ratios, errors, n_best=10):
    """``res`` (:func:`de_results`) whose Adadelta networks at T = 2500 carry their own Fig. 2e ratio and
    mean |error| (``ratios[i]``, ``errors[i]``), Fig. 2e choosing ``n_best`` of them."""
    for net in res["networks"]:
        if (net["optimizer"], net["T"]) == ("adadelta", 2500):
            net.update(error_ratio=ratios[net["init"]], mean_abs_error=errors[net["init"]])
    return {**res, "provenance": {"profile": "ci", "config": {"n_best": n_best}}}


def test_the_error_ratio_interval_redoes_the_choice_of_networks_in_every_resample():
    # recovery: with n_best = 1 the statistic is the own ratio of the network of smallest mean |error|
    assert mde.best_networks_ratio([[0.3, 0.5], [0.1, 0.002], [0.2, 0.9]], 1) == 0.002
    assert mde.best_networks_ratio([[0.3, 0.5], [0.1, 0.002], [0.2, 0.9]], 2) == pytest.approx((0.002 + 0.9) / 2)
    # 15 accurate networks with small ratios, 10 inaccurate ones with large ratios: the ten chosen by their
    # mean |error| in each resample are mostly the accurate ones -> within 0.01 over the whole interval
    ratios = [0.001] * 15 + [0.5] * 10
    good = by_key(sc.evaluate({"de-solver": with_own_ratios(de_results(), ratios, [1e-4] * 15 + [1e-2] * 10)},
                              {}))["de-error-ratio"]
    assert good["verdict"] == sc.REPRODUCED and good["n"] == 25 and good["ci_high"] <= 0.01
    assert "not the pooled ratio of medians" in good["note"] and good["ours"] == "0.004"   # the pooled value shown
    # the same ratios, but the inaccurate networks have the smallest mean |error|: the choice follows it
    bad = by_key(sc.evaluate({"de-solver": with_own_ratios(de_results(), ratios, [1e-2] * 15 + [1e-4] * 10)},
                             {}))["de-error-ratio"]
    assert bad["verdict"] == sc.NOT_REPRODUCED and bad["ci_low"] > 0.01 and bad["ci_high"] == 0.5
    # rows without their own ratios (a file made before them): no interval, and the row says why
    plain = by_key(sc.evaluate({"de-solver": de_results()}, {}))["de-error-ratio"]
    assert plain["ci_low"] is None and plain["no_interval"] == mde.NO_OWN_RATIOS.format(n=10)


def test_a_noisy_median_is_inconclusive_and_a_clear_one_is_not():
    """The same median T_eq/T (0.85, the paper's Adam) from networks that agree and from networks that scatter."""
    res = de_results()
    spread = [0.85 + 0.6 * ((i % 5) - 2) / 2 for i in range(25)]        # 0.25 .. 1.45, median 0.85
    for net in res["networks"]:
        if net["optimizer"] == "adam" and net["T"] == 2500:
            net["teq_over_t"] = spread[net["init"]]
    rows = by_key(sc.evaluate({"de-solver": res}, {}))
    assert rows["de-adam-teq"]["ours_value"] == pytest.approx(0.85)
    assert rows["de-adam-teq"]["ci_low"] < 0.75 and rows["de-adam-teq"]["verdict"] == sc.INCONCLUSIVE
    assert rows["de-adagrad-teq"]["verdict"] == sc.REPRODUCED


def test_composite_claims_resample_whole_networks():
    """The range: every optimizer's median must keep up at a T; a resample that drops below at the
    paper's T gives 0. Adam's networks alternate 0.5 and 1.0 (median 1.0 with 13 of 25 at 1.0)."""
    res = de_results()
    for net in res["networks"]:
        if net["optimizer"] == "adam" and net["T"] == 2500:
            net["teq_over_t"] = 1.0 if net["init"] % 2 == 0 else 0.5
    r = by_key(sc.evaluate({"de-solver": res}, {}))["range-de"]
    assert r["ours_value"] == 1.0 and r["ci_low"] == 0.0 and r["ci_high"] == 1.0 and r["verdict"] == sc.INCONCLUSIVE


def test_perceptron_bounds_come_from_the_experiments_bootstrap_shares():
    res = perceptron_results()
    shares = {"rule": (0.0, None), "single_weight": (0.9, 1.0), "node": (1.0, 0.0), "network": (1.0, 0.0)}
    for row in res["table"]:
        row["p_sooner_than_rule"], row["p_soonest"] = shares[row["method"]]
    res["provenance"]["config"] = {"n_sims": 100}
    m = sc.perceptron_ordering({"perceptron": res})
    # held in every resample: node < rule, network < rule, single weight < node and < network; 0.9: unknown
    assert m.value == 1.0 and m.interval == Interval(1.0, 100, 0.8, 1.0)
    later = perceptron_results(node=950)      # node after the rule: 4 of 5 hold, and never did in a resample
    for row in later["table"]:
        row["p_sooner_than_rule"], row["p_soonest"] = shares[row["method"]]
        if row["method"] == "node":
            row["p_sooner_than_rule"] = 0.0
    assert sc.perceptron_ordering({"perceptron": later}).interval[1:] == (0, 0.6, 0.8)


def test_a_composite_over_groups_of_different_sizes_has_no_interval_and_says_why():
    rows = by_key(sc.evaluate({"de-solver": de_results(), "mnist": mnist_results(n=40)}, {}))
    assert rows["abstract-10x"]["ci_low"] is None and "differ in size" in rows["abstract-10x"]["no_interval"]
    assert rows["abstract-10x"]["verdict"] == sc.INCONCLUSIVE


def test_never_reaching_the_rule_counts_as_last():
    res = perceptron_results()
    res["table"][2]["steps_to_rule_final"] = None   # node
    m = sc.perceptron_ordering({"perceptron": res})
    assert m.value == pytest.approx(4 / 5) and "node never" in m.shown


def test_missing_files_and_fields_are_not_measured_with_the_reason():
    rows = by_key(sc.evaluate({"de-solver": None, "mnist": None, "perceptron": None}, {}))
    assert {r["verdict"] for r in rows.values()} == {sc.NOT_MEASURED}
    assert rows["de-adam-teq"]["ours_missing"] == "no de-solver.json"
    no_value = de_results()
    for r in no_value["table"]:
        r["teq_over_t_median"] = None     # a NaN median is written as null
    rows = by_key(sc.evaluate({"de-solver": no_value}, {}))
    assert rows["de-adam-teq"]["verdict"] == sc.NOT_MEASURED
    assert rows["de-adam-teq"]["ours_missing"] == ("de-solver.json: 'teq_over_t_median' missing or not a number "
                                                   "in row (optimizer=adam, T=2500)")
    assert rows["de-adam-success"]["verdict"] == sc.INCONCLUSIVE   # measured: 21 of 25, Wilson reaches below 74%


@pytest.mark.parametrize("experiment,table,make", [("de-solver", "table", de_results),
                                                   ("mnist", "table", mnist_results),
                                                   ("mnist", "replication", mnist_results),
                                                   ("perceptron", "table", perceptron_results)])
def test_measurements_read_the_declared_rows(experiment, table, make):
    """A table whose rows lack a declared field, or carry one their type does not declare, is a
    malformed file (older files are upgraded on load): the scorecard says which field, it does not
    report the claim as merely not measured."""
    missing = make()
    for r in missing[table]:
        del r["fit"]
    with pytest.raises(ValueError, match=r"declared field\(s\) \['fit'\] of \w+Row missing"):
        sc.evaluate({experiment: missing}, {})
    extra = make()
    extra[table][0]["speedup_median"] = 2.0
    with pytest.raises(ValueError, match=r"fields \['speedup_median'\] are not declared"):
        sc.evaluate({experiment: extra}, {})
    claims = [c for c in sc.CLAIMS if c.needs == (experiment,)]
    assert claims and all(sc.measure(c, {experiment: make()})[0] is not None for c in claims)


def test_the_saved_full_scale_run_decides_the_verdict():
    rows = by_key(sc.evaluate({"de-solver": de_results(success=0.2)}, {"de-solver": de_results(n=400)}))
    r = rows["de-adam-success"]
    assert r["ours_verdict"] == sc.NOT_REPRODUCED and r["paper_profile_verdict"] == sc.REPRODUCED
    assert r["verdict"] == sc.REPRODUCED and r["basis"] == "paper profile"


def test_load_results_reads_only_files_of_the_profile(tmp_path):
    write_json(tmp_path / "de-solver.json", de_results())
    mn = mnist_results()
    mn["provenance"] = {"profile": "paper"}
    write_json(tmp_path / "mnist.json", mn)
    got = sc.load_results(tmp_path, "ci")
    assert got["de-solver"]["table"] and got["mnist"] is None and got["perceptron"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["de-solver.json", "mnist.json"]  # nothing was run


def test_markdown_tables_have_one_row_per_claim_and_rule():
    rows = sc.evaluate({}, {})
    table = sc.table_markdown(rows).splitlines()
    assert len(table) == 2 + len(sc.CLAIMS)
    assert all(line.count("|") - line.count("\\|") == 8 for line in table)
    assert len(sc.rules_markdown().splitlines()) == 2 + len(sc.RULES)


def test_loss_comparison_rule_has_a_stated_tie_band():
    from koopman_repro.scorecard import LOSS_TIE, compare_loss
    assert compare_loss(1.0 - 2 * LOSS_TIE, 1.0) == "better"
    assert compare_loss(1.0 + LOSS_TIE / 2, 1.0) == compare_loss(1.0 - LOSS_TIE / 2, 1.0) == "tie"
    assert compare_loss(1.0 + 2 * LOSS_TIE, 1.0) == "worse"
    assert compare_loss(float("nan"), 1.0) == "worse"


# -- chapter thresholds: (name, a value on the side where it holds, one on the other side, the
#    reference for relative thresholds, what the text must mention)
THRESHOLD_CASES = [
    ("WINDOW_MATTERS_A_LOT", 0.51, 0.5, None, "0.5"),
    ("WINDOW_MATTERS", 0.21, 0.2, None, "0.2"),
    ("PROGRESS", 0.01, 0.0, None, "above 0"),
    ("WINDOW_CHOICE_GOOD", 0.9, 0.89, 1.0, "0.9 times"),
    ("CRITERION_INFORMATIVE", 0.31, 0.3, None, "0.3"),
    ("OBSERVABLE_HELPS", 0.11, 0.1, None, "0.1"),
    ("OBSERVABLE_COSTLIER", 1.11, 1.1, None, "1.1"),
    ("CYCLES_FASTER", 8.9, 9.0, 10.0, "0.9 times"),
    ("BEATS_OPTIMIZER", 1.01, 1.0, None, "above 1"),
    ("SUMMARY_KEEPS_UP", 0.8, 0.79, None, "0.8"),
    ("SUMMARY_DIVERGENCE", 0.04, 0.0, None, "above 0"),
    ("COST_SPEED", 11.25, 11.2, 15.0, "0.75 times"),
    ("COST_SPEED_PARTLY", 3.75, 3.7, 15.0, "0.25 times"),
    ("EXPONENT_CLOSE", 0.5, 0.51, None, "0.5"),
    ("KOOPMAN_FASTER", 1.01, 1.0, None, "above 1"),
    ("RECORDING_OVERHEAD", 0.1, 0.11, None, "10%"),
    ("BOOK_CI_MINUTES", 15.0, 15.1, None, "15 minutes"),
    ("PAPER_WALL_MINUTES", 60.0, 60.1, None, "60 minutes"),
    ("DE_NOT_SOLVED", 0.26, 0.25, 1.0, "0.25 times"),
    ("DE_ENERGY_LOST", 0.051, 0.05, 0.1, "0.5 times"),
    ("DE_ORIGINAL_WORKS", 0.024, 0.025, 0.1, "0.25 times"),
    ("LOSS_DIVERGED", 0.31, 0.3, 0.2, "above 1.5 times"),
    ("LOSS_KEPT_UP", 0.29, 0.31, 0.2, "below 1.5 times"),
    ("EIG_EXACT", 2e-14, 2.3e-14, None, "2.2e-14"),
    ("TO_ROUNDING", 2e-13, 2.3e-13, None, "2.2e-13"),
    ("NOT_CLOSED", 0.011, 0.01, None, "0.01"),
    ("EXPONENT_MATCH", 0.29, 0.3, None, "0.3"),
]


@pytest.mark.parametrize("name,yes,no,of,mentions", THRESHOLD_CASES)
def test_chapter_thresholds_classify_both_sides_and_state_their_value(name, yes, no, of, mentions):
    t = getattr(sc, name)
    assert t.holds(yes, of=of) and not t.holds(no, of=of)
    assert t.fails(no, of=of) and not t.fails(yes, of=of)
    assert mentions in t.text


def test_every_chapter_threshold_is_tested_and_registered():
    assert {sc.THRESHOLDS[k] for k in sc.THRESHOLDS} == {getattr(sc, c[0]) for c in THRESHOLD_CASES}
    assert len(sc.THRESHOLDS) == len(THRESHOLD_CASES)
    assert not sc.Threshold("t", 1.0, "<", "").holds(math.nan) and not sc.Threshold("t", 1.0, "<", "").fails(math.nan)
    with pytest.raises(ValueError):
        sc.Threshold("t", 1.0, "=", "")


def test_thresholds_keep_the_comparisons_they_replaced():
    # the notebooks used these exact expressions; the rules must give the same answer at the boundary
    assert sc.LOSS_DIVERGED.holds(0.3, of=0.2) == (0.3 > 1.5 * 0.2)
    assert sc.LOSS_KEPT_UP.holds(0.3, of=0.2) == (0.3 < 1.5 * 0.2)
    assert sc.WINDOW_CHOICE_GOOD.holds(0.27, of=0.3) == (0.27 >= 0.9 * 0.3)
    assert sc.CYCLES_FASTER.holds(0.9, of=1.0) is False and sc.EXPONENT_CLOSE.holds(0.5) is True
    assert sc.RECORDING_OVERHEAD.fails(0.1) is False and sc.RECORDING_OVERHEAD.fails(0.1000001) is True
    assert sc.EIG_EXACT.value == 100 * sc.EPS64 and sc.TO_ROUNDING.value == 1e3 * sc.EPS64


def test_targets_agree_with_the_bench():
    from koopman_repro import bench
    assert bench.TARGETS["recording_overhead_streaming"][1:] == (sc.RECORDING_OVERHEAD.value, sc.RECORDING_OVERHEAD.op)
    assert bench.TARGETS["book_ci_minutes"][1:] == (sc.BOOK_CI_MINUTES.value, sc.BOOK_CI_MINUTES.op)


def test_divergence_rule_has_two_parts_each_reported():
    """(1) the Koopman loss grows from its own start, (2) it ends above Adadelta's median."""
    row = {"test_loss_t2": 0.18, "final_test_loss_koopman": 0.19, "final_test_loss_optimizer": 0.2}
    assert sc.divergence_parts(row)[:2] == (True, False)            # grows, but stays below Adadelta
    rows = by_key(sc.evaluate({"mnist": mnist_results(loss_ko=0.19)}, {}))
    assert rows["replication-divergence"]["ours_value"] == 0.5
    assert sc.RULES["divergence"].verdict(Interval(0.5, 5, 0.5, 0.5)) == sc.NOT_REPRODUCED  # one part: no 'partly'
    assert "(1) grows" in rows["replication-divergence"]["ours"] and "(2)" in rows["replication-divergence"]["ours"]
    # the per-network growth median wins over the ratio of medians when the results have it
    assert sc.divergence_parts({**row, "koopman_loss_growth_median": 0.9})[0] is False
    # every network stopped by the guard: both parts hold
    assert sc.divergence_parts({"final_test_loss_koopman": None, "final_test_loss_optimizer": 0.2})[:2] == (True, True)


def test_every_claim_gets_a_second_verdict_with_the_default_fit_by_the_same_rule():
    def row(fit, success, teq):
        return row_of("mnist", "table", fit=fit, T_epochs=2, n_inits=25, success_rate=success, teq_over_t_median=teq,
                      speedup_paper_style_median=2.0 if success else None, max_spectral_radius_median=1.004)
    mnist = {"table": [row("paper", 0.0, 0.0), row("default", 1.0, 0.95), row("default-stabilised", 1.0, 0.9)],
             "members": [member(i, paper=(0.0, 0.0), default=(0.95, 2.0)) for i in range(100)]}
    rows = {r["key"]: r for r in sc.evaluate({}, {"mnist": mnist})}
    s, t = rows["mnist-success"], rows["mnist-teq"]
    assert s["verdict"] == sc.NOT_REPRODUCED and s["default_verdict"] == sc.REPRODUCED
    assert s["paper_profile"] == "0%" and s["default_shown"] == "100%" and "differs" not in s["default_note"]
    assert "0%" in s["differs_why"] and "100%" in s["differs_why"]
    assert t["default_verdict"] == sc.RULES["T_eq/T"].verdict(Interval(0.95, 100, 0.95, 0.95), 0.97) == sc.REPRODUCED
    assert s["differs_reason"] == sc.fits.DEFAULT_BETTER
    # results with the paper's fit only: the default is not measured, and says so
    only_paper = {"table": [row("paper", 1.0, 0.97)], "members": [member(i) for i in range(25)]}
    r = {x["key"]: x for x in sc.evaluate({}, {"mnist": only_paper})}["mnist-teq"]
    assert r["verdict"] == sc.REPRODUCED and r["default_verdict"] == sc.NOT_MEASURED
    assert r["differs_why"] == "Not measured with the default fit in these results."
    assert sc.counts(list(rows.values()), "default_verdict")[sc.REPRODUCED] >= 2


def test_replication_rows_are_read_as_declared_rows_or_a_chapters_dicts():
    rep = mnist_results(loss_ko=0.19)["replication"][2]
    as_row = declared.row_type("mnist", "replication").from_dict(rep)
    assert sc.divergence_parts(as_row) == sc.divergence_parts(rep) == (True, False, pytest.approx(0.19 / 0.18))


# -- the answer first --------------------------------------------------------------------------
ODE = {"n": 75, "median_error": 2.2, "best_error": 2.0, "amplitude": 1.43, "median_drift": 2.05, "energy0": 2.06,
       "train_dtype": "float32"}


def test_the_answer_is_computed_from_the_verdicts_and_intervals():
    rows = sc.evaluate({"de-solver": de_results(), "mnist": mnist_results(), "perceptron": perceptron_results()}, {})
    text = sc.answer_markdown(rows, ODE)
    assert len(text.split()) <= 220
    k = by_key(rows)
    assert f"the paper's fit: {k['mnist-teq']['verdict']}, T_eq/T 0.97 [0.97-0.97]" in text
    assert "the paper's fit: reproduced for Adam, Adagrad, Adadelta" in text and "had **not** solved the ODE" in text
    c = sc.counts(rows, source="paper")
    assert f"{c[sc.REPRODUCED]} reproduced, {c[sc.INCONCLUSIVE]} inconclusive" in text
    # another verdict, another answer: the text follows the rows, nothing is typed in
    k["mnist-teq"]["verdict"] = sc.NOT_REPRODUCED
    assert "the paper's fit: not reproduced, T_eq/T 0.97" in sc.answer_markdown(list(k.values()), ODE)
    solved = sc.answer_markdown(rows, {**ODE, "median_error": 0.1, "median_drift": 0.01})
    assert "had solved the ODE" in solved and "energy drift" not in solved
    assert "ODE check is not in the results" in sc.answer_markdown(rows, None)


def test_the_answer_reads_the_ode_state_of_the_run_that_decides():
    de = {**de_results(), "main": {"train_dtype": "float64"},
          "by_dtype": {"float64": {"ode": {"max_abs_error": [1.0, 3.0, 2.0], "x_ref": [0.5, -1.5], "energy0": 2.0,
                                           "energy_drift": [1.0, 2.0, 1.5]}}}}
    state = sc.measure_de_solver.ode_state({"de-solver": de})
    assert state == {"n": 3, "median_error": 2.0, "best_error": 1.0, "amplitude": 1.5, "median_drift": 1.5,
                     "energy0": 2.0, "train_dtype": "float64"}
    rows = sc.evaluate({}, {"de-solver": de})
    assert "Its 3 networks had **not** solved" in sc.front_page_answer({}, {"de-solver": de}, rows)
    assert "ODE check is not in the results" in sc.front_page_answer({}, {"de-solver": de_results()}, rows)


# -- the front page on the committed results ------------------------------------------------
FRONT_PAGE = Path(__file__).parent / "data" / "scorecard_front_page_paper.json"


def front_page(saved: dict) -> dict:
    """What the front page prints from ``saved`` (the committed results/paper files): its tables
    with no ci results, and with the saved files as this build's too; the verdict counts; the rules."""
    from koopman_repro import plots

    def tables(rows):
        return [sc.table_markdown(m, ours_label="ours (ci)", name=plots.short_name) for _, m in plots.grouped(rows)]
    both = sc.evaluate(saved, saved)
    return {"saved_only": tables(sc.evaluate({n: None for n in sc.EXPERIMENT_NAMES}, saved)),
            "saved_as_both": tables(both), "counts": [sc.counts(both), sc.counts(both, "default_verdict")],
            "rules": sc.rules_markdown(), "answer": sc.front_page_answer({}, saved, both)}


def test_front_page_tables_are_unchanged_on_the_committed_results():
    """On the committed results/paper files the front page's tables, counts, rules and answer are the
    ones checked by hand when tests/data/scorecard_front_page_paper.json was written (three-way verdicts
    over intervals, issue 23)."""
    from koopman_repro.report import paper_results
    golden = json.loads(FRONT_PAGE.read_text())
    saved = {n: paper_results(n) for n in sc.EXPERIMENT_NAMES}
    utc = {n: saved[n]["provenance"]["utc_time"] if saved[n] else None for n in sc.EXPERIMENT_NAMES}
    assert utc == golden["results_utc_time"], (
        f"results/paper was rerun since {FRONT_PAGE.name} was written: check the new front page and rewrite it "
        "with `.venv/bin/python tests/test_scorecard.py --write-front-page`")
    got = front_page(saved)
    for key in ("saved_only", "saved_as_both", "counts", "rules", "answer"):
        assert got[key] == golden[key], key


def test_provenance_without_git_dirty_code_is_upgraded_on_load(tmp_path):
    """Older provenance had ``git_dirty`` alone; the migration gives it ``git_dirty_code``, which
    the front page's provenance lines read."""
    from koopman_repro.report import provenance_line
    old = {**de_results(), "provenance": {"profile": "ci", "git_sha": "a" * 40, "git_dirty": True}}
    write_json(tmp_path / "de-solver.json", old)
    loaded = sc.load_results(tmp_path, "ci")["de-solver"]
    assert loaded["provenance"]["git_dirty_code"] is True and "+dirty" in provenance_line(loaded)
    assert "+dirty" not in provenance_line({"provenance": {"git_dirty": False, "git_dirty_code": False}})


if __name__ == "__main__":  # rewrite the front page's golden tables after a rerun of results/paper
    import sys

    from koopman_repro.report import paper_results
    if sys.argv[1:] != ["--write-front-page"]:
        sys.exit("usage: python tests/test_scorecard.py --write-front-page")
    golden = json.loads(FRONT_PAGE.read_text())
    saved = {n: paper_results(n) for n in sc.EXPERIMENT_NAMES}
    golden["results_utc_time"] = {n: saved[n]["provenance"]["utc_time"] if saved[n] else None
                                  for n in sc.EXPERIMENT_NAMES}
    golden.update(front_page(saved))
    FRONT_PAGE.write_text(json.dumps(golden, indent=1))
