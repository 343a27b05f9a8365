"""Where the strided fit stops (issue 24, item 4): the default fit of every ``s``-th snapshot of the window,
``s`` from 1 to ``max(Config.sweep_strides)`` and the rule's choice (:func:`koopman_lib.stride.choose_stride`,
marked ``rule``), on every network of the run, per optimizer and training dtype, at the paper's ``T``
(``T_main``, predicted as its horizon :func:`~.fit_methods.horizon`): prediction quality (success, median
``T_eq/T``, median loss) against cost (fit seconds, snapshots kept).

Every stride is scored by the code that scores the book's fits (:func:`~.readings.teq_parts`); at ``s = 1``
the sweep's fits are the ``default`` / ``default-stabilised`` fits and at the rule's ``s`` the
``default-strided`` ones, value for value (the tests hold both)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from koopman_lib.estimator import STRIDED_FITS, Koopman
from koopman_lib.fit import FITS
from koopman_lib.metrics import finite_median
from koopman_lib.stride import choose_stride, strided_window

from .fit_methods import horizon
from .network import batched_loss
from .readings import teq_parts

if TYPE_CHECKING:
    from .readings import Run, Window

#: the fits of the sweep: the book's two strided fits, at every stride of the sweep
SWEEP_FITS = tuple(STRIDED_FITS)


def sweep_strides(run: Run) -> tuple[list[int], int]:
    """``(strides, rule)``: ``Config.sweep_strides`` that leave the window at least 2 snapshots
    (``s <= t2 - t1``) and the rule's stride for the window, in order."""
    cfg = run.cfg
    rule = choose_stride(cfg.t2 - cfg.t1 + 1, run.partition)
    return sorted({s for s in cfg.sweep_strides if s <= cfg.t2 - cfg.t1} | {rule}), rule


def stride_point(run: Run, w: Window, k: int, s: int) -> dict:
    """The sweep's fits of optimizer ``k`` at stride ``s``: ``{fit: per-network (T_eq, loss)}``, the
    median seconds of one fit of all networks (both fits share it) and the snapshots kept."""
    cfg, E = run.cfg, run.E
    window = strided_window(w.snaps, s)
    seconds, fitted = [], None
    for _ in range(cfg.sweep_repeats):
        t0 = time.perf_counter()
        fitted = Koopman(run.partition, stride=s).fit_variants(window, {f: FITS[STRIDED_FITS[f]] for f in SWEEP_FITS})
        seconds.append(time.perf_counter() - t0)
    h = horizon(cfg.T_main, s)
    out = {"fit_seconds": finite_median(seconds), "snapshots": int(window.shape[0]), "horizon": h, "fits": {}}
    for f, kp in fitted.items():
        pred = w.theta_t2 if h == 0 else kp.predict(w.theta_t2, h)
        loss = batched_loss(run.problem, pred.to(run.dtype)).to(torch.float64)
        teq = [teq_parts(cfg, float(loss[e]), w.opt_losses[:, e].numpy())[0].value for e in range(E)]
        out["fits"][f] = {"teq": teq, "loss": loss.tolist(),
                          "max_spectral_radius": kp.spectral_radius_.reshape(E).tolist()}
    return out


def sweep_rows(run: Run, w: Window, k: int) -> list[dict]:
    """The ``stride_sweep`` rows of optimizer ``k`` (one per fit and stride; ``w`` its
    :class:`~.readings.Window`)."""
    cfg, E = run.cfg, run.E
    strides, rule = sweep_strides(run)
    m = max(int(g.shape[1]) for g in run.partition.groups)
    rows = []
    for s in strides:
        p = stride_point(run, w, k, s)
        for f, r in p["fits"].items():
            rows.append({"train_dtype": run.dtype_name, "optimizer": run.names[k], "fit": f, "stride": s,
                         "rule": s == rule, "T": cfg.T_main, "horizon": p["horizon"], "n_inits": E,
                         "snapshots": p["snapshots"], "pairs_per_coordinate": (p["snapshots"] - 1) / m,
                         "success_rate": sum(t > 0 for t in r["teq"]) / E,
                         "teq_over_t_median": finite_median([t / cfg.T_main for t in r["teq"]]),
                         "loss_koopman_median": finite_median(r["loss"]),
                         "loss_optimizer_median": finite_median(w.opt_losses[p["horizon"]].tolist()),
                         "median_max_spectral_radius": finite_median(r["max_spectral_radius"]),
                         "fit_seconds_per_network": p["fit_seconds"] / E})
    return rows
