"""The DE-solver chapter's tables, verdicts and figures (koopman_repro.chapters.de_solver), on tiny
results written by the tests (two inits per optimizer, a few hundred steps, both training dtypes)."""
from __future__ import annotations

import copy
import dataclasses
import json
import math

import matplotlib
import numpy as np
import pytest

from koopman_lib.metrics import Interval

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402

from koopman_repro import rows as declared  # noqa: E402
from koopman_repro import scorecard as sc  # noqa: E402
from koopman_repro.chapters import de_solver as ch  # noqa: E402
from koopman_repro.experiments import config_for  # noqa: E402
from koopman_repro.experiments.beyond import DE_PAPER_FIT  # noqa: E402
from koopman_repro.experiments.de_solver import PAPER_ERROR_RATIO, PAPER_TABLE1  # noqa: E402
from koopman_repro.migrations import upgrade  # noqa: E402
from koopman_repro.results import REPO_ROOT, load_results  # noqa: E402
from koopman_repro.rows.de_solver import (DeSolverNetworksRow, DeSolverStateObservablesRow,  # noqa: E402
                                          DeSolverStrideSweepRow, DeSolverTableRow, DeSolverWhereItStopsRow)
from koopman_repro.scorecard import DE_ENERGY_LOST, DE_NOT_SOLVED, DE_ORIGINAL_WORKS, KEEPS_UP  # noqa: E402
from koopman_repro.scorecard import measure_de_solver as mde  # noqa: E402

#: the tiny config of tests/test_de_solver.py
TINY = dict(n_inits=2, n_steps=240, t1=80, t2=180, Ts=(20, 51), T_main=20, timing_repeats=1, timing_steps=5,
            timing_networks=1, curve_points=6, window_stride=20, loss_curve_points=20, ode_points=100, n_points=50,
            check_steps=20, check_hidden=(8, 8), train_dtypes=("float32", "float64"))


@pytest.fixture(scope="module")
def res(tiny_results):
    return tiny_results("de-solver", **TINY)


@pytest.fixture(scope="module")
def C(res):
    return ch.Chapter(res, None, config_for("de-solver", "ci", **TINY), "ci")


@pytest.fixture(scope="module")
def C2(res):
    """This build and a "saved paper-profile run" (a copy of the same results)."""
    return ch.Chapter(res, copy.deepcopy(res), config_for("de-solver", "ci", **TINY), "ci")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _table_row(**fields) -> DeSolverTableRow:
    base = dict(optimizer="adam", n_inits=4, success_rate=1.0, teq_over_t_median=1.0, T=2500, train_dtype="float32",
                fit="paper", fit_method="pinv", cutoff="paper", error_ratio=0.01, teq_over_t_median_other_origin=1.0,
                censored=0, median_relative_weight_error=0.1, median_max_spectral_radius=1.0,
                median_kept_rank_fraction=0.5, median_max_cond_F=1e8, speedup_paper_style_median_all=50.0,
                speedup_fast_loop_median_all=5.0, koopman_fit_and_jump_seconds=0.01,
                speedup_paper_style_median=60.0, speedup_fast_loop_median=6.0)
    return DeSolverTableRow(**{**base, **fields})


def _network(success: bool, radius: float, error: float | None) -> DeSolverNetworksRow:
    return DeSolverNetworksRow(train_dtype="float32", fit="paper", fit_method="pinv", cutoff="paper",
                               optimizer="adam", init=0, T=2500, teq=2500.0 if success else -1.0,
                               teq_over_t=1.0 if success else -0.0004, censored=False, success=success,
                               teq_over_t_other_origin=1.0, loss_t2=1.0, loss_optimizer_at_T=0.9,
                               speedup_paper_style=1.0, speedup_fast_loop=1.0, max_spectral_radius=radius,
                               kept_rank_fraction=0.5, relative_weight_error=error)


# -- reading the results -------------------------------------------------------------------------
def test_rows_are_read_as_declared_and_selected_by_field(res):
    rows = ch.table(res, T=51, fit="default", train_dtype="float64")
    assert rows and all(isinstance(r, DeSolverTableRow) for r in rows)
    assert [r.optimizer for r in rows] == list(config_for("de-solver", "ci").optimizers)
    raw = [r for r in res["table"] if (r["T"], r["fit"], r["train_dtype"]) == (51, "default", "float64")]
    assert [r.as_dict() for r in rows] == raw
    assert ch.first(rows, optimizer="nope") is None
    assert ch.fits_of(res) == list(config_for("de-solver", "ci").fits) == list(res["fits"])
    assert ch.main_of(res) == ("float32", "paper", 20) and ch.dtypes(res) == ["float32", "float64"]


def test_chapter_sources_and_the_run_the_verdicts_use(C, C2):
    assert [lab for lab, _ in C.sources] == ["this build (ci)"] and C.best is C.res
    assert C.best_name == "this build (profile ci, 2 networks per optimizer)"
    assert [lab for lab, _ in C2.sources] == ["this build (ci)", "paper profile"] and C2.best is C2.saved
    assert C2.source == (C2.saved, "the paper-profile run") and C.source[0] is C.res


def test_choices_say_why_float64_comes_from_the_paper_run(C, res):
    rows = ch.choices(C)
    assert [r["setting"] for r in rows][0] == "training precision"
    assert rows[0]["ours"] == "float32, float64 (main: float32)"
    assert "This profile trains float32 only" not in rows[0]["why"]
    only32 = dataclasses.replace(C, cfg=dataclasses.replace(C.cfg, train_dtypes=("float32",)))
    why = ch.choices(only32)[0]["why"]
    assert f"({res['by_dtype']['float32']['training_seconds']:.0f} s in this build)" in why
    assert next(r for r in rows if r["setting"] == "T")["ours"] == "20, 51"


