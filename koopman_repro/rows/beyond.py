"""Declared rows of the ``beyond`` results tables (one frozen dataclass per table).

Generated from the keys and value types of the committed results, then kept by hand:
a new field goes here, in the producer, and (for older files) in koopman_repro.migrations.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import Row, register


@register("beyond", "baselines")
@dataclass(frozen=True)
class BeyondBaselinesRow(Row):
    """A row of ``beyond.json`` ``baselines``."""
    experiment: str
    method: str
    setting: str
    comparison: str
    steps: int
    loss_at_t2_median: float
    teq_over_t_median: float
    success_rate: float
    censored_fraction: float
    seconds_per_network: float
    capped_at_steps_run: bool
    loss_median: float | None = None
    accuracy_median: float | None = None
    loss_evaluations: int | None = None


@register("beyond", "window_heatmap")
@dataclass(frozen=True)
class BeyondWindowHeatmapRow(Row):
    """A row of ``beyond.json`` ``window_heatmap``."""
    experiment: str
    method: str
    setting: str
    t1: int
    length: int
    t2: int
    teq_over_t_median: float
    loss_at_t2_median: float
    success_rate: float
    max_spectral_radius_median: float
    loss_median: float | None = None
    weight_error_median: float | None = None
    fit: str | None = None
    accuracy_median: float | None = None


@register("beyond", "window_choice")
@dataclass(frozen=True)
class BeyondWindowChoiceRow(Row):
    """A row of ``beyond.json`` ``window_choice``."""
    experiment: str
    fit: str
    method: str
    setting: str
    teq_over_t_median: float
    unit: str
    windows_chosen: str | None = None
    rank_correlation_with_teq: float | None = None


@register("beyond", "stabilisation")
@dataclass(frozen=True)
class BeyondStabilisationRow(Row):
    """A row of ``beyond.json`` ``stabilisation``."""
    method: str
    setting: str
    T_epochs: int
    test_loss_optimizer_median: float
    test_accuracy_optimizer_median: float
    diverged_fraction: float
    max_spectral_radius_median: float
    fit_seconds_per_network: float
    test_loss_koopman_median: float | None = None
    test_accuracy_koopman_median: float | None = None
    accuracy_cost_median: float | None = None
    loss_ratio_median: float | None = None


@register("beyond", "observables")
@dataclass(frozen=True)
class BeyondObservablesRow(Row):
    """A row of ``beyond.json`` ``observables``."""
    experiment: str
    method: str
    setting: str
    observables: str
    features_per_block: str
    operator_entries_per_network: int
    fit_seconds_per_network: float
    jump_seconds_per_network: float
    teq_over_t_median: float
    success_rate: float
    max_spectral_radius_median: float
    loss_median: float | None = None
    accuracy_median: float | None = None
    weight_error_median: float | None = None
    fit: str | None = None
    n_networks: int | None = None


@register("beyond", "cycles")
@dataclass(frozen=True)
class BeyondCyclesRow(Row):
    """A row of ``beyond.json`` ``cycles``."""
    method: str
    setting: str
    target_test_loss_median: float
    seconds_to_target_median: float
    reached_fraction: float
    steps_to_target_median: float
    seconds_training: float
    seconds_recording: float
    seconds_fitting: float
    seconds_jumping: float
    jumps_accepted: int | None = None
    jumps_tried: int | None = None
    seconds_evaluating: float | None = None
    # what a jump carries ("weights", "weights + optimizer state"; "optimizer alone" for the optimizer's
    # row); files made before the variants lack it (their second row is "weights")
    variant: str | None = None
    final_test_loss_median: float | None = None   # median test loss at the last evaluation
    final_progress: int | None = None             # its progress in steps (optimizer + kept jumps)


@register("beyond", "networks")
@dataclass(frozen=True)
class BeyondNetworksRow(Row):
    """A row of ``beyond.json`` ``networks``."""
    network: str
    dataset: str
    n_params: int
    n_networks: int
    setting: str
    T_epochs: int
    optimizer_loss_median: float
    optimizer_accuracy_median: float
    method: str
    teq_over_t_median: float
    success_rate: float
    loss_median: float | None = None
    accuracy_median: float | None = None
    max_spectral_radius_median: float | None = None
    weight_error_median: float | None = None
    fit_seconds_per_network: float | None = None
