"""The README's library example runs as written (it is the front door a reader copies)."""
from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The README's library example: its first python block."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    return blocks[0]


def test_readme_python_example_runs():
    ns: dict = {}
    exec(compile(readme_example(), str(README), "exec"), ns)  # noqa: S102
    kp = ns["kp"]
    assert kp.operators_ is not None and torch.isfinite(kp.spectral_radius_).all()