# -- Table 1 and its verdicts --------------------------------------------------------------------
def test_table1_shows_the_rows_values_and_the_front_pages_verdicts(res, C):
    out = ch.table1(res, C.opts, C.fits)
    assert len(out) == 2 * (3 * len(C.opts) + 2)  # per dtype: 3 quantities per optimizer, error ratio, steps
    for line in out:
        if line["quantity"] == "steps predicted":
            for f in C.fits:
                r = ch.first(ch.table(res), optimizer="adam", T=20, train_dtype=line["training"], fit=f)
                assert line[ch.FIT_LABEL[f]] == str(r.horizon) and line[f"verdict: {ch.FIT_LABEL[f]}"] == ""
            continue
        name = next(n for n, lab in ch.LABEL.items() if lab == line["optimizer"])
        for f in C.fits:
            r = ch.first(ch.table(res), optimizer=name, T=20, train_dtype=line["training"], fit=f)
            if line["quantity"] == "T_eq/T":
                v, paper, rule = r.teq_over_t_median, PAPER_TABLE1[name]["teq_over_t_median"], "T_eq/T"
                assert line[ch.FIT_LABEL[f]] == f"{v:.2f}"
            elif line["quantity"] == "success":
                v, paper, rule = 100 * r.success_rate, 100 * PAPER_TABLE1[name]["success_rate"], "success rate"
                assert line[ch.FIT_LABEL[f]] == f"{v:.0f}%"
            elif line["quantity"].startswith("error ratio"):
                v, paper, rule = r.error_ratio, PAPER_ERROR_RATIO, "error ratio"
                assert name == res["error_ratio_optimizer"] and line[ch.FIT_LABEL[f]] == f"{v:.2g}"
            else:
                v, paper, rule = ch.ours(r, "speedup_paper_style_median"), PAPER_TABLE1[name]["speedup"], "speedup"
            # three-way, over the interval of the row's networks (the error ratio: its networks resampled)
            if rule == "error ratio":
                iv = mde.de_error_ratio_interval({"de-solver": res}, r, 10)[0]
            else:
                iv = sc.de_row_interval({"de-solver": res}, r, rule)
                assert iv.value == pytest.approx(v)
            want = sc.RULES[rule].verdict(iv or Interval(v, 0, None, None), paper)
            if line["training"] != ch.main_of(res)[0] or f not in sc.SCORE_FITS:  # what the front page judges
                want = ch.OTHER_READING[want]
            assert line[f"verdict: {ch.FIT_LABEL[f]}"] == want


def test_table1_marks_fits_a_run_lacks():
    R = {"fits": {"paper": "paper"}, "main": {"T": 2500}, "error_ratio_optimizer": "adam", "experiment": "de-solver",
         "provenance": {"config": {"train_dtypes": ["float32"]}}, "table": [_table_row().as_dict()]}
    out = ch.table1(R, ["adam"], ["paper", "default"])
    assert all(line["library default"] == "not run" and line["verdict: library default"] == "" for line in out)
    assert out[0]["paper fit"] == "100%" and out[1]["paper fit"] == "1.00" and out[2]["paper fit"] == "60x"
    assert out[-1]["quantity"] == "steps predicted" and out[-1]["paper fit"] == "2500"  # no horizon field: T


def test_table1_blocks_show_each_value_with_its_verdict_and_what_a_saved_run_lacks(C, res):
    old = copy.deepcopy(res)
    old["fits"] = {f: v for f, v in old["fits"].items() if "strided" not in f}
    blocks = ch.table1_blocks(dataclasses.replace(C, saved=old))
    assert len(blocks) == 2 * 2  # runs x dtypes
    for (heading, rows), (lab, d) in zip(blocks, [(lab, d) for lab in ("this build (ci)", "paper profile")
                                                  for d in ("float32", "float64")]):
        assert heading.startswith(f"**{lab}**, {d} training") and len(rows) == 3 * len(C.opts) + 2 <= 12
        R = res if lab.startswith("this") else old
        lines = [line for line in ch.table1(R, C.opts, ch.fits_of(R)) if line["training"] == d]
        for row, line in zip(rows, lines):
            for f in ch.fits_of(R):
                v = line[f"verdict: {ch.FIT_LABEL[f]}"]
                assert row[ch.FIT_LABEL[f]] == line[ch.FIT_LABEL[f]] + (f" ({v})" if v else "")
        assert ("not in this saved run" in heading) == (R is old)
        assert ("default, strided" in rows[0]) == (R is res)


def test_ours_reads_the_speedup_as_the_front_page_does():
    assert ch.ours(None, "success_rate") is None
    assert ch.ours(_table_row(success_rate=0.25), "success_rate") == 25.0
    assert ch.ours(_table_row(), "speedup_paper_style_median") == 60.0
    assert ch.ours(_table_row(speedup_paper_style_median=None), "speedup_paper_style_median") == 50.0
    none = _table_row(speedup_paper_style_median=None, speedup_paper_style_median_all=None, success_rate=0.0)
    assert ch.ours(none, "speedup_paper_style_median") == 0.0


# -- the ODE check ---------------------------------------------------------------------------------
def test_ode_table_and_summary_are_the_results(res, C):
    rows = ch.ode_table(res)
    assert rows == [{k: r[k] for k in rows[0]} for r in res["ode_check"]]
    s = ch.ode_summary(C)
    ode = res["by_dtype"]["float32"]["ode"]
    assert s["med_err"] == float(np.median(ode["max_abs_error"])) and s["n"] == 3 * 2
    assert s["amp"] == float(np.max(np.abs(ode["x_ref"]))) and s["E0"] == ode["energy0"]
    assert s["check"] == res["solver_check"] and s["check_src"] == "this build (profile ci)"


def _summary(**over):
    s = {"n": 6, "med_err": 1.0, "best_err": 0.5, "med_loss": 1e-3, "amp": 2.0, "drift": 0.1, "E0": 2.0,
         "reference_drift": 1e-12, "check": None, "check_src": "this build (profile ci)"}
    return {**s, **over}


