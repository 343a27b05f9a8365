"""The perceptron chapter's tables, verdicts and figures (koopman_repro.chapters.perceptron),
checked for their values on a tiny run written by the test session and on synthetic inputs."""
from __future__ import annotations

import numpy as np
import pytest

from koopman_repro import scorecard as sc
from koopman_repro.chapters import perceptron as ch
from koopman_repro.experiments.perceptron import KOOPMAN, METHODS, first_passage
from koopman_repro.rows.perceptron import MethodSummary, PerceptronInputSweepRow

#: a few networks, few steps; a larger eta so that the rule gets below 10% error within the run
TINY = dict(eta=0.05, n_sims=40, steps=200, koopman_start=40, window=40, window_sweep=(10, 40),
            input_sweep=((4, 1), (8, 1), (8, 2)), sweep_sims=24, smooth=10, bootstrap=50)


@pytest.fixture(scope="module")
def res(tiny_results):
    return tiny_results("perceptron", **TINY)


# -- tables and notes ------------------------------------------------------------------------------
def test_the_curve_of_a_fit_with_the_paper_operators_is_the_paper_curve(res):
    for m in KOOPMAN:
        assert res["methods_by_fit"]["default"][m]["same_operators_as"] == "paper"
        assert ch.curve(res, m, "default") == res["curves"][m]
        assert ch.curve(res, m, "default-stabilised") == res["curves_by_fit"]["default-stabilised"][m]
    assert ch.curve(res, "rule", "default-stabilised") == res["curves"]["rule"]


def test_reach_table_holds_the_summaries_and_the_passages_of_the_curves(res):
    rows = ch.reach_rows(res)
    assert [(r["fit"], r["method"]) for r in rows] == [(ch.FIT_LABELS[f], ch.LABELS[m])
                                                        for f in res["methods_by_fit"] for m in METHODS]
    for r, (f, m) in zip(rows, [(f, m) for f in res["methods_by_fit"] for m in METHODS]):
        s = res["methods_by_fit"][f][m]
        assert r["final error (%)"] == s["final_percent_error"]
        assert r[ch.STRIDE_COLUMN] == ("" if m == "rule" else str(s["stride"]))
        assert r["steps to own asymptote"] == s["steps_to_asymptote"]
        assert r["steps to rule's final + 1"] == ("never" if s["steps_to_rule_final"] is None
                                                  else str(s["steps_to_rule_final"]))
        assert r["95% interval"] == f"{s['steps_to_rule_final_ci95'][0]} to {s['steps_to_rule_final_ci95'][1]}"
        assert r["mean error after step 100 (%)"] == s["mean_percent_error_after_start"]
        mean = np.array(ch.curve(res, m, f)["mean"])
        assert r["steps to 10%"] == ch.steps_text(first_passage(mean, 10.0))
    rule = next(r for r in rows if r["method"] == "rule")
    assert rule["steps to 10%"] != "never"   # the tiny run gets there: the column is not all "never"


def test_diagnostics_and_input_sweep_tables_hold_the_results_fields(res):
    diag = ch.diagnostics_rows(res)
    want = [(f, m, s) for f, d in res["methods_by_fit"].items() for m, s in d.items() if m != "rule"]
    assert len(diag) == len(want) == len(res["methods_by_fit"]) * len(KOOPMAN)
    for r, (f, m, s) in zip(diag, want):
        assert (r["fit"], r["method"]) == (ch.FIT_LABELS[f], ch.LABELS[m])
        assert r[ch.STRIDE_COLUMN] == str(s["stride"])
        assert r["largest spectral radius"] == s["max_radius"]
        assert r["simulations with spectral radius > 1"] == s["frac_sims_radius_above_1"]
        assert r["rank-deficient blocks"] == s["frac_rank_deficient_blocks"]
        assert r["simulations overflowed"] == s["frac_sims_overflowed"]
    sweep = [r for r in res["input_sweep"] if r["fit"] == "paper"]
    rows = ch.input_sweep_rows(res)
    assert len(rows) == len(sweep) == 4 * len(TINY["input_sweep"])
    for r, s in zip(rows, sweep):
        assert (r["n1"], r["group"], r["method"]) == (s["n_inputs"], s["group_size"], ch.LABELS[s["method"]])
        assert r["final error (%)"] == s["final_percent_error"]
        assert r["mean error after step 100 (%)"] == s["mean_percent_error_after_start"]


