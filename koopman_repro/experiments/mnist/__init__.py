"""MNIST: the paper's Table 2 / Fig. 3 (section 5, supplement S10) and the replication that diverged.

Three parts, all on the 784:20:20:20:10 ReLU classifier trained with Adadelta:

1. **The paper's experiment.** ``n_inits`` networks trained for 10 epochs (lr 1.0, StepLR
   0.7 per epoch, batch 64, normalisation 0.1307/0.3081), the weights after every step of
   epochs 3-5 recorded (2814 snapshots), Quasi-Node (q = 157) operators for layer 1 and Node
   operators for the other layers fitted in float64 with each of ``cfg.fits``
   (:data:`koopman_lib.estimator.BOOK_FITS`: the paper's ``pinv``, the library's default, the default
   clipped to the unit disk, and both defaults fitted on every ``s``-th snapshot by
   :func:`koopman_lib.estimator.fit_named`, ``s`` from the window's shape alone, 4 here: those
   predict ``floor_horizon(T, s)`` steps, up to ``s - 1`` short of ``T``, and are evaluated every
   ``lcm(s, eval_every)`` steps), the weights evolved ``T = 1, 2, 5`` epochs (test loss every
   ``eval_every`` steps, matrix powers in between), ``T_eq = Q + R`` (S10) from the per-epoch
   test losses of the continued Adadelta run, equivalent run time (S10 eq. 13) and two speedups
   per fit and horizon; the optimizer against itself (:mod:`.null`: Adadelta continued from its exact
   state at t2 with another minibatch order, scored by the same function, :mod:`.scoring`). The cutoff sweep: every cutoff of ``cfg.cutoff_sweep``, with and without
   clipping, on every init, at the same horizons (evaluated once per epoch).
2. **The replication's settings** (Rao 2024): normalisation 0.5/0.5, no StepLR, window
   epochs 4-5 (its notebook's 0-indexed ``t1, t2 = 3, 5``), Koopman training from the end of the
   5th epoch, ``n_replication_inits`` networks, float32 fits with JAX's default ``pinv`` cutoff, full-node (785-dim) and
   layer-wise (15700-dim in layer 1) operators, T = 1 and 2 epochs.
3. **One factor at a time** between the two: normalisation, StepLR, window length, layer-1
   partition, fit dtype and pinv cutoff, each switched alone starting from the replication's
   settings (and, at profile ``paper``, also starting from the paper's), with the spectral
   radius of the fitted operators and the growth of the predicted test loss, on networks
   ``0..n_ablation_inits - 1`` (10 at ``paper``), trained again for it in chunks of
   ``ablation_group_size`` (each network is its own seed: the same network as in the main
   experiment and the replication).

Memory: float64 snapshots of all inits (2814 x 16750 x 25 x 8 B = 9.4 GB) do not fit, so the
inits are trained in groups of ``group_size`` with a *stored* recording per group, released
before the next group is trained (only each member's rows and curves are kept). The training
runs in float32 (the PyTorch example's default), so the snapshots are stored in float32 without
loss and cast to float64 (or kept in float32 for the replication's fits) one init at a time when
fitting; the replication's and the ablation's fits, too, are made and evolved one network at a
time (the same values as all together). The replication's run stores its own window (epochs 4-5)
for all its networks and the paper's longer window only for the networks of the ablation
(``Run.head``); a trained run keeps only its test images, and a run's recording is released
before the next condition is trained.

Resuming: with a results folder (``koopman reproduce``), every finished group and the replication
are kept in ``OUT/.partial/mnist/`` with the config that made them (:mod:`koopman_repro.partial`); a run
interrupted and started again with the same config reads them instead of recomputing them, with
exactly the results of an uninterrupted run. They are deleted when the run completes.

Check values (:mod:`koopman_repro.regeneration`): each init is its own seed
(:func:`.training.member_seeds`), so ``cfg.networks`` reruns a few inits alone with exactly the
values they have in the whole run: their early weight norms and their key results
(:func:`per_network`), ``results["check_values"]``; :func:`regeneration_config` switches off what
stores none.

Which method gives which number: every Koopman number comes from SVD fits on the stored
snapshots (the paper's method and the library's), made and evolved by the package's core: ``Koopman.fit_variants``
(one QR + SVD per block, :mod:`koopman_lib.fit`, serves every cutoff of a run; cutoffs are
:class:`koopman_lib.fit.Cutoff` values: ``"paper"`` = MATLAB's ``max(m, k) eps64``, ``"jax"`` =
the replication's ``10 max(m, k) eps32``) and ``Koopman.rollout``
(:func:`koopman_lib.evolve.rollout`). Cholesky on the normal equations (what a streaming
``TrajectoryRecorder`` / :class:`~koopman_lib.GramAccumulator` computes) is run on init 0 only,
to compare operators, predictions and cost with ``pinv`` (``results["cholesky_check"]``).
The layer-wise operators of the replication are never formed densely: ``U = F' F^+ =
(F' V S^{-1}) U_F^T`` is kept as two thin factors ``A (m, r)`` and ``B (r, m)`` and evolved as
``w_t = A M^{t-1} B w_0`` with ``M = B A`` (``r x r``, ``r <= k - 1``).

The package, one module per study: :mod:`.config` (``Config``, ``PROFILES``, the settings table),
:mod:`.training` (data, networks, training conditions, the shared step layout ``Setup``),
:mod:`.fits` (fits through the core, cutoffs, rounding), :mod:`.table2` (the paper's experiment and
Table 2), :mod:`.cutoff_sweep`, :mod:`.ablation`, :mod:`.replication` (the replication's runs and
table) and :mod:`.timing`, and :mod:`koopman_repro.partial` (resuming an interrupted run); :func:`run` here puts them together.
"""
from __future__ import annotations

