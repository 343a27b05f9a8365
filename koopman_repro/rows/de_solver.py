"""Declared rows of the ``de-solver`` results tables (one frozen dataclass per table).

Written by :mod:`koopman_repro.experiments.de_solver` (``table``, ``networks``, ``fit_methods_table``
in :mod:`~koopman_repro.experiments.de_solver.table`, ``where_it_stops`` and ``ode_check`` in the
modules of those names) and read by the chapter (:mod:`koopman_repro.chapters.de_solver`) and the
front page (:mod:`koopman_repro.scorecard`). A reading is one (training dtype, fit, optimizer); ``T``
counts optimizer steps after ``t2``; ``None`` is a median over no network or a non-finite value.
A new field goes here, in the producer, and (for older files) in :mod:`koopman_repro.migrations`.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import Row, register


@register("de-solver", "table")
@dataclass(frozen=True)
class DeSolverTableRow(Row):
    """Table 1 of the paper, one row per (training dtype, named fit, ``T``, optimizer): medians over the
    optimizer's ``n_inits`` networks, and the speedups of each fit timed on its own path."""
    optimizer: str                          # "adam", "adagrad" or "adadelta"
    n_inits: int                            # networks (initialisations) of the optimizer
    success_rate: float                     # share of networks with T_eq > 0
    teq_over_t_median: float                # median T_eq / T
    T: int                                  # steps jumped after t2
    train_dtype: str                        # "float32" or "float64"
    fit: str                                # a name of koopman_lib.fit.FITS
    fit_method: str                         # the fit's label: "pinv" (paper fit) or "pinv:<cutoff>"
    cutoff: str                             # the fit's FitSpec name
    error_ratio: float                      # Fig. 2e: median |error| / median |evolution| of the best networks
    teq_over_t_median_other_origin: float   # median T_eq / T counting T from the other origin
    censored: int                           # networks whose T_eq is only a lower bound
    median_relative_weight_error: float     # median ||w_K - w|| / ||w - w(t2)||
    median_max_spectral_radius: float       # median over networks of the largest block radius
    median_kept_rank_fraction: float        # median share of singular values the fit inverts
    median_max_cond_F: float                # median over networks of the largest cond(F)
    speedup_paper_style_median_all: float   # median speedup over all networks, paper-style timing
    speedup_fast_loop_median_all: float     # the same against the fast loop
    koopman_fit_and_jump_seconds: float     # one network's fit and jump (median)
    speedup_paper_style_median: float | None = None  # median speedup over the successes, paper-style timing
    speedup_fast_loop_median: float | None = None  # the same against the fast loop
    stride: int | None = None               # optimizer steps between the fit's snapshots (1 but strided fits)
    horizon: int | None = None              # steps the fit predicted: T, or floor_horizon(T, stride) <= T


@register("de-solver", "networks")
@dataclass(frozen=True)
class DeSolverNetworksRow(Row):
    """One network of a reading at one ``T``."""
    train_dtype: str
    fit: str
    fit_method: str
    cutoff: str
    optimizer: str
    init: int                               # the network (0..n_inits-1; its own seed, de_solver.training.init_seeds)
    T: int
    teq: float                              # T_eq (with the fractional part of S10); <= 0: no improvement
    teq_over_t: float
    censored: bool                          # the Koopman loss is below every optimizer loss up to n_steps
    success: bool                           # teq > 0
    teq_over_t_other_origin: float
    loss_t2: float                          # loss of w(t2)
    loss_optimizer_at_T: float              # loss of w(t2 + T)
    speedup_paper_style: float              # T_eq step costs / one fit and jump
    speedup_fast_loop: float
    max_spectral_radius: float              # largest spectral radius over the network's blocks
    kept_rank_fraction: float               # share of singular values the fit inverts
    loss_koopman: float | None = None       # loss of the Koopman weights at T
    relative_weight_error: float | None = None  # ||w_K - w|| / ||w - w(t2)||
    max_cond_F: float | None = None         # largest cond(F) over the network's blocks
    horizon: int | None = None              # steps the fit predicted (a strided fit: floor_horizon(T, s) <= T)
    error_ratio: float | None = None        # Fig. 2e's quantity for this network alone (metrics.error_ratio):
                                            # median |w_K - w| / median |w - w(t2)| over its weights, at the horizon
    mean_abs_error: float | None = None     # mean |w_K - w| over its weights: Fig. 2e keeps the n_best networks
                                            # with the smallest (so a reader can redo its choice on resamples)


@register("de-solver", "fit_methods_table")
@dataclass(frozen=True)
class DeSolverFitMethodsTableRow(Row):
    """The fit-method comparison at the paper's cutoff (``fit`` ``"paper"``; ``fit_method`` ``"pinv"``,
    the paper fit, or ``"lstsq"``), the medians of :class:`DeSolverTableRow` without timing."""
    optimizer: str
    n_inits: int
    success_rate: float
    teq_over_t_median: float
    T: int
    train_dtype: str
    fit: str
    fit_method: str
    error_ratio: float
    teq_over_t_median_other_origin: float
    censored: int
    median_relative_weight_error: float
    median_max_spectral_radius: float
    median_max_cond_F: float
    median_kept_rank_fraction: float | None = None
    stride: int | None = None               # as DeSolverTableRow (the strided fits' rows follow the methods')
    horizon: int | None = None


