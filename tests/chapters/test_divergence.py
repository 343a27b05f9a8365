"""The divergence chapter's tables, verdicts and figures (koopman_repro.chapters.divergence), checked
for their values on the tiny MNIST run of the MNIST chapter's tests and on small results built here."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from koopman_repro.chapters import divergence as dv
from koopman_repro.report import fmt
from koopman_repro.scorecard import LOSS_DIVERGED, LOSS_KEPT_UP, RULES, VERDICTS, claim_row, divergence_parts

from .test_mnist import TINY

F = LOSS_KEPT_UP.value       # the Koopman / Adadelta loss factor of both thresholds
EPS = 1e-9


@pytest.fixture(scope="module")
def res(tiny_results):
    return tiny_results("mnist", **TINY)


def rep_row(setting="replication", partition="node", T=2, koopman=0.4, optimizer=0.2, t2=0.3, growth=None, **kw):
    """A ``replication`` row with every required field."""
    row = dict(setting=setting, fit="replication", partition=partition, dtype="float32", cutoff="jax",
               window_epochs="4-5", normalize="0.5/0.5", steplr=False, T_epochs=T, n_members=3, test_loss_t2=t2,
               final_test_loss_optimizer=optimizer, final_test_acc_optimizer=0.9, max_spectral_radius=1.001,
               final_test_loss_koopman=koopman, final_test_acc_koopman=0.8, koopman_loss_growth_median=growth)
    return {**row, **kw}


def ab_row(setting, factor, ratio, direction="from_replication", radius=1.0):
    """An ``ablation`` row with every required field and the Koopman / Adadelta loss ratio ``ratio``."""
    return dict(direction=direction, factor=factor, setting=setting, fit="replication", normalize="0.5/0.5",
                steplr=False, window_epochs="4-5", partition="node", dtype="float32", cutoff="jax", rtol_layer1=1e-3,
                n_members=1, max_spectral_radius=radius, n_eigs_outside_unit_circle=0.0, test_loss_t2=0.3,
                optimizer_loss_T1=0.2, optimizer_acc_T1=0.9, optimizer_loss_T2=0.2, optimizer_acc_T2=0.9,
                koopman_loss_T2=None if ratio is None else 0.2 * ratio, koopman_over_optimizer_T2=ratio)


def small(replication=(), ablation=(), directions=("from_replication",)) -> dict:
    return {"experiment": "mnist", "provenance": {"config": {"ablation_directions": list(directions)}},
            "replication": list(replication), "ablation": list(ablation)}


# -- the replication, reproduced ---------------------------------------------------------------
def test_replication_rows_are_the_results_rows(res):
    rows = dv.replication_rows(res)
    assert len(rows) == len(res["replication"])
    for out, r in zip(rows, res["replication"]):
        assert (out["setting"], out["partition"], out["networks"], out["T (epochs)"]) == \
            (r["setting"], r["partition"], r["n_members"], r["T_epochs"])
        assert out["Koopman growth"] == fmt(divergence_parts(r)[2], 3)
        assert out["max |λ|"] == fmt(r["max_spectral_radius"], 6)
        assert out["Koopman loss (IQR)"].startswith(fmt(r["final_test_loss_koopman"], 3))


def test_median_iqr_shows_quartiles_only_where_recorded():
    from koopman_repro.rows.mnist import MnistReplicationRow
    with_q = MnistReplicationRow.from_dict(rep_row(koopman_loss_q25=0.35, koopman_loss_q75=0.5))
    assert dv.median_iqr(with_q, "koopman") == "0.4 (0.35-0.5)"
    assert dv.median_iqr(with_q, "optimizer") == "0.2"


def test_replication_text_reads_both_partitions_and_the_layerwise_ranks(res):
    text = dv.replication_text(res)
    node1 = next(r for r in res["replication"] if r["setting"] == "replication" and r["partition"] == "node"
                 and r["T_epochs"] == 1)
    layer2 = next(r for r in res["replication"] if r["setting"] == "replication" and r["partition"] == "layer"
                  and r["T_epochs"] == 2)
    assert text.startswith(f"Full node: test loss {fmt(node1['test_loss_t2'], 3)} at $t_2$")
    assert f"and {fmt(layer2['final_test_loss_koopman'], 3)} (largest modulus" in text
    assert str([x for r in res["layerwise_ranks"] for x in r]) in text
    # tiny run: 10 steps per epoch, window epochs 4-5: rank at most 19 (snapshot pairs), below every layer's size
    assert "of their 19, 19, 19 and 19 possible" in text


def test_two_parts_states_each_part_at_both_sides_of_its_threshold():
    from koopman_repro.rows.mnist import MnistReplicationRow
    grows_above = MnistReplicationRow.from_dict(rep_row(koopman=0.4, optimizer=0.2, growth=1 + EPS))
    text = dv.two_parts(grows_above, "x")
    assert "(1) the Koopman loss grows" in text and "ends above" in text and "**diverges**" in text
    flat_below = MnistReplicationRow.from_dict(rep_row(koopman=0.2, optimizer=0.2, growth=1.0))   # equal: not above
    text = dv.two_parts(flat_below, "x")
    assert "does not grow" in text and "ends below" in text and "**does not diverge**" in text
    assert dv.two_part_verdict(small([rep_row(growth=1 + EPS)]), dv.REP_NODE).startswith("chapter reading: both")
    assert dv.two_part_verdict(small([rep_row(growth=1.0)]), dv.REP_NODE).startswith("chapter reading: one part")
    assert dv.two_part_verdict(small([rep_row(koopman=0.1, growth=0.5)]), dv.REP_NODE).startswith(
        "chapter reading: neither")


def test_two_part_text_has_the_rule_and_a_line_per_replication_row(res):
    text = dv.two_part_text(res)
    assert text.startswith(f"Rule: {RULES['divergence'].text}.")
    assert text.count("\n- ") == sum(r["setting"] == "replication" for r in res["replication"])


def test_replication_figure_plots_the_medians_of_the_curves(res):
    fig = dv.replication_figure(res, "ci")
    loss_ax, acc_ax = fig.axes
    cu = res["ablation_curves"]["replication settings, all inits"]
    lines = {ln.get_label(): ln for ln in loss_ax.get_lines()}
    np.testing.assert_allclose(lines["Koopman, full node (785)"].get_ydata(),
                               np.nanmedian(np.array(cu["koopman_loss"], dtype=float), axis=0))
    np.testing.assert_allclose(lines["Adadelta"].get_ydata(), np.nanmedian(np.array(cu["optimizer_loss"], float), 0))
    assert "Koopman, layer-wise" in lines and "Koopman, full node, default stabilised" in lines
    assert "Koopman, full node, library default fit" not in lines          # not among the tiny run's fits
    assert loss_ax.get_ylabel() == "test loss (NLL per image)" and acc_ax.get_ylabel() == "test accuracy (%)"
    assert fig._suptitle.get_text() == "Median over 2 networks, profile ci"


def test_eigenvalue_figure_has_a_panel_per_setting(res):
    fig = dv.eigenvalue_figure(res)
    assert [ax.get_title() for ax in fig.axes] == [t for _, t in dv.EIGENVALUE_PANELS]
    lam = dv.eigenvalues(res["ablation_eigenvalues"]["paper settings"])
    n_out = int((np.abs(lam) > 1).sum())
    r, steps = float(np.abs(lam).max()), 2 * res["steps_per_epoch"]
    assert fig.axes[2].get_legend().get_texts()[1].get_text() == \
        f"|λ| > 1: {n_out}; |λ|max = {r:.5f}, |λ|max^T = {fmt(r ** steps, 3)}"


# -- one factor at a time ----------------------------------------------------------------------
def test_ablation_rows_round_the_radius_and_keep_the_rest(res):
    rows = dv.ablation_rows(res)
    assert [r["setting"] for r in rows] == [r["setting"] for r in res["ablation"]]
    assert rows[0]["max_spectral_radius"] == fmt(res["ablation"][0]["max_spectral_radius"], 6)
    assert rows[0]["koopman_loss_T2"] == res["ablation"][0]["koopman_loss_T2"]
    S = res["steps_per_epoch"]
    for row, raw in zip(rows, res["ablation"]):        # growth factors: the radius to the power T, in steps
        assert row["growth_T1"] == pytest.approx(raw["max_spectral_radius"] ** S)
        assert row["growth_T2"] == pytest.approx(raw["max_spectral_radius"] ** (2 * S))
    assert {"growth_T1", "growth_T2"} <= set(dv.ABLATION_COLUMNS)
    for row, raw in zip(dv.replication_rows(res), res["replication"]):
        assert row["growth over T"] == pytest.approx(raw["max_spectral_radius"] ** (raw["T_epochs"] * S))


def test_growth_text_reads_the_base_rows_and_flags_a_misleading_count():
    S = 100
    kept = dict(ab_row("paper settings, cutoff", "cutoff", F / 2, radius=1.0001), n_eigs_outside_unit_circle=80.0)
    lost = dict(ab_row("replication settings", "none (base)", None, radius=1.01), n_eigs_outside_unit_circle=40.0)
    text = dv.growth_text({**small(ablation=[kept, lost]), "steps_per_epoch": S})
    base = next(x for x in text.splitlines() if x.startswith("- **replication settings**"))
    assert f"= {fmt(1.01 ** S, 3)} over one epoch ($T$ = {S}) and {fmt(1.01 ** (2 * S), 3)} over two" in base
    assert "every network stopped by the guard" in base
    assert "paper settings, cutoff" not in text.split("\n\n")[0]       # only the base rows are listed
    assert (f"**paper settings, cutoff** kept up with 80 eigenvalues outside the circle, whose largest grows by "
            f"{fmt(1.0001 ** (2 * S), 3)} over two epochs; **replication settings** diverged with only 40, whose "
            f"largest grows by {fmt(1.01 ** (2 * S), 3)}.") in text
    kept["n_eigs_outside_unit_circle"] = 20.0        # fewer outside than the diverged one: the count agrees
    assert "misleads" not in dv.growth_text({**small(ablation=[kept, lost]), "steps_per_epoch": S})


def test_loss_ratio_thresholds_at_both_sides():
    assert dv.kept_up(F - EPS) and not dv.kept_up(F) and not dv.kept_up(None)
    assert dv.diverged(F + EPS) and not dv.diverged(F) and dv.diverged(None) and dv.diverged(float("nan"))
    assert LOSS_DIVERGED.value == F


def test_switch_lines_mark_the_switches_that_change_the_outcome():
    ab = small(ablation=[ab_row("base", "none (base)", F + 1),
                         ab_row("base, StepLR -> paper", "StepLR", F - EPS),
                         ab_row("base, fit dtype -> paper", "fit dtype", F + 2),
                         ab_row("base, pinv cutoff -> paper", "pinv cutoff", None)])
    text = dv.direction_texts(ab)[0]
    assert text.startswith("**Starting from the replication's settings** (Koopman/Adadelta")
    lines = text.split("\n\n")[1].splitlines()
    assert lines[0] == f"- base, StepLR -> paper: loss ratio after two epochs {fmt(F + 1)} -> {fmt(F - EPS)} " \
        "(**changes the outcome**)"
    assert not lines[1].endswith("(**changes the outcome**)") and lines[2].endswith("-> n/a")
    assert dv.direction_texts(ab, saved=True)[0].startswith("**Profile `paper`, starting from the replication's")
    assert dv.which_switch(ab) == (["StepLR"], ["fit dtype", "pinv cutoff"])


def test_ablation_figure_colours_the_diverged_settings(res):
    fig = dv.ablation_figure(res, "ci")
    ratio_ax, radius_ax = fig.axes
    bars = ratio_ax.patches
    assert len(bars) == len(res["ablation"])
    for bar, r in zip(bars, res["ablation"]):
        v = r["koopman_over_optimizer_T2"]
        red = v is None or LOSS_DIVERGED.holds(v)
        assert bar.get_facecolor() == to_rgba("tab:red" if red else "tab:blue")
        assert bar.get_width() == pytest.approx(np.log10(v) if v is not None else 6)
    assert [t.get_text() for t in ratio_ax.get_yticklabels()] == [r["setting"] for r in res["ablation"]]
    assert "log10(max |λ| - 1)" in radius_ax.get_xlabel()


# -- the cutoff, the conclusions, the claims ------------------------------------------------------
def test_sweep_rows_and_figure_are_the_two_epoch_sweep(res):
    sw = [r for r in res["cutoff_sweep"] if r["T_epochs"] == 2]
    rows = dv.sweep_rows(res)
    assert [r["Koopman loss"] for r in rows] == [r["koopman_loss_median"] for r in sw]
    assert [r["clipped"] for r in rows] == ["yes" if r["stabilised"] else "no" for r in sw]
    ax = dv.sweep_figure(res).axes[0]
    adadelta = next(ln for ln in ax.get_lines() if ln.get_label() == "Adadelta, 2 epochs")
    assert adadelta.get_ydata()[0] == sw[0]["optimizer_loss_median"]
    assert dv.sweep_note(res) == f"Profile `ci`, {sw[0]['n_inits']} networks."


def test_grows_and_close_after_one_epoch_at_both_sides():
    at = lambda ko: small([rep_row(*dv.PAPER_FIT, koopman=ko, optimizer=0.2), rep_row(T=1, koopman=ko)])  # noqa: E731
    assert dv.grows(at(0.2 * F + EPS), dv.PAPER_FIT) and not dv.grows(at(0.2 * F), dv.PAPER_FIT)
    assert dv.grows(at(None), dv.PAPER_FIT)                                    # every network stopped
    assert dv.close_after_one_epoch(at(0.2 * F - EPS)) and not dv.close_after_one_epoch(at(0.2 * F))
    assert not dv.close_after_one_epoch(at(None))


def test_claim_rows_take_verdicts_from_the_saved_run(res):
    rows = dv.claim_rows(res, None)
    assert [r["claim"] for r in rows] == [c[0] for c in dv.CLAIMS]
    assert all(r["ours (paper profile)"] == "not run yet" for r in rows)
    node1 = next(r for r in res["replication"] if r["setting"] == "replication" and r["partition"] == "node"
                 and r["T_epochs"] == 1)
    assert rows[0]["ours (ci)"] == f"{fmt(node1['final_test_loss_koopman'], 3)} (Adadelta " \
        f"{fmt(node1['final_test_loss_optimizer'], 3)})"
    # the tiny run has no default fit under the replication's settings
    assert rows[4]["ours (ci)"] == "n/a" and rows[4]["verdict"] == "not measured"
    assert [r["verdict"] for r in rows] == dv.claim_verdicts(res)
    front = claim_row("replication-divergence", {"mnist": res}, {})
    assert rows[1]["verdict"].startswith(front["verdict"] + " (share of the two parts that hold, 95% interval over "
                                         f"{front['n']} networks: {float(front['ci_low']):.2f}-") and \
        rows[1]["verdict"].endswith(dv.two_part_verdict(res, dv.REP_NODE))
    assert dv.claim_note(None).startswith("Verdicts use the ci profile;")


def test_fits_text_names_the_cause_at_both_sides():
    def results(rep_default_ko, paper_fit_ko, paper_default_ko):
        return small([rep_row(growth=1.2), rep_row(setting="replication, default fit", koopman=rep_default_ko,
                                                   growth=1.2 if rep_default_ko > 0.2 else 0.9),
                      rep_row(*dv.PAPER_FIT, koopman=paper_fit_ko),
                      rep_row(*dv.PAPER_DEFAULT, koopman=paper_default_ko)])
    cutoff = dv.fits_text(results(0.1, None, 0.2), "ci")
    assert "The principled fit removes it" in cutoff and "Here the cutoff is the whole difference" in cutoff
    assert "With the paper's fit the loss after two Koopman epochs is n/a against Adadelta's 0.2" in cutoff
    dynamics = dv.fits_text(results(0.4, 0.2, 0.2), "paper")
    assert "its cause is not the cutoff" in dynamics and "The two fits do not differ in kind here." in dynamics
    assert "(Profile `paper`;" in dynamics


def test_conclusion_and_which_switch_texts_read_the_results(res):
    text = dv.conclusion_text(res)
    node2 = next(r for r in res["replication"] if r["setting"] == "replication" and r["partition"] == "node"
                 and r["T_epochs"] == 2)
    g, a, growth = divergence_parts(node2)
    assert f"grows {fmt(growth, 3)}x {'yes' if g else 'no'}" in text and "chapter reading: " in text
    base = next(r for r in res["ablation"] if r["setting"] == "replication settings")
    assert f"base ratio {fmt(base['koopman_over_optimizer_T2'])}" in dv.which_switch_text(res, "ci")


def test_conclusion_takes_the_front_pages_three_way_verdicts_and_null_readings(res):
    """Each replication claim in the conclusion carries the front page's verdict (from the saved run where
    given) and its reading against the optimizer against itself, never a verdict of the chapter's own."""
    for saved in (None, res):
        text = dv.conclusion_text(res, saved)
        for key, what in (("replication-divergence", "node-wise"), ("replication-divergence-layer", "layer-wise")):
            row = claim_row(key, {"mnist": res}, {"mnist": saved} if saved else {})
            assert row["verdict"] in VERDICTS
            assert f"{what} operators after two epochs: the front page's verdict is **{row['verdict']}**" in text
            assert row["null_model"][1:] in text
        assert "reproduced** under its settings by the two-part rule" not in text


