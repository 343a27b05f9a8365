"""Whether a saved results file is still what the code makes: its code hash against today's.

A run records ``provenance.code_hash``: a SHA-256 over the source of every module its experiment
imports, transitively (:func:`code_hash`; :func:`koopman_repro.imports.closure`), so a change to
any of them, and only to them, changes the hash. A committed full-scale file is then:

- ``code unchanged since the run``: its hash equals today's;
- ``code changed, not checked``: it differs, and no regeneration check ran on this code;
- ``code changed, regenerates (check at this build)`` / ``code changed, DOES NOT regenerate``:
  it differs, and the regeneration check that the test command ran on this very code
  (:data:`koopman_repro.paths.REGENERATION`, :func:`koopman_repro.regeneration.check_saved`)
  reran some of its networks and found the same values, or not;
- for a file made before hashes were recorded, the commit it records is compared with the
  checkout's by git: ``code unchanged since the run`` when no file of either package changed
  since that commit, else ``code changed, not checked`` (coarser: any change to the packages
  counts); ``unknown`` without git or without the commit.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from .imports import closure, modules
from .registry import EXPERIMENTS
from .paths import REGENERATION, REPO_ROOT
from .report import saved_results

UNCHANGED, CHANGED, UNKNOWN = "code unchanged since the run", "code changed, not checked", "unknown"
REGENERATES, DIFFERS = "code changed, regenerates (check at this build)", "code changed, DOES NOT regenerate"


def dependencies(name: str) -> list[str]:
    """Repository-relative paths of the source files experiment ``name`` runs."""
    mods = modules()
    return sorted(mods[m].relative_to(REPO_ROOT).as_posix() for m in closure(EXPERIMENTS[name]))


def code_hash(name: str) -> str:
    """SHA-256 over the path and text of every source file of :func:`dependencies`."""
    h = hashlib.sha256()
    for rel in dependencies(name):
        h.update(rel.encode() + b"\0" + (REPO_ROOT / rel).read_bytes() + b"\0")
    return h.hexdigest()


def _unchanged_since(sha: str) -> bool | None:
    try:
        got = subprocess.run(["git", "diff", "--quiet", sha, "HEAD", "--", "koopman_lib", "koopman_repro"],
                             cwd=REPO_ROOT, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 1: False}.get(got.returncode)


def status(results: dict, name: str, current: str | None = None) -> str:
    """:data:`UNCHANGED`, :data:`CHANGED` or :data:`UNKNOWN` for ``results`` of experiment ``name``."""
    prov = results.get("provenance", {})
    if prov.get("code_hash"):
        return UNCHANGED if prov["code_hash"] == (current or code_hash(name)) else CHANGED
    sha = prov.get("git_sha")
    same = _unchanged_since(sha) if sha and not prov.get("git_dirty_code") else None
    return UNKNOWN if same is None else (UNCHANGED if same else CHANGED)


def read_record(path=None) -> dict[tuple[str, str], dict]:
    """``{(experiment, profile): row}`` of the last regeneration check of the committed files
    (:func:`koopman_repro.regeneration.write_record`), or ``{}``."""
    path = Path(path or REGENERATION)
    if not path.is_file():
        return {}
    return {(r["experiment"], r["profile"]): r for r in json.loads(path.read_text())}


def checked_status(results: dict, name: str, profile: str, record: dict) -> str:
    """:func:`status`, refined by the regeneration check in ``record``
    (:func:`read_record`) when it ran on today's code."""
    plain = status(results, name)
    row = record.get((name, profile))
    if plain != CHANGED or row is None or row.get("code_hash") != code_hash(name):
        return plain
    return {"regenerates": REGENERATES, "differs": DIFFERS}.get(row["outcome"], plain)


def saved_runs(profiles=("paper", "full")) -> list[dict]:
    """One row per committed full-scale results file: experiment, profile, date, commit, status."""
    record = read_record()
    rows = []
    for profile in profiles:
        for name in EXPERIMENTS:
            res = saved_results(name, profile)
            if res is None:
                continue
            prov = res.get("provenance", {})
            rows.append({"experiment": name, "profile": profile, "run (UTC)": str(prov.get("utc_time", ""))[:16],
                         "commit": (prov.get("git_sha") or "unknown")[:10], "code": checked_status(res, name, profile, record)})
    return rows
