"""The optimizer's state as observables (issue 25, item 3): each optimizer's per-parameter state recorded
over the window beside the weights (:class:`koopman_lib.optimizer_state.OptimizerStateRecorder`), fitted
with the book's fits on the same node blocks with the state stacked in (:meth:`StateLayout.augment`:
a block of ``m`` weights becomes ``m (1 + b)`` observables, ``b`` buffers), jumped, and the jumped weights
scored exactly as the weights-only fit's (:func:`~.readings.analyse`, :func:`~.table.summarise`).

The buffers are every one the optimizer keeps (Adam: ``exp_avg`` m and ``exp_avg_sq`` v; Adagrad: ``sum``;
Adadelta: ``square_avg`` and ``acc_delta``), chosen a priori: the update of each reads all of them.
``Config.state_transform`` names the transform of the second moments, ``"sqrt"`` by default (the core's):
a linear operator maps between quantities that scale alike, and the weight increments, ``m`` and
``sqrt(v)`` all scale like the gradient while ``v`` scales like its square (Adam's step is
``m / sqrt(v)``, Adagrad's ``g / sqrt(sum)``, Adadelta's ``sqrt(acc_delta) / sqrt(square_avg) g``);
``"identity"`` records the raw second moments, the other a-priori option. Neither was chosen by a loss.

Memory: the state recording holds ``(1 + b) D`` numbers per snapshot and network, stored in the training
dtype (the state is exactly those numbers, so nothing is lost), one recording per optimizer of
``Config.state_optimizers``, beside the float64 weight recording.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from koopman_lib.estimator import fit_named
from koopman_lib.optimizer_state import (OPTIMIZER_BUFFERS, OptimizerStateRecorder, StateLayout, kept_buffers,
                                          optimizer_kind)

from .fit_methods import cutoff_name, fit_label
from .network import de_optimizer
from .readings import analyse
from .table import summarise

if TYPE_CHECKING:
    from . import Config
    from .readings import Run, Window

#: ``Config.state_transform``: the transform of every second-moment buffer (first moments: identity)
STATE_TRANSFORMS = ("sqrt", "identity")


def _transforms(optimizer, cfg: Config) -> dict:
    second = dict(OPTIMIZER_BUFFERS[optimizer_kind(optimizer)])
    return {b: cfg.state_transform for b in kept_buffers(optimizer) if second[b]}


def state_layout(name: str, cfg: Config, n_params: int) -> StateLayout:
    """The :class:`StateLayout` optimizer ``name``'s recording has (known before training: the strided
    state fit's stride, and so its horizons, follow from its block sizes)."""
    opt = de_optimizer(name, [torch.zeros(1, n_params, requires_grad=True)], cfg)
    return StateLayout.for_optimizer(opt, n_params, transforms=_transforms(opt, cfg))


def state_recorder_factory(cfg: Config, names, dtype):
    """``(k, view, optimizer) -> OptimizerStateRecorder | None`` for :func:`~.training.train`: a stored
    recording of optimizer ``k``'s weights and state over ``t1..t2`` in the training dtype, for the
    optimizers of ``cfg.state_optimizers``."""
    def make(k, view, opt):
        if names[k] not in cfg.state_optimizers:
            return None
        return OptimizerStateRecorder(view, opt, cfg.t1, cfg.t2, transforms=_transforms(opt, cfg), dtype=dtype)
    return make


#: the state readings' values in ``state_observables`` (those of :func:`~.table.summarise`'s rows)
SHOWN = ("n_inits", "stride", "horizon", "success_rate", "teq_over_t_median", "teq_over_t_median_other_origin",
         "censored", "median_relative_weight_error", "median_max_spectral_radius", "error_ratio")
#: the weights-only reading's values beside them (the same fit)
WEIGHTS_SHOWN = ("stride", "horizon", "success_rate", "teq_over_t_median", "median_relative_weight_error")


class StateJump:
    """A state-augmented fit (a :class:`koopman_lib.Koopman` on the blocks of
    :meth:`StateLayout.augment`), seen as a fit of the weights by :func:`~.readings.analyse`: ``predict``
    jumps the recorded vector at ``t2`` (weights and state) and returns the weights, as
    :meth:`koopman_lib.optimizer_state.StateKoopman.predict` followed by ``.theta`` does (the same
    ``Koopman.predict`` on the augmented blocks, then ``layout.split``)."""

    def __init__(self, kp, layout: StateLayout, start: torch.Tensor):
        self.kp, self.layout, self.start = kp, layout, start
        self.stride_, self.operators_, self.spectral_radii_ = kp.stride_, kp.operators_, kp.spectral_radii_

    def predict(self, _theta_t2, T: int) -> torch.Tensor:
        return self.layout.split(self.kp.predict(self.start, T), T).theta


def read_state(run: Run, k: int, recorder: OptimizerStateRecorder, w: Window, res_state: dict) -> None:
    """Every state-augmented fit (``cfg.state_fits``, :func:`koopman_lib.estimator.fit_named` on the
    augmented blocks: the strided ones at the rule's stride for the augmented block size) of optimizer
    ``k``'s recording, jumped and analysed against its window ``w`` into ``res_state[fit][name]``
    (kept ranks left out: they count the augmented blocks)."""
    name, x = run.names[k], recorder.snapshots
    aug = recorder.layout.augment(run.partition)
    start = x[-1].to(torch.float64)
    if not torch.equal(start[..., :run.D], w.theta_t2):
        raise RuntimeError(f"{name}: the state recording's weights at t2 are not the weight recording's")
    for f, kp in fit_named(aug, x, run.cfg.state_fits).items():
        a = analyse(StateJump(kp, recorder.layout, start), w, run)
        a.pop("paths")
        a["rank"] = None
        res_state[f][name] = a


def state_keys(recorder: OptimizerStateRecorder, partition) -> dict:
    """What a state reading recorded: its buffers, their transforms and the augmented block sizes."""
    aug = recorder.layout.augment(partition)
    return {"buffers": list(recorder.layout.buffers), "transforms": list(recorder.layout.transforms),
            "block_sizes": sorted({int(g.shape[1]) for g in aug.groups})}


def state_rows(run: Run, res_state: dict, res: dict, keys: dict) -> tuple[list[dict], list[dict]]:
    """``(state_observables, state_networks)`` of one training dtype: per (optimizer, fit, ``T``) the
    state-augmented reading's medians beside the weights-only reading of the same fit (``weights_*``:
    the ``table`` row's values), and its per-network rows (the ``networks`` rows' fields), both by
    :func:`~.table.summarise`. ``keys[name]``: :func:`state_keys` of optimizer ``name``'s recording."""
    table, networks = [], []
    for f in run.cfg.state_fits:
        for T in run.cfg.Ts:
            for k, name in enumerate(run.names):
                if name not in res_state[f]:
                    continue
                fk = {"train_dtype": run.dtype_name, "fit": f}
                row, nets = summarise(res_state[f][name], run, k, T, {**fk, "fit_method": fit_label(f),
                                                                       "cutoff": cutoff_name(f)}, None)
                networks += nets
                weights = (summarise(res[f][name], run, k, T, fk, None)[0] if name in res.get(f, {})
                           else {})
                table.append({**fk, "optimizer": name, "T": T, **keys[name], **{c: row[c] for c in SHOWN},
                              **{f"weights_{c}": weights.get(c) for c in WEIGHTS_SHOWN}})
    return table, networks
