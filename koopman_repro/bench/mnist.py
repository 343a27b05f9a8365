"""The MNIST-size benchmarks: one training run of the paper's network with the window
recorded (the recording's overhead), the pipeline's routes, the Koopman fit, jump, path and
steps timed between the optimizer's epochs after ``t2``, and the fit benchmark on the real
recording; and the paper-style loop's step time (the second baseline).
"""
from __future__ import annotations

import time

import torch

from koopman_lib.errors import FitError
from koopman_lib.estimator import Koopman
from koopman_lib.evolve import path
from koopman_lib.metrics import equivalent_runtime, finite_median, t_eq_parts
from koopman_lib.partition import make_partition
from koopman_lib.recorder import TrajectoryRecorder
from koopman_lib.stride import choose_stride, strided_window

from .fits import FIT_METHODS, fit_benchmark, group_snapshots, rank_deficiency, rel_diff
from .pipeline import time_pipeline
from .profiles import BenchConfig
from .steps import block_states, dense_operators, koopman_steps, steps_assembled
from .timing import clock, interleaved, release_memory


def mnist_data(cfg: BenchConfig):
    """``(x_train, y_train, x_test, y_test)``, cut to ``cfg.train_subset`` / ``cfg.test_subset``."""
    from koopman_lib.data import load_mnist
    x, y = load_mnist("train")
    xt, yt = load_mnist("test")
    return x[:cfg.train_subset], y[:cfg.train_subset], xt[:cfg.test_subset], yt[:cfg.test_subset]


