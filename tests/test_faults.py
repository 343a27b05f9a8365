"""Bad input and faults (issue: "a package that fails safely").

One section per fault. Each bad input either raises an error that names the problem (which
block, module or file) and the fix, or has a documented safe behaviour that the test checks
numerically. Nothing here asserts a paper claim.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from koopman_lib import (FitError, GramAccumulator, Koopman, PartitionError, TrajectoryRecorder,
                         finite_section, flatten_params, iterate, jump, load_flat, make_partition, path)
from koopman_lib.data import DataError, load_mnist, locate, read_idx
from koopman_lib.partition import LayerShape
from koopman_repro.results import atomic_write_text, read_json, save_results, write_json

from conftest import stable_operators, trajectory

METHODS = ("pinv", "lstsq", "cholesky", "svd")


def _mlp(sizes=(3, 4, 2), seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).double()


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(model, state):
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


# -- NaN or inf in snapshots -------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_snapshots_are_refused_naming_the_block(method, bad):
    X = trajectory(stable_operators(4, 3), 12)
    X[2, 1, 5] = bad
    with pytest.raises(FitError, match=r"NaN or inf in block\(s\) \[2\].*record a window before"):
        finite_section(X, method)


def test_trainer_refuses_nonfinite_recording_and_keeps_its_previous_fit():
    model = _mlp()
    part = make_partition(model, "node")
    rec = torch.randn(10, 2, part.n_params, dtype=torch.float64)
    trainer = Koopman(part).fit(rec)
    before = [op.U.clone() for op in trainer.operators_]
    bad = rec.clone()
    bad[4, 1, -1] = math.nan
    with pytest.raises(FitError, match="NaN or inf"):
        trainer.fit(bad)
    assert all(torch.equal(a, b.U) for a, b in zip(before, trainer.operators_)), "a failed fit changed the operators"


def test_gram_accumulator_refuses_nonfinite_chunk_untouched():
    acc = GramAccumulator(2, 3)
    acc.update(torch.randn(2, 3, 5, dtype=torch.float64))
    gram, cross, n = acc.gram.clone(), acc.cross.clone(), acc.n_snapshots
    chunk = torch.randn(2, 3, 4, dtype=torch.float64)
    chunk[1, 0, 2] = math.inf
    with pytest.raises(FitError, match=r"block\(s\) \[1\]"):
        acc.update(chunk)
    assert torch.equal(acc.gram, gram) and torch.equal(acc.cross, cross) and acc.n_snapshots == n


# -- fewer snapshots than the block size ---------------------------------------------------------
def test_fewer_snapshots_than_block_size_cholesky_refuses_with_the_fix():
    X = torch.randn(3, 8, 5, dtype=torch.float64)  # m = 8, k = 5: 4 pairs for 8 unknowns per row
    with pytest.raises(FitError, match="fewer independent snapshots than the block size.*pinv"):
        finite_section(X, "cholesky")
    acc = GramAccumulator(3, 8)
    acc.update(X)
    with pytest.raises(FitError, match="singular"):
        acc.operators()


@pytest.mark.parametrize("method", ["pinv", "lstsq", "svd"])
def test_fewer_snapshots_than_block_size_gives_the_minimum_norm_operator(method):
    """Documented safe behaviour: U fits every recorded pair exactly and is zero on the
    directions the recording never visited (the minimum-norm solution), so it is finite."""
    X = torch.randn(3, 8, 5, dtype=torch.float64)
    F, Fp = X[..., :-1], X[..., 1:]
    U = finite_section(X, method)
    assert torch.isfinite(U).all()
    torch.testing.assert_close(U @ F, Fp, atol=1e-10, rtol=0)
    Q = torch.linalg.qr(F, mode="complete").Q[..., 4:]  # orthogonal complement of span(F)
    torch.testing.assert_close(U @ Q, torch.zeros_like(U @ Q), atol=1e-10, rtol=0)


def test_a_single_snapshot_is_refused():
    with pytest.raises(FitError, match="at least 2 snapshots"):
        finite_section(torch.randn(2, 3, 1, dtype=torch.float64))
    part = make_partition([LayerShape("l", 2, 2)], "node")
    with pytest.raises(FitError, match="at least 2 snapshots"):
        Koopman(part).fit(torch.randn(1, part.n_params, dtype=torch.float64))
    with pytest.raises(FitError, match="fewer than 2 snapshots"):
        GramAccumulator(1, 2).operators()


# -- rank-deficient and constant trajectories ------------------------------------------------------
@pytest.mark.parametrize("method", ["pinv", "lstsq", "svd"])
def test_constant_trajectory_predicts_the_constant(method):
    w = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    X = w.reshape(1, 3, 1).expand(2, 3, 20).clone()
    U = finite_section(X, method)
    torch.testing.assert_close(jump(U, w.expand(2, 3), 5000), w.expand(2, 3), atol=1e-9, rtol=0)
    torch.testing.assert_close(path(U, w.expand(2, 3), 10)[-1], w.expand(2, 3), atol=1e-12, rtol=0)


def test_all_zero_trajectory_gives_zero_operator():
    X = torch.zeros(2, 4, 10, dtype=torch.float64)
    for method in ("pinv", "lstsq", "svd"):
        U = finite_section(X, method)
        assert torch.equal(U, torch.zeros_like(U)), method
    with pytest.raises(FitError, match="constant coordinate"):
        finite_section(X, "cholesky")


def test_trajectory_in_a_subspace_is_fitted_on_it_and_refused_by_cholesky():
    """A rank-2 trajectory in a 5-dim block (k >> m): the fit reproduces it, Cholesky refuses."""
    g = torch.Generator().manual_seed(3)
    basis = torch.linalg.qr(torch.randn(5, 2, generator=g, dtype=torch.float64)).Q
    A = torch.tensor([[0.9, 0.2], [-0.1, 0.8]], dtype=torch.float64)
    z = [torch.tensor([1.0, -0.5], dtype=torch.float64)]
    for _ in range(30):
        z.append(A @ z[-1])
    X = (basis @ torch.stack(z, 1)).unsqueeze(0)
    U = finite_section(X, "pinv")
    torch.testing.assert_close(U @ X[..., :-1], X[..., 1:], atol=1e-10, rtol=0)
    with pytest.raises(FitError, match=r"block\(s\) \[0\]"):
        finite_section(X, "cholesky")


# -- mismatched shapes between a model and a recording ---------------------------------------------
def test_recording_of_another_architecture_is_refused():
    small, big = _mlp((3, 4, 2)), _mlp((3, 5, 2))
    rec = torch.randn(6, flatten_params(big).numel(), dtype=torch.float64)
    with pytest.raises(PartitionError, match="recording and model do not match"):
        Koopman(make_partition(small, "node")).fit(rec)


def test_prediction_of_wrong_shape_is_refused_and_model_untouched():
    model = _mlp()
    part = make_partition(model, "node")
    trainer = Koopman(part).fit(torch.randn(8, part.n_params, dtype=torch.float64))
    with pytest.raises(FitError, match="the fit needs"):
        trainer.predict(torch.randn(part.n_params + 1, dtype=torch.float64), 3)
    with pytest.raises(FitError, match="the fit needs"):
        trainer.predict(torch.randn(2, part.n_params, dtype=torch.float64), 3)  # an ensemble, fitted on one
    state = _state(model)
    with pytest.raises(PartitionError, match="different architecture"):
        load_flat(model, torch.randn(part.n_params - 1, dtype=torch.float64))
    assert _same_state(model, state)


def test_recorder_refuses_wrong_shape_before_writing():
    rec = TrajectoryRecorder(5, 0, 3)
    rec(0, torch.ones(5))
    with pytest.raises(ValueError, match=r"theta shape \(6,\) != expected \(5,\)"):
        rec(1, torch.ones(6))
    assert rec.count == 1
    rec(1, torch.full((5,), 2.0))  # the same step can be recorded once the caller fixes it
    assert rec.count == 2 and torch.equal(rec.snapshots[1], torch.full((5,), 2.0, dtype=torch.float64))


def test_streaming_partition_of_another_model_is_refused():
    part = make_partition([LayerShape("l", 2, 3)], "node")
    with pytest.raises(ValueError, match="same model"):
        TrajectoryRecorder(part.n_params + 4, 0, 5, mode="streaming", partition=part)


# -- unsupported module types -------------------------------------------------------------------
@pytest.mark.parametrize("module", [nn.BatchNorm1d(4), nn.LayerNorm(4), nn.Embedding(10, 4), nn.LSTM(4, 4),
                                    nn.Conv1d(2, 3, 3)])
def test_unsupported_module_is_named_with_the_fix(module):
    model = nn.Sequential(nn.Linear(4, 4), module)
    with pytest.raises(PartitionError, match=rf"'1' of type {type(module).__name__} .*not supported.*Linear"):
        make_partition(model, "node")
    with pytest.raises(PartitionError):
        flatten_params(model)


def test_model_without_layers_is_refused():
    with pytest.raises(PartitionError, match="no nn.Linear or nn.Conv2d"):
        make_partition(nn.Sequential(nn.ReLU()), "node")


# -- T <= 0 ------------------------------------------------------------------------------------------
BAD_T = [0, -1, -2500, 2.5, True, "10", None]


@pytest.mark.parametrize("T", BAD_T)
def test_bad_T_is_refused_at_the_call(T):
    U = stable_operators(2, 3)
    w0 = torch.randn(2, 3, dtype=torch.float64)
    for call in (lambda: iterate(U, w0, T), lambda: path(U, w0, T), lambda: jump(U, w0, T)):
        with pytest.raises(ValueError, match="T must be a positive integer"):
            call()  # iterate raises here, not at the first step
    part = make_partition([LayerShape("l", 2, 2)], "node")
    trainer = Koopman(part).fit(torch.randn(10, part.n_params, dtype=torch.float64))
    theta0 = torch.randn(part.n_params, dtype=torch.float64)
    for call in (lambda: trainer.predict(theta0, T), lambda: trainer.path(theta0, T),
                 lambda: trainer.rollout(theta0, T)):
        with pytest.raises(ValueError, match="T must be a positive integer"):
            call()


def test_integer_scalars_of_numpy_and_torch_are_accepted_as_T():
    U, w0 = stable_operators(2, 3), torch.randn(2, 3, dtype=torch.float64)
    ref = path(U, w0, 7)[-1]
    torch.testing.assert_close(jump(U, w0, np.int64(7)), ref)
    torch.testing.assert_close(path(U, w0, torch.tensor(7).item())[-1], ref)


# -- a window outside the recording --------------------------------------------------------------
@pytest.mark.parametrize("t1,t2", [(-1, 5), (5, 5), (6, 5)])
def test_recorder_window_must_be_ordered_and_nonnegative(t1, t2):
    with pytest.raises(ValueError, match="need 0 <= t1 < t2"):
        TrajectoryRecorder(4, t1, t2)


def test_window_outside_the_recording_is_refused_with_the_valid_range():
    rec = TrajectoryRecorder(3, 10, 20)
    for t in range(0, 25):  # steps outside 10..20 are ignored
        rec(t, torch.full((3,), float(t)))
    assert rec.complete
    assert rec.window(12, 15)[:, 0].tolist() == [12.0, 13.0, 14.0, 15.0]
    for t1, t2 in ((5, 15), (15, 25), (12, 12), (0, 30)):
        with pytest.raises(ValueError, match=r"outside the recording \(steps 10..20\); choose 10 <= t1 < t2 <= 20"):
            rec.window(t1, t2)


def test_training_that_stops_before_t2_cannot_be_fitted():
    part = make_partition([LayerShape("l", 2, 2)], "node")
    rec = TrajectoryRecorder(part.n_params, 5, 50)
    for t in range(30):  # training ended at step 29, inside the window
        rec(t, torch.randn(part.n_params))
    with pytest.raises(FitError, match="holds 25 of 46 snapshots; finish t1..t2 first"):
        Koopman(part).fit(rec)
    with pytest.raises(ValueError, match="expected step 30, got 32"):
        rec(32, torch.randn(part.n_params))


# -- a Network partition too large for memory -------------------------------------------------------
MNIST_SHAPES = [LayerShape("fc1", 20, 784), LayerShape("fc2", 20, 20), LayerShape("fc3", 20, 20),
                LayerShape("fc4", 10, 20)]


def test_network_partition_too_large_is_refused_before_fitting(monkeypatch):
    part = make_partition(MNIST_SHAPES, "network")  # one 16750-dim block per network
    trainer = Koopman(part)
    one, many = trainer.estimate_bytes(2814), trainer.estimate_bytes(2814, n_batch=25)
    assert one < trainer.memory_limit < many  # one network: thin factors A, B (16750 x 2813); 25: too many
    assert many >= 25 * 2 * 16750 * 2813 * 8
    called = []
    monkeypatch.setattr("koopman_lib.estimator.fit_operators", lambda *a, **k: called.append(1))
    small = Koopman(part, memory_limit=10**6)
    with pytest.raises(MemoryError, match=r"1 x m=16750 on 3 snapshots needs about .* GiB.*finer partition"):
        small.fit(torch.zeros(3, part.n_params, dtype=torch.float64))
    assert not called, "the fit started before the memory check"
    # the paper's partition of one such network passes; dense Network operators of 16750^2 would not
    paper = Koopman(make_partition(MNIST_SHAPES, ["quasi_node:157", "node", "node", "node"]))
    assert paper.estimate_bytes(2814) < paper.memory_limit
    assert Koopman(part, method="lstsq").estimate_bytes(2814) >= 3 * 16750 ** 2 * 8 > paper.memory_limit


def test_memory_limit_is_respected_and_can_be_raised():
    part = make_partition([LayerShape("l", 4, 3)], "layer")
    small = Koopman(part, memory_limit=1000)
    rec = torch.randn(50, part.n_params, dtype=torch.float64)
    with pytest.raises(MemoryError, match="raise memory_limit"):
        small.fit(rec)
    Koopman(part, memory_limit=small.estimate_bytes(50)).fit(rec)


def test_recorder_refuses_a_recording_larger_than_memory_before_allocating():
    net = make_partition(MNIST_SHAPES, "network")
    need = TrajectoryRecorder.estimate_bytes(net.n_params, 2814, (25,), "streaming", net)
    assert need > 25 * 2 * 16750 ** 2 * 8 - 1  # two Gram matrices per member
    with pytest.raises(MemoryError, match="streaming recording of 2814 snapshots x 25 member"):
        TrajectoryRecorder(net.n_params, 0, 2813, (25,), mode="streaming", partition=net)
    with pytest.raises(MemoryError, match="record a shorter window"):
        TrajectoryRecorder(1000, 0, 999, (4,), memory_limit=1000 * 1000 * 4 * 8 - 1)
    TrajectoryRecorder(1000, 0, 999, (4,), memory_limit=1000 * 1000 * 4 * 8)


# -- a corrupted or truncated MNIST file ----------------------------------------------------------
SHARED = Path(os.environ.get("KOOPMAN_DATA_DIR", "/nonexistent"))
LABELS = "t10k-labels-idx1-ubyte.gz"


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """A data dir of our own, no cache fallback and no network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KOOPMAN_DATA_DIR", raising=False)
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    return tmp_path / "data"


