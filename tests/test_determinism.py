"""Same seed and profile, same numbers: one experiment run twice at a tiny profile override
must write identical results files, timings and provenance aside."""
from __future__ import annotations

import json
import re

import pytest

from koopman_repro.experiments import EXPERIMENTS, available, reproduce

#: tiny overrides of the ci profile, per experiment, cheapest first (seconds on 2 cores)
TINY = {
    "perceptron": dict(n_sims=16, steps=150, koopman_start=40, window=40, window_sweep=(10, 40),
                       input_sweep=((4, 1),), sweep_sims=16, smooth=10),
}
#: keys whose values are timings (they differ run to run by nature) or provenance
TIMING_KEY = re.compile(r"(second|timing|speedup|wall|elapsed|duration|runtime|provenance|_ms$|_s$)", re.I)


def strip_timings(obj):
    if isinstance(obj, dict):
        return {k: strip_timings(v) for k, v in obj.items() if not TIMING_KEY.search(k)}
    if isinstance(obj, list):
        return [strip_timings(v) for v in obj]
    return obj


def _experiment():
    """The first experiment with a tiny profile. Every registered experiment is implemented, so
    one that does not import is a failure (a broken import must not turn these tests into skips)."""
    broken = [name for name in EXPERIMENTS if name not in available()]
    assert not broken, f"experiments that do not import: {broken}"
    return next(iter(TINY))


def test_same_seed_same_numbers(tmp_path):
    name = _experiment()
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        reproduce(name, "ci", out, **TINY[name])
        files = sorted(p.name for p in out.iterdir())
        runs.append((files, {f: (json.loads((out / f).read_text()) if f.endswith(".json") else (out / f).read_text())
                             for f in files}))
    (files_a, a), (files_b, b) = runs
    assert files_a == files_b
    main = f"{name}.json"
    assert a[main]["provenance"]["seed"] == b[main]["provenance"]["seed"]
    assert a[main]["provenance"]["config"] == b[main]["provenance"]["config"]
    for f in files_a:
        if f.endswith(".json"):
            assert strip_timings(a[f]) == strip_timings(b[f]), f"{f} differs between two runs with the same seed"
        elif not any(TIMING_KEY.search(col) for col in a[f].splitlines()[0].split(",")):
            assert a[f] == b[f], f"{f} differs between two runs with the same seed"


def test_another_seed_changes_the_numbers(tmp_path):
    """The comparison above can fail: a different seed gives different numbers."""
    name = _experiment()
    a = reproduce(name, "ci", tmp_path / "a", **TINY[name])
    b = reproduce(name, "ci", tmp_path / "b", seed=12345, **TINY[name])
    assert strip_timings(a) != strip_timings(b)
