"""Declared rows of the ``mnist`` results tables (one frozen dataclass per table).

Generated from the keys and value types of the committed results, then kept by hand: a new field
goes here, in the producer (:mod:`koopman_repro.experiments.mnist`), and (for older files) in
:mod:`koopman_repro.migrations`. Fields named per horizon in the files (``koopman_loss_T2``) are
read through the rows' methods (``row.koopman_loss(2)``), never by building the key.

Losses are test losses (mean negative log-likelihood per test image), accuracies fractions in
[0, 1]; "median" is the median over the networks of the finite values
(:func:`koopman_lib.metrics.finite_median`). ``T`` and ``T_epochs`` are horizons in epochs after
``t2``, the end of the recorded window.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import Row, register

#: the ``factor`` of an ablation row that is its direction's starting point
BASE_FACTOR = "none (base)"


@register("mnist", "table")
@dataclass(frozen=True)
class MnistTableRow(Row):
    """Table 2: one fit (``koopman_lib.fit.FITS``) at one horizon, over every network of the
    paper's experiment."""
    variant: str                         # "paper settings, <fit> fit"
    fit: str                             # the fit's name in koopman_lib.fit.FITS
    cutoff: str                          # the fit's cutoff (a koopman_lib.fit.Cutoff name)
    n_inits: int                         # networks
    T_epochs: int                        # horizon (epochs of Koopman steps)
    success_rate: float                  # fraction of networks with T_eq > 0
    teq_over_t_median: float             # median T_eq / T
    speedup_paper_style_median_all: float | None   # median speedup over all networks (a failed one counts 0)
    speedup_fast_loop_median_all: float | None
    koopman_seconds: float | None               # the timed fit + rollout of one network
    censored_fraction: float             # networks whose T_eq is censored at the last optimizer epoch
    optimizer_loss_T_median: float       # Adadelta's median test loss after T epochs
    test_loss_t2_median: float           # median test loss at t2
    optimizer_acc_T_median: float
    max_spectral_radius_median: float    # median over the networks of the largest eigenvalue modulus
    guard_stops: int                     # rollouts the guard stopped within T
    speedup_paper_style_median: float | None = None   # median over the networks that improved; None: none did
    speedup_fast_loop_median: float | None = None
    koopman_loss_T_median: float | None = None
    koopman_acc_T_median: float | None = None
    stride: int | None = None            # the fit's stride s (1: every snapshot; None: not in this saved run)
    horizon_steps: int | None = None     # the optimizer steps it predicts: floor_horizon(T, s), up to s - 1 short

    def speedup(self, loop: str) -> float | None:
        """The median speedup against ``loop`` (``"paper_style"`` or ``"fast_loop"``) over the
        networks Koopman training improved, and 0 when it improved none (the scorecard's convention)."""
        v = getattr(self, f"speedup_{loop}_median")
        return 0.0 if v is None and self.success_rate == 0 else v


@register("mnist", "members")
@dataclass(frozen=True)
class MnistMembersRow(Row):
    """One network of the paper's experiment: the optimizer's test loss and accuracy at the horizons,
    and per fit (``fits[name]``) its spectrum, guard stop and, per horizon ``"T<h>"``, T_eq and the
    Koopman test loss."""
    init: int
    test_loss_t2: float
    optimizer_loss_T1: float
    optimizer_loss_T2: float
    optimizer_loss_T5: float
    optimizer_acc_T1: float
    optimizer_acc_T2: float
    optimizer_acc_T5: float
    fits: dict
    # the optimizer against itself (None: not in this saved run): per horizon "T<h>" the same entry
    # as a fit's (T_eq_epochs, Q, R, censored, teq_over_t, equivalent times) with null_loss, null_acc
    null: dict | None = None

    def optimizer_loss(self, T: int) -> float:
        """Adadelta's test loss ``T`` epochs after t2."""
        return getattr(self, f"optimizer_loss_T{T}")

    def optimizer_acc(self, T: int) -> float:
        return getattr(self, f"optimizer_acc_T{T}")

    def at(self, fit: str, T: int) -> dict:
        """Fit ``fit``'s entry at horizon ``T``: ``T_eq_epochs``, ``Q``, ``R``, ``censored``,
        ``teq_over_t``, ``koopman_loss``, ``koopman_acc`` (and the timed equivalents and speedups)."""
        return self.fits[fit][f"T{T}"]

    def null_at(self, T: int) -> dict | None:
        """The optimizer against itself at horizon ``T`` (``null_loss``, ``teq_over_t``, ...), ``None``
        where the saved run has none."""
        return None if self.null is None else self.null.get(f"T{T}")

    def koopman_minus_null(self, fit: str, T: int) -> tuple[float, float] | None:
        """The paired difference of this network at horizon ``T``: fit ``fit`` minus the optimizer
        against itself, ``(test loss at T, T_eq / T)``; ``None`` without the null model."""
        null, k = self.null_at(T), self.at(fit, T)
        if null is None:
            return None
        value = lambda d, key: math.nan if d.get(key) is None else d[key]     # a saved nan is null
        return (value(k, "koopman_loss") - value(null, "null_loss"), value(k, "teq_over_t") - value(null, "teq_over_t"))


