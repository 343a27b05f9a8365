"""Beyond the paper, network by network: network i of a run is network i of every study that has
at least i + 1 networks, each study seeded on its own, so that it can be rerun alone and gives the
same check values bit for bit (the regeneration check, ``koopman reproduce beyond --check``)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from koopman_repro import regeneration as rg
from koopman_repro.check_values import EARLY, read_check_values
from koopman_repro.cli import main
from koopman_lib.threads import torch_threads
from koopman_repro.experiments import beyond as bd, run_config
from test_beyond import TINY

#: two networks in every study but Fashion-MNIST (and the wide MLP): network 1 of a run is
#: network 1 of the DE solver, MNIST, the replication, the cycles and the CNN
SMALL = dataclasses.replace(bd.PROFILES["ci"], **{**TINY, "de_inits": 2, "mnist_inits": 2, "rep_inits": 2,
                                                  "cyc_inits": 2, "cnn_inits": 2,
                                                  # the polynomial dictionaries, fitted network by network
                                                  "de_observables": ("identity", "delay:2", "poly:2:x", "state"),
                                                  "mnist_observables": ("identity", "affine", "poly:2")})
STUDIES = ("de", "mnist", "stabilisation", "cycles", "wide", "cnn", "fashion")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small Beyond run saved as ``koopman reproduce`` saves it."""
    out = tmp_path_factory.mktemp("beyond")
    results = run_config("beyond", SMALL, out, "ci")
    return out / "beyond.json", results


def _study(key: str) -> str:
    return key[len(EARLY):].split(":")[0] if key.startswith(EARLY) else key.split(":")[0]


def test_every_study_stores_check_values_per_network(saved):
    _, results = saved
    stored = read_check_values(results)
    assert sorted(stored) == [0, 1]
    assert {_study(k) for k in stored[0]} == set(STUDIES)
    assert {_study(k) for k in stored[1]} == set(STUDIES) - {"wide", "fashion"}  # one network each
    assert set(results["check_values"]["absent"]) == {"1"}    # values that do not exist, not non-finite ones
    for study in STUDIES:                  # early weight norms of every study's training
        assert f"{EARLY}{study}:weights_norm@0" in stored[0] and f"{EARLY}{study}:weights_norm@1" in stored[0]
    assert {"de:koopman:teq_over_t", "de:koopman:spectral_radius", "mnist:koopman stable:teq_over_t",
            "cycles:alone:steps_to_target", "cnn:koopman pinv:test_loss", "de:observables poly2x:loss",
            "mnist:observables poly2 pinv:test_loss", "de:observables state:loss",
            "de:observables state:teq_over_t"} <= set(stored[1])
    assert not any("second" in k for k in stored[0])         # never a timing
    assert len({stored[0][k] for k in stored[0] if k.startswith(EARLY)}) > 10   # networks differ in every study
    assert all(stored[0][f"{EARLY}{s}:weights_norm@1"] != stored[1][f"{EARLY}{s}:weights_norm@1"]
               for s in ("de", "mnist", "stabilisation", "cycles", "cnn"))


def test_cycles_rerun_only_the_optimizer_alone_for_some_networks(saved):
    """The cycles share one learning-rate schedule over the ensemble: with networks chosen only the
    optimizer-alone run is made, and its values are those of the whole run."""
    _, results = saved
    with torch_threads(SMALL.torch_threads):      # as run() does: other thread counts sum in another order
        alone = bd.run_cycles(bd.regeneration_config(SMALL, [1]))
    assert alone["cycles"] == [] and results["cycles"]
    full = read_check_values(results)[1]
    assert alone["check"][1] == {k: v for k, v in full.items() if _study(k) == "cycles"}


def test_networks_select_studies_and_are_checked():
    paper = bd.PROFILES["paper"]
    assert bd.n_networks(paper) == paper.de_inits == 8
    assert bd.n_networks(dataclasses.replace(paper, items=("stabilisation", "cycles"))) == 2
    sub = bd.regeneration_config(paper, [5])
    assert sub.networks == (5,) and [item for item, n in bd.item_networks(sub).items()
                                     if bd.study_networks(sub, n)] == ["de"]
    assert bd.study_networks(bd.regeneration_config(paper, [0, 2]), paper.mnist_inits) == [0, 2]
    with pytest.raises(ValueError, match="networks must be indices"):
        bd.run(dataclasses.replace(SMALL, networks=(2,)))


def test_a_saved_run_regenerates_and_a_planted_change_fails(saved, tmp_path, capsys):
    """Network 1 rerun alone gives every check value it has in the two-network run, exactly (same
    hardware); one value changed by 1e-9 fails the check."""
    path, results = saved
    report = rg.check("beyond", path, [1])
    assert report.ok and report.same_hardware and report.coverage == 1.0, "\n".join(report.lines())
    assert len(report.compared) == len(read_check_values(results)[1]) and not report.differences
    data = json.loads(path.read_text())
    table = data["check_values"]
    row, col = table["networks"].index(1), table["keys"].index("mnist:koopman pinv:teq_over_t")
    table["values"][row][col] += 1e-9
    planted = tmp_path / "beyond.json"
    planted.write_text(json.dumps(data))
    assert main(["reproduce", "beyond", "--check", str(planted), "--networks", "1"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS network 1 mnist:koopman pinv:teq_over_t" in out and "FAILED" in out