def test_ode_text_each_verdict_at_both_sides_of_its_threshold():
    amp = 2.0
    above, below = DE_NOT_SOLVED.value * amp * 1.01, DE_NOT_SOLVED.value * amp * 0.99
    assert "have **not** yet solved" in ch.ode_text(_summary(med_err=above))
    assert "learned the solution to within" in ch.ode_text(_summary(med_err=below))
    E0 = 2.0
    assert "spiral into the equilibrium" in ch.ode_text(_summary(drift=DE_ENERGY_LOST.value * E0 * 1.01))
    assert "spiral into" not in ch.ode_text(_summary(drift=DE_ENERGY_LOST.value * E0 * 0.99))
    chk = {"sizes": (1, 8, 8, 2), "activation": "sin", "lr": 8e-3, "steps": 20, "final_loss": [1e-4, 1e-3]}
    ref = min(0.1, amp)  # min(median error, amplitude)
    limit = DE_ORIGINAL_WORKS.value * ref
    works = ch.ode_text(_summary(med_err=0.1, check={**chk, "max_abs_error": [limit * 0.99, 1]}))
    fails = ch.ode_text(_summary(med_err=0.1, check={**chk, "max_abs_error": [limit * 1.01, 1]}))
    assert "those of a working solver" in works and "do not do clearly better" in fails
    assert "layers 1:8:8:2, sin activations" in works and DE_ORIGINAL_WORKS.text in works
    plain = ch.ode_text(_summary())
    assert DE_ORIGINAL_WORKS.text not in plain and plain.endswith(DE_ENERGY_LOST.text + ".")


# -- figures ---------------------------------------------------------------------------------------
def _labels(ax):
    return ax.get_legend_handles_labels()[1]


def test_training_figure(C):
    fig = ch.training_figure(C)
    axes = fig.axes
    assert len(axes) == 2 and axes[0].get_ylabel() == "loss L (dimensionless)"
    for ax, d in zip(axes, ("float32", "float64")):
        assert len(ax.lines) == 3 * (2 + 1)  # every network and the median, per optimizer
        assert ax.get_title() == f"training loss, {d} training (2 inits each)" and ax.get_xscale() == "log"
        assert "Adam (median)" in _labels(ax) and "recorded window t1..t2" in _labels(ax)
        med = C.res["by_dtype"][d]["curves"]["adam"]["median"]
        assert np.allclose(ax.lines[2].get_ydata(), np.array(med, dtype=float), equal_nan=True)


def test_ode_figure(C):
    fig = ch.ode_figure(C)
    left, right = fig.axes
    assert "x, solve_ivp" in _labels(left) and "x, original solver settings" in _labels(left)
    assert right.get_xscale() == "log" and right.get_ylabel() == "max |error| in x or p vs solve_ivp"
    assert len(right.collections) == 3 + 1  # the optimizers and the solver check
    assert "original solver settings (this build (profile ci))" in _labels(right)


@pytest.mark.filterwarnings("ignore:Attempting to set identical")  # a tiny run's loss can be flat at 6 digits
def test_fig2b_plots_the_optimizer_and_every_fit(C, res):
    fig = ch.fig2b(C, "float32")
    assert len(fig.axes) == 3
    for ax, name in zip(fig.axes, C.opts):
        ex = res["by_dtype"]["float32"]["fig2d"][name]["network"]
        assert ax.get_title() == f"{ch.LABEL[name]}, network {ex}, float32 training"
        assert _labels(ax) == [ch.LABEL[name]] + [f"Koopman, {ch.FIT_LABEL[f]}" for f in C.fits]
        assert list(ax.lines[0].get_ydata()) == res["by_dtype"]["float32"]["fig2b"]["optimizer_loss"][name][ex]
        assert list(ax.lines[-1].get_xdata()) == [20, 20]  # the main T


def test_fig2c_and_its_tables(C2, res):
    fig = ch.fig2c(C2)
    ax = fig.axes[0]
    assert len(ax.collections) == 3 * 2 * len(C2.fits)  # optimizers x runs x fits
    assert ax.get_ylabel() == "T_eq / T"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Adam", "Adagrad", "Adadelta"]
    assert "this build (ci), paper fit (float32 training)" in _labels(ax)
    y = sorted(float(v) for v in ax.collections[0].get_offsets()[:, 1])
    assert y == sorted(n["teq_over_t"] for n in res["networks"]
                       if (n["optimizer"], n["fit"], n["T"], n["train_dtype"]) == ("adam", "paper", 20, "float32"))
    rows = ch.rows_at(res, 20, ch.TEQ_COLUMNS)
    assert len(rows) == 2 * 3 * len(C2.fits) and list(rows[0]) == ch.TEQ_COLUMNS
    assert rows == [{c: r[c] for c in ch.TEQ_COLUMNS} for r in res["table"] if r["T"] == 20]


def test_fig2d_and_fig2e(C2, res):
    fig = ch.fig2d(C2)
    assert len(fig.axes) == 3
    ax = fig.axes[0]
    assert _labels(ax) == ["optimizer", "Koopman, paper fit", "Koopman, library default"]
    assert len(ax.lines) == 6 * 3 and ax.get_ylabel() == "weight value"
    fig = ch.fig2e(C2)
    assert len(fig.axes) == 2  # this build and the saved run
    er_opt = res["error_ratio_optimizer"]
    row = next(r for r in res["table"] if (r["optimizer"], r["T"], r["fit"], r["train_dtype"])
               == (er_opt, 20, "paper", "float32"))
    assert fig.axes[0].get_title().endswith(f"ratio of medians {row['error_ratio']:.2g}")
    assert fig.axes[0].get_xscale() == "log" and "best network" in _labels(fig.axes[0])
    rows = ch.error_ratio_rows(C2, res)
    assert len(rows) == 2 * len(C2.fits) * 2  # dtypes x fits x (main T, largest T)
    label = {v: k for k, v in ch.FIT_LABEL.items()}
    for r in rows:
        t = next(t for t in res["table"] if (t["optimizer"], t["T"], t["fit"], t["train_dtype"])
                 == (er_opt, r["T"], label[r["fit"]], r["train_dtype"]))
        assert r["error_ratio"] == t["error_ratio"] and r["steps predicted"] == t["horizon"] <= r["T"]


