"""The reproduction scorecard: every quantitative claim of the paper, our measurement of it,
and a verdict computed by stated rules.

A :class:`Claim` names where the paper makes the claim, the paper's value, the results
files it is measured from (``de-solver``, ``mnist``, ``perceptron``: the JSON written by
``koopman reproduce``) and the :class:`Rule` that turns the pair into a verdict. Each
claim's ``extract`` reads the results dicts and returns a :class:`Measured` value, or
raises :class:`NotMeasured` saying what is missing. The rules are data (:data:`RULES`)
and the book prints them next to the table, so every verdict can be checked by hand.

Reading is read-only: :func:`load_results` never starts an experiment (the scorecard is
the book's front page and must not run what the chapters have not run).

>>> rows = evaluate({"de-solver": None}, {})
>>> rows[0]["verdict"]
'not measured'
"""
from __future__ import annotations

import dataclasses
import math
import operator
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from .report import NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED, resolve
from . import results as results_io
from .results import to_jsonable

#: results files the claims are measured from (experiment names of ``koopman reproduce``)
EXPERIMENT_NAMES = ("de-solver", "mnist", "perceptron")
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_MEASURED)


# -- rules ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """How a measured value becomes a verdict.

    ``kind``:
    ``"abs"``: ``|ours - paper| <= reproduced`` -> reproduced, ``<= partly`` -> partly;
    ``"factor"``: ``max(ours/paper, paper/ours) <= reproduced`` -> reproduced, ``<= partly`` ->
    partly (a non-positive ``ours`` is not reproduced);
    ``"at_least"``: ``ours >= reproduced`` -> reproduced, ``>= partly`` -> partly;
    ``"at_most"``: ``ours <= reproduced`` -> reproduced, ``<= partly`` -> partly;
    ``"not_below"``: ``ours >= paper - reproduced`` -> reproduced, ``>= paper - partly`` -> partly;
    ``"factor_below"``: ``ours >= paper / reproduced`` -> reproduced, ``>= paper / partly`` -> partly;
    ``"fraction"``: ``ours >= reproduced * paper`` -> reproduced, ``>= partly * paper`` -> partly.
    Anything else is not reproduced. The one-sided kinds are for claims that Koopman training
    does at least this well: doing better than the paper does not count against the claim.
    """

    key: str
    kind: str
    reproduced: float
    partly: float
    text: str

    def verdict(self, ours: float | None, paper: float | None = None) -> str:
        if ours is None or not math.isfinite(ours):
            return NOT_MEASURED
        if self.kind == "abs":
            d = abs(ours - paper)
            return REPRODUCED if d <= self.reproduced else PARTLY if d <= self.partly else NOT_REPRODUCED
        if self.kind == "factor":
            if ours <= 0:
                return NOT_REPRODUCED
            f = max(ours / paper, paper / ours)
            return REPRODUCED if f <= self.reproduced else PARTLY if f <= self.partly else NOT_REPRODUCED
        if self.kind == "at_least":
            return REPRODUCED if ours >= self.reproduced else PARTLY if ours >= self.partly else NOT_REPRODUCED
        if self.kind == "not_below":
            return REPRODUCED if ours >= paper - self.reproduced else PARTLY if ours >= paper - self.partly \
                else NOT_REPRODUCED
        if self.kind == "factor_below":
            return REPRODUCED if ours >= paper / self.reproduced else PARTLY if ours >= paper / self.partly \
                else NOT_REPRODUCED
        if self.kind == "at_most":
            return REPRODUCED if ours <= self.reproduced else PARTLY if ours <= self.partly else NOT_REPRODUCED
        if self.kind == "fraction":
            return REPRODUCED if ours >= self.reproduced * paper else PARTLY if ours >= self.partly * paper \
                else NOT_REPRODUCED
        raise ValueError(f"unknown rule kind {self.kind!r}")


#: T_eq/T a Koopman-trained ensemble must keep (median) for "keeps up with the optimizer"
KEEPS_UP = 0.8

#: two losses within this relative tolerance count as equal ("matched") in every chapter
LOSS_TIE = 0.01


def compare_loss(ours: float, other: float, tie: float = LOSS_TIE) -> str:
    """``"better"`` if ``ours < (1 - tie) other``, ``"tie"`` if ``ours <= (1 + tie) other``, else
    ``"worse"`` (also for a non-finite ``ours``). The rule the chapters print beside a comparison."""
    if not (math.isfinite(ours) and math.isfinite(other)):
        return "worse" if math.isfinite(other) else "tie" if not math.isfinite(ours) else "better"
    if ours < (1 - tie) * other:
        return "better"
    return "tie" if ours <= (1 + tie) * other else "worse"


COMPARE_LOSS_RULE = (f"a loss more than {LOSS_TIE:.0%} below the other is better, within {LOSS_TIE:.0%} either "
                     "side is a tie (matched), else worse")


RULES: dict[str, Rule] = {r.key: r for r in (
    Rule("success rate", "not_below", 10.0, 25.0,
         "at most 10 percentage points below the paper (or above it): reproduced; at most 25 below: partly; "
         "else not reproduced"),
    Rule("T_eq/T", "not_below", 0.10, 0.30,
         "median T_eq/T at most 0.10 below the paper's (or above it): reproduced; at most 0.30 below: partly; "
         "else not reproduced"),
    Rule("speedup", "factor_below", 2.0, 10.0,
         "median speedup (timed as the paper did) at least half the paper's: reproduced; at least a tenth: "
         "partly; else not reproduced"),
    Rule("error ratio", "at_most", 0.01, 0.1,
         "median |error| / median |true evolution| at most 0.01 (the paper's 'two orders of magnitude'): "
         "reproduced; at most 0.1 (one order): partly; else not reproduced"),
    Rule("ordering", "at_least", 1.0, 0.5,
         "all of the paper's pairwise orderings hold: reproduced; at least half of them: partly; "
         "else not reproduced (the measured value is the fraction that holds)"),
    Rule("10x", "at_least", 10.0, 1.0,
         "the smallest median speedup over every optimizer and both networks at least 10: reproduced; "
         "above 1 (faster, by less): partly; else not reproduced"),
    Rule("range", "at_least", 1.0, 0.25,
         f"the longest Koopman phase T tested over which every optimizer's median T_eq/T stays >= "
         f"{KEEPS_UP}, divided by the paper's T, at least 1: reproduced; at least 0.25: partly; "
         "else not reproduced"),
    Rule("divergence", "at_least", 1.0, 0.5,
         "under the replication's settings, two parts (koopman_repro.scorecard.divergence_parts): (1) the Koopman "
         "test loss grows over the Koopman phase (median over the networks of its loss after 2 epochs divided "
         "by its own value at the start above 1) and (2) it ends above Adadelta's median test loss; both "
         "hold: reproduced; one: partly; neither: not reproduced (the measured value is the fraction that holds)"),
)}


# -- chapter thresholds -----------------------------------------------------------------------
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
SUMMARY_TEQ_FAILS = Threshold(
    "paper's fit not reproduced", 0.5, "<",
    "MNIST with the paper's fit: a median T_eq/T below 0.5 is not reproduced, else reproduced")
SUMMARY_TEQ_REPRODUCED = Threshold(
    "T_eq/T reproduced", 0.75, ">=",
    "the other T_eq/T rows: a median T_eq/T of at least 0.75 is reproduced, else not reproduced")
SUMMARY_DIVERGENCE = Threshold(
    "divergence reproduced", 0.0, ">",
    "replication row: a diverged fraction above 0 after 2 epochs (any network diverged) reproduces the "
    "divergence")

# Cost (notebooks/cost.md)
COST_SPEED = Rule(
    "speed claim", "fraction", 0.75, 0.25,
    "a speed claim is reproduced when our factor is at least 0.75 times the paper's, partly when at least "
    "0.25 times, else not reproduced")
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
    OBSERVABLE_COSTLIER, CYCLES_FASTER, BEATS_OPTIMIZER, SUMMARY_TEQ_FAILS, SUMMARY_TEQ_REPRODUCED,
    SUMMARY_DIVERGENCE, EXPONENT_CLOSE, KOOPMAN_FASTER, RECORDING_OVERHEAD, BOOK_CI_MINUTES, PAPER_WALL_MINUTES,
    DE_NOT_SOLVED, DE_ENERGY_LOST, DE_ORIGINAL_WORKS, LOSS_DIVERGED, LOSS_KEPT_UP, EIG_EXACT, TO_ROUNDING,
    NOT_CLOSED, EXPONENT_MATCH)}

# -- measurements -----------------------------------------------------------------------------
class NotMeasured(LookupError):
    """A claim whose value cannot be read from the results (the message says what is missing)."""


@dataclass(frozen=True)
class Measured:
    """``value``: what the rule is applied to; ``shown``: how the page shows it."""

    value: float
    shown: str
    note: str = ""


@dataclass(frozen=True)
class Claim:
    key: str
    where: str                  # where the paper makes the claim
    statement: str              # the claim in our words
    paper: str                  # the paper's value as shown
    paper_value: float | None   # the number the rule compares with (abs and factor rules)
    rule: str                   # key of RULES
    needs: tuple[str, ...]      # results files (experiment names)
    extract: Callable[[Mapping[str, dict]], Measured]
    chapter: str = ""           # the chapter that measures it (notebook name)


def _need(results: Mapping[str, dict | None], name: str) -> dict:
    r = results.get(name)
    if not r:
        raise NotMeasured(f"no {name}.json")
    return r


def _rows(res: dict, key: str, name: str) -> list[dict]:
    rows = res.get(key)
    if not isinstance(rows, list) or not rows:
        raise NotMeasured(f"{name}.json has no {key!r} rows")
    return rows


def _field(row: dict, field: str, name: str) -> float:
    v = row.get(field)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise NotMeasured(f"{name}.json: {field!r} missing or not a number in row {_row_label(row)}")
    return float(v)


def _row_label(row: dict) -> str:
    keys = ("optimizer", "method", "setting", "partition", "dtype", "T", "T_epochs")
    return "(" + ", ".join(f"{k}={row[k]}" for k in keys if k in row) + ")"


def _percent(rate: float) -> float:
    """Success rates may be stored as fractions (0..1) or percents; return percent."""
    return 100.0 * rate if rate <= 1.0 else rate


def _x(v: float) -> str:
    return f"{v:.3g}x"


# DE solver (Table 1) ------------------------------------------------------------------------
DE_T = 2500          # the authors' example T (steps)
DE_TABLE1 = {"Adam": (84, 0.85, 98), "Adagrad": (92, 1.00, 132), "Adadelta": (100, 1.00, 141)}


#: columns that tell apart several readings of the same experiment (the first row is the main one)
READING_KEYS = ("fit", "train_dtype", "fit_method", "dtype", "method")


def _main_reading(rows: list[dict]) -> tuple[list[dict], str]:
    """The rows of the main reading: those that share the first row's ``READING_KEYS``
    (e.g. training dtype and fit method when an experiment reports several)."""
    keys = {k: rows[0][k] for k in READING_KEYS if k in rows[0]}
    main = [r for r in rows if all(r.get(k) == v for k, v in keys.items())]
    varies = [k for k in keys if len({str(r.get(k)) for r in rows}) > 1]
    return main, ", ".join(f"{k} {keys[k]}" for k in varies)


def _de_table(results) -> tuple[list[dict], str]:
    return _main_reading(_rows(_need(results, "de-solver"), "table", "de-solver"))


def _de_row(results, optimizer: str) -> tuple[dict, str]:
    table, reading = _de_table(results)
    rows = [r for r in table if str(r.get("optimizer", "")).lower() == optimizer.lower()]
    if not rows:
        raise NotMeasured(f"de-solver.json has no row for {optimizer}")
    with_T = [r for r in rows if isinstance(r.get("T"), (int, float))]
    if not with_T:
        return rows[0], ""
    row = min(with_T, key=lambda r: abs(r["T"] - DE_T))
    note = f"T = {row['T']:g}" + ("" if row["T"] == DE_T else f" (no row at the paper's T = {DE_T})")
    return row, note + (f" ({reading})" if reading else "") + _radius(row, "median_max_spectral_radius")


def _speedup(row: dict, field: str, name: str) -> tuple[float, str]:
    """The median speedup in ``field``. Speedups are medians over the inits Koopman training
    improved; with none (no ``field`` value) the median over all inits (``field + "_all"``,
    where a failed init counts 0) is used, or 0 when the success rate is 0."""
    v = row.get(field)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v), ""
    alt = row.get(field + "_all")
    if isinstance(alt, (int, float)) and not isinstance(alt, bool):
        return float(alt), "no init improved: median over all inits"
    if row.get("success_rate") == 0:
        return 0.0, "no init improved, so no speedup"
    return _field(row, field, name), ""


def _n(row) -> str:
    return f", {row['n_inits']} inits" if "n_inits" in row else ""


def de_success(optimizer):
    def extract(results):
        row, note = _de_row(results, optimizer)
        v = _percent(_field(row, "success_rate", "de-solver"))
        return Measured(v, f"{v:.0f}%", note + _n(row))
    return extract


def de_teq(optimizer):
    def extract(results):
        row, note = _de_row(results, optimizer)
        v = _field(row, "teq_over_t_median", "de-solver")
        return Measured(v, f"{v:.2f}", note + _n(row))
    return extract


def de_speedup(optimizer):
    def extract(results):
        row, note = _de_row(results, optimizer)
        v, why = _speedup(row, "speedup_paper_style_median", "de-solver")
        fast = row.get("speedup_fast_loop_median")
        extra = f"; against a fast optimizer loop: {_x(fast)}" if isinstance(fast, (int, float)) else ""
        return Measured(v, _x(v), note + (f"; {why}" if why else "") + extra)
    return extract


def de_error_ratio(results):
    res = _need(results, "de-solver")
    v = res.get("error_ratio_median")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise NotMeasured("de-solver.json has no number 'error_ratio_median'")
    return Measured(float(v), f"{v:.2g}", "median |error| / median |true evolution| over the 10 best networks")


def de_range(results):
    rows = [r for r in _de_table(results)[0] if isinstance(r.get("T"), (int, float))]
    if not rows:
        raise NotMeasured("de-solver.json table rows have no 'T'")
    by_T: dict[float, list[float]] = {}
    for r in rows:
        by_T.setdefault(float(r["T"]), []).append(_field(r, "teq_over_t_median", "de-solver"))
    ok = [T for T, v in by_T.items() if min(v) >= KEEPS_UP]
    best = max(ok, default=0.0)
    tested = ", ".join(f"{T:g}" for T in sorted(by_T))
    return Measured(best / DE_T, f"T = {best:g} steps" if best else "none",
                    f"T tested: {tested}; every optimizer's median T_eq/T >= {KEEPS_UP}")


# MNIST (Table 2 and the replication) --------------------------------------------------------
MNIST_T = 2          # epochs
MNIST_TABLE2 = (100, 0.97, 15)


def _mnist_row(results) -> tuple[dict, str]:
    res = _need(results, "mnist")
    rows = _rows(res, "table", "mnist")
    at_T = [r for r in rows if r.get("T_epochs") == MNIST_T]
    row = (at_T or rows)[0]
    note = f"T = {row['T_epochs']:g} epochs" if isinstance(row.get("T_epochs"), (int, float)) else ""
    return row, note + _radius(row, "max_spectral_radius_median")


def _radius(row: dict, key: str) -> str:
    """``"; median largest |eigenvalue| r"`` where the row has it."""
    v = row.get(key)
    return f"; median largest |eigenvalue| {v:.5g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""


def mnist_success(results):
    row, note = _mnist_row(results)
    v = _percent(_field(row, "success_rate", "mnist"))
    return Measured(v, f"{v:.0f}%", note + _n(row))


def mnist_teq(results):
    row, note = _mnist_row(results)
    v = _field(row, "teq_over_t_median", "mnist")
    return Measured(v, f"{v:.2f}", note + _n(row))


def mnist_speedup(results):
    row, note = _mnist_row(results)
    v, why = _speedup(row, "speedup_paper_style_median", "mnist")
    note += f"; {why}" if why else ""
    fast = row.get("speedup_fast_loop_median")
    extra = f"; against a fast optimizer loop: {_x(fast)}" if isinstance(fast, (int, float)) else ""
    return Measured(v, _x(v), note + extra)


def mnist_range(results):
    res = _need(results, "mnist")
    rows = [r for r in _rows(res, "table", "mnist") if isinstance(r.get("T_epochs"), (int, float))]
    if not rows:
        raise NotMeasured("mnist.json table rows have no 'T_epochs'")
    ok = [float(r["T_epochs"]) for r in rows if _field(r, "teq_over_t_median", "mnist") >= KEEPS_UP]
    best = max(ok, default=0.0)
    return Measured(best / MNIST_T, f"T = {best:g} epochs" if best else "none",
                    f"median T_eq/T >= {KEEPS_UP}")


def _is_replication_row(r: dict, kind: str = "node") -> bool:
    """A row with the replication's own settings (float32, its window and normalisation) and
    ``kind`` operators in layer 1: ``"node"`` (full node, 785-dim) or ``"layer"`` (layer-wise)."""
    label = " ".join(str(r.get(k, "")) for k in ("setting", "name", "label", "source")).lower()
    part = str(r.get("partition", "")).lower().replace("_", "-")
    match = part in ("node", "full-node") if kind == "node" else part.startswith("layer")
    if "replication" in label or "rao" in label:
        return match
    return match and "32" in str(r.get("dtype", ""))


def divergence_parts(row: dict) -> tuple[bool, bool, float]:
    """The two parts of the divergence rule for one replication row (``mnist.json``
    ``replication``): ``(grows, above, growth)``. ``growth``: median over the networks of the
    Koopman test loss at the row's horizon over its own value at the start of the Koopman phase
    (rows without it: the ratio of the medians); ``grows``: ``growth > 1``; ``above``: the median
    Koopman loss ends above Adadelta's median. A row whose Koopman loss is missing (every network
    stopped by the guard) counts as both."""
    ko, opt = row.get("final_test_loss_koopman"), row.get("final_test_loss_optimizer")
    if ko is None or not math.isfinite(float(ko)):
        return True, True, math.inf
    growth = row.get("koopman_loss_growth_median")
    if growth is None or not math.isfinite(float(growth)):
        start = row.get("test_loss_t2")
        growth = float(ko) / float(start) if start else math.nan
    return float(growth) > 1.0, float(ko) > float(opt), float(growth)


def mnist_divergence(kind: str = "node"):
    """The two-part divergence rule after ``MNIST_T`` epochs under the replication's settings."""
    def extract(results):
        res = _need(results, "mnist")
        rows = [r for r in _rows(res, "replication", "mnist") if _is_replication_row(r, kind)]
        rows = [r for r in rows if r.get("T_epochs") == MNIST_T] or rows
        if not rows:
            raise NotMeasured(f"mnist.json 'replication' has no row with the replication's settings and "
                              f"{kind} operators")
        row = max(rows, key=lambda r: float(r.get("T_epochs") or 0))
        ko = _field(row, "final_test_loss_koopman", "mnist")
        opt = _field(row, "final_test_loss_optimizer", "mnist")
        grows, above, growth = divergence_parts(row)
        radius = row.get("max_spectral_radius")
        n = row.get("n_members")
        note = (f"{_row_label(row)}" + (f"; {n} networks" if n else "")
                + (f"; spectral radius {radius:.4g}" if isinstance(radius, (int, float)) else ""))
        shown = (f"(1) grows {growth:.3g}x: {'yes' if grows else 'no'}; (2) {ko:.3g} vs Adadelta {opt:.3g}: "
                 f"{'above' if above else 'not above'}")
        return Measured((grows + above) / 2, shown, note)
    return extract


