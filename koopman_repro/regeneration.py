"""Does a saved results file still come out of the code? The regeneration check.

``koopman reproduce EXPERIMENT --check RESULTS_FILE [--networks ...]`` reruns the chosen networks
of a saved run with the settings recorded in that file and the code at HEAD, and compares their
*check values* with the file's.

Check values. Every experiment stores, for each network ``i`` (a network is its own seed,
:mod:`koopman_lib.seeds`, so network ``i`` can be rerun alone), a few of its key results and the
norm of its weights at fixed early steps, under ``results["check_values"]``
(:func:`koopman_repro.check_values.check_table`:
``{"networks": [...], "keys": [...], "values": [[...]]}``, one row per network, ``None`` where a
value does not exist). Keys that start with :data:`EARLY` are early-trajectory values.

An experiment module that supports the check defines ``regeneration_config(cfg, networks) -> cfg``: the
config that reruns exactly those networks (its other networks and the studies that store no check
values left out) and ``n_networks(cfg) -> int``.

What is compared, and how exactly (:data:`TOLERANCES`, the one place):

* on the hardware that made the file (same CPU model and torch version), every value, to
  :data:`TOLERANCES` ``["same hardware"]``: the runs are deterministic there (fixed seeds, fixed
  thread counts), so only the JSON round trip separates the two;
* on other hardware, only the early-trajectory values, to ``["early"]``: float sums in another
  order (another CPU's kernels, another thread count) move an MNIST network's weights by about
  3e-7 of their norm after 100 steps and 8e-7 after 1000 steps (measured: 1 against 2 threads),
  then by 5e-3 after 4690 steps, when training has amplified the rounding; later values are
  reproducible on the same hardware only, and the report lists them as not compared.

The check fails on any difference and when it compared less than :data:`MIN_COVERAGE` of the
values it could compare (a saved value the rerun did not produce counts against it).

A *quick* check (what the test command runs, within its budget) reruns what an experiment's
``quick_config(cfg)`` keeps (by default everything); the experiment's ``regenerated(cfg, key)``
says which stored keys such a rerun makes, and the others are listed as not rerun, apart from the
coverage. "Beyond" keeps its DE-solver study and its cycles' optimizer-alone runs (a minute, where
the whole network takes 15): they run the analyses every study shares (fits, windows,
observables, baselines) on the DE run.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .check_values import EARLY, read_check_values


@dataclass(frozen=True)
class Tolerance:
    """``|now - saved| <= atol + rtol |saved|``, and why that much."""

    rtol: float
    atol: float
    reason: str

    def close(self, saved: float, now: float) -> bool:
        if saved is None or now is None:
            return saved is None and now is None
        if math.isnan(saved) or math.isnan(now):
            return math.isnan(saved) and math.isnan(now)
        return abs(now - saved) <= self.atol + self.rtol * abs(saved)


#: the one place that states how close a regenerated value must be, with the reason
TOLERANCES = {
    "same hardware": Tolerance(1e-12, 1e-15, "deterministic on one machine (fixed seeds and thread "
                               "counts); JSON keeps a float's shortest repr exactly, so any difference "
                               "is a change of the code path"),
    "early": Tolerance(1e-5, 1e-12, "float sums in another order (other CPU kernels, other thread "
                       "counts) move the weights by under 1e-6 of their norm in the first 1000 steps "
                       "(3.5e-7 after 100 steps, measured on MNIST with 1 against 2 threads)"),
}
#: the least share of comparable values the check must compare (the rest: saved values the rerun
#: did not produce); below it the check fails
MIN_COVERAGE = 1.0


class CheckError(ValueError):
    """The file cannot be checked (no check values, unknown networks); the message names the fix."""


def same_hardware(saved: dict, now: dict) -> bool:
    """Whether two provenances name the same CPU model and torch version."""
    return (saved.get("hardware", {}).get("cpu") == now.get("hardware", {}).get("cpu")
            and saved.get("versions", {}).get("torch") == now.get("versions", {}).get("torch"))


@dataclass
class Report:
    """The outcome of one check: every difference ``(network, key, saved, now)``, what was
    compared and what was not (with the reason), and the verdict."""

    experiment: str
    path: str
    networks: list[int]
    same_hardware: bool
    hardware: tuple[str, str]
    differences: list[tuple[int, str, float | None, float | None]] = field(default_factory=list)
    compared: list[tuple[int, str]] = field(default_factory=list)
    missing: list[tuple[int, str]] = field(default_factory=list)
    not_comparable: list[tuple[int, str]] = field(default_factory=list)
    not_rerun: list[tuple[int, str]] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        n = len(self.compared) + len(self.missing)
        return len(self.compared) / n if n else 0.0

    @property
    def ok(self) -> bool:
        return not self.differences and self.coverage >= MIN_COVERAGE and bool(self.compared)

    def lines(self) -> list[str]:
        """The report as text: hardware, coverage, every difference and every value not compared."""
        out = [f"check of {self.path} ({self.experiment}), networks {self.networks}",
               f"  hardware: saved {self.hardware[0]!r}, now {self.hardware[1]!r}: "
               + ("the same, every value compared exactly" if self.same_hardware else
                  "different, only the early-trajectory values compared (" + TOLERANCES["early"].reason + ")"),
               f"  compared {len(self.compared)} values, coverage {self.coverage:.0%} "
               f"(required {MIN_COVERAGE:.0%}); {len(self.differences)} differ"]
        out += [f"  DIFFERS network {i} {k}: saved {s!r}, now {n!r}" for i, k, s, n in self.differences]
        out += [f"  MISSING network {i} {k}: saved, not produced by the rerun" for i, k in self.missing]
        if self.not_comparable:
            out.append(f"  not compared on this hardware: {len(self.not_comparable)} later values "
                       f"(e.g. {self.not_comparable[0][1]})")
        if self.not_rerun:
            studies = sorted({k.removeprefix(EARLY).split(":")[0] for _, k in self.not_rerun})
            out.append(f"  not rerun by this quick check: {len(self.not_rerun)} values of {', '.join(studies)}")
        out.append("  PASSED" if self.ok else "  FAILED")
        return out


def compare(saved: dict[int, dict], now: dict[int, dict], networks, same_hw: bool, report: Report,
            rerun=lambda key: True) -> Report:
    """Fill ``report`` with the comparison of the saved and regenerated check values of ``networks``
    (``rerun(key)``: whether the rerun makes ``key`` at all; the others are listed as not rerun)."""
    for i in networks:
        for key, value in sorted(saved.get(i, {}).items()):
            if not rerun(key):
                report.not_rerun.append((i, key))
                continue
            early = key.startswith(EARLY)
            if not (early or same_hw):
                report.not_comparable.append((i, key))
                continue
            if key not in now.get(i, {}):
                report.missing.append((i, key))
                continue
            tol = TOLERANCES["same hardware" if same_hw else "early"]
            report.compared.append((i, key))
            if not tol.close(value, now[i][key]):
                report.differences.append((i, key, value, now[i][key]))
    return report


def choose_networks(spec, n: int, sha: str | None = None) -> list[int]:
    """Network indices from ``--networks``: ``"auto"`` (one network chosen from the commit
    ``sha``, so that over many commits every network is checked), ``"all"``, or indices."""
    if spec in (None, "auto", ["auto"]):
        from .results import git_sha
        sha = sha or git_sha().get("git_sha") or "0"
        return [int(sha[:8], 16) % n]
    if spec in ("all", ["all"]):
        return list(range(n))
    chosen = sorted({int(i) for i in spec})
    bad = [i for i in chosen if not 0 <= i < n]
    if bad:
        raise CheckError(f"networks {bad} are not in the saved run (it has networks 0..{n - 1})")
    return chosen


def check(experiment: str, path, networks="auto", sha: str | None = None, quick: bool = False) -> Report:
    """Rerun ``networks`` of the saved run ``path`` of ``experiment`` with its recorded settings
    and the code at HEAD, and compare their check values with the file's (:class:`Report`).
    ``quick``: rerun only what the experiment's ``quick_config`` keeps (module docstring)."""
    from .experiments import config_of, module, run_config
    from .results import load_results
    path = Path(path)
    saved = load_results(path, experiment)
    stored = read_check_values(saved)
    mod = module(experiment)
    if not stored or not hasattr(mod, "regeneration_config"):
        raise CheckError(f"{path} holds no per-network check values (made before they were stored, or "
                         f"{experiment} does not store them); rerun it with "
                         f"'koopman reproduce {experiment} --profile {saved.get('provenance', {}).get('profile')}'")
    cfg = config_of(experiment, saved)
    if quick and hasattr(mod, "quick_config"):
        cfg = mod.quick_config(cfg)
    chosen = choose_networks(networks, mod.n_networks(cfg), sha)
    sub = mod.regeneration_config(cfg, chosen)
    saved_prov = saved.get("provenance", {})
    with tempfile.TemporaryDirectory() as tmp:
        regenerated = run_config(experiment, sub, Path(tmp), saved_prov.get("profile"))
    same_hw = same_hardware(saved_prov, regenerated["provenance"])
    hw = (saved_prov.get("hardware", {}).get("cpu"), regenerated["provenance"]["hardware"].get("cpu"))
    report = Report(experiment, str(path), chosen, same_hw, hw)
    rerun = (lambda key: mod.regenerated(sub, key)) if hasattr(mod, "regenerated") else (lambda key: True)
    return compare(stored, read_check_values(regenerated), chosen, same_hw, report, rerun)


