"""The experiments by name: the one list (CLI, results files, staleness)."""
from __future__ import annotations

#: experiment name (CLI, results file) -> its module
EXPERIMENTS = {
    "perceptron": "koopman_repro.experiments.perceptron",
    "de-solver": "koopman_repro.experiments.de_solver",
    "mnist": "koopman_repro.experiments.mnist",
    "beyond": "koopman_repro.experiments.beyond",
    "bench": "koopman_repro.bench",  # ``koopman bench``
}