# Perceptron (Fig. S4) -----------------------------------------------------------------------
PERCEPTRON_METHODS = ("rule", "single_weight", "node", "network")
#: the paper's claims as pairs (a, b): method a reaches asymptotic performance in fewer steps than b
S4_ORDER = (("single_weight", "rule"), ("node", "rule"), ("network", "rule"),
            ("single_weight", "node"), ("single_weight", "network"))


def perceptron_ordering(results):
    """Share of the paper's orderings that hold. A method "reaches asymptotic performance" at
    ``steps_to_rule_final`` (first step whose smoothed error is within tolerance of the rule's
    final error; ``None``: never) where the results have it, else at ``steps_to_asymptote``
    (first step from which its own error stays near its own final value, which a method that
    levels off at a worse error also reaches early)."""
    res = _need(results, "perceptron")
    methods = res.get("methods")
    if not isinstance(methods, dict):
        methods = {r.get("method"): r for r in _rows(res, "table", "perceptron")}
    missing = [m for m in PERCEPTRON_METHODS if m not in methods]
    if missing:
        raise NotMeasured(f"perceptron.json has no method(s) {missing}")
    field = "steps_to_rule_final" if all("steps_to_rule_final" in methods[m] for m in PERCEPTRON_METHODS) \
        else "steps_to_asymptote"
    steps = {}
    for m in PERCEPTRON_METHODS:
        v = methods[m].get(field)
        steps[m] = math.inf if v is None and field == "steps_to_rule_final" else _field(methods[m], field, "perceptron")
    held = [a for a, b in S4_ORDER if steps[a] < steps[b]]
    shown = ", ".join(f"{m.replace('_', ' ')} {'never' if math.isinf(steps[m]) else f'{steps[m]:g}'}"
                      for m in sorted(steps, key=steps.get))
    what = ("steps until the smoothed error reaches the rule's final error" if field == "steps_to_rule_final"
            else "steps to asymptote")
    finals = ", ".join(f"{m.replace('_', ' ')} {methods[m]['final_percent_error']:.3g}%"
                       for m in PERCEPTRON_METHODS if isinstance(methods[m].get("final_percent_error"), (int, float)))
    note = f"{what}; {len(held)} of {len(S4_ORDER)} orderings hold" + (f"; final error: {finals}" if finals else "")
    return Measured(len(held) / len(S4_ORDER), shown, note)


