"""The reproduction scorecard: every quantitative claim of the paper, our measurement of it,
and a verdict computed by stated rules.

A :class:`Claim` (:mod:`.claims`) names where the paper makes the claim, the paper's value, the
results files it is measured from (``de-solver``, ``mnist``, ``perceptron``: the JSON written by
``koopman reproduce``) and the :class:`Rule` (:mod:`.rules`) that turns the pair into a verdict.
Each claim's measurement function (:mod:`.measure_de_solver`, :mod:`.measure_mnist`,
:mod:`.measure_perceptron`, :mod:`.measure_speed`) reads the declared rows of the results
(:mod:`.reading`, :mod:`koopman_repro.rows`) and returns a :class:`Measured` value, or raises
:class:`NotMeasured` saying what is missing. The rules are data (:data:`RULES`) and the book
prints them next to the table (:mod:`.tables`), so every verdict can be checked by hand.
:mod:`.fits` selects the rows of each of the two fits, :mod:`.evaluation` gives every claim its
verdicts, :mod:`.null_model` its second reading against the optimizer against itself where the
results hold one, :mod:`.thresholds` holds the chapters' thresholds.

Reading is read-only: :func:`load_results` (:mod:`.loading`) never starts an experiment (the
scorecard is the book's front page and must not run what the chapters have not run).

>>> rows = evaluate({"de-solver": None}, {})
>>> rows[0]["verdict"]
'not measured'
"""
from __future__ import annotations

from ..report import INCONCLUSIVE, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED
from .answer import answer_markdown, front_page_answer
from .claims import CLAIMS, Claim
from .evaluation import claim_row, counts, evaluate, measure
from .fits import REPLICATION_FIT, SCORE_FITS, select_fit, why_differs
from .loading import EXPERIMENT_NAMES, is_stale, load_results
from .measure_de_solver import (DE_T, DE_TABLE1, de_error_ratio, de_range, de_row_interval, de_speedup, de_success,
                                de_teq)
from .measure_mnist import (MNIST_T, MNIST_TABLE2, divergence_parts, is_replication_row, mnist_divergence,
                            mnist_range, mnist_speedup, mnist_success, mnist_teq)
from .measure_perceptron import PERCEPTRON_METHODS, S4_ORDER, perceptron_ordering
from .measure_speed import faster_10x
from .null_model import (BETTER, INDISTINGUISHABLE, MNIST_NULL, MNIST_REPLICATION_NULL, NOT_SAVED,
                         NULL_MODEL_DETERMINISTIC, NULL_READINGS, WORSE, NullReading, mnist_null, not_saved_text,
                         null_word, paired_improvement, perceptron_null, replication_null)
from .reading import Measured, NotMeasured
from .rules import COMPARE_LOSS_RULE, KEEPS_UP, LOSS_TIE, NULL_MODEL_PENDING, RULES, VERDICTS, Rule, compare_loss
from .tables import interval_text, rules_markdown, table_markdown
from .thresholds import (BEATS_OPTIMIZER, BOOK_CI_MINUTES, COST_SPEED, COST_SPEED_PARTLY, CRITERION_INFORMATIVE, CYCLES_FASTER,
                         DE_ENERGY_LOST, DE_NOT_SOLVED, DE_ORIGINAL_WORKS, DIVERGENCE_FACTOR, EIG_EXACT, EPS64,
                         EXPONENT_CLOSE, EXPONENT_MATCH, KOOPMAN_FASTER, LOSS_DIVERGED, LOSS_KEPT_UP, NOT_CLOSED,
                         OBSERVABLE_COSTLIER, OBSERVABLE_HELPS, PAPER_WALL_MINUTES, PROGRESS, RECORDING_OVERHEAD,
                         SUMMARY_DIVERGENCE, SUMMARY_KEEPS_UP, THRESHOLDS, TO_ROUNDING,
                         WINDOW_CHOICE_GOOD, WINDOW_MATTERS, WINDOW_MATTERS_A_LOT, Threshold)

__all__ = [
    "BETTER", "INDISTINGUISHABLE", "MNIST_NULL", "MNIST_REPLICATION_NULL", "NOT_SAVED", "NULL_MODEL_DETERMINISTIC",
    "NULL_READINGS", "NullReading", "WORSE", "mnist_null", "not_saved_text", "null_word", "paired_improvement",
    "perceptron_null", "replication_null",
    "BEATS_OPTIMIZER", "BOOK_CI_MINUTES", "CLAIMS", "COMPARE_LOSS_RULE", "COST_SPEED", "COST_SPEED_PARTLY", "CRITERION_INFORMATIVE",
    "CYCLES_FASTER", "Claim", "DE_ENERGY_LOST", "DE_NOT_SOLVED", "DE_ORIGINAL_WORKS", "DE_T", "DE_TABLE1",
    "DIVERGENCE_FACTOR", "EIG_EXACT", "EPS64", "EXPERIMENT_NAMES", "EXPONENT_CLOSE", "EXPONENT_MATCH", "KEEPS_UP",
    "KOOPMAN_FASTER", "LOSS_DIVERGED", "LOSS_KEPT_UP", "LOSS_TIE", "MNIST_T", "MNIST_TABLE2", "Measured",
    "NOT_CLOSED", "NOT_MEASURED", "NOT_REPRODUCED", "NotMeasured", "OBSERVABLE_COSTLIER", "OBSERVABLE_HELPS",
    "PAPER_WALL_MINUTES", "INCONCLUSIVE", "NULL_MODEL_PENDING", "PERCEPTRON_METHODS", "PROGRESS", "RECORDING_OVERHEAD", "REPLICATION_FIT",
    "REPRODUCED", "RULES", "Rule", "S4_ORDER", "SCORE_FITS", "SUMMARY_DIVERGENCE", "SUMMARY_KEEPS_UP", "THRESHOLDS", "TO_ROUNDING", "Threshold", "VERDICTS", "WINDOW_CHOICE_GOOD",
    "WINDOW_MATTERS", "WINDOW_MATTERS_A_LOT", "answer_markdown", "claim_row", "compare_loss", "counts", "de_error_ratio", "de_range", "de_row_interval",
    "de_speedup", "de_success", "de_teq", "interval_text", "divergence_parts", "evaluate", "faster_10x", "front_page_answer", "is_replication_row",
    "is_stale", "load_results", "measure", "mnist_divergence", "mnist_range", "mnist_speedup", "mnist_success",
    "mnist_teq", "perceptron_ordering", "rules_markdown", "select_fit", "table_markdown", "why_differs",
]
