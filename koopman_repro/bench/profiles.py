"""The sizes and repeats of the benchmarks: :class:`BenchConfig` and its profiles ``ci`` and ``paper``."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and repeats of the benchmarks. Timings are medians over ``repeats``."""

    repeats: int = 5                 # timed repeats of the fast measurements
    slow_repeats: int = 3            # repeats of the per-block pinv loops and batched pinv
    seed: int = 0
    # -- MNIST (paper section 5, S10) --
    mnist_sizes: tuple = (784, 20, 20, 20, 10)
    mnist_partition: tuple = ("quasi_node:157", "node", "node", "node")
    batch_size: int = 64
    lr: float = 1.0
    gamma: float = 0.7               # StepLR factor per epoch (PyTorch MNIST example)
    window_epochs: tuple = (3, 5)    # record from the start of epoch 3 to the end of epoch 5
    T_epochs: tuple = (1, 2)         # jump lengths in epochs; the last one is the paper's T
    epochs_after: int = 5            # baseline epochs after t2 (paper: 10 epochs in all)
    n_inits: int = 1                 # MNIST inits for the end-to-end accounting
    train_subset: int | None = None  # first N training images only (tests); None = all 60000
    test_subset: int | None = None   # first N test images only (tests); None = all 10000
    stream_chunk: int = 64           # snapshots per Gram update of the streaming recorder
    step_timing_steps: int | None = None  # Koopman steps timed one by one (None: all T; scaled to T)
    fit_extras: bool = True          # also time the naive wide-F pinv loop and batched pinv
    synthetic_methods: tuple = ("pinv_loop", "lstsq_batched", "cholesky_batched", "eigh_batched")
    complexity_repeats: int = 3
    # -- NN DE solver (paper section 4, S9): the network, loss and partition of experiments.de_solver --
    de_T: int = 2500
    de_warmup: int = 2000            # optimizer steps before the recorded window
    de_window: int = 1000            # snapshots used to fit the timed operators (paper: 10001)
    de_chunk: int = 250              # optimizer steps per timed chunk (and per step-time repeat)
    de_chunks_after: int = 4
    # -- S7 scaling study --
    scaling_blocks: int = 4          # blocks per batch in the construction scaling
    scaling_m: tuple = (16, 32, 64, 128, 256)
    scaling_k_fixed: int = 2048
    scaling_k: tuple = (256, 512, 1024, 2048, 4096, 8192)
    scaling_m_fixed: int = 64
    scaling_P: tuple = (1, 4, 16, 64)  # blocks per batch (m = scaling_m_fixed, k = scaling_k_fixed)
    evolve_blocks: int = 32          # blocks per batch in the per-step / jump scaling
    evolve_m: tuple = (8, 16, 32, 64, 128, 256)
    evolve_steps: int = 200          # steps timed for the per-step cost
    evolve_T: tuple = (10, 100, 1000, 10000, 100000)
    evolve_T_fixed: int = 1876
    evolve_m_fixed: int = 64
    complexity_max_m: int = 200      # partitions with larger blocks are counted, not timed
    threads: int | None = None       # torch intra-op threads for the run (None: torch's default; profiles use 1)
    # -- the whole Koopman phase, everything counted (koopman_repro.bench.pipeline) --
    end_to_end_profile: str | None = None  # the profile of the MNIST and DE runs whose per-network T_eq the
    #                                        end-to-end rows use (None: no rows)
    paper_style_steps: int = 188     # MNIST steps of the PyTorch example's loop timed per repeat (1/5 epoch)


Config = BenchConfig  # the name every experiment module exports

PROFILES = {
    "ci": BenchConfig(repeats=3, slow_repeats=1, epochs_after=3, n_inits=1, de_warmup=200,
                      step_timing_steps=376, fit_extras=False, complexity_repeats=1,
                      synthetic_methods=("pinv_loop", "cholesky_batched"),
                      de_window=10001, de_chunk=200, de_chunks_after=3, end_to_end_profile="ci",
                      scaling_m=(16, 32, 64, 128, 256), scaling_k=(256, 512, 1024, 2048, 4096),
                      evolve_m=(8, 16, 32, 64, 128), evolve_T=(10, 100, 1000, 10000),
                      complexity_max_m=160, threads=1),
    "paper": BenchConfig(repeats=5, slow_repeats=2, epochs_after=5, n_inits=3, de_warmup=2000, step_timing_steps=938,
                         de_window=10001, de_chunk=200, de_chunks_after=4, scaling_blocks=8, end_to_end_profile="paper",
                         paper_style_steps=469,
                         scaling_m=(16, 32, 64, 128, 256, 512), scaling_k=(256, 512, 1024, 2048, 4096, 8192, 16384),
                         evolve_m=(8, 16, 32, 64, 128, 256), evolve_T=(10, 100, 1000, 10000, 100000, 1000000),
                         complexity_max_m=800, threads=1),
}
# The strided fit's own recording (issue 24) adds one training run to t2 per MNIST init and one DE
# warmup + window run, plus its routes timed at stride s. Measured at ci (2 cores, load 3-4, 2026-12-06):
# about 14 s of a 142 s run (MNIST: 4.9 s training + 4 s of strided fits and jumps; DE: 4.6 s), peak 1.62 GB.
# Paper, from the committed paper run's step times (1.85 ms MNIST, 1.22 ms DE): 3 x (11 s training + 8 s of
# routes) + 15 s = about 75 s on its 733 s, about 13.5 min: within the 15 minutes, so the paper profile is kept.
# Both profiles time with one torch intra-op thread: on a shared 2-core machine an OpenMP team
# of 2 spins against other processes and makes batched LAPACK calls many times slower, which
# would make the ratios depend on the load rather than on the methods. ``threads=2`` (or None)
# overrides it on a dedicated machine.

