"""The Quickstart chapter (``notebooks/quickstart.md``): its one figure.

The chapter trains a small network with plain PyTorch, records a window, fits the default
Koopman operators and rolls them out; everything it computes is visible in the notebook. This
module only draws the result: the optimizer's loss curve against the Koopman rollout's.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure


def loss_figure(optimizer_losses: Sequence[float], rollout_steps: Sequence[int], rollout_losses,
                t1: int, t2: int, T: int, every: int):
    """The optimizer's loss after every step against the Koopman rollout from step ``t2``.

    ``optimizer_losses[t]`` is the loss after step ``t``; ``rollout_losses[i]`` the rollout's
    loss ``rollout_steps[i]`` steps after ``t2`` (``nan`` where the guard stopped it), evaluated
    every ``every`` steps up to the horizon ``T``; ``t1``..``t2`` is the recorded window (shaded).
    Log loss axis.
    Returns a matplotlib Figure (not registered with pyplot).
    """
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.subplots()
    ax.axvspan(t1, t2, color="0.9", label=f"recorded window (steps {t1}-{t2})")
    ax.plot(range(len(optimizer_losses)), optimizer_losses, color="C0", label="optimizer (SGD) continued")
    ax.plot([t2 + s for s in rollout_steps], np.asarray(rollout_losses), "o-", ms=3.5, color="C1",
            label=f"Koopman rollout from step {t2}, evaluated every {every} steps")
    ax.set_yscale("log")
    ax.set_xlabel("training step (optimizer updates)")
    ax.set_ylabel("training loss (mean squared error, log scale)")
    ax.set_title(f"Continuing the optimizer vs one Koopman jump of {T} steps")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig
