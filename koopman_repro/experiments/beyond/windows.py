"""Items 2 and 3: the window heatmap (``T_eq/T`` and the weight prediction error over window
start ``t1`` and length ``t2 - t1``) and windows chosen from the window alone (spectral and
held-out criteria, :mod:`koopman_lib.window`) against the heatmap, on the NN DE solver and on
MNIST (from the recorded runs of :mod:`.paper_runs`).
"""
from __future__ import annotations

import numpy as np
import torch

from koopman_lib.estimator import Koopman
from koopman_lib.progress import bar
from koopman_lib.window import Window, choose, rank_agreement, score_window
from koopman_lib.metrics import finite_median
from .common import (FIT_NAMES, FITS, Config, DeRun, Run, _frac, de_schedule, fit_variants, mnist_schedule,
                     rel_error, teq_over_t)


def mnist_windows(cfg: Config, S: int) -> list[Window]:
    """Heatmap windows (steps), each ending on the evaluation grid and leaving T epochs after it."""
    T = cfg.T_epochs * S
    out = []
    for start in cfg.heat_starts:
        for length in cfg.heat_lengths:
            w = Window((start - 1) * S + 1, (start - 1) * S + round(length * S))
            if w.t2 % cfg.eval_every:
                raise ValueError(f"window {w} does not end on the evaluation grid (eval_every={cfg.eval_every}); "
                                 "choose heat_lengths whose steps are multiples of eval_every")
            if w.t2 + T <= cfg.mnist_epochs * S:
                out.append(w)
    return out


def window_values(scores: dict) -> dict:
    """Per-network check values of the heatmap and the choice from one fit's window scores
    (``{"windows": [(t1, length)], "teq_over_t": (n_windows, E), criterion: (n_windows, E)}``):
    each window's ``T_eq/T`` and score by each criterion."""
    return {f"window {t1}+{length}:{key}": scores[key][w] for w, (t1, length) in enumerate(scores["windows"])
            for key in ("teq_over_t", "spectral", "one_step", "multi_step")}


def choice_rows(experiment: str, windows: list[Window], teqs: torch.Tensor, crit: dict, paper_idx, unit: str,
                fit: str = "pinv") -> list[dict]:
    """Item 3: per criterion, the windows it picks (per member) and their ``T_eq/T``, against
    the best fixed window, the per-member oracle and the paper's window. ``teqs`` ``(n_windows, E)``."""
    rows = []
    # the window whose median over networks is best (statistics.median: the mean of the two
    # middle values for an even count, as every median of this chapter; torch.median is the lower)
    best_fixed = int(np.argmax([m if m is not None else -1.0 for m in (finite_median(row) for row in teqs)]))
    oracle = teqs.nan_to_num(nan=-1).amax(dim=0)
    base = {"experiment": experiment, "fit": fit}
    for c, scores in crit.items():
        s = torch.tensor(scores, dtype=torch.float64)     # (n_windows, E)
        pick = choose(s)                                  # (E,)
        got = teqs[pick, torch.arange(teqs.shape[1])]
        rows.append({**base, "method": f"criterion: {c.replace('_', '-')}", "setting": "chosen per network",
                     "windows_chosen": "; ".join(f"{windows[i].t1}+{windows[i].length}" for i in pick.tolist()),
                     "teq_over_t_median": finite_median(got), "rank_correlation_with_teq": rank_agreement(s, teqs),
                     "unit": unit})
    rows.append({**base, "method": "best fixed window (hindsight)", "setting": "same window for every network",
                 "windows_chosen": f"{windows[best_fixed].t1}+{windows[best_fixed].length}",
                 "teq_over_t_median": finite_median(teqs[best_fixed]), "rank_correlation_with_teq": None, "unit": unit})
    rows.append({**base, "method": "oracle (best window per network, hindsight)", "setting": "chosen per network",
                 "windows_chosen": None, "teq_over_t_median": finite_median(oracle), "rank_correlation_with_teq": None,
                 "unit": unit})
    if paper_idx is not None:
        rows.append({**base, "method": "the paper's window", "setting": "same window for every network",
                     "windows_chosen": f"{windows[paper_idx].t1}+{windows[paper_idx].length}",
                     "teq_over_t_median": finite_median(teqs[paper_idx]), "rank_correlation_with_teq": None, "unit": unit})
    return rows


