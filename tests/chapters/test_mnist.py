"""The MNIST chapter's tables, verdicts and figures (koopman_repro.chapters.mnist), checked for their
values on a tiny MNIST run written by the test session and on small results built here."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from koopman_repro.chapters import mnist as ch
from koopman_repro.report import fmt
from koopman_repro.rows.mnist import MnistTableRow
from koopman_repro.scorecard import KEEPS_UP, claim_row

#: a tiny MNIST run (about a minute on one core): small layers, 640 training images (10 steps per
#: epoch), two networks, one ablation network in both directions, the layer-wise operators
TINY = dict(sizes=(784, 6, 6, 6, 10), train_subset=640, test_subset=200, eval_every=5,
            n_inits=2, group_size=1, n_ablation_inits=1, n_replication_inits=2, timing_repeats=1,
            replication_fits=("paper", "default-stabilised"),
            ablation_directions=("from_replication", "from_paper"))


@pytest.fixture(scope="module")
def res(tiny_results):
    return tiny_results("mnist", **TINY)


def table_row(**fields) -> dict:
    """A Table 2 row with every declared field (the given ones, the rest filled in)."""
    row = dict(variant="v", fit="paper", cutoff="paper", n_inits=4, T_epochs=2, success_rate=1.0,
               teq_over_t_median=1.0, speedup_paper_style_median_all=1.0, speedup_fast_loop_median_all=1.0,
               koopman_seconds=1.0, censored_fraction=0.0, optimizer_loss_T_median=0.2, test_loss_t2_median=0.3,
               optimizer_acc_T_median=0.9, max_spectral_radius_median=0.99, guard_stops=0,
               speedup_paper_style_median=2.0, speedup_fast_loop_median=1.0, koopman_loss_T_median=0.2,
               koopman_acc_T_median=0.9)
    return {**row, **fields}


def small_results(table: list[dict], fits=("paper",)) -> dict:
    return {"experiment": "mnist", "provenance": {"config": {"fits": list(fits), "T_epochs": 2}}, "table": table}


# -- shared helpers ------------------------------------------------------------------------------
def test_median_over_inits_ignores_non_finite_values_and_is_nan_where_no_init_has_one():
    y = [[1.0, None, np.inf, 5.0], [3.0, 2.0, None, 7.0], [8.0, 4.0, None, 6.0]]
    out = ch.median_over_inits(y)
    assert out[0] == 3.0 and out[1] == 3.0 and np.isnan(out[2]) and out[3] == 6.0
    assert ch.median_over_inits([1.0, 2.0]).tolist() == [1.0, 2.0]          # one init: its own values


def test_spectrum_figure_draws_every_eigenvalue_inside_and_outside_the_circle(res):
    fig = ch.spectrum_figure(res)
    fits = [n for n in res["provenance"]["config"]["fits"] if n in res["eigenvalues_init0"]]
    assert fits and len(fits) < len(res["provenance"]["config"]["fits"])     # the strided fits save no spectrum
    assert len(fig.axes) == len(fits)
    for ax, name in zip(fig.axes, fits):
        lam = ch.eigenvalues(res["eigenvalues_init0"][name])
        inside, outside = ax.collections
        n_out = int((np.abs(lam) > 1).sum())
        assert len(inside.get_offsets()) == lam.size - n_out and len(outside.get_offsets()) == n_out
        assert ax.get_xlabel() == "Re λ" and ax.get_ylabel() == "Im λ"
        assert f"{lam.size} eigenvalues" in ax.get_title() and ch.FIT_LABEL[name] in ax.get_title()
        r, steps = float(np.abs(lam).max()), res["provenance"]["config"]["T_epochs"] * res["steps_per_epoch"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == \
            ["|λ| ≤ 1", f"|λ| > 1: {n_out}; |λ|max = {r:.5f}, |λ|max^T = {fmt(r ** steps, 3)}"]


# -- the growth factor |λ|_max^T ------------------------------------------------------------------
def test_growth_is_the_spectral_radius_to_the_power_of_the_jump():
    assert ch.growth(1.004, 1876) == pytest.approx(1.004 ** 1876, rel=1e-12)
    assert ch.growth(0.5, 3) == 0.125 and ch.growth(1.0, 10 ** 6) == 1.0
    assert ch.growth(None, 10) is None and ch.growth(float("nan"), 10) is None


def test_growth_rows_raise_each_median_radius_to_its_horizon_in_steps(res):
    S = res["steps_per_epoch"]
    out = ch.growth_rows(res)
    table = {(r["fit"], r["T_epochs"]): r for r in res["table"]}
    assert len(out) == len(table)
    for row in out:
        fit = next(n for n, label in ch.FIT_LABEL.items() if label == row["fit"])
        want = table[(fit, row["T (epochs)"])]
        assert row["T (steps)"] == row["T (epochs)"] * S and row["steps predicted"] == want["horizon_steps"]
        assert row["stride s (steps)"] == want["stride"]
        assert row["growth over T"] == pytest.approx(want["max_spectral_radius_median"] ** (row["T (epochs)"] * S))
        assert row["median largest modulus"] == fmt(want["max_spectral_radius_median"], 6)


def test_growth_text_states_the_growth_and_flags_a_count_that_disagrees(res):
    import copy
    S, T = res["steps_per_epoch"], res["provenance"]["config"]["T_epochs"]
    text = ch.growth_text(res)
    for name in res["provenance"]["config"]["fits"]:
        r = next(x for x in res["table"] if x["fit"] == name and x["T_epochs"] == T)
        line = next(x for x in text.splitlines() if x.startswith(f"- **{ch.FIT_LABEL[name]}**"))
        assert f"= {fmt(r['max_spectral_radius_median'] ** (T * S), 3)};" in line
    rigged = copy.deepcopy(res)                  # the paper fit: more blocks outside, a smaller radius
    for m in rigged["members"]:
        m["fits"]["paper"]["blocks_outside_unit_circle"] = [9] * len(m["fits"]["paper"]["blocks_outside_unit_circle"])
        m["fits"]["default"]["blocks_outside_unit_circle"] = [1] * len(m["fits"]["default"]["blocks_outside_unit_circle"])
        for name in set(res["provenance"]["config"]["fits"]) - {"paper", "default"}:    # the others: none outside
            m["fits"][name]["blocks_outside_unit_circle"] = [0] * len(m["fits"][name]["blocks_outside_unit_circle"])
    for x in rigged["table"]:
        x["max_spectral_radius_median"] = {"paper": 1.001, "default": 1.01}.get(x["fit"], 1.0)
    flagged = ch.growth_text(rigged)
    assert "The count and the growth factor disagree: the **paper's fit**" in flagged
    assert f"({fmt(1.001 ** (T * S), 3)} against {fmt(1.01 ** (T * S), 3)})" in flagged
    for x in rigged["table"]:                   # the larger count now also grows faster: nothing to flag
        x["max_spectral_radius_median"] = {"paper": 1.01, "default": 1.001}.get(x["fit"], 1.0)
    assert "disagree" not in ch.growth_text(rigged)


# -- the experiment ----------------------------------------------------------------------------------
def test_loss_figure_plots_the_medians_of_the_curves(res):
    fig = ch.loss_figure(res, "ci")
    cfg, cur = res["provenance"]["config"], res["curves"]
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel() == "test loss (NLL per image)" and acc_ax.get_ylabel() == "test accuracy (%)"
    lines = {ln.get_label(): ln for ln in loss_ax.get_lines()}
    np.testing.assert_allclose(lines["Adadelta (median)"].get_ydata(),
                               np.nanmedian(np.array(cur["optimizer_loss"], dtype=float), axis=0))
    np.testing.assert_allclose(lines["Adadelta (median)"].get_xdata(), np.array(cur["steps"]) / res["steps_per_epoch"])
    for name in cfg["fits"]:
        stopped = sum(m["fits"][name]["rollout_stopped_at"] is not None for m in res["members"])
        median = lines[f"Koopman, {ch.FIT_LABEL[name]} (median; {stopped} stopped)"]
        np.testing.assert_allclose(median.get_ydata(), ch.median_over_inits(cur["koopman_loss"][name]))
    acc = {ln.get_label(): ln for ln in acc_ax.get_lines()}
    np.testing.assert_allclose(acc["Adadelta (median)"].get_ydata(),
                               100 * np.nanmedian(np.array(cur["optimizer_acc"], dtype=float), axis=0))
    # one thin line per init and fit, one median per fit, Adadelta, one grey line per horizon
    assert len(loss_ax.get_lines()) == 1 + len(cfg["fits"]) * (cfg["n_inits"] + 1) + len(cfg["horizons_epochs"])
    assert "2 inits (profile ci)" in fig._suptitle.get_text()


def test_fit_lines_and_member_rows_read_the_results(res):
    lines = ch.fit_lines(res)
    for line, name in zip(lines, res["provenance"]["config"]["fits"]):
        r = next(x for x in res["table"] if x["fit"] == name and x["T_epochs"] == 2)
        assert line.startswith(f"**{ch.FIT_LABEL[name]}**: {r['guard_stops']} of {r['n_inits']} networks")
        assert f"median test loss after 2 Koopman epochs {fmt(r['koopman_loss_T_median'], 4)}" in line
        assert f"(Adadelta {fmt(r['optimizer_loss_T_median'], 4)}, at $t_2$ {fmt(r['test_loss_t2_median'], 4)})" in line
    rows = ch.members_rows(res)
    assert [r["init"] for r in rows] == [m["init"] for m in res["members"]]
    for r, m in zip(rows, res["members"]):
        assert r["optimizer_loss_T2"] == m["optimizer_loss_T2"] and r["test_loss_t2"] == m["test_loss_t2"]
        for name in res["provenance"]["config"]["fits"]:
            assert r[f"{name}: loss"] == m["fits"][name]["T2"]["koopman_loss"]
            assert r[f"{name}: T_eq/T"] == m["fits"][name]["T2"]["teq_over_t"]


def test_trajectory_figure_shows_the_saved_paths(res):
    fig = ch.trajectory_figure(res)
    tr = res["trajectories"]
    assert [ax.get_title() for ax in fig.axes] == tr["labels"]
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_array_equal(lines["Adadelta"].get_ydata(), np.array(tr["optimizer"][0], dtype=float))
    np.testing.assert_array_equal(lines["Koopman, paper's fit"].get_ydata(),
                                  np.array(tr["koopman"]["paper"][0], dtype=float))
    assert lines["Koopman, paper's fit"].get_xdata()[0] == 0.0          # the Koopman path starts at t2
    assert ax.get_ylabel() == "parameter value" and ax.get_xlabel() == "epochs after $t_2$"


# -- cost --------------------------------------------------------------------------------------------
def test_cost_rows_and_text_are_the_timings(res):
    tm, cfg = res["timing"], res["provenance"]["config"]
    rows = ch.cost_rows(res)
    assert len(rows) == 3 + len(cfg["fits"]) * len(cfg["horizons_epochs"])
    assert rows[0]["seconds"] == tm["epoch_seconds_paper_style"] and rows[1]["seconds"] == tm["epoch_seconds_fast_loop"]
    assert rows[-1]["seconds"] == tm["koopman_seconds_cholesky"]
    assert rows[2]["seconds"] == tm["koopman_seconds"]["paper"]["T1"]
    tk = tm["koopman_seconds"]["default"]["T2"]
    assert ch.koopman_epochs(res) == tk / tm["epoch_seconds_paper_style"]
    text = ch.cost_text(res)
    assert f"costs {fmt(tk / tm['epoch_seconds_paper_style'], 2)} epochs" in text
    assert f"at most {fmt(2 * tm['epoch_seconds_paper_style'] / tk, 2)}x (paper style)" in text
    assert f"{tm['threads']} torch thread(s)" in ch.cost_note(res)


# -- where it stops: the range rule at both sides of its threshold --------------------------------------
def test_where_it_stops_takes_the_longest_horizon_that_keeps_up():
    eps = 1e-9
    table = [table_row(fit="paper", T_epochs=1, teq_over_t_median=KEEPS_UP),
             table_row(fit="paper", T_epochs=2, teq_over_t_median=KEEPS_UP + eps),
             table_row(fit="paper", T_epochs=5, teq_over_t_median=KEEPS_UP - eps),
             table_row(fit="default", T_epochs=1, teq_over_t_median=KEEPS_UP - eps),
             table_row(fit="default", T_epochs=2, teq_over_t_median=0.0)]
    out = ch.where_it_stops(small_results(table, fits=("paper", "default")))
    assert [(name, [r.T_epochs for r in rows], longest) for name, rows, longest in out] == \
        [("paper", [1, 2, 5], 2), ("default", [1, 2], 0)]
    assert all(isinstance(r, MnistTableRow) for r in out[0][1])


def test_where_it_stops_text_states_the_reach_the_blocks_and_the_stops(res):
    text = ch.where_it_stops_text(res, "ci")
    for name, rows, longest in ch.where_it_stops(res):
        fits = [m["fits"][name] for m in res["members"]]
        outside = np.median(np.array([f["blocks_outside_unit_circle"] for f in fits], dtype=float), axis=0)
        line = next(x for x in text.splitlines() if x.startswith(f"- **{ch.FIT_LABEL[name]}**"))
        reach = f"keeps up to **T = {longest} epoch" if longest else "keeps up at **none** of T = 1, 2, 5 epochs"
        assert reach in line and f"(median per network): {fmt(outside[0], 3)} of the" in line
        S = res["steps_per_epoch"]
        assert ", ".join(f"{fmt(x.max_spectral_radius_median ** (x.T_epochs * S), 3)} over {x.T_epochs}"
                         for x in rows) + " epochs" in line
        assert ("no network was stopped" in line) == all(f["stop_reason"] is None for f in fits)
    assert text.endswith(f"Rule: median $T_{{eq}}/T \\geq$ {KEEPS_UP}.")
    assert [r["median T_eq/T"] for r in ch.where_it_stops_rows(res)] == \
        [r["teq_over_t_median"] for r in res["table"]]


def test_cutoff_sweep_figure_draws_every_cutoff_and_marks_the_two_named_ones(res):
    fig = ch.cutoff_sweep_figure(res, "ci")
    teq_ax, success_ax = fig.axes
    cfg = res["provenance"]["config"]
    curves = [ln for ln in teq_ax.get_lines() if ln.get_label().startswith("T = ")]
    assert len(curves) == 2 * len(cfg["horizons_epochs"])
    line = next(ln for ln in curves if ln.get_label() == "T = 2 epochs, clipped to |λ| ≤ 1")
    rows = sorted((r for r in res["cutoff_sweep"] if r["T_epochs"] == 2 and r["stabilised"]),
                  key=lambda r: r["rtol_layer1"])
    np.testing.assert_array_equal(line.get_xdata(), [r["rtol_layer1"] for r in rows])
    np.testing.assert_array_equal(line.get_ydata(), [r["teq_over_t_median"] for r in rows])
    assert {t.get_text() for t in teq_ax.texts} == {"paper", "default"}
    assert teq_ax.get_xscale() == "log" and "success" in success_ax.get_ylabel()


# -- the summary: the front page's verdicts ------------------------------------------------------------
def test_summary_verdicts_are_the_front_pages(res):
    for key, claim in ch.SUMMARY_CLAIMS.items():
        row = claim_row(claim, {"mnist": res}, {})
        for fit, prefix in (("paper", ""), ("default", "default_")):
            got = ch.summary_verdict(key, res, res, fit)
            assert got.startswith(row[prefix + "verdict"] + " (") and "95%" in got or "no interval" in got
    assert ch.summary_verdict("speedup_fast_loop_median", res, res, "paper") == "no paper value"
    # a saved run decides: its verdict, not this build's
    saved = copy.deepcopy(res)
    for r in saved["table"]:
        r["success_rate"] = 0.0
    row = claim_row("mnist-success", {"mnist": res}, {"mnist": saved})
    assert row["basis"] == "paper profile"
    assert ch.summary_verdict("success_rate", res, saved, "paper").startswith(row["verdict"])


def test_a_speedup_is_zero_when_no_network_improved_and_unknown_otherwise():
    none_improved = MnistTableRow.from_dict(table_row(success_rate=0.0, speedup_paper_style_median=None))
    assert ch.summary_value(none_improved, "speedup_paper_style_median") == 0.0
    some = MnistTableRow.from_dict(table_row(success_rate=0.5, speedup_paper_style_median=None))
    assert ch.summary_value(some, "speedup_paper_style_median") is None
    assert ch.summary_value(some, "speedup_fast_loop_median") == 1.0
    assert ch.summary_value(some, "success_rate") == 0.5


def test_summary_rows_show_the_saved_run_beside_the_ci_one():
    ci = small_results([table_row(fit=f, success_rate=0.5) for f in ("paper", "default")])
    paper = small_results([table_row(fit=f, success_rate=1.0) for f in ("paper", "default")])
    rows = ch.summary_rows(ci, paper)
    assert [r["quantity"] for r in rows] == list(ch.SUMMARY_LABELS.values())
    # no per-network rows in these results: no interval, so the front page's verdict is inconclusive
    assert rows[0]["ours, paper's fit"] == "1 (ci: 0.5)" and rows[0]["verdict, paper's fit"] == \
        f"{claim_row('mnist-success', {'mnist': ci}, {'mnist': paper})['verdict']} (no interval)" == \
        "inconclusive (no interval)"
    alone = ch.summary_rows(ci, ci)
    assert alone[0]["ours, library default"] == "0.5" and alone[0]["verdict, library default"] == \
        "inconclusive (no interval)"
    assert alone[3]["paper"] == "-" and alone[3]["verdict, paper's fit"] == "no paper value"


def test_summary_text_and_best_run(res):
    text = ch.summary_text(res)
    t0 = next(r for r in res["table"] if r["fit"] == "paper" and r["T_epochs"] == 2)
    assert f"**With the paper's fit** {fmt(100 * t0['success_rate'], 3)}% of the networks improved" in text
    assert f"costs about as much as {fmt(ch.koopman_epochs(res), 2)} epochs" in text
    assert ch.best_run(res, None, "ci") == (res, "ci")
    saved = {"x": 1}
    assert ch.best_run(res, saved, "ci") == (saved, "paper")


# -- the optimizer against itself, the strided fits, float64 -------------------------------------------
def test_null_figure_puts_each_network_at_its_own_and_its_koopman_values(res):
    T, fits = res["provenance"]["config"]["T_epochs"], res["provenance"]["config"]["fits"]
    teq_ax, loss_ax = ch.null_figure(res).axes
    assert len(teq_ax.collections) == len(fits) == len(loss_ax.collections)
    null_teq = [m["null"][f"T{T}"]["teq_over_t"] for m in res["members"]]
    null_loss = [m["null"][f"T{T}"]["null_loss"] for m in res["members"]]
    for name, pts, lpts in zip(fits, teq_ax.collections, loss_ax.collections):
        assert pts.get_label() == f"Koopman, {ch.FIT_LABEL[name]}"
        np.testing.assert_allclose(np.asarray(pts.get_offsets()),
                                   ch.as_floats([[n, m["fits"][name][f"T{T}"]["teq_over_t"]] for n, m in zip(null_teq, res["members"])]))
        np.testing.assert_allclose(np.asarray(lpts.get_offsets()),
                                   ch.as_floats([[n, m["fits"][name][f"T{T}"]["koopman_loss"]] for n, m in zip(null_loss, res["members"])]))
    assert "optimizer against itself" in teq_ax.get_xlabel() and "NLL per image" in loss_ax.get_ylabel()
    older = copy.deepcopy(res)                          # a saved run from before the optimizer against itself
    for m in older["members"]:
        m.pop("null")
    older.pop("null_model")
    assert not ch.has_null(older) and ch.has_null(res)
    assert all(ch.NOT_SAVED in ax.texts[0].get_text() for ax in ch.null_figure(older).axes)
    assert ch.null_rows(older) == [{"T (epochs)": ch.NOT_SAVED}]


def test_null_rows_are_the_paper_settings_rows_of_the_null_model_table(res):
    want = [r for r in res["null_model"] if r["setting"] == "paper settings"]
    out = ch.null_rows(res)
    assert [r["T (epochs)"] for r in out] == [r["T_epochs"] for r in want]
    for row, w in zip(out, want):
        assert row["median T_eq/T"] == w["teq_over_t_median"] and row["median test loss"] == w["null_loss_median"]
        for name, v in w["koopman_minus_null_teq_over_t_median"].items():
            assert row[f"Koopman - itself, T_eq/T, {ch.FIT_LABEL[name]}"] == v


def test_strided_rows_give_the_horizon_each_fit_predicts(res):
    from koopman_lib.stride import floor_horizon
    S = res["steps_per_epoch"]
    out = ch.strided_rows(res)
    want = [r for r in res["table"] if r["fit"].startswith("default")]
    assert len(out) == len(want) and any("strided" in r["fit"] for r in out)
    for row in out:
        assert row["steps predicted"] == floor_horizon(row["T (epochs)"] * S, row["stride s (steps)"])
        assert row["T (steps)"] - row["stride s (steps)"] < row["steps predicted"] <= row["T (steps)"]
    older = copy.deepcopy(res)                          # no stride or horizon: every snapshot, T steps
    for r in older["table"]:
        r.pop("stride"), r.pop("horizon_steps")
    old_rows = ch.strided_rows(older)
    assert all(r["stride s (steps)"] == ch.NOT_SAVED and r["steps predicted"] == r["T (steps)"] for r in old_rows)


def test_applications_divide_the_predicted_steps_by_the_stride():
    row = MnistTableRow.from_dict(table_row(T_epochs=2, stride=4, horizon_steps=1872))
    assert ch.predicted_steps(row, 938) == 1872 and ch.applications(row, 938) == 468
    assert "468 applications of the 4-step operator" in ch.jump_words(row, 1876, 938)
    old = MnistTableRow.from_dict(table_row(T_epochs=2))
    assert ch.predicted_steps(old, 938) == 1876 == ch.applications(old, 938)
    assert ch.jump_words(old, 1876, 938) == "$T$ = 1876 steps"


def test_float64_rows_put_each_fit_beside_its_float32_row(res):
    assert ch.float64_rows(res) == [{"training precision": "float64", "fit": ch.NOT_SAVED}]   # ci: no float64 run
    T = res["provenance"]["config"]["T_epochs"]
    rigged = copy.deepcopy(res)
    rigged["table_float64"] = [dict(r, success_rate=0.25, n_inits=7) for r in res["table"]
                               if r["fit"] in ("paper", "default")]
    out = ch.float64_rows(rigged)
    assert len(out) == 2 * 2 and [r["training precision"] for r in out] == ["float32", "float64"] * 2
    for f32, f64 in zip(out[::2], out[1::2]):
        assert f32["fit"] == f64["fit"] and f64["networks"] == 7 and f64["success (%)"] == "25"
        name = next(n for n, lab in ch.FIT_LABEL.items() if lab == f32["fit"])
        want = next(r for r in res["table"] if r["fit"] == name and r["T_epochs"] == T)
        assert f32["median T_eq/T"] == want["teq_over_t_median"] and f32["networks"] == want["n_inits"]


def test_mnist_null_readings_are_the_paired_per_network_medians(res):
    from koopman_repro.scorecard.null_model import NULL_READINGS, mnist_null
    T = res["provenance"]["config"]["T_epochs"]
    loss, teq = mnist_null({"mnist": res}, "default")
    null_loss = np.array([m["null"][f"T{T}"]["null_loss"] for m in res["members"]], dtype=float)
    k_loss = np.array([m["fits"]["default"][f"T{T}"]["koopman_loss"] for m in res["members"]], dtype=float)
    assert loss.interval.value == pytest.approx(np.median(null_loss - k_loss))      # improvement: itself - Koopman
    assert loss.interval.n == len(res["members"]) and loss.reading in NULL_READINGS and teq.reading in NULL_READINGS
    null_teq = np.array([m["null"][f"T{T}"]["teq_over_t"] for m in res["members"]], dtype=float)
    k_teq = np.array([m["fits"]["default"][f"T{T}"]["teq_over_t"] for m in res["members"]], dtype=float)
    assert teq.interval.value == pytest.approx(np.median(k_teq - null_teq))


# -- the optimizer's state as observables ----------------------------------------------------------
def member(init: int, teq: dict, **extra) -> dict:
    """A network's row with T_eq/T ``teq[(fit, T)]`` (every other declared field filled in)."""
    fits = {}
    for (fit, T), v in teq.items():
        fits.setdefault(fit, {})[f"T{T}"] = {"teq_over_t": v, "T_eq_epochs": v * T}
    losses = {f"optimizer_{k}_T{T}": 0.1 for k in ("loss", "acc") for T in (1, 2, 5)}
    return {"init": init, "test_loss_t2": 0.2, **losses, "fits": fits, **extra}


