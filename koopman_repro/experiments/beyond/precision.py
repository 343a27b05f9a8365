"""Item 1 on the NN DE solver, the role of precision: the paper's Koopman fit of the float64
window fails here but not in the DE solver chapter (float32 training). Two fits test why: the
same float64 window with the singular values below float32 resolution dropped, and the window
rounded to float32 (what a float32 recording would hold) with the paper's pinv. Their rows are
in ``baselines``; :func:`de_precision_rows` picks them out of a results file.
"""
from __future__ import annotations

import torch

from koopman_lib.estimator import Koopman
from .common import _timed

#: item 1, DE solver: Koopman fits of the float64 window that test the role of precision
#: the DE solver's Koopman fit as the paper made it (node operators, pinv with the default cutoff)
DE_PAPER_FIT = "Koopman (paper: node operators, pinv)"
DE_PRECISION_METHODS = {"cutoff": "Koopman (pinv, float32-resolution cutoff)",
                        "rounded": "Koopman (pinv, window rounded to float32)"}


def de_precision_rows(results: dict) -> dict[str, dict]:
    """The DE solver's equal-steps rows of a ``beyond`` results file for the paper's fit and the two
    precision fits, keyed by method (``DE_PAPER_FIT``, then ``DE_PRECISION_METHODS``); ``{}`` where
    the file has no such row."""
    rows = [r for r in results.get("baselines", [])
            if r.get("experiment") == "de-solver" and r.get("comparison") == "equal steps"]
    return {m: next((r for r in rows if r.get("method") == m), {})
            for m in (DE_PAPER_FIT, *DE_PRECISION_METHODS.values())}


def de_precision_fits(partition, window: torch.Tensor, T: int) -> dict:
    """``{method name: (w(t2 + T) predicted (E, D), fit + jump seconds)}`` for the two fits of
    :data:`DE_PRECISION_METHODS`: the float64 ``window`` ``(k, E, D)`` fitted with the pinv cutoff
    at float32 resolution (``max(n, k) eps32``), and the window rounded to float32 (then cast
    back) fitted with the paper's pinv (default cutoff) and jumped from its rounded ``w(t2)``."""
    kp = Koopman(partition, cutoff="float32")
    _, sec = _timed(lambda: kp.fit(window))
    pred, jsec = _timed(lambda: kp.predict(window[-1], T))
    out = {DE_PRECISION_METHODS["cutoff"]: (pred, sec + jsec)}
    rounded = window.to(torch.float32).to(torch.float64)
    kp = Koopman(partition, cutoff="paper")
    _, sec = _timed(lambda: kp.fit(rounded))
    pred, jsec = _timed(lambda: kp.predict(rounded[-1], T))
    out[DE_PRECISION_METHODS["rounded"]] = (pred, sec + jsec)
    return out