# -- conditioning and spectra ----------------------------------------------------------------------
def test_capped_finite_and_growth():
    assert ch.capped(None) == ch.COND_CAP and ch.capped(math.inf) == ch.COND_CAP
    assert ch.capped(1e25) == ch.COND_CAP and ch.capped(5.0) == 5.0
    assert ch.finite(None) == math.inf and ch.finite(3.0) == 3.0
    assert ch.growth(1 + 1e-4, 2500) == pytest.approx((1 + 1e-4) ** 2500, rel=1e-12)
    assert ch.growth(1.1, 10_000) == math.inf and ch.growth(0.0, 10) == 0.0
    assert ch.growth_text(None) == "n/a" and ch.growth_text(1.0) == "10" and ch.growth_text(5.0) == "$10^{5.0}$"


def test_spectrum_rows_recompute_from_the_networks(C, res):
    rows = ch.spectrum_rows(C)
    assert len(rows) == 3 * len(C.fits)
    for r in rows:
        table_row = next(t for t in res["table"] if (t["optimizer"], t["fit"], t["T"], t["train_dtype"])
                         == (r["optimizer"], r["fit"], 20, "float32"))
        assert r["success_rate"] == table_row["success_rate"] and r["networks"] == 2
        sp = res["by_dtype"]["float32"]["spectra"][r["fit"]][r["optimizer"]]
        rho, s, h = float(np.median(sp["max_spectral_radius"])), table_row["stride"], table_row["horizon"]
        # a strided fit's U_s advances s steps: its radius per step and its growth over the steps it predicted
        assert r["median largest radius - 1, per step"] == pytest.approx(rho ** (1 / s) - 1, rel=1e-12)
        assert r["its growth over T=20"] == pytest.approx(rho ** (h / s), rel=1e-9)
        assert 0 <= r["share of blocks with radius > 1"] <= 1
    assert all(r["share of blocks with radius > 1"] == 0 for r in rows if r["fit"].endswith("stabilised"))
    assert {r["fit"] for r in rows} == set(C.fits) and any(t["stride"] > 1 for t in res["table"])


def test_radius_text_at_both_sides_of_each_branch():
    mixed = [_network(True, 1.0, 0.5), _network(True, 1.001, 0.5), _network(False, 1.01, 2.0), _network(False, 0.99, 0.1)]
    text = ch.radius_text(mixed, "")
    assert text.startswith("2 of 4 networks succeed.")
    assert "1 of the 2 failures lie above the successes' median" in text
    assert "1 networks end the jump more than" in text and "0 of them still count as successes" in text
    good = ch.radius_text([_network(True, 1.0, 0.5), _network(True, 1.0, None)], "")
    assert "1 networks end the jump" in good  # a non-finite error (None) is above 1
    clean = ch.radius_text([_network(True, 1.0, 0.5)], "")
    assert "With no failure there is nothing to separate" in clean
    assert ch.radius_text([_network(False, 1.0, 0.5)], "") == "0 of 1 networks succeed. "


def test_conditioning_figure_and_text(C, res):
    fig = ch.conditioning_figure(C)
    left, right = fig.axes
    assert len(left.collections) == len(right.collections) == 3 * len(C.fits)
    assert left.get_xscale() == "log" and right.get_xscale() == "symlog"
    assert "Adam, paper fit" in _labels(left)
    nets = [n for n in res["networks"] if (n["optimizer"], n["fit"], n["T"], n["train_dtype"]) == ("adam", "paper", 20, "float32")]
    assert sorted(right.collections[0].get_offsets()[:, 1]) == sorted(n["teq_over_t"] for n in nets)
    n_ok = sum(n["success"] for n in res["networks"] if (n["fit"], n["T"], n["train_dtype"]) == ("paper", 20, "float32"))
    assert ch.conditioning_text(C).startswith(
        f"In this build (profile ci) (paper fit, float32 training, T = 20), {n_ok} of 6 networks succeed.")


def test_fit_method_rows(C, res):
    rows = ch.fit_method_rows(C)
    methods = {m["fit_method"] for m in res["fit_methods_table"]}
    assert {"pinv", "lstsq"} <= methods and {r["fit_method"] for r in rows} == methods
    assert len(rows) == len(methods) * 3 <= 12
    for r in rows:
        raw = next(m for m in res["fit_methods_table"] if (m["optimizer"], m["fit_method"], m["T"], m["train_dtype"])
                   == (r["optimizer"], r["fit_method"], 20, "float32"))
        assert r["stride (steps)"] == raw["stride"] and r["steps predicted"] == raw["horizon"]
        assert all(r[k] == raw[k] for k in r if k in raw)


# -- where it stops --------------------------------------------------------------------------------
def _stops(lo, st, growing=0.25, **more):
    return DeSolverWhereItStopsRow(**more,
        optimizer="adam", train_dtype="float32", fit="paper", keeps_up_threshold=KEEPS_UP, Ts=[2500, 5000],
        teq_over_t_median_by_T=[0.9, 0.5], success_rate_by_T=[1.0, 0.5], T_diagnosed=st or 5000,
        teq_over_t_median_at_T_diagnosed=0.5, share_blocks_growing=growing, max_spectral_radius_median=1.001,
        log10_growth_at_T=2.0, median_relative_weight_error=0.3, dominant_layer=2, dominant_layer_error_share=0.7,
        layers=[{"layer": 1, "shape": "1:10", "error_share_median": 0.3, "relative_error_median": 0.1,
                 "share_blocks_growing": 0.0, "kept_rank_median": 2.0},
                {"layer": 2, "shape": "10:10", "error_share_median": 0.7, "relative_error_median": 0.5,
                 "share_blocks_growing": 0.5, "kept_rank_median": 3.0}],
        longest_T_keeping_up=lo, stops_at_T=st)


