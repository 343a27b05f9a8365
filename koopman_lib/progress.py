"""tqdm progress bars that can be switched off (``KOOPMAN_PROGRESS=0``, e.g. inside notebooks)."""
from __future__ import annotations

import os

from tqdm.std import tqdm  # not tqdm.auto: in a Jupyter kernel without ipywidgets it warns on stderr


def enabled() -> bool:
    return os.environ.get("KOOPMAN_PROGRESS", "1") not in ("0", "false", "no")


def bar(iterable=None, **kwargs):
    kwargs.setdefault("disable", not enabled())
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