def state_results(n: int = 6, shift: float = 0.3) -> dict:
    """Results with a state pass on networks 0..n-1 (the main run has n + 2): per network and fit,
    T_eq/T with the weights alone ``0.1 i`` at T = 2 (0 at T = 1: no network improved) and with the
    state ``shift`` more."""
    fits, horizons = ("paper", "default"), (1, 2)
    weights = {(f, T): [0.1 * i * (T == 2) for i in range(n + 2)] for f in fits for T in horizons}
    members = [member(i, {k: v[i] for k, v in weights.items()}) for i in range(n + 2)]
    state = [member(i, {k: v[i] + shift for k, v in weights.items()}, observables=ch.WITH_STATE)
             for i in range(n)]
    table_state = [table_row(fit=f, T_epochs=T, n_inits=n, success_rate=1.0, observables=ch.WITH_STATE,
                             teq_over_t_median=float(np.median([m["fits"][f][f"T{T}"]["teq_over_t"] for m in state])))
                   for f in fits for T in horizons]
    return {"experiment": "mnist", "members": members, "members_state": state, "table_state": table_state,
            "table": [table_row(fit=f, T_epochs=T, n_inits=n + 2) for f in fits for T in horizons],
            "provenance": {"config": {"fits": list(fits), "state_fits": list(fits), "T_epochs": 2,
                                      "horizons_epochs": list(horizons)}}}


