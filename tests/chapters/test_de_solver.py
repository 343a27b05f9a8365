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
from koopman_repro.rows.de_solver import DeSolverNetworksRow, DeSolverTableRow, DeSolverWhereItStopsRow  # noqa: E402
from koopman_repro.scorecard import DE_ENERGY_LOST, DE_NOT_SOLVED, DE_ORIGINAL_WORKS, KEEPS_UP  # noqa: E402

#: the tiny config of tests/test_de_solver.py
TINY = dict(n_inits=2, n_steps=240, t1=80, t2=180, Ts=(20, 50), T_main=20, timing_repeats=1, timing_steps=5,
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
    rows = ch.table(res, T=50, fit="default", train_dtype="float64")
    assert rows and all(isinstance(r, DeSolverTableRow) for r in rows)
    assert [r.optimizer for r in rows] == list(config_for("de-solver", "ci").optimizers)
    raw = [r for r in res["table"] if (r["T"], r["fit"], r["train_dtype"]) == (50, "default", "float64")]
    assert [r.as_dict() for r in rows] == raw
    assert ch.first(rows, optimizer="nope") is None
    assert ch.fits_of(res) == ["paper", "default", "default-stabilised"]
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
    assert next(r for r in rows if r["setting"] == "T")["ours"] == "20, 50"


# -- Table 1 and its verdicts --------------------------------------------------------------------
def test_table1_shows_the_rows_values_and_the_front_pages_verdicts(res, C):
    out = ch.table1(res, C.opts, C.fits)
    assert len(out) == 2 * (3 * len(C.opts) + 1)  # per dtype: 3 quantities per optimizer + the error ratio
    for line in out:
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
            # three-way, over the interval of the row's networks (the error ratio has none: inconclusive)
            iv = None if rule == "error ratio" else sc.de_row_interval({"de-solver": res}, r, rule)
            assert iv is None or iv.value == pytest.approx(v)
            want = sc.RULES[rule].verdict(iv or Interval(v, 0, None, None), paper)
            if line["training"] != ch.main_of(res)[0]:      # the front page judges the main reading only
                want = ch.OTHER_READING[want]
            assert line[f"verdict: {ch.FIT_LABEL[f]}"] == want


def test_table1_marks_fits_a_run_lacks():
    R = {"fits": {"paper": "paper"}, "main": {"T": 2500}, "error_ratio_optimizer": "adam", "experiment": "de-solver",
         "provenance": {"config": {"train_dtypes": ["float32"]}}, "table": [_table_row().as_dict()]}
    out = ch.table1(R, ["adam"], ["paper", "default"])
    assert all(line["library default"] == "not run" and line["verdict: library default"] == "" for line in out)
    assert out[0]["paper fit"] == "100%" and out[1]["paper fit"] == "1.00" and out[2]["paper fit"] == "60x"


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
    assert len(ax.collections) == 3 * 2 * 3  # optimizers x runs x fits
    assert ax.get_ylabel() == "T_eq / T"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Adam", "Adagrad", "Adadelta"]
    assert "this build (ci), paper fit (float32 training)" in _labels(ax)
    y = sorted(float(v) for v in ax.collections[0].get_offsets()[:, 1])
    assert y == sorted(n["teq_over_t"] for n in res["networks"]
                       if (n["optimizer"], n["fit"], n["T"], n["train_dtype"]) == ("adam", "paper", 20, "float32"))
    rows = ch.rows_at(res, 20, ch.TEQ_COLUMNS)
    assert len(rows) == 2 * 3 * 3 and list(rows[0]) == ch.TEQ_COLUMNS
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
    rows = ch.error_ratio_rows(C2)
    assert len(rows) == 2 * 2 * 3 * 2  # runs x dtypes x fits x (main T, largest T)
    assert all(r["error_ratio"] == next(t["error_ratio"] for t in res["table"] if (t["optimizer"], t["T"], t["fit"],
               t["train_dtype"]) == (er_opt, r["T"], r["fit"], r["train_dtype"])) for r in rows)


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
    assert len(rows) == 3 * 3
    for r in rows:
        table_row = next(t for t in res["table"] if (t["optimizer"], t["fit"], t["T"], t["train_dtype"])
                         == (r["optimizer"], r["fit"], 20, "float32"))
        assert r["success_rate"] == table_row["success_rate"] and r["networks"] == 2
        sp = res["by_dtype"]["float32"]["spectra"][r["fit"]][r["optimizer"]]
        rho = float(np.median(sp["max_spectral_radius"]))
        assert r["median largest radius - 1"] == rho - 1 and r["its growth over T=20"] == pytest.approx(rho ** 20)
        assert 0 <= r["share of blocks with radius > 1"] <= 1
    assert all(r["share of blocks with radius > 1"] == 0 for r in rows if r["fit"] == "default-stabilised")


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
    assert len(left.collections) == len(right.collections) == 3 * 3
    assert left.get_xscale() == "log" and right.get_xscale() == "symlog"
    assert "Adam, paper fit" in _labels(left)
    nets = [n for n in res["networks"] if (n["optimizer"], n["fit"], n["T"], n["train_dtype"]) == ("adam", "paper", 20, "float32")]
    assert sorted(right.collections[0].get_offsets()[:, 1]) == sorted(n["teq_over_t"] for n in nets)
    n_ok = sum(n["success"] for n in res["networks"] if (n["fit"], n["T"], n["train_dtype"]) == ("paper", 20, "float32"))
    assert ch.conditioning_text(C).startswith(
        f"In this build (profile ci) (paper fit, float32 training, T = 20), {n_ok} of 6 networks succeed.")


def test_fit_method_rows(C, res):
    rows = ch.fit_method_rows(C)
    assert {r["fit_method"] for r in rows} == {"pinv", "lstsq"} and len(rows) == 2 * 3
    for r in rows:
        raw = next(m for m in res["fit_methods_table"] if (m["optimizer"], m["fit_method"], m["T"], m["train_dtype"])
                   == (r["optimizer"], r["fit_method"], 20, "float32"))
        assert r == {k: raw[k] for k in r}


# -- where it stops --------------------------------------------------------------------------------
def _stops(lo, st, growing=0.25):
    return DeSolverWhereItStopsRow(
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


def test_stop_rows_texts_and_figure(C2, res):
    rows = ch.stop_rows(C2)
    assert len(rows) == 2 * len(res["where_it_stops"])
    for r, w in zip(rows, res["where_it_stops"]):
        assert r["keeps up to T"] == (w["longest_T_keeping_up"] or "none")
        assert r["blocks growing"] == ch.pct(w["share_blocks_growing"])
    texts = ch.stop_texts(C2)
    assert len(texts) == 2 and texts[0].startswith("**this build (ci)**:") and texts[1].startswith("**paper profile**:")
    assert texts[0].count("\n- *") == 2 * 3  # one line per dtype and fit
    assert ch.stops_note(C2) == ""
    no_stops = dataclasses.replace(C2, saved={**C2.saved, "where_it_stops": []})
    assert ch.stops_note(no_stops).startswith("The saved paper-profile run predates") and len(ch.stop_texts(no_stops)) == 1
    fig = ch.where_it_stops_figure(C2)
    assert len(fig.axes) == 2 * 3 and fig._suptitle.get_text() == "paper profile: where Koopman training stops keeping up"
    top = fig.axes[0]
    assert len(top.lines) == 2 * 3 + 1 and top.get_ylabel() == "median T_eq / T"  # dtypes x fits, the threshold
    assert list(top.lines[-1].get_ydata()) == [KEEPS_UP, KEEPS_UP]
    assert len(fig.axes[3].patches) == 2 * 3 * 3  # bars: dtypes x fits x layers


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
    assert len([r for r in rows if r["chapter"] == "this one (paper profile)"]) == 2 * 3
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
    assert "Adam 50" in ch.keeping_up_text(up)
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
