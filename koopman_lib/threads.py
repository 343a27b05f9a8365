"""The number of torch intra-op threads for a block of code, set only where it changes.

``torch.set_num_threads`` is not free of side effects on the CPU build of torch 2.13: any call with
more than one thread, even one that sets the count it already has, makes oneMKL's batched LU of
matrices of size about 155 and more hang (:mod:`koopman_lib.lu`). :func:`torch_threads` therefore
calls it only when the count changes, on entry and on exit.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` torch intra-op threads (``None`` or 0: leave as is), then restore the
    previous count (also when the block raises); ``torch.set_num_threads`` is called only when the
    count differs."""
    old = torch.get_num_threads()
    change = bool(n) and n != old
    if change:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(old)
