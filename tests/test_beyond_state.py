"""Beyond the paper: the optimizer's state carried through the cycles' jumps and as observables
(issue 25), and the line fit in parts that keeps the ci run's memory down (issue 26)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from koopman_lib.baselines import line_fit, linear_extrapolation
from koopman_lib.optimizer_state import StateLayout, StatePrediction, flatten_state
from koopman_lib.threads import torch_threads
from koopman_repro.experiments import beyond as bd
from koopman_repro.experiments.beyond import common, cycles
from koopman_repro.experiments.beyond.observables import STATE, state_name


def test_the_line_fit_in_parts_is_the_line_fit_of_the_whole_window(monkeypatch):
    """Network by network and a few coordinates at a time: the same level and slope bit for bit
    (one thread, as the experiment runs), so no ci number moves."""
    g = torch.Generator().manual_seed(0)
    window = (torch.randn(300, 2, 1000, generator=g).cumsum(0) * 1e-3 + torch.randn(1, 2, 1000, generator=g)).float()
    monkeypatch.setattr(common, "LINE_FIT_BYTES", 8 * 300 * 128)      # 128 coordinates per part: 8 parts
    with torch_threads(1):
        for L in (None, 300, 30, 2):
            level, slope = common.line_fit_chunked(window, L)
            ref = line_fit(window, L)
            assert torch.equal(level, ref[0]) and torch.equal(slope, ref[1]), L
            assert torch.equal(common.extrapolate(window, 50, L), linear_extrapolation(window, 50, L))
    with pytest.raises(ValueError, match="T must be"):
        common.extrapolate(window, -1)


def _images(n=96):
    g = torch.Generator().manual_seed(0)
    return bd.Images(torch.randn(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g),
                     torch.randn(20, 784, generator=g), torch.randint(0, 10, (20,), generator=g), (0.0, 1.0))


def test_a_kept_jump_writes_the_predicted_state_and_a_rejected_one_keeps_its_own():
    from koopman_lib.ensembles import EnsembleMLP
    net = EnsembleMLP((784, 3, 10), "relu", 2, seed=1)
    st = bd.SegmentTrainer(net, _images(), batch=32, seed=3)
    st.run(3)
    opt, theta = st.opt, net.theta
    layout = StateLayout.for_optimizer(opt, net.n_params)
    own = {b: opt.state[theta][b].clone() for b in layout.buffers}
    step = float(opt.state[theta]["step"])
    new = {b: torch.rand(2, net.n_params, dtype=torch.float64) for b in layout.buffers}
    new["acc_delta"][1] = float("nan")                     # the rejected network's prediction may be anything
    cycles._load_kept(opt, theta, StatePrediction(theta.detach().double(), new, 7, layout), torch.tensor([True, False]))
    for b in layout.buffers:
        assert torch.equal(opt.state[theta][b][0], new[b][0].float())
        assert torch.equal(opt.state[theta][b][1], own[b][1])
    assert float(opt.state[theta]["step"]) == step + 7


def test_the_state_cycles_record_the_weights_of_the_weights_only_cycles_and_the_state():
    """Both variants start from the same inits and batches: a segment records the same weights, and
    the state variant's last recorded vector is the optimizer's state after the segment."""
    cfg = dataclasses.replace(bd.Config(), mlp_sizes=(784, 3, 10), cyc_inits=2, cyc_record=6)
    images = _images()
    plain, carried = cycles._CycleState(cfg, images), cycles._CycleState(cfg, images, carry_state=True)
    for s in (plain, carried):
        s.evaluate_now("start")
        s.st.run(4)
    buf = torch.empty(cfg.cyc_record, 2, plain.net.n_params)
    got = plain.segment(buf, every=4)
    rec = carried.segment(buf.clone(), every=4)
    D = plain.net.n_params
    assert got is buf and rec.layout.buffers == ("square_avg", "acc_delta")
    assert rec.snapshots.shape == (6, 2, 3 * D) and torch.equal(rec.snapshots[..., :D], buf)
    assert torch.equal(rec.snapshots[-1], flatten_state(carried.net, carried.st.opt, rec.layout))
    assert [x[0] for x in plain.trace] == [x[0] for x in carried.trace] == [0, 8]


def test_cycle_variants_are_checked_and_named():
    assert set(cycles.METHODS) == set(cycles.VARIANTS) == set(cycles.CURVE_KEYS)
    assert bd.Config().cyc_variants == cycles.VARIANTS and STATE in bd.Config().de_observables
    layout = StateLayout(4, "Adadelta", ("square_avg", "acc_delta"), ("sqrt", "identity"))
    assert state_name(layout) == "weights + Adadelta state (sqrt square_avg, acc_delta)"
