"""Koopman training a perceptron (paper supplement S8, Fig. S4).

A perceptron with ``n_inputs`` binary inputs and 2 outputs learns two ORs: output 1
is on iff any unit of the first half of the inputs is on, output 2 likewise for the
second half. ``y_hat_i = step(w_i . x)`` with ``step(z) = 1 if z > threshold``; the
rule is ``dW = -eta (y_hat - y) x^T``. ``n_sims`` independent simulations run as one
batched computation on weights ``W`` ``(S, 2, n_inputs)``.

After ``koopman_start`` rule steps the weights are handed to Koopman operators fitted
(float64, :class:`koopman_lib.Koopman`) on the snapshots ``W(start - window) .. W(start)`` with
three partitions (Single Weight, Node = the weights into one output, Network), and
evolved with them for the remaining steps. Each partition is fitted with the book's named fits
(:data:`koopman_lib.estimator.BOOK_FITS`, ``Config.fits``: the paper's, the library default and the
stabilised default, from one factorisation per block, and the two strided fits, from a second one);
the window and input sweeps use ``Config.sweep_fits``.

The strided fits (``default-strided``, ``default-strided-stabilised``,
:data:`koopman_lib.estimator.STRIDED_FITS`) are the default fits of every ``s``-th snapshot of the
window, ``s`` chosen per partition by :func:`koopman_lib.stride.choose_stride` from the window's
snapshots and the block size alone (never from an error): at the paper's window of 100 steps
(101 snapshots) ``s = 25`` for Single Weight (``m = 1``), 6 for Node (``m = 4``) and 3 for Network
(``m = 8``). Where the rule gives ``s = 1`` (short windows, wide blocks) the strided fit *is* the
default fit, bit for bit: its row says ``stride = 1`` and ``same_operators_as`` names the fit whose
operators it has. A fit of stride ``s`` predicts the weights only at ``t0 + s, t0 + 2s, ..``
(evolved :func:`koopman_lib.stride.floor_horizon` ``(steps - t0, s)`` steps); it is scored on the
same inputs and by the same function as every fit, every step, with the weights of its last grid
point (:func:`held_path`: each predicted state answers the ``s`` inputs that follow it), which can
only understate its progress, by less than ``s`` steps. The recorded weights are float64 (uniform initial weights moved by
``+-eta``), so the default's cutoff is the paper's and its operators are the paper's, bit for
bit: an evolution whose operators equal those of a fit already evolved is not run again but
shares its errors (``same_operators_as`` names that fit). Every method is scored on the same fresh
inputs (common random numbers): the percent of output units that are wrong at each
step, smoothed per simulation by a trailing window of ``smooth`` steps, mean +- SEM
over simulations.

Results: ``table`` has one row per (method, named fit), the rule's row repeated for every fit
(``fit`` names it); ``methods`` (the paper fit) and ``methods_by_fit`` hold the summaries with
the operator diagnostics and bootstrap intervals; ``curves`` (paper fit) and ``curves_by_fit``
the smoothed error curves (read them with :func:`koopman_repro.chapters.perceptron.curve`);
``window_sweep`` and ``input_sweep`` rows carry ``fit`` too, paper rows first. Every Koopman row and
summary says its ``stride`` (optimizer steps between the fitted snapshots: 1 but for the strided
fits; ``None`` for the rule). The rows are
declared in :mod:`koopman_repro.rows.perceptron`; the chapter's tables, figures and the paper's
claims with their verdicts are in :mod:`koopman_repro.chapters.perceptron`.

Perceptron weights move only on errors, by +-eta, so a recording is piecewise
constant and its snapshot matrix ``F`` is often rank deficient for Node and Network
blocks. The fit is ``F' pinv(F)`` (minimum norm, as the paper's MATLAB ``pinv``); a
Cholesky solve of the normal equations would refuse those blocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from koopman_lib.threads import torch_threads
from ..check_values import EARLY_STEPS, EarlyNorms, check_table, merge, with_networks
from koopman_lib.estimator import BOOK_FITS, Koopman
from koopman_lib.fit import FITS, numerical_rank
from koopman_lib.stride import floor_horizon, strided_window
from koopman_lib.partition import LayerShape, make_partition
from koopman_lib.progress import bar
from koopman_lib.seeds import branch_seed, network_seed

#: method name -> partition spec (``rule`` is the perceptron rule alone)
METHODS = {"rule": None, "single_weight": "single", "node": "node", "network": "network"}
#: ``Config.fit_method`` -> ``Koopman(method=...)`` ("pinv" is the SVD fit with the paper's cutoff)
FIT_METHODS = {"pinv": "svd", "svd": "svd", "lstsq": "lstsq", "cholesky": "cholesky"}
ERROR_UNITS = ("output", "pattern")


@dataclass(frozen=True)
class Config:
    n_inputs: int = 4                 # S8 Table S3
    activity: float | None = None     # P(input unit on); None -> 1 / n_inputs (S8: 1/4; S8.3: 1/n1)
    group_size: int = 1               # our choice for S8.3's "correlated inputs": units of one half are tied
                                      # in groups of this size that switch on together (marginal stays `activity`)
    threshold: float = 1.0            # step(z) = 1 if z > threshold (S8 eq. 10)
    eta: float = 0.005                # S8 Table S3
    init_low: float = 0.5             # initial weights U[init_low, init_high] (Table S3)
    init_high: float = 1.0
    steps: int = 1000                 # Table S3
    n_sims: int = 1000                # Table S3
    koopman_start: int = 100          # "after 100 training steps" (S8.2)
    window: int = 100                 # unstated: number of rule steps before koopman_start in the fit
                                      # (window + 1 snapshots); 100 = everything the rule has done so far
    fit_method: str = "pinv"          # the paper's pinv (minimum norm on rank-deficient recordings):
                                      # Koopman(method="svd") with the paper cutoff; see FIT_METHODS
    smooth: int = 50                  # sliding window of Fig. S4d
    smooth_centered: bool = False     # unstated: trailing (causal) window; True centres it on each step
    error_unit: str = "output"        # unstated: "output" = percent of output units wrong;
                                      # "pattern" = percent of steps with any output wrong
    asymptote_tol: float = 1.0        # percentage points, for steps_to_asymptote
    window_sweep: tuple[int, ...] = (10, 25, 50, 100)
    input_sweep: tuple[tuple[int, int], ...] = ((4, 1), (8, 1), (16, 1), (8, 2), (16, 4))  # (n_inputs, group_size)
    sweep_sims: int = 1000
    weight_stride: int = 5            # keep mean weights every this many steps (plots)
    chunk: int = 100                  # Koopman evolution is scored in time chunks of this many steps
    bootstrap: int = 400              # resamples of the simulations for intervals on "steps to" (0: none)
    fits: tuple[str, ...] = BOOK_FITS                    # named fits (koopman_lib.estimator.BOOK_FITS: FITS and
                                                         # the strided ones) of the main comparison
    sweep_fits: tuple[str, ...] = ("paper", "default")   # ... of the window and input sweeps
    seed: int = 0                     # simulation i draws its initial weights and inputs from its own
                                      # generator, seeded koopman_lib.seeds.network_seed(seed, i)
    networks: tuple[int, ...] | None = None  # None: simulations 0..n_sims-1; else only these (the
                                             # regeneration check reruns a few of a saved run)


PROFILES = {
    "ci": Config(sweep_sims=500),
    "paper": Config(),
}


# -- the perceptron ----------------------------------------------------------------------------
def check_config(cfg: Config) -> None:
    """Raise ``ValueError`` naming a bad field and the fix."""
    if cfg.n_inputs < 2 or cfg.n_inputs % 2:
        raise ValueError(f"n_inputs must be even and >= 2 (two halves, one OR each), got {cfg.n_inputs}")
    half = cfg.n_inputs // 2
    if cfg.group_size < 1 or half % cfg.group_size:
        raise ValueError(f"group_size must divide n_inputs / 2 = {half}, got {cfg.group_size}")
    if not 0 < activity(cfg) <= 1:
        raise ValueError(f"activity must be in (0, 1], got {cfg.activity}")
    if not 0 < cfg.koopman_start < cfg.steps:
        raise ValueError(f"need 0 < koopman_start < steps, got {cfg.koopman_start} and {cfg.steps}")
    for w in (cfg.window,) + tuple(cfg.window_sweep):
        if not 1 <= w <= cfg.koopman_start:
            raise ValueError(f"window {w} must be in 1..koopman_start={cfg.koopman_start}: the fit uses "
                             "rule snapshots recorded before Koopman training starts")
    if cfg.smooth < 1 or cfg.n_sims < 1 or cfg.bootstrap < 0:
        raise ValueError("smooth and n_sims must be >= 1 and bootstrap >= 0")
    if cfg.networks is not None and (not cfg.networks or not all(0 <= i < cfg.n_sims for i in cfg.networks)):
        raise ValueError(f"networks must be indices in 0..n_sims-1={cfg.n_sims - 1}, got {cfg.networks}")
    if cfg.error_unit not in ERROR_UNITS:
        raise ValueError(f"error_unit must be one of {ERROR_UNITS}, got {cfg.error_unit!r}")
    if cfg.fit_method not in FIT_METHODS:
        raise ValueError(f"fit_method must be one of {tuple(FIT_METHODS)}, got {cfg.fit_method!r}")
    for field in ("fits", "sweep_fits"):
        names = tuple(getattr(cfg, field))
        if not names or names[0] != "paper" or len(set(names)) != len(names) or not set(names) <= set(BOOK_FITS):
            raise ValueError(f"{field} must start with 'paper' and name distinct fits of {BOOK_FITS}, got {names}")


def activity(cfg: Config) -> float:
    return 1.0 / cfg.n_inputs if cfg.activity is None else cfg.activity


def simulations(cfg: Config) -> list[int]:
    """The indices of the simulations a run makes (``cfg.networks``, by default all ``n_sims``)."""
    return list(range(cfg.n_sims)) if cfg.networks is None else list(cfg.networks)


def draw(cfg: Config, sims: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial weights ``(S, 2, n)`` and inputs ``(steps, S, n)`` of simulations ``sims``: each from
    its own generator, seeded :func:`koopman_lib.seeds.network_seed` ``(cfg.seed, i)`` (weights
    first, then the inputs), so simulation ``i`` is the same in any run that makes it."""
    n, Ws, Xs = cfg.n_inputs, [], []
    for i in sims:
        gen = torch.Generator().manual_seed(network_seed(cfg.seed, i))
        Ws.append(cfg.init_low + (cfg.init_high - cfg.init_low) * torch.rand(2, n, generator=gen, dtype=torch.float64))
        Xs.append(sample_inputs(cfg.steps, 1, n, activity(cfg), cfg.group_size, gen))
    return torch.stack(Ws), torch.cat(Xs, dim=1)