def check_saved(profiles=("paper", "full"), networks="auto", sha: str | None = None, quick: bool = True) -> list[dict]:
    """Check every committed full-scale results file (``results/PROFILE/*.json``) on ``networks``;
    one row per file: what was checked, at which code hash, and the outcome (``"regenerates"``,
    ``"differs"``, ``"no check values"`` or, for an experiment that declares ``NOT_REGENERATED``
    (the benchmarks' timings), ``"not applicable"``, with the reason)."""
    from .experiments import module
    from .registry import EXPERIMENTS
    from .paths import saved_results_dir
    from .staleness import code_hash
    rows = []
    for profile in profiles:
        for name in EXPERIMENTS:
            path = saved_results_dir(profile) / f"{name}.json"
            if not path.is_file():
                continue
            row = {"experiment": name, "profile": profile, "file": path.name, "code_hash": code_hash(name)}
            reason = getattr(module(name), "NOT_REGENERATED", None)
            if reason:
                rows.append({**row, "outcome": "not applicable", "reason": reason})
                continue
            try:
                report = check(name, path, networks, sha, quick)
            except CheckError as err:
                rows.append({**row, "outcome": "no check values", "reason": str(err)})
                continue
            rows.append({**row, "outcome": "regenerates" if report.ok else "differs",
                         "networks": report.networks, "compared": len(report.compared),
                         "coverage": report.coverage, "same_hardware": report.same_hardware,
                         "not_rerun": len(report.not_rerun),
                         "differences": [list(d) for d in report.differences], "report": report.lines()})
    return rows


def write_record(rows: list[dict], path=None) -> Path:
    """Save :func:`check_saved`'s rows where the build reads them (:data:`koopman_repro.paths.REGENERATION`)."""
    import json
    from .paths import REGENERATION
    from .results import atomic_write_text
    path = Path(path or REGENERATION)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(rows, indent=2) + "\n")
