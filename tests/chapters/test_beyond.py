"""The chapter "Beyond the paper" (koopman_repro.chapters.beyond): rows, verdicts and figures.

Verdicts are checked on small rows built here, at both sides of every threshold; tables, the
summary and the figures on a tiny run of the experiment (``tiny_results``).
"""
from __future__ import annotations

import dataclasses
import math

import matplotlib
import pytest

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402

from koopman_repro.chapters import beyond as ch  # noqa: E402
from koopman_repro.experiments.beyond import DE_PAPER_FIT  # noqa: E402
from koopman_repro.migrations import upgrade  # noqa: E402
from koopman_repro.rows import row_type  # noqa: E402



def _tiny_overrides() -> dict:
    """``TINY`` of ``tests/test_beyond.py`` (loaded by path: both test files are named test_beyond)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("beyond_experiment_tests", Path(__file__).parents[1] / "test_beyond.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.TINY


TINY = _tiny_overrides()


def make(table: str, **fields):
    """A declared row of ``table`` with the given fields; other required fields 0 or ''."""
    cls = row_type("beyond", table)
    base = {f.name: ("" if "str" in str(f.type) else 0) for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING}
    return cls(**{**base, **fields})


@pytest.fixture(scope="module")
def tiny(tiny_results):
    return tiny_results("beyond", **TINY)


# -- verdicts at both sides of their thresholds ----------------------------------------------
@pytest.mark.parametrize("spread, words", [(0.6, "matters a great deal"), (0.5, "the window matters**"),
                                           (0.2, "matters little")])
def test_verdict_window_by_spread(spread, words):
    H = [make("window_heatmap", experiment="de-solver", t1=1, length=2, teq_over_t_median=0.5),
         make("window_heatmap", experiment="de-solver", t1=3, length=4, teq_over_t_median=0.5 + spread)]
    assert ch.window_spread(H) == pytest.approx(spread)
    text = ch.verdict_window(H)
    assert words in text and "the best window starts at step 3 and is 4 steps long" in text
    assert "(2 with any progress)" in text


def test_window_grid_places_values():
    H = [make("window_heatmap", t1=5, length=2, teq_over_t_median=0.3),
         make("window_heatmap", t1=1, length=4, teq_over_t_median=None)]
    t1s, lens, G = ch.window_grid(H, "teq_over_t_median")
    assert t1s == [1, 5] and lens == [2, 4] and G[0, 1] == 0.3 and math.isnan(G[1, 0]) and math.isnan(G[0, 0])


@pytest.mark.parametrize("alone, cycles, faster", [(1.0, 0.89, True), (1.0, 0.9, False), (float("nan"), 5.0, True),
                                                  (1.0, float("nan"), False)])
def test_cycles_faster_rule(alone, cycles, faster):
    assert ch.cycles_faster(alone, cycles) is faster
    CY = [make("cycles", seconds_to_target_median=None if math.isnan(alone) else alone),
          make("cycles", seconds_to_target_median=None if math.isnan(cycles) else cycles, jumps_accepted=0,
               jumps_tried=4)]
    text = ch.verdict_cycles(CY)
    assert ("were faster (by more than 10 %)" in text) is faster and "0 of 4 jumps kept" in text
    assert "No jump lowered the test loss" in text


@pytest.mark.parametrize("k_teq, beats", [(1.01, True), (1.0, False)])
def test_verdict_nets(k_teq, beats):
    N = [make("networks", network="a", method=ch.STABLE_FIT, teq_over_t_median=k_teq),
         make("networks", network="a", method=ch.LINE_WHOLE, teq_over_t_median=0.5),
         make("networks", network="b", method=ch.STABLE_FIT, teq_over_t_median=0.1),
         make("networks", network="b", method=ch.LINE_WHOLE, teq_over_t_median=0.2)]
    text = ch.verdict_nets(N)
    assert "beat the straight line on 1 of 2 networks" in text and f"a: Koopman {k_teq:.3g}, line 0.5" in text
    assert ("beat continuing the optimizer" in text) is beats


@pytest.mark.parametrize("gain, ratio, helps, costlier", [(0.11, 1.2, True, True), (0.11, 1.1, True, False),
                                                          (0.1, 2.0, False, None)])
def test_verdict_obs(gain, ratio, helps, costlier):
    O = [make("observables", experiment="de-solver", observables="identity", teq_over_t_median=0.5,
              fit_seconds_per_network=1.0),
         make("observables", experiment="de-solver", observables="delay:2", teq_over_t_median=0.5 + gain,
              fit_seconds_per_network=ratio)]
    text = ch.verdict_obs(O)
    assert f"best delay:2 {0.5 + gain:.3g} at {ratio:.3g}x" in text
    assert ("improved $T_{eq}/T$ by more than 0.1 on de-solver" in text) is helps
    if helps:
        assert text.endswith("at a higher fit cost.**" if costlier else "without a higher fit cost.**")


def _choice(best: float, fixed: float, corr: float):
    return [make("window_choice", experiment="mnist", fit="stable", method="criterion: one-step",
                 teq_over_t_median=best, rank_correlation_with_teq=corr),
            make("window_choice", experiment="mnist", fit="stable", method="best fixed window (hindsight)",
                 teq_over_t_median=fixed),
            make("window_choice", experiment="mnist", fit="stable", method="the paper's window", teq_over_t_median=0.2)]


@pytest.mark.parametrize("best, corr, good, informative", [(0.9, 0.31, True, True), (0.89, 0.3, False, False)])
def test_verdict_choice(best, corr, good, informative):
    text = ch.verdict_choice(_choice(best, 1.0, corr))
    assert ("close to the hindsight choice" in text) is good and ("the scores carry information" in text) is informative
    assert ("chose windows about as good" in text) is good and "0.2 for the paper's window" in text


def test_verdict_choice_without_progress_is_untestable():
    assert "untestable here" in ch.verdict_choice(_choice(0.0, 0.0, 0.5))
    assert ch.verdict_choice([]) == "not run."


def test_verdict_stable_names_cured_variants_and_their_cost():
    rep = [make("stabilisation", method=ch.REPLICATION_FIT, T_epochs=T, diverged_fraction=d, setting="s")
           for T, d in ((1, 0.0), (2, 1.0))]
    clip = [make("stabilisation", method="clip", T_epochs=T, diverged_fraction=0.0, accuracy_cost_median=c)
            for T, c in ((1, 0.01), (2, 0.02))]
    reported = {"koopman_test_loss_T1": 0.27, "koopman_test_loss_T2": 1.0}
    text = ch.verdict_stable(rep + clip, reported)
    assert "diverged in 0 % / 100 % / n/a" in text and "reported about 0.27 and 1.0" in text
    assert "never diverged are clip.**" in text and "clip: 0.01 / 0.02" in text
    assert ch.never_diverged(rep + clip) == ["clip"] and ch.never_diverged(rep[:1], False) == [ch.REPLICATION_FIT]
    text = ch.verdict_stable(rep, reported)
    assert "no single variant removed the divergence" in text and "T = 2: every variant diverged" in text


@pytest.mark.parametrize("value, reading", [(0.79, "falls behind"), (0.8, "keeps up"), (None, "not run yet")])
@pytest.mark.parametrize("key", ch.KOOPMAN_TEQ_ROWS)
def test_summary_chapter_reading_of_a_koopman_teq_row(key, value, reading):
    assert ch.chapter_reading(key, {}, {key: value}, None).startswith(f"chapter reading: {reading}")


@pytest.mark.parametrize("verdict", ["reproduced", "inconclusive", "not reproduced"])
def test_summary_verdict_is_the_front_pages_and_the_chapter_adds_only_a_reading(verdict):
    """Whatever this chapter's own run says (here: keeps up), a row that measures a front-page claim
    states the front page's verdict for the fit it measures; rows of no claim state no verdict."""
    front = {"mnist-teq": {"verdict": "not reproduced", "default_verdict": verdict},
             "de-adadelta-teq": {"verdict": verdict}}
    key = "MNIST T_eq/T, float32-resolution cutoff"
    assert ch.verdict_row(key, {}, {key: 0.9}, None, front) == f"front page: {verdict}; chapter reading: keeps up"
    key = "MNIST T_eq/T, paper's fit (pinv default cutoff)"
    assert ch.verdict_row(key, {}, {key: 0.9}, None, front).startswith("front page: not reproduced; chapter reading")
    de = "DE solver T_eq/T, Koopman (pinv)"
    assert ch.verdict_row(de, {}, {de: 0.5}, None, front).startswith(f"front page: {verdict}; chapter reading: falls "
                                                                       "behind with float64 training")
    assert ch.verdict_row(key, {}, {key: 0.9}, None).startswith("front page: not measured;")   # no front page rows
    other = "DE solver T_eq/T, Koopman, window rounded to float32"
    assert ch.verdict_row(other, {}, {other: 0.9}, None, front) == "chapter reading: keeps up"


