"""The scorecard's rules: how a claim's measured value becomes a verdict (:data:`RULES`), and the
loss comparison every chapter prints (:func:`compare_loss`)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..report import NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED

VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_MEASURED)


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
            return self._grade(abs(ours - paper), lambda d, limit: d <= limit)
        if self.kind == "factor":
            if ours <= 0:
                return NOT_REPRODUCED
            return self._grade(max(ours / paper, paper / ours), lambda f, limit: f <= limit)
        if self.kind == "at_least":
            return self._grade(ours, lambda x, limit: x >= limit)
        if self.kind == "not_below":
            return self._grade(ours, lambda x, limit: x >= paper - limit)
        if self.kind == "factor_below":
            return self._grade(ours, lambda x, limit: x >= paper / limit)
        if self.kind == "at_most":
            return self._grade(ours, lambda x, limit: x <= limit)
        if self.kind == "fraction":
            return self._grade(ours, lambda x, limit: x >= limit * paper)
        raise ValueError(f"unknown rule kind {self.kind!r}")

    def _grade(self, x: float, within) -> str:
        """Reproduced if ``within(x, reproduced)``, partly if ``within(x, partly)``, else not reproduced."""
        return REPRODUCED if within(x, self.reproduced) else PARTLY if within(x, self.partly) else NOT_REPRODUCED


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