from koopman_lib.estimator import BOOK_FITS
from koopman_lib.fit import spectrum_summary
from koopman_lib.threads import torch_threads
from ..images import PAPER_NORMALIZE, REPLICATION_NORMALIZE
from .ablation import ablation_rows, ablation_settings, ablation_study, layerwise
from ...check_values import check_table, merge, with_networks
from .config import CHUNKING, DTYPES, GUARD_GROWTH, PROFILES, Config, groups, inits, settings_table
from .cutoff_sweep import sweep_name, sweep_rows, sweep_specs
from .fits import LOW_RANK_MEMORY_LIMIT, fit_cutoffs, layer1_spec, rtol_of
from . import scoring
from .null import NullBranch, null_entry, null_row, paper_null_rows
from ...partial import Partial
from .precision import float64_config, float64_experiment
from .stride_sweep import stride_sweep
from .state import state_experiment
from .replication import (layer_rows, main_rows, replication_row, replication_runs, replication_stage,
                          setting_rows, spreads)
from .table2 import cholesky_check, paper_experiment, table_rows, trajectories
from .timing import ExampleDataset, example_net, koopman_seconds, measure_timing, no_timing, time_example_epoch
from .training import Condition, Data, Setup, make_net, member_seeds, train_group, window_len

__all__ = ["Config", "PROFILES", "CHUNKING", "run", "DTYPES", "GUARD_GROWTH", "PAPER_NORMALIZE", "REPLICATION_NORMALIZE",
           "Condition", "Data", "Setup", "make_net", "member_seeds", "train_group", "window_len",
           "LOW_RANK_MEMORY_LIMIT", "fit_cutoffs", "layer1_spec", "rtol_of", "ablation_rows", "ablation_settings", "ablation_study",
           "layerwise", "settings_table", "sweep_name", "sweep_rows", "sweep_specs", "layer_rows", "main_rows",
           "replication_row", "replication_runs", "setting_rows", "spreads", "cholesky_check", "paper_experiment",
           "table_rows", "trajectories", "ExampleDataset", "example_net", "koopman_seconds", "measure_timing",
           "time_example_epoch", "inits", "groups", "n_networks", "regeneration_config", "per_network", "Partial",
           "float64_config", "float64_experiment", "NullBranch", "null_entry", "null_row", "paper_null_rows", "scoring"]


def run(cfg: Config, results_dir=None) -> dict:
    """The whole experiment (see the module docstring), with ``cfg.torch_threads`` intra-op threads.
    With ``results_dir`` (where the results go), each finished stage is kept in
    ``results_dir/.partial/mnist/`` until the run completes, and a rerun after an interruption
    resumes from there (:mod:`koopman_repro.partial`)."""
    partial = Partial.beside(results_dir, cfg, "mnist")
    with torch_threads(cfg.torch_threads):
        results = _run(cfg, partial)
    partial.clear()
    return results


