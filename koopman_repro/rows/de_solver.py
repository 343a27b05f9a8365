"""Declared rows of the ``de-solver`` results tables (one frozen dataclass per table).

Generated from the keys and value types of the committed results, then kept by hand:
a new field goes here, in the producer, and (for older files) in koopman_repro.migrations.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import Row, register


@register("de-solver", "table")
@dataclass(frozen=True)
class DeSolverTableRow(Row):
    """A row of ``de-solver.json`` ``table``."""
    optimizer: str
    n_inits: int
    success_rate: float
    teq_over_t_median: float
    T: int
    train_dtype: str
    fit: str
    fit_method: str
    cutoff: str
    error_ratio: float
    teq_over_t_median_other_origin: float
    censored: int
    median_relative_weight_error: float
    median_max_spectral_radius: float
    median_kept_rank_fraction: float
    median_max_cond_F: float
    speedup_paper_style_median_all: float
    speedup_fast_loop_median_all: float
    koopman_fit_and_jump_seconds: float
    speedup_paper_style_median: float | None = None
    speedup_fast_loop_median: float | None = None


@register("de-solver", "networks")
@dataclass(frozen=True)
class DeSolverNetworksRow(Row):
    """A row of ``de-solver.json`` ``networks``."""
    train_dtype: str
    fit: str
    fit_method: str
    cutoff: str
    optimizer: str
    init: int
    T: int
    teq: float
    teq_over_t: float
    censored: bool
    success: bool
    teq_over_t_other_origin: float
    loss_t2: float
    loss_optimizer_at_T: float
    speedup_paper_style: float
    speedup_fast_loop: float
    max_spectral_radius: float
    kept_rank_fraction: float
    loss_koopman: float | None = None
    relative_weight_error: float | None = None
    max_cond_F: float | None = None


@register("de-solver", "fit_methods_table")
@dataclass(frozen=True)
class DeSolverFitMethodsTableRow(Row):
    """A row of ``de-solver.json`` ``fit_methods_table``."""
    optimizer: str
    n_inits: int
    success_rate: float
    teq_over_t_median: float
    T: int
    train_dtype: str
    fit: str
    fit_method: str
    error_ratio: float
    teq_over_t_median_other_origin: float
    censored: int
    median_relative_weight_error: float
    median_max_spectral_radius: float
    median_max_cond_F: float
    median_kept_rank_fraction: float | None = None


@register("de-solver", "where_it_stops")
@dataclass(frozen=True)
class DeSolverWhereItStopsRow(Row):
    """A row of ``de-solver.json`` ``where_it_stops``."""
    optimizer: str
    train_dtype: str
    fit: str
    keeps_up_threshold: float
    Ts: list
    teq_over_t_median_by_T: list
    success_rate_by_T: list
    T_diagnosed: int
    teq_over_t_median_at_T_diagnosed: float
    share_blocks_growing: float
    max_spectral_radius_median: float
    log10_growth_at_T: float
    median_relative_weight_error: float
    dominant_layer: int
    dominant_layer_error_share: float
    layers: list
    longest_T_keeping_up: int | None = None
    stops_at_T: int | None = None


@register("de-solver", "ode_check")
@dataclass(frozen=True)
class DeSolverOdeCheckRow(Row):
    """A row of ``de-solver.json`` ``ode_check``."""
    train_dtype: str
    optimizer: str
    median_max_abs_error: float
    best_max_abs_error: float
    worst_max_abs_error: float
    median_energy_drift: float
    final_loss_median: float
