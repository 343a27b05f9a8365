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
