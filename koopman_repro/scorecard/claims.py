"""The paper's quantitative claims (:data:`CLAIMS`): where each is made, its value, the results
files it is measured from, the measurement function and the rule that gives its verdict."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .measure_de_solver import DE_T, DE_TABLE1, de_error_ratio, de_range, de_speedup, de_success, de_teq
from .measure_mnist import (MNIST_T, MNIST_TABLE2, mnist_divergence, mnist_range, mnist_speedup, mnist_success,
                            mnist_teq)
from .measure_perceptron import perceptron_ordering
from .measure_speed import faster_10x
from .reading import Measured
from .null_model import (MNIST_NULL, MNIST_REPLICATION_NULL, NULL_MODEL_DETERMINISTIC, PERCEPTRON_NULL, NullReading,
                         mnist_null, mnist_null_over_horizons, perceptron_null, replication_null)


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
    source: str = "paper"       # "paper": the paper's claim; "replication": the replication's finding
    null_model: str = ""        # the static null-model text of a claim without ``null`` (NULL_MODEL_PENDING until
                                # it is run, NULL_MODEL_DETERMINISTIC where there is no noise to continue with)
    null: Callable[[Mapping[str, dict | None], str], list[NullReading]] | None = None  # (results, fit) -> readings
    null_what: str = ""         # what the null model is, in words


def mnist_null_at_paper_T(results: Mapping[str, dict | None], fit: str) -> list[NullReading]:
    """:func:`~.null_model.mnist_null` at the paper's horizon (Table 2's T)."""
    return mnist_null(results, fit, MNIST_T)


#: the Table 2 claims' null model (``null``, ``null_what``): the paper's networks at the paper's T
MNIST_NULL_MODEL = {"null": mnist_null_at_paper_T, "null_what": MNIST_NULL}


def _table1_claims() -> list[Claim]:
    out = []
    for opt, (succ, teq, speed) in DE_TABLE1.items():
        k = opt.lower()
        out += [
            Claim(f"de-{k}-success", f"Table 1, {opt}", "success rate (share of inits with T_eq/T > 0)",
                  f"{succ}%", float(succ), "success rate", ("de-solver",), de_success(opt), "de_solver",
                  null_model=NULL_MODEL_DETERMINISTIC),
            Claim(f"de-{k}-teq", f"Table 1, {opt}", "median T_eq/T",
                  f"{teq:.2f}", teq, "T_eq/T", ("de-solver",), de_teq(opt), "de_solver",
                  null_model=NULL_MODEL_DETERMINISTIC),
            Claim(f"de-{k}-speedup", f"Table 1, {opt}", "median speedup",
                  f"{speed}x", float(speed), "speedup", ("de-solver",), de_speedup(opt), "de_solver"),
        ]
    return out


def _other_claims() -> list[Claim]:
    succ, teq, speed = MNIST_TABLE2
    return [
        Claim("mnist-success", "Table 2", "success rate (share of inits with T_eq/T > 0)",
              f"{succ}%", float(succ), "success rate", ("mnist",), mnist_success, "mnist", **MNIST_NULL_MODEL),
        Claim("mnist-teq", "Table 2", "median T_eq/T (T = 2 epochs)", f"{teq:.2f}", teq, "T_eq/T",
              ("mnist",), mnist_teq, "mnist", **MNIST_NULL_MODEL),
        Claim("mnist-speedup", "Table 2", "median speedup over Adadelta", f"{speed}x", float(speed), "speedup",
              ("mnist",), mnist_speedup, "mnist"),
        Claim("de-error-ratio", "Sec. 4.2, Fig. 2e", "median prediction error / median true weight change "
              "(10 best networks)", "0.0044", 0.0044, "error ratio", ("de-solver",),
              de_error_ratio, "de_solver"),
        Claim("perceptron-s4", "Supp. S8, Fig. S4d", "every Koopman variant reaches asymptotic performance "
              "before the rule, Single Weight first",
              "single weight < node, network < rule", None, "ordering", ("perceptron",),
              perceptron_ordering, "perceptron", null=perceptron_null,
              null_what=PERCEPTRON_NULL),
        Claim("abstract-10x", "Abstract", "more than 10x faster than Adam, Adagrad, Adadelta "
              "(timed as the paper did)", "> 10x", 10.0, "10x",
              ("de-solver", "mnist"), faster_10x("speedup_paper_style_median"), "cost"),
        Claim("abstract-10x-fast-loop", "Abstract", "more than 10x faster, timed against an optimizer loop "
              "without per-step overhead", "> 10x", 10.0, "10x",
              ("de-solver", "mnist"), faster_10x("speedup_fast_loop_median"), "cost"),
        Claim("range-de", "Abstract, Sec. 4", "accurate over a non-trivial range of training time "
              "(DE solver)", f"T = {DE_T} steps", None, "range", ("de-solver",), de_range, "de_solver",
              null_model=NULL_MODEL_DETERMINISTIC),
        Claim("range-mnist", "Abstract, Sec. 5", "accurate over a non-trivial range of training time "
              "(MNIST)", f"T = {MNIST_T} epochs", None, "range", ("mnist",), mnist_range, "mnist",
              null=mnist_null_over_horizons, null_what=MNIST_NULL),
        Claim("replication-divergence", "Rao (2024), replication", "Koopman test loss after 2 epochs far above "
              "Adadelta's (its settings, full-node operators)",
              "about 1.0 vs 0.2 (about 5x)", None, "divergence", ("mnist",), mnist_divergence("node"), "divergence",
              "replication", null=replication_null("node", MNIST_T), null_what=MNIST_REPLICATION_NULL),
        Claim("replication-divergence-layer", "Rao (2024), replication", "the same, layer-wise operators",
              "about 0.40 vs 0.2 (about 2x)", None, "divergence", ("mnist",), mnist_divergence("layer"),
              "divergence", "replication", null=replication_null("layer", MNIST_T), null_what=MNIST_REPLICATION_NULL),
    ]


CLAIMS: tuple[Claim, ...] = tuple(_table1_claims() + _other_claims())
