"""The perceptron experiment (supplement S8): rule, Koopman evolution, scoring, result schema."""
import dataclasses
import json

import numpy as np
import pytest
import torch

import koopman_lib as kl
from koopman_repro.experiments import perceptron as pc
from koopman_lib.estimator import BOOK_FITS, STRIDED_FITS
from koopman_lib.fit import FITS, numerical_rank
from koopman_lib.stride import choose_stride, floor_horizon, strided_window
from koopman_repro import rows
from koopman_repro.chapters import perceptron as chapter
from koopman_repro.experiments import reproduce
from koopman_repro.migrations import upgrade
from koopman_lib.partition import LayerShape

TINY = dataclasses.replace(pc.PROFILES["ci"], steps=120, n_sims=40, koopman_start=40, window=30,
                           window_sweep=(10, 30), input_sweep=((4, 1), (8, 2)), sweep_sims=20, smooth=10)


def test_inputs_have_the_asked_activity_and_groups_switch_together():
    g = torch.Generator().manual_seed(0)
    x = pc.sample_inputs(400, 200, 8, 0.125, group_size=2, generator=g)
    assert x.dtype == torch.bool and x.shape == (400, 200, 8)
    assert float(x.double().mean()) == pytest.approx(0.125, abs=0.005)
    assert torch.equal(x[..., 0], x[..., 1]) and torch.equal(x[..., 6], x[..., 7])
    assert not torch.equal(x[..., 1], x[..., 2])
    y = pc.targets(x)
    torch.testing.assert_close(y[..., 0], x[..., :4].any(-1).double())
    torch.testing.assert_close(y[..., 1], x[..., 4:].any(-1).double())


def test_batched_rule_matches_a_scalar_reference_loop():
    g = torch.Generator().manual_seed(1)
    S, n, steps, eta = 5, 4, 60, 0.05
    W0 = 0.5 + 0.5 * torch.rand(S, 2, n, generator=g, dtype=torch.float64)
    X = pc.sample_inputs(steps, S, n, 0.25, generator=g)
    Y = pc.targets(X)
    W, errs = W0.clone(), []
    for t in range(steps):
        W, e = pc.rule_step(W, X[t].double(), Y[t], eta, 1.0)
        errs.append(e)
    ref = W0.clone().tolist()
    wrong = 0
    for t in range(steps):
        for s in range(S):
            x = X[t, s].double().tolist()
            for i in range(2):
                y_hat = 1.0 if sum(w * xi for w, xi in zip(ref[s][i], x)) > 1.0 else 0.0
                err = y_hat - float(Y[t, s, i])
                wrong += abs(err)
                ref[s][i] = [w - eta * err * xi for w, xi in zip(ref[s][i], x)]
    torch.testing.assert_close(W, torch.tensor(ref, dtype=torch.float64), rtol=0, atol=1e-12)
    assert float(torch.stack(errs).sum()) == pytest.approx(100.0 * wrong / 2)


def test_a_solved_perceptron_makes_no_errors_and_the_rule_leaves_it_alone():
    n = 6
    W = torch.where(pc.relevance_mask(n), 1.5, 0.3).to(torch.float64).expand(3, 2, n).clone()
    X = pc.sample_inputs(50, 3, n, 0.5, generator=torch.Generator().manual_seed(2))
    err = pc.percent_error(W.expand(50, 3, 2, n), X, pc.targets(X), 1.0)
    assert float(err.abs().max()) == 0.0
    W2, e = pc.rule_step(W, X[0].double(), pc.targets(X[0]), 0.005, 1.0)
    assert torch.equal(W2, W) and float(e.max()) == 0.0