def test_older_files_name_the_replication_window_on_load():
    old = {"provenance": {"config": {"rep_window_epochs": [3, 4]}}, "stabilisation_details": {}}
    up = upgrade(old, "beyond")
    assert ch.replication_window(up) == (3, 4) and "rep_window_epochs" not in up["provenance"]["config"]
    assert "epochs 3-4 (1-based)" in ch.replication_sentence(up)
    assert ch.replication_reported(up) == {"koopman_test_loss_T1": "n/a", "koopman_test_loss_T2": "n/a"}


# -- the cycles by variant, the state's cost and the state observables ----------------------
def _cycle_rows(older: bool = False) -> list:
    """The optimizer alone, the weights-only and the state cycles (``older``: a file made before the
    variants: no variant, no final loss, no state row)."""
    alone = make("cycles", method="adadelta alone", seconds_to_target_median=2.0, steps_to_target_median=300.0,
                 seconds_training=4.0, final_test_loss_median=0.5, variant="optimizer alone")
    w = make("cycles", method="w", seconds_to_target_median=3.0, steps_to_target_median=300.0, jumps_accepted=1,
             jumps_tried=6, seconds_training=3.0, seconds_recording=0.5, seconds_fitting=1.25, seconds_jumping=0.25,
             seconds_evaluating=1.0, final_test_loss_median=0.25, variant="weights")
    st = make("cycles", method="s", seconds_to_target_median=None, steps_to_target_median=None, jumps_accepted=0,
              jumps_tried=6, seconds_training=3.0, seconds_recording=1.0, seconds_fitting=8.0, seconds_jumping=4.0,
              seconds_evaluating=1.0, final_test_loss_median=0.75, variant="weights + optimizer state")
    if older:
        return [dataclasses.replace(r, variant=None, final_test_loss_median=None) for r in (alone, w)]
    return [st, alone, w]   # any order: the table orders by variant


