"""The perceptron's claim (Fig. S4 of the supplement: the order in which the methods reach
asymptotic performance), measured from ``perceptron.json``."""
from __future__ import annotations

import math

from koopman_lib.metrics import Interval

from .reading import Measured, NotMeasured, need, number, table_rows

NAME = "perceptron"
PERCEPTRON_METHODS = ("rule", "single_weight", "node", "network")
#: the paper's claims as pairs (a, b): method a reaches asymptotic performance in fewer steps than b
S4_ORDER = (("single_weight", "rule"), ("node", "rule"), ("network", "rule"),
            ("single_weight", "node"), ("single_weight", "network"))


def perceptron_ordering(results):
    """Share of the paper's orderings that hold. A method "reaches asymptotic performance" at
    ``steps_to_rule_final``: the first step whose smoothed error is within tolerance of the
    rule's final error (``None``: never, which counts as last)."""
    methods = {r.method: r for r in table_rows(need(results, NAME), NAME, "table")}
    missing = [m for m in PERCEPTRON_METHODS if m not in methods]
    if missing:
        raise NotMeasured(f"perceptron.json has no method(s) {missing}")
    steps = {}
    for m in PERCEPTRON_METHODS:
        v = methods[m].steps_to_rule_final
        steps[m] = math.inf if v is None else number(v, "steps_to_rule_final", NAME, methods[m])
    held = [a for a, b in S4_ORDER if steps[a] < steps[b]]
    shown = ", ".join(f"{m.replace('_', ' ')} {'never' if math.isinf(steps[m]) else f'{steps[m]:g}'}"
                      for m in sorted(steps, key=steps.get))
    finals = ", ".join(f"{m.replace('_', ' ')} {methods[m].final_percent_error:.3g}%"
                       for m in PERCEPTRON_METHODS if isinstance(methods[m].final_percent_error, (int, float)))
    note = (f"steps until the smoothed error reaches the rule's final error; {len(held)} of {len(S4_ORDER)} "
            "orderings hold" + (f"; final error: {finals}" if finals else ""))
    iv, why = ordering_bounds(methods, len(held) / len(S4_ORDER), need(results, NAME))
    return Measured(len(held) / len(S4_ORDER), shown, note, iv, why)


def pair_shares(methods: dict) -> list[float | None]:
    """Per pair of :data:`S4_ORDER`, the share of the experiment's bootstrap resamples (of the
    simulations) in which it held: 1 or 0 where the stored shares tell, else ``None``."""
    def p(m, field):
        return getattr(methods[m], field)
    out = []
    for a, b in S4_ORDER:
        if b == "rule":
            out.append(p(a, "p_sooner_than_rule"))
        elif p(a, "p_soonest") == 1.0:      # a strictly before every other Koopman variant
            out.append(1.0)
        else:
            out.append(0.0 if p(b, "p_soonest") == 1.0 else None)
    return out


def ordering_bounds(methods: dict, value: float, results: dict) -> tuple[Interval | None, str]:
    """Bounds on the share of orderings that hold over the experiment's own bootstrap of the
    simulations: the pairs that held in every resample, and all but those that held in none.
    Every resample's share lies between them, so they cover its percentile interval."""
    shares = pair_shares(methods)
    if all(s is None for s in shares):
        return None, ("perceptron.json keeps no bootstrap shares (run with bootstrap > 0) and no per-simulation "
                      "steps")
    n = len(S4_ORDER)
    low = sum(s == 1.0 for s in shares) / n
    high = (n - sum(s == 0.0 for s in shares)) / n
    sims = results.get("provenance", {}).get("config", {}).get("n_sims", 0)
    return Interval(value, int(sims or 0), min(low, value), max(high, value)), ""
