"""The Binder environment pins the same book stack as requirements/constraints.txt."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(text):
    return dict(re.findall(r"^[\s-]*([A-Za-z0-9_.\-]+)==([^\s#]+)", text, flags=re.M))


def test_environment_yml_matches_constraints():
    constraints = pins((ROOT / "requirements" / "constraints.txt").read_text())
    env = pins((ROOT / "environment.yml").read_text())
    assert constraints, "no pins found in constraints.txt"
    mismatched = {k: (v, env.get(k)) for k, v in constraints.items() if env.get(k) != v}
    assert not mismatched, f"environment.yml differs from constraints.txt: {mismatched}"


def test_postbuild_converts_notebooks_and_installs_package():
    text = (ROOT / "postBuild").read_text()
    assert "jupytext" in text and "pip install" in text


def test_environment_pip_part_resolves_from_pypi_in_a_clean_venv(tmp_path):
    """The Binder environment's pip list installs from PyPI alone (no extra index) and its pins
    resolve together: a dry run in a fresh virtual environment (needs the network)."""
    import subprocess
    import sys
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = [line.strip()[2:] for line in lines[start + 1:] if line.strip().startswith("- ")]
    assert reqs and not any(r.startswith("-") for r in reqs), f"options in the pip list: {reqs}"
    (tmp_path / "req.txt").write_text("\n".join(reqs) + "\n")
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    got = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "install", "--dry-run",
                          "--ignore-installed", "--quiet", "-r", str(tmp_path / "req.txt")],
                         capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-2000:]