def test_state_rows_put_the_weights_alone_beside_the_state_on_the_same_networks():
    from koopman_repro.scorecard.intervals import median
    res = state_results(n=6, shift=0.3)
    out = ch.state_rows(res)
    assert [(r["fit"], r["T (epochs)"]) for r in out] == \
        [(ch.FIT_LABEL[f], T) for f in ("paper", "default") for T in (2, 1)]       # the paper's horizon first
    weights = np.array([0.1 * i for i in range(6)])               # networks 6 and 7 have no state: left out
    for r in out:
        assert r["networks"] == 6
        if r["T (epochs)"] == 2:
            want = median(weights)
            assert r[f"median T_eq/T, {ch.WEIGHTS_ONLY}"] == \
                f"{fmt(want.value)} (95%: {fmt(want.ci_low)} to {fmt(want.ci_high)})"
            assert r[f"median T_eq/T, {ch.WEIGHTS_ONLY}"].startswith(fmt(0.25) + " ")
            assert r[f"median T_eq/T, {ch.WITH_STATE}"].startswith(fmt(0.55) + " ")
            assert r[f"success, {ch.WEIGHTS_ONLY} (%)"] == fmt(100 * 5 / 6, 3)          # network 0: T_eq = 0
        else:
            assert r[f"success, {ch.WEIGHTS_ONLY} (%)"] == "0"
        assert r[f"success, {ch.WITH_STATE} (%)"] == "100"
        # every network gains the same: the paired difference and both ends of its interval are the shift
        assert r["median difference (state - weights)"] == f"{fmt(0.3)} (95%: {fmt(0.3)} to {fmt(0.3)})"
    text = ch.state_text(res)
    assert text.count("the state helps") == 2 and "6 networks" in text and "$T$ = 2 epochs" in text
    assert "the state hurts" in ch.state_text(state_results(shift=-0.3))
    mixed = state_results(shift=0.0)
    for i, m in enumerate(mixed["members_state"]):             # half the networks gain, half lose
        for f in ("paper", "default"):
            m["fits"][f]["T2"]["teq_over_t"] += 0.2 * (-1) ** i
    assert ch.state_text(mixed).count("no difference shown") == 2