# Cross-experiment claims --------------------------------------------------------------------
def faster_10x(field: str = "speedup_paper_style_median"):
    """The smallest median speedup (``field``) over the DE optimizers and MNIST."""
    def extract(results):
        speeds = []
        for opt in DE_TABLE1:
            row, _ = _de_row(results, opt)
            speeds.append((f"DE solver, {opt}", _speedup(row, field, "de-solver")[0]))
        row, _ = _mnist_row(results)
        speeds.append(("MNIST, Adadelta", _speedup(row, field, "mnist")[0]))
        name, v = min(speeds, key=lambda s: s[1])
        return Measured(v, _x(v), f"smallest of {len(speeds)}: {name}")
    return extract


def _claims() -> tuple[Claim, ...]:
    out = []
    for opt, (succ, teq, speed) in DE_TABLE1.items():
        k = opt.lower()
        out += [
            Claim(f"de-{k}-success", f"Table 1, {opt}", "success rate (share of inits with T_eq/T > 0)",
                  f"{succ}%", float(succ), "success rate", ("de-solver",), de_success(opt), "de_solver"),
            Claim(f"de-{k}-teq", f"Table 1, {opt}", "median T_eq/T",
                  f"{teq:.2f}", teq, "T_eq/T", ("de-solver",), de_teq(opt), "de_solver"),
            Claim(f"de-{k}-speedup", f"Table 1, {opt}", "median speedup",
                  f"{speed}x", float(speed), "speedup", ("de-solver",), de_speedup(opt), "de_solver"),
        ]
    succ, teq, speed = MNIST_TABLE2
    out += [
        Claim("mnist-success", "Table 2", "success rate (share of inits with T_eq/T > 0)",
              f"{succ}%", float(succ), "success rate", ("mnist",), mnist_success, "mnist"),
        Claim("mnist-teq", "Table 2", "median T_eq/T (T = 2 epochs)", f"{teq:.2f}", teq, "T_eq/T",
              ("mnist",), mnist_teq, "mnist"),
        Claim("mnist-speedup", "Table 2", "median speedup over Adadelta", f"{speed}x", float(speed), "speedup",
              ("mnist",), mnist_speedup, "mnist"),
        Claim("de-error-ratio", "Sec. 4.2, Fig. 2e", "median prediction error / median true weight change "
              "(10 best networks)", "0.0044", 0.0044, "error ratio", ("de-solver",),
              de_error_ratio, "de_solver"),
        Claim("perceptron-s4", "Supp. S8, Fig. S4d", "every Koopman variant reaches asymptotic performance "
              "before the rule, Single Weight first",
              "single weight < node, network < rule", None, "ordering", ("perceptron",),
              perceptron_ordering, "perceptron"),
        Claim("abstract-10x", "Abstract", "more than 10x faster than Adam, Adagrad, Adadelta "
              "(timed as the paper did)", "> 10x", 10.0, "10x",
              ("de-solver", "mnist"), faster_10x("speedup_paper_style_median"), "cost"),
        Claim("abstract-10x-fast-loop", "Abstract", "more than 10x faster, timed against an optimizer loop "
              "without per-step overhead", "> 10x", 10.0, "10x",
              ("de-solver", "mnist"), faster_10x("speedup_fast_loop_median"), "cost"),
        Claim("range-de", "Abstract, Sec. 4", "accurate over a non-trivial range of training time "
              "(DE solver)", f"T = {DE_T} steps", None, "range", ("de-solver",), de_range, "de_solver"),
        Claim("range-mnist", "Abstract, Sec. 5", "accurate over a non-trivial range of training time "
              "(MNIST)", f"T = {MNIST_T} epochs", None, "range", ("mnist",), mnist_range, "mnist"),
        Claim("replication-divergence", "Rao (2024), replication", "Koopman test loss after 2 epochs far above "
              "Adadelta's (its settings, full-node operators)",
              "about 1.0 vs 0.2 (about 5x)", None, "divergence", ("mnist",), mnist_divergence("node"), "divergence"),
        Claim("replication-divergence-layer", "Rao (2024), replication", "the same, layer-wise operators",
              "about 0.40 vs 0.2 (about 2x)", None, "divergence", ("mnist",), mnist_divergence("layer"),
              "divergence"),
    ]
    return tuple(out)


