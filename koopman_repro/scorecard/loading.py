"""Loading the results files the claims are measured from (read-only: never runs anything)."""
from __future__ import annotations

from pathlib import Path

from .. import results as results_io
from ..paths import resolve

#: results files the claims are measured from (experiment names of ``koopman reproduce``)
EXPERIMENT_NAMES = ("de-solver", "mnist", "perceptron")


def load_results(results_dir, profile: str | None = None,
                 names: tuple[str, ...] = EXPERIMENT_NAMES) -> dict[str, dict | None]:
    """``{name: results dict or None}`` from ``results_dir/<name>.json`` (relative paths from the
    checkout), upgraded on load by :mod:`koopman_repro.migrations`; never runs anything.

    A file made at another profile than ``profile`` (when given) counts as missing."""
    d = resolve(results_dir)
    out: dict[str, dict | None] = {}
    for name in names:
        p = Path(d) / f"{name}.json"
        res = results_io.load_results(p, name) if p.is_file() else None
        if res is not None and profile is not None and res.get("provenance", {}).get("profile") != profile:
            res = None
        out[name] = res
    return out


def is_stale(name: str, results: dict | None) -> bool | None:
    """True when ``results`` were made with another config than the experiment's current
    profile config; ``None`` when that cannot be told (no results, no module)."""
    if not results:
        return None
    try:
        from ..experiments import made_with_current_config
        return not made_with_current_config(name, results)
    except (ValueError, ModuleNotFoundError, ImportError):
        return None
