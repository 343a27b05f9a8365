"""The regeneration check (koopman reproduce EXP --check): it compares what it should, and it fails
on a planted change."""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace

import pytest

from koopman_repro import regeneration as rg, staleness
from koopman_repro.check_values import check_table, read_check_values
from koopman_repro.cli import main
from koopman_repro.experiments import perceptron, run_config

TINY = replace(perceptron.PROFILES["ci"], n_sims=12, sweep_sims=6, bootstrap=10, window_sweep=(50, 100),
               input_sweep=((4, 1),))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small perceptron run saved as ``koopman reproduce`` saves it."""
    out = tmp_path_factory.mktemp("saved")
    run_config("perceptron", TINY, out, "ci")
    return out / "perceptron.json"


def test_tolerance_bounds_and_nan():
    tol = rg.Tolerance(1e-5, 0.0, "test")
    assert tol.close(1.0, 1.0 + 0.99e-5) and not tol.close(1.0, 1.0 + 1.01e-5)
    assert tol.close(float("nan"), float("nan")) and not tol.close(1.0, float("nan"))
    assert tol.close(None, None) and not tol.close(None, 0.0)
    assert rg.TOLERANCES["same hardware"].rtol < rg.TOLERANCES["early"].rtol


def test_compare_counts_differences_missing_and_what_other_hardware_cannot_compare():
    saved = {0: {"early:weights_norm@0": 1.0, "loss": 2.0, "gone": 3.0}}
    now = {0: {"early:weights_norm@0": 1.0, "loss": 2.5}}
    same = rg.compare(saved, now, [0], True, rg.Report("x", "f", [0], True, ("a", "a")))
    assert same.differences == [(0, "loss", 2.0, 2.5)] and same.missing == [(0, "gone")]
    assert len(same.compared) == 2 and math.isclose(same.coverage, 2 / 3) and not same.ok
    other = rg.compare(saved, now, [0], False, rg.Report("x", "f", [0], False, ("a", "b")))
    assert other.ok and other.compared == [(0, "early:weights_norm@0")]
    assert sorted(k for _, k in other.not_comparable) == ["gone", "loss"]
    empty = rg.Report("x", "f", [0], True, ("a", "a"))
    assert not empty.ok  # nothing compared is not a pass


def test_networks_auto_follows_the_commit_and_bad_indices_are_refused():
    assert rg.choose_networks("auto", 25, "0000000a") == [10]
    assert rg.choose_networks("auto", 25, "ffffffff") == [int("ffffffff", 16) % 25]
    assert rg.choose_networks("all", 3) == [0, 1, 2] and rg.choose_networks([2, 0, 2], 3) == [0, 2]
    with pytest.raises(rg.CheckError, match=r"networks \[7\] are not in the saved run"):
        rg.choose_networks([7], 3)


def test_check_table_round_trip():
    per = {3: {"a": 1.0, "b": float("inf")}, 1: {"a": 2.0}}
    table = check_table(per)
    assert table["networks"] == [1, 3] and table["keys"] == ["a", "b"]
    assert read_check_values({"check_values": table}) == {1: {"a": 2.0, "b": None}, 3: {"a": 1.0, "b": None}}


def test_a_saved_run_regenerates_network_by_network(saved):
    report = rg.check("perceptron", saved, [0, 11])
    assert report.ok, "\n".join(report.lines())
    assert report.same_hardware and report.coverage == 1.0
    stored = read_check_values(json.loads(saved.read_text()))
    assert len(report.compared) == len(stored[0]) + len(stored[11])


def test_a_planted_change_fails_the_check(saved, tmp_path, capsys):
    data = json.loads(saved.read_text())
    table = data["check_values"]
    row, col = table["networks"].index(4), table["keys"].index("node/paper:mean_percent_error_after_start")
    table["values"][row][col] += 0.5
    planted = tmp_path / "perceptron.json"
    planted.write_text(json.dumps(data))
    report = rg.check("perceptron", planted, [4])
    assert not report.ok and [(d[0], d[1]) for d in report.differences] == [
        (4, "node/paper:mean_percent_error_after_start")]
    assert main(["reproduce", "perceptron", "--check", str(planted), "--networks", "4"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS network 4 node/paper:mean_percent_error_after_start" in out and "FAILED" in out


def test_a_changed_setting_in_the_code_path_fails_the_check(saved, tmp_path):
    """The check reruns with the file's settings: a run whose recorded settings no longer make
    its values (here: the recorded learning rate edited) differs in every later value."""
    data = json.loads(saved.read_text())
    data["provenance"]["config"]["eta"] = 0.006
    edited = tmp_path / "perceptron.json"
    edited.write_text(json.dumps(data))
    report = rg.check("perceptron", edited, [1])
    assert not report.ok
    assert {k for _, k, _, _ in report.differences} >= {"early:weights_norm@10", "rule:mean_percent_error_after_start"}


def test_a_file_without_check_values_is_refused_with_the_fix(saved, tmp_path):
    data = json.loads(saved.read_text())
    del data["check_values"]
    old = tmp_path / "perceptron.json"
    old.write_text(json.dumps(data))
    with pytest.raises(rg.CheckError, match="no per-network check values.*koopman reproduce perceptron"):
        rg.check("perceptron", old)
    assert main(["reproduce", "perceptron", "--check", str(old)]) == 2
    assert main(["reproduce", "perceptron", "--check", str(tmp_path / "none.json")]) == 2


def test_the_record_is_read_back(tmp_path):
    rows = [{"experiment": "perceptron", "profile": "paper", "outcome": "regenerates", "code_hash": "x"}]
    path = rg.write_record(rows, tmp_path / "regeneration.json")
    assert staleness.read_record(path) == {("perceptron", "paper"): rows[0]}
    assert staleness.read_record(tmp_path / "missing.json") == {}


def test_a_quick_check_lists_what_it_does_not_rerun_apart_from_the_coverage(saved, monkeypatch):
    """An experiment's quick check reruns part of a network (``quick_config``); the keys its rerun
    does not make (``regenerated``) are listed as not rerun and left out of the coverage."""
    quick = 1.5    # a quick config marked by its asymptote tolerance, which no check value depends on
    monkeypatch.setattr(perceptron, "quick_config", lambda cfg: replace(cfg, asymptote_tol=quick), raising=False)
    monkeypatch.setattr(perceptron, "regenerated",
                        lambda cfg, key: key.startswith("early:") or cfg.asymptote_tol != quick, raising=False)
    report = rg.check("perceptron", saved, [2], quick=True)
    assert report.ok and report.coverage == 1.0
    assert {k for _, k in report.compared} == {k for k in read_check_values(json.loads(saved.read_text()))[2]
                                               if k.startswith("early:")}
    assert report.not_rerun and all(not k.startswith("early:") for _, k in report.not_rerun)
    assert any("not rerun by this quick check" in line for line in report.lines())
    full = rg.check("perceptron", saved, [2])          # without quick: every value
    assert not full.not_rerun and len(full.compared) > len(report.compared)


def test_beyond_quick_keys_map_to_their_studies():
    from koopman_repro.experiments import beyond
    quick = beyond.quick_config(beyond.PROFILES["paper"])
    assert set(quick.items) == set(beyond.QUICK_ITEMS) & set(beyond.PROFILES["paper"].items)
    assert beyond.regenerated(quick, "early:de:weights_norm@0") and beyond.regenerated(quick, "de:loss@t2")
    assert not beyond.regenerated(quick, "mnist:loss@t2") and not beyond.regenerated(quick, "cnn:paper:teq_over_t")
    assert beyond.regenerated(beyond.PROFILES["paper"], "fashion:x")
