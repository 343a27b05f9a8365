"""The Quickstart chapter (``notebooks/quickstart.md``): where a jump holds and where it turns.

The chapter trains a small network with plain PyTorch, records a window, fits the default and
the stabilised default Koopman operators and rolls each out from the window's end, evaluating
the loss every few steps: the loss ``T`` steps into a rollout is the loss of one jump of ``T``
steps. Everything it computes is visible in the notebook; this module collects those numbers
(:class:`Horizons`), draws them (:func:`horizon_figure`), tabulates them (:func:`horizon_rows`)
and writes the sentences that quote them (:func:`findings`, :func:`advice`,
:func:`exercise_answer`), so that every number on the page is computed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

#: the figures this chapter's page draws (tests/book/test_browser.py counts them on the page)
FIGURES = 1

#: the two fits the chapter compares (names of ``koopman_lib.fit.FITS``)
DEFAULT, STABILISED = "default", "default-stabilised"
#: how the chapter names them
LABELS = {DEFAULT: "Koopman jump, default fit",
          STABILISED: r"Koopman jump, stabilised default ($|\lambda|$ clipped to 1)"}
#: a jump "keeps up" at horizon T while its loss is at most this much above the optimizer's
TOLERANCE = 0.05
#: the horizons the table and the sentences quote: multiples of this many steps
TABLE_EVERY = 25


@dataclass(frozen=True)
class Horizons:
    """Losses against the horizon ``T`` (steps after the window's end ``t2``).

    ``steps``: the horizons ``0, every, .., T_max``; ``optimizer[i]``: the optimizer's loss
    ``steps[i]`` steps after ``t2``; ``jumps[fit][i]``: the loss of one jump of ``steps[i]``
    steps with that fit (``nan`` where the rollout's guard stopped it); ``rho[fit]``: the fit's
    spectral radius.
    """

    t2: int
    steps: np.ndarray
    optimizer: np.ndarray
    jumps: dict
    rho: dict

    def at(self, T: int) -> int:
        """The index of horizon ``T``."""
        return int(np.flatnonzero(self.steps == T)[0])

    @property
    def quoted(self) -> list[int]:
        """The horizons the table and sentences quote: positive multiples of TABLE_EVERY."""
        return [int(s) for s in self.steps if s > 0 and s % TABLE_EVERY == 0]


def horizons(optimizer_losses: Sequence[float], t2: int, runs: dict, rho: dict) -> Horizons:
    """:class:`Horizons` from the optimizer's loss after every step (``optimizer_losses[t]``:
    after step ``t``) and one :class:`koopman_lib.Rollout` per fit started at ``t2`` (all
    evaluated at the same steps, one network)."""
    steps = [list(r.steps) for r in runs.values()]
    if any(s != steps[0] for s in steps):
        raise ValueError("the rollouts must be evaluated at the same steps")
    s = np.asarray(steps[0], dtype=int)
    if t2 + s[-1] >= len(optimizer_losses):
        raise ValueError(f"the optimizer's losses stop at step {len(optimizer_losses) - 1}; "
                         f"the rollouts reach step {t2 + s[-1]}")
    return Horizons(t2, s, np.asarray([optimizer_losses[t2 + t] for t in s], dtype=float),
                    {f: r.loss[:, 0].double().numpy() for f, r in runs.items()},
                    {f: float(v) for f, v in rho.items()})


def growth(rho: float, steps) -> np.ndarray:
    """``rho ** T`` for every horizon ``T``: how far a mode with ``|lambda| = rho`` grows (or
    decays) over a jump of ``T`` steps."""
    return np.exp(np.asarray(steps, dtype=float) * math.log(rho))


def keeps_up(h: Horizons, fit: str = DEFAULT, tol: float = TOLERANCE) -> int | None:
    """The longest quoted horizon up to which (every quoted horizon included) the jump's loss
    is at most ``1 + tol`` times the optimizer's; ``None`` if it falls behind at the first."""
    last = None
    for T in h.quoted:
        i = h.at(T)
        if not h.jumps[fit][i] <= (1 + tol) * h.optimizer[i]:   # nan (guard stopped) is behind
            break
        last = T
    return last


def best(h: Horizons, fit: str = DEFAULT) -> int:
    """The evaluated horizon at which the jump's loss is lowest (its turning point)."""
    return int(h.steps[int(np.nanargmin(h.jumps[fit]))])


def horizon_rows(h: Horizons) -> list[dict]:
    """The quoted horizons as a table: the optimizer, both jumps and the growth ``rho^T``."""
    return [{"horizon $T$ (steps)": T,
             "optimizer continued $T$ steps": float(h.optimizer[h.at(T)]),
             "jump, default fit": float(h.jumps[DEFAULT][h.at(T)]),
             "growth $\\rho(U)^T$, default fit": float(growth(h.rho[DEFAULT], [T])[0]),
             "jump, stabilised": float(h.jumps[STABILISED][h.at(T)])} for T in h.quoted]


def horizon_figure(h: Horizons) -> Figure:
    """Top: the loss after a jump of ``T`` steps with each fit and after ``T`` more optimizer
    steps, against ``T`` (log loss). Bottom: the growth ``rho(U)^T`` of each fit's fastest mode
    (log). A dotted line marks the last quoted horizon at which the default jump keeps up.
    Returns a matplotlib Figure (not registered with pyplot)."""
    fig = Figure(figsize=(7.5, 6.4))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    top.plot(h.steps, h.optimizer, color="C0", lw=2, label=f"optimizer (SGD) continued T steps from step {h.t2}")
    for fit, color in ((DEFAULT, "C1"), (STABILISED, "C2")):
        top.plot(h.steps, h.jumps[fit], "o-", ms=3, color=color, label=LABELS[fit])
        bottom.plot(h.steps, growth(h.rho[fit], h.steps), "o-", ms=3, color=color,
                    label=f"{fit} fit, " + r"$\rho(U)$" + f" = {h.rho[fit]:.3f}")
    keep = keeps_up(h)
    if keep is not None:
        for ax in (top, bottom):
            ax.axvline(keep, color="0.4", ls=":", lw=1.2)
        top.annotate(f"default jump within {TOLERANCE:.0%}\nof the optimizer up to T = {keep}",
                     (keep, 0.03), xycoords=("data", "axes fraction"), ha="left", va="bottom",
                     fontsize=8, xytext=(4, 0), textcoords="offset points")
    top.set_yscale("log")
    top.set_ylabel("training loss (MSE, log scale)")
    top.set_title(f"One jump of T steps from step {h.t2} vs T more optimizer steps")
    top.legend(loc="upper left", fontsize=8)
    bottom.set_yscale("log")
    bottom.set_xlabel("horizon T (steps after the recorded window)")
    bottom.set_ylabel(r"growth $\rho(U)^T$ (log scale)")
    bottom.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def _loss(h: Horizons, fit: str | None, T: int) -> float:
    return float((h.optimizer if fit is None else h.jumps[fit])[h.at(T)])


def findings(h: Horizons, tol: float = TOLERANCE) -> str:
    """What the figure shows, in sentences that quote its numbers (markdown)."""
    keep, turn, last = keeps_up(h, DEFAULT, tol), best(h, DEFAULT), h.quoted[-1]
    rho = h.rho[DEFAULT]
    g = lambda T: f"{growth(rho, [T])[0]:.1f}"
    if keep is None:
        first = (f"Already at T = {h.quoted[0]} the jump is more than {tol:.0%} behind the optimizer "
                 f"({_loss(h, DEFAULT, h.quoted[0]):.3f} against {_loss(h, None, h.quoted[0]):.3f}).")
    else:
        first = (f"Up to T = {keep} the jump keeps up with the optimizer (within {tol:.0%}: "
                 f"{_loss(h, DEFAULT, keep):.3f} against {_loss(h, None, keep):.3f} at T = {keep}).")
    after = [T for T in h.quoted if keep is None or T > keep]
    if after:
        nxt = after[0]
        first += (f" The jump's loss is lowest at T = {turn} and then turns: at T = {nxt} it is "
                  f"{_loss(h, DEFAULT, nxt):.3f} against {_loss(h, None, nxt):.3f}, and at T = {last} it is "
                  f"{_loss(h, DEFAULT, last):.3f}, {_loss(h, DEFAULT, last) / _loss(h, None, last):.1f} "
                  "times the optimizer's loss.")
    sign = (f"The warning sign is the spectral radius $\\rho(U) = {rho:.3f}$: a mode with "
            f"$|\\lambda| = \\rho(U)$ is multiplied by $\\rho(U)^T$ over a jump of $T$ steps, "
            + ", ".join(f"{g(T)} at T = {T}" for T in sorted({h.quoted[0], keep or h.quoted[0]}))
            + f" and {g(last)} at T = {last}.")
    if rho > 1:
        sign += (" The growing modes carry the weights along the direction the optimizer took in the "
                 "window, geometrically faster with every step, while the optimizer itself slows down.")
    return first + "\n\n" + sign


def stabilised_cost(h: Horizons, tol: float = TOLERANCE) -> str:
    """What clipping the eigenvalues to the unit circle costs on this network (markdown)."""
    d, s, o = h.jumps[DEFAULT], h.jumps[STABILISED], h.optimizer
    q = [h.at(T) for T in h.quoted]
    keep, turn = keeps_up(h, DEFAULT, tol) or h.quoted[0], best(h, STABILISED)
    start = float(o[0])
    share = (start - _loss(h, STABILISED, keep)) / (start - _loss(h, None, keep))
    text = (f"The stabilised default clips every eigenvalue to the unit circle "
            f"($\\rho(U) = {h.rho[STABILISED]:.3f}$), so nothing grows. ")
    behind = [i for i in q if not s[i] <= (1 + tol) * o[i]]
    if len(behind) == len(q):
        text += f"On this network it is more than {tol:.0%} behind the optimizer at every horizon: "
    else:
        text += f"On this network it keeps up with the optimizer at {len(q) - len(behind)} of {len(q)} horizons: "
    text += (f"its loss is lowest at T = {turn} ({_loss(h, STABILISED, turn):.3f}, against the default "
             f"jump's best {_loss(h, DEFAULT, best(h)):.3f}), and by T = {keep} it has made "
             f"{share:.0%} of the optimizer's progress from the window's end ({start:.3f}).")
    better = [T for T, i in zip(h.quoted, q) if s[i] < d[i] or (np.isnan(d[i]) and not np.isnan(s[i]))]
    if better:
        text += (f" It is first below the default jump at T = {better[0]}, where both are "
                 f"{min(s[h.at(better[0])], d[h.at(better[0])]) / o[h.at(better[0])]:.1f} times or more "
                 "the optimizer's loss.")
    if share < 0.5:
        text += " Here clipping removed the growing modes that carried the progress."
    return text


def advice(h: Horizons) -> str:
    """Two or three sentences a reader can apply to their own network (markdown)."""
    keep, turn = keeps_up(h), best(h)
    rho = h.rho[DEFAULT]
    at = keep or h.quoted[0]
    c = float(growth(rho, [at])[0])
    here = (f"here the jump kept up while the growth was at most {c:.1f}, $T \\le {at}$" if keep is not None
            else f"here the jump was behind already at T = {at}, a growth of {c:.1f}")
    lines = [
        f"- After a fit, print `kp.spectral_radius_`. Above 1, the fastest mode grows by "
        f"$\\rho(U)^T$ over a jump; the horizon at which it has grown by a factor $c$ is "
        f"$T = \\ln c / \\ln \\rho(U)$ ({here}).",
        f"- Do not jump blind: roll out with a loss, `kp.rollout(start, T, every=..., loss_fn=...)`, and "
        f"take the horizon with the lowest loss, `kp.predict(start, T=best)` (here T = {turn}).",
    ]
    d, s = h.jumps[DEFAULT], h.jumps[STABILISED]
    short = [h.at(T) for T in h.quoted if T <= at]
    if short and all(s[i] > d[i] for i in short):
        lines.append('- `fit="default-stabilised"` keeps long jumps bounded, but compare it with the '
                     "unclipped fit at short horizons first: clipping can remove the growth that carries "
                     "the progress, as it did here.")
    else:
        lines.append('- `fit="default-stabilised"` keeps long jumps bounded; compare it with the unclipped '
                     "fit at short horizons before choosing.")
    return "\n".join(lines)


def exercise_answer(h: Horizons, late_rho: float, late_run, late_window: str) -> str:
    """The exercise's answer: the default fit on a later window against the chapter's fit."""
    late = Horizons(h.t2, h.steps, h.optimizer, {DEFAULT: late_run.loss[:, 0].double().numpy()},
                    {DEFAULT: float(late_rho)})
    k0, k1 = keeps_up(h), keeps_up(late)
    T = h.quoted[-1] if k1 is None else k1
    return (f"Fitted on steps {late_window}: rho(U) = {late_rho:.3f} (the chapter's window: "
            f"{h.rho[DEFAULT]:.3f}); growth rho(U)^T at T = {T}: {growth(late_rho, [T])[0]:.1f} "
            f"(chapter: {growth(h.rho[DEFAULT], [T])[0]:.1f}).\n"
            f"The jump keeps up with the optimizer (within {TOLERANCE:.0%}) up to T = {k1} "
            f"(chapter's window: T = {k0}); at T = {T}: {_loss(late, DEFAULT, T):.4f} against "
            f"the optimizer's {_loss(h, None, T):.4f}.")
