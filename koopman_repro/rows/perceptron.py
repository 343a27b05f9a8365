"""Declared rows of the ``perceptron`` results (one frozen dataclass per table).

Generated from the keys and value types of the committed results, then kept by hand:
a new field goes here, in the producer, and (for older files) in koopman_repro.migrations.

Besides the three tables (``table``, ``window_sweep``, ``input_sweep``: lists of rows), the
results hold one summary per named fit and method (``methods_by_fit[fit][method]``, a dict of
dicts, not a table): :class:`MethodSummary` declares its fields and :func:`summaries` reads it.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import Row, register


@register("perceptron", "table")
@dataclass(frozen=True)
class PerceptronTableRow(Row):
    """A row of ``perceptron.json`` ``table``: one method with one named fit (the rule's row is
    repeated for every fit). ``p_*`` are bootstrap shares (``None``: no bootstrap was run).
    ``stride``: optimizer steps between the snapshots the fit used (1 but for the strided fits,
    where it is :func:`koopman_lib.stride.choose_stride`'s; 1 there means the strided fit is the
    default fit); ``None`` for the rule (and in files from before the strided fits)."""
    method: str
    fit: str
    steps_to_asymptote: int
    final_percent_error: float
    final_sem: float
    mean_percent_error_after_start: float
    p_sooner_than_rule: float | None = None
    steps_to_rule_final: int | None = None
    frac_rank_deficient_blocks: float | None = None
    frac_sims_overflowed: float | None = None
    p_soonest: float | None = None
    stride: int | None = None


@register("perceptron", "window_sweep")
@dataclass(frozen=True)
class PerceptronWindowSweepRow(Row):
    """A row of ``perceptron.json`` ``window_sweep``: one Koopman variant, data window and fit
    (``stride``: as in :class:`PerceptronTableRow`; spectral radii are the ``stride``-step operators')."""
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
    stride: int | None = None


@register("perceptron", "input_sweep")
@dataclass(frozen=True)
class PerceptronInputSweepRow(Row):
    """A row of ``perceptron.json`` ``input_sweep``: one method at one input setting
    (``n_inputs``, ``group_size``) and fit (``stride``: as in :class:`PerceptronTableRow`)."""
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
    stride: int | None = None


@register("perceptron", "null_model")
@dataclass(frozen=True)
class PerceptronNullModelRow(Row):
    """The row of ``perceptron.json`` ``null_model``: the rule continued from the Koopman start on
    other inputs (the optimizer against itself), summarised as every method is."""
    method: str
    steps_to_asymptote: int
    final_percent_error: float
    final_sem: float
    mean_percent_error_after_start: float
    steps_to_rule_final: int | None = None
    steps_to_rule_final_ci95: list[int] | None = None
    p_sooner_than_rule: float | None = None


@dataclass(frozen=True)
class MethodSummary(Row):
    """``perceptron.json`` ``methods_by_fit[fit][method]``: the main run's summary of one method
    with one named fit. The rule has no operators, so its operator diagnostics (``block_size`` ..
    ``same_operators_as``, ``stride``) are ``None``; the bootstrap fields are ``None`` when none was
    run. ``stride`` as in :class:`PerceptronTableRow`; the radii are of the ``stride``-step operators."""
    steps_to_asymptote: int
    final_percent_error: float
    final_sem: float
    mean_percent_error_after_start: float
    steps_to_rule_final: int | None = None
    steps_to_rule_final_ci95: list[int] | None = None
    p_sooner_than_rule: float | None = None
    p_soonest: float | None = None
    block_size: int | None = None
    blocks_per_sim: int | None = None
    frac_rank_deficient_blocks: float | None = None
    frac_sims_radius_above_1: float | None = None
    median_max_radius: float | None = None
    max_radius: float | None = None
    frac_sims_overflowed: float | None = None
    same_operators_as: str | None = None
    stride: int | None = None


def summaries(results: dict) -> dict[str, dict[str, MethodSummary]]:
    """``{fit: {method: MethodSummary}}`` of perceptron ``results``, fits in the results' order
    (the paper fit first)."""
    return {fit: {m: MethodSummary.from_dict(s) for m, s in by_method.items()}
            for fit, by_method in results["methods_by_fit"].items()}