def test_stop_line_each_branch():
    assert ch.stop_line(_stops(2500, 5000)).startswith(
        "Adam keeps up to T = 2500 (median T_eq/T 0.9) and stops at T = 5000 (0.5); 25% of its block operators "
        "have a growing mode, the largest $|\\lambda|$ is 1 + 0.001, a factor 100 over T = 5000")
    assert ch.stop_line(_stops(5000, None)).startswith("Adam keeps up through the longest T tested, 5000 (median T_eq/T 0.5)")
    assert ch.stop_line(_stops(None, 2500)).startswith("Adam keeps up at no T tested (median T_eq/T 0.9 at T = 2500)")
    line = ch.stop_line(_stops(2500, 5000, growing=0.0))
    assert "; no block operator has a growing mode" in line
    assert line.endswith("; layer 2 (10:10) carries 70% of the squared weight error at T = 5000 (its relative error 0.5)")
    assert ch.by_layer(_stops(1, 2), "error_share_median", ch.pct) == "L1 30% / L2 70%" and ch.pct(None) == "n/a"
    # a strided fit: what it predicted, its radius per step and its growth over the U_s applied
    strided = ch.stop_line(_stops(2500, 5000, stride=100, horizons_by_T=[2500, 5000]))
    assert strided.startswith("Adam keeps up to T = 2500")  # it predicted every T: nothing to say
    assert "of its 100-step operators is 1 + 0.001 (1 + 1e-05 per step)" in strided
    assert f"a factor {ch.growth_text(50 * math.log10(1.001))} over the 5000 steps" in strided
    short = ch.stop_line(_stops(2500, 5000, stride=300, horizons_by_T=[2400, 4800]))
    assert short.startswith("Adam (predicting 4800 of the T = 5000 steps, stride 300)")
    assert ch.predicted_text(_stops(1, 2)) == "= T" and ch.predicted_text(_stops(1, 2, horizons_by_T=[2500, 5000])) == "= T"
    assert ch.per_step(1.21, 2) == pytest.approx(1.1) and ch.per_step(1.21, 1) == 1.21 and ch.per_step(None, 3) is None


def test_stop_tables_texts_and_figure(C2, res):
    tables = ch.stop_tables(C2)
    assert len(tables) == 2 * 2  # runs x dtypes
    heading, rows = tables[0]
    assert heading.startswith("**this build (ci)**, float32 training") and len(rows) == len(C2.fits) <= 12
    keeps = "keeps up to T (Adam / Adagrad / Adadelta)"
    for r, f in zip(rows, C2.fits):
        ws = [next(w for w in res["where_it_stops"] if (w["train_dtype"], w["fit"], w["optimizer"]) == ("float32", f, n))
              for n in C2.opts]
        assert r["fit"] == ch.FIT_LABEL[f]
        assert r[keeps] == " / ".join(str(w["longest_T_keeping_up"] or "none") for w in ws)
        assert r["blocks growing"] == " / ".join(ch.pct(w["share_blocks_growing"]) for w in ws)
        hs = ws[0]["horizons_by_T"]  # the tiny window's rule gives s = 2: a strided fit predicts 50 for T = 51
        assert r["steps predicted for T = 20, 51"] == ("= T" if f in ch.fits_of(res)[:3] else "20, 50") == (
            "= T" if hs == [20, 51] else ", ".join(map(str, hs)))
    texts = ch.stop_texts(C2)
    assert len(texts) == 2 and texts[0].startswith("**this build (ci)**:") and texts[1].startswith("**paper profile**:")
    assert texts[0].count("\n- *") == 2 * len(C2.fits)  # one line per dtype and fit
    assert ch.stops_note(C2) == ""
    no_stops = dataclasses.replace(C2, saved={**C2.saved, "where_it_stops": []})
    assert ch.stops_note(no_stops).startswith("The saved paper-profile run predates") and len(ch.stop_texts(no_stops)) == 1
    fig = ch.where_it_stops_figure(C2)
    assert len(fig.axes) == 2 * 3 and fig._suptitle.get_text() == "paper profile: where Koopman training stops keeping up"
    top = fig.axes[0]
    assert len(top.lines) == 2 * len(C2.fits) + 1 and top.get_ylabel() == "median T_eq / T"  # dtypes x fits, threshold
    assert list(top.lines[-1].get_ydata()) == [KEEPS_UP, KEEPS_UP]
    assert len(fig.axes[3].patches) == 2 * len(C2.fits) * 3  # bars: dtypes x fits x layers


def _before_the_new_parts(res):
    """``res`` as a saved run made before the strided fits, the sweep and the state readings."""
    old = {k: v for k, v in copy.deepcopy(res).items()
           if k not in ("stride_sweep", "stride_rule", "state_observables", "state_networks")}
    keep = ("paper", "default", "default-stabilised")
    old["fits"] = {f: v for f, v in old["fits"].items() if f in keep}
    for key in ("table", "networks", "where_it_stops"):
        old[key] = [{k: v for k, v in r.items() if k not in ("stride", "horizon", "horizons_by_T")}
                    for r in old[key] if r["fit"] in keep]
    return old


def test_horizons_and_the_strided_note(C, res):
    s = res["stride_rule"]["stride"]
    assert s == 2  # the rule on the tiny window (101 snapshots, blocks of 11: 50 pairs >= 4 x 11)
    assert ch.horizons(res, "float32", "default-strided", [20, 51]) == [20, 50]
    assert ch.horizons(res, "float32", "paper", [20, 51]) == [20, 51]
    old = _before_the_new_parts(res)
    assert ch.horizons(old, "float32", "paper", [20, 51]) == [20, 51]  # no horizon field: T itself
    note = ch.strided_note(dataclasses.replace(C, saved=old))
    assert "up to s - 1 steps short of T" in note and "can only be understated" in note
    assert "this build (ci): s = 2, predicting 20 for T = 20, 50 for T = 51" in note
    assert "paper profile: the strided fits are not in this saved run" in note


def test_missing_notes_and_the_run_a_figure_reads(C, C2, res):
    old = _before_the_new_parts(res)
    Cold = dataclasses.replace(C2, saved=old)
    assert Cold.first_with("stride_sweep") == ("this build (ci)", res) and C2.first_with("stride_sweep")[1] is C2.saved
    assert [lab for lab, _ in Cold.with_key("state_observables")] == ["this build (ci)"]
    note = Cold.missing_note("state_observables", "the state-augmented fits")
    assert "the state-augmented fits: not in this saved run" in note
    assert C2.missing_note("state_observables", "x") == "" and C.missing_note("state_observables", "x") == ""
    none = dataclasses.replace(C, res=old)
    assert none.first_with("stride_sweep") is None and ch.stride_sweep_figure(none) is None
    assert ch.stride_rows(none) == [] and "not in this saved run" in ch.stride_text(none)
    assert ch.state_tables(none) == [] and "not in this saved run" in ch.state_text(none)
    assert len(ch.stop_tables(Cold)) == 2 * 2 and len(ch.table1_blocks(Cold)) == 2 * 2  # old files still read


