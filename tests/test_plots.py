"""The scorecard figure (koopman_repro.plots) on synthetic scorecard rows: it draws, labels its
axes, names every verdict colour in its legend, has one row per claim, and copes with claims
nobody measured (no experiment is run)."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from koopman_repro import plots, scorecard  # noqa: E402
from koopman_repro.report import NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED  # noqa: E402


def row(key, chapter, rule, verdict, ours=None, paper_profile=None, **extra):
    return {"key": key, "chapter": chapter, "rule": rule, "verdict": verdict, "claim": f"the claim {key}",
            "paper": "?", "where": "Table 1", "ours_value": ours, "paper_profile_value": paper_profile,
            "basis": "paper profile" if paper_profile is not None else ("this build" if ours is not None else ""),
            **extra}


SYNTHETIC = [
    row("de-adam-success", "de_solver", "success rate", REPRODUCED, ours=80.0, paper_profile=84.0),
    row("de-adam-teq", "de_solver", "T_eq/T", PARTLY, ours=0.6),
    row("de-adam-speedup", "de_solver", "speedup", NOT_REPRODUCED, ours=0.0),          # 0 on a log axis
    row("de-error-ratio", "de_solver", "error ratio", NOT_REPRODUCED, ours=50.0),      # far off the axis
    row("mnist-teq", "mnist", "T_eq/T", NOT_MEASURED),                                 # nothing measured
    row("mnist-speedup", "mnist", "speedup", NOT_MEASURED, ours=math.nan),             # NaN: not measured
    row("perceptron-s4", "perceptron", "ordering", PARTLY, ours=0.6),                  # no paper number
    row("range-de", "de_solver", "range", REPRODUCED, ours=1.0),
    row("replication-divergence", "divergence", "divergence", REPRODUCED, paper_profile=1.0),
    row("made-up-claim", None, "speedup", REPRODUCED, ours=3.0, paper_value=2.0,       # unknown claim
        claim="a claim the figure has no short name for, with a rather long statement"),
]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def draw(rows, **kw):
    fig = plots.scorecard_figure(rows, **kw)
    fig.canvas.draw()
    return fig, fig.axes[0]


def verdict_markers(ax):
    return [line for line in ax.get_lines() if line.get_gid() == "verdict-marker"]


def test_draws_one_labelled_row_per_claim():
    fig, ax = draw(SYNTHETIC)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(SYNTHETIC)
    assert labels[0] == "Adam: success rate" and labels[-1].startswith("a claim the figure")
    assert all(labels) and len(set(labels)) == len(labels)
    # one verdict marker per measured claim; the unmeasured ones say so in words
    measured = [r for r in SYNTHETIC if plots.measured(r)[0] is not None]
    assert len(verdict_markers(ax)) == len(measured) == len(SYNTHETIC) - 2
    assert sum(t.get_text() == "not measured" for t in ax.texts) == 2
    # groups (experiments) are bold minor-tick headings, each claim under its own experiment
    heads = [t.get_text() for t in ax.get_yticklabels(minor=True)]
    assert heads == [plots.GROUPS["de_solver"], plots.GROUPS["mnist"], plots.GROUPS["perceptron"],
                     plots.GROUPS["divergence"], "Other"]
    de_rows = [t.get_position()[1] for t, r in zip(ax.get_yticklabels(), SYNTHETIC) if r["chapter"] == "de_solver"]
    assert de_rows == sorted(de_rows, reverse=True) and len(de_rows) == 5


def test_axes_and_legend():
    fig, ax = draw(SYNTHETIC)
    assert ax.get_xscale() == "log"
    assert "paper" in ax.get_xlabel() and "log" in ax.get_xlabel()
    right = fig.axes[1]
    assert "units" in right.get_ylabel()
    assert len(right.get_yticklabels()) == len(SYNTHETIC)
    values = dict(zip((t.get_text() for t in ax.get_yticklabels()), (t.get_text() for t in right.get_yticklabels())))
    assert values["Adam: success rate"] == "84% vs 84%"  # the saved full-scale run's value decides
    assert values["Adam: median speedup"] == "0x vs 98x"
    assert values["median T_eq/T"] == "– vs 0.97"
    assert values["Koopman variants before the rule"] == "3 of 5 orderings hold"
    assert values["accurate over T = 2500 steps"] == "T = 2500 of 2500 steps"
    legend = fig.legends[0]
    names = [t.get_text() for t in legend.get_texts()]
    assert set(scorecard.VERDICTS) <= set(names)
    assert any("paper" in n for n in names)
    # every verdict's legend colour is the colour its markers are drawn in
    colours = {line.get_color() for line in verdict_markers(ax)}
    assert colours <= {c for c, _ in plots.VERDICT_STYLE.values()}


def test_off_axis_values_are_drawn_at_the_edge():
    fig, ax = draw(SYNTHETIC)
    lo, hi = ax.get_xlim()
    xs = {line.get_marker(): line.get_xdata()[0] for line in verdict_markers(ax) if line.get_marker() in "<>"}
    assert "<" in xs and lo < xs["<"] < 1  # the zero speedup
    for line in verdict_markers(ax):
        assert lo <= line.get_xdata()[0] <= hi


def test_no_overlapping_labels_at_the_book_width():
    fig, ax = draw(SYNTHETIC)
    assert fig.get_size_inches()[0] <= 8.0  # the book's content column is 700 to 800 px
    renderer = fig.canvas.get_renderer()
    for axis_labels in (ax.get_yticklabels() + ax.get_yticklabels(minor=True), fig.axes[1].get_yticklabels(),
                        [t for t in ax.get_xticklabels() if t.get_text()]):
        boxes = [t.get_window_extent(renderer) for t in axis_labels if t.get_visible()]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not a.overlaps(b), f"labels overlap: {a} and {b}"
    # the legend sits below the axes, not on them
    assert fig.legends[0].get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0


def test_nothing_measured_and_every_registered_claim():
    rows = scorecard.evaluate({n: None for n in scorecard.EXPERIMENT_NAMES}, {})
    fig, ax = draw(rows)
    assert len(ax.get_yticklabels()) == len(scorecard.CLAIMS)
    assert not verdict_markers(ax)
    assert sum(t.get_text() == "not measured" for t in ax.texts) == len(rows)
    # every registered claim has a short name of its own
    names = [plots.short_name(r) for r in rows]
    assert len(set(names)) == len(names) and max(map(len, names)) <= 40


def test_empty_and_single_row():
    fig, ax = draw([row("de-adam-speedup", "de_solver", "speedup", REPRODUCED, ours=98.0)])
    assert len(verdict_markers(ax)) == 1 and verdict_markers(ax)[0].get_xdata()[0] == pytest.approx(1.0)
    fig, ax = draw([])
    assert not ax.get_yticklabels()