CLAIMS: tuple[Claim, ...] = _claims()


# -- the two fits ---------------------------------------------------------------------------
#: every claim is measured twice: with the paper's fit and with the library's default
#: (:data:`koopman_lib.fit.FITS`); results rows say which in their ``fit`` key
SCORE_FITS = ("paper", "default")
#: the replication's rows with its own fit (JAX's float32 pinv) stand for the paper column
REPLICATION_FIT = "replication"


def select_fit(results: Mapping[str, dict | None], fit: str) -> dict[str, dict | None]:
    """The results as one fit sees them: ``table`` rows with ``fit == fit`` (rows without the key
    are the paper's fit, as in files written before the key existed), ``replication`` rows with
    that fit (the paper column: the replication's own fit), and for the perceptron the ``table``
    instead of its paper-fit ``methods`` summary. Other keys are kept; with ``fit="paper"`` a file
    without ``fit`` keys is returned unchanged."""
    out: dict[str, dict | None] = {}
    rep_fit = REPLICATION_FIT if fit == "paper" else fit
    for name, res in results.items():
        if not res:
            out[name] = res
            continue
        res = dict(res)
        if isinstance(res.get("table"), list):
            res["table"] = [r for r in res["table"] if r.get("fit", "paper") == fit]
        if isinstance(res.get("replication"), list):
            res["replication"] = [r for r in res["replication"] if r.get("fit", REPLICATION_FIT) == rep_fit]
        if fit != "paper":
            res.pop("methods", None)
            by_fit = res.get("error_ratio_median_by_fit")
            res["error_ratio_median"] = by_fit.get(fit) if isinstance(by_fit, dict) else None
        out[name] = res
    return out