def test_cycles_table_shows_every_variant_in_order():
    table = ch.cycles_table(_cycle_rows())
    assert [r["what a jump carries"] for r in table] == ["optimizer alone", "weights", "weights + optimizer state"]
    assert all(list(r) == list(ch.CYCLE_HEADS) for r in table)
    alone, w, st = table
    assert (alone["jumps kept of tried"], alone["steps to target"], alone["final test loss (nats)"]) == \
        ("no jumps", "300", "0.5")
    assert (w["jumps kept of tried"], w["time to target (s)"], w["fitting (s)"], w["jumping (s)"]) == \
        ("1 of 6", "3", "1.25", "0.25")
    assert (st["time to target (s)"], st["steps to target"], st["final test loss (nats)"]) == \
        ("not reached", "not reached", "0.75")


def test_cycles_table_of_an_older_file_names_what_it_lacks():
    old = _cycle_rows(older=True)
    assert list(ch.cycles_by_variant(old)) == ["optimizer alone", "weights"]
    table = ch.cycles_table(old)
    assert table[1]["jumps kept of tried"] == "1 of 6" and table[1]["final test loss (nats)"] == ch.NOT_SAVED
    assert table[2]["jumps kept of tried"] == ch.NOT_SAVED
    assert ch.cycles_table(old, ("weights",))[2]["jumps kept of tried"].startswith("not run at this profile")
    assert ch.verdict_cycles(old).endswith("as well: " + ch.NOT_SAVED + ".")
    assert ch.summary({"cycles": [dataclasses.asdict(r) for r in old]})["cycles: seconds to target, alone / cycles"] \
        == "2 / 3"