def test_stride_sweep_figure_rows_and_text(C, res):
    fig = ch.stride_sweep_figure(C)
    ax, bx = fig.axes
    s_rule = res["stride_rule"]["stride"]
    assert ax.get_xscale() == "log" and bx.get_yscale() == "log" and "stride s" in ax.get_xlabel()
    assert ax.get_ylabel() == "median T_eq / T at T = 20" and bx.get_ylabel() == "fit time per network (ms)"
    assert f"the rule's stride s = {s_rule}" in _labels(ax) and f"the rule's stride s = {s_rule}" in _labels(bx)
    assert "Adam, default, strided, float32" in _labels(ax) and "Adagrad, float64 training" in _labels(bx)
    sweep = [r for r in res["stride_sweep"] if (r["train_dtype"], r["optimizer"], r["fit"]) ==
             ("float32", "adam", "default-strided")]
    line = ax.lines[0]
    assert list(line.get_xdata()) == sorted(r["stride"] for r in sweep)
    assert np.allclose(line.get_ydata(), [r["teq_over_t_median"] for r in sorted(sweep, key=lambda r: r["stride"])],
                       equal_nan=True)
    rows = ch.stride_rows(C)
    assert len(rows) == 2 * 3 * 2 <= 12  # dtypes x optimizers x fits
    one = next(r for r in sweep if r["stride"] == 1)
    at = next(r for r in sweep if r["stride"] == s_rule)
    assert rows[0]["median T_eq/T, s = 1"] == ch.fmt(one["teq_over_t_median"], 2)
    assert rows[0][f"median T_eq/T, s = {s_rule}"] == ch.fmt(at["teq_over_t_median"], 2)
    # at s = 1 the sweep's fit is the default fit (the experiment's test holds it value for value)
    default = next(t for t in res["table"] if (t["train_dtype"], t["optimizer"], t["fit"], t["T"]) ==
                   ("float32", "adam", "default", 20))
    assert one["success_rate"] == default["success_rate"]
    text = ch.stride_text(C)
    rule = res["stride_rule"]
    assert (f"k = {rule['k']} snapshots, blocks of at most m = {rule['max_block_size']} weights, and at least "
            f"c = {rule['c']:g} snapshot pairs") in text and f"is s = {s_rule} ({at['snapshots']} snapshots" in text


def _sweep(values):
    return [DeSolverStrideSweepRow(train_dtype="float32", optimizer="adam", fit="default-strided", stride=s, rule=False,
                                   T=2500, horizon=2500, n_inits=3, snapshots=10, pairs_per_coordinate=1.0,
                                   success_rate=1.0, teq_over_t_median=v, loss_koopman_median=None,
                                   loss_optimizer_median=None, median_max_spectral_radius=None,
                                   fit_seconds_per_network=0.1) for s, v in values]


def test_keeps_up_to_stride_at_both_sides_of_the_threshold():
    assert ch.keeps_up_to_stride(_sweep([(4, KEEPS_UP), (1, 0.9), (8, KEEPS_UP - 1e-9), (16, 0.9)])) == 4
    assert ch.keeps_up_to_stride(_sweep([(1, KEEPS_UP - 1e-9), (2, 0.9)])) is None
    assert ch.keeps_up_to_stride(_sweep([(1, 0.9), (2, None)])) == 1


def test_state_tables_and_text(C, res):
    tables = ch.state_tables(C)
    assert len(tables) == 2 * 3  # dtypes x optimizers (this build only)
    heading, rows = tables[0]
    assert heading == ("**this build (ci)**, Adam, float32 training: the weights with exp_avg, sqrt(exp_avg_sq) "
                       "(blocks of 6 and 33 observables):")
    assert len(rows) == len(C.fits) <= 12 and [r["fit"] for r in rows] == [ch.FIT_LABEL[f] for f in C.fits]
    for r, f in zip(rows, C.fits):
        for T in (20, 51):
            st = next(x for x in res["state_observables"] if (x["train_dtype"], x["optimizer"], x["fit"], x["T"])
                      == ("float32", "adam", f, T))
            w = next(x for x in res["table"] if (x["train_dtype"], x["optimizer"], x["fit"], x["T"])
                     == ("float32", "adam", f, T))
            # the weights-only values beside the state's are the table's (the same fit)
            assert r[f"T = {T}: success, median T_eq/T"] == ch.state_cell(
                st["success_rate"], st["teq_over_t_median"], w["success_rate"], w["teq_over_t_median"])
        assert r["stride, state / weights"] == f"{st['stride']} / {w['stride']}"
    assert ch.state_cell(1.0, 0.987, 0.5, None) == "state 100%, 0.99; weights 50%, n/a"
    text = ch.state_text(C)
    assert text.startswith("In this build (ci):\n\n- *paper fit, float32 training.* Adam: at T = 20")
    assert "*library default, float64 training.*" in text and "no buffer holds the step count" in text
    assert f"from {8 / 1080:.3g} to {8 / 1180:.3g}" in text  # 8 / (1000 + t) at t1 = 80 and t2 = 180


def _state(T, med, med_w, rho=1.01, stride=1, horizon=None):
    return DeSolverStateObservablesRow(
        train_dtype="float32", fit="paper", optimizer="adam", T=T, buffers=["exp_avg"], transforms=["identity"],
        block_sizes=[4], n_inits=3, stride=stride, horizon=horizon or T, success_rate=1.0, teq_over_t_median=med,
        teq_over_t_median_other_origin=med, censored=0, median_relative_weight_error=0.2,
        median_max_spectral_radius=rho, error_ratio=None, weights_success_rate=0.5, weights_teq_over_t_median=med_w,
        weights_median_relative_weight_error=0.4)