def why_differs(paper_fit: Measured | None, default_fit: Measured | None, bases: tuple[str, str] = ("", ""),
                verdicts: tuple[str, str] = ("", "")) -> str:
    """One sentence for a claim whose two verdicts differ: both values, and why. ``bases``: the
    run each verdict comes from (paper-fit, default-fit); ``verdicts``: the two verdicts."""
    if paper_fit is None or default_fit is None:
        which = "the default fit" if default_fit is None else "the paper's fit"
        return f"Not measured with {which} in these results."
    both = f"With the paper's fit {paper_fit.shown}, with the default {default_fit.shown}"
    if bases[0] != bases[1]:
        return (f"{both}, but from different runs ({bases[0]} vs {bases[1]}): the saved full-scale run has no "
                f"rows for the default fit yet, so the two verdicts are not yet comparable.")
    rank = {REPRODUCED: 2, PARTLY: 1, NOT_REPRODUCED: 0}
    if rank.get(verdicts[1], -1) > rank.get(verdicts[0], -1):
        return (f"{both}. The paper's cutoff inverts singular values below the resolution of the recorded weights, "
                f"which become eigenvalues outside the unit circle; the default does not invert them "
                f"({paper_fit.note}; with the default: {default_fit.note}).")
    return (f"{both}. The default drops the directions below the resolution of the recorded weights that the "
            f"paper's fit inverts; here those directions carried part of the optimizer's progress, so the "
            f"default keeps up for a shorter time ({default_fit.note}).")