def _real_labels() -> Path:
    p = SHARED / "mnist" / LABELS
    if not p.is_file():
        pytest.skip(f"the MNIST test labels are not in {SHARED} (set KOOPMAN_DATA_DIR)")
    return p


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_mnist_file_is_a_clear_error_not_a_fallback(isolated_data, damage):
    target = isolated_data / "mnist" / LABELS
    raw = _real_labels().read_bytes()
    if damage == "truncate":
        target.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        target.write_bytes(raw[:100] + bytes([raw[100] ^ 0xFF]) + raw[101:])
    else:
        target.write_bytes(b"")
    with pytest.raises(DataError, match=rf"checksum mismatch for .*{LABELS}.*corrupted or truncated.*Delete it"):
        locate(LABELS, "mnist", data_dir=isolated_data, download=False)
    shutil.copy(_real_labels().parent / "t10k-images-idx3-ubyte.gz", isolated_data / "mnist")  # intact images
    with pytest.raises(DataError, match="corrupted or truncated"):
        load_mnist("test", data_dir=isolated_data, download=False)


def test_read_idx_names_each_kind_of_damage(tmp_path):
    not_gzip = tmp_path / "a.gz"
    not_gzip.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(not_gzip)
    cut = tmp_path / "b.gz"
    cut.write_bytes(gzip.compress(bytes(range(256)) * 40)[:200])
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(cut)
    short_payload = tmp_path / "c.gz"
    short_payload.write_bytes(gzip.compress((0x0801).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(7)))
    with pytest.raises(DataError, match=r"header says \[10\] \(10 bytes\) but 7 bytes follow"):
        read_idx(short_payload)
    bad_magic = tmp_path / "d.gz"
    bad_magic.write_bytes(gzip.compress((0x0D01).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(4)))
    with pytest.raises(DataError, match="not an unsigned-byte IDX file"):
        read_idx(bad_magic)
    tiny = tmp_path / "e.gz"
    tiny.write_bytes(gzip.compress(b"\x00\x00"))
    with pytest.raises(DataError, match="truncated"):
        read_idx(tiny)


