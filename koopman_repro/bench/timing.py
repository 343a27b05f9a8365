"""How the benchmarks time: one clock with the garbage collector paused, compared methods
interleaved round robin, ratios of medians, and failures kept as results."""
from __future__ import annotations

import gc
import time
from typing import Callable

from koopman_lib.errors import FitError

from ..experiments.images import release_memory  # noqa: F401  (re-exported for the bench)


def clock(fn: Callable[[], object]) -> tuple[float, object]:
    """``(seconds, fn())`` with the garbage collector paused (every timing of the benchmarks)."""
    was = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        out = fn()
        return time.perf_counter() - start, out
    finally:
        if was:
            gc.enable()


def interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                limits: dict[str, int] | None = None) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Time every ``fns[name]()`` ``repeats`` times, round robin (order reversed on odd
    rounds); ``limits[name]`` caps the repeats of slow entries. Returns the lists of
    seconds and the last output of each."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs: dict[str, object] = {}
    for r in range(repeats):
        for k in (list(fns) if r % 2 == 0 else list(reversed(list(fns)))):
            if limits and r >= limits.get(k, repeats):
                continue
            outs.pop(k, None)           # memory: the previous repeat's output is not kept while the next runs
            dt, outs[k] = clock(fns[k])
            times[k].append(dt)
            release_memory()            # and what the timed call left in reference cycles (collector paused)
    return times, outs


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or ``None`` when either is missing or ``b`` is not positive."""
    return None if a is None or b is None or b <= 0 else float(a / b)


def failsafe(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` returning its :class:`FitError` instead of raising it (a singular Gram matrix
    is a result of the benchmark, not a crash)."""
    def wrapped():
        try:
            return fn()
        except FitError as e:
            return e
    return wrapped
