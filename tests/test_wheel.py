"""The wheel works outside the checkout: the core a user installs runs the README example.

Builds the wheel, installs it (no dependencies) into a fresh virtual environment in a temporary
folder, makes the test environment's third-party packages (torch, numpy, ...) visible to it by a
path file (so nothing is downloaded), and runs the README's library example from a folder outside
the checkout. The reproduction layer ships in the same wheel but needs a checkout: outside one it
says so.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from test_readme import readme_example

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    # build from a copy of the sources: setuptools writes build/ and *.egg-info beside them, which
    # in the checkout would be untracked files (and mark later runs' provenance as dirty)
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "_build", ".tools", "build",
                                                           "*.egg-info", "__pycache__", "results"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp / "dist").glob("koopman_lib-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True, timeout=300)
    py = tmp / "venv" / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # third-party packages from this environment, appended after the venv's own site-packages: a
    # plain path in a .pth file is not a site directory, so this environment's editable install of
    # the checkout (a finder hook registered by its own .pth file) is not active there
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    got = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-3000:]
    work = tmp / "elsewhere"
    work.mkdir()
    return py, work, Path(site)


def test_the_readme_example_runs_from_the_installed_wheel(wheel_env):
    py, work, site = wheel_env
    code = "import koopman_lib\nprint('FROM', koopman_lib.__file__)\n" + readme_example()
    run = subprocess.run([str(py), "-c", code], cwd=work, capture_output=True, text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(work)})
    assert run.returncode == 0, run.stderr[-3000:]
    where = Path(re.search(r"FROM (\S+)", run.stdout).group(1))
    assert site in where.parents and ROOT not in where.parents
    radius, loss = run.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert float(loss) >= 0 and "tensor" in radius


def test_the_reproduction_layer_says_it_needs_a_checkout(wheel_env):
    py, work, _ = wheel_env
    code = "from koopman_repro import paths\npaths.require_checkout()\n"
    run = subprocess.run([str(py), "-c", code], cwd=work, capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(work)})
    assert run.returncode != 0 and "KOOPMAN_REPO" in run.stderr