@register("de-solver", "where_it_stops")
@dataclass(frozen=True)
class DeSolverWhereItStopsRow(Row):
    """Where one reading stops keeping up (median ``T_eq/T >= keeps_up_threshold``) and why, diagnosed
    at ``T_diagnosed`` (``stops_at_T``, else the largest ``T``); ``layers``: one dict per layer
    (``layer``, ``shape``, ``blocks``, ``block_sizes``, ``share_blocks_growing``, ``max_modulus_median``,
    ``max_modulus_max``, ``log10_growth_at_T``, ``error_share_median``, ``relative_error_median``,
    ``kept_rank_median``)."""
    optimizer: str
    train_dtype: str
    fit: str
    keeps_up_threshold: float
    Ts: list[int]
    teq_over_t_median_by_T: list[float | None]
    success_rate_by_T: list[float]
    T_diagnosed: int
    teq_over_t_median_at_T_diagnosed: float
    share_blocks_growing: float             # share of block operators with a radius above 1 + 1e-9
    max_spectral_radius_median: float
    log10_growth_at_T: float                # log10 of the median largest radius ** T_diagnosed
    median_relative_weight_error: float
    dominant_layer: int                     # the layer with the largest share of the squared weight error
    dominant_layer_error_share: float
    layers: list[dict]
    longest_T_keeping_up: int | None = None
    stops_at_T: int | None = None
    stride: int | None = None               # steps between the fit's snapshots
    horizons_by_T: list[int] | None = None  # steps predicted for each of Ts (a strided fit: up to stride - 1 short)


@register("de-solver", "ode_check")
@dataclass(frozen=True)
class DeSolverOdeCheckRow(Row):
    """The trained networks against ``solve_ivp`` at the end of training, per training dtype and
    optimizer (largest error in ``x`` or ``p`` over the fine grid; largest energy drift)."""
    train_dtype: str
    optimizer: str
    median_max_abs_error: float
    best_max_abs_error: float
    worst_max_abs_error: float
    median_energy_drift: float
    final_loss_median: float


@register("de-solver", "stride_sweep")
@dataclass(frozen=True)
class DeSolverStrideSweepRow(Row):
    """Where the strided fit stops: the default fit (``fit`` ``"default-strided"`` or
    ``"default-strided-stabilised"``) of every ``stride``-th snapshot of the window, on every network of a
    training dtype and optimizer, at the paper's ``T`` (predicted as ``horizon``): quality and cost."""
    train_dtype: str
    optimizer: str
    fit: str
    stride: int
    rule: bool                              # the stride the rule (koopman_lib.stride.choose_stride) picks
    T: int
    horizon: int                            # floor_horizon(T, stride): the steps predicted
    n_inits: int
    snapshots: int                          # snapshots the fit keeps, floor((k - 1) / stride) + 1
    pairs_per_coordinate: float             # (snapshots - 1) / largest block size (the rule keeps >= 4)
    success_rate: float
    teq_over_t_median: float | None
    loss_koopman_median: float | None       # loss of the Koopman weights at the horizon (median)
    loss_optimizer_median: float | None     # the optimizer's loss at t2 + horizon (median)
    median_max_spectral_radius: float | None  # of the stride-step operators U_s
    fit_seconds_per_network: float          # one fit of all networks (both fits share it) / networks


@register("de-solver", "state_observables")
@dataclass(frozen=True)
class DeSolverStateObservablesRow(Row):
    """The optimizer's state as observables: per (training dtype, optimizer, fit, ``T``) the fit of the
    node blocks with the optimizer's buffers stacked in, scored on its jumped weights, beside the
    weights-only fit of the same name (``weights_*``, the ``table`` row's values)."""
    train_dtype: str
    fit: str
    optimizer: str
    T: int
    buffers: list[str]                      # the recorded buffers (torch.optim state names)
    transforms: list[str]                   # their transforms ("sqrt" or "identity")
    block_sizes: list[int]                  # the augmented block sizes m (1 + buffers)
    n_inits: int
    stride: int
    horizon: int
    success_rate: float
    teq_over_t_median: float | None
    teq_over_t_median_other_origin: float | None
    censored: int
    median_relative_weight_error: float | None
    median_max_spectral_radius: float | None
    error_ratio: float | None
    weights_stride: int | None = None
    weights_horizon: int | None = None
    weights_success_rate: float | None = None
    weights_teq_over_t_median: float | None = None
    weights_median_relative_weight_error: float | None = None


@register("de-solver", "state_networks")
@dataclass(frozen=True)
class DeSolverStateNetworksRow(DeSolverNetworksRow):
    """One network of a state-augmented reading at one ``T`` (the fields of the ``networks`` rows; no
    timing, no ``cond(F)``, no kept ranks: those are ``None``)."""
    speedup_paper_style: float | None
    speedup_fast_loop: float | None
    kept_rank_fraction: float | None
