"""Benchmarks behind ``koopman bench --profile {ci,paper} --out DIR`` and the cost chapter.

Registered as the experiment ``"bench"`` (:mod:`koopman_repro.experiments`): ``reproduce("bench",
profile, out_dir)`` runs it and ``load_or_run("bench", profile, results_dir)`` is what the cost
chapter calls. Every fit goes through the core (:class:`koopman_lib.Koopman`,
:func:`koopman_lib.finite_section`); this package only times and compares them.

Every ratio here is measured inside one process with the compared methods interleaved
(round robin, alternating order) and reported as a median over repeats; the provenance
block records the CPU and the number of torch threads. Trajectories and fits are float64.

What is measured (``run(config) -> dict``, saved as ``DIR/bench.json`` plus one CSV per table):

* **MNIST sizes** (784:20:20:20:10, ReLU, Adadelta lr 1 with StepLR 0.7, batch 64; the
  paper's partition: quasi-node q = 157 in layer 1, node elsewhere, i.e. 100 blocks of
  157 and 50 of 21; window = epochs 3..5, k = 2814 snapshots). A real training run with the
  fast loop (:mod:`koopman_lib.training`) records the window *stored* and *streaming* at
  once, each recorder call timed on its own (recording overhead). On that recording:
  fits by the paper-style per-block ``pinv`` loop, batched ``pinv``, batched ``lstsq``,
  batched Cholesky and the streaming Cholesky solve, with their agreement and ``cond(F)``;
  the jump over T = 1 and 2 epochs and step-by-step evolution against the optimizer steps;
  and the end-to-end accounting (time to reach the Koopman test loss with and without
  Koopman training, every cost counted).
* **NN DE solver** (the network, loss, analytic gradient and partition of
  :mod:`koopman_repro.experiments.de_solver`, trained in its main dtype): optimizer step vs
  Koopman step vs jump over T = 2500, the recording's extra time per step, and the fast-loop
  and paper-style step times of every optimizer.
* **The whole Koopman phase with the library's default fit and its strided fit**
  (:mod:`koopman_repro.bench.pipeline`): the candidate routes to each fit's operators timed and
  checked on its own recording (the default fit's: every step of the runs above; the strided
  fit's: the same network trained again with a recorder that keeps every ``s``-th step, ``s`` by
  the stride rule), the fastest that agrees chosen, and ``end_to_end``: one row per network and
  fit of the MNIST and DE solver runs of ``end_to_end_profile`` (their ``T_eq``) with the extra
  recording, fit, jump and evaluation times against the fast loop's time to the same loss. The
  three speedup targets read the strided fit's rows.
* **S7 scaling**: per-block construction cost against block size ``m``, snapshot
  count ``k`` and blocks per batch ``P``, per-step and jump cost against ``m`` and ``T``, with fitted log-log
  exponents next to the predicted ones; the S7 complexity table per partition with
  operation counts and measured times.
* **Notebook execution times** read from ``_build/results/<profile>/notebook-timings.json``
  (written by ``koopman book``) when present.

The package, one module per thing measured: :mod:`.profiles` (``BenchConfig``, ``PROFILES``),
:mod:`.timing` (the clock, interleaved repeats), :mod:`.fits` (the fit routes and their
agreement), :mod:`.steps` (Koopman evolution as timed), :mod:`.mnist` and :mod:`.de_solver` (the
runs at the paper's sizes), :mod:`.pipeline` (the whole Koopman phase and the end-to-end rows),
:mod:`.scaling` and :mod:`.complexity` (supplement S7), :mod:`.notebook_times`, and
:mod:`.summary` (tables, headlines, :data:`TARGETS`). This module runs the stages in order.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from koopman_lib.metrics import finite_median
from koopman_lib.progress import bar

from koopman_lib.threads import torch_threads
from ..results import load_average
from .complexity import S7_FORMULAS, complexity_table, complexity_tables, layer_shapes
from .de_solver import de_run
from .fits import (FIT_METHODS, SLOW_FITS, accumulate, fit_benchmark, gram_matrices, random_walk, rel_diff,
                   stream_vs_stored, synthetic_groups)
from .mnist import mnist_data, mnist_run, paper_style_step_seconds
from .notebook_times import book_minutes, book_notebooks, notebook_seconds
from .pipeline import end_to_end, experiment_results
from .profiles import PROFILES, BenchConfig, Config
from .scaling import PREDICTED, SCALING_FITS, exponents, loglog_slope, scaling_construction, scaling_evolution
from .steps import block_states, dense_operators, jump_assembled, koopman_steps, steps_assembled
from .summary import TARGETS, summarize, targets
from .timing import clock, interleaved, ratio, release_memory

NAME = "bench"

#: why the regeneration check (:mod:`koopman_repro.regeneration`) does not rerun this experiment
NOT_REGENERATED = ("benchmark timings: they hold on the machine and load that measured them and are "
                   "remeasured, not regenerated; the fits they time are the experiments' own, which the "
                   "check covers")



def run(cfg: BenchConfig, results_dir=None) -> dict:
    """All benchmarks of ``cfg``; plain data (see the module docstring). ``hardware`` (merged
    into the provenance by :func:`koopman_repro.experiments.reproduce`): the torch threads the
    timings used (restored after the run) and the load average at the end. ``results_dir``:
    where the experiment runs of ``cfg.end_to_end_profile`` are looked for first
    (:func:`koopman_repro.bench.pipeline.experiment_results`)."""
    threads = cfg.threads or torch.get_num_threads()
    with torch_threads(cfg.threads):
        out = _run(cfg, results_dir)
    out["hardware"] = {"torch_threads": threads, "load_average_at_end": load_average()}
    return out


class _Stages:
    """Wall time, CPU time and load average at the end of each stage of a run."""

    def __init__(self, total: int):
        self.bar = bar(None, total=total, desc="bench")
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.load: dict[str, list[float] | None] = {}
        self.clock0, self.cpu0 = time.perf_counter(), time.process_time()

    def done(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        # memory: what a stage leaves in reference cycles (fitted estimators, closures over the
        # recording) is freed before the next stage allocates, not whenever the collector next runs
        release_memory()
        self.seconds[name] = now - self.clock0
        self.cpu_seconds[name] = cpu - self.cpu0  # CPU seconds of this process (all threads): less sensitive to load
        self.load[name] = load_average()
        self.clock0, self.cpu0 = now, cpu
        self.bar.update(1)


def _run(cfg: BenchConfig, results_dir=None) -> dict:
    stages = _Stages(total=7)
    torch.manual_seed(cfg.seed)
    data = mnist_data(cfg)
    runs = []
    for i in range(cfg.n_inits):
        runs.append(mnist_run(cfg, cfg.seed + i, data, fit_bench=(i == 0)))
        release_memory()                # the run's recordings, held in reference cycles, before the next
    first = runs[0]
    mnist_snaps = first.pop("snapshots")  # (k, D) in the training dtype (float32): the complexity table's
    sizes = [(int(P), int(m)) for P, m in first.pop("group_sizes")]
    paper_style = paper_style_step_seconds(cfg, data[1])
    del data                            # memory: the images are not needed after the MNIST runs
    stages.done("mnist")
    groups = synthetic_groups(sizes, first["k"], cfg.seed)
    fit_syn = fit_benchmark(groups, accumulate(groups, cfg.stream_chunk), cfg.repeats, cfg.slow_repeats, first["T"],
                            methods=tuple(cfg.synthetic_methods))
    fit_syn["streaming_vs_stored_cholesky_max_rel_diff"] = stream_vs_stored(fit_syn.pop("operators"))
    del groups
    stages.done("synthetic_fit")
    de = de_run(cfg, cfg.seed)
    de_snaps = de.pop("snapshots")
    stages.done("de_solver")
    e2e = end_to_end(cfg, runs, de, paper_style, results_dir)
    stages.done("end_to_end")
    construction = scaling_construction(cfg)
    stages.done("scaling_construction")
    evolution = scaling_evolution(cfg)
    stages.done("scaling_evolution")
    step_s = finite_median([r["optimizer_step_seconds"] for r in runs])
    complexity = complexity_tables(cfg, first, mnist_snaps, de, de_snaps, step_s)
    stages.done("complexity_table")
    stages.bar.close()
    out = summarize(cfg, runs, fit_syn, de, construction, evolution, complexity)
    out.update(e2e)
    out["target_table"] = targets(out)
    out["stage_seconds"] = stages.seconds
    out["stage_cpu_seconds"] = stages.cpu_seconds
    out["stage_load_average"] = stages.load  # 1/5/15-min load when each stage ended (busy machine = noisy timings)
    return out


def main(profile: str, out_dir) -> int:
    """``koopman bench --profile P --out DIR``: write ``DIR/bench.json`` and print the headlines."""
    from ..experiments import reproduce
    out_dir = Path(out_dir)
    res = reproduce(NAME, profile, out_dir)
    print(f"wrote {out_dir / (NAME + '.json')} in {res['wall_seconds']:.1f} s "
          f"({res['provenance']['hardware']['cpu']}, {res['provenance']['hardware']['torch_threads']} threads)")
    for row in res["target_table"]:
        m = row["measured"]
        ms = "n/a" if m is None else f"{m:.4g}"
        print(f"  {row['key']}: {ms} (target {row['threshold']}; met: {row['met']})")
    return 0


__all__ = ["NAME", "BenchConfig", "Config", "PROFILES", "TARGETS", "run", "main", "summarize", "targets",
           "clock", "interleaved", "ratio", "rel_diff", "FIT_METHODS", "SLOW_FITS", "accumulate", "fit_benchmark",
           "gram_matrices", "random_walk", "synthetic_groups", "stream_vs_stored", "mnist_data", "mnist_run",
           "paper_style_step_seconds", "de_run", "end_to_end", "experiment_results", "PREDICTED", "SCALING_FITS",
           "exponents", "loglog_slope", "scaling_construction", "scaling_evolution", "S7_FORMULAS",
           "complexity_table", "complexity_tables", "layer_shapes", "block_states", "dense_operators", "jump_assembled",
           "koopman_steps", "steps_assembled", "book_minutes", "book_notebooks", "notebook_seconds"]
