"""The scorecard's rules: how a claim's measured value and its interval over networks become a
three-way verdict by equivalence (:data:`RULES`), and the loss comparison every chapter prints
(:func:`compare_loss`)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from koopman_lib.metrics import Interval

from ..report import INCONCLUSIVE, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED

#: the scorecard's verdicts, in order of agreement
VERDICTS = (REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED, NOT_MEASURED)

#: what a claim whose null model (the optimizer against itself, issue 23 item 1) is still to be
#: run shows in its place: a named field, never a value
NULL_MODEL_PENDING = "null model: not measured yet"


@dataclass(frozen=True)
class Rule:
    """How a measured value with its interval over networks becomes a verdict, by equivalence.

    A claim says that Koopman training does at least (``side="at_least"``) or at most
    (``"at_most"``) this well. Its *bound* is the paper's value moved by the ``tolerance`` on the
    rule's ``scale``: ``"points"`` (``paper - tolerance``, at most: ``paper + tolerance``),
    ``"factor"`` (``paper / tolerance``, at most: ``paper * tolerance``) or ``"level"`` (the
    tolerance itself, for claims whose own words fix the bound). A value is *within* when it is on
    the claim's side of the bound, the bound included (``>=``, at most: ``<=``).

    :meth:`verdict`: *reproduced* when both ends of the interval are within; *not reproduced* when
    neither is; *inconclusive* otherwise, and for a value without an interval (the results keep no
    per-network data for it); *not measured* without a value. ``why`` says in one line why the
    tolerance is what it is, argued from the claim's meaning before any result was read.

    >>> r = Rule("r", "at_least", "points", 10.0, "", "")
    >>> r.verdict(Interval(80.0, 25, 74.0, 90.0), 84.0), r.verdict(Interval(80.0, 25, 70.0, 90.0), 84.0)
    ('reproduced', 'inconclusive')
    """

    key: str
    side: str
    scale: str
    tolerance: float
    text: str
    why: str

    def __post_init__(self):
        if self.side not in ("at_least", "at_most") or self.scale not in ("points", "factor", "level"):
            raise ValueError(f"unknown side {self.side!r} or scale {self.scale!r}")

    def bound(self, paper: float | None = None) -> float:
        """The value a measurement must reach (at least) or stay under (at most)."""
        if self.scale == "level":
            return self.tolerance
        up = self.side == "at_most"
        if self.scale == "points":
            return paper + self.tolerance if up else paper - self.tolerance
        return paper * self.tolerance if up else paper / self.tolerance

    def within(self, x: float, paper: float | None = None) -> bool:
        """``x`` on the claim's side of :meth:`bound`, the bound included."""
        b = self.bound(paper)
        return x >= b if self.side == "at_least" else x <= b

    def verdict(self, measured: Interval | None, paper: float | None = None) -> str:
        """The three-way verdict on ``measured`` (value and interval), see the class docstring."""
        if measured is None or measured.value is None or not math.isfinite(measured.value):
            return NOT_MEASURED
        if measured.ci_low is None or measured.ci_high is None:
            return INCONCLUSIVE
        ends = [self.within(x, paper) for x in (measured.ci_low, measured.ci_high)]
        return REPRODUCED if all(ends) else NOT_REPRODUCED if not any(ends) else INCONCLUSIVE


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


#: what the composite claims (ordering, 10x, range, divergence) do with the old "partly"
COMPOSITE = ("a composite claim is reproduced only when all its parts hold over the whole interval (networks "
             "resampled, the whole claim recomputed); the old 'partly' verdict is retired: how many parts hold is "
             "the measured value itself")

RULES: dict[str, Rule] = {r.key: r for r in (
    Rule("success rate", "at_least", "points", 10.0,
         "share of networks with T_eq > 0 (Wilson 95% interval, in %) at least the paper's minus 10 percentage points",
         "10 points is 2.5 of the paper's 25 networks: less does not change 'most initialisations improve', "
         "more is another result"),
    Rule("T_eq/T", "at_least", "points", 0.10,
         "median T_eq/T (bootstrap 95% interval over networks) at least the paper's minus 0.10",
         "a tenth of T: the jump still stands for nine tenths of the optimizer's steps the paper reports, which is "
         "still 'matching the optimizer'"),
    Rule("speedup", "at_least", "factor", 2.0,
         "median speedup over the improved networks, timed as the paper did (bootstrap 95% interval), at least "
         "half the paper's",
         "timings move by about a factor 2 with the machine, its load and the implementation; a larger shortfall "
         "changes the size of the claim"),
    Rule("error ratio", "at_most", "level", 0.01,
         "median |error| / median |true evolution| (10 best networks) at most 0.01",
         "the paper's own words: the error is two orders of magnitude below the weights' change"),
    Rule("ordering", "at_least", "level", 1.0,
         "the share of the paper's pairwise orderings that hold is 1 (all) over the whole interval; " + COMPOSITE,
         "an ordering holds or not: the claim is all of them, so no tolerance below all"),
    Rule("10x", "at_least", "level", 10.0,
         "the smallest median speedup over every optimizer and both networks at least 10; " + COMPOSITE,
         "the claim's own number: 'more than 10x' leaves no tolerance below 10"),
    Rule("range", "at_least", "level", 1.0,
         f"the longest Koopman phase T tested over which every optimizer's median T_eq/T stays >= {KEEPS_UP}, "
         "divided by the paper's T, at least 1; " + COMPOSITE,
         "the paper demonstrated its own T: keeping up over less of it than the paper showed is not the claim"),
    Rule("divergence", "at_least", "level", 1.0,
         "under the replication's settings, two parts (koopman_repro.scorecard.divergence_parts): (1) the Koopman "
         "test loss grows over the Koopman phase (median over the networks of its loss after 2 epochs divided "
         "by its own value at the start above 1) and (2) it ends above Adadelta's median test loss; both hold "
         "over the whole interval; " + COMPOSITE,
         "the replication's finding is both parts: a loss that grows but stays below Adadelta's is not divergence"),
)}
