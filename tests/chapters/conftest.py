"""Fixtures for the chapter modules' tests: small results written by the tests themselves.

``tiny_results(name, **overrides)`` runs experiment ``name`` once per test session at profile
``ci`` with the given overrides (a few networks, few steps) and returns the saved results, as
loaded by the chapters (through :func:`koopman_repro.results.load_results`). Chapter tests check
the values their functions compute from these results, never the committed files.
"""
from __future__ import annotations

import json

import pytest

from koopman_repro.experiments import reproduce
from koopman_repro.results import load_results


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory):
    cache: dict = {}

    def run(name: str, **overrides) -> dict:
        key = (name, json.dumps(overrides, sort_keys=True, default=str))
        if key not in cache:
            out = tmp_path_factory.mktemp(name.replace("-", "_"))
            reproduce(name, "ci", out, **overrides)
            cache[key] = load_results(out / f"{name}.json", name)
        return cache[key]
    return run