# -- the optimizer against itself ---------------------------------------------------------------
def replication_null(res) -> list[dict]:
    return sorted((r for r in res["null_model"] if r["setting"] == "replication settings"), key=lambda r: r["T_epochs"])


def test_null_figure_puts_each_replication_network_at_its_koopman_and_its_own_loss(res):
    want = replication_null(res)
    assert want                                   # the tiny run continues the replication's networks
    fig = dv.null_figure(res)
    assert len(fig.axes) == len(want)
    S, curves = res["steps_per_epoch"], res["ablation_curves"]
    for ax, row in zip(fig.axes, want):
        assert "NLL per image" in ax.get_xlabel() and "NLL per image" in ax.get_ylabel()
        assert "against itself" in ax.get_xlabel() and "Koopman" in ax.get_ylabel()
        drawn = [(c.get_label(), np.asarray(c.get_offsets(), dtype=float)) for c in ax.collections]
        expected = [(label, name) for name, _, _, label in dv.NULL_CURVES if name in curves]
        assert [lab.split(" (")[0] for lab, _ in drawn] == [lab for lab, _ in expected]
        for (_, xy), (_, name) in zip(drawn, expected):
            c = curves[name]
            loss = np.array(c["koopman_loss"], dtype=float)[:, list(c["steps"]).index(row["T_epochs"] * S)]
            np.testing.assert_allclose(xy[:, 0], row["null_loss"])
            np.testing.assert_allclose(xy[:, 1], [loss[i] for i in row["networks"]])
        diagonal = next(line for line in ax.lines if "diagonal" in line.get_label())
        np.testing.assert_allclose(diagonal.get_xdata(), diagonal.get_ydata())
        assert ax.get_xlim() == ax.get_ylim()         # the diagonal at 45 degrees
    assert fig.axes[0].get_legend() is not None
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("Koopman, full node, replication's own fit") for t in labels)
    assert any(t.startswith("Koopman, layer-wise") for t in labels) and any("diagonal" in t for t in labels)