def test_settings_follow_the_config(res):
    rows = {r["setting (unstated in the paper)"]: r["our choice"] for r in ch.settings_rows(res)}
    assert rows["data window before step 100"] == f"{TINY['window']} steps"
    assert rows["sliding window"] == "trailing" and rows["percent error"] == "of output units"
    centred = {**res, "provenance": {**res["provenance"],
                                     "config": {**res["provenance"]["config"], "smooth_centered": True}}}
    assert {r["our choice"] for r in ch.settings_rows(centred)} >= {"centred"}


def test_notes_quote_the_numbers_they_are_computed_from(res):
    dflt = [r for r in res["window_sweep"] + res["input_sweep"] if r["fit"] == "default" and r["method"] != "rule"]
    n_same = sum(r["same_operators_as"] == "paper" for r in dflt)
    assert f"in {n_same} of the {len(dflt)} default fits" in ch.default_fit_note(res)
    sw, rl = res["methods"]["single_weight"], res["methods"]["rule"]
    gap = (first_passage(np.array(res["curves"]["rule"]["mean"]), 10.0)
           - first_passage(np.array(res["curves"]["single_weight"]["mean"]), 10.0))
    note = ch.single_weight_note(res)
    assert f"reaches 10% error {gap} steps sooner" in note
    assert f"at step {sw['steps_to_rule_final']} against the rule's {rl['steps_to_rule_final']}" in note
    stab = res["methods_by_fit"]["default-stabilised"]
    assert f"Its Single Weight operators end at {stab['single_weight']['final_percent_error']:.1f}% error" \
        in ch.stabilised_note(res)
    assert max(stab[m]["max_radius"] for m in KOOPMAN) <= 1
    assert ch.radius_note(res).endswith("The stabilised operators' spectral radius is at most 1.")
    above = {**stab, "node": {**stab["node"], "max_radius": 1 + 2e-7}}
    above = {**res, "methods_by_fit": {**res["methods_by_fit"], "default-stabilised": above}}
    assert "The stabilised operators' largest radius is $1 + 2.0e-07$, not exactly 1" in ch.radius_note(above)
    assert f"Data window: {TINY['window']} steps." in ch.radius_note(res)


def test_input_sweep_note_names_the_settings_where_node_and_network_are_behind(res):
    adv = ch.input_advantages(res)
    note = ch.input_sweep_note(res)
    assert f"Single Weight's advantage is {adv[(4, 1)]['single_weight']:+.2f}, " \
           f"{adv[(8, 1)]['single_weight']:+.2f} points" in note
    ahead = adv[(8, 2)]["node"] > 0 and adv[(8, 2)]["network"] > 0
    assert ("ahead of the rule." if ahead else "still not ahead of the rule.") in note


# -- verdicts ---------------------------------------------------------------------------------------
def test_advantages_are_the_rule_error_minus_the_method_error_per_setting_and_fit(res):
    adv = ch.input_advantages(res, "default")
    by = {(r["n_inputs"], r["group_size"], r["method"]): r["mean_percent_error_after_start"]
          for r in res["input_sweep"] if r["fit"] == "default"}
    assert set(adv) == set(TINY["input_sweep"])
    for (n, g), d in adv.items():
        assert set(d) == set(KOOPMAN)
        for m, v in d.items():
            assert v == by[(n, g, "rule")] - by[(n, g, m)]
    row = dict(n_inputs=4, group_size=1, activity=0.25, steps_to_asymptote=1, final_percent_error=0.0,
               final_sem=0.0, frac_sims_overflowed=0.0, frac_rank_deficient_blocks=0.0)
    rows = [PerceptronInputSweepRow(method=m, fit=f, mean_percent_error_after_start=e, **row)
            for f, m, e in (("paper", "rule", 10.0), ("paper", "node", 7.5), ("default", "rule", 1.0),
                            ("default", "node", 3.0))]
    assert ch.advantages(rows) == {(4, 1): {"node": 2.5}}
    assert ch.advantages(rows, "default") == {(4, 1): {"node": -2.0}}


def summary(reach=None, final=3.0, p_sooner=None, p_soonest=None):
    return MethodSummary(steps_to_asymptote=1, final_percent_error=final, final_sem=0.0,
                         mean_percent_error_after_start=final, steps_to_rule_final=reach,
                         p_sooner_than_rule=p_sooner, p_soonest=p_soonest)


