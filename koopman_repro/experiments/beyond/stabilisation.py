"""Item 4: the replication's MNIST setting (Rao 2024: no StepLR, inputs normalised by 0.5/0.5, the
weights after every step of epochs ``cfg.replication_window_epochs`` recorded, by default the 4th
and 5th as its notebook's 0-indexed ``t1, t2 = 3, 5``, Koopman training from the end of the last)
and the stabilisations: eigenvalue clipping, the affine observable ``[w; 1]``, truncated SVD /
ridge, float64; test loss and accuracy after T = 1, 2, 5 epochs. The replication's fits are
float32, every other fit float64.
"""
from __future__ import annotations

import torch

from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.fit import FitSpec
from koopman_lib.observables import Identity, parse_observables
from koopman_lib.partition import make_partition
from koopman_lib.progress import bar
from koopman_lib.metrics import finite_median
from koopman_lib.seeds import network_seeds
from ...check_values import EarlyNorms, merge
from .common import Config, _frac, fit_variants, koopman_curve, load_images, per_network, study_networks, train_run

#: the replication's numbers after T = 1 and 2 epochs (node-wise operators; Rao 2024)
REPLICATION_REPORTED = {"adadelta_test_loss": 0.2, "koopman_test_loss_T1": 0.27, "koopman_test_loss_T2": 1.0}


def rep_variants(cfg: Config) -> list[tuple[str, str, FitSpec]]:
    """``(name, family, fit spec)``; families: ``f32``/``f64`` identity or ``f32-affine``/``f64-affine``.
    The first four change one thing at a time from the replication; the rest start from float64.
    ``"jax"`` is JAX's pinv cutoff on float32 data, ``10 max(m, k) eps32``, in either fit dtype."""
    return [
        ("replication: float32 fit, JAX pinv cutoff", "f32", FitSpec("jax")),
        ("replication + eigenvalue clipping to the unit disk", "f32", FitSpec("jax", clip=1.0)),
        ("replication + affine observable [w; 1]", "f32-affine", FitSpec("jax")),
        ("replication in float64 (same cutoff)", "f64", FitSpec("jax")),
        ("float64, default pinv cutoff (the paper's fit)", "f64", FitSpec("paper")),
        ("float64 + float32-resolution cutoff", "f64", FitSpec("float32")),
        (f"float64 + truncated SVD (rank {cfg.rep_rank})", "f64", FitSpec(cfg.rep_rank)),
        (f"float64 + ridge ({cfg.ridge_rel:g} s_max)", "f64", FitSpec("paper", ridge=cfg.ridge_rel)),
        ("float64 + eigenvalue clipping", "f64", FitSpec("paper", clip=1.0)),
        ("float64 + affine observable", "f64-affine", FitSpec("paper")),
        ("float64 + affine + float32 cutoff + clipping", "f64-affine", FitSpec("float32", clip=1.0)),
    ]


