"""MNIST and the regeneration check: each network's check values are the same alone and in a
group, a saved run regenerates network by network and a planted change fails; an interrupted
run resumes from its partial results with exactly the results of an uninterrupted one."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from koopman_repro import regeneration as rg
from koopman_repro.check_values import EARLY_STEPS, read_check_values
from koopman_repro.cli import main
from koopman_repro.experiments import config_for, mnist, run_config
from koopman_repro.experiments.mnist import table2
from koopman_repro.partial import Partial, decode, encode
from koopman_repro.results import to_jsonable

# 10 steps per epoch, 100 in all (the last early check value is at step 100); the studies that
# store no check values are off except the first group's (trajectories, spectra, Cholesky check)
TINY = config_for("mnist", "ci", sizes=(784, 6, 6, 6, 10), train_subset=640, test_subset=100, eval_every=5,
                  n_inits=3, group_size=3, timing_repeats=0, cutoff_sweep=("paper",), ablation_directions=(),
                  layerwise=False, replication_fits=())


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny MNIST run (3 networks trained together) saved as ``koopman reproduce`` saves it."""
    out = tmp_path_factory.mktemp("saved")
    run_config("mnist", TINY, out, "ci")
    return out / "mnist.json"


def test_regeneration_config_reruns_the_paper_experiment_on_the_chosen_networks():
    paper = mnist.PROFILES["paper"]
    assert mnist.n_networks(paper) == 25 and mnist.inits(paper) == list(range(25))
    sub = mnist.regeneration_config(paper, [7, 3])
    assert sub.networks == (7, 3) and mnist.inits(sub) == [7, 3] and mnist.groups(sub) == [[7, 3]]
    assert (sub.ablation_directions, sub.cutoff_sweep, sub.timing_repeats, sub.layerwise) == ((), (), 0, False)
    assert (sub.fits, sub.horizons_epochs, sub.window_epochs, sub.epochs) == \
        (paper.fits, paper.horizons_epochs, paper.window_epochs, paper.epochs)
    with pytest.raises(ValueError, match="networks must be distinct indices"):
        mnist.check_config(replace(TINY, networks=(3,)))
    # the ablation trains its own networks (any networks of the main table may be rerun alone) ...
    mnist.check_config(replace(paper, networks=(1, 2, 3)))
    # ... but needs at least one
    with pytest.raises(ValueError, match="the ablation needs n_ablation_inits >= 1"):
        mnist.check_config(replace(paper, n_ablation_inits=0))


def test_check_values_per_network(saved):
    stored = read_check_values(json.loads(saved.read_text()))
    assert sorted(stored) == [0, 1, 2]
    per_fit = {f"{fit}:max_spectral_radius" for fit in TINY.fits} | {
        f"{fit}:T{h}:{k}" for fit in TINY.fits for h in TINY.horizons_epochs for k in mnist.CHECKED_PER_HORIZON}
    null = {f"null:T{h}:{k}" for h in TINY.horizons_epochs for k in mnist.NULL_CHECKED_PER_HORIZON}
    expected = {f"early:weights_norm@{s}" for s in EARLY_STEPS} | {"test_loss_t2"} | \
        {f"optimizer_loss_T{h}" for h in TINY.horizons_epochs} | per_fit | null
    for values in stored.values():
        assert set(values) == expected
        assert not any("second" in k or "speedup" in k for k in values)
        assert values["early:weights_norm@0"] != values["early:weights_norm@100"]
    assert stored[0]["paper:T2:koopman_loss"] != stored[1]["paper:T2:koopman_loss"]


def test_a_network_alone_has_exactly_its_values_in_the_group(saved):
    stored = read_check_values(json.loads(saved.read_text()))
    alone = mnist.run(mnist.regeneration_config(TINY, [1]))
    assert [m["init"] for m in alone["members"]] == [1]
    assert read_check_values(alone) == {1: stored[1]}


def test_the_saved_run_regenerates_and_a_planted_change_fails(saved, tmp_path, capsys):
    report = rg.check("mnist", saved, [2])
    assert report.ok and report.same_hardware, "\n".join(report.lines())
    assert len(report.compared) == len(read_check_values(json.loads(saved.read_text()))[2])
    data = json.loads(saved.read_text())
    table = data["check_values"]
    row, col = table["networks"].index(2), table["keys"].index("default:T1:koopman_loss")
    table["values"][row][col] *= 1 + 1e-9
    planted = tmp_path / "mnist.json"
    planted.write_text(json.dumps(data))
    assert main(["reproduce", "mnist", "--check", str(planted), "--networks", "2"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS network 2 default:T1:koopman_loss" in out and "FAILED" in out


def test_partial_results_round_trip_exactly():
    obj = {"a": torch.tensor([1.5, float("nan"), float("inf")], dtype=torch.float32),
           "b": [torch.tensor([[0.1, -0.0]], dtype=torch.float64), (1, None, "x")], "c": {3: 0.1 + 0.2},
           "d": torch.tensor([2, 3])}
    back = decode(json.loads(json.dumps(encode(obj))))
    assert back["a"].dtype == torch.float32 and torch.equal(back["a"][[0, 2]], obj["a"][[0, 2]])
    assert torch.isnan(back["a"][1]) and torch.equal(back["b"][0], obj["b"][0]) and back["d"].dtype == torch.int64
    assert back["b"][1] == [1, None, "x"] and back["c"] == {"3": 0.1 + 0.2}


def test_an_interrupted_run_resumes_with_the_same_results(saved, tmp_path, monkeypatch, capsys):
    """Groups of one network; the run fails in its second group, then resumes: the first group is
    read back, not recomputed, and the results equal the uninterrupted run's (trained as one group).
    A partial file made with another config is ignored."""
    cfg = replace(TINY, group_size=1)
    real, calls = table2.paper_group, []

    def failing(cfg_, setup, ids, *args):
        calls.append(ids)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return real(cfg_, setup, ids, *args)

    monkeypatch.setattr(table2, "paper_group", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        mnist.run(cfg, results_dir=tmp_path)
    folder = tmp_path / ".partial" / "mnist"
    assert sorted(p.name for p in folder.glob("*.json")) == ["group-0.json"]
    # a finished group of another config in the way: ignored, said so, recomputed
    Partial(folder, replace(cfg, lr=0.5)).stage("group-2", lambda: {"members": "not this run's"})
    calls.clear()
    monkeypatch.setattr(table2, "paper_group", lambda *a: calls.append(a[2]) or real(*a))
    resumed = to_jsonable(mnist.run(cfg, results_dir=tmp_path))
    assert calls == [[1], [2]]
    out = capsys.readouterr().out
    assert "group-0 read from" in out and "group-2.json: made with another config" in out
    assert not (tmp_path / ".partial").exists()
    reference = json.loads(saved.read_text())
    for key in ("schema_version", "experiment", "wall_seconds", "provenance"):
        reference.pop(key)
    # two runs: everything equal but the stride sweep's measured fit times (a resume reads a kept
    # stage's times back exactly; a second run measures its own)
    assert without_seconds(resumed) == without_seconds(reference)


def without_seconds(obj):
    """``obj`` without the measured times (keys naming seconds), for comparing two runs."""
    if isinstance(obj, dict):
        return {k: without_seconds(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [without_seconds(v) for v in obj]
    return obj
    steps = resumed["curves"]["steps"]
    assert steps == sorted(set(steps)) and len(resumed["curves"]["optimizer_loss"][0]) == len(steps)
