"""The book's answer, first: a short text the front page opens with, computed from the verdicts
and intervals of :func:`koopman_repro.scorecard.evaluate` (no number typed in): per experiment,
whether Koopman training keeps up with the optimizer at the paper's horizon (the paper's fit and
the library's default), how far it goes, whether it is faster, what state the networks were in,
and how sure the verdicts are."""
from __future__ import annotations

from typing import Mapping

from ..report import INCONCLUSIVE, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED
from .evaluation import counts
from .measure_de_solver import DE_T, DE_TABLE1, ode_state
from .measure_mnist import MNIST_T
from .reading import NotMeasured
from .null_model import NOT_SAVED, NULL_MODEL_DETERMINISTIC
from .rules import NULL_MODEL_PENDING
from .tables import bound_text
from .thresholds import DE_ENERGY_LOST, DE_NOT_SOLVED

#: the two fits as the answer names them: (prefix of a row's fields, name)
FITS = (("", "the paper's fit"), ("default_", "the library default"))


def _value(r: Mapping, prefix: str) -> str:
    """A row's deciding value with its 95% interval in brackets, for fit ``prefix``."""
    shown = r[f"{prefix}shown"] if prefix else (r["paper_profile"] if r["basis"] == "paper profile" else r["ours"])
    if shown is None:
        return NOT_MEASURED
    low, high = r[f"{prefix}ci_low"], r[f"{prefix}ci_high"]
    of = " of T" if r["rule"] == "range" else ""
    return shown + (f" [{bound_text(r['rule'], low)}-{bound_text(r['rule'], high)}{of}]" if low is not None else "")


def _by_verdict(rows: list[Mapping], prefix: str) -> str:
    """``"reproduced for Adam, Adadelta; inconclusive for Adagrad"``: DE rows named by optimizer."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(r[f"{prefix}verdict"], []).append(r["key"].split("-")[1].capitalize())
    return "; ".join(f"{v} for {', '.join(names)}" for v, names in groups.items())


def ode_sentence(ode: dict | None) -> str:
    """What state the DE networks were in against the reference solution (rules in thresholds)."""
    if ode is None:
        return "Their ODE check is not in the results."
    solved = "had **not** solved" if DE_NOT_SOLVED.holds(ode["median_error"], of=ode["amplitude"]) else "had solved"
    drift = (f", energy drift {ode['median_drift']:.3g} of {ode['energy0']:.3g}"
             if DE_ENERGY_LOST.holds(ode["median_drift"], of=ode["energy0"]) else "")
    return (f"Its {ode['n']} networks {solved} the ODE (median largest error {ode['median_error']:.3g}, amplitude "
            f"{ode['amplitude']:.3g}{drift}).")


def de_paragraph(k: Mapping[str, Mapping], ode: dict | None) -> str:
    teq = [k[f"de-{o.lower()}-teq"] for o in DE_TABLE1]
    fast = [k[f"de-{o.lower()}-speedup"] for o in DE_TABLE1]
    keeps = "; ".join(f"{name}: {_by_verdict(teq, p)}" for p, name in FITS)
    far = ", ".join(f"{_value(k['range-de'], p)} ({name})" for p, name in FITS)
    return (f"**DE solver** (T = {DE_T} steps). Keeps up? {keeps}. Longest T kept: {far}. "
            f"Speedups: {_by_verdict(fast, '')}. " + ode_sentence(ode))


def null_clause(r: Mapping, prefix: str) -> str:
    """A row's null readings for fit ``prefix`` in a few words: ``"test loss better (+0.01), T_eq/T
    indistinguishable (-0.002)"`` (the measure up to its horizon, the reading's first word, the paired
    median improvement; the intervals are in the claim's notes), or :data:`~.null_model.NOT_SAVED`."""
    readings = r.get(f"{prefix}null_readings") or []
    if not readings:
        return NOT_SAVED
    return ", ".join(f"{x['measure'].split(' after ')[0].split(' at ')[0]} {x['reading'].split()[0]}"
                     + (f" ({x['value']:+.2g})" if x["value"] is not None else "") for x in readings)