# -- evaluation -------------------------------------------------------------------------------
def measure(claim: Claim, results: Mapping[str, dict | None]) -> tuple[Measured | None, str]:
    """``(Measured, "")`` or ``(None, why not)``."""
    missing = [n for n in claim.needs if not results.get(n)]
    if missing:
        return None, "no " + ", ".join(f"{n}.json" for n in missing)
    try:
        return claim.extract(results), ""
    except NotMeasured as e:
        return None, str(e)


def evaluate(ours: Mapping[str, dict | None], saved_paper: Mapping[str, dict | None],
             claims: tuple[Claim, ...] = CLAIMS) -> list[dict]:
    """One row per claim: the paper's value, ours from ``ours`` (this build's results, e.g.
    profile ci) and from ``saved_paper`` (the saved full-scale runs), and the verdict.

    The verdict comes from the saved full-scale run where it measures the claim, otherwise
    from this build's results (``basis`` says which)."""
    rows = []
    fitted = {f: (select_fit(ours, f), select_fit(saved_paper, f)) for f in SCORE_FITS}
    for c in claims:
        rule = RULES[c.rule]
        m_ours, why_ours = measure(c, fitted["paper"][0])
        m_paper, why_paper = measure(c, fitted["paper"][1])
        v_ours = rule.verdict(m_ours.value if m_ours else None, c.paper_value)
        v_paper = rule.verdict(m_paper.value if m_paper else None, c.paper_value)
        if m_paper is not None:
            verdict, basis, note = v_paper, "paper profile", m_paper.note
        elif m_ours is not None:
            verdict, basis, note = v_ours, "this build", m_ours.note
        else:
            verdict, basis, note = NOT_MEASURED, "", why_ours
        rows.append({
            "key": c.key, "where": c.where, "claim": c.statement, "paper": c.paper, "rule": c.rule,
            "chapter": c.chapter,
            "ours": m_ours.shown if m_ours else None, "ours_value": m_ours.value if m_ours else None,
            "ours_verdict": v_ours, "ours_missing": why_ours,
            "paper_profile": m_paper.shown if m_paper else None,
            "paper_profile_value": m_paper.value if m_paper else None,
            "paper_profile_verdict": v_paper, "paper_profile_missing": why_paper,
            "verdict": verdict, "basis": basis, "note": note,
            **_default_columns(c, rule, fitted["default"], m_paper or m_ours, verdict, basis),
        })
    return rows


