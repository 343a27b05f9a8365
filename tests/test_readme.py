"""The README's library example runs as written (it is the front door a reader copies)."""
from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    ns: dict = {}
    exec(compile(blocks[0], str(README), "exec"), ns)  # noqa: S102
    kp = ns["kp"]
    assert kp.operators_ is not None and torch.isfinite(kp.spectral_radius_).all()
