"""The NN DE solver benchmarks (paper section 4, S9): optimizer step against Koopman step, path
and jumps over ``T = de_T``, the pipeline's routes (the default fit's, and the strided fit's on its
own run recorded at the rule's stride), the paper's ``pinv`` fit against Cholesky,
the recording's extra time per step, and the fast-loop and paper-style step times of every
optimizer of :mod:`koopman_repro.experiments.de_solver`.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from koopman_lib.errors import FitError
from koopman_lib.estimator import Koopman
from koopman_lib.evolve import path
from koopman_lib.metrics import finite_median
from koopman_lib.partition import make_partition
from koopman_lib.recorder import TrajectoryRecorder
from koopman_lib.stride import choose_stride, strided_window

from .pipeline import time_pipeline
from .profiles import BenchConfig
from .steps import block_states, dense_operators, jump_assembled, koopman_steps
from .timing import clock, failsafe, interleaved, ratio


def de_run(cfg: BenchConfig, seed: int) -> dict:
    """The DE solver of :mod:`koopman_repro.experiments.de_solver` (its network, loss, analytic
    gradient, partition and learning-rate schedule, trained in its main dtype), one network:
    ``de_warmup`` optimizer steps, then a window of ``de_window`` steps recorded stored in the
    training dtype, every recorder call timed (the recording's extra time); on that recording
    the candidate routes of the pipeline (:func:`koopman_repro.bench.pipeline.time_pipeline`), the
    paper's pinv against Cholesky, and the jump methods and step-by-step evolution interleaved
    with further optimizer chunks; and the fast-loop and paper-style step times of every
    optimizer of the experiment (interleaved repeats of ``de_chunk`` steps)."""
    from ..experiments import de_solver as dx
    dcfg = dx.Config(n_inits=1, seed=seed)
    dtype = getattr(torch, dcfg.train_dtypes[0])
    torch.manual_seed(seed)
    np.random.seed(seed)
    problem, theta0 = dx._setup(dcfg, dtype)
    name = dcfg.optimizers[0]
    part = make_partition(problem.shapes, list(dcfg.partition))
    run = _recorded_run(cfg, dx, dcfg, problem, theta0, dtype, 1)
    th, opt, train, state = run["th"], run["opt"], run["train"], run["state"]
    snaps, window_s = run["recorder"].snapshots, run["window_s"]
    theta = th.detach().clone()
    T = cfg.de_T
    loss_fn = lambda w: float(problem.loss(w.to(dtype))[0])  # noqa: E731
    pipe = time_pipeline(part, snaps, theta, [T], loss_fn, cfg.repeats)
    strided = _strided(cfg, dx, dcfg, problem, theta0, dtype, part, snaps, loss_fn)
    # the paper's fit (one SVD per block, MATLAB's cutoff) against the normal equations (Cholesky)
    estimators = {"pinv": lambda: Koopman(part, cutoff="paper"), "cholesky": lambda: Koopman(part, method="cholesky")}
    fits, fitted = interleaved({m: failsafe(lambda m=m: estimators[m]().fit(snaps)) for m in estimators}, cfg.repeats)
    fits = {m: (None if isinstance(fitted[m], FitError) else v) for m, v in fits.items()}
    kt = Koopman(part, cutoff="paper").fit(snaps)
    theta64 = theta.double()
    w0, ops = block_states(kt, theta64), dense_operators(kt)
    kfns = {"jump_auto": lambda: kt.predict(theta64, T), "jump_power": lambda: jump_assembled(kt, theta64, T, "power"),
            "jump_eig": lambda: jump_assembled(kt, theta64, T, "eig"), "steps_raw": lambda: koopman_steps(ops, w0, T),
            "path_doubling": lambda: [path(U, w, T, "doubling") for U, w in zip(ops, w0)]}
    ktimes: dict[str, list[float]] = {k: [] for k in kfns}
    after = []
    for _ in range(cfg.de_chunks_after):
        after.append(clock(lambda: train(cfg.de_chunk))[0] / cfg.de_chunk)
        t_i, _ = interleaved(kfns, 1)
        for k, v in t_i.items():
            ktimes[k] += v
    # fast-loop and paper-style steps of every optimizer, from the same initial weights
    fast: dict[str, list[float]] = {o: [] for o in dcfg.optimizers}
    paper: dict[str, list[float]] = {o: [] for o in dcfg.optimizers}
    for r in range(cfg.repeats):
        for o in (dcfg.optimizers if r % 2 == 0 else dcfg.optimizers[::-1]):
            fast[o].append(dx.time_fast_loop(problem, theta0[:1], o, dcfg, cfg.de_chunk) / cfg.de_chunk)
            paper[o].append(dx.time_paper_style(problem, theta0[0], o, dcfg, cfg.de_chunk, dtype) / cfg.de_chunk)
    train_s = window_s - state["record"]
    return {"seed": seed, "n_params": int(th.shape[1]), "partition": part.describe(), "k": cfg.de_window, "T": T,
            "train_dtype": dcfg.train_dtypes[0], "sizes": list(problem.sizes), "n_points": int(dcfg.n_points),
            "optimizer": name, "optimizer_step_seconds": finite_median(after),
            "step_seconds_fast_loop": {o: finite_median(v) for o, v in fast.items()},
            "step_seconds_paper_style": {o: finite_median(v) for o, v in paper.items()},
            "record_seconds": state["record"], "train_seconds_window": train_s,
            "recording_overhead": ratio(state["record"], train_s), "pipeline": pipe, "strided": strided,
            "fit_seconds": {m: (finite_median(v) if v else None) for m, v in fits.items()},
            "koopman_seconds": {k: finite_median(v) for k, v in ktimes.items()}, "koopman_times": ktimes,
            "snapshots": snaps[:, 0]}  # (k, D) in the training dtype, no float64 copy (the complexity table's)


def _recorded_run(cfg: BenchConfig, dx, dcfg, problem, theta0: torch.Tensor, dtype, stride: int) -> dict:
    """One network of optimizer ``dcfg.optimizers[0]`` from ``theta0[:1]``: ``de_warmup`` steps, then
    the window of ``de_window`` steps recorded stored in the training dtype, every recorder call timed
    (``state["record"]``). ``stride`` > 1: the recorder keeps every ``stride``-th step of the window
    ending at its last step (on that grid), called after every step. Returns the network ``th``, its
    optimizer, ``train(n)`` (more steps), ``state``, the recorder and the window's wall time."""
    th = theta0[:1].clone()
    opt = dx.de_optimizer(dcfg.optimizers[0], [th], dcfg)
    state = {"step": 0, "record": 0.0}
    t2 = cfg.de_warmup + cfg.de_window
    rec = TrajectoryRecorder(th.shape[1], t2 - stride * ((cfg.de_window - 1) // stride), t2, (1,), "stored",
                             dtype=dtype, stride=stride)

    def record(step, theta):
        s = time.perf_counter()
        rec(step, theta)
        state["record"] += time.perf_counter() - s

    def train(n, record_steps=False):
        dx.fast_steps(problem, th, opt, dcfg, state["step"], n, record if record_steps else None)
        state["step"] += n

    train(cfg.de_warmup)
    window_s, _ = clock(lambda: train(cfg.de_window, record_steps=True))
    return {"th": th, "opt": opt, "train": train, "state": state, "recorder": rec, "window_s": window_s}


def _strided(cfg: BenchConfig, dx, dcfg, problem, theta0, dtype, part, full: torch.Tensor, loss_fn) -> dict:
    """The strided fit's own recording and pipeline: the same network trained again (same steps)
    with a recorder that keeps every ``s``-th step, ``s = choose_stride(de_window, partition)`` (the
    rule of :data:`koopman_lib.estimator.STRIDED_FITS`), every call timed; then
    :func:`koopman_repro.bench.pipeline.time_pipeline` at stride ``s`` (the default fit's timing).
    ``full`` ``(k, 1, D)``: the first run's recording, only to check that the strided recorder kept
    exactly its every ``s``-th snapshot (``max_abs_diff_vs_full``; 0 for the deterministic training)."""
    s = choose_stride(cfg.de_window, part)
    run = _recorded_run(cfg, dx, dcfg, problem, theta0, dtype, s)
    rec = run["recorder"]
    pipe = time_pipeline(part, rec.snapshots, run["th"].detach().clone(), [cfg.de_T], loss_fn, cfg.repeats, stride=s)
    record_s = run["state"]["record"]
    return {"fit": "default-strided", "stride": s, "k": rec.k, "record_seconds": record_s,
            "train_seconds_window": run["window_s"] - record_s,
            "recording_overhead": ratio(record_s, run["window_s"] - record_s),
            "max_abs_diff_vs_full": float((rec.snapshots.double() - strided_window(full, s).double()).abs().max()),
            "pipeline": pipe}
