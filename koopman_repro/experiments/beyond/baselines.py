"""Item 1: Koopman training against linear extrapolation of every weight, continuing the
optimizer, fresh Adam / SGD with momentum, and L-BFGS, at equal steps and at equal wall-clock,
on the NN DE solver and on MNIST (from the recorded runs of :mod:`.paper_runs`).
"""
from __future__ import annotations

import numpy as np
import torch

from koopman_lib.baselines import continue_lbfgs, continue_training, value_at_time
from koopman_lib.estimator import Koopman
from koopman_lib.progress import bar
from koopman_lib.metrics import finite_median
from koopman_lib.seeds import shuffle_seed
from .common import (FIT_NAMES, FITS, Config, DeRun, Images, Run, _frac, _rows, _timed, censored, extrapolate,
                     de_schedule, fit_variants, koopman_curve, line_fit_chunked, mnist_schedule, teq_over_t)
from .precision import DE_PAPER_FIT, de_precision_fits


# ------------------------------------------------------------------------------------------
# continued optimizers on an ensemble (both experiments)
# ------------------------------------------------------------------------------------------
def result_row(experiment: str, method: str, setting: str, comparison: str, steps: int, loss, acc, ref: torch.Tensor,
               ref_every: int, T: int, seconds: float, evals, loss_start, capped: bool = False,
               teq_fixed: float | None = None) -> dict:
    """One row of item 1. ``loss``/``acc`` ``(E,)`` after ``steps`` steps; ``ref`` the continued
    optimizer's losses from ``t2`` every ``ref_every`` steps (for ``T_eq``); ``seconds`` per
    network; ``capped``: the wall-clock budget allowed more steps than were run."""
    loss = torch.as_tensor(loss, dtype=torch.float64)
    r = [teq_fixed] * loss.numel() if teq_fixed is not None else teq_over_t(loss, ref, ref_every, T)
    return {"experiment": experiment, "method": method, "setting": setting, "comparison": comparison, "steps": steps,
            "loss_median": finite_median(loss), "accuracy_median": finite_median(acc) if acc is not None else None,
            "loss_at_t2_median": finite_median(loss_start), "teq_over_t_median": finite_median(r),
            "success_rate": _frac(np.array(r) > 0),
            "censored_fraction": 0.0 if teq_fixed is not None else _frac(censored(loss, ref)),
            "seconds_per_network": seconds, "loss_evaluations": evals, "capped_at_steps_run": capped}


def optimizer_rows(experiment: str, setting: str, traces: dict, E: int, budget: float, ref: torch.Tensor,
                   ref_every: int, T: int, loss_start) -> list[dict]:
    """Rows for optimizers started at ``t2``: equal steps (their last evaluation) and equal
    wall-clock (the last evaluation within ``budget`` seconds per network)."""
    rows = []
    for method, tr in traces.items():
        pairs = isinstance(tr.losses[0], tuple)
        losses = torch.stack([l[0] for l in tr.losses] if pairs else tr.losses)  # (n, E)
        accs = torch.stack([l[1] for l in tr.losses]) if pairs else None
        secs = [s / E for s in tr.seconds]
        rows.append(result_row(experiment, method, setting, "equal steps", tr.steps[-1], losses[-1],
                               accs[-1] if pairs else None, ref, ref_every, T, secs[-1], tr.evals, loss_start))
        idx = value_at_time(secs, list(range(len(secs))), budget)
        rows.append(result_row(experiment, method, setting, "equal wall-clock", tr.steps[idx], losses[idx],
                               accs[idx] if pairs else None, ref, ref_every, T, secs[idx], None, loss_start,
                               capped=idx == len(secs) - 1 and secs[-1] < budget))
    return rows



def minibatch_loss(net, images: Images, batch: int, seed: int, shared: bool = False, networks=None):
    """``loss_fn(theta (E, D), step) -> (E,)`` mean cross-entropy on a random minibatch drawn
    (with replacement) for that step; the same step always gives the same batch. Member ``e``
    draws its batches from its own seed, :func:`shuffle_seed` ``(seed, networks[e])`` (``networks``:
    default ``0..E-1``), so a network's batches do not depend on the others. ``shared``: one batch
    for all members, the same for every network (L-BFGS runs members one at a time)."""
    N = images.x_train.shape[0]

    def draw(s, step, n):
        return torch.randint(N, (n, batch), generator=torch.Generator().manual_seed(s * 1_000_003 + step))

    def fn(theta, step):
        E = theta.shape[0]
        if shared:
            idx = draw(seed, step, 1)[0]
            out, y = net.forward(images.x_train[idx], theta), images.y_train[idx].expand(E, batch)
        else:
            members = range(E) if networks is None else networks
            idx = torch.cat([draw(shuffle_seed(seed, i), step, 1) for i in members])
            out, y = net.forward(images.x_train[idx], theta), images.y_train[idx]
        ce = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none")
        return ce.reshape(E, batch).mean(1)
    return fn


