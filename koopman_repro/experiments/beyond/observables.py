"""Item 5: time delays and a polynomial dictionary per block against the identity observables;
accuracy vs cost, on the NN DE solver and on MNIST (from the recorded runs of :mod:`.paper_runs`).
"""
from __future__ import annotations

import numpy as np
import torch

from koopman_lib.estimator import Koopman
from koopman_lib.observables import Identity, parse_observables
from koopman_lib.progress import bar
from koopman_lib.metrics import finite_median
from .common import FIT_NAMES, FITS, Config, DeRun, Run, _frac, _timed, de_schedule, fit_variants, \
    mnist_schedule, rel_error, teq_over_t


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


def de_observables(cfg: Config, d: DeRun) -> tuple[list[dict], dict]:
    """Item 5 on the NN DE solver: one row per observable spec in ``de_observables``, and the
    per-network check values."""
    E = d.E
    partition, losses, loss_fn, snap = d.partition, d.losses, d.loss_fn, d.snap
    t1, t2, T, setting = de_schedule(cfg)
    window = d.window(t1, t2)
    ref = losses[t2:, :]                  # Adadelta continuation, every step
    obs_rows, values = [], {}
    true_end = snap(t2 + T)
    for spec in cfg.de_observables:
        obs = parse_observables(spec)
        otr, sec = _timed(lambda: EachNetwork([Koopman(partition, cutoff="paper", observables=obs).fit(
            window[:, e:e + 1]) for e in range(E)]))
        hist = window[-obs.history:]
        p, jsec = _timed(lambda: otr.predict(hist, T))
        lp = loss_fn(p)
        r = teq_over_t(lp, ref, 1, T)
        values.update({f"observables {obs.name}:loss": lp, f"observables {obs.name}:teq_over_t": r,
                       f"observables {obs.name}:spectral_radius": otr.spectral_radius_})
        obs_rows.append({"experiment": "de-solver", "method": f"Koopman, {obs.name} observables (pinv)",
                         "setting": setting, "observables": obs.name,
                         "features_per_block": "/".join(str(obs.n_features(m)) for m in partition.block_sizes),
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
            of, sec = fits, fit_s
        else:
            each = [fit_variants(partition, window[:, e:e + 1], FITS, observables=obs) for e in range(n_obs)]
            of, sec = {n: EachNetwork([f[n] for f, _ in each]) for n in FITS}, sum(s for _, s in each) / n_obs
        for name, fit in of.items():
            p, jsec = _timed(lambda: fit.predict(hist, T))
            l, a = ev(p.float())
            r = teq_over_t(l, ref[:, :n_obs], every, T)
            key = f"observables {obs.name} {name}"
            values.update({f"{key}:test_loss": l, f"{key}:teq_over_t": r, f"{key}:spectral_radius": fit.spectral_radius_})
            obs_rows.append({"experiment": "mnist", "method": f"Koopman, {obs.name} observables ({FIT_NAMES[name]})",
                             "fit": name, "setting": setting, "observables": obs.name,
                             "features_per_block": "/".join(str(obs.n_features(m)) for m in partition.block_sizes),
                             "operator_entries_per_network": fit.operator_entries(),
                             "fit_seconds_per_network": sec, "jump_seconds_per_network": jsec / n_obs,
                             "loss_median": finite_median(l), "accuracy_median": finite_median(a),
                             "teq_over_t_median": finite_median(r), "success_rate": _frac(np.array(r) > 0),
                             "weight_error_median": finite_median(rel_error(p, run.snap(t2 + T)[:n_obs], theta_t2[:n_obs])),
                             "max_spectral_radius_median": finite_median(fit.spectral_radius_), "n_networks": n_obs})
        del of
    return obs_rows, values