def test_null_figure_goes_logarithmic_only_when_a_koopman_loss_blows_up(res):
    blown = copy.deepcopy(res)
    c, S = blown["ablation_curves"]["replication settings, layer-wise"], blown["steps_per_epoch"]
    T = replication_null(res)[-1]["T_epochs"]
    j = list(c["steps"]).index(T * S)
    calm, null = copy.deepcopy(blown), replication_null(res)[-1]["null_loss"]
    for name, _, _, _ in dv.NULL_CURVES:                # every Koopman loss at the null branch's own level
        for i, r in enumerate(calm["ablation_curves"].get(name, {}).get("koopman_loss", [])):
            r[j] = null[i % len(null)]
    c["koopman_loss"][0][j] = 100 * max(null)
    assert dv.null_figure(blown).axes[-1].get_yscale() == "log"
    assert dv.null_figure(calm).axes[-1].get_yscale() == "linear"


def test_the_median_differences_in_the_note_are_the_tables_paired_medians(res):
    note = dv.null_note(res)
    for row in replication_null(res):
        own = row["koopman_minus_null_loss_median"]["replication settings"]     # the own fit, as the experiment names it
        layer = row["koopman_minus_null_loss_median"]["replication settings, layer-wise"]
        assert f"replication's own fit {fmt(own, 3)}" in note and f"layer-wise {fmt(layer, 3)}" in note


def test_a_run_without_the_optimizer_against_itself_says_so():
    older = small([rep_row()])
    assert dv.null_figure(older) is None
    assert dv.null_note(older) == f"The optimizer against itself on the replication's networks: {dv.NOT_SAVED}."
    from koopman_repro.report import paper_results
    saved = paper_results("mnist")                    # the committed run predates the branch
    if saved is not None and not any(r.get("setting") == "replication settings" for r in saved.get("null_model") or []):
        assert dv.null_figure(saved) is None and dv.NOT_SAVED in dv.null_note(saved)