def _default_columns(c: Claim, rule: Rule, results: tuple, paper_fit: Measured | None, verdict: str,
                     paper_basis: str = "") -> dict:
    """The claim measured with the library's default fit, by the same rule and the same basis
    (the saved full-scale run where it measures the claim, else this build)."""
    ours, saved = results
    m_ours, why_ours = measure(c, ours)
    m_saved, _ = measure(c, saved)
    m, basis = (m_saved, "paper profile") if m_saved is not None else (m_ours, "this build") if m_ours else \
        (None, "")
    v = rule.verdict(m.value if m else None, c.paper_value)
    return {"default_ours": m_ours.shown if m_ours else None, "default_ours_value": m_ours.value if m_ours else None,
            "default_paper_profile": m_saved.shown if m_saved else None,
            "default_paper_profile_value": m_saved.value if m_saved else None,
            "default_shown": m.shown if m else None, "default_value": m.value if m else None,
            "default_verdict": v, "default_basis": basis, "default_note": m.note if m else why_ours,
            "differs_why": why_differs(paper_fit, m, (paper_basis, basis), (verdict, v)) if v != verdict else ""}


def counts(rows: list[dict], key: str = "verdict") -> dict[str, int]:
    """How many claims got each verdict (``key="default_verdict"``: with the default fit)."""
    return {v: sum(r[key] == v for r in rows) for v in VERDICTS}