@register("mnist", "table_float64")
@dataclass(frozen=True)
class MnistTableFloat64Row(MnistTableRow):
    """Table 2 of the paper's experiment trained in float64 (the other reading of the paper's
    precision) on ``n_inits`` networks, with the fits ``Config.float64_fits``; empty at ci."""


@register("mnist", "members_float64")
@dataclass(frozen=True)
class MnistMembersFloat64Row(MnistMembersRow):
    """One network of the paper's experiment trained in float64 (no optimizer against itself)."""


@register("mnist", "table_state")
@dataclass(frozen=True)
class MnistTableStateRow(MnistTableRow):
    """Table 2 of fits with Adadelta's state (``sqrt(square_avg)``, ``sqrt(acc_delta)``) stacked under
    the weights of every block (:mod:`koopman_repro.experiments.mnist.state`) on ``n_inits`` networks,
    with the fits ``Config.state_fits``, the jumped weights scored as the main table's; not timed
    (``koopman_seconds`` and the speedups nan, saved as null); empty at ci."""
    observables: str = "weights + Adadelta state"


@register("mnist", "members_state")
@dataclass(frozen=True)
class MnistMembersStateRow(MnistMembersRow):
    """One network of the state-augmented fits (no optimizer against itself)."""
    observables: str = "weights + Adadelta state"


@register("mnist", "null_model")
@dataclass(frozen=True)
class MnistNullModelRow(Row):
    """The optimizer against itself under one setting at one horizon: Adadelta continued from its
    exact state at t2 with another minibatch order, scored as the Koopman fits are (T_eq against the
    network's own run), and the paired difference per network, Koopman minus the branch."""
    setting: str                         # "paper settings" (the members) or "replication settings"
    T_epochs: int
    n_members: int
    networks: list                       # the inits, in the order of the per-network lists
    success_rate: float                  # fraction of networks with T_eq > 0
    teq_over_t_median: float
    censored_fraction: float
    null_loss_median: float              # the branch's median test loss at T
    optimizer_loss_median: float         # the network's own run's
    test_loss_t2_median: float
    null_loss: list                      # per network
    teq_over_t: list                     # per network
    koopman_minus_null_loss_median: dict  # {fit or setting: median over networks of Koopman - branch test loss}
    koopman_minus_null_teq_over_t_median: dict | None = None   # the same in T_eq / T


@register("mnist", "replication")
@dataclass(frozen=True)
class MnistReplicationRow(Row):
    """The replication (Rao 2024) against the paper: one setting, fit and layer-1 partition at one
    horizon; medians over ``n_members`` networks, quartiles where the run kept the curves."""
    setting: str                         # "replication", "replication, <fit> fit", "paper", "paper (main ...)"
    fit: str
    partition: str                       # layer-1 partition: "node", "quasi_node" or "layer"
    dtype: str                           # the fit's precision
    cutoff: str
    window_epochs: str                   # "4-5": the recorded epochs
    normalize: str                       # "mean/std"
    steplr: bool
    T_epochs: int
    n_members: int
    test_loss_t2: float
    final_test_loss_optimizer: float
    final_test_acc_optimizer: float
    max_spectral_radius: float
    final_test_loss_koopman: float | None = None   # None: every network stopped by the guard
    final_test_acc_koopman: float | None = None
    clip: float | None = None            # eigenvalue moduli clipped to this (None: not clipped)
    koopman_loss_q25: float | None = None
    koopman_loss_q75: float | None = None
    optimizer_loss_q25: float | None = None
    optimizer_loss_q75: float | None = None
    koopman_loss_growth_median: float | None = None   # median of the Koopman loss at T over its value at t2
    koopman_loss_growth_q25: float | None = None
    koopman_loss_growth_q75: float | None = None
    networks_koopman_above_optimizer_median: int | None = None

    def final_loss(self, who: str) -> float | None:
        """The median final test loss of ``who``: ``"koopman"`` or ``"optimizer"``."""
        return getattr(self, f"final_test_loss_{who}")

    def loss_quartiles(self, who: str) -> tuple[float | None, float | None]:
        """``(q25, q75)`` of ``who``'s (``"koopman"`` or ``"optimizer"``) final test loss; ``None``s
        where the run did not record them."""
        return getattr(self, f"{who}_loss_q25"), getattr(self, f"{who}_loss_q75")


