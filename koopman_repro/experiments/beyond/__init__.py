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

A network is its own seed: network ``i`` of each study draws its initial weights and its data
order from that study's seeds (``cfg.seed`` .. ``cfg.seed + 7``) and ``i`` alone
(:func:`.common.study_networks`), and every study stores its networks' check values
(``results["check_values"]``, keys prefixed by study: ``de:``, ``mnist:``, ``stabilisation:``,
``cycles:``, ``wide:``, ``cnn:``, ``fashion:``), so that the regeneration check reruns network ``i``
of every study alone (``Config.networks``, :func:`n_networks`, :func:`regeneration_config`).

The experiment interface (``Config``, ``PROFILES``, ``run(config) -> dict``) and every name of the
former single module are importable from here.
"""
from __future__ import annotations

import dataclasses
import time

import torch

from ...check_values import EARLY, check_table, merge, with_networks
from koopman_lib.threads import torch_threads
from ...partial import Partial
from ..images import release_memory
from .baselines import de_baselines, minibatch_loss, mnist_baselines, optimizer_rows, result_row
from .common import (FIT_NAMES, FITS, PAPER_NORMALIZE, PROFILES, REPLICATION_NORMALIZE, Config, DeRun, Images, Run,
                     censored, de_schedule, fit_variants, koopman_curve, load_images, make_evaluator, mnist_schedule,
                     paper_partition, rel_error, study_networks, teq_over_t, train_run)
from .cycles import SegmentTrainer, run_cycles
from .networks import MemberwiseCNN, run_networks, study_network
from .observables import de_observables, mnist_observables
from .paper_runs import run_de, run_mnist
from .precision import DE_PAPER_FIT, DE_PRECISION_METHODS, de_precision_fits, de_precision_rows
from .stabilisation import REPLICATION_REPORTED, rep_variants, run_stabilisation
from .windows import choice_rows, de_window_study, mnist_window_study, mnist_windows

__all__ = [
    "Config", "PROFILES", "ITEMS", "run", "n_networks", "regeneration_config", "item_networks", "study_networks",
    "PAPER_NORMALIZE", "REPLICATION_NORMALIZE", "REPLICATION_REPORTED", "FITS", "FIT_NAMES",
    "DE_PAPER_FIT", "DE_PRECISION_METHODS", "de_precision_rows", "de_precision_fits",
    "Images", "load_images", "make_evaluator", "Run", "train_run", "DeRun", "de_schedule", "mnist_schedule",
    "teq_over_t", "censored", "rel_error", "koopman_curve", "paper_partition", "fit_variants",
    "result_row", "optimizer_rows", "minibatch_loss", "de_baselines", "mnist_baselines",
    "mnist_windows", "choice_rows", "de_window_study", "mnist_window_study",
    "de_observables", "mnist_observables", "rep_variants", "run_stabilisation",
    "SegmentTrainer", "run_cycles", "MemberwiseCNN", "study_network", "run_networks", "run_de", "run_mnist",
]


# ------------------------------------------------------------------------------------------
# the experiment
# ------------------------------------------------------------------------------------------
ITEMS = ("de", "mnist", "stabilisation", "cycles", "networks")


def item_networks(cfg: Config) -> dict[str, int]:
    """How many networks each item trains (item 7: its largest study)."""
    return {"de": cfg.de_inits, "mnist": cfg.mnist_inits, "stabilisation": cfg.rep_inits, "cycles": cfg.cyc_inits,
            "networks": max(cfg.wide_inits, cfg.cnn_inits, cfg.fashion_inits)}


def n_networks(cfg: Config) -> int:
    """The networks of a run made with ``cfg`` for the regeneration check: network ``i`` of a
    Beyond run is network ``i`` of every study (item) that has at least ``i + 1`` networks, each
    study seeded on its own (:func:`.common.study_networks`), so ``i`` runs up to the largest study."""
    sizes = item_networks(cfg)
    return max(sizes[item] for item in cfg.items)


def regeneration_config(cfg: Config, networks) -> Config:
    """``cfg`` for rerunning networks ``networks`` alone: every study that has them, each with
    only those networks. Every study stores per-network check values; the one part that cannot be
    split by network, the cycles of item 6 (one learning-rate schedule for the ensemble, moved on
    by a jump any network keeps), is not run when ``networks`` is set (its optimizer-alone run is)."""
    return with_networks(cfg, networks)


#: the studies a quick regeneration check reruns (:mod:`koopman_repro.regeneration`): the DE solver
#: study (about 45 CPU-seconds per network at profile paper) runs every analysis the studies share
#: (fits, windows, observables, baselines), the cycles study its optimizer-alone runs (10 s); the
#: MNIST, stabilisation and other-networks studies (7 minutes more) only in a full check
QUICK_ITEMS = ("de", "cycles")


def quick_config(cfg: Config) -> Config:
    """``cfg`` with only the studies of :data:`QUICK_ITEMS` (a quick regeneration check)."""
    return dataclasses.replace(cfg, items=tuple(i for i in cfg.items if i in QUICK_ITEMS))


def regenerated(cfg: Config, key: str) -> bool:
    """Whether a run with ``cfg`` makes the check value ``key`` (``[early:]study:...``): its study
    is among ``cfg.items`` (the other-networks study stores its keys as ``wide:``, ``cnn:``,
    ``fashion:``)."""
    study = key.removeprefix(EARLY).split(":", 1)[0]
    return {"wide": "networks", "cnn": "networks", "fashion": "networks"}.get(study, study) in cfg.items


def run(cfg: Config, results_dir=None) -> dict:
    """Every study of ``cfg.items`` (see the module docstring), with ``cfg.torch_threads`` intra-op
    threads. With ``results_dir`` (where the results go), each finished study is kept in
    ``results_dir/.partial/beyond/<item>.json`` (the other-networks study: each of its networks,
    ``networks-wide`` ..) until the run completes, and a rerun with the same config after an
    interruption reads them instead of recomputing (:mod:`koopman_repro.partial`)."""
    bad = [i for i in cfg.items if i not in ITEMS]
    if bad:
        raise ValueError(f"unknown items {bad}; choose from {ITEMS}")
    n = n_networks(cfg)
    if cfg.networks is not None and (not cfg.networks or not all(0 <= i < n for i in cfg.networks)):
        raise ValueError(f"networks must be indices in 0..{n - 1}, got {cfg.networks}")
    partial = Partial.beside(results_dir, cfg, "beyond")
    torch.manual_seed(cfg.seed)
    out: dict = {"baselines": [], "window_heatmap": [], "window_choice": [], "stabilisation": [],
                 "observables": [], "cycles": [], "networks": [], "item_seconds": {},
                 "item_cpu_seconds": {}}
    checks = []
    with torch_threads(cfg.torch_threads):
        for item in cfg.items:
            if study_networks(cfg, item_networks(cfg)[item]):
                checks.append(_run_item(cfg, item, out, partial))
    out["threads"] = cfg.torch_threads or torch.get_num_threads()
    out["check_values"] = check_table(merge(*checks), mark_absent=True)  # network i lacks the smaller studies
    partial.clear()
    return out


def _item_stage(cfg: Config, item: str, partial: Partial) -> dict:
    """One item's results (``"result"``, its check values under ``"check"``) with its wall and
    process CPU seconds; its recordings are freed and their heap handed back before it returns."""
    start, cpu = time.perf_counter(), time.process_time()
    if item == "networks":
        res = run_networks(cfg, partial)
    else:
        res = {"de": run_de, "mnist": run_mnist, "stabilisation": run_stabilisation, "cycles": run_cycles}[item](cfg)
    release_memory()   # the item's recordings are gone: hand their heap back before the next item
    return {"result": res, "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


def _run_item(cfg: Config, item: str, out: dict, partial: Partial) -> dict:
    """Run one item (or read it back from ``partial``), merge its rows into ``out`` (wall and
    process CPU seconds recorded) and return its networks' check values."""
    done = partial.stage(item, lambda: _item_stage(cfg, item, partial))
    res = done["result"]
    check = res.pop("check")
    if item in ("de", "mnist"):
        for k in ("baselines", "window_heatmap", "window_choice", "observables"):
            out[k] += res.pop(k)
        out[item] = res
    elif item == "stabilisation":
        out["stabilisation"] = res.pop("stabilisation")
        out["stabilisation_details"] = res
    elif item == "cycles":
        out["cycles"] = res["cycles"]
        out["cycle_curves"] = res["cycle_curves"]
    else:
        out["networks"] = res["networks"]
    out["item_seconds"][item] = done["seconds"]
    out["item_cpu_seconds"][item] = done["cpu_seconds"]
    return check