# -- loading (read-only) ----------------------------------------------------------------------
def load_results(results_dir, profile: str | None = None,
                 names: tuple[str, ...] = EXPERIMENT_NAMES) -> dict[str, dict | None]:
    """``{name: results dict or None}`` from ``results_dir/<name>.json``; never runs anything.

    A file made at another profile than ``profile`` (when given) counts as missing."""
    d = resolve(results_dir)
    out: dict[str, dict | None] = {}
    for name in names:
        p = Path(d) / f"{name}.json"
        res = results_io.load_results(p, name) if p.is_file() else None
        if res is not None and profile is not None and res.get("provenance", {}).get("profile") != profile:
            res = None
        out[name] = res
    return out


def is_stale(name: str, results: dict | None) -> bool | None:
    """True when ``results`` were made with another config than the experiment's current
    profile config; ``None`` when that cannot be told (no results, no module)."""
    if not results:
        return None
    prov = results.get("provenance", {})
    try:
        from .experiments import config_for
        cfg = config_for(name, prov.get("profile"))
    except (ValueError, ModuleNotFoundError, ImportError):
        return None
    return prov.get("config") != to_jsonable(dataclasses.asdict(cfg))


# -- presentation -----------------------------------------------------------------------------
def _cell(x) -> str:
    return "" if x is None else str(x).replace("|", "\\|").replace("\n", " ")


def rules_markdown() -> str:
    lines = ["| rule | verdict from our value |", "|---|---|"]
    lines += [f"| {_cell(r.key)} | {_cell(r.text)} |" for r in RULES.values()]
    return "\n".join(lines)


def table_markdown(rows: list[dict], ours_label: str = "ours (ci)", chapters: Mapping[str, str] | None = None,
                   name: Callable[[dict], str] | None = None) -> str:
    """The scorecard as a markdown table. ``chapters`` maps a chapter name to a link
    target; claims whose chapter is in it get a link. ``name(row)``: the claim's label
    (default: its full statement)."""
    head = ["claim", "paper", "ours, paper's fit", "verdict", "ours, library's default fit", "verdict", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    label = ours_label.replace("ours ", "").strip("()") or "this build"

    def value(paper_profile, build):
        """The full-scale value, with this build's in brackets."""
        if paper_profile is None:
            return f"{build} ({label})" if build is not None else "not measured"
        return f"{paper_profile} ({label}: {build if build is not None else 'not measured'})"

    for r in rows:
        where = r["where"]
        if chapters and r["chapter"] in chapters:
            where = f"[{where}]({chapters[r['chapter']]})"
        claim = f"**{_cell(where)}**: {_cell(name(r) if name else r['claim'])}"
        verdict = f"**{r['verdict']}**" + (f" ({r['basis']})" if r["basis"] else "")
        default = value(r.get("default_paper_profile"), r.get("default_ours"))
        d_verdict = f"**{r.get('default_verdict', NOT_MEASURED)}**" + \
            (f" ({r['default_basis']})" if r.get("default_basis") else "")
        note = f"rule: {r['rule']}. {r['note']}" + \
            (f" *Why the verdicts differ:* {r['differs_why']}" if r.get("differs_why") else "")
        lines.append("| " + " | ".join(_cell(x) for x in (claim, r["paper"], value(r["paper_profile"], r["ours"]),
                                                          verdict, default, d_verdict, note)) + " |")
    return "\n".join(lines)