def summaries(reach: dict, p_sooner: dict | None = None, p_soonest: float | None = None) -> dict:
    p_sooner = p_sooner or {}
    return {m: summary(reach[m], p_sooner=p_sooner.get(m),
                       p_soonest=p_soonest if m == "single_weight" else None) for m in reach}


def test_sooner_claim_without_bootstrap_compares_the_steps():
    reach = {"rule": 900, "single_weight": 899, "node": 500, "network": 600}
    assert ch.sooner_claim(summaries(reach)).reading == ch.HOLDS
    assert ch.sooner_claim(summaries({**reach, "single_weight": 900})).reading == ch.HOLDS_IN_PART   # a tie is not sooner
    none = ch.sooner_claim(summaries({**reach, "single_weight": None, "node": 901, "network": 950}))
    assert none.reading == ch.DOES_NOT_HOLD and "Single Weight never" in none.measure
    assert "bootstrap" not in none.rule


def test_sooner_claim_with_bootstrap_needs_p_at_least_p_sure():
    reach = {"rule": 900, "single_weight": 300, "node": 500, "network": 600}
    sure = {"rule": 0.0, "single_weight": ch.P_SURE, "node": 0.99, "network": 1.0}
    c = ch.sooner_claim(summaries(reach, sure))
    assert c.reading == ch.HOLDS and f"{ch.P_SURE:.0%} of bootstrap resamples" in c.rule
    assert "Single Weight 300 (p = 0.95)" in c.measure
    # the point estimate says sooner, the resamples do not: p just below the threshold
    assert ch.sooner_claim(summaries(reach, {**sure, "single_weight": ch.P_SURE - 0.01})).reading == ch.HOLDS_IN_PART


def test_soonest_claim_needs_single_weight_alone_in_front():
    reach = {"rule": 900, "single_weight": 300, "node": 500, "network": 600}
    assert ch.soonest_claim(summaries(reach)).reading == ch.HOLDS
    tie = ch.soonest_claim(summaries({**reach, "node": 300}))
    assert tie.reading == ch.DOES_NOT_HOLD and "Single Weight, Node (300 steps)" in tie.measure
    assert ch.soonest_claim(summaries({**reach, "single_weight": None})).reading == ch.DOES_NOT_HOLD
    never = ch.soonest_claim(summaries({"rule": 900, "single_weight": None, "node": None, "network": None}))
    assert never.measure == "no Koopman variant reaches the rule's final error"
    p = {"rule": 0.0, "single_weight": 1.0, "node": 1.0, "network": 1.0}
    assert ch.soonest_claim(summaries(reach, p, p_soonest=ch.P_SURE)).reading == ch.HOLDS
    assert ch.soonest_claim(summaries(reach, p, p_soonest=ch.P_SURE - 0.01)).reading == ch.DOES_NOT_HOLD


def test_more_inputs_claim_thresholds_at_half_the_advantage():
    lo = {"single_weight": 3.0, "node": 2.0, "network": 2.0}
    both = {(4, 1): lo, (16, 1): {"single_weight": 1.5, "node": 0.99, "network": -1.0}}
    assert ch.more_inputs_claim(both).reading == ch.HOLDS
    # Single Weight just below half its advantage; Node exactly half (does not fall below half)
    assert ch.more_inputs_claim({**both, (16, 1): {**both[(16, 1)], "single_weight": 1.49}}).reading == ch.HOLDS_IN_PART
    assert ch.more_inputs_claim({**both, (16, 1): {**both[(16, 1)], "node": 1.0}}).reading == ch.HOLDS_IN_PART
    assert ch.more_inputs_claim({(4, 1): {**lo, "node": -0.1}, (16, 1): {**lo, "single_weight": 1.0}}).reading \
        == ch.DOES_NOT_HOLD
    assert ch.more_inputs_claim({(4, 1): lo}) is None and ch.more_inputs_claim({(8, 1): lo, (16, 1): lo}) is None


def test_correlated_claim_needs_node_and_network_ahead_and_better_than_independent():
    indep = {"single_weight": 1.0, "node": -1.0, "network": 0.5}
    adv = {(8, 1): indep, (8, 2): {"single_weight": 0.0, "node": 0.01, "network": 0.51}}
    assert ch.correlated_claim(adv).reading == ch.HOLDS
    assert ch.correlated_claim({**adv, (8, 2): {**adv[(8, 2)], "network": 0.5}}).reading == ch.DOES_NOT_HOLD
    assert ch.correlated_claim({**adv, (8, 2): {**adv[(8, 2)], "node": 0.0}}).reading == ch.DOES_NOT_HOLD
    two = {**adv, (16, 1): indep, (16, 4): {"single_weight": 0, "node": -0.5, "network": 1.0}}
    assert ch.correlated_claim(two).reading == ch.HOLDS_IN_PART
    assert ch.correlated_claim({(8, 2): adv[(8, 2)]}) is None


