"""The one place that knows about older results files: each is upgraded once, on load.

A results file carries ``schema_version`` (absent in files written before it existed: version 0)
and ``experiment``. :func:`upgrade` brings any version to :data:`SCHEMA_VERSION` step by step;
every step is a function ``(results) -> results`` registered in :data:`STEPS`. Loaders
(:func:`koopman_repro.results.load_results`) call it; no other code branches on a file's age.
Committed files are never rewritten by an upgrade: they change only by a rerun.

Versions:
- 0 -> 1: ``schema_version`` and ``experiment`` added; tables unchanged (their rows are
  declared in :mod:`koopman_repro.rows`).
"""
from __future__ import annotations

import copy
from typing import Callable

#: the current schema version of every experiment's results file
SCHEMA_VERSION = {"perceptron": 1, "de-solver": 1, "mnist": 1, "beyond": 1, "bench": 1}

#: (experiment, from version) -> the step to from version + 1
STEPS: dict[tuple[str, int], Callable[[dict], dict]] = {}


def step(experiment: str, from_version: int):
    def deco(fn):
        STEPS[(experiment, from_version)] = fn
        return fn
    return deco


def _v0_to_v1(experiment: str):
    def up(results: dict) -> dict:
        results["experiment"] = experiment
        return results
    return up


for _name in SCHEMA_VERSION:
    step(_name, 0)(_v0_to_v1(_name))


def upgrade(results: dict, experiment: str) -> dict:
    """``results`` (a copy) at the current schema version of ``experiment``."""
    if experiment not in SCHEMA_VERSION:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {sorted(SCHEMA_VERSION)}")
    version = results.get("schema_version", 0)
    target = SCHEMA_VERSION[experiment]
    if not isinstance(version, int) or version > target:
        raise ValueError(f"{experiment} results of schema version {version!r} are newer than this code "
                         f"({target}): update the checkout")
    if version == target and results.get("experiment") == experiment:
        return results
    out = copy.deepcopy(results)
    while version < target:
        out = STEPS[(experiment, version)](out)
        version += 1
        out["schema_version"] = version
    return out
