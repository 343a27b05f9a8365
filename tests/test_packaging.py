"""The Binder environment pins the same book stack as requirements/constraints.txt, and every
place a reader installs torch asks for PyTorch's CPU-only build.

What this machine can check: it reaches PyPI but not PyTorch's CPU wheel index
(https://download.pytorch.org/whl/cpu), so the torch line of environment.yml is checked
statically (the index option, the CPU pin), and the rest of the pip list is resolved against PyPI
with a dry run in a clean virtual environment."""
import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH = "2.13.0"


def pins(text):
    return dict(re.findall(r"^[\s-]*([A-Za-z0-9_.\-]+)==([^\s#]+)", text, flags=re.M))


def public(version: str) -> str:
    """The public part of a version (``2.13.0+cpu`` -> ``2.13.0``)."""
    return version.split("+", 1)[0]


def pip_list() -> list[str]:
    """environment.yml's pip section, entries in order (options included)."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml must have exactly one pip section"
    return [str(r).strip() for r in sections[0]]


def split_options(reqs: list[str]) -> tuple[list[list[str]], list[str]]:
    options = [shlex.split(r) for r in reqs if r.startswith("-")]
    return options, [r for r in reqs if not r.startswith("-")]


def test_environment_yml_matches_constraints():
    constraints = pins((ROOT / "requirements" / "constraints.txt").read_text())
    env = pins((ROOT / "environment.yml").read_text())
    assert constraints, "no pins found in constraints.txt"
    # torch is pinned with its local label there (+cpu, the CPU index's build): same public version
    mismatched = {k: (v, env.get(k)) for k, v in constraints.items() if public(env.get(k) or "") != v}
    assert not mismatched, f"environment.yml differs from constraints.txt: {mismatched}"
    assert constraints["torch"] == TORCH


def test_environment_yml_asks_for_cpu_only_torch():
    """Only one index option, PyTorch's CPU-only index as an extra index (PyPI stays for the
    rest), first in the list, and torch pinned to its CPU build, which only that index serves."""
    reqs = pip_list()
    options, packages = split_options(reqs)
    assert options == [["--extra-index-url", CPU_INDEX]], f"index options in the pip list: {options}"
    assert reqs[0] == f"--extra-index-url {CPU_INDEX}", f"the index option must come first: {reqs[0]!r}"
    torch = [r for r in packages if re.match(r"torch\b", r)]
    assert torch == [f"torch=={TORCH}+cpu"], torch


def test_workflow_and_setup_script_ask_for_cpu_only_torch():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    env = {**workflow.get("env", {}), **workflow["jobs"]["build"].get("env", {})}
    assert env.get("KOOPMAN_TORCH_INDEX") == CPU_INDEX
    setup = (ROOT / "scripts" / "setup_env.sh").read_text()
    assert 'TORCH_INDEX=${KOOPMAN_TORCH_INDEX:-}' in setup
    assert f'--index-url "$TORCH_INDEX" "torch=={TORCH}"' in setup
    assert "torch.version.cuda is None" in setup  # the CPU index's torch is checked to be a CPU build


def test_postbuild_converts_notebooks_and_installs_package():
    text = (ROOT / "postBuild").read_text()
    assert "jupytext" in text and "pip install" in text
    assert "--no-deps" in text  # keeps environment.yml's CPU-only torch


def test_environment_pip_part_resolves_from_pypi_in_a_clean_venv(tmp_path):
    """The Binder environment's pip list, without torch and the CPU index option (which this
    machine cannot reach; checked above), installs from PyPI and its pins resolve together: a
    dry run in a fresh virtual environment (needs the network)."""
    import subprocess
    import sys
    options, packages = split_options(pip_list())
    reqs = [r for r in packages if not re.match(r"torch\b", r)]
    assert len(reqs) == len(packages) - 1 and options
    (tmp_path / "req.txt").write_text("\n".join(reqs) + "\n")
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    got = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "install", "--dry-run",
                          "--ignore-installed", "--quiet", "-r", str(tmp_path / "req.txt")],
                         capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-2000:]