def test_claims_of_the_run_per_fit_and_the_paper_column(res):
    paper_claims = ch.claims(res)
    assert [c.claim for c in ch.claims(res, "default")] == [c.claim for c in paper_claims]
    assert len(paper_claims) == 4 and len(ch.claims(res, "default-stabilised")) == 2   # no input sweep there
    assert ch.claims(res, "no such fit") == []
    m = {k: MethodSummary.from_dict(v) for k, v in res["methods"].items()}
    assert paper_claims[0] == ch.sooner_claim(m)
    assert paper_claims[2] == ch.more_inputs_claim(ch.input_advantages(res))
    rows = ch.claims_rows(res, None, "ci")
    assert len(rows) == 4 + 4 + 2 * (len(res["methods_by_fit"]) - 2)     # the Fig. S4d claims alone past the default
    front = sc.claim_row("perceptron-s4", {"perceptron": res}, {})
    own = [f"chapter reading: {c.reading}" for c in paper_claims]
    want = [f"front page: {front['verdict']}; {own[0]}", f"front page: {front['verdict']}; {own[1]}", own[2], own[3]]
    assert [r["verdict"] for r in rows if r["fit"] == "paper fit"] == want
    default = [r["verdict"] for r in rows if r["fit"] == "default fit"]
    assert default[0].startswith(f"front page: {front['default_verdict']}; chapter reading: ")
    stabilised = [r["verdict"] for r in rows if r["fit"] == "default, stabilised"]
    assert len(stabilised) == 2 and all(v.startswith("chapter reading: ") for v in stabilised)  # not on the front page
    for f in ("default-strided", "default-strided-stabilised"):
        strided = [r["verdict"] for r in rows if r["fit"] == ch.FIT_LABELS[f]]
        assert len(strided) == 2 and all(v.startswith("chapter reading: ") for v in strided)
    assert all(r["ours (paper profile)"] == "not run yet" for r in rows)
    # a paper run with only the paper fit, in which every variant is surely sooner than the rule
    sure = {m: {**v, "p_sooner_than_rule": 1.0} for m, v in res["methods"].items()}
    other = {**res, "methods": sure, "methods_by_fit": {"paper": sure}}
    rows2 = ch.claims_rows(res, other, "ci")
    assert rows2[0]["ours (paper profile)"] == ch.claims(other)[0].measure != paper_claims[0].measure
    assert rows2[0]["verdict"].endswith(f"chapter reading: {ch.HOLDS}")   # the paper run's reading wins
    assert rows2[0]["ours (ci)"] == paper_claims[0].measure
    assert rows2[1]["ours (paper profile)"] == "not run yet"   # no default fit in `other`
    assert rows2[1]["verdict"].endswith(f"chapter reading: {ch.claims(res, 'default')[0].reading}")
    assert f"(1) {paper_claims[0].rule}." in ch.claim_rules_note(res)


def test_the_null_model_note_is_the_front_pages_reading_of_this_run(res):
    """The tiny run has a null model (the rule on other inputs): the note shows the front page's
    paired reading of it, not "not measured yet"."""
    front = sc.claim_row("perceptron-s4", {"perceptron": res}, {})
    assert front["null_readings"] and front["null_model"] != sc.NULL_MODEL_PENDING
    note = ch.null_model_note(res, None)
    assert front["null_model"] in note and "paired per network" in note
    assert {r["reading"] for r in front["null_readings"]} <= set(sc.NULL_READINGS)


# -- figures ----------------------------------------------------------------------------------------
def test_weights_figure_has_a_panel_per_method_and_weight_kind(res):
    fig = ch.weights_figure(res)
    axes = np.array(fig.axes).reshape(2, 4)
    assert [ax.get_title() for ax in axes[0]] == [ch.LABELS[m] for m in METHODS]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["relevant weight", "irrelevant weight"]
    assert all(ax.get_xlabel() == "training step" for ax in axes[1])
    median = [ln for ln in axes[0, 1].lines if ln.get_label() == "median, all simulations"]
    assert len(median) == 1 and list(median[0].get_ydata()) == res["weights"]["single_weight"]["relevant"]
    assert list(median[0].get_xdata()) == res["weights"]["step"]