def test_state_line_each_branch():
    line = ch.state_line([_state(5000, 0.5, 0.1), _state(2500, KEEPS_UP, 0.3)])
    assert line.startswith("Adam: at T = 2500 the median T_eq/T is 0.8 with the state against 0.3 on the weights "
                           "alone (success 100% against 50%); the longest T it keeps up to is 2500 with the state, "
                           "none without; where it stops (T = 5000)")
    assert f"a factor {ch.growth_text(5000 * math.log10(1.01))} over the 5000 steps predicted" in line
    assert "end 0.2 of their travel from the optimizer's (0.4 without the state)" in line
    through = ch.state_line([_state(2500, 0.9, 0.9), _state(5000, 0.9, 0.1)])
    assert "the longest T it keeps up to is 5000 with the state, 2500 without" in through and "stops" not in through
    strided = ch.state_line([_state(2500, 0.1, 0.1, rho=1.21, stride=2, horizon=2400)])
    assert "to is none with the state" in strided and "1 + 0.1 per step" in strided
    assert f"a factor {ch.growth_text(2400 * math.log10(1.1))} over the 2400 steps predicted" in strided


# -- timing ----------------------------------------------------------------------------------------
def test_timing_rows_and_notes(C2, res):
    rows = ch.timing_rows(C2)
    assert len(rows) == 2 * 2 * 3  # runs x dtypes x optimizers
    r = rows[0]
    tm = res["by_dtype"]["float32"]["timing"]["adam"]
    assert r["paper-style step (ms)"] == 1e3 * tm["paper_style_step_seconds"]
    assert r["fit+jump, library default, T=20 (ms)"] == 1e3 * tm["koopman"]["default"]["fit_and_jump_seconds"]["20"]
    assert "torch thread, medians of 1 interleaved repeats of 5 steps" in ch.load_note(res, "x")
    assert ch.load_notes(C2).startswith("This build (ci): ") and "Paper profile: " in ch.load_notes(C2)
    tms = res["by_dtype"]["float32"]["timing"].values()
    gain = np.median([t["fast_loop_step_seconds"] / t["batched_step_seconds_per_network"] for t in tms])
    assert f"a batched optimizer step costs {1 / gain:.2f} of a single-network fast-loop step" in ch.batching_text(C2)
    speed = ch.rows_at(res, 20, ch.SPEEDUP_COLUMNS)
    assert [r["speedup_paper_style_median"] for r in speed] == [t["speedup_paper_style_median"] for t in res["table"]
                                                                if t["T"] == 20]


# -- float64 training ("Beyond the paper") ---------------------------------------------------------
def _beyond(success, when):
    return {"provenance": {"git_sha": "abcdef1234567", "utc_time": when, "config": {"de_inits": 4}},
            "baselines": [{"experiment": "de-solver", "comparison": "equal steps", "method": DE_PAPER_FIT,
                           "success_rate": success, "teq_over_t_median": 0.5}]}


def test_precision_rows_and_text(C, C2):
    assert ch.precision_text("paper", None, {}) == ""
    rows = ch.precision_rows(C, "paper", None)
    assert rows[0] == {"chapter": "this one (paper profile)", "training": "float32", "fit": "paper fit",
                       "networks": "not run yet"}
    assert all(r["networks"] == "not run yet" for r in rows)
    by = _beyond(0.5, "2026-01-02T00:00:00")
    rows = ch.precision_rows(C2, "full", by)
    assert len([r for r in rows if r["chapter"] == "this one (paper profile)"]) == 2 * len(C2.fits)
    assert next(r for r in rows if r["fit"] == "paper: node operators, pinv")["success"] == "50 %"
    text = ch.precision_text("full", by, {"full": by, "paper": _beyond(0.25, "2025-01-01T00:00:00")})
    assert text.startswith("With float64 training the paper's own fit reaches 50 % success")
    assert "The saved paper-profile run of commit `abcdef1234` (2025-01-01)" in text and "reached 25 %." in text
    assert "torch.linalg.pinv" in text


# -- what it means ---------------------------------------------------------------------------------
def test_reach_is_the_longest_T_that_keeps_up(res, C):
    far = ch.reach(res, C.opts)
    for (d, f, n), T in far.items():
        meds = {r["T"]: r["teq_over_t_median"] for r in res["table"] if (r["train_dtype"], r["fit"], r["optimizer"]) == (d, f, n)}
        assert T == max((t for t, v in meds.items() if v is not None and v >= KEEPS_UP), default=0)


def _with_medians(res, value):
    R = copy.deepcopy(res)
    for r in R["table"]:
        r["teq_over_t_median"] = value
    return R


def test_keeping_up_text_at_both_sides_of_the_threshold(C, res):
    up = dataclasses.replace(C, res=_with_medians(res, KEEPS_UP))
    assert "every optimizer keeps up at the authors' T = 20" in ch.keeping_up_text(up)
    assert "Adam 51" in ch.keeping_up_text(up)
    down = dataclasses.replace(C, res=_with_medians(res, KEEPS_UP - 1e-9))
    assert "not every optimizer keeps up even at the authors' T = 20" in ch.keeping_up_text(down)
    assert "Adam none" in ch.keeping_up_text(down)


def test_meaning_text_reads_the_verdicts_and_the_rows(C, res):
    text = ch.meaning_text(C)
    for line in ch.table1(res, C.opts, C.fits):
        if line["training"] == "float32":
            assert f"{line['optimizer']} {line['quantity']}" in text and f"**{line['verdict: paper fit']}**" in text
    assert text.startswith("Verdicts of the paper fit (float32 training), from this build (profile ci, 2 networks")
    rows = {r["optimizer"]: r for r in res["table"] if (r["T"], r["fit"], r["train_dtype"]) == (20, "paper", "float32")}
    origin = max(abs(r["teq_over_t_median"] - r["teq_over_t_median_other_origin"]) for r in rows.values())
    assert f"moves the median T_eq/T by at most {origin:.4f}" in text
    assert "this run trains in float32 and float64." in text
    assert f"on a whole run of t2 + T = {180 + 20} steps the saving is at most T / (t2 + T) = {20 / 200:.0%}" in text


