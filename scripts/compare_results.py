#!/usr/bin/env python3
"""List every non-timing value that differs between two results files (or folders of them).

    python scripts/compare_results.py results/paper /tmp/rerun [--rtol 1e-9]

Keys about time, provenance and hardware are skipped (timings change from run to run), and so are
rows whose values follow from a measured time (a baseline given the Koopman phase's wall-clock time:
``"comparison": "equal wall-clock"``); numbers are compared with a relative tolerance. Used to check that a refactor keeps results.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

SKIP = ("second", "time", "provenance", "wall", "speedup", "repeats", "threads", "load", "hardware", "notebook")


def skipped(key: str) -> bool:
    """A timing: a name with one of SKIP in it, or in seconds by the ``_s`` suffix (``fit_s``,
    ``fit_s_all``), or a ratio of timings (``overhead``)."""
    k = key.lower()
    return any(s in k for s in SKIP) or k.endswith(("_s", "_s_all")) or "overhead" in k


def timed_row(row: dict) -> bool:
    """A row computed from a measured time (its steps, losses and rates depend on the machine's speed)."""
    return "wall-clock" in str(row.get("comparison", ""))


def walk(a, b, path, rtol, out):
    if isinstance(a, dict) and isinstance(b, dict):
        if timed_row(a) and timed_row(b):
            return
        for k in sorted(set(a) | set(b)):
            if skipped(str(k)):
                continue
            if k not in a or k not in b:
                out.append((f"{path}.{k}", "missing" if k not in b else "new", a.get(k, "-") if k in a else "-",
                            b.get(k, "-") if k in b else "-"))
                continue
            walk(a[k], b[k], f"{path}.{k}", rtol, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append((path, "length", len(a), len(b)))
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", rtol, out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        fa, fb = float(a), float(b)
        if math.isnan(fa) and math.isnan(fb):
            return
        if not math.isclose(fa, fb, rel_tol=rtol, abs_tol=1e-300):
            out.append((path, "value", a, b))
    elif a != b:
        out.append((path, "value", a, b))


def load(path: Path):
    """A results file of a known experiment upgraded to the current schema
    (koopman_repro.migrations), so that an old file compares with a new one; others as they are."""
    data = json.loads(path.read_text())
    try:
        from koopman_repro.migrations import SCHEMA_VERSION, upgrade
    except ImportError:
        return data
    return upgrade(data, path.stem) if path.stem in SCHEMA_VERSION else data


def compare(old: Path, new: Path, rtol: float) -> list:
    out: list = []
    walk(load(old), load(new), old.stem, rtol, out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--rtol", type=float, default=1e-9)
    ap.add_argument("--most", type=int, default=60, help="rows to print per file")
    args = ap.parse_args()
    pairs = ([(args.old, args.new)] if args.old.is_file() else
             [(p, args.new / p.name) for p in sorted(args.old.glob("*.json")) if (args.new / p.name).is_file()])
    for old, new in pairs:
        diffs = compare(old, new, args.rtol)
        print(f"{old.name}: {len(diffs)} differing values")
        for row in diffs[: args.most]:
            print("  " + " | ".join(str(x)[:80] for x in row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