def test_state_rows_say_not_in_this_saved_run_without_a_state_pass(res):
    from koopman_repro.report import paper_results
    older = state_results()
    for key in ("table_state", "members_state"):
        older.pop(key)
    older["provenance"]["config"].pop("state_fits")           # a run from before the state pass
    saved = paper_results("mnist")
    runs = [older, res] + ([saved] if saved and not saved.get("table_state") else [])   # a paper run from before it
    for r in runs:
        out = ch.state_rows(r)
        assert len(out) == len(ch.state_fits(r)) * len(r["provenance"]["config"]["horizons_epochs"]) <= 12
        assert all(row[f"success, {ch.WITH_STATE} (%)"] == ch.NOT_SAVED == row[f"median T_eq/T, {ch.WITH_STATE}"]
                   for row in out)
        for row in out:                                      # the weights alone: the main table's row
            fit = next(n for n, label in ch.FIT_LABEL.items() if label == row["fit"])
            want = ch.table_row(r, fit, row["T (epochs)"])
            assert row["networks"] == want.n_inits and row[f"median T_eq/T, {ch.WEIGHTS_ONLY}"] == fmt(want.teq_over_t_median)
        assert ch.state_text(r).startswith(f"The optimizer's state as observables: {ch.NOT_SAVED}")


