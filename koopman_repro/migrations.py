"""The one place that knows about older results files: each is upgraded once, on load.

A results file carries ``schema_version`` (absent in files written before it existed: version 0)
and ``experiment``. :func:`upgrade` brings any version to :data:`SCHEMA_VERSION` step by step;
every step is a function ``(results) -> results`` registered in :data:`STEPS`. Loaders
(:func:`koopman_repro.results.load_results`) call it; no other code branches on a file's age.
Committed files are never rewritten by an upgrade: they change only by a rerun.

Versions:
- 0 -> 1: ``schema_version`` and ``experiment`` added; provenance without ``git_dirty_code``
  gets it from ``git_dirty`` (:func:`_provenance_v0_to_v1`); tables unchanged (their rows are
  declared in :mod:`koopman_repro.rows`). ``beyond``: the config's ``rep_window_epochs`` is
  renamed ``replication_window_epochs``.
  ``perceptron``: rows of files older than the named fits get ``fit = "paper"``, and such files
  get ``methods_by_fit`` / ``curves_by_fit`` (:func:`_perceptron_v0_to_v1`).
  ``de-solver``: files older than the named fits get them: the ``pinv`` rows are the paper fit's,
  the fit-method comparison gets its own table, per-fit entries keyed ``pinv`` are keyed
  ``paper`` (:func:`_de_solver_v0_to_v1`).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Callable

from .rows import SCHEMA_VERSION  # the current version of each experiment's results (declared with the rows)

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
        return _provenance_v0_to_v1(results)
    return up


for _name in SCHEMA_VERSION:
    step(_name, 0)(_v0_to_v1(_name))


# -- perceptron ---------------------------------------------------------------------------------
@step("perceptron", 0)
def _perceptron_v0_to_v1(results: dict) -> dict:
    """Perceptron files written before the named fits (``koopman_lib.fit.FITS``) measured the
    paper fit alone: their rows have no ``fit`` (they are the paper fit's), and they have no
    ``methods_by_fit`` (the paper fit's summaries are ``methods``) nor ``curves_by_fit``."""
    results = _v0_to_v1("perceptron")(results)
    for name in ("table", "window_sweep", "input_sweep"):
        for row in results.get(name) or []:
            row.setdefault("fit", "paper")
    if "methods" in results:
        results.setdefault("methods_by_fit", {"paper": results["methods"]})
    results.setdefault("curves_by_fit", {})
    return results


# -- beyond ---------------------------------------------------------------------------------
@step("beyond", 0)
def _beyond_v0_to_v1(results: dict) -> dict:
    """Beyond files before version 1: as every experiment's, and the replication study's window
    (``provenance.config``) renamed from ``rep_window_epochs`` to ``replication_window_epochs``."""
    results = _v0_to_v1("beyond")(results)
    config = results.get("provenance", {}).get("config", {})
    if "rep_window_epochs" in config:
        config.setdefault("replication_window_epochs", config.pop("rep_window_epochs"))
    return results


# -- de-solver -----------------------------------------------------------------------------
@step("de-solver", 0)
def _de_solver_v0_to_v1(results: dict) -> dict:
    """DE-solver files written before the named fits (``koopman_lib.fit.FITS``) had the paper fit
    alone, labelled by its fit method: their ``table`` / ``networks`` rows carry no ``fit`` and mix
    the fit methods (``pinv``, the paper fit, and ``lstsq``), and their per-fit entries are keyed
    ``pinv``. Upgraded: the ``pinv`` rows are the paper fit's (``fit`` ``"paper"``); every fit-method
    row goes to ``fit_methods_table`` (its declared fields); ``main.fit``, ``fits`` and the per-fit
    entries (``spectra``, ``fig2e``, each timing's ``koopman``) name the paper fit ``"paper"``. Files
    with named fits are unchanged."""
    from koopman_lib.fit import FITS
    from .rows import row_type
    results = _v0_to_v1("de-solver")(results)
    paper = {"fit": "paper", "cutoff": FITS["paper"].name}
    if "fit_methods_table" not in results:
        declared = {f.name for f in dataclasses.fields(row_type("de-solver", "fit_methods_table"))}
        results["fit_methods_table"] = [{k: v for k, v in {**r, "fit": "paper"}.items() if k in declared}
                                        for r in results.get("table") or [] if "fit" not in r]
    for name in ("table", "networks"):
        if name in results:
            results[name] = [r if "fit" in r else {**r, **paper} for r in results[name]
                             if "fit" in r or r.get("fit_method") == "pinv"]
    results.setdefault("main", {}).setdefault("fit", "paper")
    results.setdefault("fits", {"paper": FITS["paper"].name})
    for part in (results.get("by_dtype") or {}).values():
        entries = [part.get("spectra"), part.get("fig2e")]
        entries += [t.get("koopman") for t in (part.get("timing") or {}).values()]
        for entry in entries:
            if isinstance(entry, dict) and "pinv" in entry and "paper" not in entry:
                entry["paper"] = entry.pop("pinv")
    return results


# -- provenance (every experiment; read by the front page's provenance lines) -------------------
def _provenance_v0_to_v1(results: dict) -> dict:
    """Provenance written before ``git_dirty_code`` (a modified file outside ``results/``) existed
    has ``git_dirty`` alone (any modified file): that flag stands for both."""
    prov = results.get("provenance")
    if isinstance(prov, dict) and "git_dirty" in prov:
        prov.setdefault("git_dirty_code", prov["git_dirty"])
    return results


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