def keep(values: dict, key: str, loss, ref: torch.Tensor, ref_every: int, T: int) -> None:
    """A method's per-network check values after ``T`` steps: its loss and ``T_eq/T``."""
    values[f"{key}:loss"] = torch.as_tensor(loss, dtype=torch.float64)
    values[f"{key}:teq_over_t"] = teq_over_t(loss, ref, ref_every, T)


# ------------------------------------------------------------------------------------------
# the NN DE solver
# ------------------------------------------------------------------------------------------
def de_baselines(cfg: Config, d: DeRun) -> tuple[list[dict], dict, dict]:
    """Item 1 on the NN DE solver: ``(rows, curves, per-network check values)``, every method
    started from ``w(t2)``."""
    E = d.E
    problem, partition, losses, step_seconds, loss_fn, snap = (d.problem, d.partition, d.losses, d.step_seconds,
                                                               d.loss_fn, d.snap)
    t1, t2, T, setting = de_schedule(cfg)
    window = d.window(t1, t2)
    ref = losses[t2:, :]                  # Adadelta continuation, every step
    rows, curves = [], {"T": list(range(0, T + 1, cfg.de_eval_every))}
    l_t2 = losses[t2]
    values = {"loss@t2": l_t2, "optimizer:loss": losses[t2 + T]}
    kp = Koopman(partition, cutoff="paper")
    _, fit_s = _timed(lambda: kp.fit(window))
    pred, jump_s = _timed(lambda: kp.predict(snap(t2), T))
    k_sec = (fit_s + jump_s) / E
    lk = loss_fn(pred)
    keep(values, "koopman", lk, ref, 1, T)
    values["koopman:spectral_radius"] = kp.spectral_radius_
    rows.append(result_row("de-solver", DE_PAPER_FIT, setting, "equal steps", T, lk, None, ref, 1, T, k_sec, 0, l_t2))
    path = kp.rollout(snap(t2), T, cfg.de_eval_every, loss_fn).loss    # nan once the weights are non-finite
    curves["koopman"] = _rows(path, len(curves["T"])).T.tolist()
    # Why the paper's fit fails here but not in the DE solver chapter (float32 training): the same
    # float64 window with the singular values below float32 resolution dropped, and the same window
    # rounded to float32 (what a float32 recording would hold) with the paper's pinv.
    for label, (p, sec) in de_precision_fits(partition, window, T).items():
        lp = loss_fn(p)
        keep(values, label, lp, ref, 1, T)
        rows.append(result_row("de-solver", label, setting, "equal steps", T, lp, None, ref, 1, T, sec / E, 0, l_t2))
    for L in (t2 - t1 + 1, T, max(2, T // 10)):
        p, sec = _timed(lambda: extrapolate(window, T, L))
        lp = loss_fn(p)
        keep(values, f"linear extrapolation, last {L}", lp, ref, 1, T)
        rows.append(result_row("de-solver", "linear extrapolation", f"{setting}, line through last {L} snapshots",
                               "equal steps", T, lp, None, ref, 1, T, sec / E, 0, l_t2))
        if L == t2 - t1 + 1:
            level, slope = line_fit_chunked(window, L)
            curves["linear"] = torch.stack([loss_fn(level + s * slope) for s in curves["T"]]).T.tolist()
    # the optimizer itself, continued (from the recorded run; it may go past T at equal wall-clock)
    cont = losses[t2: t2 + T + 1: cfg.de_eval_every]
    curves["optimizer"] = cont.T.tolist()
    per_step = step_seconds / E
    n_budget = int(k_sec / per_step)
    n_avail = cfg.de_steps - t2
    rows.append(result_row("de-solver", f"{cfg.de_optimizer} (continued)", setting, "equal steps", T,
                           losses[t2 + T], None, ref, 1, T, T * per_step, T, l_t2, teq_fixed=1.0))
    nb = min(n_budget, n_avail)
    rows.append(result_row("de-solver", f"{cfg.de_optimizer} (continued)", setting, "equal wall-clock", nb,
                           losses[t2 + nb], None, ref, 1, T, nb * per_step, nb, l_t2, capped=n_budget > n_avail,
                           teq_fixed=nb / T))
    traces = {}
    start = snap(t2).clone()
    de_loss = lambda th, step: problem.loss(th)  # noqa: E731
    for name, lr in bar(cfg.de_baselines, desc="de-solver baselines"):
        traces[f"{name} (fresh, lr {lr:g})"] = continue_training(start, de_loss, T, name, lr=lr,
                                                                 every=cfg.de_eval_every, eval_fn=loss_fn)
    traces["L-BFGS (per network, strong Wolfe)"] = continue_lbfgs(
        start, de_loss, cfg.de_lbfgs_steps, every=max(1, cfg.de_lbfgs_steps // 50), eval_fn=loss_fn)
    rows += optimizer_rows("de-solver", setting, traces, E, k_sec, ref, 1, T, l_t2)
    values.update({f"{k}:loss": tr.losses[-1] for k, tr in traces.items()})
    curves["baselines"] = {k: {"steps": v.steps, "seconds_per_network": [s / E for s in v.seconds],
                               "loss_median": [finite_median(x) for x in v.losses]} for k, v in traces.items()}
    curves["koopman_seconds_per_network"] = k_sec
    curves["optimizer_step_seconds_per_network"] = step_seconds / E
    return rows, curves, values


# ------------------------------------------------------------------------------------------
# MNIST at the paper's settings
# ------------------------------------------------------------------------------------------
def mnist_baselines(cfg: Config, run: Run, partition, networks: list[int]) -> tuple[list[dict], dict, tuple, dict]:
    """Item 1 on MNIST: ``(rows, curves, (fits, fit seconds per network), per-network check
    values)``, every method started from ``w(t2)``; the Koopman fits of the window are reused by
    item 5. ``networks``: the network index of each member."""
    net, images, E = run.net, run.images, run.E
    ev, every = run.evaluate, cfg.eval_every
    t1, t2, T, setting = mnist_schedule(cfg, run.S)
    window = run.window(t1, t2)
    ref = run.after(t2)
    theta_t2 = run.snap(t2)
    fits, fit_s = fit_variants(partition, window, FITS)
    rows, curves = [], {"steps": list(range(0, T + 1, every)), "optimizer": run.curve(t2, T).T.tolist(),
                        "optimizer_accuracy": run.curve_acc(t2, T).T.tolist()}
    k_sec = {}
    l_t2 = run.grid[t2][0]
    values = {"test_loss@t2": l_t2, "optimizer:test_loss": run.grid[t2 + T][0]}
    for name, fit in fits.items():
        _, jump_s = _timed(lambda: fit.predict(window[-1], T))
        k_sec[name] = fit_s + jump_s / E
        l, a = koopman_curve(fit, window[-1], T, every, ev)
        curves[f"koopman_{name}"] = l.T.tolist()
        curves[f"koopman_{name}_accuracy"] = a.T.tolist()
        keep(values, f"koopman {name}", l[-1], ref, every, T)
        values[f"koopman {name}:spectral_radius"] = fit.spectral_radius_
        rows.append(result_row("mnist", f"Koopman ({FIT_NAMES[name]})", setting, "equal steps", T, l[-1], a[-1],
                               ref, every, T, k_sec[name], 0, l_t2))
    for L in cfg.extrap_L:
        L = window.shape[0] if L == 0 else L
        p, sec = _timed(lambda: extrapolate(window, T, L))
        l, a = ev(p.float())
        keep(values, f"linear extrapolation, last {L}", l, ref, every, T)
        rows.append(result_row("mnist", "linear extrapolation", f"{setting}, line through last {L} snapshots",
                               "equal steps", T, l, a, ref, every, T, sec / E, 0, l_t2))
        if L == window.shape[0]:
            level, slope = line_fit_chunked(window, L)
            curves["linear"] = torch.stack([ev((level + s * slope).float())[0] for s in curves["steps"]]).T.tolist()
    budget = k_sec["stable"]
    per_step = run.step_seconds / E
    n_avail = (max(run.grid) - t2) // every * every
    n_budget = int(budget / per_step) // every * every
    nb = min(n_budget, n_avail)
    rows.append(result_row("mnist", "adadelta (continued)", setting, "equal steps", T, run.grid[t2 + T][0],
                           run.grid[t2 + T][1], ref, every, T, T * per_step, T, l_t2, teq_fixed=1.0))
    rows.append(result_row("mnist", "adadelta (continued)", setting, "equal wall-clock", nb, run.grid[t2 + nb][0],
                           run.grid[t2 + nb][1], ref, every, T, nb * per_step, nb, l_t2, capped=n_budget > n_avail,
                           teq_fixed=nb / T))
    traces = {}
    start = theta_t2.clone()
    for name, lr in bar(cfg.mnist_baselines, desc="mnist baselines"):
        traces[f"{name} (fresh, lr {lr:g})"] = continue_training(
            start, minibatch_loss(net, images, 64, cfg.seed + 7, networks=networks), T, name, lr=lr, every=every,
            eval_fn=ev)
    lb_every = max(1, cfg.lbfgs_steps // 10)
    traces[f"L-BFGS (per network, batch {cfg.lbfgs_batch}, strong Wolfe)"] = continue_lbfgs(
        start, minibatch_loss(net, images, cfg.lbfgs_batch, cfg.seed + 11, shared=True), cfg.lbfgs_steps,
        every=lb_every, eval_fn=ev)
    rows += optimizer_rows("mnist", setting, traces, E, budget, ref, every, T, l_t2)
    values.update({f"{k}:test_loss": tr.losses[-1][0] for k, tr in traces.items()})
    curves["baselines"] = {k: {"steps": v.steps, "seconds_per_network": [s / E for s in v.seconds],
                               "loss_median": [finite_median(x[0]) for x in v.losses]} for k, v in traces.items()}
    curves["koopman_seconds_per_network"] = k_sec
    curves["optimizer_step_seconds_per_network"] = per_step
    return rows, curves, (fits, fit_s), values