@pytest.mark.parametrize("state_seconds, faster", [(1.79, True), (1.8, False), (None, False)])
def test_verdict_cycles_reads_the_state_cycles(state_seconds, faster):
    CY = [dataclasses.replace(r, seconds_to_target_median=state_seconds) if r.variant == "weights + optimizer state"
          else r for r in _cycle_rows()]
    text = ch.verdict_cycles(CY)
    assert "the cycles in 3 s (1 of 6 jumps kept" in text and "Koopman cycles were not faster" in text
    state = text.split("**Verdict")[1]
    assert "0 of 6 jumps kept; fitting 8 s and jumping 4 s" in state and "final median test loss 0.75" in state
    assert ("**faster (by more than 10 %) than the optimizer alone**" in state) is faster
    assert ("did not reach the target" in state) is (state_seconds is None)


def test_state_cycles_note_reads_the_costs_from_the_saved_run():
    cfg = ch.config_for("beyond", "ci")
    assert ch.state_block_size(cfg) == (3 * 157, 469)   # layer 1's quasi-node blocks of 785 / 5 inputs
    assert "weights" in cfg.cyc_variants and "weights + optimizer state" not in cfg.cyc_variants
    saved = {"cycles": [dataclasses.asdict(r) for r in _cycle_rows()]}
    note = ch.state_cycles_note(cfg, saved, "paper")
    assert "blocks of up to 471 observables" in note and "cycles of 469 snapshots, more observables" in note
    # all costs per network: 3 + 1 + 8 + 4 + 1 = 17 against 3 + 0.5 + 1.25 + 0.25 + 1 = 6
    assert "took 17 s per network in all (fitting 8 s, jumping 4 s) against 6 s" in note
    older = {"cycles": [dataclasses.asdict(r) for r in _cycle_rows(older=True)]}
    assert ch.state_cycles_note(cfg, older, "paper").endswith(f"paper-profile run: {ch.NOT_SAVED}.")
    assert ch.state_cycles_note(cfg, None, "paper").endswith(ch.NOT_SAVED + ".")


def _curve(loss):
    return {"seconds_per_network": [0.0, 1.0], "loss_median": loss}


@pytest.mark.parametrize("with_state", [True, False])
def test_cycles_figure_draws_the_state_curve_when_present(with_state):
    cc = {"alone": _curve([1.0, 0.5]), "cycles": _curve([1.0, 0.4]), "target_median": 0.45}
    if with_state:
        cc["cycles_state"] = _curve([1.0, 0.3])
    fig = ch.cycles_figure({"cycle_curves": cc})
    ax = fig.axes[0]
    lines = {l.get_label(): list(l.get_ydata()) for l in ax.get_lines()}
    assert lines["cycles: jumps of the weights"] == [1.0, 0.4]
    assert lines.get("cycles: jumps of the weights + Adadelta's state") == ([1.0, 0.3] if with_state else None)
    assert ("cycles: jumps of the weights + Adadelta's state" in [t.get_text() for t in ax.get_legend().get_texts()]) \
        is with_state
    plt.close(fig)


def _obs(name: str, teq: float, **kw):
    return make("observables", experiment="de-solver", observables=name, teq_over_t_median=teq, **kw)


@pytest.mark.parametrize("teq, helps", [(0.95, False), (1.12, True)])
def test_state_observable_sentence(teq, helps):
    O = [_obs("identity", 1.01, features_per_block="11", success_rate=1.0, fit_seconds_per_network=0.5,
              weight_error_median=0.1, max_spectral_radius_median=1.0),
         _obs(ch.STATE, teq, features_per_block="33", success_rate=0.75, fit_seconds_per_network=2.0,
              weight_error_median=0.2, max_spectral_radius_median=1.5)]
    text = ch.state_observable_sentence(O)
    assert "(33 features per block against 11)" in text and f"from 1.01 to {teq:.3g}" in text
    assert "success rate from 100 % to 75 %" in text and "from 0.1 to 0.2" in text and "at 4x the identity" in text
    assert ("the state improves on the identity" in text) is helps
    assert ("stops short of the continued optimizer" in text) is (teq < 1)
    if teq < 1:
        assert "in 95 % of them" in text
    assert text.endswith("No MNIST fit in these results carries the state.")
    assert ch.state_observable_sentence(O[:1]).endswith(ch.NOT_SAVED + ".")