def check_config(cfg: Config) -> None:
    """Raise ``ValueError`` for a ``cfg`` the experiment cannot run."""
    if cfg.ablation_directions and not (cfg.n_ablation_inits >= 1 and cfg.ablation_group_size >= 1):
        raise ValueError(f"the ablation needs n_ablation_inits >= 1 and ablation_group_size >= 1, got "
                         f"{cfg.n_ablation_inits} and {cfg.ablation_group_size} (or ablation_directions=() to skip it)")
    if cfg.networks is not None and (not cfg.networks or not all(0 <= i < cfg.n_inits for i in cfg.networks)
                                     or len(set(cfg.networks)) != len(cfg.networks)):
        raise ValueError(f"networks must be distinct indices in 0..n_inits-1={cfg.n_inits - 1}, got {cfg.networks}")
    if any(f not in cfg.fits for f in cfg.float64_fits) or "strided" in "".join(cfg.float64_fits):
        raise ValueError(f"float64_fits must be fits of every step among fits={cfg.fits}, got {cfg.float64_fits}")
    if cfg.epochs - cfg.window_epochs[1] < max(cfg.horizons_epochs):
        raise ValueError(f"epochs={cfg.epochs} must reach the end of the window plus the longest horizon "
                         f"({cfg.window_epochs[1]} + {max(cfg.horizons_epochs)}): T_eq needs optimizer epochs after t2")
    if cfg.T_epochs not in cfg.horizons_epochs or any(f not in BOOK_FITS for f in cfg.fits) or "paper" not in cfg.fits:
        raise ValueError(f"horizons_epochs must contain T_epochs={cfg.T_epochs}, and fits must include 'paper' "
                         f"and be names of koopman_lib.estimator.BOOK_FITS {tuple(BOOK_FITS)}")


def _init0_studies(cfg: Config, setup: Setup):
    """The studies of the first group while its recording is in memory (see :func:`paper_experiment`):
    init 0's trajectories, eigenvalues, singular values and Cholesky check, and the timing (unless
    ``timing_repeats`` is 0)."""
    def studies(run, window, theta_t2, track, init0, members) -> dict:
        traj, eigenvalues = trajectories(cfg, setup, track, init0, theta_t2)
        out = {"eigenvalues_init0": eigenvalues, "trajectories": traj}
        out["singular_values_init0"] = spectrum_summary(setup.partition.time_last(window[:, :1]))
        # Cholesky (what a streaming Gram recording gives) vs pinv on init 0
        out["cholesky_check"] = cholesky_check(setup.partition, window[:, 0], theta_t2[0], setup.T, init0["paper"],
                                               run.evaluate,
                                               members[0]["fits"]["paper"][f"T{cfg.T_epochs}"]["koopman_loss"])
        # timing, interleaved repeats in this process: init 0's fits and rollouts as reported
        if cfg.timing_repeats:
            out["timing"] = measure_timing(cfg, setup.data, setup.partition, window[:, :1], theta_t2[:1], setup.S)
        return out
    return studies


def _replication_rows(cfg: Config, rep: dict | None, members: list, curves: dict, ablation: tuple, S: int) -> list:
    """The ``replication`` table: the paper's main experiment per fit, then the replication's own
    rows, the paper's settings and the replication's refits (each with spreads where its curves are
    known), then the layer-wise operators; adds the replication's curves and eigenvalues to
    ``ablation`` ``(rows, curves, eigenvalues)`` (``rep``: :func:`.replication.replication_stage`)."""
    ablation_table, ablation_curves, ablation_eigs = ablation
    replication = main_rows(cfg, members, curves, S)
    by_name = {row["setting"]: row for row in ablation_table}
    rep_curves, rep_fit_rows = {}, []
    if rep is not None and rep["fits"] is not None:
        (base_rep, *rep_fit_rows), rep_curves, _ = rep["fits"]
    else:
        base_rep = by_name.get("replication settings")
    for label, row, cv in [("replication", base_rep, rep_curves.get("replication settings")),
                           ("paper", by_name.get("paper settings"), ablation_curves.get("paper settings"))] + \
                          [(f"replication, {row['fit']} fit", row, rep_curves.get(row["setting"]))
                           for row in rep_fit_rows]:
        if row is not None:
            replication += setting_rows(cfg, label, row, cv, S)
    if rep_curves:
        ablation_curves["replication settings, all inits"] = rep_curves["replication settings"]
        ablation_curves.update({row["setting"]: rep_curves[row["setting"]] for row in rep_fit_rows})
    layer = None if rep is None else rep["layer"]
    if layer is not None:
        replication += layer["rows"]
        ablation_curves["replication settings, layer-wise"] = layer["curves"]
        ablation_eigs["replication settings, layer-wise"] = layer["eigenvalues"]
    return replication