# -- where the strided fit stops: the stride sweep -----------------------------------------------------
#: a small sweep: strides 1 to 8, the rule's 4; per fit and stride the three networks' T_eq/T
SWEEP_STRIDES, SWEEP_RULE = (1, 2, 4, 8), 4
SWEEP_TEQ = {"default-strided": {1: [1.0, 1.2, 1.4], 2: [0.8, 0.9, 1.0], 4: [0.2, 0.5, None], 8: [0.0, 0.0, 0.1]},
             "default-strided-stabilised": {1: [1.1, 1.2, 1.3], 2: [1.0, 1.1, 1.2], 4: [0.9, 1.0, 1.1],
                                            8: [0.8, 0.85, 0.9]}}


def sweep_results(same: bool = True) -> dict:
    """Results with a stride sweep of three networks (T = 2 epochs of 100 steps, a 301-snapshot window,
    largest block 20): each row's medians computed from its networks' values above."""
    members = {str(i): {"same_network": same, "strides": {
        str(s): {"fit_seconds": 0.8 / s * (1 + i / 10), "snapshots": 300 // s + 1,
                 **{f: {"max_spectral_radius": 1.0, "T2": {"T_eq_epochs": 2 * (v or 0.0), "teq_over_t": v,
                                                           "koopman_loss": 0.2}}
                    for f, by_s in SWEEP_TEQ.items() for v in [by_s[s][i]]}}
        for s in SWEEP_STRIDES}} for i in range(3)}
    rows = []
    for f, by_s in SWEEP_TEQ.items():
        for s in SWEEP_STRIDES:
            v = np.array(by_s[s], dtype=float)
            rows.append({"fit": f, "stride": s, "rule": s == SWEEP_RULE, "T_epochs": 2, "horizon_steps": 200 - 200 % s,
                         "n_inits": 3, "snapshots": 300 // s + 1, "pairs_per_coordinate": (300 // s) / 20,
                         "success_rate": float(np.mean(np.nan_to_num(v) > 0)),
                         "teq_over_t_median": float(np.nanmedian(v)), "koopman_loss_median": 0.2,
                         "optimizer_loss_median": 0.19, "median_max_spectral_radius": 1.0,
                         "fit_seconds_median": float(np.median([members[str(i)]["strides"][str(s)]["fit_seconds"]
                                                                for i in range(3)])),
                         "all_same_networks": same})
    return {"experiment": "mnist", "steps_per_epoch": 100, "provenance": {"config": {"T_epochs": 2}},
            "stride_sweep": rows, "stride_sweep_members": members}


