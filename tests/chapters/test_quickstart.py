"""The Quickstart chapter: its figure plots the losses of direct jumps, its growth is rho(U)^T of
the fitted operators, and its sentences follow the numbers they quote."""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import koopman_lib as kl
from koopman_repro.chapters import quickstart as ch


@pytest.fixture(scope="module")
def quickstart():
    """The chapter's own setting: the same network, window and horizons."""
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = x.sum(1, keepdim=True).sin()
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    mse = lambda model: nn.functional.mse_loss(model(x), y)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    part = kl.make_partition(net, "node")
    t2, T, sgd = 300, 150, []
    rec = kl.TrajectoryRecorder(part.n_params, t1=100, t2=t2)
    for step in range(t2 + T + 1):
        opt.zero_grad(); mse(net).backward(); opt.step()
        rec(step, kl.flatten_params(net))
        sgd.append(mse(net).item())
    probe = copy.deepcopy(net)

    def loss_at(theta):
        kl.load_flat(probe, theta[0])
        return mse(probe).detach().reshape(1)

    fits = {f: kl.Koopman(part, fit=f).fit(rec) for f in (ch.DEFAULT, ch.STABILISED)}
    runs = {f: k.rollout(rec.last(), T, every=5, loss_fn=loss_at) for f, k in fits.items()}
    h = ch.horizons(sgd, t2, runs, {f: k.spectral_radius_ for f, k in fits.items()})
    return SimpleNamespace(h=h, fits=fits, rec=rec, sgd=sgd, t2=t2, loss_at=loss_at)


def test_the_figure_plots_the_losses_of_direct_jumps_and_of_the_optimizer(quickstart):
    q = quickstart
    top, bottom = ch.horizon_figure(q.h).axes
    optimizer, default, stabilised = top.get_lines()[:3]
    np.testing.assert_array_equal(optimizer.get_xdata(), np.arange(0, 151, 5))
    np.testing.assert_array_equal(optimizer.get_ydata(), [q.sgd[q.t2 + T] for T in range(0, 151, 5)])
    for line, fit in ((default, ch.DEFAULT), (stabilised, ch.STABILISED)):
        for T, plotted in zip(line.get_xdata(), line.get_ydata()):
            if T == 0:
                direct = q.loss_at(q.rec.last()[None]).item()
            else:                                   # one jump of T steps, no rollout
                direct = q.loss_at(q.fits[fit].predict(q.rec.last(), int(T))[None]).item()
            assert plotted == pytest.approx(direct, rel=1e-5), (fit, T)
    assert top.get_yscale() == bottom.get_yscale() == "log"
    assert top.get_ylabel() and bottom.get_ylabel() and bottom.get_xlabel() and top.get_title()
    assert [t.get_text() for t in top.get_legend().get_texts()][1:] == [ch.LABELS[ch.DEFAULT],
                                                                         ch.LABELS[ch.STABILISED]]


def test_the_growth_is_rho_to_the_T_of_the_fitted_operators(quickstart):
    q = quickstart
    _, bottom = ch.horizon_figure(q.h).axes
    for line, fit in zip(bottom.get_lines()[:2], (ch.DEFAULT, ch.STABILISED)):
        rho = max(kl.spectral_radius(op.U).max().item() for op in q.fits[fit].operators_)
        assert q.h.rho[fit] == pytest.approx(rho, rel=1e-12)
        np.testing.assert_allclose(line.get_ydata(), [rho ** int(T) for T in line.get_xdata()], rtol=1e-9)
    assert q.h.rho[ch.DEFAULT] > 1 >= q.h.rho[ch.STABILISED] - 1e-9     # clipped to the unit circle
    assert ch.growth(1.024, [0, 100]).tolist() == pytest.approx([1.0, 1.024 ** 100])


