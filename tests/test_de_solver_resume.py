"""The DE solver in stages (one optimizer in one training dtype each, :mod:`koopman_repro.experiments.
de_solver.stages`): an interrupted run resumes from its partial results with exactly the results of an
uninterrupted one, a partial file of another config is ignored, and the stages joined give the rows of
every optimizer in the order of a batched run."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from koopman_repro.experiments import de_solver as ds
from koopman_repro.partial import Partial
from koopman_repro.results import to_jsonable

#: both training dtypes, two optimizers (the second's state not recorded), the solver check on
TINY = ds.Config(n_inits=2, n_steps=240, t1=80, t2=180, Ts=(20, 50), T_main=20, timing_repeats=1, timing_steps=2,
                 timing_networks=1, curve_points=5, window_stride=20, loss_curve_points=10, ode_points=50,
                 n_points=50, check_steps=10, check_hidden=(4, 4), check_inits=1, sweep_strides=(1, 3),
                 sweep_repeats=1, optimizers=("adam", "adadelta"), state_optimizers=("adam",),
                 train_dtypes=("float32", "float64"))
#: keys of measured times (and what follows from them), left out of the comparison
TIMED = ("second", "speedup", "wall")


def untimed(obj):
    """``obj`` as JSON data without the measured times."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if not any(t in str(k) for t in TIMED)}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted run, no partial results kept."""
    return untimed(to_jsonable(ds.run(TINY)))


def test_an_interrupted_run_resumes_with_the_same_results(reference, tmp_path, monkeypatch, capsys):
    """The run fails in its third stage (float64, adam), then resumes: the two float32 stages are read
    back, not recomputed; a stage file of another config in the way is ignored and recomputed; the
    results equal the uninterrupted run's, and the partial results are gone."""
    real, calls = ds.optimizer_stage, []

    def failing(cfg, dtype_name, name):
        calls.append((dtype_name, name))
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real(cfg, dtype_name, name)

    monkeypatch.setattr(ds, "optimizer_stage", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        ds.run(TINY, results_dir=tmp_path)
    folder = tmp_path / ".partial" / "de-solver"
    assert sorted(p.name for p in folder.glob("*.json")) == ["float32-adadelta.json", "float32-adam.json"]
    saved = json.loads((folder / "float32-adam.json").read_text())
    assert saved["config"] == to_jsonable(Partial(None, TINY).config)
    Partial(folder, replace(TINY, lr_numerator=4.0)).stage("float64-adadelta", lambda: {"table": "not this run's"})
    calls.clear()
    resumed = untimed(to_jsonable(ds.run(TINY, results_dir=tmp_path)))
    assert calls == [("float64", "adam"), ("float64", "adadelta")]
    out = capsys.readouterr().out
    assert "float32-adam read from" in out and "float64-adadelta.json: made with another config" in out
    assert not (tmp_path / ".partial").exists()
    assert resumed == reference


def test_a_stage_read_back_gives_the_same_results(reference, tmp_path, capsys):
    """Every stage kept by a complete run's partial results (put back after it cleared them) is read
    back by the rerun, which computes nothing and gives the same results."""
    kept = {}
    real_clear = Partial.clear

    def keep(self):
        kept.update({p.name: p.read_text() for p in self.folder.glob("*.json")})
        real_clear(self)

    Partial.clear = keep
    try:
        first = untimed(to_jsonable(ds.run(TINY, results_dir=tmp_path)))
    finally:
        Partial.clear = real_clear
    assert sorted(kept) == ["float32-adadelta.json", "float32-adam.json", "float64-adadelta.json",
                            "float64-adam.json", "solver-check.json"]
    folder = tmp_path / ".partial" / "de-solver"
    folder.mkdir(parents=True)
    for name, text in kept.items():
        (folder / name).write_text(text)
    capsys.readouterr()
    again = untimed(to_jsonable(ds.run(TINY, results_dir=tmp_path)))
    assert capsys.readouterr().out.count("resuming:") == 5
    assert first == again == reference


def test_the_stages_join_into_a_batched_runs_row_order():
    rows = [[{"fit": f, "T": T, "o": o} for f in ("a", "b") for T in (1, 2)] for o in ("x", "y")]
    joined = ds.stages.interleave(rows, lambda r: (r["fit"], r["T"]))
    assert [(r["fit"], r["T"], r["o"]) for r in joined] == [(f, T, o) for f in ("a", "b") for T in (1, 2)
                                                              for o in ("x", "y")]
    # an optimizer without rows of a group (no state recorded) leaves the others in order
    assert ds.stages.interleave([rows[0], []], lambda r: r["T"]) == sorted(rows[0], key=lambda r: r["T"])