def test_missing_file_without_download_names_the_setting(isolated_data):
    with pytest.raises(DataError, match="set KOOPMAN_DATA_DIR"):
        locate("t10k-images-idx3-ubyte.gz", "mnist", data_dir=isolated_data, download=False)


# -- the rollout guard ------------------------------------------------------------------------------
def _scalar_trainer(rate: float, n: int = 3) -> tuple[Koopman, torch.Tensor]:
    """An estimator whose operators multiply every weight by ``rate`` each step."""
    part = make_partition([LayerShape("l", 1, n - 1)], "node")  # one block of n
    trainer = Koopman.from_operators(part, [rate * torch.eye(n, dtype=torch.float64).unsqueeze(0)])
    return trainer, torch.ones(n, dtype=torch.float64)


def test_guard_stops_at_the_first_non_finite_weight_and_keeps_the_last_finite():
    trainer, theta0 = _scalar_trainer(1e200)
    out = trainer.rollout(theta0, 10, every=1, max_growth=math.inf)
    assert out.stopped_at == [2] and out.reason == ["non-finite weights"]  # 1e200, then 1e400 = inf
    torch.testing.assert_close(out.theta[0], torch.full_like(theta0, 1e200))
    assert torch.equal(theta0, torch.ones(3, dtype=torch.float64)), "the guard changed theta0"


