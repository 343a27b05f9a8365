"""Results files: JSON (+ CSV tables) with provenance, written atomically."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .paths import REPO_ROOT


def git_sha() -> dict:
    """``git_sha``; ``git_dirty`` (any tracked file modified); ``git_dirty_paths`` (those files, at most
    50); ``git_dirty_code`` (a modified file outside ``results/``: the code that ran is not the commit).
    Runs made one after another change ``results/`` before the next one finishes, which makes the tree
    dirty without changing the code; ``git_dirty_code`` tells the two apart."""
    def run(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    try:
        sha = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": None, "git_dirty": None}
    out = {"git_sha": sha.stdout.strip() if sha.returncode == 0 else None, "git_dirty": None}
    if dirty.returncode == 0:
        paths = dirty_paths(dirty.stdout)
        out.update(git_dirty=bool(paths), git_dirty_paths=paths[:50], git_dirty_code=code_changed(paths))
    return out


def dirty_paths(porcelain: str) -> list[str]:
    """Paths from ``git status --porcelain`` output (the new name of a rename)."""
    return [line[3:].split(" -> ")[-1].strip('"') for line in porcelain.splitlines() if len(line) > 3]


def code_changed(paths: list[str]) -> bool:
    """Whether any modified path lies outside ``results/`` (saved results are outputs, not code)."""
    return any(not p.startswith("results/") for p in paths)


def hardware() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": gpu, "platform": platform.platform(), "load_average": load_average()}


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: timings taken on a busy machine are inflated."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def provenance(profile: str | None = None, config=None, seed: int | None = None) -> dict:
    """git SHA, versions, seed, profile, config, UTC time, hardware."""
    import scipy
    versions = {"python": sys.version.split()[0], "torch": torch.__version__,
                "numpy": np.__version__, "scipy": scipy.__version__}
    try:
        from importlib.metadata import version
        versions["koopman_lib"] = version("koopman_lib")
    except Exception:
        versions["koopman_lib"] = None
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    return {**git_sha(), "versions": versions, "seed": seed, "profile": profile, "config": cfg,
            "utc_time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "hardware": hardware()}


def to_jsonable(obj):
    """Tensors/arrays to lists, numpy scalars to Python, NaN/inf to None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write via a temporary file in the same folder and ``os.replace``: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600 files; results are meant to be read
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path, results: dict) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(results), indent=2, allow_nan=False) + "\n")


def write_csv(path, rows: list[dict]) -> Path:
    rows = to_jsonable(rows)
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return atomic_write_text(path, buf.getvalue())


def read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)


def load_results(path, experiment: str | None = None) -> dict:
    """A results file, upgraded to the current schema (:func:`koopman_repro.migrations.upgrade`).
    ``experiment`` defaults to the file's name (``de-solver.json`` -> ``"de-solver"``)."""
    from .migrations import upgrade
    path = Path(path)
    return upgrade(read_json(path), experiment or path.stem)


def save_results(out_dir, name: str, results: dict) -> Path:
    """``out_dir/name.json`` plus one ``out_dir/name-<table>.csv`` per list-of-dicts entry.

    Every file is written atomically, and the JSON text is made before any file is touched,
    so results that cannot be serialised leave the previous files as they were."""
    out_dir = Path(out_dir)
    text = json.dumps(to_jsonable(results), indent=2, allow_nan=False) + "\n"
    for key, value in results.items():
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            write_csv(out_dir / f"{name}-{key}.csv", value)
    return atomic_write_text(out_dir / f"{name}.json", text)
