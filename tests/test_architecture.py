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


# -- two layers, no cycles ------------------------------------------------------------------
def _graph() -> dict[str, set[str]]:
    from koopman_repro.imports import graph
    return graph(ROOT)


def test_the_core_never_imports_the_reproduction_layer():
    bad = {m: sorted(t for t in ts if t.startswith("koopman_repro")) for m, ts in _graph().items()
           if m.startswith("koopman_lib")}
    bad = {m: ts for m, ts in bad.items() if ts}
    assert not bad, f"core modules importing the reproduction layer: {bad}"


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first search meets in ``graph`` (module -> modules it imports)."""
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2
    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycles


def test_no_import_cycles():
    """Module-level and function-level imports both count: a cycle is a cycle wherever it hides.
    (A package's ``__init__`` importing its own submodules, which import names it defines first,
    is the usual package layout, not a cycle between modules.)"""
    graph = _graph()
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:10])


def test_the_cycle_check_finds_a_planted_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


#: the reproduction layer's functions stay short (issue 21): one job each, named for it
MAX_FUNCTION_LINES = 80


def test_no_function_of_the_reproduction_layer_is_over_eighty_lines():
    import ast
    long = []
    for p in sorted((ROOT / "koopman_repro").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "split these by what they compute:\n" + "\n".join(long)