def test_guard_stops_when_the_weights_explode():
    trainer, theta0 = _scalar_trainer(1.5)
    out = trainer.rollout(theta0, 100, every=1, max_growth=10.0)
    first = next(t for t in range(1, 100) if 1.5 ** t > 10)  # 6
    assert out.stopped_at == [first] and "grew more than 10x" in out.reason[0]
    torch.testing.assert_close(out.theta[0], theta0 * 1.5 ** (first - 1))


def test_guard_stops_at_an_exploding_or_non_finite_loss_and_reports_the_step():
    trainer, theta0 = _scalar_trainer(1.1)
    loss = lambda th: th.sum(-1)  # noqa: E731  3 * 1.1^t
    out = trainer.rollout(theta0, 50, every=1, loss_fn=loss, loss_limit=6.0)
    first = next(t for t in range(1, 50) if 3 * 1.1 ** t > 6.0)
    assert out.stopped_at == [first] and out.reason == ["loss above 6"]
    assert out.steps == list(range(first + 1)) and out.loss.shape == (first + 1, 1)
    assert torch.isfinite(out.loss[:first]).all() and torch.isnan(out.loss[first]).all()
    torch.testing.assert_close(out.theta[0], theta0 * 1.1 ** (first - 1))
    nan_at_4 = lambda th: torch.where(th[:, 0] > 1.1 ** 3.5, math.nan, 0.0)  # noqa: E731
    out = trainer.rollout(theta0, 50, every=1, loss_fn=nan_at_4)
    assert out.stopped_at == [4] and out.reason == ["non-finite loss"]
    torch.testing.assert_close(out.theta[0], theta0 * 1.1 ** 3)


