"""The DE solver regenerates network by network: a network is its own seed (whichever other networks
and optimizers share the run), its check values are the same alone and with the others, and the
regeneration check (koopman reproduce de-solver --check) passes on a saved run and fails on a
planted change."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from koopman_repro import regeneration as rg
from koopman_repro.check_values import EARLY_STEPS, read_check_values
from koopman_repro.cli import main
from koopman_repro.experiments import de_solver as ds, run_config
from koopman_repro.experiments.de_solver import training

#: few steps, 3 networks, both training dtypes (each stores its own check values)
TINY = ds.Config(n_inits=3, n_steps=160, t1=60, t2=120, Ts=(20, 40), T_main=20, timing_repeats=1, timing_steps=2,
                 timing_networks=1, curve_points=5, window_stride=20, loss_curve_points=10, ode_points=50,
                 n_points=50, check_steps=10, check_hidden=(4, 4), check_inits=1,
                 train_dtypes=("float32", "float64"), sweep_strides=(1, 4), sweep_repeats=1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The tiny run saved as ``koopman reproduce`` saves it."""
    out = tmp_path_factory.mktemp("de_saved")
    run_config("de-solver", TINY, out, "ci")
    return out / "de-solver.json"


@pytest.fixture(scope="module")
def stored(saved):
    return read_check_values(json.loads(saved.read_text()))


def test_every_network_stores_its_early_norms_and_key_results(stored):
    assert sorted(stored) == [0, 1, 2]
    early = {f"early:{d}/{o}/weights_norm@{s}" for d in TINY.train_dtypes for o in TINY.optimizers
             for s in EARLY_STEPS}
    results = {f"{d}/{o}/{f}/T{T}:{c}" for d in TINY.train_dtypes for o in TINY.optimizers for f in TINY.fits
               for T in TINY.Ts for c in ds.CHECKED}
    state = {f"state:{d}/{o}/{f}/T{T}:{c}" for d in TINY.train_dtypes for o in TINY.state_optimizers
             for f in TINY.state_fits for T in TINY.Ts for c in ds.CHECKED}
    assert TINY.state_optimizers == ds.OPTIMIZERS and "default-strided" in TINY.fits
    for i in stored:
        assert set(stored[i]) == early | results | state
        assert all(v is not None for v in stored[i].values())
    # paired runs: every optimizer starts from network i's weights, and the networks differ
    for d in TINY.train_dtypes:
        norms0 = [{stored[i][f"early:{d}/{o}/weights_norm@0"] for o in TINY.optimizers} for i in stored]
        assert all(len(n) == 1 for n in norms0) and len(set.union(*norms0)) == 3


@pytest.mark.parametrize("network", [0, 1, 2])
def test_a_network_alone_has_exactly_its_values_in_the_larger_run(stored, network):
    alone = read_check_values(ds.run(ds.regeneration_config(TINY, [network])))
    assert list(alone) == [network]
    assert alone[network] == stored[network]


def test_the_networks_of_a_run_are_its_own_seeds_for_any_count_and_optimizers():
    """Initial weights of network i: the same for any n_inits or subset; with same_inits=False each
    optimizer has its own stream (by its name, not its place in cfg.optimizers)."""
    def theta0(**kw):
        return training._setup(dataclasses.replace(TINY, **kw), torch.float64)[1]
    paired = theta0(n_inits=5)
    assert torch.equal(theta0(networks=(3,)), paired[[3, 8, 13]])
    assert torch.equal(paired[2], paired[7]) and not torch.equal(paired[2], paired[3])
    own = theta0(n_inits=5, same_inits=False)
    assert torch.equal(theta0(n_inits=2, same_inits=False), own[[0, 1, 5, 6, 10, 11]])
    assert torch.equal(theta0(n_inits=5, same_inits=False, optimizers=("adagrad",), networks=(4,))[0], own[9])
    assert not any(torch.equal(own[i], paired[i]) for i in range(15))
    assert len({float(r.norm()) for r in own}) == 15
    # the solver check's networks are a stream of their own
    seeds = {s for stream in training.STREAMS for s in training.init_seeds(0, stream, range(3))}
    assert len(seeds) == 3 * len(training.STREAMS)


def test_networks_are_validated():
    for bad in [(), (3,), (-1,), (0, 0)]:
        with pytest.raises(ValueError, match="networks must be distinct indices in 0..n_inits-1=2"):
            ds.check_config(dataclasses.replace(TINY, networks=bad))
    with pytest.raises(ValueError, match="n_inits"):
        ds.check_config(dataclasses.replace(TINY, n_inits=training.STREAM + 1))
    ds.check_config(dataclasses.replace(TINY, networks=(2, 0)))
    assert ds.n_networks(TINY) == 3 and ds.n_networks(ds.PROFILES["paper"]) == 25


def test_regeneration_keeps_every_reading_and_switches_off_the_rest():
    sub = ds.regeneration_config(ds.PROFILES["paper"], [7])
    ds.check_config(sub)
    paper = ds.PROFILES["paper"]
    assert sub.networks == (7,) and sub.n_inits == paper.n_inits
    assert (sub.optimizers, sub.train_dtypes, sub.fits, sub.Ts, sub.n_steps, sub.seed) == (
        paper.optimizers, paper.train_dtypes, paper.fits, paper.Ts, paper.n_steps, paper.seed)
    # the parts that store check values stay (the strided fits, the state-augmented fits); the sweep goes
    assert (sub.state_optimizers, sub.state_fits, sub.state_transform) == (
        paper.state_optimizers, paper.state_fits, paper.state_transform)
    assert set(sub.fits) >= {"default-strided", "default-strided-stabilised"} and sub.sweep_strides == ()
    assert sub.check_steps == 0 and sub.fit_methods == ("pinv",) and sub.timing_repeats == 1


def test_the_check_passes_on_a_saved_run_and_fails_on_a_planted_change(saved, stored, tmp_path, capsys):
    report = rg.check("de-solver", saved, [1])
    assert report.ok, "\n".join(report.lines())
    assert report.same_hardware and report.coverage == 1.0 and len(report.compared) == len(stored[1])
    data = json.loads(saved.read_text())
    table = data["check_values"]
    key = "float32/adam/paper/T20:teq_over_t"
    table["values"][table["networks"].index(1)][table["keys"].index(key)] += 1e-9
    planted = tmp_path / "de-solver.json"
    planted.write_text(json.dumps(data))
    assert main(["reproduce", "de-solver", "--check", str(planted), "--networks", "1"]) == 1
    out = capsys.readouterr().out
    assert f"DIFFERS network 1 {key}" in out and "FAILED" in out
