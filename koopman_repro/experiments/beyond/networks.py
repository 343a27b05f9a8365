"""Item 7: other networks and data: a wider MLP, a small CNN (one block per output channel) and
Fashion-MNIST, each trained and fitted like MNIST at the paper's settings.
"""
from __future__ import annotations

import numpy as np

from koopman_lib.baselines import linear_extrapolation
from koopman_lib.ensembles import EnsembleCNN, EnsembleMLP
from koopman_lib.partition import make_partition
from koopman_lib.metrics import finite_median
from .common import (FIT_NAMES, FITS, Config, Images, _frac, fit_variants, load_images, paper_partition,
                     rel_error, teq_over_t, train_run)


def _divisor_near(S: int, target: int) -> int:
    divs = [d for d in range(1, S + 1) if S % d == 0]
    return min(divs, key=lambda d: (abs(d - target), d))


def study_network(cfg: Config, label: str, dataset: str, net, images: Images, spec) -> list[dict]:
    E = net.theta.shape[0]
    S = -(-images.x_train.shape[0] // 64)
    every = _divisor_near(S, max(1, S // 7))
    w0, w1 = cfg.other_window_epochs
    t1, t2 = (w0 - 1) * S + 1, w1 * S
    T = cfg.other_T_epochs * S
    partition = make_partition(net.shapes, spec)
    run = train_run(net, images, w1 + cfg.other_T_epochs, 0.7, every, t1, t2, cfg.seed + 3, f"{label}",
                    keep=(t2 + T,))
    window = run.window(t1, t2)
    ref = run.after(t2)
    opt_l, opt_a = run.grid[t2 + T]
    setting = f"window epochs {w0}-{w1}, T = {cfg.other_T_epochs} epochs; {partition.describe()}"
    base = {"network": label, "dataset": dataset, "n_params": net.theta.shape[1], "n_networks": E,
            "setting": setting, "T_epochs": cfg.other_T_epochs, "optimizer_loss_median": finite_median(opt_l),
            "optimizer_accuracy_median": finite_median(opt_a)}
    rows = []
    fits, fit_s = fit_variants(partition, window, FITS)
    for name, fit in fits.items():
        p = fit.predict(window[-1], T)
        l, a = run.evaluate(p.to(net.theta.dtype))
        r = teq_over_t(l, ref, every, T)
        rows.append({**base, "method": f"Koopman ({FIT_NAMES[name]})", "loss_median": finite_median(l),
                     "accuracy_median": finite_median(a), "teq_over_t_median": finite_median(r),
                     "success_rate": _frac(np.array(r) > 0),
                     "max_spectral_radius_median": finite_median(fit.spectral_radius_),
                     "weight_error_median": finite_median(rel_error(p, run.snap(t2 + T), run.snap(t2))),
                     "fit_seconds_per_network": fit_s})
    del fits
    p = linear_extrapolation(window, T)
    l, a = run.evaluate(p.to(net.theta.dtype))
    r = teq_over_t(l, ref, every, T)
    rows.append({**base, "method": "linear extrapolation (whole window)", "loss_median": finite_median(l),
                 "accuracy_median": finite_median(a), "teq_over_t_median": finite_median(r), "success_rate": _frac(np.array(r) > 0),
                 "max_spectral_radius_median": None,
                 "weight_error_median": finite_median(rel_error(p, run.snap(t2 + T), run.snap(t2))),
                 "fit_seconds_per_network": None})
    rows.append({**base, "method": "adadelta (continued)", "loss_median": finite_median(opt_l),
                 "accuracy_median": finite_median(opt_a), "teq_over_t_median": 1.0, "success_rate": 1.0,
                 "max_spectral_radius_median": None, "weight_error_median": 0.0,
                 "fit_seconds_per_network": None})
    del run
    return rows


def run_networks(cfg: Config) -> dict:
    rows = []
    mnist = load_images("mnist", "paper", cfg.train_subset, cfg.test_subset)
    wide = EnsembleMLP(cfg.wide_sizes, "relu", cfg.wide_inits, seed=cfg.seed + 4)
    spec = [f"quasi_node:{cfg.layer1_q}"] + ["node"] * (len(cfg.wide_sizes) - 2)
    rows += study_network(cfg, "wider MLP " + ":".join(map(str, cfg.wide_sizes)), "MNIST", wide, mnist, spec)
    cnn_images = load_images("mnist", "paper", cfg.cnn_train_subset or cfg.train_subset, cfg.test_subset)
    cnn = EnsembleCNN(tuple(cfg.cnn_channels), n_members=cfg.cnn_inits, seed=cfg.seed + 5)
    rows += study_network(cfg, f"CNN conv{cfg.cnn_channels[0]}-conv{cfg.cnn_channels[1]}-fc", "MNIST"
                          + (f" (first {cfg.cnn_train_subset} training images)" if cfg.cnn_train_subset else ""),
                          cnn, cnn_images, "node")
    fashion = load_images("fashion-mnist", "dataset", cfg.train_subset, cfg.test_subset)
    small = EnsembleMLP(cfg.mlp_sizes, "relu", cfg.fashion_inits, seed=cfg.seed + 6)
    rows += study_network(cfg, "paper MLP " + ":".join(map(str, cfg.mlp_sizes)),
                          f"Fashion-MNIST (normalised {fashion.normalize})", small, fashion, paper_partition(cfg))
    return {"networks": rows}
