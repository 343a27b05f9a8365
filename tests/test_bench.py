"""Benchmarks: schema of a tiny run, and the agreements the speed claims rest on.

No timing is asserted here: these check that the fast paths compute the same thing as the
slow ones (streaming Gram vs stored snapshots, jump vs step by step at real sizes,
streaming vs stored recording, tangent-propagated DE loss vs autograd).
"""
import json
import math

import pytest
import torch

import koopman_lib as kl
from koopman_lib import toy
from koopman_repro import bench
from koopman_lib.data import DataError
from koopman_repro.experiments import load_or_run, reproduce
from conftest import stable_operators

TINY = dict(repeats=2, slow_repeats=1, mnist_sizes=(784, 4, 4, 10), mnist_partition=("quasi_node:5", "node", "node"),
            train_subset=1280, test_subset=500, epochs_after=2, de_warmup=40, de_window=40, de_chunk=20,
            de_chunks_after=2, de_T=50, scaling_m=(4, 8), scaling_k=(32, 64), scaling_k_fixed=64, scaling_m_fixed=4,
            scaling_blocks=2, evolve_m=(4, 8), evolve_T=(10, 100), evolve_T_fixed=20, evolve_steps=10,
            evolve_m_fixed=4, evolve_blocks=2, complexity_max_m=40,
            end_to_end_profile=None, paper_style_steps=5)

@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread for these tests: on a shared 2-core machine OpenMP teams of 2
    spin against other processes and make batched LAPACK calls 20-50x slower. Restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


REQUIRED = ["fit_speedup_cholesky_vs_pinv", "fit_speedup_streaming_vs_pinv", "jump_speedup_vs_fast_loop_mnist",
            "step_speedup_vs_fast_loop_mnist", "recording_overhead_streaming", "notebook_seconds", "provenance",
            "step_table", "fit_table", "recording_table", "notebook_table", "end_to_end_table", "complexity_table",
            "scaling_construction", "scaling_evolution", "exponent_table", "target_table", "end_to_end",
            "end_to_end_summary", "pipeline", "koopman_phase_speedup_mnist_T2", "de_after_t2_speedup"]


def test_tiny_bench_run_schema(tmp_path):
    try:
        res = reproduce("bench", "ci", tmp_path, **TINY)
    except DataError as e:
        pytest.skip(f"MNIST not available: {e}")
    saved = json.loads((tmp_path / "bench.json").read_text())
    for key in REQUIRED:
        assert key in saved, key
    assert saved["provenance"]["profile"] == "ci"
    assert saved["provenance"]["config"]["mnist_sizes"] == [784, 4, 4, 10]
    hw = saved["provenance"]["hardware"]
    assert hw["torch_threads"] == 1 and "load_average_at_start" in hw and "load_average_at_end" in hw
    assert "hardware" not in saved  # merged into the provenance
    for key in ("fit_speedup_streaming_vs_pinv", "jump_speedup_vs_fast_loop_mnist", "step_speedup_vs_fast_loop_mnist",
                "recording_overhead_streaming"):
        assert isinstance(saved[key], float) and saved[key] > 0, key
    assert set(saved["notebook_seconds"]) == {"ci", "paper"}
    assert (tmp_path / "bench-fit_table.csv").is_file() and (tmp_path / "bench-step_table.csv").is_file()
    methods = {r["method"] for r in saved["fit_table"]}
    assert {"pinv_loop", "lstsq_batched", "cholesky_batched", "eigh_batched", "streaming_eigh"} <= methods
    # every target row names its threshold and a met flag consistent with the measurement
    for row in saved["target_table"]:
        if row["measured"] is not None:
            op, thr = row["threshold"].split()
            assert row["met"] == (row["measured"] >= float(thr) if op == ">=" else row["measured"] <= float(thr))
    # the end-to-end accounting adds up
    for r in saved["end_to_end_table"]:
        assert r["with_koopman_s"] == pytest.approx(r["train_to_t2_s"] + r["koopman_after_t2_s"])
        assert r["koopman_after_t2_s"] == pytest.approx(r["recording_streaming_s"] + r["fit_s"] + r["jump_s"] + r["eval_s"])
    # the pipeline's choice: a route that reproduces the reference fit's losses
    for problem in ("mnist", "de-solver"):
        pick = saved["pipeline"][problem]
        chosen = {c["route"]: c for c in pick["candidates"]}[pick["route"]]
        assert chosen["agrees"] and chosen["max_rel_loss_diff"] <= pick["loss_rtol"]
    # the strided fit: its own training run recorded at the rule's stride, timed by the same pipeline
    for run in (saved["mnist_runs"][0], saved["de_run"]):
        st = run["strided"]
        assert st["fit"] == "default-strided" and st["max_abs_diff_vs_full"] == 0.0  # exactly every s-th snapshot
        assert st["pipeline"]["stride"] == st["stride"] and st["k"] == (run["k"] - 1) // st["stride"] + 1
        assert set(st["pipeline"]["routes"]) == set(run["pipeline"]["routes"]) and st["record_seconds"] > 0
    assert saved["mnist_runs"][0]["strided"]["stride"] > 1
    for key in ("mnist, default-strided", "de-solver, default-strided"):
        pick = saved["pipeline"][key]
        assert {c["route"]: c for c in pick["candidates"]}[pick["route"]]["agrees"]
    phase = {t["key"]: t for t in saved["target_table"] if "default_fit_reading" in t}
    assert set(phase) == {"koopman_phase_speedup_mnist_T2", "end_to_end_speedup_mnist_T2", "de_after_t2_speedup"}
    assert all(t["measured"] is None and t["reason"].startswith("no end-to-end rows") for t in phase.values())
    assert saved["end_to_end"] == [] and saved["end_to_end_notes"]  # no experiment profile: no rows
    # the cached result is reused by load_or_run
    again = load_or_run("bench", "ci", tmp_path, **TINY)
    assert again["provenance"]["utc_time"] == saved["provenance"]["utc_time"]
    assert res["wall_seconds"] > 0