# -- tables, summary and figures of a tiny run -----------------------------------------------
def test_tables_carry_the_results_fields(tiny):
    B = ch.rows(tiny, "baselines")
    tables = ch.baselines_tables(B)
    assert [c for c, _ in tables] == [f"**{e}**, {ch.pick(B, experiment=e)[0].setting}:" for e in ("de-solver", "mnist")]
    de_rows = tables[0][1]
    assert list(de_rows[0]) == list(ch.BASELINE_COLUMNS)
    assert [r["loss_median"] for r in de_rows] == [r["loss_median"] for r in tiny["baselines"]
                                                   if r["experiment"] == "de-solver"]
    assert ch.columns(ch.rows(tiny, "cycles"), ["seconds_fitting"]) == [
        {"seconds_fitting": r["seconds_fitting"]} for r in tiny["cycles"]]
    table = ch.cycles_table_of(tiny)   # the ci profile runs the weights-only cycles
    assert [r["fitting (s)"] for r in table[:2]] == [ch.fmt(r["seconds_fitting"]) for r in tiny["cycles"]]
    assert table[2]["jumps kept of tried"].startswith("not run at this profile")
    state = ch.one(ch.rows(tiny, "observables"), observables=ch.STATE)
    assert f"{state.features_per_block} features per block" in ch.state_observable_sentence(ch.rows(tiny, "observables"))


def test_summary_reads_the_results(tiny):
    s = ch.summary(tiny)
    k = next(r for r in tiny["baselines"] if r["experiment"] == "de-solver" and r["comparison"] == "equal steps"
             and r["method"] == DE_PAPER_FIT)
    assert s["DE solver T_eq/T, Koopman (pinv)"] == k["teq_over_t_median"]
    names = {r["network"] for r in tiny["networks"]}
    assert s["other networks: Koopman beats the straight line"].endswith(f"of {len(names)}")
    methods = {r["method"] for r in tiny["stabilisation"]}
    assert s["stabilisations that never diverged"].endswith(f"of {len(methods)}")
    runs = ch.Runs(tiny, None, "ci", "paper")
    table = ch.summary_table(runs, None)
    verdicts = {r["quantity"]: r["verdict (ci)"] for r in table}
    assert all(verdicts[k].startswith("front page: not measured; chapter reading: ") for k in ch.SCORECARD_CLAIMS)
    assert [r["quantity"] for r in table] == list(s) and all(r["ours (paper profile)"] == "not run yet" for r in table)
    assert runs.verdicts(ch.verdict_cycles, "cycles")[1] == "*Full-scale run (paper profile):* not run yet."
    prec = ch.precision_rows(tiny, "x")
    assert [r["teq_over_t_median"] for r in prec] == [r.teq_over_t_median for r in ch.precision_rows_of(tiny).values()]


def test_figures_have_their_artists_and_labels(tiny):
    fig = ch.baselines_figure(tiny)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "steps after $t_2$" and ax.get_yscale() == "log"
    labels = [l.get_label() for l in ax.get_lines()]
    assert labels[:2] == ["Adadelta (continued)", "Koopman (pinv)"]
    assert "linear extrapolation (whole window)" in labels
    assert "Koopman (pinv) after T steps" in [l.get_label() for l in fig.axes[1].get_lines()]
    H = ch.rows(tiny, "window_heatmap")
    fig2 = ch.window_heatmap_figure(H)
    assert fig2.axes[0].get_xlabel() == "window start $t_1$ (step)" and fig2.axes[0].images
    fig3 = ch.networks_figure(ch.rows(tiny, "networks"), (1, 1), 1)
    assert len(fig3.axes[0].patches) == len(tiny["networks"])
    fig4 = ch.cycles_figure(tiny)
    assert [l.get_label() for l in fig4.axes[0].get_lines()][:2] == ["Adadelta alone", "cycles: jumps of the weights"]
    fig5 = ch.stabilisation_figure(tiny)
    assert fig5.axes[1].get_ylabel() == "test accuracy (diverged drawn at 0)"
    fig6 = ch.observables_figure(ch.rows(tiny, "observables"))
    assert len(fig6.axes[0].collections) == len(tiny["observables"])
    for f in (fig, fig2, fig3, fig4, fig5, fig6, ch.window_scores_figure(tiny)):
        plt.close(f)
