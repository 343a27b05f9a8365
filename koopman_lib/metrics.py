"""Metrics of the paper: T_eq (section 4 and supplement S10), success, speedup, error ratio."""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


class TEq(NamedTuple):
    """``value = Q + R``; ``censored`` is True when the Koopman loss is below every optimizer
    loss available (``value`` is then a lower bound, ``Q`` = last index, ``R = 0``)."""

    value: float
    Q: int
    R: float
    censored: bool


def t_eq_parts(loss_koopman: float, optimizer_losses: Sequence[float]) -> TEq:
    """``T_eq`` by the S10 definition, in units of the index of ``optimizer_losses``.

    ``optimizer_losses[i]`` is the optimizer's loss ``i`` steps (or epochs) after ``t2``,
    ``optimizer_losses[0]`` the loss at ``t2``. ``Q = max{i : l_i > l_KO}`` and
    ``R = (l_Q - l_KO) / (l_Q - l_{Q+1})``. Per-step losses give the section-4 count of
    optimizer iterations (with a fractional part); per-epoch losses give S10's ``Q + R``.
    If the Koopman loss is not below the loss at ``t2`` (``l_KO >= l_0``) or is not
    finite, Koopman training did not lower the loss and ``T_eq = 0``.
    """
    losses = np.asarray(optimizer_losses, dtype=float)
    if losses.ndim != 1 or losses.size < 2:
        raise ValueError("optimizer_losses must be a 1-d sequence with at least 2 entries (l_0 at t2, l_1, ...)")
    if not np.isfinite(loss_koopman) or loss_koopman >= losses[0]:
        return TEq(0.0, 0, 0.0, False)
    above = np.nonzero(losses > loss_koopman)[0]
    Q = int(above[-1])
    if Q == losses.size - 1:
        return TEq(float(Q), Q, 0.0, True)
    R = float((losses[Q] - loss_koopman) / (losses[Q] - losses[Q + 1]))
    return TEq(Q + R, Q, R, False)


def t_eq(loss_koopman: float, optimizer_losses: Sequence[float]) -> float:
    """``T_eq = Q + R`` (see :func:`t_eq_parts`)."""
    return t_eq_parts(loss_koopman, optimizer_losses).value


def success(teq: float | np.ndarray) -> np.ndarray:
    """The paper's success criterion ``T_eq / T > 0``."""
    return np.asarray(teq) > 0


def equivalent_runtime(parts: TEq, epoch_times: Sequence[float]) -> float:
    """S10 eq. 13: ``sum_{i<=Q} tau_i + R tau_{Q+1}``; ``epoch_times[i-1] = tau_i``."""
    tau = np.asarray(epoch_times, dtype=float)
    if parts.Q > tau.size or (parts.R > 0 and parts.Q + 1 > tau.size):
        raise ValueError(f"need run times of {parts.Q + 1} epochs after t2, got {tau.size}")
    extra = parts.R * tau[parts.Q] if parts.R > 0 else 0.0
    return float(tau[: parts.Q].sum() + extra)


def speedup(optimizer_seconds: float, koopman_seconds: float) -> float:
    """``optimizer_seconds / koopman_seconds`` (both for the same equivalent progress)."""
    if koopman_seconds <= 0:
        raise ValueError("koopman_seconds must be positive")
    return float(optimizer_seconds / koopman_seconds)


def error_ratio(predicted: np.ndarray, true_end: np.ndarray, true_start: np.ndarray, n_best: int = 10) -> dict:
    """Fig. 2e: prediction error against the true evolution over the Koopman window.

    Arrays ``(N, D)``: N networks. ``error = predicted - true_end``, ``evolution =
    true_end - true_start``. The ``n_best`` networks with the smallest mean ``|error|``
    are kept; returns their median ``|error|``, median ``|evolution|`` and the ratio.
    """
    predicted, true_end, true_start = (np.asarray(a, dtype=float) for a in (predicted, true_end, true_start))
    if not (predicted.shape == true_end.shape == true_start.shape) or predicted.ndim != 2:
        raise ValueError("predicted, true_end and true_start must all be (N, D)")
    err = np.abs(predicted - true_end)
    evo = np.abs(true_end - true_start)
    best = np.argsort(err.mean(axis=1))[: min(n_best, err.shape[0])]
    med_err, med_evo = float(np.median(err[best])), float(np.median(evo[best]))
    return {"median_abs_error": med_err, "median_abs_evolution": med_evo,
            "ratio": med_err / med_evo if med_evo > 0 else float("inf"), "networks": best.tolist()}


def finite_median(xs, empty=None):
    """Median of the finite numbers in ``xs`` (any nesting; ``None`` entries skipped), or
    ``empty`` when there are none. The one median of the results files."""
    a = np.asarray([np.nan if x is None else x for x in np.asarray(xs, dtype=object).ravel()], dtype=float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else empty


# -- intervals over networks ------------------------------------------------------------------
#: resamples of a bootstrap interval and its seed, fixed before any result is seen
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 2000, 0


class Interval(NamedTuple):
    """A measured value over ``n`` networks with its confidence interval ``[ci_low, ci_high]``
    (``None`` bounds when ``n`` is 0). The interval covers the sampling of networks (random
    initialisations, data orders), not of test images: the test loss of one network is
    measured on the whole test set."""
    value: float | None
    n: int
    ci_low: float | None
    ci_high: float | None

    def contains(self, x: float) -> bool:
        return self.ci_low is not None and self.ci_low <= x <= self.ci_high


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of a rate ``successes / n`` (Wilson 1927): unlike the normal
    approximation it stays inside [0, 1] and is not degenerate at 0 or n successes (3 of 3 gives
    about [0.44, 1] at 95%)."""
    from scipy.stats import norm
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n = {n}, got {successes}")
    if n == 0:
        return Interval(None, 0, None, None)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, n, max(0.0, float(centre - half)), min(1.0, float(centre + half)))


def bootstrap_interval(values, statistic=None, confidence: float = 0.95,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Interval:
    """Percentile bootstrap interval of ``statistic`` (default: the median) over networks.

    ``values``: one entry per network (``(n,)``, or ``(n, ...)`` rows that ``statistic`` reduces
    along axis 0: a composite claim resamples networks and recomputes the whole claim). Networks
    are resampled with replacement ``resamples`` times with a fixed seed. Non-finite entries of a
    1-D ``values`` are dropped first (as :func:`finite_median` does)."""
    a = np.asarray(values, dtype=float)
    if a.ndim == 1:
        a = a[np.isfinite(a)]
    n = int(a.shape[0])
    stat = statistic or (lambda x: float(np.median(x, axis=0)))
    if n == 0:
        return Interval(None, 0, None, None)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    boot = np.array([stat(a[i]) for i in idx], dtype=float)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return Interval(float(stat(a)), n, float(low), float(high))