def _mnist_like_groups(k, seed=0):
    return bench.synthetic_groups([(20, 157), (50, 21)], k, seed)


def test_streaming_gram_operators_equal_stored_cholesky_and_pinv():
    """Every route solves the same least-squares problem; the routes through the normal equations
    (stored or streamed Gram matrices, Cholesky or eigh) agree with each other and with pinv to the
    rounding the normal equations allow, ``eps cond(F)^2`` per block (a bound fixed by perturbation
    theory, not by the errors seen): here cond(F) is up to about 5e3, so about 5e-9."""
    groups = _mnist_like_groups(k=400)
    accs = bench.accumulate(groups, chunk=64)
    eps = torch.finfo(torch.float64).eps
    for x, acc in zip(groups, accs):
        S = torch.linalg.svdvals(x[..., :-1])
        bound = eps * (S[:, 0] / S[:, -1]) ** 2
        stored = kl.finite_section(x, "cholesky")
        assert (bench.rel_diff(acc.operators(), stored) <= bound).all()
        assert (bench.rel_diff(stored, kl.finite_section(x, "pinv")) <= bound).all()
        assert (bench.rel_diff(acc.operators(method="eigh"), stored) <= bound).all()


def test_eigh_fit_is_truncated_pinv_on_rank_deficient_data():
    g = torch.Generator().manual_seed(0)
    P, m, k = 6, 12, 200
    base = torch.randn(P, m - 3, k, generator=g, dtype=torch.float64).cumsum(-1) * 0.1
    mix = torch.randn(P, 3, m - 3, generator=g, dtype=torch.float64)
    x = torch.cat([base, mix @ base], dim=1)  # rank m - 3: three coordinates are combinations
    with pytest.raises(kl.FitError):
        kl.finite_section(x, "cholesky")
    U_eigh = kl.finite_section(x, "eigh")
    U_pinv = kl.finite_section(x, "pinv", rcond=1e-6)
    assert bench.rel_diff(U_eigh, U_pinv).max() < 1e-7
    F, Fp = x[..., :-1], x[..., 1:]
    assert torch.allclose(U_eigh @ F, U_pinv @ F, atol=1e-8 * float(Fp.abs().max()))