def test_guard_stops_each_network_on_its_own():
    """Two networks: the growing one stops, the decaying one runs to the end."""
    part = make_partition([LayerShape("l", 1, 1)], "node")  # one block of 2
    ops = torch.stack([2.0 * torch.eye(2), 0.5 * torch.eye(2)]).double()
    trainer = Koopman.from_operators(part, [ops], batch_shape=(2,))
    theta0 = torch.ones(2, 2, dtype=torch.float64)
    out = trainer.rollout(theta0, 12, every=3, loss_fn=lambda th: th.norm(dim=-1), max_growth=100.0)
    assert out.stopped_at == [9, None] and out.steps == [0, 3, 6, 9, 12]
    torch.testing.assert_close(out.theta, torch.stack([theta0[0] * 2.0 ** 6, theta0[1] * 0.5 ** 12]))
    assert torch.isnan(out.loss[3:, 0]).all() and torch.isfinite(out.loss[:, 1]).all()


def test_guard_runs_to_the_end_when_nothing_goes_wrong_and_validates_its_arguments():
    trainer, theta0 = _scalar_trainer(0.9)
    out = trainer.rollout(theta0, 20, loss_fn=lambda th: th.sum(-1), every=5)
    assert out.stopped_at == [None] and out.reason == [None] and out.steps == [0, 5, 10, 15, 20]
    torch.testing.assert_close(out.theta[0], theta0 * 0.9 ** 20)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        trainer.rollout(theta0, 5, every=0)
    with pytest.raises(ValueError, match="max_growth must be > 0"):
        trainer.rollout(theta0, 5, max_growth=0)


