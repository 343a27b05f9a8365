"""The perceptron's claim (Fig. S4 of the supplement: the order in which the methods reach
asymptotic performance), measured from ``perceptron.json``."""
from __future__ import annotations

import math

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
    return Measured(len(held) / len(S4_ORDER), shown, note)