def _train_recorded(cfg: BenchConfig, seed: int, x, y, stride: int = 1) -> dict:
    """Train one network to ``t2`` with the window recorded stored in the training dtype (every
    recorder call timed): the network, partition, trainer, recorder and per-epoch times.
    ``stride`` > 1: the recorder keeps every ``stride``-th step of the window ending at ``t2``
    (``t1 .. t2`` on that grid), and is still called after every step of the window (the calls it
    skips are timed too: the strided recording's cost as a training run pays it)."""
    from koopman_lib.ensembles import EnsembleMLP
    from koopman_lib.training import EnsembleTrainer
    net = EnsembleMLP(cfg.mnist_sizes, "relu", 1, seed=seed)
    part = make_partition(net.shapes, list(cfg.mnist_partition))
    tr = EnsembleTrainer(net, x, y, cfg.batch_size, "adadelta", cfg.lr, cfg.gamma, seed=seed)
    spe = tr.steps_per_epoch
    e1, e2 = cfg.window_epochs
    t1, t2 = (e1 - 1) * spe + 1, e2 * spe
    t1 = t2 - stride * ((t2 - t1) // stride)      # the window on the stride's grid, ending at t2
    stored = TrajectoryRecorder(net.n_params, t1, t2, (1,), "stored", dtype=net.theta.dtype,
                                stride=stride)    # the training dtype: exact
    cb = {"stored": 0.0}

    def on_step(step, theta):
        if t1 <= step <= t2:
            s = time.perf_counter()
            stored(step, theta)
            cb["stored"] += time.perf_counter() - s

    epochs = []
    for e in range(1, e2 + 1):
        cb["stored"] = 0.0
        st = tr.run_epoch(on_step)
        epochs.append({"epoch": e, "seconds": st.seconds, "stored_s": cb["stored"],
                       "train_s": st.seconds - cb["stored"], "recorded": e >= e1})
    return {"net": net, "part": part, "tr": tr, "spe": spe, "t1": t1, "t2": t2, "stored": stored, "epochs": epochs}


def _streaming_method(part, stream) -> str:
    """Cholesky where the window allows it, else the eigh pseudo-inverse of the same Gram matrices."""
    try:
        Koopman(part, method="cholesky").fit(stream)
    except FitError:
        return "eigh"
    return "cholesky"


def _koopman_fns(kt: Koopman, part, stream, stream_method: str, theta2, Ts, n_steps: int) -> dict:
    """The Koopman operations timed between the baseline epochs: jumps, steps, path, refit."""
    T = Ts[-1]
    w0, ops = block_states(kt, theta2), dense_operators(kt)
    kfns = {f"jump_T{Tn}": (lambda Tn=Tn: kt.predict(theta2, Tn)) for Tn in Ts}
    kfns[f"steps_raw_T{T}"] = lambda: koopman_steps(ops, w0, n_steps)
    kfns[f"steps_assembled_T{T}"] = lambda: steps_assembled(kt, theta2, n_steps)
    kfns[f"path_doubling_T{T}"] = lambda: [path(U, w, T, "doubling") for U, w in zip(ops, w0)]
    kfns["fit_streaming"] = lambda: Koopman(part, method=stream_method).fit(stream)
    return kfns


def _epochs_after(cfg: BenchConfig, tr, net, xt, yt, kfns: dict, loss0: float) -> tuple[list, list, dict]:
    """The optimizer's epochs after ``t2`` (each evaluated), with one round of the Koopman
    timings ``kfns`` after each: ``(epoch rows, test losses from t2 on, Koopman times)``."""
    from koopman_lib.ensembles import evaluate
    e2 = cfg.window_epochs[1]
    ktimes: dict[str, list[float]] = {k: [] for k in kfns}
    after, losses = [], [loss0]
    for i in range(cfg.epochs_after):
        st = tr.run_epoch()
        ev_s, ev_i = clock(lambda: evaluate(net, xt, yt))
        losses.append(float(ev_i[0][0]))
        after.append({"epoch": e2 + i + 1, "seconds": st.seconds, "eval_s": ev_s})
        t_i, _ = interleaved(kfns, 1)
        for k, v in t_i.items():
            ktimes[k] += v
    if cfg.epochs_after == 0:
        ktimes, _ = interleaved(kfns, cfg.repeats)
    return after, losses, ktimes


def _record_bytes(cfg: BenchConfig, D: int, k: int, part, stored) -> dict:
    """Memory of the stored and the streaming recording of ``k`` snapshots of ``D`` weights."""
    return {"stored": TrajectoryRecorder.estimate_bytes(D, k, (1,), "stored", itemsize=stored.snapshots.element_size()),
            "streaming": TrajectoryRecorder.estimate_bytes(D, k, (1,), "streaming", part, cfg.stream_chunk)}


def mnist_run(cfg: BenchConfig, seed: int, data, fit_bench: bool) -> dict:
    """One MNIST init: train to t2 recording the window stored in the training dtype (the
    pipeline's recording; every recorder call timed), then the same snapshots fed in order to a
    streaming recorder (timed: the Gram updates a streaming recording would add to the steps, not
    interleaved with training, so that neither recording's time is inflated by the other's cache
    traffic); the pipeline's routes (:func:`koopman_repro.bench.pipeline.time_pipeline`), the Koopman
    jump and evaluation, then the optimizer epochs after t2 with the Koopman timings interleaved
    between them. ``fit_bench``: also run :func:`fit_benchmark` (:func:`_fit_bench`)."""
    from koopman_lib.ensembles import evaluate
    x, y, xt, yt = data
    tw = _train_recorded(cfg, seed, x, y)
    net, part, spe, t1, t2, stored, epochs = (tw[k] for k in ("net", "part", "spe", "t1", "t2", "stored", "epochs"))
    D = net.n_params
    stream = TrajectoryRecorder(D, t1, t2, (1,), "streaming", part, chunk=cfg.stream_chunk)
    stream_s, _ = clock(lambda: [stream(t1 + j, stored.snapshots[j]) for j in range(stored.k)])
    theta2 = net.theta.detach().double()
    loss0 = float(evaluate(net, xt, yt)[0][0])
    Ts = [n * spe for n in cfg.T_epochs]
    T = Ts[-1]
    # the pipeline's candidate routes to the default fit, on the stored recording (issue 15)
    pipe = time_pipeline(part, stored.snapshots, net.theta.detach().clone(), Ts,
                         lambda th: float(evaluate(net, xt, yt, theta=th)[0][0]), cfg.repeats)
    release_memory()                    # the routes' fits (reference cycles) before the next allocations
    strided = strided_run(cfg, seed, x, y, xt, yt, stored.snapshots, part, Ts)
    # Koopman training from the streaming recording: fit, jump, evaluate (each timed once here,
    # the jump and steps again between the baseline epochs below)
    stream_method = _streaming_method(part, stream)
    kt = Koopman(part, method=stream_method)
    fit_s, _ = clock(lambda: kt.fit(stream))
    jump_s, pred = clock(lambda: kt.predict(theta2, T))
    eval_s, ev = clock(lambda: evaluate(net, xt, yt, theta=pred))
    loss_ko = float(ev[0][0])
    loss_ko_by_T = {int(Tn): float(evaluate(net, xt, yt, theta=kt.predict(theta2, Tn))[0][0]) for Tn in Ts}
    n_steps = min(T, cfg.step_timing_steps or T)
    kfns = _koopman_fns(kt, part, stream, stream_method, theta2, Ts, n_steps)
    after, losses, ktimes = _epochs_after(cfg, tw["tr"], net, xt, yt, kfns, loss0)
    for k in (f"steps_raw_T{T}", f"steps_assembled_T{T}"):  # timed over n_steps, scaled to T
        ktimes[k] = [v * T / n_steps for v in ktimes[k]]
    plain = [r["seconds"] / spe for r in epochs if not r["recorded"]] + [r["seconds"] / spe for r in after]
    parts = t_eq_parts(loss_ko, losses)
    epoch_times = [r["seconds"] for r in after]
    # censored: a lower bound, the optimizer had not got there yet
    teq_s = float(sum(epoch_times)) if parts.censored else equivalent_runtime(parts, epoch_times)
    out = {
        "seed": seed, "steps_per_epoch": spe, "t1": t1, "t2": t2, "k": t2 - t1 + 1, "T": T, "Ts": Ts,
        "epochs": epochs, "epochs_after": after, "test_losses_after_t2": losses,
        "loss_t2": loss0, "loss_koopman": loss_ko, "loss_koopman_by_T": loss_ko_by_T,
        "t_eq_epochs": parts.value, "t_eq_censored": parts.censored, "t_eq_over_T": parts.value / cfg.T_epochs[-1],
        "optimizer_seconds_to_koopman_loss_after_t2": teq_s,
        "optimizer_step_seconds": finite_median(plain), "train_seconds_to_t2": sum(r["train_s"] for r in epochs),
        "train_seconds_window": sum(r["train_s"] for r in epochs if r["recorded"]),
        "record_seconds": {"stored": sum(r["stored_s"] for r in epochs), "streaming": stream_s},
        "streaming_fit_seconds": finite_median(ktimes["fit_streaming"] + [fit_s]),
        "jump_seconds_first": jump_s, "eval_seconds": eval_s,
        "koopman_times": ktimes, "step_timing_steps": n_steps, "partition": part.describe(), "n_params": D,
        "streaming_method": stream_method, "pipeline": pipe, "strided": strided,
        "record_bytes": _record_bytes(cfg, D, t2 - t1 + 1, part, stored),
    }
    if fit_bench:
        release_memory()
        out.update(_fit_bench(cfg, net, part, stored, stream, x, xt, yt, T))
    return out


def strided_run(cfg: BenchConfig, seed: int, x, y, xt, yt, full: torch.Tensor, part, Ts) -> dict:
    """The strided fit's own recording and pipeline: the same network trained again to ``t2``
    (same seed, same steps) with a recorder that keeps every ``s``-th step (``s =
    choose_stride(k, partition)``, the rule of :data:`koopman_lib.estimator.STRIDED_FITS`), every
    recorder call timed; then :func:`koopman_repro.bench.pipeline.time_pipeline` at stride ``s`` on
    what it recorded. ``full`` ``(k, 1, D)``: the run's recording of every step, only to check that
    the strided recorder kept exactly its every ``s``-th snapshot (``max_abs_diff_vs_full``; 0 for
    a deterministic training run). The timing function is the default fit's, with ``stride=s``."""
    from koopman_lib.ensembles import evaluate
    s = choose_stride(full.shape[0], part)
    tw = _train_recorded(cfg, seed, x, y, stride=s)
    rec, net = tw["stored"], tw["net"]
    diff = float((rec.snapshots.double() - strided_window(full, s).double()).abs().max())
    pipe = time_pipeline(part, rec.snapshots, net.theta.detach().clone(), Ts,
                         lambda th: float(evaluate(net, xt, yt, theta=th)[0][0]), cfg.repeats, stride=s)
    record_s = sum(r["stored_s"] for r in tw["epochs"])
    window_s = sum(r["train_s"] for r in tw["epochs"] if r["recorded"])
    out = {"fit": "default-strided", "stride": s, "t1": tw["t1"], "k": rec.k, "record_seconds": record_s,
           "train_seconds_window": window_s, "recording_overhead": record_s / window_s,
           "max_abs_diff_vs_full": diff, "pipeline": pipe}
    del tw, rec, net
    release_memory()
    return out


def _fit_bench(cfg: BenchConfig, net, part, stored, stream, x, xt, yt, T: int) -> dict:
    """:func:`fit_benchmark` on the run's recording (stored and streaming), with the test loss
    after the jump, the layout time and the rank-deficiency diagnostics; also the snapshots
    ``(k, D)`` and group sizes the complexity table and the synthetic fits use (not saved)."""
    from koopman_lib.ensembles import evaluate
    layout_s, groups = clock(lambda: group_snapshots(stored.snapshots, part))  # one float64 layout, timed

    def loss_fn(wT):
        th = part.assemble([w.reshape((1,) + tuple(w.shape)) for w in wT])
        return float(evaluate(net, xt, yt, theta=th)[0][0]) if bool(torch.isfinite(th).all()) else float("nan")
    methods = tuple(m for m in FIT_METHODS if cfg.fit_extras or m not in ("pinv_loop_naive", "pinv_batched"))
    fb = fit_benchmark(groups, stream.accumulators, cfg.repeats, cfg.slow_repeats, T, methods, loss_fn=loss_fn)
    del groups                          # memory: the float64 layout, before anything else is allocated
    ops_s = fb.pop("operators")
    chol, strm = ops_s.get("cholesky_batched"), ops_s.get("streaming_cholesky")
    fb["streaming_vs_stored_cholesky_max_rel_diff"] = None if isinstance(chol, FitError) or isinstance(strm, FitError) \
        else float(torch.cat([rel_diff(a, b) for a, b in zip(strm, chol)]).max())
    fb["layout_seconds"] = layout_s
    # where the rank deficiency comes from: coordinates that never move in the window,
    # and input pixels that are constant over the training set
    fb.update(rank_deficiency(stored.snapshots[:, 0], part, x, net.shapes[0]))
    # the snapshots (k, D) in the training dtype (a view, no float64 copy), for the complexity table, not saved
    return {"fit": fb, "snapshots": stored.snapshots[:, 0], "group_sizes": [tuple(g.shape) for g in part.groups]}


def paper_style_step_seconds(cfg: BenchConfig, labels: torch.Tensor) -> float:
    """Seconds per step of the PyTorch MNIST example's loop (:func:`koopman_repro.experiments.mnist.
    time_example_epoch`: ``DataLoader``, per-sample transform, ``nn.Module``), timed over the first
    ``paper_style_steps`` batches, median of ``repeats`` (the paper-style baseline). ``labels``: the
    training labels (:func:`mnist_data`'s); the images are read as the example reads them, raw uint8
    (the float images of ``Data.load`` are not needed: memory)."""
    from koopman_lib.data import FILES, locate, read_idx
    from ..experiments import mnist as mx
    raw = read_idx(locate(FILES["train"][0]))[:cfg.train_subset]
    torch.manual_seed(cfg.seed)
    model = mx.example_net(cfg.mnist_sizes)
    opt = torch.optim.Adadelta(model.parameters(), lr=cfg.lr)
    n = min(len(labels), cfg.paper_style_steps * cfg.batch_size)
    data = torch.utils.data.Subset(mx.ExampleDataset(raw, labels, mx.PAPER_NORMALIZE), range(n))
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True)
    return finite_median([mx.time_example_epoch(model, opt, loader) / len(loader) for _ in range(cfg.repeats)])