def _run(cfg: Config, partial: Partial) -> dict:
    setup = Setup.make(cfg)
    check_config(cfg)
    S = setup.S
    members, curves, out, early = paper_experiment(cfg, setup, _init0_studies(cfg, setup), partial)
    # the replication (one stage, kept for a resume as a whole) and the ablation (a stage per chunk of networks)
    rep = partial.stage("replication", lambda: replication_stage(cfg, setup)) if cfg.ablation_directions else None
    ablation = ablation_study(cfg, setup, partial) if cfg.ablation_directions else ([], {}, {})
    timing = out.pop("timing", None) or no_timing(cfg)
    table = table_rows(cfg, members, timing, setup.after, S)
    for m in members if cfg.null_model else []:    # the optimizer against itself, timed as the fits' T_eq are
        scoring.add_equivalent_times(list(m["null"].values()), timing, setup.after)
    null_model = (paper_null_rows(cfg, members) if cfg.null_model else []) + ((rep or {}).get("null_rows") or [])
    out.update(float64_experiment(cfg, setup, partial, timing))
    out.update(stride_sweep(cfg, setup, partial, members, curves))
    out.update(state_experiment(cfg, setup, partial, timing))
    sweep = sweep_rows(cfg, members, window_len(cfg, S) - 1, S)
    replication = _replication_rows(cfg, rep, members, curves, ablation, S)
    if rep is not None and rep["layer"] is not None:
        out["layerwise_ranks"] = rep["layer"]["ranks"]
    return {
        "table": table, "members": members, "null_model": null_model, "replication": replication, "ablation": ablation[0],
        "cutoff_sweep": sweep, "settings": settings_table(cfg), "timing": timing, "curves": curves,
        "ablation_curves": ablation[1], "ablation_eigenvalues": ablation[2],
        "steps_per_epoch": S, "snapshots": window_len(cfg, S), **out,
        "check_values": check_table(merge(early, per_network(cfg, members))),
    }


def per_network(cfg: Config, members: list) -> dict[int, dict[str, float]]:
    """Each network's check values (:mod:`koopman_repro.regeneration`) from its ``members`` row: its
    test loss at t2, the optimizer's test loss at every horizon, and for each fit of the table its
    largest eigenvalue modulus and, at every horizon, its Koopman test loss, T_eq and T_eq / T
    (keys ``"<fit>:max_spectral_radius"``, ``"<fit>:T<h>:koopman_loss"``, ...), and those of the
    optimizer against itself (``"null:T<h>:null_loss"``, ...). Timings and speedups
    are not check values (they are not reproducible)."""
    out = {}
    for m in members:
        values = {"test_loss_t2": m["test_loss_t2"],
                  **{f"optimizer_loss_T{h}": m[f"optimizer_loss_T{h}"] for h in cfg.horizons_epochs}}
        for name in cfg.fits:
            fit = m["fits"][name]
            values[f"{name}:max_spectral_radius"] = fit["max_spectral_radius"]
            for h in cfg.horizons_epochs:
                values.update({f"{name}:T{h}:{k}": fit[f"T{h}"][k] for k in CHECKED_PER_HORIZON})
        for h in cfg.horizons_epochs:      # the optimizer against itself (null_entry)
            values.update({f"null:T{h}:{k}": m["null"][f"T{h}"][k] for k in NULL_CHECKED_PER_HORIZON})
        out[m["init"]] = values
    return out


#: the values of each fit and horizon that are check values
CHECKED_PER_HORIZON = ("koopman_loss", "T_eq_epochs", "teq_over_t")
#: the values of the optimizer against itself at each horizon that are check values (``null:T<h>:<key>``)
NULL_CHECKED_PER_HORIZON = ("null_loss", "T_eq_epochs", "teq_over_t")


def n_networks(cfg: Config) -> int:
    """The networks (inits) of the paper's experiment in a run made with ``cfg`` (the regeneration
    check's networks)."""
    return cfg.n_inits


def regeneration_config(cfg: Config, networks) -> Config:
    """``cfg`` for rerunning inits ``networks`` alone: the paper's experiment on those inits only,
    with what stores no check values switched off: the replication and the ablation (other
    networks, other settings), the timing (timings are never check values) and the cutoff sweep (its
    fits share the table's factorisation and store no check values; without it each network is
    fitted and evolved with the table's fits only, instead of 18) and the float64 condition (other
    runs in another precision, which store no check values)."""
    return with_networks(cfg, networks, ablation_directions=(), layerwise=False, replication_fits=(),
                         timing_repeats=0, cutoff_sweep=(), n_float64_inits=0, n_state_inits=0)
