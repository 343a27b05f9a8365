"""The import graph of the two packages, read from their source (no module is imported).

Used by the architecture tests (the core never imports the reproduction layer; no cycles) and by
:mod:`koopman_repro.staleness` (the code a results file depends on: every module its experiment
imports, transitively).
"""
from __future__ import annotations

import ast
from pathlib import Path

from .paths import REPO_ROOT

PACKAGES = ("koopman_lib", "koopman_repro")


def modules(root: Path = REPO_ROOT) -> dict[str, Path]:
    """``{dotted module name: source file}`` of every module of both packages."""
    out = {}
    for package in PACKAGES:
        for p in sorted((root / package).rglob("*.py")):
            out[".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")] = p
    return out


def imports_of(path: Path, module: str) -> set[str]:
    """The modules of both packages that ``path`` (module ``module``) imports, absolute or
    relative, at any depth of the file (``from pkg import name`` counts ``pkg`` and ``pkg.name``)."""
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out |= {f"{target}.{a.name}" for a in node.names}
    return {m for m in out if m.split(".")[0] in PACKAGES}


def graph(root: Path = REPO_ROOT) -> dict[str, set[str]]:
    """``{module: modules of both packages it imports}`` (only modules that exist)."""
    mods = modules(root)
    return {m: {t for t in imports_of(p, m) if t in mods and t != m} for m, p in mods.items()}


def closure(start: str, root: Path = REPO_ROOT) -> set[str]:
    """``start`` and every module it imports, transitively, with each package ``__init__`` on the
    way (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``)."""
    g, mods = graph(root), modules(root)
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen or m not in mods:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))] + sorted(g.get(m, ()))
    return seen
