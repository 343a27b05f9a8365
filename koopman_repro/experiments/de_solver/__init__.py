"""Koopman training an NN differential-equation solver (paper section 4, supplement S9, Table 1, Fig. 2).

The problem (Mattheakis et al.'s Hamiltonian NN solver, as modified by the paper): the
nonlinear oscillator ``H = p^2/2 + x^2/2 + lam x^4/4`` (``x' = p``, ``p' = -x - lam x^3``),
``x(0) = x0``, ``p(0) = p0`` on ``t in [0, t_max]``. A 1:10:10:2 sigmoid MLP outputs
``N(t) = (N1, N2)``; the trial solution ``x_hat = x0 + f(t) N1``, ``p_hat = p0 + f(t) N2``
with ``f(t) = 1 - exp(-t)`` meets the initial condition exactly, and the loss on a fixed
grid of ``n_points`` times is

    L = mean_i (x_hat'(t_i) - p_hat(t_i))^2 + mean_i (p_hat'(t_i) + x_hat + lam x_hat^3)^2.

Numerics. ``E`` independent networks live in one ``theta`` ``(E, D)`` (the layout of
:class:`koopman_lib.ensembles.EnsembleMLP`). The time derivatives ``N'(t)`` come from forward-mode
tangent propagation through the MLP (values and tangents stacked along the batch axis, one
``bmm`` per layer); :meth:`Oscillator.loss_and_grad` returns the loss and its exact gradient
with respect to ``theta`` by a hand-written reverse pass through that tangent network (checked
against autograd in the tests), which is about twice as fast as autograd at this size. The
three optimizers (Adam, Adagrad, Adadelta: all elementwise) each own a view of one shared
``(n_opt * E, D)`` tensor, so every step is one batched loss/gradient for all networks and one
``torch.optim`` step per optimizer: exactly ``n_opt * E`` independent runs.

Koopman training follows the authors' code: float64 snapshots ``w(t1) .. w(t2)``, layer 1 in
chunks of weight+bias (``quasi_node:2``, i.e. Node since fan_in = 1), Node operators for the
other layers, ``U = F' pinv(F)``, then ``w(t2 + T) = U^T w(t2)`` in one jump (both by
:class:`koopman_lib.Koopman`: ``fit`` then ``predict``, which forms ``U^T w`` by repeated squaring).
Every result is reported for the book's named fits (:data:`koopman_lib.estimator.BOOK_FITS`,
``Config.fits``): ``"paper"`` (MATLAB's pinv cutoff in float64, the reproduction), ``"default"`` (the
library's: singular values above the resolution of the recorded weights) and ``"default-stabilised"``
(eigenvalues clipped to the unit disk), fitted from one factorisation per block, and the strided
``"default-strided"`` / ``"default-strided-stabilised"`` (the default fits of every ``s``-th snapshot,
``s`` by :func:`koopman_lib.stride.choose_stride` from the window and the block sizes alone: 227 for the
paper's window of 10001 snapshots and node blocks of 11), all by :func:`koopman_lib.estimator.fit_named`;
each fit's speedup times that fit's own ``fit`` + ``predict``. A strided fit predicts ``floor_horizon(T,
s)`` steps (up to ``s - 1`` short of ``T``: 2497 for 2500), recorded as ``horizon`` in its rows; its
``T_eq/T`` divides by ``T``, so it can only be understated. The stride sweep (:mod:`.stride_sweep`) fits
the default at every stride of ``Config.sweep_strides`` and the rule's at ``T_main``.

The optimizer's state as observables (:mod:`.state_fit`, ``Config.state_optimizers``): each optimizer's
per-parameter buffers are recorded over the window beside the weights and fitted with the book's fits
(``Config.state_fits``) on the node blocks with the state stacked in; the jumped weights are scored as the
weights-only fit's (``state_observables``, ``state_networks``).

No optimizer against itself. The DE training is deterministic given the initialisation: every step is the
full-batch loss on the same fixed grid of times (no minibatches, no collocation noise, no dropout), so an
optimizer continued from its state at ``t2`` has no other stream of randomness to follow and would retrace
its own run exactly. The noise the verdicts must carry is the spread over networks (initialisations)
alone, which the intervals over networks measure; there is no null-model branch here (MNIST and the
perceptron have one).

The package, by study: :mod:`.network` (the ODE, loss, analytic gradient, fast loop and the authors'
own loop), :mod:`.training` (the batched training of every optimizer's ensemble), :mod:`.fit_methods`
(the named fits and the fit-method comparison), :mod:`.readings` (every fit of every optimizer's
window, jumped and compared with the optimizer), :mod:`.table` (Table 1 rows, network rows, spectra),
:mod:`.where_it_stops`, :mod:`.stride_sweep`, :mod:`.state_fit` (the optimizer's state as observables), :mod:`.timing` (both sides of the speedup), :mod:`.ode_check` (does the
network solve the ODE), :mod:`.stages` (a run in stages, one optimizer and training dtype each, kept for
resuming); this module holds ``Config``, ``PROFILES`` and ``run``, and what the regeneration
check (:mod:`koopman_repro.regeneration`) needs: the check values (:func:`.stages.early_norms`, :func:`per_network`),
:func:`n_networks` and :func:`regeneration_config`.

A network is its own seed: network ``i`` draws its initial weights from its own generator
(:func:`.training.init_seeds`), every optimizer's network ``i`` the same (``same_inits``), and training
draws nothing else at random, so network ``i`` of a 25-network run is network ``i`` of a 3-network run and
can be rerun alone with exactly the same values (the activations are evaluated so that a network's
rounding does not depend on the others in the batch: :func:`.network._every_element_simd`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from koopman_lib.estimator import BOOK_FITS, STRIDED_FITS
from koopman_lib.metrics import finite_median
from koopman_lib.partition import make_partition
from koopman_lib.stride import DEFAULT_C, choose_stride

from ...check_values import check_table, merge, with_networks
from koopman_lib.threads import torch_threads
from ...partial import Partial
from ...scorecard import KEEPS_UP
from ..images import release_memory
from .fit_methods import FIT_METHODS, JUMP_METHODS, cutoff_name, fit_label, fit_stride, horizon, koopman_fit, koopman_fits
from .network import (ACTIVATIONS, OPTIMIZERS, OriginalNet, Oscillator, batched_loss, de_optimizer, fast_steps,
                      learning_rate, original_loss, perturb_points, set_lr, time_grid)
from .ode_check import energy, reference_solution, solver_check
from .readings import block_condition_numbers, t_grid
from .stages import join_stages, optimizer_stage
from .state_fit import STATE_TRANSFORMS, state_layout
from .timing import koopman_once, koopman_timed, named_fit_path, time_fast_loop, time_koopman, time_paper_style
from .training import DTYPES, STREAM, Training, _setup, log_steps, train
from .where_it_stops import GROWING, layer_blocks, where_it_stops

#: the names other modules import from here (the bench, "Beyond the paper", the tests)
__all__ = ["ACTIVATIONS", "DTYPES", "FIT_METHODS", "GROWING", "JUMP_METHODS", "OPTIMIZERS", "PAPER_ERROR_RATIO",
           "PAPER_TABLE1", "PROFILES", "Config", "OriginalNet", "Oscillator", "Training", "_setup", "batched_loss",
           "block_condition_numbers", "check_config", "de_optimizer", "energy", "fast_steps", "fit_label",
           "fit_stride", "horizon", "koopman_fit", "koopman_fits", "koopman_once", "koopman_timed", "layer_blocks",
           "learning_rate", "named_fit_path", "state_layout",
           "log_steps", "original_loss", "perturb_points", "reference_solution", "run", "run_dtype", "set_lr",
           "solver_check", "t_grid", "time_fast_loop", "time_grid", "time_koopman", "time_paper_style", "train",
           "where_it_stops"]

#: Table 1 of the paper (medians over 25 inits; success in %, speedup as a factor).
PAPER_TABLE1 = {
    "adam": {"success_rate": 0.84, "teq_over_t_median": 0.85, "speedup": 98.0},
    "adagrad": {"success_rate": 0.92, "teq_over_t_median": 1.00, "speedup": 132.0},
    "adadelta": {"success_rate": 1.00, "teq_over_t_median": 1.00, "speedup": 141.0},
}
#: Fig. 2e (Adadelta, T = 2500): median |error| / median |true evolution| of the 10 best networks.
PAPER_ERROR_RATIO = 0.0044


@dataclass(frozen=True)
class Config:
    # -- the problem (S9, the solver code it modifies) -------------------------------------
    x0: float = 1.3
    p0: float = 1.0
    lam: float = 1.0
    t_max: float = 4 * math.pi
    n_points: int = 200
    hidden: tuple[int, ...] = (10, 10)
    activation: str = "sigmoid"
    t_one_quirk: bool = True          # unstated: the solver's perturbPoints() moves grid point 2 to t = 1.0 even
                                      # with noise 0; we keep it (the paper changed the noise, not that function)
    # -- training (Tables S4-S6) -------------------------------------------------------------
    optimizers: tuple[str, ...] = OPTIMIZERS
    n_inits: int = 25
    same_inits: bool = True           # unstated: the same E initialisations for every optimizer (paired runs);
                                      # False: each optimizer its own networks (training.STREAMS)
    n_steps: int = 60000
    lr_numerator: float = 8.0         # eta(t) = lr_numerator / (lr_offset + t), t = 0, 1, ... (set every step)
    lr_offset: float = 1000.0
    adam_betas: tuple[float, float] = (0.999, 0.9999)
    adadelta_rho: float = 0.999
    train_dtypes: tuple[str, ...] = ("float32",)
                                      # unstated: S9 says the weights were *saved* in double precision, unlike the
                                      # original code (which trains in float32). The first entry is our main reading
                                      # (float32 training, float64 recording); ("float32", "float64") adds the other
                                      # reading (float64 training) at twice the training cost (the paper profile)
    gradient: str = "analytic"        # "analytic" (hand-written reverse pass) or "autograd"; same gradient
    # -- Koopman training (Alg. 1, the authors' code) -----------------------------------------
    t1: int = 35000
    t2: int = 45000
    partition: tuple[str, ...] = ("quasi_node:2", "node", "node")
    fits: tuple[str, ...] = BOOK_FITS  # named fits (koopman_lib.estimator.BOOK_FITS) of every table row: the
                                      # plain ones from one factorisation per block, the strided ones from a
                                      # second; the first is the main reading (the paper's pinv)
    fit_methods: tuple[str, ...] = ("pinv", "lstsq")
                                      # a side comparison at the paper's cutoff (results["fit_methods_table"]):
                                      # pinv = the paper fit; lstsq solves the same least-squares problem with
                                      # SVD-based gelsd
    jump_method: str = "auto"        # "auto" = "power": U^T w by repeated squaring (JUMP_METHODS)
    Ts: tuple[int, ...] = (2500, 5000, 10000, 15000)  # the authors' example and up to n_steps - t2
    T_main: int = 2500                # the T of Table 1 / Fig. 2 (the authors' example)
    T_origin: str = "t2"              # unstated: T_eq counts optimizer steps from t2 ("t2") or from t2+1 ("t2+1")
    n_best: int = 10                  # Fig. 2e: networks with the smallest mean |error| (the text: 10; code: 11)
    # -- the stride sweep (issue 24, item 4: where the strided fit stops) ----------------------
    sweep_strides: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)  # default fit of every s-th snapshot at
                                      # T_main, on every network; the rule's stride is added (marked rule),
                                      # strides over t2 - t1 (under 2 snapshots) dropped; () switches it off
    sweep_repeats: int = 3            # timed fits per stride (median)
    # -- the optimizer's state as observables (issue 25, item 3) -------------------------------
    state_optimizers: tuple[str, ...] = OPTIMIZERS  # whose buffers are recorded beside the weights (those of
                                      # them the run trains); () = none. Memory: (1 + b) D numbers per snapshot
                                      # in the training dtype; one network at profile paper peaks at 617 MB
                                      # instead of 441 MB (measured); one optimizer is recorded at a time
                                      # (.stages): 25 networks, Adam or Adadelta, 0.46 GB in float32 training
                                      # and 0.91 GB in float64 (beside 0.30 GB of weights, freed before the
                                      # state fits)
    state_fits: tuple[str, ...] = BOOK_FITS  # the book's fits of the weights + state blocks
    state_transform: str = "sqrt"     # of the second moments (v, sum, accumulators), chosen a priori:
                                      # sqrt(v) scales like the gradient, as m and the weight steps do, so a
                                      # linear map between them need not represent a square root
                                      # (state_fit module docstring); "identity" records them raw
    # -- timing (medians over repeats, interleaved) -------------------------------------------
    timing_repeats: int = 7
    timing_steps: int = 200           # optimizer steps per timed block
    timing_networks: int = 3          # networks per optimizer whose single-network Koopman fit is timed
    # -- outputs -----------------------------------------------------------------------------
    curve_points: int = 101           # points on the T grid of the Fig. 2b curves
    window_stride: int = 100          # stride of the stored true weight trajectories (Fig. 2d)
    loss_curve_points: int = 150      # log-spaced steps of the stored training curves
    ode_points: int = 1000            # fine grid of the ODE check
    ode_tol: float = 1e-12            # rtol = atol of the solve_ivp reference (DOP853)
    # -- a check of the solver code at the original solver's own settings ------------------------
    check_hidden: tuple[int, ...] = (50, 50)   # Mattheakis et al.'s code: 1:50:50:2, sin, Adam, constant lr 8e-3
    check_activation: str = "sin"
    check_lr: float = 8e-3
    check_steps: int = 10000          # 0 switches the check off
    check_inits: int = 2
    torch_threads: int = 1            # intra-op threads while the experiment runs (restored after): every tensor
                                      # here is tiny, so a second thread only adds synchronisation per op
    seed: int = 0                     # network i draws its initial weights from its own seed,
                                      # koopman_lib.seeds.network_seed(seed, ...) (training.init_seeds)
    networks: tuple[int, ...] | None = None  # None: networks 0..n_inits-1 of every optimizer; else only these
                                             # (the regeneration check reruns a few of a saved run)


PROFILES = {
    # ci: the paper's step counts and schedule, 3 inits per optimizer (paper: 25), a shorter solver check
    # ci trains in float32 only: float64 training doubles the training loop (about 100 s more on 2 cores),
    # beyond the ci book's budget; the paper profile trains in both
    # ci's stride sweep: the paper's strides, one timed fit each. Measured (2 cores, load ~3): the strided
    # fits, the sweep and the state-augmented fits take the ci run from 69.9 s to 76.3 s CPU (+9%: sweep
    # 0.9 s, state fits 2.6 s, state recording 1.4 s) and its peak RSS from 574 MB to 912 MB
    "ci": Config(n_inits=3, timing_repeats=5, timing_steps=100, timing_networks=2, check_steps=4000,
                 sweep_repeats=1),
    "paper": Config(train_dtypes=("float32", "float64")),
}


def check_config(cfg: Config) -> None:
    """Raise ``ValueError`` naming a bad field and the fix."""
    bad = [o for o in cfg.optimizers if o not in OPTIMIZERS]
    if bad or not cfg.optimizers:
        raise ValueError(f"optimizers must be a non-empty subset of {OPTIMIZERS}, got {cfg.optimizers}")
    if not cfg.train_dtypes or any(d not in DTYPES for d in cfg.train_dtypes):
        raise ValueError(f"train_dtypes must be a non-empty tuple from {sorted(DTYPES)}, got {cfg.train_dtypes!r}")
    for field in ("fits", "state_fits"):
        fits = getattr(cfg, field)
        if (field == "fits" and not fits) or any(f not in BOOK_FITS for f in fits) or len(set(fits)) != len(fits):
            raise ValueError(f"{field} must be distinct names from {BOOK_FITS}, got {fits!r}")
    if any(o not in OPTIMIZERS for o in cfg.state_optimizers) or cfg.state_transform not in STATE_TRANSFORMS:
        raise ValueError(f"state_optimizers must be names of {OPTIMIZERS} and state_transform one of "
                         f"{STATE_TRANSFORMS}; got {cfg.state_optimizers}, {cfg.state_transform!r}")
    if cfg.state_optimizers and cfg.t1 < 1:
        raise ValueError(f"the optimizer's state exists after its first step: need t1 >= 1 with state_optimizers, "
                         f"got t1={cfg.t1}")
    if any(s < 1 for s in cfg.sweep_strides) or cfg.sweep_repeats < 1:
        raise ValueError(f"sweep_strides must be >= 1 and sweep_repeats >= 1, got {cfg.sweep_strides}, "
                         f"{cfg.sweep_repeats}")
    if not cfg.fit_methods or any(m not in FIT_METHODS for m in cfg.fit_methods):
        raise ValueError(f"fit_methods must be a non-empty tuple from {tuple(FIT_METHODS)}, "
                         f"got {cfg.fit_methods!r}")
    if cfg.jump_method not in JUMP_METHODS:
        raise ValueError(f"jump_method must be one of {JUMP_METHODS} (Koopman.predict jumps by repeated "
                         f"squaring), got {cfg.jump_method!r}")
    if cfg.gradient not in ("analytic", "autograd"):
        raise ValueError(f"gradient must be 'analytic' or 'autograd', got {cfg.gradient!r}")
    if cfg.T_origin not in ("t2", "t2+1"):
        raise ValueError(f"T_origin must be 't2' or 't2+1', got {cfg.T_origin!r}")
    if not 0 <= cfg.t1 < cfg.t2 < cfg.n_steps:
        raise ValueError(f"need 0 <= t1 < t2 < n_steps, got t1={cfg.t1}, t2={cfg.t2}, n_steps={cfg.n_steps}")
    room = cfg.n_steps - cfg.t2
    if not cfg.Ts or min(cfg.Ts) < 1 or max(cfg.Ts) > room:
        raise ValueError(f"every T in Ts must be in 1..{room} (the optimizer runs n_steps - t2 = {room} steps "
                         f"past t2, so T_eq and the true weights exist only that far); got {cfg.Ts}. "
                         "Lower T or raise n_steps.")
    if cfg.T_main not in cfg.Ts:
        raise ValueError(f"T_main={cfg.T_main} must be one of Ts={cfg.Ts}")
    if not 1 <= cfg.n_inits <= STREAM or (cfg.check_steps and not 1 <= cfg.check_inits <= STREAM):
        raise ValueError(f"need n_inits (and check_inits, when check_steps > 0) in 1..{STREAM}, the networks "
                         f"of a seed stream; got {cfg.n_inits} and {cfg.check_inits}")
    if cfg.n_points < 3:
        raise ValueError(f"need n_points >= 3, got {cfg.n_points}")
    if cfg.networks is not None and (not cfg.networks or len(set(cfg.networks)) != len(cfg.networks)
                                     or not all(0 <= i < cfg.n_inits for i in cfg.networks)):
        raise ValueError(f"networks must be distinct indices in 0..n_inits-1={cfg.n_inits - 1}, got {cfg.networks}")
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {cfg.activation!r}")

def run_dtype(cfg: Config, dtype_name: str, partial: Partial | None = None) -> dict:
    """Train every optimizer's ensemble in ``dtype_name`` (recording the optimizers' state too), Koopman-train
    from ``t2`` with every named fit and fit method, the stride sweep and the state-augmented fits, time
    both sides (each fit on its own path), check the ODE. One optimizer at a time, each a stage kept by
    ``partial`` as ``<dtype>-<optimizer>`` (:mod:`.stages`: the same values as all trained together), its
    memory released before the next. Returns plain data (see :func:`run`)."""
    partial = partial or Partial(None, cfg)
    parts = []
    for name in cfg.optimizers:
        parts.append(partial.stage(f"{dtype_name}-{name}", lambda name=name: optimizer_stage(cfg, dtype_name, name)))
        release_memory()
    return join_stages(cfg, dtype_name, parts)


#: the per-network results of the ``networks`` table stored as check values (timings and speedups are
#: not reproducible; the rest follow from these)
CHECKED = ("teq_over_t", "loss_koopman", "loss_optimizer_at_T", "relative_weight_error", "max_spectral_radius",
           "error_ratio")


def per_network(networks: list[dict], prefix: str = "") -> dict[int, dict[str, float]]:
    """Each network's :data:`CHECKED` values of every reading and ``T`` of the ``networks`` rows (the
    strided fits' among them; the ``state_networks`` rows with ``prefix`` ``"state:"``): keys
    ``{prefix}{dtype}/{optimizer}/{fit}/T{T}:{value}``."""
    out: dict[int, dict[str, float]] = {}
    for r in networks:
        at = f"{prefix}{r['train_dtype']}/{r['optimizer']}/{r['fit']}/T{r['T']}"
        out.setdefault(r["init"], {}).update({f"{at}:{c}": r[c] for c in CHECKED})
    return out


def stride_rule(cfg: Config, problem: Oscillator) -> dict:
    """The stride rule applied to the window (:func:`koopman_lib.stride.choose_stride`): its snapshots
    ``k``, the largest block ``m``, the pairs per coordinate ``c`` it keeps, and the stride it gives."""
    partition = make_partition(problem.shapes, list(cfg.partition))
    k, m = cfg.t2 - cfg.t1 + 1, max(int(g.shape[1]) for g in partition.groups)
    return {"k": k, "max_block_size": m, "c": DEFAULT_C, "stride": choose_stride(k, partition)}


def n_networks(cfg: Config) -> int:
    """The networks of each optimizer in a run made with ``cfg`` (the regeneration check's networks)."""
    return cfg.n_inits


def regeneration_config(cfg: Config, networks) -> Config:
    """``cfg`` for rerunning ``networks`` alone, with every optimizer, training dtype, fit (the strided
    ones too) and state-augmented fit (each stores check values): the studies that store none reduced to
    their least (the solver check and the stride sweep off, the fit-method comparison to the paper fit it
    reuses, one timed step and repeat)."""
    return with_networks(cfg, networks, check_steps=0, fit_methods=("pinv",), timing_repeats=1, timing_steps=1,
                         timing_networks=1, sweep_strides=())


def run(cfg: Config, results_dir=None) -> dict:
    """The whole experiment. With ``results_dir`` (where the results go), each finished stage (one optimizer
    in one training dtype, the solver check) is kept in ``results_dir/.partial/de-solver/`` until the run
    completes, and a rerun after an interruption resumes from there (:mod:`koopman_repro.partial`). ``table``: one row per (train dtype, fit, T, optimizer), in that
    order, the main reading first (``train_dtypes[0]``, ``fits[0]`` = the paper's fit); every row
    carries ``fit`` (a name of :data:`koopman_lib.estimator.BOOK_FITS`), ``fit_method`` (its label,
    :func:`fit_label`: distinct per fit), ``train_dtype``, ``T``, ``stride`` and ``horizon`` (the steps
    predicted); a median over no network (no network improved: the speedups) is ``None``.
    ``networks``: the same per network, with its own ``error_ratio`` (Fig. 2e's quantity for that network).
    ``fit_methods_table``: the fit-method comparison at the paper's cutoff (``fit`` ``"paper"``,
    ``fit_method`` ``pinv``/``lstsq``, no timing), then the strided fits. ``where_it_stops``: one row per
    (train dtype, optimizer, fit) (:func:`where_it_stops`). ``stride_sweep``: :mod:`.stride_sweep`
    (``stride_rule``: the rule's inputs and stride). ``state_observables`` and ``state_networks``: the
    state-augmented fits (:mod:`.state_fit`). ``error_ratio_median`` and ``ode_max_abs_error`` are those
    of the main reading (Adadelta at ``T_main``, as Fig. 2e; median over networks). ``check_values``: each
    network's early weight norms (:func:`.stages.early_norms`) and key results (:func:`per_network`: every fit's,
    the strided ones' among them, and the state-augmented fits' under ``state:``), the same whether it
    runs alone (:func:`regeneration_config`) or with the others."""
    check_config(cfg)
    shapes_problem = Oscillator((1,) + tuple(cfg.hidden) + (2,), cfg.activation)
    partial = Partial.beside(results_dir, cfg, "de-solver")
    with torch_threads(cfg.torch_threads):
        threads = torch.get_num_threads()
        per = {d: run_dtype(cfg, d, partial) for d in cfg.train_dtypes}
        check = partial.stage("solver-check", lambda: solver_check(cfg)) if cfg.check_steps else None
    early = [per[d].pop("early") for d in cfg.train_dtypes]
    main = per[cfg.train_dtypes[0]]
    er_opt = "adadelta" if "adadelta" in cfg.optimizers else cfg.optimizers[0]
    er_row = next(r for r in main["table"] if r["T"] == cfg.T_main and r["optimizer"] == er_opt
                  and r["fit"] == cfg.fits[0])
    joined = ("table", "networks", "fit_methods_table", "where_it_stops", "ode_check", "stride_sweep",
              "state_observables", "state_networks")
    out = {
        **{key: [r for d in cfg.train_dtypes for r in per[d][key]] for key in joined},
        "error_ratio_median": er_row["error_ratio"],
        # the same per fit (the scorecard's second column)
        "error_ratio_median_by_fit": {r["fit"]: r["error_ratio"] for r in main["table"]
                                      if r["T"] == cfg.T_main and r["optimizer"] == er_opt},
        "error_ratio_optimizer": er_opt,
        "ode_max_abs_error": finite_median(main["ode"]["max_abs_error"]),
        "main": {"train_dtype": cfg.train_dtypes[0], "fit": cfg.fits[0], "fit_method": fit_label(cfg.fits[0]),
                 "T": cfg.T_main},
        "fits": {f: cutoff_name(f) + (", strided" if f in STRIDED_FITS else "") for f in cfg.fits},
        "stride_rule": stride_rule(cfg, shapes_problem),
        "keeps_up_threshold": KEEPS_UP,
        "by_dtype": {d: {k: v for k, v in per[d].items() if k not in joined} for d in cfg.train_dtypes},
        "solver_check": check,
        "torch_threads_used": threads,
        "n_params": shapes_problem.n_params,
        "partition": make_partition(shapes_problem.shapes, list(cfg.partition)).describe(),
        "paper": {"table1": PAPER_TABLE1, "error_ratio": PAPER_ERROR_RATIO},
    }
    out["check_values"] = check_table(merge(*early, per_network(out["networks"]),
                                            per_network(out["state_networks"], "state:")))
    partial.clear()
    return out
