"""Declared rows of the ``mnist`` results tables (one frozen dataclass per table).

Generated from the keys and value types of the committed results, then kept by hand:
a new field goes here, in the producer, and (for older files) in koopman_repro.migrations.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import Row, register


@register("mnist", "table")
@dataclass(frozen=True)
class MnistTableRow(Row):
    """A row of ``mnist.json`` ``table``."""
    variant: str
    fit: str
    cutoff: str
    n_inits: int
    T_epochs: int
    success_rate: float
    teq_over_t_median: float
    speedup_paper_style_median_all: float
    speedup_fast_loop_median_all: float
    koopman_seconds: float
    censored_fraction: float
    optimizer_loss_T_median: float
    test_loss_t2_median: float
    optimizer_acc_T_median: float
    max_spectral_radius_median: float
    guard_stops: int
    speedup_paper_style_median: float | None = None
    speedup_fast_loop_median: float | None = None
    koopman_loss_T_median: float | None = None
    koopman_acc_T_median: float | None = None


@register("mnist", "members")
@dataclass(frozen=True)
class MnistMembersRow(Row):
    """A row of ``mnist.json`` ``members``."""
    init: int
    test_loss_t2: float
    optimizer_loss_T1: float
    optimizer_loss_T2: float
    optimizer_loss_T5: float
    optimizer_acc_T1: float
    optimizer_acc_T2: float
    optimizer_acc_T5: float
    fits: dict


@register("mnist", "replication")
@dataclass(frozen=True)
class MnistReplicationRow(Row):
    """A row of ``mnist.json`` ``replication``."""
    setting: str
    fit: str
    partition: str
    dtype: str
    cutoff: str
    window_epochs: str
    normalize: str
    steplr: bool
    T_epochs: int
    n_members: int
    test_loss_t2: float
    final_test_loss_optimizer: float
    final_test_acc_optimizer: float
    max_spectral_radius: float
    final_test_loss_koopman: float | None = None
    final_test_acc_koopman: float | None = None
    clip: float | None = None
    koopman_loss_q25: float | None = None
    koopman_loss_q75: float | None = None
    optimizer_loss_q25: float | None = None
    optimizer_loss_q75: float | None = None
    koopman_loss_growth_median: float | None = None
    koopman_loss_growth_q25: float | None = None
    koopman_loss_growth_q75: float | None = None
    networks_koopman_above_optimizer_median: int | None = None


@register("mnist", "ablation")
@dataclass(frozen=True)
class MnistAblationRow(Row):
    """A row of ``mnist.json`` ``ablation``."""
    direction: str
    factor: str
    setting: str
    fit: str
    normalize: str
    steplr: bool
    window_epochs: str
    partition: str
    dtype: str
    cutoff: str
    rtol_layer1: float
    n_members: int
    max_spectral_radius: float
    n_eigs_outside_unit_circle: float
    test_loss_t2: float
    optimizer_loss_T1: float
    optimizer_acc_T1: float
    optimizer_loss_T2: float
    optimizer_acc_T2: float
    clip: object = None
    koopman_loss_T1: float | None = None
    koopman_acc_T1: float | None = None
    koopman_loss_T2: float | None = None
    koopman_acc_T2: float | None = None
    loss_growth_T2: float | None = None
    koopman_over_optimizer_T2: float | None = None


@register("mnist", "cutoff_sweep")
@dataclass(frozen=True)
class MnistCutoffSweepRow(Row):
    """A row of ``mnist.json`` ``cutoff_sweep``."""
    cutoff: float | str
    stabilised: bool
    T_epochs: int
    n_inits: int
    success_rate: float
    teq_over_t_median: float
    rtol_layer1: float
    mean_rank_layer1_blocks: float
    max_spectral_radius: float
    optimizer_loss_median: float
    guard_stops: int
    koopman_loss_median: float | None = None


@register("mnist", "settings")
@dataclass(frozen=True)
class MnistSettingsRow(Row):
    """A row of ``mnist.json`` ``settings``."""
    setting: str
    paper: str
    replication: str
    ours: str


@register("mnist", "singular_values_init0")
@dataclass(frozen=True)
class MnistSingularValuesInit0Row(Row):
    """A row of ``mnist.json`` ``singular_values_init0``."""
    block_size: int
    n_blocks: int
    k: int
    relative_singular_values: list
    cutoff_float32: float
    cutoff_float64: float