def test_fit_methods_of_the_benchmark_agree_with_the_core_pinv():
    """The naive per-block reference (MATLAB's Fp * pinv(F)) and the per-block loop give the
    operators of the batched core fit; the assembled jump helpers match Koopman.predict."""
    x = bench.random_walk(4, 6, 80, seed=3)
    ref = kl.finite_section(x, "pinv")
    for name in ("pinv_loop_naive", "pinv_loop", "pinv_batched", "lstsq_batched"):
        assert bench.rel_diff(bench.FIT_METHODS[name](x), ref).max() < 1e-8, name
    part = kl.make_partition([kl.LayerShape("l0", 2, 2)], "node")   # 2 blocks of 3
    traj = bench.random_walk(1, part.n_params, 40, seed=4)[0].T.unsqueeze(1)  # (k, 1, D)
    kp = kl.Koopman(part).fit(traj)
    theta = traj[-1]
    for method in ("power", "eig"):
        assert torch.allclose(bench.jump_assembled(kp, theta, 25, method), kp.predict(theta, 25), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("P,m", [(100, 157), (50, 21)])
def test_jump_equals_step_by_step_at_real_sizes(P, m):
    T = 1876  # two MNIST epochs
    U = toy.stable_operators(P, m, seed=m)
    w0 = torch.randn(P, m, dtype=torch.float64)
    stepped = w0
    for w in kl.iterate(U, w0, T):
        stepped = w
    scale = stepped.norm(dim=-1, keepdim=True) + w0.norm(dim=-1, keepdim=True) * 1e-12
    for method in ("auto", "power") + (("eig",) if m <= 32 else ()):
        jumped = kl.jump(U, w0, T, method=method)
        assert ((jumped - stepped).abs() / scale).max() < 1e-9, method


def test_power_jump_matches_matrix_power():
    U = stable_operators(5, 9, radius=0.99, seed=3)
    w0 = torch.randn(5, 9, dtype=torch.float64)
    for T in (1, 2, 3, 7, 64, 1000, 1023):
        ref = (torch.linalg.matrix_power(U, T) @ w0.unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(kl.jump(U, w0, T, method="power"), ref, atol=1e-12, rtol=1e-10), T


def test_recorder_streaming_equals_stored_at_mnist_block_sizes():
    shapes = [kl.LayerShape("l0", 20, 784), kl.LayerShape("l1", 20, 20), kl.LayerShape("l2", 20, 20),
              kl.LayerShape("l3", 10, 20)]
    part = kl.make_partition(shapes, ["quasi_node:157", "node", "node", "node"])
    assert part.block_sizes == [157, 21] and part.n_blocks == 150
    k, D = 300, part.n_params
    g = torch.Generator().manual_seed(1)
    traj = torch.randn(1, D, generator=g, dtype=torch.float64) + \
        (torch.randn(k, D, generator=g, dtype=torch.float64) * 1e-2).cumsum(0)
    stored = kl.TrajectoryRecorder(D, 11, 10 + k, mode="stored")
    stream = kl.TrajectoryRecorder(D, 11, 10 + k, mode="streaming", partition=part, chunk=37)
    for t in range(1, 11 + k):
        theta = traj[t - 11] if t >= 11 else torch.zeros(D, dtype=torch.float64)
        stored(t, theta)
        stream(t, theta)
    a = kl.Koopman(part, method="cholesky").fit(stored)
    b = kl.Koopman(part, method="cholesky").fit(stream)
    c = kl.Koopman(part, method="eigh").fit(stream)
    for Ua, Ub, Uc in zip(*(bench.dense_operators(kp) for kp in (a, b, c))):
        # same Gram matrices up to summation order: agreement to eps * cond(F)^2
        assert bench.rel_diff(Ub, Ua).max() < 1e-8
        assert bench.rel_diff(Uc, Ua).max() < 1e-8
    assert torch.equal(stream.last(), stored.last())


def test_helpers():
    assert bench.loglog_slope([1, 2, 4, 8], [3, 12, 48, 192]) == pytest.approx(2.0)
    calls = []
    times, outs = bench.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, {"b": 1})
    assert len(times["a"]) == 3 and len(times["b"]) == 1 and calls.count("a") == 3
    rows = bench.targets({"fit_speedup_cholesky_vs_pinv": 10.0, "recording_overhead_streaming": 0.2})
    by = {r["key"]: r for r in rows}
    assert by["fit_speedup_cholesky_vs_pinv"]["met"] is False
    assert by["fit_speedup_cholesky_vs_pinv"]["off_by_factor"] == pytest.approx(3.0)
    assert by["recording_overhead_streaming"]["off_by_factor"] == pytest.approx(2.0)
    assert by["jump_speedup_vs_fast_loop_mnist"]["met"] is None


@pytest.mark.parametrize("T", [1, 2, 5, 64, 100, 1876])
def test_path_by_doubling_equals_step_by_step(T):
    U = toy.stable_operators(7, 13, seed=T)
    w0 = torch.randn(7, 13, dtype=torch.float64)
    a, b = kl.path(U, w0, T), kl.path(U, w0, T, method="doubling")
    assert a.shape == b.shape == (T + 1, 7, 13)
    assert torch.equal(b[0], w0)
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-12 * float(w0.abs().max()))


