"""One numerical core: experiments and the bench orchestrate, the core owns every fit and evolution.

These are text checks on the source, so that a new experiment that factorises snapshots or
steps operators by hand fails here and gets pointed at ``koopman_lib.fit`` / ``Koopman``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "koopman_lib"
#: the reproduction layer orchestrates: every module of it
ORCHESTRATION = sorted((ROOT / "koopman_repro").rglob("*.py"))
#: numerical linear algebra that only the core may call
FORBIDDEN = re.compile(r"torch\.linalg\.|matrix_power|\.pinverse\(|torch\.svd\(|torch\.lstsq\(|torch\.cholesky")


def _code_lines(path: Path):
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        code = line.split("#", 1)[0]
        if code.strip():
            yield i, code


@pytest.mark.parametrize("path", ORCHESTRATION, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_experiments_and_bench_call_the_core_for_every_factorisation_and_evolution(path):
    bad = [f"{path.name}:{i}: {c.strip()}" for i, c in _code_lines(path) if FORBIDDEN.search(c)]
    assert not bad, ("numerical routines outside the core (use koopman_lib.fit / Koopman / "
                     "koopman_lib.evolve):\n" + "\n".join(bad))


def test_one_module_factorises_snapshots():
    """The SVD / QR of snapshot blocks lives in koopman_lib/fit.py alone (toy.py draws random
    orthogonal matrices with a QR, which is not a fit)."""
    pattern = re.compile(r"torch\.linalg\.(svd|qr)\(")
    where = {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")
             for _, c in _code_lines(p) if pattern.search(c)}
    assert where <= {"fit.py", "toy.py"}, where
    assert "fit.py" in where


def test_no_module_is_called_trainer_and_the_estimator_is_exported():
    import koopman_lib as kl
    assert not (PKG / "trainer.py").exists()
    assert kl.Koopman.__module__ == "koopman_lib.estimator"
