"""Beyond the paper: the reviewers' questions, and Koopman training that does not diverge.

Seven studies (issue 6), one module each; each is one list of rows in the results (``method``,
``setting`` and spelled-out metric names), plus the curves the chapter plots:

1. ``baselines`` (:mod:`.baselines`, with :mod:`.precision`): Koopman training against linear
   extrapolation of every weight, continuing the optimizer, fresh Adam / SGD with momentum, and
   L-BFGS, at equal steps and at equal wall-clock, on the NN DE solver and on MNIST.
2. ``window_heatmap`` (:mod:`.windows`): ``T_eq/T`` and the weight prediction error over window
   start ``t1`` and length ``t2 - t1``.
3. ``window_choice`` (:mod:`.windows`): windows chosen from the window alone (spectral and
   held-out criteria, :mod:`koopman_lib.window`) against the heatmap.
4. ``stabilisation`` (:mod:`.stabilisation`): the replication's MNIST setting (Rao 2024) and the
   stabilisations: eigenvalue clipping, the affine observable ``[w; 1]``, truncated SVD / ridge,
   float64; test loss and accuracy after T = 1, 2, 5 epochs.
5. ``observables`` (:mod:`.observables`): time delays and a polynomial dictionary per block;
   accuracy vs cost.
6. ``cycles`` (:mod:`.cycles`): optimizer for a while, Koopman jump, repeat; wall-clock to a
   target test loss with every cost counted.
7. ``networks`` (:mod:`.networks`): a wider MLP, a small CNN (one block per output channel) and
   Fashion-MNIST.

Reuse: one NN DE solver run serves items 1, 2, 3, 5; one MNIST run at the paper's settings
serves items 1, 2, 3, 5 (both in :mod:`.paper_runs`); items 4, 6, 7 train their own networks.
What the studies share (``Config``, ``PROFILES``, helpers) is in :mod:`.common`; the image
data, the one train-and-record (``Run`` / ``train_run``) and the evaluator are those of
:mod:`koopman_repro.experiments.images`, shared with the MNIST experiment. Training runs in float32
for MNIST (as the PyTorch example), so snapshots are *stored* in float32 without loss and
cast to float64 for every fit (except the replication's float32 fits); the DE solver is
trained and fitted in float64 (item 1 adds two fits that test the role of precision, since
the DE solver chapter trains in float32). Timings are seconds per network of batched ensemble work,
measured in this process; they are only comparable within one results file.

The experiment interface (``Config``, ``PROFILES``, ``run(config) -> dict``) and every name of the
former single module are importable from here.
"""
from __future__ import annotations

import time

import torch

from ...config import torch_threads
from .baselines import de_baselines, minibatch_loss, mnist_baselines, optimizer_rows, result_row
from .common import (FIT_NAMES, FITS, PAPER_NORMALIZE, PROFILES, REPLICATION_NORMALIZE, Config, DeRun, Images, Run,
                     censored, de_schedule, fit_variants, koopman_curve, load_images, make_evaluator, mnist_schedule,
                     paper_partition, rel_error, teq_over_t, train_run)
from .cycles import SegmentTrainer, run_cycles
from .networks import run_networks, study_network
from .observables import de_observables, mnist_observables
from .paper_runs import run_de, run_mnist
from .precision import DE_PAPER_FIT, DE_PRECISION_METHODS, de_precision_fits, de_precision_rows
from .stabilisation import REPLICATION_REPORTED, rep_variants, run_stabilisation
from .windows import choice_rows, de_window_study, mnist_window_study, mnist_windows

__all__ = [
    "Config", "PROFILES", "ITEMS", "run",
    "PAPER_NORMALIZE", "REPLICATION_NORMALIZE", "REPLICATION_REPORTED", "FITS", "FIT_NAMES",
    "DE_PAPER_FIT", "DE_PRECISION_METHODS", "de_precision_rows", "de_precision_fits",
    "Images", "load_images", "make_evaluator", "Run", "train_run", "DeRun", "de_schedule", "mnist_schedule",
    "teq_over_t", "censored", "rel_error", "koopman_curve", "paper_partition", "fit_variants",
    "result_row", "optimizer_rows", "minibatch_loss", "de_baselines", "mnist_baselines",
    "mnist_windows", "choice_rows", "de_window_study", "mnist_window_study",
    "de_observables", "mnist_observables", "rep_variants", "run_stabilisation",
    "SegmentTrainer", "run_cycles", "study_network", "run_networks", "run_de", "run_mnist",
]


# ------------------------------------------------------------------------------------------
# the experiment
# ------------------------------------------------------------------------------------------
ITEMS = ("de", "mnist", "stabilisation", "cycles", "networks")


def run(cfg: Config) -> dict:
    bad = [i for i in cfg.items if i not in ITEMS]
    if bad:
        raise ValueError(f"unknown items {bad}; choose from {ITEMS}")
    torch.manual_seed(cfg.seed)
    out: dict = {"baselines": [], "window_heatmap": [], "window_choice": [], "stabilisation": [],
                 "observables": [], "cycles": [], "networks": [], "item_seconds": {},
                 "item_cpu_seconds": {}}
    with torch_threads(cfg.torch_threads):
        for item in cfg.items:
            _run_item(cfg, item, out)
    out["threads"] = cfg.torch_threads or torch.get_num_threads()
    return out


def _run_item(cfg: Config, item: str, out: dict) -> None:
    """Run one item and merge its rows into ``out`` (wall and process CPU seconds recorded)."""
    start, cpu = time.perf_counter(), time.process_time()
    if item == "de":
        res = run_de(cfg)
        for k in ("baselines", "window_heatmap", "window_choice", "observables"):
            out[k] += res.pop(k)
        out["de"] = res
    elif item == "mnist":
        res = run_mnist(cfg)
        for k in ("baselines", "window_heatmap", "window_choice", "observables"):
            out[k] += res.pop(k)
        out["mnist"] = res
    elif item == "stabilisation":
        res = run_stabilisation(cfg)
        out["stabilisation"] = res.pop("stabilisation")
        out["stabilisation_details"] = res
    elif item == "cycles":
        res = run_cycles(cfg)
        out["cycles"] = res["cycles"]
        out["cycle_curves"] = res["cycle_curves"]
    else:
        out["networks"] = run_networks(cfg)["networks"]
    out["item_seconds"][item] = time.perf_counter() - start
    out["item_cpu_seconds"][item] = time.process_time() - cpu
