"""The chapters' thresholds: the numbers that turn a chapter's measurement into a verdict word,
each with the one-line rule the chapter prints beside it (:data:`THRESHOLDS`)."""
from __future__ import annotations

import operator
import sys
from dataclasses import dataclass

from .rules import KEEPS_UP


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_OPPOSITE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}


@dataclass(frozen=True)
class Threshold:
    """A number that turns a chapter's measurement into a verdict word.

    ``holds(x)`` is ``x <op> value``; ``holds(x, of=ref)`` is ``x <op> value * ref`` (a threshold
    relative to a reference, e.g. "at least 0.9 times the hindsight choice"). ``fails`` applies the
    opposite comparison (``<=`` becomes ``>``, ...); both are False for NaN. ``text`` is the one-line
    rule the chapter prints beside the verdict it produces.

    >>> Threshold("t", 0.9, ">=", "").holds(0.95, of=1.0), Threshold("t", 0.1, "<=", "").fails(0.2)
    (True, True)
    """

    key: str
    value: float
    op: str
    text: str

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"unknown comparison {self.op!r}")

    def _bound(self, of):
        return self.value if of is None else self.value * of

    def holds(self, x, of=None) -> bool:
        return bool(_OPS[self.op](x, self._bound(of)))

    def fails(self, x, of=None) -> bool:
        return bool(_OPS[_OPPOSITE[self.op]](x, self._bound(of)))


#: float64 machine epsilon (``np.finfo(np.float64).eps``)
EPS64 = sys.float_info.epsilon

# Beyond the paper (notebooks/beyond.md)
WINDOW_MATTERS_A_LOT = Threshold(
    "window matters a great deal", 0.5, ">",
    "median T_eq/T moving by more than 0.5 across the window grid (largest minus smallest over an "
    "experiment's windows): the window matters a great deal")
WINDOW_MATTERS = Threshold(
    "window matters", 0.2, ">",
    "moving by more than 0.2 (and at most 0.5): the window matters; by 0.2 or less: it matters little")
PROGRESS = Threshold(
    "progress", 0.0, ">",
    "a median T_eq/T above 0 (the jump saved some optimizer steps) counts as progress")
WINDOW_CHOICE_GOOD = Threshold(
    "close to the hindsight choice", 0.9, ">=",
    "a criterion is close to the hindsight choice when its best median T_eq/T is at least 0.9 times that "
    "of the best fixed window in hindsight")
CRITERION_INFORMATIVE = Threshold(
    "informative criterion", 0.3, ">",
    "the criteria's scores carry information about the outcome when their largest rank correlation with "
    "T_eq/T is above 0.3")
OBSERVABLE_HELPS = Threshold(
    "observable helps", 0.1, ">",
    "a richer observable improved on the identity when its median T_eq/T is more than 0.1 higher")
OBSERVABLE_COSTLIER = Threshold(
    "higher fit cost", 1.1, ">",
    "its fit cost is higher when its fit time is more than 1.1 times the identity's")
CYCLES_FASTER = Threshold(
    "cycles faster", 0.9, "<",
    "Koopman cycles are faster when they reach the target in less than 0.9 times the optimizer's time "
    "(faster by more than 10 %), or reach it when the optimizer alone does not")
BEATS_OPTIMIZER = Threshold(
    "beats the optimizer", 1.0, ">",
    "a median T_eq/T above 1 means Koopman training beat continuing the optimizer")
SUMMARY_KEEPS_UP = Threshold(
    "keeps up (chapter reading)", KEEPS_UP, ">=",
    f"chapter reading of a T_eq/T row: a median T_eq/T of at least {KEEPS_UP} (the level of the front page's range rule) "
    "keeps up with the optimizer, else falls behind")
SUMMARY_DIVERGENCE = Threshold(
    "diverges (chapter reading)", 0.0, ">",
    "chapter reading of the replication row: a diverged fraction above 0 after 2 epochs (any network diverged) "
    "counts as diverging")

# Cost (notebooks/cost.md)
COST_SPEED = Threshold(
    "speed factor kept", 0.75, ">=",
    "chapter reading of a benchmarked speed factor: kept when ours is at least 0.75 times the paper's")
COST_SPEED_PARTLY = Threshold(
    "speed factor kept in part", 0.25, ">=",
    "kept in part when at least 0.25 times the paper's, else not kept")
