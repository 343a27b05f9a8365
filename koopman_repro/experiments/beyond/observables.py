"""Item 5: time delays, a polynomial dictionary and the optimizer's state per block against the
identity observables; accuracy vs cost, on the NN DE solver and on MNIST (from the recorded runs of
:mod:`.paper_runs`).

The optimizer's state (spec :data:`STATE`, issue 25) is chosen a priori, not by its loss: Adadelta's
two per-parameter buffers (``square_avg``, ``acc_delta``), every buffer its update reads, recorded
beside the weights over the same window (:class:`koopman_lib.optimizer_state.OptimizerStateRecorder`)
and stacked under each block's weights (:meth:`~koopman_lib.optimizer_state.StateLayout.augment`),
each as its square root (the core's default: a linear map relates quantities that scale alike, and
the step ``sqrt(acc_delta) / sqrt(square_avg) g`` reads both square roots); the same fits and
partition as the other observables, the jumped weights scored as theirs.
"""
from __future__ import annotations

import numpy as np
import torch

from koopman_lib.estimator import Koopman
from koopman_lib.observables import Identity, parse_observables
from koopman_lib.optimizer_state import StateKoopman
from koopman_lib.progress import bar
from koopman_lib.metrics import finite_median
from ..images import release_memory
from .common import FIT_NAMES, FITS, Config, DeRun, Run, _frac, _timed, de_schedule, fit_variants, \
    mnist_schedule, rel_error, teq_over_t

#: the observables spec of the weights and the optimizer's state (in ``de_observables`` /
#: ``mnist_observables``; every other spec is :func:`koopman_lib.observables.parse_observables`'s)
STATE = "state"


class EachNetwork:
    """The fits of an ensemble made one network at a time, used as one fit of ``E`` networks: the
    lifted observables' per-block statistics (the polynomial dictionary's means and standard
    deviations) round differently in a batch of networks than alone (1e-11 apart), and network
    ``i``'s values must not depend on the others."""

    def __init__(self, fits: list):
        self.fits = fits

    def predict(self, history: torch.Tensor, T: int) -> torch.Tensor:
        return torch.cat([f.predict(history[:, e:e + 1], T) for e, f in enumerate(self.fits)])

    @property
    def spectral_radius_(self) -> torch.Tensor:
        return torch.cat([f.spectral_radius_ for f in self.fits])

    def operator_entries(self) -> int:
        return self.fits[0].operator_entries()


class StateWeights:
    """A fitted :class:`~koopman_lib.optimizer_state.StateKoopman` seen as a fit of the weights: ``predict``
    jumps the last recorded vector of ``history`` (weights and state) and returns the weights."""

    def __init__(self, kp: StateKoopman):
        self.kp = kp

    def predict(self, history: torch.Tensor, T: int) -> torch.Tensor:
        return self.kp.predict(history[-1], T).theta

    @property
    def spectral_radius_(self) -> torch.Tensor:
        return self.kp.spectral_radius_

    def operator_entries(self) -> int:
        return self.kp.operator_entries()


def state_name(layout) -> str:
    """The method's words for a state layout: ``weights + Adadelta state (sqrt square_avg, sqrt acc_delta)``."""
    parts = ", ".join(f"{'sqrt ' if t == 'sqrt' else ''}{b}" for b, t in zip(layout.buffers, layout.transforms))
    return f"weights + {layout.optimizer} state ({parts})"


def _de_fit(spec: str, d: DeRun, window: torch.Tensor, state) -> tuple:
    """``(fit, seconds, name, features per block, history, words for the method)`` of one observables
    spec on the DE run,
    network by network (``state``: the :class:`OptimizerStateRecorder` of the window, for :data:`STATE`)."""
    E, partition = d.E, d.partition
    if spec == STATE:
        x = state.snapshots
        if not torch.equal(x[-1, :, :d.snaps.shape[-1]], window[-1]):
            raise RuntimeError("the state recording's weights at t2 are not the weight recording's")
        fit, sec = _timed(lambda: EachNetwork([StateWeights(StateKoopman(partition, state.layout, cutoff="paper").fit(
            x[:, e:e + 1])) for e in range(E)]))
        n = 1 + len(state.layout.buffers)
        return fit, sec, STATE, "/".join(str(n * m) for m in partition.block_sizes), x[-1:], state_name(state.layout)
    obs = parse_observables(spec)
    fit, sec = _timed(lambda: EachNetwork([Koopman(partition, cutoff="paper", observables=obs).fit(
        window[:, e:e + 1]) for e in range(E)]))
    return (fit, sec, obs.name, "/".join(str(obs.n_features(m)) for m in partition.block_sizes),
            window[-obs.history:], f"{obs.name} observables")


