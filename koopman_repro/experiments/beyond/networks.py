"""Item 7: other networks and data: a wider MLP, a small CNN (one block per output channel) and
Fashion-MNIST, each trained and fitted like MNIST at the paper's settings.
"""
from __future__ import annotations

import numpy as np
import torch

from koopman_lib.ensembles import EnsembleCNN, EnsembleMLP
from koopman_lib.partition import make_partition
from koopman_lib.metrics import finite_median
from koopman_lib.seeds import network_seeds
from ...check_values import EarlyNorms, merge
from ...partial import Partial
from ..images import release_memory
from .common import (FIT_NAMES, FITS, Config, Images, _frac, extrapolate, fit_variants, load_images,
                     paper_partition, per_network, rel_error, study_networks, teq_over_t, train_run)


def _divisor_near(S: int, target: int) -> int:
    divs = [d for d in range(1, S + 1) if S % d == 0]
    return min(divs, key=lambda d: (abs(d - target), d))


class MemberwiseCNN(EnsembleCNN):
    """:class:`EnsembleCNN` whose forward pass runs each member on its own (a one-member grouped
    convolution each): the ensemble's grouped convolution over ``E`` members rounds differently
    from one over a single member (about 1e-7 after two epochs), so that network ``i`` trained
    beside others would not be network ``i`` trained alone."""

    def forward(self, x: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
        theta = self.theta if theta is None else theta
        return torch.cat([super(MemberwiseCNN, self).forward(x if x.ndim == 2 else x[e:e + 1], theta[e:e + 1])
                          for e in range(theta.shape[0])])

    __call__ = forward


def study_network(cfg: Config, label: str, dataset: str, net, images: Images, spec,
                  networks: list[int], prefix: str = "") -> tuple[list[dict], dict]:
    """One network of item 7 (``net``: its members are networks ``networks``): rows, and the
    per-network check values (keys after ``prefix``: early weight norms, each method's test loss
    and ``T_eq/T``, the fits' spectral radii)."""
    E = net.theta.shape[0]
    S = -(-images.x_train.shape[0] // 64)
    every = _divisor_near(S, max(1, S // 7))
    w0, w1 = cfg.other_window_epochs
    t1, t2 = (w0 - 1) * S + 1, w1 * S
    T = cfg.other_T_epochs * S
    partition = make_partition(net.shapes, spec)
    early = EarlyNorms(networks, prefix)
    early(0, net.theta)
    run = train_run(net, images, w1 + cfg.other_T_epochs, 0.7, every, t1, t2, cfg.seed + 3, f"{label}",
                    keep=(t2 + T,), members=networks, on_step=early)
    window = run.window(t1, t2)
    ref = run.after(t2)
    opt_l, opt_a = run.grid[t2 + T]
    setting = f"window epochs {w0}-{w1}, T = {cfg.other_T_epochs} epochs; {partition.describe()}"
    base = {"network": label, "dataset": dataset, "n_params": net.theta.shape[1], "n_networks": E,
            "setting": setting, "T_epochs": cfg.other_T_epochs, "optimizer_loss_median": finite_median(opt_l),
            "optimizer_accuracy_median": finite_median(opt_a)}
    rows, values = [], {"optimizer:test_loss": opt_l}
    fits, fit_s = fit_variants(partition, window, FITS)
    for name, fit in fits.items():
        p = fit.predict(window[-1], T)
        l, a = run.evaluate(p.to(net.theta.dtype))
        r = teq_over_t(l, ref, every, T)
        values.update({f"koopman {name}:test_loss": l, f"koopman {name}:teq_over_t": r,
                       f"koopman {name}:spectral_radius": fit.spectral_radius_})
        rows.append({**base, "method": f"Koopman ({FIT_NAMES[name]})", "loss_median": finite_median(l),
                     "accuracy_median": finite_median(a), "teq_over_t_median": finite_median(r),
                     "success_rate": _frac(np.array(r) > 0),
                     "max_spectral_radius_median": finite_median(fit.spectral_radius_),
                     "weight_error_median": finite_median(rel_error(p, run.snap(t2 + T), run.snap(t2))),
                     "fit_seconds_per_network": fit_s})
    del fits
    p = extrapolate(window, T)
    l, a = run.evaluate(p.to(net.theta.dtype))
    r = teq_over_t(l, ref, every, T)
    values.update({"linear extrapolation:test_loss": l, "linear extrapolation:teq_over_t": r})
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
    return rows, merge(early.values(), per_network(networks, prefix, values))


def run_networks(cfg: Config, partial: Partial | None = None) -> dict:
    """Item 7: rows, and the check values of its three studies (``"check"``, keys ``wide:...``,
    ``cnn:...``, ``fashion:...``); with ``partial``, each study is a stage ``networks-<key>`` (kept
    for resuming an interrupted run). Network ``i`` of each draws its initial weights from
    ``network_seed(cfg.seed + 4, 5 or 6, i)`` and its data order from ``shuffle_seed(cfg.seed + 3, i)``;
    a study none of whose networks ``cfg.networks`` names is skipped."""
    rows, check = [], {}
    spec = [f"quasi_node:{cfg.layer1_q}"] + ["node"] * (len(cfg.wide_sizes) - 2)
    cnn_label = "MNIST" + (f" (first {cfg.cnn_train_subset} training images)" if cfg.cnn_train_subset else "")
    studies = [  # (key, networks, label, dataset, make(networks) -> net, images, partition spec)
        ("wide", cfg.wide_inits, "wider MLP " + ":".join(map(str, cfg.wide_sizes)), "MNIST",
         lambda idx: EnsembleMLP(cfg.wide_sizes, "relu", len(idx), seeds=network_seeds(cfg.seed + 4, idx)),
         lambda: load_images("mnist", "paper", cfg.train_subset, cfg.test_subset), spec),
        ("cnn", cfg.cnn_inits, f"CNN conv{cfg.cnn_channels[0]}-conv{cfg.cnn_channels[1]}-fc", cnn_label,
         lambda idx: MemberwiseCNN(tuple(cfg.cnn_channels), n_members=len(idx), seeds=network_seeds(cfg.seed + 5, idx)),
         lambda: load_images("mnist", "paper", cfg.cnn_train_subset or cfg.train_subset, cfg.test_subset), "node"),
        ("fashion", cfg.fashion_inits, "paper MLP " + ":".join(map(str, cfg.mlp_sizes)), None,
         lambda idx: EnsembleMLP(cfg.mlp_sizes, "relu", len(idx), seeds=network_seeds(cfg.seed + 6, idx)),
         lambda: load_images("fashion-mnist", "dataset", cfg.train_subset, cfg.test_subset), paper_partition(cfg)),
    ]
    for key, n, label, dataset, make, images, part in studies:
        idx = study_networks(cfg, n)
        if not idx:
            continue
        done = (partial or Partial(None, cfg)).stage(
            f"networks-{key}", lambda: _one_study(cfg, label, dataset, make, images, part, idx, key))
        rows += done["rows"]
        check = merge(check, done["check"])
    return {"networks": rows, "check": check}


def _one_study(cfg: Config, label: str, dataset: str | None, make, images, part, idx: list[int], key: str) -> dict:
    """One study of item 7 on its networks ``idx``: its images loaded, its network trained and
    fitted (:func:`study_network`), and their memory handed back before it returns."""
    imgs = images()
    dataset = dataset or f"Fashion-MNIST (normalised {imgs.normalize})"
    rows, check = study_network(cfg, label, dataset, make(idx), imgs, part, idx, f"{key}:")
    del imgs          # before the next study loads its images
    release_memory()
    return {"rows": rows, "check": check}