def sample_inputs(n_steps: int, n_sims: int, n_inputs: int, p: float, group_size: int = 1,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Fresh binary inputs ``(n_steps, S, n_inputs)`` (bool), each unit on with probability ``p``.

    Units are tied in consecutive groups of ``group_size`` (inside a half when
    ``group_size`` divides ``n_inputs / 2``) that switch on and off together.
    """
    groups = torch.rand(n_steps, n_sims, n_inputs // group_size, generator=generator, dtype=torch.float64) < p
    return groups.repeat_interleave(group_size, dim=-1)


def targets(x: torch.Tensor) -> torch.Tensor:
    """OR of each half: ``(..., n_inputs)`` -> ``(..., 2)`` float64."""
    half = x.shape[-1] // 2
    return torch.stack([x[..., :half].any(-1), x[..., half:].any(-1)], -1).to(torch.float64)


def outputs(W: torch.Tensor, x: torch.Tensor, threshold: float) -> torch.Tensor:
    """``step(W x)``: ``W`` ``(S, 2, n)``, ``x`` ``(S, n)`` float -> ``(S, 2)`` float64."""
    return ((W @ x.unsqueeze(-1)).squeeze(-1) > threshold).to(torch.float64)


def score(e: torch.Tensor, unit: str = "output") -> torch.Tensor:
    """Percent error from output errors ``e = y_hat - y`` ``(..., 2)`` -> ``(...)``."""
    return 100.0 * (e.abs().mean(-1) if unit == "output" else e.abs().amax(-1))


def rule_step(W: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eta: float, threshold: float,
              unit: str = "output"):
    """One perceptron step. Returns ``(W_new, percent_error (S,))`` (the error of ``W`` on ``x``)."""
    e = outputs(W, x, threshold) - y
    return W - eta * e.unsqueeze(-1) * x.unsqueeze(-2), score(e, unit)


def relevance_mask(n_inputs: int) -> torch.Tensor:
    """``(2, n_inputs)`` bool: True for the weights from a unit to the output of its own half."""
    half = n_inputs // 2
    mask = torch.zeros(2, n_inputs, dtype=torch.bool)
    mask[0, :half] = True
    mask[1, half:] = True
    return mask


def smooth(err: torch.Tensor, width: int, centered: bool = False) -> torch.Tensor:
    """Moving average along time, ``(T, S)`` -> ``(T, S)``: over steps ``t-width+1 .. t``
    (trailing) or ``t-width//2 .. t+width-width//2-1`` (centred); shorter windows at the ends."""
    T = err.shape[0]
    c = torch.cat([torch.zeros_like(err[:1]), err.cumsum(0)])
    t = torch.arange(T)
    lo = t - (width // 2 if centered else width - 1)
    hi = lo + width
    lo, hi = lo.clamp(0, T), hi.clamp(0, T)
    return (c[hi] - c[lo]) / (hi - lo).unsqueeze(-1).to(err.dtype)


def steps_to_asymptote(curve: np.ndarray, tol: float) -> int:
    """First step (1-based) from which ``curve`` stays within ``tol`` of its final value."""
    outside = np.nonzero(np.abs(curve - curve[-1]) > tol)[0]
    return int(outside[-1] + 2) if outside.size else 1


def first_passage(curve: np.ndarray, level: float) -> int | None:
    """First step (1-based) with ``curve <= level``; ``None`` if never."""
    hit = np.nonzero(curve <= level)[0]
    return int(hit[0] + 1) if hit.size else None


def percent_error(W: torch.Tensor, x: torch.Tensor, y: torch.Tensor, threshold: float,
                  unit: str = "output") -> torch.Tensor:
    """Percent error (see :func:`score`): ``W`` ``(c, S, 2, n)``, ``x`` ``(c, S, n)``, ``y`` ``(c, S, 2)`` -> ``(c, S)``."""
    y_hat = ((W @ x.to(W.dtype).unsqueeze(-1)).squeeze(-1) > threshold).to(torch.float64)
    return score(y_hat - y, unit)


def _dense(kp: Koopman) -> Koopman:
    """``kp`` with every operator dense (blocks larger than the window, ``m > k - 1``, are fitted
    in low-rank form ``A B`` and multiplied out: the same operator). :meth:`Koopman.path` steps
    either form; for the perceptron's small blocks one dense product per step is the cheaper."""
    if any(op.low_rank for op in kp.operators_):
        kp = Koopman.from_operators(kp.partition, [op.as_dense() for op in kp.operators_], kp.batch_shape_,
                                    stride=kp.stride_)
    return kp


def fit_koopman(part, rec: torch.Tensor, fit_method: str = "pinv") -> Koopman:
    """The paper-fit Koopman operators of the recording ``rec`` ``(k, S, D)`` (time first) in
    float64, dense (see :func:`_dense`); ``fit_method`` picks the solver (:data:`FIT_METHODS`)."""
    m = FIT_METHODS[fit_method]
    return _dense(Koopman(part, method=m, cutoff="paper" if m == "svd" else None).fit(rec))


def fit_koopmans(part, rec: torch.Tensor, fits=("paper",), fit_method: str = "pinv") -> dict[str, Koopman]:
    """``{name: dense Koopman}`` for the named fits ``fits`` (:data:`koopman_lib.estimator.BOOK_FITS`)
    of the recording ``rec`` ``(k, S, D)`` (every step of the window):
    :meth:`koopman_lib.Koopman.fit_named`, one factorisation per block for the fits of
    :data:`koopman_lib.fit.FITS` and a second one of every ``s``-th snapshot for the strided fits
    (``stride_ = s = choose_stride(k, part)``). ``"paper"`` is the operator of ``fit_method`` (the
    paper's pinv unless set otherwise); the other fits are SVD fits."""
    m = FIT_METHODS[fit_method]
    svd = [f for f in fits if m == "svd" or f != "paper"]
    out = {}
    if len(fits) > len(svd):
        out["paper"] = fit_koopman(part, rec, fit_method)
    if svd:
        out.update({f: _dense(kp) for f, kp in Koopman(part).fit_named(rec, svd).items()})
    return {f: out[f] for f in fits}


def same_operators(a: Koopman, b: Koopman) -> bool:
    """True when ``a`` and ``b`` have the same stride and their (dense) operators are equal bit for bit."""
    return (a.stride_ or 1) == (b.stride_ or 1) and \
        all(torch.equal(x.as_dense(), y.as_dense()) for x, y in zip(a.operators_, b.operators_))


def held_path(kp: Koopman, start: torch.Tensor, T: int, chunk: int):
    """The weights after ``1 .. T`` steps from ``start`` ``(S, D)``, in time chunks ``(c, S, D)``.

    At stride 1 this is :meth:`koopman_lib.Koopman.path`. A fit of stride ``s`` predicts only
    every ``s``-th step: it is evolved :func:`koopman_lib.stride.floor_horizon` ``(T, s)`` steps
    (``T // s`` applications of ``U_s``, chunks of about ``chunk`` steps) and the weights after
    ``tau`` steps are its prediction at ``floor_horizon(tau, s)`` (``start`` for ``tau < s``): each
    predicted state is held for the ``s`` steps up to the next one."""
    s = kp.stride_ or 1
    if s == 1:
        yield from kp.path(start, T, chunk)
        return
    prev = start.to(kp.dtype).unsqueeze(0)                                   # (1, S, D)
    if T >= s:
        for states in kp.path(start, floor_horizon(T, s), max(1, chunk // s)):    # (c, S, D) at s, 2s, ..
            held = torch.cat([prev, states])
            yield held[torch.arange(1, states.shape[0] * s + 1) // s]
            prev = states[-1:]
    if T % s:
        yield prev.expand(T % s, *prev.shape[1:]).clone()


def hold_last_finite(W: torch.Tensor, ok: torch.Tensor | None = None) -> torch.Tensor:
    """Replace every non-finite ``W[t, s]`` by the last finite ``W[t', s]`` (``t' < t``).

    ``W`` ``(c, S, ...)`` with ``W[0]`` finite; ``ok`` ``(c, S)`` (optional, computed if not
    given) says which ``W[t, s]`` are finite. This is the divergence guard of Koopman
    evolution applied per simulation: an overflowed network keeps its last finite weights.
    """
    c, S = W.shape[:2]
    if ok is None:
        ok = torch.isfinite(W).reshape(c, S, -1).all(-1)
    if bool(ok.all()):
        return W
    if not bool(ok[0].all()):
        raise ValueError("the first row must be finite")
    idx = torch.where(ok, torch.arange(c).unsqueeze(1), torch.zeros(1, dtype=torch.long)).cummax(0).values
    return torch.gather(W, 0, idx.reshape(c, S, *([1] * (W.ndim - 2))).expand_as(W))


# -- one batch of simulations ------------------------------------------------------------------
@dataclass
class _RulePhase:
    """The rule's run of one batch: its inputs, the recorded weights ``W(0) .. W(t0)``, its errors
    and (on the plot grid) the median weights and simulation 0's weights."""
    X: torch.Tensor            # (T, S, n) bool inputs
    Y: torch.Tensor            # (T, S, 2) targets
    snaps: torch.Tensor        # (t0 + 1, S, 2, n) float64
    errors: torch.Tensor       # (T, S) percent error
    medians: list              # [(relevant, irrelevant)] every ``weight_stride`` steps from 0
    example: list              # [W[0]] at the same steps


def _median_weights(W: torch.Tensor, rel: torch.Tensor) -> tuple[float, float]:
    """Medians over simulations and weights of the relevant and the irrelevant weights (a few
    overflowing runs would swamp a mean)."""
    return (float(W[:, rel].median()), float(W[:, ~rel].median()))


def _weight_summary(medians: list, example: list) -> dict:
    return {"relevant": [m[0] for m in medians], "irrelevant": [m[1] for m in medians],
            "example": torch.stack(example)}


def _rule_phase(cfg: Config, desc: str) -> _RulePhase:
    """Draw the initial weights and the inputs of ``cfg.seed``; run the rule for ``cfg.steps``
    steps, recording ``W(0) .. W(koopman_start)`` in float64."""
    n, T, t0 = cfg.n_inputs, cfg.steps, cfg.koopman_start
    W, X = draw(cfg, simulations(cfg))
    S = W.shape[0]
    Y = targets(X)
    rel = relevance_mask(n)
    snaps = torch.empty(t0 + 1, S, 2, n, dtype=torch.float64)
    snaps[0] = W
    err = torch.empty(T, S, dtype=torch.float64)
    medians, example = [_median_weights(W, rel)], [W[0].clone()]
    for t in bar(range(T), desc=f"{desc}: rule"):
        W, err[t] = rule_step(W, X[t].to(torch.float64), Y[t], cfg.eta, cfg.threshold, cfg.error_unit)
        if t + 1 <= t0:
            snaps[t + 1] = W
        if (t + 1) % cfg.weight_stride == 0:
            medians.append(_median_weights(W, rel))
            example.append(W[0].clone())
    return _RulePhase(X, Y, snaps, err, medians, example)


def rule_branch(cfg: Config, rule: _RulePhase) -> torch.Tensor:
    """The optimizer against itself: the rule continued from ``W(koopman_start)``, the state the
    Koopman variants start from, on other inputs (simulation ``i`` draws them from its own
    generator seeded :func:`koopman_lib.seeds.branch_seed` ``(cfg.seed, i)``). Returns its percent
    errors ``(steps, S)``: the rule's own before ``koopman_start``, the branch's after, scored as
    every method is (:func:`summarise`)."""
    t0, T, n = cfg.koopman_start, cfg.steps, cfg.n_inputs
    X = torch.cat([sample_inputs(T - t0, 1, n, activity(cfg), cfg.group_size,
                                 torch.Generator().manual_seed(branch_seed(cfg.seed, i)))
                   for i in simulations(cfg)], dim=1)
    Y = targets(X)
    W, err = rule.snaps[t0], rule.errors.clone()
    for t in range(T - t0):
        W, err[t0 + t] = rule_step(W, X[t].to(torch.float64), Y[t], cfg.eta, cfg.threshold, cfg.error_unit)
    return err


def _evolve(cfg: Config, rule: _RulePhase, kp: Koopman, rec: torch.Tensor, keep: bool, label: str):
    """Koopman training from ``koopman_start`` on: ``(errors (T, S), held (S,), medians, example)``,
    the percent errors with the Koopman weights from ``t0`` on (the rule's before), which
    simulations were held at their last finite weights and (``keep``) the weights on the plot grid
    after ``t0``."""
    S, n, T, t0, stride = len(simulations(cfg)), cfg.n_inputs, cfg.steps, cfg.koopman_start, cfg.weight_stride
    rel = relevance_mask(n)
    err = rule.errors.clone()
    held = torch.zeros(S, dtype=torch.bool)
    W_eval = rule.snaps[t0].clone()
    medians, example = [], []
    t = t0  # the chunk's first row holds the weights after t + 1 steps
    for chunk in bar(held_path(kp, rec[-1], T - t0, cfg.chunk), desc=label):
        c = chunk.shape[0]
        ok = torch.isfinite(chunk).reshape(c, S, -1).all(-1)
        held |= ~ok.all(0)
        W_path = hold_last_finite(torch.cat([W_eval.reshape(1, S, -1), chunk]).reshape(c + 1, S, 2, n),
                                  torch.cat([torch.ones(1, S, dtype=torch.bool), ok]))
        # the error at step t + 1 uses the weights after t steps: rows 0 .. c-1 of W_path
        err[t:t + c] = percent_error(W_path[:-1], rule.X[t:t + c], rule.Y[t:t + c], cfg.threshold, cfg.error_unit)
        if keep:
            for j in range(1, c + 1):
                if (t + j) % stride == 0:
                    medians.append(_median_weights(W_path[j], rel))
                    example.append(W_path[j, 0].clone())
        W_eval = W_path[-1]
        t += c
    return err, held, medians, example


def _operator_info(part, rank: torch.Tensor, radius: torch.Tensor, overflowed: float, same: str | None,
                   stride: int = 1) -> dict:
    """The diagnostics of one set of operators: rank deficiency of the blocks of the snapshots it
    was fitted on (``rank`` per block), spectral radii (``radius`` per simulation: of the
    ``stride``-step operators), overflow, twin fit, and the ``stride`` (optimizer steps between the
    fitted snapshots; 1 but for the strided fits)."""
    m = part.block_sizes[0]
    return {
        "block_size": m,
        "blocks_per_sim": part.n_blocks,
        "frac_rank_deficient_blocks": float((rank < m).double().mean()),
        "frac_sims_radius_above_1": float((radius > 1 + 1e-9).double().mean()),
        "median_max_radius": float(radius.median()),
        "max_radius": float(radius.max()),
        "frac_sims_overflowed": overflowed,
        "same_operators_as": same,
        "stride": stride,
    }


def simulate(cfg: Config, methods=tuple(METHODS), windows: tuple[int, ...] | None = None,
             keep_weights: bool = False, desc: str = "perceptron", fits: tuple[str, ...] = ("paper",),
             main_fits: tuple[str, ...] | None = None, null: bool = False) -> dict:
    """Run the rule and every Koopman variant on ``cfg.n_sims`` simulations.

    Returns ``{"errors": {key: (steps, S) percent error}, "info": {key: dict}, "weights": ...}``
    where ``key`` is ``"rule"`` or ``(method, window, fit)``, for the named fits ``fits`` at
    every window and ``main_fits`` (default: ``fits``) at ``cfg.window``. Non-finite Koopman
    weights (an operator with ``|lambda| > 1`` overflowing float64) are not scored: that
    simulation keeps its last finite weights, and ``info`` counts how many simulations were
    held so. A fit whose operators equal those of a fit listed before it shares that fit's
    errors (``info["same_operators_as"]``) instead of being evolved again. ``weights`` (with
    ``keep_weights``): the rule's and the first fit's at ``cfg.window``, per method. ``null``
    (with ``null``): the errors of the rule continued on other inputs from the Koopman start
    (:func:`rule_branch`).
    """
    check_config(cfg)
    windows = (cfg.window,) if windows is None else tuple(windows)
    main_fits = tuple(fits if main_fits is None else main_fits)
    S, n, t0 = len(simulations(cfg)), cfg.n_inputs, cfg.koopman_start
    rule = _rule_phase(cfg, desc)
    errors, info = {"rule": rule.errors}, {"rule": {}}
    weights = {"rule": _weight_summary(rule.medians, rule.example)} if keep_weights else {}
    n_pre = t0 // cfg.weight_stride + 1  # plot-grid steps <= t0, taken from the rule
    shapes = [LayerShape("perceptron", 2, n, has_bias=False)]
    for method in (m for m in methods if METHODS[m] is not None):
        part = make_partition(shapes, METHODS[method])
        for window in windows:
            rec = rule.snaps[t0 - window:].reshape(window + 1, S, 2 * n)
            kps = fit_koopmans(part, rec, main_fits if window == cfg.window else fits, cfg.fit_method)
            ranks = {}       # per stride: the rank of every block of the snapshots fitted, (S*P,)
            radii = {}
            for i, (fit, kp) in enumerate(kps.items()):
                key, s = (method, window, fit), kp.stride_ or 1
                if s not in ranks:
                    ranks[s] = numerical_rank(part.time_last(strided_window(rec, s))[0])   # blocks (S*P, m, k_s)
                same = next((f for f in list(kps)[:i] if same_operators(kp, kps[f])), None)
                radius = radii[fit] = kp.spectral_radius_ if same is None else radii[same]
                keep = keep_weights and window == cfg.window and i == 0
                if same is None:
                    label = f"{desc}: {method} w={window} {fit}"
                    err, held, medians, example = _evolve(cfg, rule, kp, rec, keep, label)
                    errors[key], overflowed = err, float(held.double().mean())
                else:
                    errors[key] = errors[(method, window, same)]
                    overflowed = info[(method, window, same)]["frac_sims_overflowed"]
                info[key] = _operator_info(part, ranks[s], radius, overflowed, same, s)
                if keep:
                    weights[method] = _weight_summary(rule.medians[:n_pre] + medians, rule.example[:n_pre] + example)
    early = EarlyNorms(simulations(cfg))
    for step in (s for s in EARLY_STEPS if s <= t0):   # the recording holds W(0) .. W(t0)
        early(step, rule.snaps[step].reshape(S, -1))
    return {"errors": errors, "info": info, "weights": weights, "early": early.values(),
            "null": rule_branch(cfg, rule) if null else None}


def summarise(err: torch.Tensor, cfg: Config, rule_final: float | None = None) -> dict:
    """Smoothed mean curve, SEM and the scalar summaries of one method."""
    sm = smooth(err, cfg.smooth, cfg.smooth_centered)
    mean = sm.mean(1).numpy()
    sem = (sm.std(1) / math.sqrt(sm.shape[1])).numpy() if sm.shape[1] > 1 else np.zeros_like(mean)
    out = {
        "steps_to_asymptote": steps_to_asymptote(mean, cfg.asymptote_tol),
        "final_percent_error": float(mean[-1]),
        "final_sem": float(sem[-1]),
        "mean_percent_error_after_start": float(err[cfg.koopman_start:].mean()),
    }
    if rule_final is not None:
        out["steps_to_rule_final"] = first_passage(mean, rule_final + cfg.asymptote_tol)
    return out, mean, sem


def bootstrap_reach(errors: dict, cfg: Config, n_boot: int, seed: int = 0, compete=None) -> dict:
    """Resample simulations (paired: every method shares the resample, as it shares the inputs)
    and recompute, per resample, each method's steps to the rule's final error + ``asymptote_tol``.

    ``errors``: ``{method: (T, S) percent error}`` with ``"rule"`` among them. Returns, per
    method, the 95% interval of those steps (``T + 1`` stands for "never"), ``p_sooner`` (share
    of resamples in which it gets there strictly before the rule) and, for the methods in
    ``compete`` (default: all), ``p_soonest`` (strictly before every other method in ``compete``).
    """
    names = list(errors)
    T, S = errors["rule"].shape
    gen = torch.Generator().manual_seed(seed)
    counts = torch.zeros(n_boot, S, dtype=torch.float64)
    counts.scatter_add_(1, torch.randint(S, (n_boot, S), generator=gen), torch.ones(n_boot, S, dtype=torch.float64))
    curves = {k: counts @ smooth(errors[k].to(torch.float64), cfg.smooth, cfg.smooth_centered).T / S
              for k in names}  # (B, T)
    level = curves["rule"][:, -1:] + cfg.asymptote_tol
    steps = {}
    for k in names:
        hit = curves[k] <= level
        steps[k] = torch.where(hit.any(1), hit.double().argmax(1) + 1, torch.full((n_boot,), T + 1))
    compete = list(names if compete is None else compete)
    out = {}
    for k in names:
        lo, hi = np.percentile(steps[k].numpy(), [2.5, 97.5])
        out[k] = {"steps_to_rule_final_ci95": [int(lo), int(hi)],
                  "p_sooner_than_rule": float((steps[k] < steps["rule"]).double().mean())}
        if k in compete and len(compete) > 1:
            others = torch.stack([steps[j] for j in compete if j != k]).amin(0)
            out[k]["p_soonest"] = float((steps[k] < others).double().mean())
    return out


#: columns of ``results["table"]`` (besides ``method`` and ``fit``) and the bootstrap's fields
TABLE_FIELDS = ("steps_to_asymptote", "steps_to_rule_final", "final_percent_error", "final_sem",
                "mean_percent_error_after_start", "frac_sims_overflowed", "frac_rank_deficient_blocks",
                "p_sooner_than_rule", "p_soonest", "stride")
BOOT_FIELDS = ("steps_to_rule_final_ci95", "p_sooner_than_rule", "p_soonest")


def _rounded(a, decimals: int) -> list:
    return np.round(np.asarray(a, dtype=float), decimals).tolist()

# -- the experiment ----------------------------------------------------------------------------
#: the Koopman variants (every method but the rule)
KOOPMAN = ("single_weight", "node", "network")


def run(cfg: Config) -> dict:
    """The experiment. Runs on one torch thread: its tensors are small (at most a few MB per
    step), and on a shared 2-core machine a second thread made it several times slower."""
    check_config(cfg)
    with torch_threads(1):
        return _run(cfg)


class _Summaries:
    """:func:`summarise`, once per error tensor: a fit that shares another's errors (the same
    tensor) shares its summary."""

    def __init__(self):
        self._memo = {}

    def __call__(self, err: torch.Tensor, cfg: Config, rule_final: float | None = None):
        key = (id(err), rule_final)
        if key not in self._memo:
            self._memo[key] = (err, summarise(err, cfg, rule_final))  # holding err keeps its id unique
        return self._memo[key][1]


def _main_comparison(cfg: Config, main: dict, summary: _Summaries):
    """The main run's summaries per named fit and method (``by_fit``), its smoothed curves
    (the paper fit's and, per other fit, those not shared with an earlier fit) and the rows of
    the window sweep (sweep fits, paper rows first)."""
    errs, info = main["errors"], main["info"]
    rule_summary, rule_mean, rule_sem = summary(errs["rule"], cfg)
    rule_final = rule_summary["final_percent_error"]
    rule_summary["steps_to_rule_final"] = first_passage(rule_mean, rule_final + cfg.asymptote_tol)
    by_fit = {f: {"rule": dict(rule_summary)} for f in cfg.fits}
    curves = {"step": list(range(1, cfg.steps + 1)), "rule": {"mean": rule_mean, "sem": rule_sem}}
    curves_by_fit = {f: {} for f in cfg.fits[1:]}
    window_rows = []
    for (method, window, fit), err in ((k, v) for k, v in errs.items() if k != "rule"):
        s, mean, sem = summary(err, cfg, rule_final)
        if window == cfg.window:
            by_fit[fit][method] = {**s, **info[(method, window, fit)]}
            if fit == "paper":
                curves[method] = {"mean": mean, "sem": sem}
            elif info[(method, window, fit)]["same_operators_as"] is None:  # else: the twin's curve
                curves_by_fit[fit][method] = {"mean": mean, "sem": sem}
        if fit in cfg.sweep_fits:
            window_rows.append({"method": method, "window": window, "fit": fit, **s, **info[(method, window, fit)]})
    window_rows.sort(key=lambda r: (cfg.sweep_fits.index(r["fit"]), list(METHODS).index(r["method"]), r["window"]))
    return by_fit, curves, curves_by_fit, window_rows


def _add_bootstrap(cfg: Config, errs: dict, by_fit: dict) -> None:
    """Add the bootstrap intervals (:data:`BOOT_FIELDS`) to every summary of ``by_fit``; a fit whose
    errors are those of a fit already resampled shares its intervals."""
    done = {}
    for fit in cfg.fits:
        main_errs = {"rule": errs["rule"], **{m: errs[(m, cfg.window, fit)] for m in KOOPMAN}}
        twin = next((f for f, e in done.items() if all(e[m] is main_errs[m] for m in main_errs)), None)
        boot = (bootstrap_reach(main_errs, cfg, cfg.bootstrap, cfg.seed, compete=KOOPMAN) if twin is None
                else {m: dict(by_fit[twin][m]) for m in main_errs})
        for m, b in boot.items():
            by_fit[fit][m].update({k: v for k, v in b.items() if k in BOOT_FIELDS})
        done[fit] = main_errs


def _input_sweep(cfg: Config, summary: _Summaries) -> list[dict]:
    """The rows of the S8.3 sweep: per (n_inputs, group_size) of ``cfg.input_sweep``, per sweep fit,
    the rule and the Koopman variants at ``cfg.window`` on ``cfg.sweep_sims`` simulations; paper
    rows first."""
    rows = []
    for n_in, g in bar(cfg.input_sweep, desc="S8.3 sweep"):
        sub = replace(cfg, n_inputs=n_in, group_size=g, activity=None, n_sims=cfg.sweep_sims, seed=cfg.seed + 1,
                      networks=None)
        res = simulate(sub, desc=f"n={n_in},g={g}", fits=cfg.sweep_fits)  # window = cfg.window
        s_rule, _, _ = summary(res["errors"]["rule"], sub)
        for fit in cfg.sweep_fits:
            for key in ["rule"] + [(m, sub.window, fit) for m in KOOPMAN]:
                s, _, _ = summary(res["errors"][key], sub, s_rule["final_percent_error"])
                rows.append({"n_inputs": n_in, "group_size": g, "activity": 1.0 / n_in,
                             "method": "rule" if key == "rule" else key[0], **s,
                             "frac_sims_overflowed": res["info"][key].get("frac_sims_overflowed", 0.0),
                             "frac_rank_deficient_blocks": res["info"][key].get("frac_rank_deficient_blocks", 0.0),
                             "fit": fit, "same_operators_as": res["info"][key].get("same_operators_as"),
                             "stride": res["info"][key].get("stride")})
    rows.sort(key=lambda r: cfg.sweep_fits.index(r["fit"]))
    return rows


def _definitions(cfg: Config) -> dict:
    """What the results' measures mean, in words, for ``cfg``."""
    return {
        "percent_error": ("percent of the 2 output units wrong" if cfg.error_unit == "output" else
                          "percent of steps with any output unit wrong") +
                         " on the step's fresh input, with the weights before that step's update; smoothed "
                         "per simulation by a " + ("centred" if cfg.smooth_centered else "trailing") +
                         f" window of {cfg.smooth} steps",
        "steps_to_asymptote": f"first step from which the smoothed mean error stays within "
                              f"{cfg.asymptote_tol} point(s) of its own value at the last step",
        "steps_to_rule_final": f"first step at which the smoothed mean error is at most the rule's final "
                               f"error + {cfg.asymptote_tol} point(s) (None: never)",
    }


def _run(cfg: Config) -> dict:
    summary = _Summaries()
    main = simulate(cfg, windows=tuple(sorted(set(cfg.window_sweep) | {cfg.window})), keep_weights=True,
                    desc="perceptron", fits=cfg.sweep_fits, main_fits=cfg.fits, null=True)
    by_fit, curves, curves_by_fit, window_rows = _main_comparison(cfg, main, summary)
    if cfg.bootstrap:
        _add_bootstrap(cfg, main["errors"], by_fit)
    sweep_rows = _input_sweep(cfg, summary)
    table = [{"method": k, "fit": f, **{c: v for c, v in by_fit[f][k].items() if c in TABLE_FIELDS}}
             for f in cfg.fits for k in METHODS]
    # curves and weights are for plots: rounded to keep the committed JSON small
    rounded = lambda c: {k: {kk: _rounded(vv, 4) for kk, vv in v.items()} for k, v in c.items()}  # noqa: E731
    return {
        "methods": by_fit["paper"],
        "methods_by_fit": by_fit,
        "table": table,
        "window_sweep": window_rows,
        "input_sweep": sweep_rows,
        "curves": {"step": curves.pop("step"), **rounded(curves)},
        "curves_by_fit": {f: rounded(c) for f, c in curves_by_fit.items()},
        "weights": {"step": list(range(0, cfg.steps + 1, cfg.weight_stride)),
                    **{k: {kk: _rounded(vv, 5) for kk, vv in v.items()} for k, v in main["weights"].items()}},
        "definitions": _definitions(cfg),
        "null_model": [null_model_row(cfg, main, summary)],
        "check_values": check_table(merge(main["early"], per_simulation(cfg, {**main["errors"], "null": main["null"]}))),
    }


def null_model_row(cfg: Config, main: dict, summary) -> dict:
    """The ``null_model`` row: the rule continued on other inputs (:func:`rule_branch`), summarised
    by the same function as every method, with the same bootstrap (the same resamples of the
    simulations as the main table's, ``cfg.seed``): how far the rule's own measures move when only
    the inputs after the Koopman start change."""
    rule_summary, _, _ = summary(main["errors"]["rule"], cfg)
    s, _, _ = summary(main["null"], cfg, rule_summary["final_percent_error"])
    row = {"method": "rule, other inputs", **s}
    if cfg.bootstrap:
        boot = bootstrap_reach({"rule": main["errors"]["rule"], "null": main["null"]}, cfg, cfg.bootstrap, cfg.seed,
                               compete=["null"])["null"]
        row.update({k: v for k, v in boot.items() if k in BOOT_FIELDS})
    return row


def per_simulation(cfg: Config, errors: dict) -> dict[int, dict[str, float]]:
    """Each simulation's check values (:mod:`koopman_repro.regeneration`): the mean percent error
    after ``koopman_start`` of the rule, of the rule on other inputs (``null``) and of every method
    and fit of the main comparison (``errors`` holds all of them)."""
    t0, sims = cfg.koopman_start, simulations(cfg)
    keys = {"rule": "rule", "null": "null"} | {f"{m}/{f}": (m, cfg.window, f) for f in cfg.fits for m in KOOPMAN}
    means = {name: errors[key][t0:].mean(0).tolist() for name, key in keys.items()}
    return {i: {f"{name}:mean_percent_error_after_start": v[j] for name, v in means.items()}
            for j, i in enumerate(sims)}


def n_networks(cfg: Config) -> int:
    """The simulations of a run made with ``cfg`` (the regeneration check's networks)."""
    return cfg.n_sims


def regeneration_config(cfg: Config, networks) -> Config:
    """``cfg`` for rerunning simulations ``networks`` alone: the main comparison only (the window
    and input sweeps and the bootstrap store no check values)."""
    return with_networks(cfg, networks, window_sweep=(cfg.window,), input_sweep=(), bootstrap=0)