def de_observables(cfg: Config, d: DeRun, state=None) -> tuple[list[dict], dict]:
    """Item 5 on the NN DE solver: one row per observable spec in ``de_observables``, and the
    per-network check values; ``state``: the recording of weights and optimizer state over the
    window (needed for :data:`STATE`)."""
    E = d.E
    partition, losses, loss_fn, snap = d.partition, d.losses, d.loss_fn, d.snap
    t1, t2, T, setting = de_schedule(cfg)
    window = d.window(t1, t2)
    ref = losses[t2:, :]                  # Adadelta continuation, every step
    obs_rows, values = [], {}
    true_end = snap(t2 + T)
    for spec in cfg.de_observables:
        otr, sec, name, features, hist, words = _de_fit(spec, d, window, state)
        p, jsec = _timed(lambda: otr.predict(hist, T))
        lp = loss_fn(p)
        r = teq_over_t(lp, ref, 1, T)
        values.update({f"observables {name}:loss": lp, f"observables {name}:teq_over_t": r,
                       f"observables {name}:spectral_radius": otr.spectral_radius_})
        obs_rows.append({"experiment": "de-solver", "method": f"Koopman, {words} (pinv)",
                         "setting": setting, "observables": name, "features_per_block": features,
                         "operator_entries_per_network": otr.operator_entries(),
                         "fit_seconds_per_network": sec / E, "jump_seconds_per_network": jsec / E,
                         "loss_median": finite_median(lp), "accuracy_median": None,
                         "teq_over_t_median": finite_median(r), "success_rate": _frac(np.array(r) > 0),
                         "weight_error_median": finite_median(rel_error(p, true_end, snap(t2))),
                         "max_spectral_radius_median": finite_median(otr.spectral_radius_)})
    return obs_rows, values


def observed_members(cfg: Config, networks: list[int]) -> int:
    """How many of the members (networks ``networks``, ascending) item 5 fits on MNIST: those
    among the first ``obs_members`` networks of the run (all when ``obs_members`` is None)."""
    return len(networks) if cfg.obs_members is None else sum(i < cfg.obs_members for i in networks)


def mnist_observables(cfg: Config, run: Run, partition, item1_fits: tuple,
                      networks: list[int]) -> tuple[list[dict], dict]:
    """Item 5 on MNIST (the first ``obs_members`` networks), both fits per observable spec, and
    the per-network check values of those networks (:func:`observed_members`); ``item1_fits``
    ``(fits, seconds)`` of item 1 serve the identity observables on every network."""
    E = run.E
    ev, every = run.evaluate, cfg.eval_every
    t1, t2, T, setting = mnist_schedule(cfg, run.S)
    window = run.window(t1, t2)
    ref = run.after(t2)
    theta_t2 = run.snap(t2)
    fits, fit_s = item1_fits
    obs_rows, values = [], {}
    n_obs = observed_members(cfg, networks)
    if n_obs == 0:
        return obs_rows, values
    for spec in bar(cfg.mnist_observables, desc="mnist observables"):
        obs = parse_observables(spec)
        hist = run.window(t2 - obs.history + 1, t2)[:, :n_obs]
        if type(obs) is Identity and n_obs == E:  # the fits of item 1
            jumped = {}
            for name, fit in fits.items():
                p, jsec = _timed(lambda: fit.predict(hist, T))
                jumped[name] = (p, jsec, fit.spectral_radius_, fit.operator_entries())
            sec = fit_s
        else:
            jumped, sec = _each_network(partition, window, hist, obs, T, n_obs)
        for name, (p, jsec, radius, entries) in jumped.items():
            l, a = ev(p.float())
            r = teq_over_t(l, ref[:, :n_obs], every, T)
            key = f"observables {obs.name} {name}"
            values.update({f"{key}:test_loss": l, f"{key}:teq_over_t": r, f"{key}:spectral_radius": radius})
            obs_rows.append({"experiment": "mnist", "method": f"Koopman, {obs.name} observables ({FIT_NAMES[name]})",
                             "fit": name, "setting": setting, "observables": obs.name,
                             "features_per_block": "/".join(str(obs.n_features(m)) for m in partition.block_sizes),
                             "operator_entries_per_network": entries,
                             "fit_seconds_per_network": sec, "jump_seconds_per_network": jsec / n_obs,
                             "loss_median": finite_median(l), "accuracy_median": finite_median(a),
                             "teq_over_t_median": finite_median(r), "success_rate": _frac(np.array(r) > 0),
                             "weight_error_median": finite_median(rel_error(p, run.snap(t2 + T)[:n_obs], theta_t2[:n_obs])),
                             "max_spectral_radius_median": finite_median(radius), "n_networks": n_obs})
        del jumped
    return obs_rows, values


def _each_network(partition, window: torch.Tensor, hist: torch.Tensor, obs, T: int, n_obs: int) -> tuple[dict, float]:
    """The fits of ``FITS`` with observables ``obs`` on the first ``n_obs`` networks of ``window``
    ``(k, E, D)``, made and jumped one network at a time (as :class:`EachNetwork`, whose values
    they are), each network's fits freed before the next is fitted (memory: one network's lifted
    group and operators alive, not ``n_obs``): ``({fit: (jumped weights (n_obs, D), jump seconds,
    spectral radius (n_obs,), operator entries per network)}, fit seconds per network)``."""
    parts = {n: [] for n in FITS}
    fit_sec = 0.0
    for e in range(n_obs):
        fits, sec = fit_variants(partition, window[:, e:e + 1], FITS, observables=obs)
        fit_sec += sec
        for name, fit in fits.items():
            p, jsec = _timed(lambda: fit.predict(hist[:, e:e + 1], T))
            parts[name].append((p, jsec, fit.spectral_radius_, fit.operator_entries()))
        del fits
        release_memory()
    return {n: (torch.cat([q[0] for q in got]), sum(q[1] for q in got), torch.cat([q[2] for q in got]), got[0][3])
            for n, got in parts.items()}, fit_sec / n_obs