def test_guarded_weights_can_be_written_into_the_model():
    model = _mlp()
    part = make_partition(model, "node")
    trainer = Koopman.from_operators(part, [2.0 * torch.eye(int(g.shape[1]), dtype=torch.float64).expand(
        g.shape[0], -1, -1).clone() for g in part.groups])
    theta0 = flatten_params(model)
    out = trainer.rollout(theta0, 10_000, every=1, max_growth=math.inf)  # 2^t overflows float64 at t = 1024 + a few
    assert out.stopped_at[0] is not None and out.reason == ["non-finite weights"]
    assert torch.isfinite(out.theta).all()
    load_flat(model, out.theta[0])
    torch.testing.assert_close(flatten_params(model), out.theta[0])


# -- the model and the recording are never half-written ----------------------------------------------
def test_load_flat_with_nonfinite_values_leaves_the_model_untouched():
    model = _mlp()
    state = _state(model)
    theta = flatten_params(model) + 1.0
    theta[-1] = math.nan  # the last entry: a writer going layer by layer would be half done
    with pytest.raises(PartitionError, match="NaN or inf; refusing to write"):
        load_flat(model, theta)
    assert _same_state(model, state)


@pytest.mark.parametrize("method", ["svd", "lstsq", "cholesky", "eigh"])
def test_fitting_never_modifies_the_recording(method):
    part = make_partition([LayerShape("a", 3, 2), LayerShape("b", 2, 3)], "node")
    rec = torch.randn(40, 2, part.n_params, dtype=torch.float64)
    copy = rec.clone()
    Koopman(part, method=method).fit(rec)
    assert torch.equal(rec, copy)


def test_streaming_recorder_refuses_a_nonfinite_step_without_touching_its_state():
    part = make_partition([LayerShape("a", 3, 2), LayerShape("b", 2, 3)], "node")  # two block groups
    rec = TrajectoryRecorder(part.n_params, 0, 9, mode="streaming", partition=part, chunk=2)
    for t in range(4):
        rec(t, torch.randn(part.n_params))
    grams = [(a.gram.clone(), a.cross.clone(), a.n_snapshots) for a in rec.accumulators]
    theta = torch.randn(part.n_params)
    theta[-1] = math.inf  # only the last block group is bad
    with pytest.raises(ValueError, match="NaN or inf at step 4.*nothing was recorded"):
        rec(4, theta)
    assert rec.count == 4
    for a, (g, c, n) in zip(rec.accumulators, grams):
        assert torch.equal(a.gram, g) and torch.equal(a.cross, c) and a.n_snapshots == n


# -- results files are written atomically -----------------------------------------------------------
def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    write_json(target, {"a": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_json(target, {"a": 2})
    monkeypatch.undo()
    assert read_json(target) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_unserialisable_results_leave_every_previous_file(tmp_path):
    save_results(tmp_path, "exp", {"table": [{"x": 1}], "v": 1.0})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(TypeError):
        save_results(tmp_path, "exp", {"table": [{"x": 2}], "v": object()})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_results_are_strict_json_with_nonfinite_as_null(tmp_path):
    path = write_json(tmp_path / "r.json", {"nan": math.nan, "inf": torch.tensor([1.0, math.inf]),
                                            "np": np.float32(0.5)})
    text = path.read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == \
        {"nan": None, "inf": [1.0, None], "np": 0.5}


def test_a_reader_never_sees_half_a_file(tmp_path, monkeypatch):
    """The target is replaced in one step: until the step, it holds the previous text whole (the
    new text is complete in another file of the same folder); at the step, the new text whole.
    Checked at the one moment it could break, every time, instead of by racing a reader thread
    (a race finds a non-atomic writer only sometimes)."""
    target = tmp_path / "big.json"
    write_json(target, {"x": list(range(20000)), "i": -1})
    real_replace, replaced = os.replace, []

    def checked_replace(src, dst):
        assert Path(dst) == target and Path(src).parent == target.parent
        assert read_json(target)["i"] == len(replaced) - 1        # the old file, whole, until now
        assert json.loads(Path(src).read_text())["i"] == len(replaced)   # the new one, complete
        real_replace(src, dst)
        replaced.append(dst)
    monkeypatch.setattr(os, "replace", checked_replace)
    for i in range(3):
        atomic_write_text(target, json.dumps({"x": list(range(20000)), "i": i}))
    assert len(replaced) == 3 and read_json(target)["i"] == 2    # a writer that never replaces fails here


def test_results_files_are_readable_by_others(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o644