@register("mnist", "ablation")
@dataclass(frozen=True)
class MnistAblationRow(Row):
    """One factor at a time: a setting that starts from one side (``direction``) and switches
    ``factor`` to the other side's value; medians over ``n_members`` networks."""
    direction: str                       # "from_replication" or "from_paper"
    factor: str                          # the switched factor, BASE_FACTOR for the starting point
    setting: str
    fit: str
    normalize: str
    steplr: bool
    window_epochs: str
    partition: str
    dtype: str
    cutoff: str
    rtol_layer1: float                   # the relative cutoff on layer 1's blocks
    n_members: int
    max_spectral_radius: float
    n_eigs_outside_unit_circle: float
    test_loss_t2: float
    optimizer_loss_T1: float
    optimizer_acc_T1: float
    optimizer_loss_T2: float
    optimizer_acc_T2: float
    clip: float | None = None
    koopman_loss_T1: float | None = None
    koopman_acc_T1: float | None = None
    koopman_loss_T2: float | None = None
    koopman_acc_T2: float | None = None
    loss_growth_T2: float | None = None              # Koopman loss after 2 epochs / test loss at t2
    koopman_over_optimizer_T2: float | None = None   # Koopman / Adadelta test loss after 2 epochs

    @property
    def is_base(self) -> bool:
        """The starting point of its direction (no factor switched)."""
        return self.factor == BASE_FACTOR

    def koopman_loss(self, T: int) -> float | None:
        return getattr(self, f"koopman_loss_T{T}")

    def optimizer_loss(self, T: int) -> float:
        return getattr(self, f"optimizer_loss_T{T}")


@register("mnist", "cutoff_sweep")
@dataclass(frozen=True)
class MnistCutoffSweepRow(Row):
    """One cutoff of the sweep, clipped to the unit disk or not, at one horizon, over every network."""
    cutoff: float | str                  # a koopman_lib.fit.Cutoff value
    stabilised: bool                     # eigenvalues clipped to the unit disk
    T_epochs: int
    n_inits: int
    success_rate: float
    teq_over_t_median: float
    rtol_layer1: float
    mean_rank_layer1_blocks: float
    max_spectral_radius: float
    optimizer_loss_median: float
    guard_stops: int
    koopman_loss_median: float | None = None


@register("mnist", "stride_sweep")
@dataclass(frozen=True)
class MnistStrideSweepRow(Row):
    """One strided fit at one stride of the sweep (:mod:`koopman_repro.experiments.mnist.stride_sweep`),
    at the paper's horizon, over every network of the main table; ``rule``: the stride the rule picks."""
    fit: str
    stride: int
    rule: bool
    T_epochs: int
    horizon_steps: int                   # optimizer steps predicted (floor_horizon of T epochs)
    n_inits: int
    snapshots: int                       # snapshots of the window the fit kept
    pairs_per_coordinate: float          # snapshot pairs per coordinate of the largest block
    success_rate: float
    teq_over_t_median: float
    koopman_loss_median: float | None
    optimizer_loss_median: float
    median_max_spectral_radius: float
    fit_seconds_median: float            # one network's fit (this machine, this run's load)
    all_same_networks: bool              # every network retrained for the sweep is the main table's


@register("mnist", "settings")
@dataclass(frozen=True)
class MnistSettingsRow(Row):
    """One setting as the paper, the replication and this run have it (text)."""
    setting: str
    paper: str
    replication: str
    ours: str


@register("mnist", "singular_values_init0")
@dataclass(frozen=True)
class MnistSingularValuesInit0Row(Row):
    """One block group of init 0's fits: block size, count, snapshots and the relative singular
    values of its blocks, with the float32 and float64 cutoffs."""
    block_size: int
    n_blocks: int
    k: int
    relative_singular_values: list
    cutoff_float32: float
    cutoff_float64: float
