import math

import pytest
import torch

import koopman_lib as kl
from koopman_lib.ensembles import EnsembleMLP
from koopman_lib.window import (Window, choose, holdout_errors, rank_agreement, score_window, spectral_score,
                                window_grid)


def test_window_grid_and_validation():
    grid = window_grid([0, 10, 20], [5, 15], t_max=30)
    assert grid == [Window(0, 5), Window(0, 15), Window(10, 15), Window(10, 25), Window(20, 25)]
    assert Window(3, 9).length == 6
    with pytest.raises(ValueError, match="t1 < t2"):
        Window(5, 5)


def test_spectral_score_is_horizon_scaled_log_radius():
    radii = [torch.tensor([[1.0, 1.001], [0.999, 0.5]], dtype=torch.float64), torch.tensor([[1.0], [1.0]])]
    s = spectral_score(radii, T=100)
    assert torch.allclose(s, torch.tensor([100 * math.log(1.001), 100 * math.log(2.0)], dtype=torch.float64))
    s50 = spectral_score(radii, T=100, q=0.0)
    assert torch.allclose(s50, torch.zeros(2, dtype=torch.float64))


def switching_trajectory(part, k_noise, k_lin, seed=0):
    """Random-walk weights (no linear structure) followed by exactly linear block dynamics."""
    g = torch.Generator().manual_seed(seed)
    snaps = torch.empty(k_noise + k_lin, part.n_params, dtype=torch.float64)
    snaps[:k_noise] = torch.randn(k_noise, part.n_params, generator=g, dtype=torch.float64).cumsum(0)
    # scaled random rotations: every eigenvalue has modulus 0.995, so no direction dies out
    ops = [0.995 * torch.linalg.qr(torch.randn(g_.shape[0], g_.shape[1], g_.shape[1], generator=g,
                                               dtype=torch.float64))[0] for g_ in part.groups]
    for t in range(k_noise, k_noise + k_lin):
        blocks = [(U @ b.unsqueeze(-1)).squeeze(-1) for U, b in zip(ops, part.blocks(snaps[t - 1]))]
        snaps[t] = part.assemble(blocks)
    return snaps


def test_holdout_error_is_zero_on_exact_linear_dynamics_and_large_on_noise():
    net = EnsembleMLP([2, 3, 2], "relu")
    part = kl.make_partition(net.shapes, "node")
    snaps = switching_trajectory(part, 60, 60)
    lin = holdout_errors(snaps[70:], part, holdout=10)
    noise = holdout_errors(snaps[:60], part, holdout=10)
    assert lin["one_step"] < 1e-8 and lin["multi_step"] < 1e-8
    assert noise["one_step"] > 0.3 and noise["multi_step"] > 0.3


def test_criteria_pick_the_linear_window():
    net = EnsembleMLP([2, 3, 2], "relu")
    part = kl.make_partition(net.shapes, "node")
    snaps = switching_trajectory(part, 60, 60, seed=3)
    windows = [Window(0, 40), Window(20, 59), Window(65, 100), Window(70, 119)]
    scores = [score_window(snaps[w.t1:w.t2 + 1], part, T=20, holdout=8) for w in windows]
    best = {c: int(choose(torch.stack([s[c] for s in scores]))) for c in ("one_step", "multi_step")}
    assert best["one_step"] in (2, 3) and best["multi_step"] in (2, 3)
    # a window of exact stable dynamics has no radius above 1
    assert float(scores[3]["max_radius"]) < 1.0


def test_choose_and_rank_agreement():
    scores = torch.tensor([[3.0, float("nan")], [1.0, 2.0], [2.0, 1.0]])
    assert choose(scores).tolist() == [1, 2]
    crit = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rank_agreement(crit, -crit) == pytest.approx(1.0)
    assert rank_agreement(crit, crit) == pytest.approx(-1.0)
    assert math.isnan(rank_agreement(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])))


def test_holdout_takes_a_cutoff_and_low_rank_blocks_and_score_window_reuses_the_fit():
    net = EnsembleMLP([2, 3, 2], "relu")
    part = kl.make_partition(net.shapes, "network")                # one block of 17 weights
    snaps = switching_trajectory(part, 1, 40, seed=5)[1:]        # a random start, then exactly linear
    # 12 training snapshots: m = 17 > k - 1 = 11, so the fit keeps U = A B (low rank)
    short = snaps[:16]
    fitted = kl.Koopman(part).fit(short[:12].clone())
    assert fitted.operators_[0].low_rank
    low = holdout_errors(short, part, holdout=4)
    dense = holdout_errors(short, part, holdout=4, fit=lambda x: kl.Koopman.from_operators(
        part, [op.as_dense() for op in kl.Koopman(part).fit(x).operators_]))
    for key in ("one_step", "multi_step"):
        torch.testing.assert_close(low[key], dense[key], rtol=1e-8, atol=1e-12)
    # cutoff (was rcond) reaches the fit: rank 1 is a much worse one-step predictor than the full fit
    full = holdout_errors(snaps, part, holdout=5)
    rank1 = holdout_errors(snaps, part, holdout=5, cutoff=1)
    assert full["one_step"] < 1e-8 and rank1["one_step"] > 1e-3
    assert holdout_errors(snaps, part, holdout=5, method="pinv")["one_step"] == full["one_step"]
    # score_window with a fitted estimator reports its radii
    kp = kl.Koopman(part).fit(snaps)
    sc = score_window(snaps, part, T=10, holdout=5, fitted=kp)
    torch.testing.assert_close(sc["max_radius"], kp.spectral_radius_)
    assert float(sc["max_radius"]) == pytest.approx(0.995, abs=1e-8)