def test_stride_sweep_figure_draws_both_fits_the_spread_the_cost_and_marks_the_rule():
    res = sweep_results()
    fig = ch.stride_sweep_figure(res)
    ax, bx, cx = fig.axes
    assert fig.get_figwidth() <= 7
    assert ax.get_ylabel() == "$T_{eq}/T$ at T = 2 epochs" and bx.get_ylabel() == "fit time per network (s)"
    assert cx.get_ylabel() == "snapshots kept (of the window)"
    assert bx.get_xlabel() == "stride s (optimizer steps between the snapshots fitted)"
    assert ax.get_xscale() == bx.get_xscale() == "log" and list(bx.get_xticks()) == list(SWEEP_STRIDES)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    for f in SWEEP_TEQ:
        assert f"{ch.FIT_LABEL[f]}: median" in legend and f"{ch.FIT_LABEL[f]}: middle half of the networks" in legend
    assert f"the rule's stride s = {SWEEP_RULE}" in legend and "the optimizer's own level, $T_{eq}/T$ = 1" in legend
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines[f"the rule's stride s = {SWEEP_RULE}"].get_xdata()) == [SWEEP_RULE] * 2
    assert list(lines["the optimizer's own level, $T_{eq}/T$ = 1"].get_ydata()) == [1.0, 1.0]
    med = lines[f"{ch.FIT_LABEL['default-strided']}: median"]
    assert list(med.get_xdata()) == list(SWEEP_STRIDES)
    np.testing.assert_allclose(med.get_ydata(), [1.2, 0.9, 0.35, 0.0])
    lo, hi = ch.sweep_spread(res, "default-strided", list(SWEEP_STRIDES))     # the shaded middle half
    np.testing.assert_allclose(lo, [1.1, 0.85, 0.275, 0.0])
    np.testing.assert_allclose(hi, [1.3, 0.95, 0.425, 0.05])
    cost = {ln.get_label(): ln for ln in bx.get_lines() + cx.get_lines()}
    np.testing.assert_allclose(cost["fit time per network (median; both fits share one factorisation)"].get_ydata(),
                               [0.88 / s for s in SWEEP_STRIDES])
    assert list(cost["snapshots kept"].get_ydata()) == [301, 151, 76, 38]
    assert "snapshots kept" in [t.get_text() for t in bx.get_legend().get_texts()]


