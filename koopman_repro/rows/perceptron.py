"""Declared rows of the ``perceptron`` results tables (one frozen dataclass per table).

Generated from the keys and value types of the committed results, then kept by hand:
a new field goes here, in the producer, and (for older files) in koopman_repro.migrations.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import Row, register


@register("perceptron", "table")
@dataclass(frozen=True)
class PerceptronTableRow(Row):
    """A row of ``perceptron.json`` ``table``."""
    method: str
    fit: str
    steps_to_asymptote: int
    final_percent_error: float
    final_sem: float
    mean_percent_error_after_start: float
    p_sooner_than_rule: float
    steps_to_rule_final: int | None = None
    frac_rank_deficient_blocks: float | None = None
    frac_sims_overflowed: float | None = None
    p_soonest: float | None = None


@register("perceptron", "window_sweep")
@dataclass(frozen=True)
class PerceptronWindowSweepRow(Row):
    """A row of ``perceptron.json`` ``window_sweep``."""
    method: str
    window: int
    fit: str
    steps_to_asymptote: int
    final_percent_error: float
    final_sem: float
    mean_percent_error_after_start: float
    block_size: int
    blocks_per_sim: int
    frac_rank_deficient_blocks: float
    frac_sims_radius_above_1: float
    median_max_radius: float
    max_radius: float
    frac_sims_overflowed: float
    steps_to_rule_final: int | None = None
    same_operators_as: str | None = None


@register("perceptron", "input_sweep")
@dataclass(frozen=True)
class PerceptronInputSweepRow(Row):
    """A row of ``perceptron.json`` ``input_sweep``."""
    n_inputs: int
    group_size: int
    activity: float
    method: str
    steps_to_asymptote: int
    final_percent_error: float
    final_sem: float
    mean_percent_error_after_start: float
    frac_sims_overflowed: float
    frac_rank_deficient_blocks: float
    fit: str
    steps_to_rule_final: int | None = None
    same_operators_as: str | None = None