def test_error_curves_figure_has_a_panel_per_fit_with_every_method(res):
    fig = ch.error_curves_figure(res)
    assert len(fig.axes) == len(res["methods_by_fit"]) == 5          # rows of up to three panels
    for ax, f in zip(fig.axes, res["methods_by_fit"]):
        assert ax.get_title().startswith(ch.FIT_LABELS[f])
        lines = {ln.get_label(): ln for ln in ax.lines}
        assert set(lines) == {ch.LABELS[m] for m in METHODS} | {"Koopman training starts"}
        for m in METHODS:
            assert list(lines[ch.LABELS[m]].get_ydata()) == ch.curve(res, m, f)["mean"]
    assert fig.axes[1].get_title() == "default fit (the paper fit's operators)"
    assert fig.axes[2].get_title() == "default, stabilised"
    assert fig.axes[3].get_title() == "default, strided"     # Single Weight at stride 10: operators of its own
    assert fig.axes[0].get_ylabel() == fig.axes[3].get_ylabel() == "percent error (smoothed over 50 steps)"
    assert fig._suptitle.get_text() == f"Perceptron, {TINY['n_sims']} simulations: mean ± SEM, per fit"


def test_window_figure_plots_the_paper_fit_rows_of_the_window_sweep(res):
    fig = ch.window_figure(res)
    final, after, rank = fig.axes
    for m in KOOPMAN:
        rows = sorted((r for r in res["window_sweep"] if r["method"] == m and r["fit"] == "paper"),
                      key=lambda r: r["window"])
        line = next(ln for ln in final.lines if ln.get_label() == ch.LABELS[m])
        assert list(line.get_xdata()) == [r["window"] for r in rows] == list(TINY["window_sweep"])
        assert list(line.get_ydata()) == [r["final_percent_error"] for r in rows]
        line = next(ln for ln in rank.lines if ln.get_label() == ch.LABELS[m])
        assert list(line.get_ydata()) == [r["frac_rank_deficient_blocks"] for r in rows]
    rule = next(ln for ln in after.lines if ln.get_label() == "rule")
    assert list(rule.get_ydata()) == [res["methods"]["rule"]["mean_percent_error_after_start"]] * 2
    assert [ax.get_title() for ax in fig.axes] == ["final error", "error after the switch",
                                                   "rank deficiency of F (paper fit)"]


def test_advantage_figure_bars_are_the_advantages(res):
    fig = ch.advantage_figure(res)
    ax, = fig.axes
    adv = ch.input_advantages(res)
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"n1={n}, g={g}" for n, g in adv]
    for container, m in zip(ax.containers, KOOPMAN):
        assert container.get_label() == ch.LABELS[m]
        assert [b.get_height() for b in container] == [adv[k][m] for k in adv]
    assert f"({TINY['sweep_sims']} simulations each)" in ax.get_title()


def test_strided_note_states_the_rules_stride_and_compares_with_the_default_fit(res):
    import copy
    from koopman_lib.stride import choose_stride
    note = ch.strided_note(res)
    k, by_fit = TINY["window"] + 1, res["methods_by_fit"]
    for m in KOOPMAN:
        s = by_fit["default-strided"][m]["stride"]
        assert s == choose_stride(k, ch.block_sizes(res)[m])          # the chapter's block sizes are the run's
        assert f"{ch.LABELS[m]} ($m$ = {ch.block_sizes(res)[m]}) $s$ = {s}, keeping {(k - 1) // s} pairs" in note
        if s > 1:
            assert (f"{ch.LABELS[m]} {by_fit['default-strided'][m]['final_percent_error']:.1f}% against "
                    f"{by_fit['default'][m]['final_percent_error']:.1f}%") in note
    # the tiny window: Network's blocks of 8 leave no room for a stride, Single Weight's of 1 do
    assert by_fit["default-strided"]["network"]["stride"] == 1 < by_fit["default-strided"]["single_weight"]["stride"]
    assert "At stride 1 (Network) the strided fit is the default fit." in note and f"{k} snapshots" in note
    older = copy.deepcopy(res)
    for f in ("default-strided", "default-strided-stabilised"):
        older["methods_by_fit"].pop(f)
    assert ch.strided_note(older) == f"The strided fits: {ch.NOT_SAVED}."
