"""Experiments: one module per experiment, each with ``Config`` (frozen dataclass),
``PROFILES = {"ci": ..., "paper": ...}`` and ``run(config) -> dict``, and optionally ``CHUNKING``:
the config fields that only chunk the work and change no value (the benchmarks,
:mod:`koopman_repro.bench`, are registered the same way as ``"bench"``). A ``hardware`` dict in
the results (e.g. the torch threads a run used) is merged into ``provenance.hardware``.

``reproduce(name, profile, out_dir)`` runs one and writes ``out_dir/<name>.json`` (+ CSV
tables) with provenance; ``load_or_run`` is what the notebooks call, so that an
experiment runs once per profile and every later reader reuses the saved file.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import time
from pathlib import Path

from ..config import with_profile
from ..paths import resolve
from ..registry import EXPERIMENTS  # re-exported: the one list of experiments
from ..report import largest_saved_run
from ..migrations import SCHEMA_VERSION
from ..results import git_sha, load_average, load_results, provenance, save_results, to_jsonable



def module(name: str):
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])


def available() -> list[str]:
    out = []
    for name in EXPERIMENTS:
        try:
            module(name)
            out.append(name)
        except ModuleNotFoundError:
            pass
    return out


def config_for(name: str, profile: str, **overrides):
    return with_profile(module(name).PROFILES, profile, **overrides)


def config_of(name: str, results: dict):
    """The config that made ``results``: its profile's config with the fields its provenance
    saved (JSON lists back to tuples). A chapter that may show a saved run of another profile
    (a reader's notebook shows the committed full-scale run) reads that run's settings here."""
    prov = results.get("provenance", {})
    base = config_for(name, prov.get("profile", "ci"))
    fields = {f.name for f in dataclasses.fields(base)}
    return dataclasses.replace(base, **{k: _like(getattr(base, k), v)
                                        for k, v in (prov.get("config") or {}).items() if k in fields})


def _like(default, value):
    """``value`` from JSON in the shape of ``default`` (tuples of tuples stay tuples)."""
    if isinstance(default, tuple) and isinstance(value, list):
        inner = default[0] if default else None
        return tuple(_like(inner, v) for v in value)
    return value


def reproduce(name: str, profile: str, out_dir, seed: int | None = None, **overrides) -> dict:
    """Run experiment ``name`` at ``profile`` and save ``out_dir/<name>.json`` with provenance."""
    if seed is not None:
        overrides["seed"] = seed
    return run_config(name, config_for(name, profile, **overrides), out_dir, profile)


def run_config(name: str, cfg, out_dir, profile: str | None = None) -> dict:
    """Run experiment ``name`` with the config ``cfg`` and save ``out_dir/<name>.json`` with
    provenance (``profile``: the profile ``cfg`` belongs to, if any)."""
    from ..staleness import code_hash  # the code this run depends on, for the staleness check
    # the commit and the code are read before the run: the checkout may change while it runs
    code, git_at_start = code_hash(name), git_sha()
    load_at_start = load_average()
    start = time.perf_counter()
    run = module(name).run
    # a run that reads other experiments' results (the bench) looks in the same directory first
    results = run(cfg, results_dir=out_dir) if "results_dir" in inspect.signature(run).parameters else run(cfg)
    results = {"schema_version": SCHEMA_VERSION[name], "experiment": name, **results}
    results["wall_seconds"] = time.perf_counter() - start
    results["provenance"] = {**provenance(profile, cfg, getattr(cfg, "seed", None)), **git_at_start}
    results["provenance"]["code_hash"] = code
    results["provenance"]["hardware"].update(results.pop("hardware", None) or {})
    results["provenance"]["hardware"]["load_average_at_start"] = load_at_start
    save_results(out_dir, name, results)
    return to_jsonable(results)


def load_or_run(name: str, profile: str, results_dir, **overrides) -> dict:
    """Load ``results_dir/<name>.json`` if it was made with the same profile and config,
    otherwise run the experiment and save it there."""
    results_dir = resolve(results_dir)
    saved = _matching_results(name, profile, results_dir, **overrides)
    return saved if saved is not None else reproduce(name, profile, results_dir, **overrides)


def _matching_results(name: str, profile: str, results_dir: Path, **overrides) -> dict | None:
    """``results_dir/<name>.json`` if it was made with ``profile`` and its current config, else ``None``."""
    path = results_dir / f"{name}.json"
    if not path.is_file():
        return None
    saved = load_results(path, name)
    same_profile = saved.get("provenance", {}).get("profile") == profile
    return saved if same_profile and made_with_current_config(name, saved, **overrides) else None


def made_with_current_config(name: str, results: dict, **overrides) -> bool:
    """Whether ``results`` were made with the current config of the profile they were run at, the
    fields that only chunk the work (the module's ``CHUNKING``) aside."""
    prov = results.get("provenance", {})
    chunking = set(getattr(module(name), "CHUNKING", ()))
    current = to_jsonable(dataclasses.asdict(config_for(name, prov.get("profile"), **overrides)))
    saved = prov.get("config")
    return saved is not None and ({k: v for k, v in saved.items() if k not in chunking}
                                  == {k: v for k, v in current.items() if k not in chunking})


def chapter_results(name: str, profile: str, results_dir, recompute: bool = True) -> dict:
    """The results a chapter shows. ``recompute`` (what the book build passes): this profile's
    run, loaded or run (:func:`load_or_run`). Otherwise (a reader's notebook, e.g. on Binder,
    whose 2 GB would not hold every experiment) this profile's run only if a matching file is
    already in ``results_dir``, else the committed full-scale run (``results/paper`` or
    ``results/full``, :func:`koopman_repro.report.largest_saved_run`): instant, and its provenance
    says which run it is."""
    if not recompute and _matching_results(name, profile, resolve(results_dir)) is None:
        _, saved = largest_saved_run(name)
        if saved is not None:
            return saved
    return load_or_run(name, profile, results_dir)