def test_the_table_quotes_the_plotted_numbers(quickstart):
    h = quickstart.h
    rows = ch.horizon_rows(h)
    assert [r["horizon $T$ (steps)"] for r in rows] == [25, 50, 75, 100, 125, 150]
    for r in rows:
        i = h.at(r["horizon $T$ (steps)"])
        assert r["jump, default fit"] == h.jumps[ch.DEFAULT][i]
        assert r["jump, stabilised"] == h.jumps[ch.STABILISED][i]
        assert r["optimizer continued $T$ steps"] == h.optimizer[i]


def _horizons(default, stabilised, optimizer, rho=1.02):
    steps = np.arange(0, 25 * len(optimizer), 25)
    return ch.Horizons(300, steps, np.asarray(optimizer, float),
                       {ch.DEFAULT: np.asarray(default, float), ch.STABILISED: np.asarray(stabilised, float)},
                       {ch.DEFAULT: rho, ch.STABILISED: 1.0})


def test_keeps_up_stops_at_the_first_horizon_behind():
    opt = [1.0, 0.9, 0.8, 0.7, 0.6]
    assert ch.keeps_up(_horizons([1.0, 0.9, 0.85, 0.7, 0.6], opt, opt)) == 25   # 0.85 > 1.05 * 0.8
    assert ch.keeps_up(_horizons([1.0, 0.9, 0.85, 0.7, 0.6], opt, opt), tol=0.07) == 100
    assert ch.keeps_up(_horizons([1.0, 1.0, 0.8, 0.7, 0.6], opt, opt)) is None
    assert ch.keeps_up(_horizons([1.0, 0.9, float("nan"), 0.7, 0.6], opt, opt)) == 25  # the guard stopped it
    assert ch.best(_horizons([1.0, 0.9, 0.5, 0.7, float("nan")], opt, opt)) == 50


def test_the_sentences_quote_the_computed_numbers(quickstart):
    h = quickstart.h
    keep, turn = ch.keeps_up(h), ch.best(h)
    text = ch.findings(h)
    assert f"Up to T = {keep} the jump keeps up" in text
    assert f"lowest at T = {turn}" in text
    assert f"$\\rho(U) = {h.rho[ch.DEFAULT]:.3f}$" in text
    assert f"{h.rho[ch.DEFAULT] ** keep:.1f} at T = {keep}" in text
    cost = ch.stabilised_cost(h)
    s, o = h.jumps[ch.STABILISED], h.optimizer
    q = [h.at(T) for T in h.quoted]
    assert ("at every horizon" in cost) == all(s[i] > 1.05 * o[i] for i in q)
    share = (o[0] - s[h.at(keep)]) / (o[0] - o[h.at(keep)])
    assert f"{share:.0%} of the optimizer's progress" in cost
    assert ("removed the growing modes" in cost) == (share < 0.5)
    advice = ch.advice(h)
    assert f"$T \\le {keep}$" in advice and f"T = {turn})" in advice
    assert advice.count("\n- ") == 2                                    # three sentences, a list


def test_the_exercise_answer_compares_the_later_window(quickstart):
    q = quickstart
    late = kl.Koopman(q.fits[ch.DEFAULT].partition).fit(q.rec.snapshots[100:])
    run = late.rollout(q.rec.last(), 150, every=5, loss_fn=q.loss_at)
    text = ch.exercise_answer(q.h, late.spectral_radius_.item(), run, "200-300")
    assert f"rho(U) = {late.spectral_radius_.item():.3f}" in text
    k1 = ch.keeps_up(ch.Horizons(q.h.t2, q.h.steps, q.h.optimizer, {ch.DEFAULT: run.loss[:, 0].numpy()},
                                 {ch.DEFAULT: 1.0}))
    assert f"up to T = {k1} (chapter's window: T = {ch.keeps_up(q.h)})" in text
    with pytest.raises(ValueError, match="stop at step"):
        ch.horizons(q.sgd[:400], q.t2, {ch.DEFAULT: run}, {ch.DEFAULT: 1.0})
