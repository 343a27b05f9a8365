"""Declared rows of the ``bench`` results tables (one frozen dataclass per table).

Generated from the keys and value types of the committed results, then kept by hand:
a new field goes here, in the producer, and (for older files) in koopman_repro.migrations.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import Row, register


@register("bench", "step_table")
@dataclass(frozen=True)
class BenchStepTableRow(Row):
    """A row of ``bench.json`` ``step_table``."""
    problem: str
    operation: str
    T: int
    seconds: float
    optimizer_seconds_same_T: float
    speedup_vs_optimizer: float


@register("bench", "fit_table")
@dataclass(frozen=True)
class BenchFitTableRow(Row):
    """A row of ``bench.json`` ``fit_table``."""
    data: str
    method: str
    repeats: int
    seconds: float | None = None
    speedup_vs_pinv_loop: float | None = None
    max_rel_diff_vs_pinv: float | None = None
    median_rel_diff_vs_pinv: float | None = None
    prediction_rel_diff_vs_pinv: float | None = None
    max_rel_residual: float | None = None
    test_loss_after_jump: float | None = None
    failed: str | None = None
    plus_accumulation_seconds: float | None = None


@register("bench", "recording_table")
@dataclass(frozen=True)
class BenchRecordingTableRow(Row):
    """A row of ``bench.json`` ``recording_table``."""
    mode: str
    seconds: float
    seconds_per_snapshot: float
    overhead_window: float
    overhead_to_t2: float
    memory_MB: float


@register("bench", "notebook_table")
@dataclass(frozen=True)
class BenchNotebookTableRow(Row):
    """A row of ``bench.json`` ``notebook_table``."""
    notebook: str
    ci_seconds: float | None  # None: timed at profile paper only
    paper_seconds: float | None = None


@register("bench", "end_to_end_table")
@dataclass(frozen=True)
class BenchEndToEndTableRow(Row):
    """A row of ``bench.json`` ``end_to_end_table``."""
    seed: int
    loss_t2: float
    loss_koopman: float
    t_eq_epochs: float
    t_eq_censored: bool
    t_eq_over_T: float
    train_to_t2_s: float
    recording_streaming_s: float
    fit_s: float
    jump_s: float
    eval_s: float
    optimizer_after_t2_s: float
    koopman_after_t2_s: float
    without_koopman_s: float
    with_koopman_s: float
    speedup_end_to_end: float
    speedup_after_t2: float
    paper_style_after_t2_s: float
    speedup_after_t2_paper_style: float
    speedup_jump_only_at_teq: float
    speedup_fit_plus_jump: float
    speedup_fit_plus_jump_paper_style: float


@register("bench", "complexity_table")
@dataclass(frozen=True)
class BenchComplexityTableRow(Row):
    """A row of ``bench.json`` ``complexity_table``."""
    network: str
    partition: str
    blocks: str
    n_blocks: int
    max_m: int
    operator_entries: int
    operator_MB: float
    s7_construction: str
    s7_per_step: str
    construction_gflop: float
    s7_construction_gflop: float
    step_mflop: float
    jump_gflop: float
    backprop_step_mflop: float
    fit_s: float | None = None
    fit_method: str | None = None
    step_s: float | None = None
    jump_s: float | None = None
    backprop_step_s: float | None = None


@register("bench", "scaling_construction")
@dataclass(frozen=True)
class BenchScalingConstructionRow(Row):
    """A row of ``bench.json`` ``scaling_construction``."""
    axis: str
    P: int
    m: int
    k: int
    method: str
    seconds_per_block: float


@register("bench", "scaling_evolution")
@dataclass(frozen=True)
class BenchScalingEvolutionRow(Row):
    """A row of ``bench.json`` ``scaling_evolution``."""
    axis: str
    m: int
    T: int
    method: str
    seconds_per_block: float


@register("bench", "exponent_table")
@dataclass(frozen=True)
class BenchExponentTableRow(Row):
    """A row of ``bench.json`` ``exponent_table``."""
    kind: str
    axis: str
    method: str
    fitted: float
    fitted_all: float
    predicted: int
    range: str


@register("bench", "mnist_runs")
@dataclass(frozen=True)
class BenchMnistRunsRow(Row):
    """A row of ``bench.json`` ``mnist_runs``."""
    seed: int
    steps_per_epoch: int
    t1: int
    t2: int
    k: int
    T: int
    Ts: list
    epochs: list
    epochs_after: list
    test_losses_after_t2: list
    loss_t2: float
    loss_koopman: float
    loss_koopman_by_T: dict
    t_eq_epochs: float
    t_eq_censored: bool
    t_eq_over_T: float
    optimizer_seconds_to_koopman_loss_after_t2: float
    optimizer_step_seconds: float
    train_seconds_to_t2: float
    train_seconds_window: float
    record_seconds: dict
    streaming_fit_seconds: float
    jump_seconds_first: float
    eval_seconds: float
    koopman_times: dict
    step_timing_steps: int
    partition: str
    n_params: int
    streaming_method: str
    pipeline: dict
    record_bytes: dict
    #: the strided fit's own training run recorded at the rule's stride (koopman_repro.bench.mnist.strided_run)
    strided: dict | None = None
    #: written by the runs before the bench moved into a package (the committed paper run); no longer measured
    epoch_seconds_fast_loop: float | None = None


@register("bench", "target_table")
@dataclass(frozen=True)
class BenchTargetTableRow(Row):
    """A row of ``bench.json`` ``target_table``."""
    key: str
    target: str
    threshold: str
    measured: float | None  # None: not measured by this run
    met: bool | None  # None: not measured
    off_by_factor: float | None = None
    #: the three speedup targets of the Koopman phase (read from the strided fit's rows): the default
    #: fit's value beside it (a reading, not a target), and why it is missed or not measured
    default_fit_reading: float | None = None
    reason: str | None = None


@register("bench", "end_to_end")
@dataclass(frozen=True)
class BenchEndToEndRow(Row):
    """A row of ``bench.json`` ``end_to_end``."""
    problem: str
    T: int
    fit: str
    seed: int
    optimizer: str
    loss_t2: float
    loss_koopman: float
    loss_optimizer_at_T: float
    teq_steps: float
    teq_over_t: float
    censored: bool
    train_to_t2_s: float
    recording_extra_s: float
    fit_s: float
    jump_s: float
    eval_s: float
    koopman_phase_s: float
    optimizer_same_teq_s: float
    speedup_after_t2: float
    speedup_end_to_end: float
    speedup_after_t2_paper_style: float
    T_epochs: int | None = None
    train_dtype: str | None = None
    stride: int = 1                 # the recording kept every stride-th step (the strided fit's rule)
    horizon: int | None = None      # optimizer steps evolved: floor_horizon(T, stride) (None: T, older files)


@register("bench", "end_to_end_summary")
@dataclass(frozen=True)
class BenchEndToEndSummaryRow(Row):
    """A row of ``bench.json`` ``end_to_end_summary``."""
    problem: str
    optimizer: str
    T: int
    n_networks: int
    success_rate: float
    teq_over_t_median: float
    train_to_t2_s: float
    recording_extra_s: float
    fit_s: float
    jump_s: float
    eval_s: float
    koopman_phase_s: float
    optimizer_same_teq_s: float
    speedup_after_t2_median: float
    speedup_end_to_end_median: float
    speedup_after_t2_paper_style_median: float
    loss_t2: float
    loss_koopman: float
    loss_optimizer_at_T: float
    T_epochs: int | None = None
    fit: str = "default"            # a name of koopman_repro.bench.pipeline.PHASE_FITS (older files: the default fit)
    stride: int = 1
    horizon: int | None = None
