"""The second reading of a claim: Koopman training against the optimizer against itself (the null
model, issue 23 item 3).

Where a results file holds the null model (the optimizer continued from the same state with another
stream of randomness), each Koopman result the null model bears on gets a reading from a *paired*
comparison per network where the data allow (Koopman minus the null branch of the same network,
as an improvement: positive when Koopman training did better), its median with a bootstrap 95%
interval over networks; else at the level the data allow (the reading says which). The reading is
one of :data:`NULL_READINGS`: *better than* the optimizer's own noise when the whole interval is
above zero improvement, *worse than* when it is below, *indistinguishable from* it otherwise.

A claim without a null-model function keeps its static text
(:data:`~koopman_repro.scorecard.rules.NULL_MODEL_PENDING` or :data:`NULL_MODEL_DETERMINISTIC`); one
with a null-model function whose results file lacks the null model (an older saved run) says so
(:func:`not_saved_text`: never an error, never a value).

>>> null_word(0.1, 0.5), null_word(-0.5, -0.1), null_word(-0.1, 0.0)
('better than', 'worse than', 'indistinguishable from')
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from koopman_lib.metrics import Interval

from ..check_values import read_check_values
from .intervals import median
from .measure_mnist import MNIST_T, REPLICATION_CURVES, replication_curve
from .reading import NotMeasured, declared_rows, need

#: the three readings against the optimizer's own noise
BETTER, WORSE, INDISTINGUISHABLE = "better than", "worse than", "indistinguishable from"
NULL_READINGS = (BETTER, INDISTINGUISHABLE, WORSE)
#: the phrase each reading ends with
NOISE = "the optimizer's own noise"

#: what a claim of an experiment whose training is deterministic given the initialisation shows
#: instead of a null model: there is no other stream of randomness to continue with
NULL_MODEL_DETERMINISTIC = ("null model: none to run: the DE solver's training is deterministic given the "
                            "initialisation (full-batch loss on fixed points), so the optimizer's own noise is the "
                            "spread over networks alone, which the interval carries")


def null_word(ci_low: float | None, ci_high: float | None) -> str:
    """The reading of an improvement's interval: better than (``ci_low > 0``), worse than
    (``ci_high < 0``), else (zero inside, or no interval) indistinguishable from the noise."""
    if ci_low is None or ci_high is None:
        return INDISTINGUISHABLE
    return BETTER if ci_low > 0 else WORSE if ci_high < 0 else INDISTINGUISHABLE


@dataclass(frozen=True)
class NullReading:
    """One Koopman result against the null model: ``subject`` (the variant), ``measure`` (what is
    compared, with its units), ``level`` (``"paired per network"`` or the level the data allow, and
    why), the improvement's ``interval`` (value, n, 95% interval; ``None`` where the level gives
    none) and ``reading`` (one of :data:`NULL_READINGS`)."""

    subject: str
    measure: str
    level: str
    interval: Interval | None
    reading: str
    shown: str

    def as_dict(self) -> dict:
        iv = self.interval
        return {"subject": self.subject, "measure": self.measure, "level": self.level, "reading": self.reading,
                "value": iv.value if iv else None, "n": iv.n if iv else None,
                "ci_low": iv.ci_low if iv else None, "ci_high": iv.ci_high if iv else None, "shown": self.shown}


def paired_improvement(null: np.ndarray, koopman: np.ndarray, lower_is_better: bool = True) -> Interval:
    """The median over networks of Koopman's improvement over the null branch of the same network
    (``null - koopman`` for a loss or error, ``koopman - null`` otherwise) with its bootstrap 95%
    interval; networks where either value is missing (NaN) are left out."""
    null, koopman = np.asarray(null, dtype=float), np.asarray(koopman, dtype=float)
    diff = null - koopman if lower_is_better else koopman - null
    return median(diff[np.isfinite(diff)])


def paired_reading(subject: str, measure: str, null: np.ndarray, koopman: np.ndarray,
                   lower_is_better: bool = True) -> NullReading:
    """:func:`paired_improvement` as a :class:`NullReading` at the level ``"paired per network"``."""
    iv = paired_improvement(null, koopman, lower_is_better)
    word = null_word(iv.ci_low, iv.ci_high)
    shown = (f"{subject} {word} ({iv.value:+.3g} [{iv.ci_low:+.3g}, {iv.ci_high:+.3g}], n = {iv.n})"
             if iv.value is not None else f"{subject}: no paired networks")
    return NullReading(subject, measure, "paired per network", iv, word, shown)


def interval_reading(subject: str, measure: str, level: str, koopman: tuple[float, float],
                     null: tuple[float, float], lower_is_better: bool = True) -> NullReading:
    """A reading where the data give no pairs, only an interval for each side (e.g. a measure of
    the mean curve over networks, bootstrapped): better / worse when the intervals do not overlap
    (Koopman's wholly on the better side), else indistinguishable. A conservative test."""
    (k_low, k_high), (n_low, n_high) = koopman, null
    if lower_is_better:
        word = BETTER if k_high < n_low else WORSE if k_low > n_high else INDISTINGUISHABLE
    else:
        word = BETTER if k_low > n_high else WORSE if k_high < n_low else INDISTINGUISHABLE
    return NullReading(subject, measure, level, None, word,
                       f"{subject} {word} ({_span(koopman)} against {_span(null)})")


def _span(iv: tuple[float, float]) -> str:
    """``"876-952"``, ``"876-never"``, ``"never"``: an interval of steps (inf: never reached)."""
    ends = ["never" if math.isinf(x) else f"{x:g}" for x in iv]
    return "never" if ends == ["never", "never"] else "-".join(ends)


#: a claim's null-model reading where the results file it is read from lacks the null model
NOT_SAVED = "not in this saved run"


def not_saved_text(what: str) -> str:
    """The null-model field of a claim whose null model (``what``) the deciding results file lacks."""
    return f"null model ({what}): {NOT_SAVED}"


def null_text(readings: list[NullReading], what: str) -> str:
    """The claim's null-model field: ``what`` the null model is, then each reading (better than, worse
    than or indistinguishable from :data:`NOISE`) grouped by measure and level."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in readings:
        groups.setdefault((r.measure, r.level), []).append(r.shown)
    return (f"null model ({what}), Koopman training against {NOISE}: "
            + "; ".join(f"{m}, {lvl}: " + ", ".join(s) for (m, lvl), s in groups.items()))


# -- the perceptron ------------------------------------------------------------------------------
PERCEPTRON = "perceptron"
#: the Koopman variants and how the perceptron's readings name them
PERCEPTRON_VARIANTS = {"single_weight": "Single Weight", "node": "Node", "network": "Network"}
#: the per-simulation measure the perceptron stores for every method and for the null branch
MEAN_ERROR = "mean_percent_error_after_start"
#: beyond this many steps a method never reached the rule's final error (the bootstrap's ``never``)
NEVER = math.inf


def perceptron_null(results: Mapping[str, dict | None], fit: str) -> list[NullReading]:
    """The perceptron's Koopman variants (named fit ``fit``) against the rule continued from the
    Koopman start on other inputs (``perceptron.json`` ``null_model``, check values ``null:...``):
    the mean percent error after the start, paired per simulation; the steps to the rule's final
    error at the level of the mean curve over simulations (the measure is read off that curve,
    so there are no pairs: bootstrap intervals of both sides, not overlapping or not)."""
    res = need(results, PERCEPTRON)
    rows = declared_rows(res, PERCEPTRON, "null_model")
    if not rows:
        raise NotMeasured("perceptron.json has no null model")
    values = read_check_values(res)
    nets = sorted(values)

    def column(key):
        return np.array([np.nan if values[i].get(key) is None else values[i][key] for i in nets], dtype=float)
    null = column(f"null:{MEAN_ERROR}")
    out = [paired_reading(name, "mean percent error after the Koopman start (points)", null,
                          column(f"{m}/{fit}:{MEAN_ERROR}")) for m, name in PERCEPTRON_VARIANTS.items()
           if f"{m}/{fit}:{MEAN_ERROR}" in values.get(nets[0], {})] if nets else []
    by_fit = res.get("methods_by_fit", {}).get(fit, {})
    null_ci = rows[0].steps_to_rule_final_ci95
    for m, name in PERCEPTRON_VARIANTS.items():
        ci = (by_fit.get(m) or {}).get("steps_to_rule_final_ci95")
        if ci and null_ci:
            out.append(interval_reading(name, "steps to the rule's final error", "level of the mean curve (no pairs)",
                                        _steps(ci, res), _steps(null_ci, res)))
    if not out:
        raise NotMeasured("perceptron.json has a null model but no per-simulation values or intervals to compare")
    return out


def _steps(ci, res: dict) -> tuple[float, float]:
    """A bootstrap interval of steps, with a bound past the last step read as never reached."""
    last = res.get("provenance", {}).get("config", {}).get("steps", math.inf)
    return tuple(NEVER if x > last else float(x) for x in ci)


PERCEPTRON_NULL = "the rule continued from the Koopman start on other inputs"


# -- MNIST -----------------------------------------------------------------------------------------
MNIST = "mnist"
MNIST_NULL = "Adadelta continued from the same state at t2 with another minibatch order"
MNIST_REPLICATION_NULL = MNIST_NULL + ", on the replication's networks and settings"
#: the MNIST measures a reading can compare: name -> (the entry's field for a fit, for the branch, lower is better)
MNIST_MEASURES = {"test loss": ("koopman_loss", "null_loss", True), "T_eq/T": ("teq_over_t", "teq_over_t", False)}


def _measure_text(measure: str, T: int) -> str:
    """``"test loss after T = 2 epochs (NLL per image)"``, ``"T_eq/T at T = 2 epochs"``."""
    return f"test loss after T = {T} epochs (NLL per image)" if measure == "test loss" else f"{measure} at T = {T} epochs"


def _value(entry: dict | None, key: str) -> float:
    """``entry[key]`` as a float, NaN where the entry or the value is missing (a saved NaN is null)."""
    v = (entry or {}).get(key)
    return math.nan if v is None else float(v)


def mnist_null(results: Mapping[str, dict | None], fit: str, T: int | None = None,
               measures: tuple[str, ...] = tuple(MNIST_MEASURES)) -> list[NullReading]:
    """The MNIST paper-settings networks with fit ``fit`` against the optimizer against itself at
    horizon ``T`` epochs (default: the run's own T, else the paper's), paired per network (``members[i].null``): the
    ``measures`` of :data:`MNIST_MEASURES` (test loss at T, lower is better; T_eq/T, higher is better),
    medians of the paired improvement with bootstrap 95% intervals. Networks without the fit at ``T``
    (older files) count as missing; a measure no network has a finite value of (the test loss of a fit
    whose every rollout the guard stopped) is left out; :class:`NotMeasured` when no network has the null
    model at ``T`` or no measure is left."""
    res = need(results, MNIST)
    T = res.get("provenance", {}).get("config", {}).get("T_epochs", MNIST_T) if T is None else T
    members = [m for m in declared_rows(res, MNIST, "members") if m.null_at(T) is not None]
    if not members:
        raise NotMeasured(f"mnist.json has no optimizer against itself at T = {T} epochs")
    out = []
    for name in measures:
        k_key, n_key, lower = MNIST_MEASURES[name]
        koopman = np.array([_value((m.fits.get(fit) or {}).get(f"T{T}"), k_key) for m in members])
        if not np.isfinite(koopman).any():
            continue     # e.g. the test loss where the guard stopped every rollout (its T_eq/T is still read)
        out.append(paired_reading(f"{fit} fit", _measure_text(name, T),
                                  np.array([_value(m.null_at(T), n_key) for m in members]), koopman, lower))
    if not out:
        raise NotMeasured(f"mnist.json has no per-network rows of the {fit} fit at T = {T} epochs")
    return out


def mnist_null_horizons(results: Mapping[str, dict | None]) -> list[int]:
    """The horizons (epochs) at which the saved run holds the optimizer against itself."""
    members = declared_rows(need(results, MNIST), MNIST, "members")
    return sorted({int(k[1:]) for m in members for k in (m.null or {})})


def mnist_null_over_horizons(results: Mapping[str, dict | None], fit: str) -> list[NullReading]:
    """:func:`mnist_null` in T_eq/T at every horizon the saved run holds (the range of T the range
    claim reads)."""
    horizons = mnist_null_horizons(results)
    if not horizons:
        raise NotMeasured("mnist.json has no optimizer against itself")
    return [r for T in horizons for r in mnist_null(results, fit, T, ("T_eq/T",))]


#: the ``null_model`` table's setting of the replication's networks
REPLICATION_SETTING = "replication settings"


def replication_null(kind: str, T: int):
    """The replication's Koopman training with ``kind`` operators (``"node"``, ``"layer"``) against the
    optimizer against itself on the replication's networks at horizon ``T`` epochs: ``(results, fit) ->
    readings``, the test loss at T paired per network (the ``null_model`` row of
    :data:`REPLICATION_SETTING`: each network's branch; the Koopman curve of :data:`REPLICATION_CURVES`:
    the same networks in the same order). A network whose rollout the guard stopped before T has no
    Koopman loss and is left out, as in the table's own paired median."""
    def null(results: Mapping[str, dict | None], fit: str) -> list[NullReading]:
        res = need(results, MNIST)
        rows = [r for r in declared_rows(res, MNIST, "null_model")
                if r.setting == REPLICATION_SETTING and r.T_epochs == T]
        curve = replication_curve(res, kind, fit)
        S = res.get("steps_per_epoch")
        if not rows or not curve or not S or T * S not in list(curve["steps"]):
            raise NotMeasured(f"mnist.json has no optimizer against itself on the replication's networks beside "
                              f"its {kind} operators at T = {T} epochs")
        loss = np.asarray(curve["koopman_loss"], dtype=float)[:, list(curve["steps"]).index(T * S)]    # (E,)
        row = rows[0]
        koopman = np.array([loss[i] if i < len(loss) else math.nan for i in row.networks])
        return [paired_reading(f"{kind} operators", _measure_text("test loss", T), np.asarray(row.null_loss, float),
                               koopman)]
    return null
