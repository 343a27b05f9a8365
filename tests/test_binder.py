"""A Binder session, simulated: the reader's environment and the reader's notebooks.

repo2docker builds Binder's image from ``environment.yml`` and then runs ``postBuild`` in a copy
of the repository; a reader opens ``notebooks/NAME.ipynb`` and runs it with its defaults
(``recompute = False``: the saved full-scale runs). Here: a clean virtual environment from
``environment.yml``'s pip list (this machine's local wheels stand in for PyTorch's CPU index,
which it cannot reach; tests/test_packaging.py checks that index statically), ``postBuild`` in a
copy of the tracked files, and every notebook executed as it is. Each must finish without an
error and with a kernel of at most 2 GB (Binder's memory; memory is asserted, time is not). The
per-notebook figures go to ``_build/results/ci/binder-session.json`` for the cost chapter.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_packaging import pip_list, split_options

from koopman_repro.book import BINDER_MEMORY_MB
from koopman_repro.paths import BINDER_SESSION as RECORD

ROOT = Path(__file__).resolve().parents[1]


def test_a_reader_session_runs_every_notebook_within_binders_memory(tmp_path):
    checkout = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src, dst = ROOT / name, checkout / name
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # the index option (PyTorch's CPU wheels) is unreachable here; the local wheel is that build
    _, reqs = split_options(pip_list())
    (tmp_path / "req.txt").write_text("\n".join(reqs) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    got = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(tmp_path / "req.txt")],
                         capture_output=True, text=True, timeout=1200, env=env)
    assert got.returncode == 0, got.stderr[-3000:]
    post = subprocess.run(["bash", "postBuild"], cwd=checkout, capture_output=True, text=True, timeout=600,
                          env={**env, "KERNEL_PYTHON_PREFIX": str(venv)})
    assert post.returncode == 0, post.stderr[-3000:]
    out = tmp_path / "session" / "report.json"
    out.parent.mkdir()
    run = subprocess.run([str(venv / "bin" / "python"), str(ROOT / "tests" / "binder_session.py"), str(checkout), str(out)],
                         capture_output=True, text=True, timeout=1800, cwd=checkout,
                         env={**env, "PATH": f"{venv / 'bin'}:{env['PATH']}", "MPLBACKEND": "agg",
                              "KOOPMAN_REPO": str(checkout)})
    assert out.is_file(), run.stdout[-2000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps({"binder_memory_mb": BINDER_MEMORY_MB, "notebooks": report}, indent=2))
    expected = {p.stem for p in (ROOT / "notebooks").glob("*.md")}
    assert set(report) == expected, (set(report) ^ expected)
    failed = {k: v["error"] for k, v in report.items() if v["error"]}
    assert not failed, failed
    heavy = {k: round(v["peak_mb"]) for k, v in report.items() if v["peak_mb"] > BINDER_MEMORY_MB}
    assert not heavy, f"notebooks over Binder's {BINDER_MEMORY_MB} MB as a reader opens them: {heavy}"