def test_book_minutes_counts_only_complete_builds(monkeypatch):
    monkeypatch.setattr(bench.notebook_times, "book_notebooks", lambda: ["a", "b"])
    assert bench.book_minutes(None) == (None, 0, 2)
    assert bench.book_minutes({"a": 60.0}) == (None, 1, 2)
    assert bench.book_minutes({"a": 60.0, "b": 120.0, "other": 1e6}) == (pytest.approx(3.0), 2, 2)


def test_notebook_seconds_reads_timings_or_gives_none(tmp_path):
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "notebook-timings.json").write_text(json.dumps({"profile": "ci", "notebook_seconds": {"x": 1.5}}))
    assert bench.notebook_seconds(tmp_path) == {"ci": {"x": 1.5}, "paper": None}


# -- memory: the chunked layout and checks give the values of the whole-array computations -----------------------
def _mnist_partition():
    shapes = [kl.LayerShape("l0", 20, 784), kl.LayerShape("l1", 20, 20), kl.LayerShape("l2", 20, 20),
              kl.LayerShape("l3", 10, 20)]
    return kl.make_partition(shapes, ["quasi_node:157", "node", "node", "node"])


@pytest.mark.parametrize("batch", [(), (1,), (3,)])
def test_chunked_layout_equals_the_time_last_layout_in_float64(monkeypatch, batch):
    monkeypatch.setattr(bench.fits, "CHUNK_BYTES", 8 * 157 * 30 * 7)  # 7 blocks per chunk: several chunks
    part = _mnist_partition()
    rec = torch.randn((30,) + batch + (part.n_params,), generator=torch.Generator().manual_seed(2))
    got = bench.fits.group_snapshots(rec, part)
    for a, b in zip(part.time_last(rec), got):
        assert b.dtype == torch.float64 and b.is_contiguous() and torch.equal(a.double(), b)


def test_chunked_residuals_conditions_and_lstsq_equal_the_whole_batch(monkeypatch):
    x = bench.random_walk(10, 6, 50, seed=5)
    U = torch.randn(10, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    whole = (U @ x[..., :-1] - x[..., 1:]).flatten(1).norm(dim=1) / x[..., 1:].flatten(1).norm(dim=1)
    S = torch.linalg.svdvals(x[..., :-1])
    monkeypatch.setattr(bench.fits, "CHUNK_BYTES", 8 * 6 * 50 * 3)  # 3 blocks per chunk, the last one shorter
    assert len(bench.fits.block_chunks(10, 6 * 50)) == 4
    assert torch.equal(bench.fits.residuals(U, x), whole)
    assert torch.equal(bench.fits.condition_numbers(x), S[:, 0] / S[:, -1])
    assert torch.equal(bench.FIT_METHODS["lstsq_batched"](x), kl.finite_section(x, "lstsq"))


def test_random_walk_in_place_is_the_offset_plus_the_walk():
    g = torch.Generator().manual_seed(7)
    steps = torch.randn(3, 4, 25, generator=g, dtype=torch.float64) * 1e-2
    ref = torch.randn(3, 4, 1, generator=g, dtype=torch.float64) + steps.cumsum(-1)
    assert torch.equal(bench.random_walk(3, 4, 25, seed=7), ref)


def test_complexity_fit_of_the_recorded_dtype_equals_that_of_its_float64_copy():
    """The complexity table takes the recording in its training dtype (float32), no float64 copy:
    the fit finds the same recorded precision and gives the same operators bit for bit."""
    part = _mnist_partition()
    g = torch.Generator().manual_seed(8)
    rec = (torch.randn(1, part.n_params, generator=g) + (torch.randn(300, part.n_params, generator=g) * 1e-2)
           .cumsum(0))[:, None]                                                      # (k, 1, D) float32
    for method in ("cholesky", "eigh"):
        a = kl.Koopman(part, method=method).fit(rec)
        b = kl.Koopman(part, method=method).fit(rec.double())
        assert all(torch.equal(u, v) for u, v in zip(bench.dense_operators(a), bench.dense_operators(b))), method