def mnist_paragraph(k: Mapping[str, Mapping]) -> str:
    keeps = "; ".join(f"{name}: {k['mnist-teq'][f'{p}verdict']}, T_eq/T {_value(k['mnist-teq'], p)}"
                      for p, name in FITS)
    far = ", ".join(f"{_value(k['range-mnist'], p)} ({name})" for p, name in FITS)
    noise = {name: null_clause(k["mnist-teq"], p) for p, name in FITS}
    against = NOT_SAVED if set(noise.values()) == {NOT_SAVED} else "; ".join(f"{n}: {c}" for n, c in noise.items())
    return (f"**MNIST** (T = {MNIST_T} epochs). Keeps up? {keeps}. Longest T kept: {far}. Speedup: "
            + ", ".join(f"{_value(k['mnist-speedup'], p)} {k['mnist-speedup'][f'{p}verdict']}" for p, _ in FITS)
            + f". Against the optimizer against itself (paired per network): {against}.")


def other_paragraph(k: Mapping[str, Mapping]) -> str:
    ten = ", ".join(f"{k[c]['verdict']} ({_value(k[c], '')})" for c in ("abstract-10x", "abstract-10x-fast-loop"))
    rep = ", ".join(k[c]["verdict"] + (" (no per-network data)" if k[c]["no_interval"] else "")
                    for c in ("replication-divergence", "replication-divergence-layer"))
    return (f"**Over 10x faster** (paper's timing, fast loop): {ten}. **Perceptron ordering**: "
            f"{k['perceptron-s4']['verdict']}. **The replication's divergence** (*reproduced* = Koopman training "
            f"fails): {rep}.")


def sureness(rows: list[Mapping]) -> str:
    """How sure: the verdicts of the paper's claims and of the replication's findings, counted apart."""
    def line(source):
        c = counts(list(rows), source=source)
        return (f"{c[REPRODUCED]} reproduced, {c[INCONCLUSIVE]} inconclusive, {c[NOT_REPRODUCED]} not reproduced"
                + (f", {c[NOT_MEASURED]} not measured" if c[NOT_MEASURED] else ""))
    return (f"**How sure.** 95% intervals over networks. The paper's claims (its fit): {line('paper')}; the "
            f"replication's findings: {line('replication')}. " + noise_sentence(rows))


def noise_sentence(rows: list[Mapping]) -> str:
    """The noise floor (the optimizer against itself): for how many claims it is measured, needs no
    run (deterministic training: the intervals carry it), is not in the saved run the verdict comes
    from, or is not measured yet."""
    measured = [r["key"] for r in rows if r.get("null_readings")]
    deterministic = sum(r["null_model"] == NULL_MODEL_DETERMINISTIC for r in rows)
    not_saved = sum(r["null_model"].endswith(NOT_SAVED) for r in rows)
    pending = sum(r["null_model"] == NULL_MODEL_PENDING for r in rows)
    return (f"The optimizer against itself (its own noise): measured for {len(measured)} claim(s)"
            + (f" ({', '.join(measured)})" if measured else "")
            + f", carried by the intervals for {deterministic} (deterministic training)"
            + (f", {NOT_SAVED} for {not_saved}" if not_saved else "")
            + (f", not measured yet for {pending}" if pending else "") + ".")


def answer_markdown(rows: list[Mapping], ode: dict | None) -> str:
    """The answer (Markdown, one paragraph per experiment) from ``evaluate`` rows and the DE
    networks' :func:`~koopman_repro.scorecard.measure_de_solver.ode_state` (``None``: not in the results)."""
    k = {r["key"]: r for r in rows}
    return "\n\n".join([de_paragraph(k, ode), mnist_paragraph(k), other_paragraph(k), sureness(rows)])


def front_page_answer(ours: Mapping[str, dict | None], saved: Mapping[str, dict | None], rows: list[Mapping]) -> str:
    """:func:`answer_markdown` with the ODE state of the run the DE verdicts come from (the saved
    full-scale run where there is one, else this build)."""
    for results in (saved, ours):
        try:
            return answer_markdown(rows, ode_state(results))
        except NotMeasured:
            continue
    return answer_markdown(rows, None)