def de_window_study(cfg: Config, d: DeRun, windows: list[Window]) -> tuple[list[dict], list[dict], dict]:
    """Items 2 and 3 on the NN DE solver: ``(heatmap rows, choice rows, window scores)``."""
    partition, losses, loss_fn, snap = d.partition, d.losses, d.loss_fn, d.snap
    t1, t2, T, _ = de_schedule(cfg)
    heat, crit = [], {c: [] for c in ("spectral", "one_step", "multi_step")}
    teqs = []
    for w in bar(windows, desc="de-solver windows"):
        win = d.window(w.t1, w.t2)
        ktw = Koopman(partition, cutoff="paper").fit(win)
        p = ktw.predict(snap(w.t2), T)
        lp = loss_fn(p)
        r = teq_over_t(lp, losses[w.t2:], 1, T)
        err = rel_error(p, snap(w.t2 + T), snap(w.t2))
        sc = score_window(win, partition, T, max(2, int(cfg.holdout_fraction * w.length)), fitted=ktw)
        heat.append({"experiment": "de-solver", "method": "Koopman (pinv)", "setting": f"T = {T} steps",
                     "t1": w.t1, "length": w.length, "t2": w.t2, "teq_over_t_median": finite_median(r),
                     "loss_median": finite_median(lp), "loss_at_t2_median": finite_median(losses[w.t2]),
                     "success_rate": _frac(np.array(r) > 0), "weight_error_median": finite_median(err),
                     "max_spectral_radius_median": finite_median(sc["max_radius"])})
        teqs.append(r)
        for c in crit:
            crit[c].append(sc[c].tolist())
    paper_idx = next((i for i, w in enumerate(windows) if (w.t1, w.t2) == (t1, t2)), None)
    choice = choice_rows("de-solver", windows, torch.tensor(teqs), crit, paper_idx, "steps")
    scores = {"windows": [(w.t1, w.length) for w in windows], "teq_over_t": teqs, **crit}
    return heat, choice, scores


def mnist_window_study(cfg: Config, run: Run, partition, windows: list[Window]) -> tuple[list[dict], list[dict], dict]:
    """Items 2 and 3 on MNIST, with both fits: ``(heatmap rows, choice rows, window scores)``."""
    ev, every = run.evaluate, cfg.eval_every
    t1, t2, T, _ = mnist_schedule(cfg, run.S)
    heat, crit, teqs = [], {n: {c: [] for c in ("spectral", "one_step", "multi_step")} for n in FITS}, \
        {n: [] for n in FITS}
    for w in bar(windows, desc="mnist windows"):
        win = run.window(w.t1, w.t2)
        h = max(2, int(cfg.holdout_fraction * w.length))
        wf, _ = fit_variants(partition, win, FITS)
        hf, _ = fit_variants(partition, win[:-h], FITS)
        for name, fit in wf.items():
            p = fit.predict(win[-1], T)
            l, a = ev(p.float())
            r = teq_over_t(l, run.after(w.t2), every, T)
            err = rel_error(p, run.snap(w.t2 + T), run.snap(w.t2))
            sc = score_window(win, partition, T, h, fit=lambda _x, held=hf[name]: held, fitted=fit)
            heat.append({"experiment": "mnist", "method": f"Koopman ({FIT_NAMES[name]})", "fit": name,
                         "setting": f"T = {cfg.T_epochs} epochs", "t1": w.t1, "length": w.length, "t2": w.t2,
                         "teq_over_t_median": finite_median(r), "success_rate": _frac(np.array(r) > 0),
                         "weight_error_median": finite_median(err), "loss_median": finite_median(l),
                         "loss_at_t2_median": finite_median(run.grid[w.t2][0]),
                         "accuracy_median": finite_median(a), "max_spectral_radius_median": finite_median(sc["max_radius"])})
            teqs[name].append(r)
            for c in crit[name]:
                crit[name][c].append(sc[c].tolist())
    paper_idx = next((i for i, w in enumerate(windows) if (w.t1, w.t2) == (t1, t2)), None)
    choice = sum((choice_rows("mnist", windows, torch.tensor(teqs[n]), crit[n], paper_idx, "steps", n)
                  for n in FITS), [])
    scores = {"windows": [(w.t1, w.length) for w in windows],
              **{n: {"teq_over_t": teqs[n], **crit[n]} for n in FITS}}
    return heat, choice, scores
