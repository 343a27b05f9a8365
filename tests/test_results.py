import json
import os
import math

import numpy as np
import pytest
import torch

from koopman_repro import results
from koopman_repro.config import with_profile
from dataclasses import dataclass


def test_json_is_strict_and_converts_arrays(tmp_path):
    res = {"a": torch.tensor([1.0, float("nan")]), "b": np.float32(2.5), "c": [{"x": np.int64(3), "y": math.inf}]}
    path = results.save_results(tmp_path, "exp", res)
    loaded = json.loads(path.read_text())
    assert loaded == {"a": [1.0, None], "b": 2.5, "c": [{"x": 3, "y": None}]}
    assert (tmp_path / "exp-c.csv").read_text().splitlines() == ["x,y", "3,"]


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    """A write that fails after part of the new text is on disk (the disk fills up mid-write)
    leaves the previous file whole and no temporary file: the failure happens inside the write,
    not before it (an unserialisable value fails before anything is written; that case is
    test_faults.py::test_unserialisable_results_leave_every_previous_file)."""
    path = tmp_path / "r.json"
    results.write_json(path, {"ok": 1})
    real_fsync, calls = os.fsync, []

    def full_disk(fd):
        calls.append(fd)
        real_fsync(fd)             # the partial new text has reached the disk ...
        raise OSError(28, "No space left on device")   # ... and then the write fails
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        results.write_json(path, {"ok": 2, "pad": "x" * 100_000})
    monkeypatch.undo()
    assert calls, "the failure was not raised inside the write"
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_provenance_fields():
    @dataclass(frozen=True)
    class Cfg:
        seed: int = 3
    prov = results.provenance("ci", Cfg(), 3)
    for key in ("git_sha", "versions", "seed", "profile", "config", "utc_time", "hardware"):
        assert key in prov
    assert prov["config"] == {"seed": 3} and prov["versions"]["torch"] == torch.__version__


def test_profiles_reject_unknown_names_and_fields():
    @dataclass(frozen=True)
    class Cfg:
        steps: int = 1
    profiles = {"ci": Cfg(1), "paper": Cfg(100)}
    assert with_profile(profiles, "paper").steps == 100
    assert with_profile(profiles, "ci", steps=5).steps == 5
    with pytest.raises(ValueError, match="unknown profile"):
        with_profile(profiles, "full")
    with pytest.raises(ValueError, match="unknown config field"):
        with_profile(profiles, "ci", stepz=3)


def test_dirty_paths_separate_saved_results_from_code():
    from koopman_repro.results import code_changed, dirty_paths
    porcelain = " M results/paper/mnist.json\nM  results/paper/mnist-table.csv\nR  old.py -> koopman_lib/new.py\n"
    paths = dirty_paths(porcelain)
    assert paths == ["results/paper/mnist.json", "results/paper/mnist-table.csv", "koopman_lib/new.py"]
    assert code_changed(paths)
    assert not code_changed(paths[:2])
    assert not code_changed([])


def test_largest_saved_run_prefers_the_newest_then_full(tmp_path, monkeypatch):
    from koopman_repro import paths, report
    monkeypatch.setattr(paths, "SAVED_RESULTS", tmp_path)
    assert report.largest_saved_run("perceptron") == ("paper", None)
    old, new = {"provenance": {"utc_time": "2026-01-01T00:00:00+00:00"}}, {"provenance": {"utc_time": "2026-02-01T00:00:00+00:00"}}
    results.save_results(tmp_path / "paper", "perceptron", {"p": 1, **old})
    assert report.largest_saved_run("perceptron")[0] == "paper"
    results.save_results(tmp_path / "full", "perceptron", {"f": 2, **old})
    profile, run = report.largest_saved_run("perceptron")
    assert (profile, run["f"], run["experiment"]) == ("full", 2, "perceptron")  # equally recent: the larger
    results.save_results(tmp_path / "paper", "perceptron", {"p": 3, **new})
    profile, run = report.largest_saved_run("perceptron")
    assert (profile, run["p"]) == ("paper", 3)                                  # a later run: later code
