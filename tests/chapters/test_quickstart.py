"""The Quickstart chapter's figure: it draws the losses it is given, where it is told to."""
from __future__ import annotations

import numpy as np
from matplotlib.colors import to_rgba

from koopman_repro.chapters import quickstart as ch


def test_loss_figure_draws_both_curves_the_window_and_its_labels():
    sgd = list(np.exp(-np.arange(401) / 100.0))                  # loss after each of 401 steps
    steps = list(range(0, 101, 5))
    koopman = np.exp(-(300 + np.array(steps)) / 90.0)
    koopman[-3:] = np.nan                                        # the guard stopped it
    fig = ch.loss_figure(sgd, steps, koopman, t1=100, t2=300, T=100, every=5)

    (ax,) = fig.axes
    optimizer, rollout = ax.get_lines()
    np.testing.assert_array_equal(optimizer.get_xdata(), np.arange(401))
    np.testing.assert_array_equal(optimizer.get_ydata(), sgd)
    np.testing.assert_array_equal(rollout.get_xdata(), [300 + s for s in steps])
    np.testing.assert_array_equal(rollout.get_ydata(), koopman)
    (window,) = ax.patches                                        # the recorded window, steps 100..300
    assert (window.get_x(), window.get_x() + window.get_width()) == (100, 300)
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_title() == "Continuing the optimizer vs one Koopman jump of 100 steps"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["recorded window (steps 100-300)", "optimizer (SGD) continued",
                      "Koopman rollout from step 300, evaluated every 5 steps"]
    assert to_rgba(optimizer.get_color()) != to_rgba(rollout.get_color())