# -- older files -----------------------------------------------------------------------------------
def test_older_files_are_upgraded_once_on_load():
    """A file from before the named fits: its pinv rows are the paper fit's, the fit-method rows get
    their own table, per-fit entries keyed "pinv" become "paper"."""
    old = {"table": [_table_row(fit_method=m).as_dict() for m in ("pinv", "lstsq")],
           "networks": [_network(True, 1.0, 0.1).as_dict()],
           "main": {"train_dtype": "float32", "T": 2500},
           "by_dtype": {"float32": {"spectra": {"pinv": {"adam": 1}}, "fig2e": {"pinv": {"adam": 2}},
                                    "timing": {"adam": {"koopman": {"pinv": 3}}}}}}
    for rows in (old["table"], old["networks"]):
        for r in rows:
            del r["fit"], r["cutoff"]
    new = upgrade(json.loads(json.dumps(old)), "de-solver")
    assert [(r["fit"], r["fit_method"], r["cutoff"]) for r in new["table"]] == [("paper", "pinv", "paper")]
    assert [(r["fit"], r["fit_method"]) for r in new["fit_methods_table"]] == [("paper", "pinv"), ("paper", "lstsq")]
    assert new["networks"][0]["fit"] == "paper" and new["main"]["fit"] == "paper" and new["fits"] == {"paper": "paper"}
    part = new["by_dtype"]["float32"]
    assert part["spectra"] == {"paper": {"adam": 1}} and part["fig2e"] == {"paper": {"adam": 2}}
    assert part["timing"]["adam"]["koopman"] == {"paper": 3}
    assert declared.validate({k: new[k] for k in ("schema_version", "experiment", "table", "fit_methods_table")},
                             "de-solver") == []
    assert "fit" not in old["table"][0]  # the file read is not changed


def test_the_committed_file_loads_unchanged_and_validates():
    path = REPO_ROOT / "results" / "paper" / "de-solver.json"
    if not path.is_file():
        pytest.skip("no committed paper-profile results")
    loaded, raw = load_results(path), json.loads(path.read_text())
    assert declared.validate(loaded, "de-solver") == []
    assert all(loaded[k] == v for k, v in raw.items() if k not in ("schema_version", "experiment"))


# -- the spread over networks (what stands for the optimizer against itself) ----------------------------
def _spread_checks(C: ch.Chapter, R: dict):
    """:func:`ch.spread_figure` on chapter ``C`` reading run ``R``: one panel no wider than the text column,
    every network of the judged fits at its T_eq/T, the median with the scorecard's interval, the tolerance
    band from the rule's bound to the paper's value, and the front page's verdicts in the tick labels."""
    from matplotlib.collections import PathCollection, PolyCollection
    from koopman_repro.scorecard.intervals import median
    fig = ch.spread_figure(C)
    assert fig.get_size_inches()[0] <= 7 and len(fig.axes) == 1
    ax = fig.axes[0]
    d, _, T0 = ch.main_of(R)
    fits = [f for f in sc.SCORE_FITS if f in ch.fits_of(R)]
    assert ax.get_ylabel() == f"T_eq / T at T = {T0} steps (per network)" and "optimizer" in ax.get_xlabel()
    labels = _labels(ax)
    assert ax.get_legend() is not None and "paper's median T_eq/T" in labels
    assert all(f"one network, {ch.FIT_LABEL[f]}" in labels for f in fits)
    assert any(lab.startswith("tolerance: the rule's bound (paper - 0.1)") for lab in labels)
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(scatters) == len(C.opts) * len(fits) and len(bands) == len(C.opts)
    rule, table1_rows = sc.RULES["T_eq/T"], ch.table1(R, C.opts, fits)
    medians = iter(c.lines[0].get_ydata()[0] for c in ax.containers)
    for i, name in enumerate(C.opts):
        paper = PAPER_TABLE1[name]["teq_over_t_median"]
        y = bands[i].get_paths()[0].vertices[:, 1]
        assert (y.min(), y.max()) == pytest.approx((rule.bound(paper), paper))
        tick = ax.get_xticklabels()[i].get_text()
        line = next(r for r in table1_rows if r["optimizer"] == ch.LABEL[name] and r["quantity"] == "T_eq/T"
                    and r["training"] == d)
        assert tick == ch.LABEL[name] + "\n" + "\n".join(f"{ch.FIT_LABEL[f]}: {line[f'verdict: {ch.FIT_LABEL[f]}']}"
                                                          for f in fits)
        for j, f in enumerate(fits):
            want = [n["teq_over_t"] for n in R["networks"] if (n["train_dtype"], n["fit"], n["optimizer"], n["T"])
                    == (d, f, name, T0)]
            got = np.asarray(scatters[i * len(fits) + j].get_offsets(), dtype=float)[:, 1]
            assert sorted(got) == pytest.approx(sorted(want))
            assert next(medians) == pytest.approx(median(want).value)
    return fig


def test_spread_figure_on_the_tiny_run(C, res):
    _spread_checks(C, res)
    text = ch.spread_text(C)
    assert "deterministic given the initialisation" in text and sc.RULES["T_eq/T"].text in text
    assert text.count("\n- ") == len([f for f in sc.SCORE_FITS if f in ch.fits_of(res)])


def test_spread_figure_on_the_committed_run():
    path = REPO_ROOT / "results" / "paper" / "de-solver.json"
    if not path.is_file():
        pytest.skip("no committed paper-profile results")
    saved = load_results(path)
    Cs = ch.Chapter(saved, saved, config_for("de-solver", "ci", **TINY), "ci")
    _spread_checks(Cs, saved)
    text = ch.spread_text(Cs)
    assert text.startswith("T_eq/T of every network at T = 2500 (paper-profile run, float32 training)")
    assert "over 25 networks" in text


def test_spread_figure_of_a_run_without_per_network_rows_says_so(C, res):
    old = copy.deepcopy(res)
    old["networks"] = []
    none = dataclasses.replace(C, res=old)
    assert ch.spread_figure(none) is None
    assert ch.spread_text(none) == (f"T_eq/T per network (this build, profile ci): {ch.NOT_SAVED} (the run keeps no "
                                    "per-network rows).")