def test_smooth_is_a_trailing_mean():
    err = torch.rand(30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    sm = pc.smooth(err, 7)
    for t in (0, 3, 6, 7, 29):
        torch.testing.assert_close(sm[t], err[max(0, t - 6):t + 1].mean(0))


def test_asymptote_and_first_passage():
    curve = np.array([30.0, 20.0, 12.0, 5.5, 4.2, 6.0, 4.5, 4.0])
    assert pc.steps_to_asymptote(curve, 1.0) == 7      # 6.0 at step 6 is the last point more than 1 from 4.0
    assert pc.steps_to_asymptote(np.full(5, 3.0), 1.0) == 1
    assert pc.first_passage(curve, 5.5) == 4
    assert pc.first_passage(curve, 1.0) is None


def test_hold_last_finite_keeps_the_last_finite_weights_per_simulation():
    W = torch.arange(4 * 3 * 2, dtype=torch.float64).reshape(4, 3, 2)
    W[2, 1, 0] = float("inf")
    W[3, 1, 1] = float("nan")
    W[3, 2, 0] = float("inf")
    out = pc.hold_last_finite(W)
    torch.testing.assert_close(out[2, 1], W[1, 1])
    torch.testing.assert_close(out[3, 1], W[1, 1])
    torch.testing.assert_close(out[3, 2], W[2, 2])
    torch.testing.assert_close(out[:, 0], W[:, 0])


@pytest.mark.parametrize("chunk", [7, 1000])
def test_single_weight_evolution_is_the_closed_form_power(chunk):
    g = torch.Generator().manual_seed(4)
    k, S, n = 12, 6, 4
    lam = 0.98 + 0.04 * torch.rand(S, 2 * n, generator=g, dtype=torch.float64)
    w0 = 0.5 + torch.rand(S, 2 * n, generator=g, dtype=torch.float64)
    rec = w0 * lam ** torch.arange(k, dtype=torch.float64).reshape(k, 1, 1)
    part = kl.make_partition([LayerShape("p", 2, n, False)], "single")
    kp = pc.fit_koopman(part, rec, "pinv")
    out = torch.cat(list(kp.path(rec[-1], 30, chunk)))
    expected = rec[-1] * lam ** torch.arange(1, 31, dtype=torch.float64).reshape(30, 1, 1)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=0)


def test_fit_methods_map_onto_koopman_and_short_windows_give_dense_operators():
    g = torch.Generator().manual_seed(6)
    S, n = 3, 4
    rec = 0.5 + torch.rand(6, S, 2 * n, generator=g, dtype=torch.float64)   # network blocks: m = 8 > k - 1 = 5
    part = kl.make_partition([LayerShape("p", 2, n, False)], "network")
    pinv = pc.fit_koopman(part, rec, "pinv")
    assert pinv.method == "svd" and not pinv.operators_[0].low_rank
    for name in ("svd", "lstsq"):
        other = pc.fit_koopman(part, rec, name)
        torch.testing.assert_close(other.operators_[0].U, pinv.operators_[0].U, rtol=1e-8, atol=1e-10)
    # the dense operator is the minimum-norm fit: it reproduces every recorded step
    F = part.blocks(rec)[0].reshape(6, -1, 2 * n).permute(1, 2, 0)
    torch.testing.assert_close(pinv.operators_[0].U @ F[..., :-1], F[..., 1:], rtol=0, atol=1e-10)
    torch.testing.assert_close(next(pinv.path(rec[-1], 1)), pinv.predict(rec[-1], 1).unsqueeze(0))
    with pytest.raises(ValueError, match="fit_method"):
        pc.check_config(dataclasses.replace(TINY, fit_method="eig"))