def run_stabilisation(cfg: Config) -> dict:
    """Item 4: rows, curves and spectral radii, and the networks' check values (``"check"``, keys
    ``stabilisation:...``); network ``i`` draws from ``network_seed(cfg.seed + 1, i)`` and
    ``shuffle_seed(cfg.seed + 1, i)``."""
    images = load_images("mnist", "replication", cfg.train_subset, cfg.test_subset)
    idx = study_networks(cfg, cfg.rep_inits)
    E = len(idx)
    net = EnsembleMLP(cfg.mlp_sizes, "relu", E, seeds=network_seeds(cfg.seed + 1, idx))
    spec = (cfg.rep_partition,) + ("node",) * (len(cfg.mlp_sizes) - 2)
    partition = make_partition(net.shapes, list(spec))
    S = -(-images.x_train.shape[0] // 64)
    w0, w1 = cfg.replication_window_epochs
    t1, t2 = (w0 - 1) * S + 1, w1 * S
    Ts = [T * S for T in cfg.rep_T_epochs]
    Tmax = max(Ts)
    every = cfg.rep_curve_every
    if any(T % every for T in Ts) or every % cfg.eval_every:
        raise ValueError("rep_curve_every must divide every T (in steps) and be a multiple of eval_every")
    early = EarlyNorms(idx, "stabilisation:")
    early(0, net.theta)
    run = train_run(net, images, w1 + max(cfg.rep_T_epochs), None, cfg.eval_every, t1, t2, cfg.seed + 1,
                    "mnist (replication settings)", members=idx, on_step=early)
    ev = run.evaluate
    window = run.window(t1, t2)
    opt = torch.stack([run.grid[t2 + j][0] for j in range(0, Tmax + 1, every)])
    opt_acc = torch.stack([run.grid[t2 + j][1] for j in range(0, Tmax + 1, every)])
    loss_t2 = run.grid[t2][0]
    variants = rep_variants(cfg)
    families = {"f32": (Identity(), torch.float32), "f64": (Identity(), torch.float64),
                "f32-affine": (parse_observables("affine"), torch.float32),
                "f64-affine": (parse_observables("affine"), torch.float64)}
    rows, curves, radii = [], {"steps": list(range(0, Tmax + 1, every)), "optimizer": opt.T.tolist(),
                               "optimizer_accuracy": opt_acc.T.tolist()}, {}
    values = {"test_loss@t2": loss_t2, **{f"optimizer:test_loss@T={T // S}": opt[T // every] for T in Ts}}
    for fam, (obs, dtype) in bar(families.items(), desc="stabilisation fits"):
        mine = {name: f for name, fm, f in variants if fm == fam}
        fits, fit_s = fit_variants(partition, window, mine, observables=obs, dtype=dtype)
        for name, fit in fits.items():
            l, a = koopman_curve(fit, window[-1], Tmax, every, ev)
            curves[name] = {"loss": l.T.tolist(), "accuracy": a.T.tolist()}
            rad = torch.cat([r.reshape(E, -1) for r in fit.spectral_radii_], dim=1)
            radii[name] = {"max": rad.amax(1).tolist(), "n_above_1.001": (rad > 1.001).sum(1).tolist(),
                           "quantiles_0.5_0.9_0.99": torch.quantile(rad.double(), torch.tensor(
                               [0.5, 0.9, 0.99], dtype=torch.float64), dim=1).T.tolist()}
            values[f"{name}:spectral_radius"] = rad.amax(1)
            values.update({f"{name}:test_loss@T={T // S}": l[T // every] for T in Ts})
            for T in Ts:
                j = T // every
                lk, ak, lo_, ao = l[j], a[j], opt[j], opt_acc[j]
                diverged = ~torch.isfinite(lk) | (lk > 1.5 * loss_t2)
                rows.append({"method": name, "setting": f"{partition.describe()}, window epochs {w0}-{w1}, "
                             f"{'float32' if dtype == torch.float32 else 'float64'} fit",
                             "T_epochs": T // S, "test_loss_koopman_median": finite_median(lk),
                             "test_accuracy_koopman_median": finite_median(ak), "test_loss_optimizer_median": finite_median(lo_),
                             "test_accuracy_optimizer_median": finite_median(ao),
                             "accuracy_cost_median": finite_median((ao - ak).nan_to_num(nan=float("nan"))),
                             "loss_ratio_median": finite_median(lk / lo_), "diverged_fraction": _frac(diverged.numpy()),
                             "max_spectral_radius_median": finite_median(rad.amax(1)), "fit_seconds_per_network": fit_s})
        del fits
    return {"stabilisation": rows, "stabilisation_curves": curves, "stabilisation_radii": radii,
            "stabilisation_loss_t2_median": finite_median(loss_t2), "partition": partition.describe(), "steps_per_epoch": S,
            "replication_reported": REPLICATION_REPORTED,
            "check": merge(early.values(), per_network(idx, "stabilisation:", values))}
