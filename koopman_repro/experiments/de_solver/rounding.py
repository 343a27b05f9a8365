"""Rounding of the stored curves and arrays (keeps the results JSON small)."""
from __future__ import annotations

import numpy as np


def rounded(x, digits: int = 6):
    """Nested lists of floats rounded to ``digits`` significant digits; non-finite values become
    ``None``."""
    a = np.asarray(x, dtype=float)
    if a.size == 0:
        return a.tolist()
    f = np.vectorize(lambda v: float(f"{v:.{digits}g}") if np.isfinite(v) else None, otypes=[object])
    return f(a).tolist()