def test_piecewise_constant_recording_is_rank_deficient_and_pinv_gives_the_minimum_norm_fit():
    # a node that changed once in the window: two distinct snapshots, so rank(F) = 2 < m = 4
    a = torch.tensor([0.7, 0.8, 0.6, 0.9], dtype=torch.float64)
    b = a + torch.tensor([0.005, 0.0, 0.0, 0.0], dtype=torch.float64)
    snaps = torch.stack([a, a, a, b, b, b], dim=1)  # (m, k)
    F = snaps[:, :-1]
    assert int(torch.linalg.matrix_rank(F)) == 2 == int(numerical_rank(snaps[None])[0])
    with pytest.raises(kl.FitError, match="singular"):
        kl.finite_section(snaps, method="cholesky")
    U = kl.finite_section(snaps, method="pinv")
    torch.testing.assert_close(U, kl.finite_section(snaps, method="lstsq"), rtol=1e-8, atol=1e-10)
    Q = torch.linalg.svd(F, full_matrices=True).U[:, 2:]  # the orthogonal complement of range(F)
    torch.testing.assert_close(U @ Q, torch.zeros(4, 2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(U @ b, b, rtol=0, atol=1e-12)  # b -> b every time it was seen


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="window"):
        pc.check_config(dataclasses.replace(TINY, window=TINY.koopman_start + 1))
    with pytest.raises(ValueError, match="group_size"):
        pc.check_config(dataclasses.replace(TINY, n_inputs=6, group_size=2))
    with pytest.raises(ValueError, match="n_inputs"):
        pc.check_config(dataclasses.replace(TINY, n_inputs=5))


def test_koopman_runs_share_the_rule_before_the_start_and_the_inputs_after():
    res = pc.simulate(TINY, windows=(TINY.window,), keep_weights=True)
    rule = res["errors"]["rule"]
    for m in ("single_weight", "node", "network"):
        err = res["errors"][(m, TINY.window, "paper")]
        assert err.shape == (TINY.steps, TINY.n_sims)
        torch.testing.assert_close(err[:TINY.koopman_start], rule[:TINY.koopman_start])
        assert set(np.unique(err.numpy())) <= {0.0, 50.0, 100.0}
        w = res["weights"][m]
        assert len(w["relevant"]) == len(res["weights"]["rule"]["relevant"]) == TINY.steps // TINY.weight_stride + 1
        assert w["relevant"][: TINY.koopman_start // TINY.weight_stride + 1] == \
            res["weights"]["rule"]["relevant"][: TINY.koopman_start // TINY.weight_stride + 1]


def test_reproduce_writes_the_result_contract(tmp_path, monkeypatch):
    monkeypatch.setitem(pc.PROFILES, "ci", TINY)
    res = reproduce("perceptron", "ci", tmp_path)
    saved = json.loads((tmp_path / "perceptron.json").read_text())
    assert saved["provenance"]["profile"] == "ci" and saved["provenance"]["config"]["window"] == TINY.window
    for m in ("rule", "single_weight", "node", "network"):
        s = saved["methods"][m]
        assert 1 <= s["steps_to_asymptote"] <= TINY.steps
        assert 0.0 <= s["final_percent_error"] <= 100.0
    assert {r["window"] for r in saved["window_sweep"]} == {10, 30}
    assert {(r["n_inputs"], r["group_size"]) for r in saved["input_sweep"]} == {(4, 1), (8, 2)}
    assert (tmp_path / "perceptron-table.csv").is_file() and (tmp_path / "perceptron-input_sweep.csv").is_file()
    assert len(saved["curves"]["rule"]["mean"]) == TINY.steps
    assert res["methods"]["rule"]["final_percent_error"] == saved["methods"]["rule"]["final_percent_error"]
    # the table: one row per (method, fit), every fit complete with the rule's row
    table = saved["table"]
    assert all(r["fit"] in BOOK_FITS for r in table)
    assert sorted((r["method"], r["fit"]) for r in table) == sorted((m, f) for m in pc.METHODS for f in BOOK_FITS)
    # every Koopman row says its stride: the rule's (from the window and block size) for the strided fits
    for r in table:
        want = None if r["method"] == "rule" else choose_stride(
            TINY.window + 1, _part(pc.METHODS[r["method"]])) if r["fit"] in STRIDED_FITS else 1
        assert r.get("stride") == want, r
    assert {r.get("stride") for r in table if r["fit"] in STRIDED_FITS and r["method"] != "rule"} == {7, 1}
    assert [r["fit"] for r in table[:4]] == ["paper"] * 4       # paper rows first, as in older files
    rules = [{k: v for k, v in r.items() if k != "fit"} for r in table if r["method"] == "rule"]
    assert all(r == rules[0] for r in rules)
    for r in table:
        assert r["steps_to_rule_final"] is None or 1 <= r["steps_to_rule_final"] <= TINY.steps
        assert 0.0 <= r["p_sooner_than_rule"] <= 1.0
        s = saved["methods_by_fit"][r["fit"]][r["method"]]
        assert all(s[k] == v for k, v in r.items() if k not in ("method", "fit"))
    assert saved["methods_by_fit"]["paper"] == saved["methods"]
    # the sweeps carry the sweep fits, paper rows first
    sweep_fits = list(TINY.sweep_fits)
    for key in ("window_sweep", "input_sweep"):
        fits = [r["fit"] for r in saved[key]]
        assert sorted(set(fits), key=sweep_fits.index) == sweep_fits and fits == sorted(fits, key=sweep_fits.index)
    for m in pc.KOOPMAN:
        for f in BOOK_FITS:
            assert len(chapter.curve(saved, m, f)["mean"]) == TINY.steps
    # every table reads back as its declared rows, and the whole file validates
    assert rows.validate(saved, "perceptron") == []
    assert [(r.method, r.fit) for r in rows.table(saved, "table")] == [(r["method"], r["fit"]) for r in table]


def test_centred_smoothing_and_pattern_errors():
    err = torch.arange(10, dtype=torch.float64).reshape(10, 1)
    sm = pc.smooth(err, 4, centered=True)
    torch.testing.assert_close(sm[5], err[3:7].mean(0))
    torch.testing.assert_close(sm[0], err[0:2].mean(0))
    torch.testing.assert_close(sm[9], err[7:10].mean(0))
    e = torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    assert pc.score(e, "output").tolist() == [50.0, 0.0, 100.0]
    assert pc.score(e, "pattern").tolist() == [100.0, 0.0, 100.0]


def test_bootstrap_reach_tells_a_clear_lead_from_a_tie():
    g = torch.Generator().manual_seed(5)
    T, S = 200, 300
    t = torch.arange(T, dtype=torch.float64).reshape(T, 1)
    base = 100.0 * (torch.rand(T, S, generator=g, dtype=torch.float64) < (0.5 * torch.exp(-t / 40) + 0.05))
    fast = 100.0 * (torch.rand(T, S, generator=g, dtype=torch.float64) < (0.5 * torch.exp(-t / 10) + 0.05))
    same = 100.0 * (torch.rand(T, S, generator=g, dtype=torch.float64) < (0.5 * torch.exp(-t / 40) + 0.05))
    cfg = dataclasses.replace(TINY, smooth=20, asymptote_tol=1.0)
    out = pc.bootstrap_reach({"rule": base, "fast": fast, "same": same}, cfg, 200, compete=("fast", "same"))
    assert "p_soonest" not in out["rule"]
    assert out["fast"]["p_sooner_than_rule"] > 0.95 and out["fast"]["p_soonest"] > 0.95
    assert 0.05 < out["same"]["p_sooner_than_rule"] < 0.95
    lo, hi = out["fast"]["steps_to_rule_final_ci95"]
    assert 1 <= lo <= hi <= T + 1


def _recording(n_sims=200, window=40, n_inputs=4, seed=7):
    """``W(t0 - window) .. W(t0)`` ``(window + 1, S, 2 n)`` of the rule (float64), as :func:`pc.simulate`."""
    cfg = dataclasses.replace(TINY, n_sims=n_sims, n_inputs=n_inputs, koopman_start=window, seed=seed)
    g = torch.Generator().manual_seed(seed)
    W = cfg.init_low + (cfg.init_high - cfg.init_low) * torch.rand(n_sims, 2, n_inputs, generator=g, dtype=torch.float64)
    X = pc.sample_inputs(window, n_sims, n_inputs, pc.activity(cfg), generator=g)
    snaps = [W]
    for t in range(window):
        W, _ = pc.rule_step(W, X[t].double(), pc.targets(X[t]), cfg.eta, cfg.threshold)
        snaps.append(W)
    return torch.stack(snaps).reshape(window + 1, n_sims, 2 * n_inputs)


def _part(spec, n=4):
    return kl.make_partition([LayerShape("p", 2, n, False)], spec)


@pytest.mark.parametrize("window", [10, 40])
def test_stabilised_fit_has_no_growing_mode_and_default_is_the_paper_fit_on_float64(window):
    rec = _recording(window=window)
    for spec in ("single", "node", "network"):
        kps = pc.fit_koopmans(_part(spec), rec, tuple(FITS))
        assert list(kps) == list(FITS)
        # float64 weights off the float32 grid: the default's cutoff is the paper's, bit for bit
        assert pc.same_operators(kps["paper"], kps["default"])
        assert pc.same_operators(kps["paper"], pc.fit_koopman(_part(spec), rec))
        radii = torch.cat([r.reshape(-1) for r in kps["default-stabilised"].spectral_radii_])
        assert float(kps["paper"].spectral_radius_.max()) > 1.0   # the rule's recording has growing modes ...
        # ... which the stabilised fit clips onto the unit circle: exactly for scalar blocks; the
        # rebuilt V diag(lambda) V^-1 of a clipped matrix block carries its eigenvector basis's
        # conditioning (koopman_lib.spectra.clip_spectrum), up to ~1e-6 here
        assert float(radii.max()) <= 1 + (1e-12 if spec == "single" else 1e-5)


def test_default_keeps_no_more_singular_values_than_the_paper_fit_on_a_float32_recording():
    rec32 = _recording(window=40).float().double()           # weights recorded in float32, then cast
    assert kl.fit.recorded_precision(rec32) == torch.float32
    fewer = 0
    for spec in ("single", "node", "network"):
        fits = kl.Koopman(_part(spec)).fit_variants(rec32, {f: FITS[f] for f in ("paper", "default")})
        paper, default = fits["paper"].operators_[0].rank, fits["default"].operators_[0].rank
        assert bool((default <= paper).all())
        fewer += int((default < paper).sum())
    assert fewer > 0   # float32 rounding of the piecewise-constant weights is resolved by the paper cutoff only


def test_a_fit_with_the_operators_of_an_earlier_one_shares_its_errors():
    cfg = dataclasses.replace(TINY, n_sims=30)
    res = pc.simulate(cfg, fits=("paper", "default"), main_fits=tuple(FITS))
    for m in pc.KOOPMAN:
        assert res["info"][(m, cfg.window, "default")]["same_operators_as"] == "paper"
        assert res["errors"][(m, cfg.window, "default")] is res["errors"][(m, cfg.window, "paper")]
        assert res["info"][(m, cfg.window, "default-stabilised")]["same_operators_as"] is None
    assert (pc.KOOPMAN[0], cfg.window, "default-stabilised") in res["errors"]
    for bad in (("default",), ("paper", "paper"), ("paper", "nope")):
        with pytest.raises(ValueError, match="fits"):
            pc.check_config(dataclasses.replace(TINY, fits=bad))


def test_a_file_from_before_the_named_fits_is_upgraded_to_the_paper_fit(tmp_path, monkeypatch):
    """Files without ``schema_version`` whose rows have no ``fit`` measured the paper fit alone:
    the migration names it, so that every reader sees declared rows of the current shape."""
    monkeypatch.setitem(pc.PROFILES, "ci", dataclasses.replace(TINY, fits=("paper",), sweep_fits=("paper",)))
    new = reproduce("perceptron", "ci", tmp_path)
    old = json.loads(json.dumps(new))
    for key in ("schema_version", "experiment", "methods_by_fit", "curves_by_fit"):
        del old[key]
    for key in ("table", "window_sweep", "input_sweep"):
        for r in old[key]:
            del r["fit"]
    up = upgrade(old, "perceptron")
    assert "fit" not in old["table"][0]                       # the loaded data is not changed in place
    assert up == json.loads(json.dumps(new))
    assert rows.validate(up, "perceptron") == []
    assert [c.reading for c in chapter.claims(up)] == [c.reading for c in chapter.claims(new)]


def test_the_null_model_continues_the_rule_from_the_koopman_start_on_other_inputs():
    """The optimizer against itself: the same errors as the rule up to koopman_start, other errors
    after it (other inputs), scored by the same summary; simulation i's branch is its own."""
    from dataclasses import replace
    from koopman_repro.experiments import perceptron as P
    cfg = replace(P.PROFILES["ci"], n_sims=8, sweep_sims=4, bootstrap=20, window_sweep=(100,), input_sweep=())
    main = P.simulate(cfg, null=True)
    t0, rule, null = cfg.koopman_start, main["errors"]["rule"], main["null"]
    assert torch.equal(null[:t0], rule[:t0]) and not torch.equal(null[t0:], rule[t0:])
    alone = P.simulate(replace(cfg, networks=(5,)), null=True)["null"]
    assert torch.equal(alone[:, 0], null[:, 5])
    assert P.simulate(cfg)["null"] is None
    res = P.run(cfg)
    row = res["null_model"][0]
    assert row["method"] == "rule, other inputs" and 0 <= row["p_sooner_than_rule"] <= 1
    assert row["mean_percent_error_after_start"] == pytest.approx(float(null[t0:].mean()))


# -- the strided fits ------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["single", "node", "network"])
def test_strided_fits_are_the_default_fits_of_every_sth_snapshot_at_the_rules_stride(spec):
    """The strided fits are the core's (``Koopman(fit="default", stride=s)`` on every ``s``-th
    snapshot, ``s`` from :func:`choose_stride`); where the rule gives ``s = 1`` they are the default fits."""
    rec = _recording(window=30)                                  # 31 snapshots: s = 7, 1, 1 for m = 1, 4, 8
    part = _part(spec)
    s = choose_stride(rec.shape[0], part)
    assert s == {"single": 7, "node": 1, "network": 1}[spec]
    kps = pc.fit_koopmans(part, rec, BOOK_FITS)
    assert list(kps) == list(BOOK_FITS)
    for strided, base in STRIDED_FITS.items():
        kp = kps[strided]
        assert kp.stride_ == s and kps[base].stride_ == 1
        direct = kl.Koopman(part, fit=base, stride=s).fit(strided_window(rec, s))
        named = kl.fit_named(part, rec, [strided])[strided]
        for T in (s, 4 * s, 9 * s):
            torch.testing.assert_close(kp.predict(rec[-1], T), direct.predict(rec[-1], T), rtol=1e-12, atol=0)
            torch.testing.assert_close(kp.predict(rec[-1], T), named.predict(rec[-1], T), rtol=1e-12, atol=0)
        # stride 1: the strided fit is the default fit, bit for bit; a larger stride is another fit
        assert pc.same_operators(kp, kps[base]) == (s == 1)


@pytest.mark.parametrize("chunk", [3, 10, 1000])
def test_held_path_holds_each_strided_prediction_until_the_next(chunk):
    rec = _recording(window=30)
    kp = pc.fit_koopmans(_part("single"), rec, ("default-strided",))["default-strided"]
    s, T = kp.stride_, 45                                        # s = 7: 6 predictions, then 3 steps held
    out = torch.cat(list(pc.held_path(kp, rec[-1], T, chunk)))
    assert out.shape == (T,) + tuple(rec.shape[1:])
    for tau in range(1, T + 1):
        want = rec[-1] if tau < s else kp.predict(rec[-1], floor_horizon(tau, s))
        torch.testing.assert_close(out[tau - 1], want, rtol=1e-12, atol=0)
    default = pc.fit_koopmans(_part("single"), rec, ("default",))["default"]
    torch.testing.assert_close(torch.cat(list(pc.held_path(default, rec[-1], T, chunk))),
                               torch.cat(list(default.path(rec[-1], T))), rtol=0, atol=0)


def test_the_strided_fits_errors_are_the_direct_predictions_scored_on_the_same_inputs():
    """The experiment's errors of a strided fit: the core's strided prediction at floor_horizon of
    each step (held between grid points) scored by :func:`pc.percent_error` on the run's inputs;
    where the rule's stride is 1 the strided fit shares the default's operators and errors."""
    cfg = dataclasses.replace(TINY, n_sims=30)
    res = pc.simulate(cfg, fits=("paper",), main_fits=BOOK_FITS)
    t0, w, n = cfg.koopman_start, cfg.window, cfg.n_inputs
    W, X = pc.draw(cfg, pc.simulations(cfg))
    Y, snaps = pc.targets(X), [W]
    for t in range(t0):
        W, _ = pc.rule_step(W, X[t].double(), Y[t], cfg.eta, cfg.threshold)
        snaps.append(W)
    rec = torch.stack(snaps[t0 - w:]).reshape(w + 1, cfg.n_sims, 2 * n)
    for method in pc.KOOPMAN:
        part = _part(pc.METHODS[method], n)
        s = choose_stride(w + 1, part)
        for strided, base in STRIDED_FITS.items():
            key = (method, w, strided)
            assert res["info"][key]["stride"] == s
            if s == 1:
                assert res["errors"][key] is res["errors"][(method, w, base)]
                assert res["info"][key]["same_operators_as"] in ("paper", base)
                continue
            assert res["info"][key]["same_operators_as"] is None
            direct = kl.Koopman(part, fit=base, stride=s).fit(strided_window(rec, s))
            preds = torch.stack([rec[-1] if tau < s else direct.predict(rec[-1], floor_horizon(tau, s))
                                 for tau in range(cfg.steps - t0)])           # weights after t0 + tau steps
            assert bool(torch.isfinite(preds).all())
            want = pc.percent_error(preds.reshape(-1, cfg.n_sims, 2, n), X[t0:], Y[t0:], cfg.threshold)
            torch.testing.assert_close(res["errors"][key][t0:], want, rtol=0, atol=0)
            torch.testing.assert_close(res["errors"][key][:t0], res["errors"]["rule"][:t0], rtol=0, atol=0)