def test_stride_sweep_rows_are_one_per_stride_with_headers_in_words():
    out = ch.stride_sweep_rows(sweep_results())
    assert len(out) == len(SWEEP_STRIDES) <= 12
    assert list(out[0]) == ["stride s (steps)", "the rule's stride", "snapshots kept", "snapshot pairs per coordinate",
                            "steps predicted", "fit time per network (s)",
                            "success (%), default, strided", "median T_eq/T, default, strided",
                            "success (%), default, strided, stabilised", "median T_eq/T, default, strided, stabilised"]
    by_s = {r["stride s (steps)"]: r for r in out}
    assert [s for s, r in by_s.items() if r["the rule's stride"] == "yes"] == [SWEEP_RULE]
    assert by_s[4]["steps predicted"] == 200 and by_s[8]["steps predicted"] == 200 and by_s[1]["snapshots kept"] == 301
    assert by_s[4]["median T_eq/T, default, strided"] == "0.35" and by_s[4]["success (%), default, strided"] == "66.7"
    assert by_s[8]["success (%), default, strided"] == "33.3"


def test_stride_sweep_text_says_where_each_fit_stops_and_what_the_rule_costs_and_gives():
    text = ch.stride_sweep_text(sweep_results())
    assert "**default, strided** keeps up to **s = 2** and stops at s = 4 (median $T_{eq}/T$ 0.35)" in text
    assert "**default, strided, stabilised** keeps up at every stride of the sweep, up to s = 8" in text
    assert "At the rule's s = 4: median $T_{eq}/T$ 0.35 and success 66.7%, against 1.2 and 100% at s = 1" in text
    assert "keeps 76 of the 301 snapshots (3.75 snapshot pairs per coordinate" in text
    assert "predicts 200 of the 200 steps" in text
    assert "its fit takes 0.22 s per network against 0.88 s at s = 1, 4 times less" in text
    assert "not all the table's" not in text
    assert "not all the table's" in ch.stride_sweep_text(sweep_results(same=False))
    worse = sweep_results()                                   # no stride keeps up
    for r in worse["stride_sweep"]:
        r["teq_over_t_median"] = KEEPS_UP - 1e-9 if r["stride"] == 1 else 2.0
    assert "keeps up at **none** of the strides" in ch.stride_sweep_text(worse)


def test_the_stride_sweep_says_not_in_this_saved_run_for_an_older_file():
    old = {"experiment": "mnist", "steps_per_epoch": 100, "provenance": {"config": {"T_epochs": 2}}}
    assert ch.stride_sweep_rows(old) == [{"stride s (steps)": ch.NOT_SAVED}]
    assert ch.NOT_SAVED in ch.stride_sweep_text(old)
    fig = ch.stride_sweep_figure(old)
    assert len(fig.axes) == 2 and all(ch.NOT_SAVED in a.texts[0].get_text() for a in fig.axes)


def test_stride_sweep_of_the_tiny_run_marks_the_rule_and_has_every_fit(res):
    sweep = res["stride_sweep"]
    assert sum(r["rule"] for r in sweep) == 2                      # one rule's stride per fit
    fig = ch.stride_sweep_figure(res)
    assert len(fig.axes) == 3 and len(ch.stride_sweep_rows(res)) == len({r["stride"] for r in sweep})
    assert "At the rule's s = " in ch.stride_sweep_text(res)