EXPONENT_CLOSE = Threshold(
    "exponent close", 0.5, "<=",
    "a fitted exponent agrees with the S7 prediction when |fitted - predicted| <= 0.5; an exponent claim is "
    "reproduced when every one agrees, partly when some do")
KOOPMAN_FASTER = Threshold(
    "Koopman faster", 1.0, ">",
    "a speedup above 1 means the Koopman side is faster; the step claim is reproduced when it is faster on "
    "both problems, partly on one")
RECORDING_OVERHEAD = Threshold(
    "recording overhead", 0.10, "<=",
    "streaming recording overhead at most 10% (0.1) of the training time in the window: below the target; "
    "more: above it")
BOOK_CI_MINUTES = Threshold(
    "book ci minutes", 15.0, "<=",
    "the book at profile ci within 15 minutes (sum of notebook times): met; a partial sum over the timed "
    "notebooks already above 15 minutes: missed")
PAPER_WALL_MINUTES = Threshold(
    "paper-profile wall time", 60.0, "<=",
    "all saved paper-profile runs together at most 60 minutes of wall-clock: met; else missed by the factor "
    "total / 60")

# DE solver (notebooks/de_solver.md)
DE_NOT_SOLVED = Threshold(
    "not yet solved", 0.25, ">",
    "a median largest solution error above 0.25 times the amplitude of x means the networks have not yet "
    "solved the equation")
DE_ENERGY_LOST = Threshold(
    "energy lost", 0.5, ">",
    "a median largest energy drift above 0.5 times the initial energy means the trajectories fall into the "
    "equilibrium")
DE_ORIGINAL_WORKS = Threshold(
    "original settings work", 0.25, "<",
    "the original solver settings work when their smallest largest error is below 0.25 times the smaller of "
    "the paper settings' median error and the amplitude")

# Divergence (notebooks/divergence.md): Koopman / Adadelta test loss after the jump
DIVERGENCE_FACTOR = 1.5
LOSS_DIVERGED = Threshold(
    "diverged", DIVERGENCE_FACTOR, ">",
    f"a Koopman test loss above {DIVERGENCE_FACTOR} times Adadelta's (or none: every network stopped by the "
    "guard) counts as diverged")
LOSS_KEPT_UP = Threshold(
    "kept up", DIVERGENCE_FACTOR, "<",
    f"a Koopman test loss below {DIVERGENCE_FACTOR} times Adadelta's counts as kept up (still close)")

# Koopman operators (notebooks/koopman_operators.md)
EIG_EXACT = Threshold(
    "exact", 100 * EPS64, "<",
    f"an eigenvalue error below 100 float64 eps ({100 * EPS64:.1e}) counts as exact")
TO_ROUNDING = Threshold(
    "to rounding", 1e3 * EPS64, "<",
    f"a relative distance or error below 1000 float64 eps ({1e3 * EPS64:.1e}) counts as agreement to rounding")
NOT_CLOSED = Threshold(
    "not closed", 1e-2, ">",
    "a prediction error of [x, y] above 0.01 is the O(1) error of observables that are not closed")
EXPONENT_MATCH = Threshold(
    "exponent matches", 0.3, "<",
    "a fitted exponent p agrees with the theory's when |p - p_theory| < 0.3")

#: every chapter threshold, by key
THRESHOLDS: dict[str, Threshold] = {t.key: t for t in (
    WINDOW_MATTERS_A_LOT, WINDOW_MATTERS, PROGRESS, WINDOW_CHOICE_GOOD, CRITERION_INFORMATIVE, OBSERVABLE_HELPS,
    OBSERVABLE_COSTLIER, CYCLES_FASTER, BEATS_OPTIMIZER, SUMMARY_KEEPS_UP, SUMMARY_DIVERGENCE,
    COST_SPEED, COST_SPEED_PARTLY, EXPONENT_CLOSE, KOOPMAN_FASTER, RECORDING_OVERHEAD, BOOK_CI_MINUTES, PAPER_WALL_MINUTES,
    DE_NOT_SOLVED, DE_ENERGY_LOST, DE_ORIGINAL_WORKS, LOSS_DIVERGED, LOSS_KEPT_UP, EIG_EXACT, TO_ROUNDING,
    NOT_CLOSED, EXPONENT_MATCH)}
