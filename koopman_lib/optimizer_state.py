"""The optimizer's state as observables: record it beside the weights, fit, jump, write it back.

Adam's weights alone are not a Markov state: its update reads the moment buffers ``m`` and
``v``, so a linear map on the weights alone has to guess them. This module stacks the state a
``torch.optim`` optimizer keeps per parameter under the weights of every block, fits the
augmented blocks with the one fit (:class:`koopman_lib.Koopman`), and writes the predicted
weights *and* state back, so that training resumes from the jumped point with a consistent
optimizer.

**The mapping** (:data:`OPTIMIZER_BUFFERS`): per optimizer, the per-parameter buffers it
keeps, in this order, and whether each is a first moment (scales like the gradient ``g``) or a
nonnegative second moment (scales like ``g^2``):

==============  =========================================================  ============================
optimizer       buffers (recorded in this order)                           step counter ``state["step"]``
==============  =========================================================  ============================
Adam, AdamW     ``exp_avg`` (m, first), ``exp_avg_sq`` (v, second),        yes (bias correction)
                ``max_exp_avg_sq`` (second, ``amsgrad=True`` only)
Adadelta        ``square_avg`` (second), ``acc_delta`` (second)            yes
Adagrad         ``sum`` (second)                                           yes (``lr_decay``)
SGD             ``momentum_buffer`` (first, ``momentum > 0`` only)         no
RMSprop         ``square_avg`` (second), ``momentum_buffer`` (first,       yes
                ``momentum > 0``), ``grad_avg`` (first, ``centered``)
==============  =========================================================  ============================

Every buffer is flattened in the order of :func:`koopman_lib.flatten_params` (node matrices
``[W | b]`` row-major, layer after layer; for an ensemble leaf ``theta`` ``(*batch, D)`` its
state already has that layout), so the state is partitioned with the same blocks as the
weights. The recorded vector is ``x = [theta; f_1(s_1); ..; f_b(s_b)]`` ``(*batch, D (1 + b))``
and a block of ``m`` weights becomes the block of ``m (1 + b)`` observables ``[w; f_1(s_1);
..]`` of the same coordinates (:meth:`StateLayout.augment`).

**Transforms** (:data:`TRANSFORMS`), chosen a priori, not fitted: ``"identity"`` and
``"sqrt"``. The default is ``"sqrt"`` for second moments and ``"identity"`` for first
moments. Why: a linear operator can only map between quantities that scale alike. ``m`` and
the weight increments scale like the gradient, and so does ``sqrt(v)``; ``v`` itself scales
like its square, so a linear map from ``v`` to the weights would have to represent a square
root. For Adadelta the update is ``sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g``: both
square roots scale like a step or a gradient. The inverse of ``"sqrt"`` is ``max(y, 0)^2``;
the inverse of ``"identity"`` on a second moment is ``max(y, 0)`` (a predicted negative second
moment is not a state the optimizer can be in, and would give Adam ``sqrt`` of a negative
number). Transforms are applied in the buffer's own dtype, so a float32 state stays exactly
float32 numbers and the ``"resolution"`` cutoff reads its precision correctly.

>>> rec = OptimizerStateRecorder(net, opt, t1=100, t2=300)        # weights + all Adam buffers
>>> for step in range(301):
...     ...; opt.step(); rec(step)
>>> kp = StateKoopman(make_partition(net, "node"), rec.layout).fit(rec)
>>> load_state(net, opt, kp.predict(rec.last(), T=100))           # weights, m, v, step + 100
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .estimator import Koopman
from .evolve import Rollout
from .partition import Partition, PartitionError, _layers, layer_shapes, load_flat
from .recorder import TrajectoryRecorder

#: per optimizer (``torch.optim`` class name): the buffers it may keep per parameter, in the
#: order they are recorded, each ``(name, second_moment)``
OPTIMIZER_BUFFERS: dict[str, tuple[tuple[str, bool], ...]] = {
    "Adam": (("exp_avg", False), ("exp_avg_sq", True), ("max_exp_avg_sq", True)),
    "AdamW": (("exp_avg", False), ("exp_avg_sq", True), ("max_exp_avg_sq", True)),
    "Adadelta": (("square_avg", True), ("acc_delta", True)),
    "Adagrad": (("sum", True),),
    "SGD": (("momentum_buffer", False),),
    "RMSprop": (("square_avg", True), ("momentum_buffer", False), ("grad_avg", False)),
}
#: optimizers that count their steps in ``state["step"]`` (advanced by ``T`` on a jump)
COUNTED = ("Adam", "AdamW", "Adadelta", "Adagrad", "RMSprop")
#: the named transforms of a buffer before it is recorded
TRANSFORMS = ("identity", "sqrt")


def optimizer_kind(optimizer) -> str:
    """The name in :data:`OPTIMIZER_BUFFERS` of ``optimizer``'s class (or its nearest
    ``torch.optim`` base class); a ``ValueError`` naming the supported optimizers otherwise."""
    for cls in type(optimizer).__mro__:
        if cls.__name__ in OPTIMIZER_BUFFERS and cls.__module__.startswith("torch.optim"):
            return cls.__name__
    raise ValueError(
        f"no state mapping for optimizer {type(optimizer).__name__}; supported: {', '.join(OPTIMIZER_BUFFERS)} "
        "(torch.optim). Record its weights alone with TrajectoryRecorder, or add its buffers to "
        "koopman_lib.optimizer_state.OPTIMIZER_BUFFERS")


def kept_buffers(optimizer) -> tuple[str, ...]:
    """The buffers ``optimizer`` keeps with its settings (``amsgrad``, ``momentum``, ``centered``),
    in the order of :data:`OPTIMIZER_BUFFERS`."""
    kind = optimizer_kind(optimizer)
    groups = optimizer.param_groups
    keep = {
        "max_exp_avg_sq": any(g.get("amsgrad", False) for g in groups),
        "momentum_buffer": any(g.get("momentum", 0) for g in groups),
        "grad_avg": any(g.get("centered", False) for g in groups),
    }
    return tuple(n for n, _ in OPTIMIZER_BUFFERS[kind] if keep.get(n, True))


def _sqrt(x):
    return x.clamp_min(0).sqrt()


@dataclass(frozen=True)
class StateLayout:
    """Where the weights and each recorded buffer sit in the recorded vector
    ``x = [theta; f_1(s_1); ..]`` ``(*batch, D (1 + b))``, and how to go back.

    Made by :meth:`for_optimizer` (which checks the buffers and transforms against the
    optimizer); ``n_params`` is ``D``, ``transforms`` one name of :data:`TRANSFORMS` per buffer.
    """

    n_params: int
    optimizer: str
    buffers: tuple[str, ...] = ()
    transforms: tuple[str, ...] = ()

    @classmethod
    def for_optimizer(cls, optimizer, n_params: int, buffers=None, transforms: dict | None = None) -> "StateLayout":
        """The layout of ``buffers`` (default: every buffer the optimizer keeps, :func:`kept_buffers`)
        with ``transforms`` ``{buffer: name}`` (default: ``"sqrt"`` for second moments, else
        ``"identity"``)."""
        kind = optimizer_kind(optimizer)
        kept = kept_buffers(optimizer)
        buffers = kept if buffers is None else ((buffers,) if isinstance(buffers, str) else tuple(buffers))
        for b in buffers:
            if b not in kept:
                raise ValueError(f"{kind} with these settings keeps the buffers {kept}, not {b!r}"
                                 + (" (amsgrad / momentum / centered switch the optional ones on)"
                                    if any(b == n for n, _ in OPTIMIZER_BUFFERS[kind]) else ""))
        if len(set(buffers)) != len(buffers):
            raise ValueError(f"a buffer is named twice in {buffers}")
        second = dict(OPTIMIZER_BUFFERS[kind])
        transforms = dict(transforms or {})
        extra = sorted(set(transforms) - set(buffers))
        if extra:
            raise ValueError(f"transforms name buffers that are not recorded: {extra}; recorded: {buffers}")
        names = []
        for b in buffers:
            t = transforms.get(b, "sqrt" if second[b] else "identity")
            if t not in TRANSFORMS:
                raise ValueError(f"unknown transform {t!r} for {b!r}; choose one of {TRANSFORMS}")
            if t == "sqrt" and not second[b]:
                raise ValueError(f"'sqrt' applies to nonnegative second moments, and {kind}'s {b!r} is signed; "
                                 "record it with 'identity'")
            names.append(t)
        return cls(int(n_params), kind, buffers, tuple(names))

    @property
    def n_features(self) -> int:
        """Length of the recorded vector, ``D (1 + b)``."""
        return self.n_params * (1 + len(self.buffers))

    def augment(self, partition: Partition) -> Partition:
        """The partition of the recorded vector: every block of ``m`` weights (indices ``i``)
        becomes the block ``[i; i + D; ..; i + b D]`` of ``m (1 + b)`` observables, the weights first."""
        if not isinstance(partition, Partition):
            raise TypeError(f"partition must be a koopman_lib.Partition, got {type(partition).__name__}")
        if partition.n_params != self.n_params:
            raise PartitionError(f"the partition covers {partition.n_params} parameters but the recording has "
                                 f"{self.n_params} weights; build the partition from the same model")
        D, n = self.n_params, 1 + len(self.buffers)
        groups = [torch.cat([g + j * D for j in range(n)], dim=1) for g in partition.groups]
        return Partition(groups, D * n, partition.specs)

    def forward(self, buffer: str, s: torch.Tensor) -> torch.Tensor:
        """The recorded observable of buffer ``buffer`` (its transform, in ``s``'s dtype)."""
        return _sqrt(s) if self.transforms[self.buffers.index(buffer)] == "sqrt" else s

    def inverse(self, buffer: str, y: torch.Tensor) -> torch.Tensor:
        """The optimizer's buffer from its observable: ``max(y, 0)^2`` (``"sqrt"``), ``max(y, 0)``
        (``"identity"`` on a second moment) or ``y``."""
        i = self.buffers.index(buffer)
        if self.transforms[i] == "sqrt":
            return y.clamp_min(0).square()
        return y.clamp_min(0) if dict(OPTIMIZER_BUFFERS[self.optimizer])[buffer] else y

    def split(self, x: torch.Tensor, T: int = 0) -> "StatePrediction":
        """A recorded or predicted vector ``(*batch, D (1 + b))`` as a :class:`StatePrediction`:
        the weights and every buffer in the optimizer's own terms (inverse transforms applied);
        ``T``: the steps it lies beyond the optimizer's current state."""
        if x.shape[-1] != self.n_features:
            raise ValueError(f"the vector has {x.shape[-1]} entries; this layout has {self.n_features} "
                             f"(D = {self.n_params} weights and {len(self.buffers)} buffer(s) {self.buffers})")
        D = self.n_params
        state = {b: self.inverse(b, x[..., (j + 1) * D:(j + 2) * D]) for j, b in enumerate(self.buffers)}
        return StatePrediction(x[..., :D], state, int(T), self)


@dataclass
class StatePrediction:
    """Weights ``theta`` ``(*batch, D)`` and the optimizer's buffers ``state`` ``{name: (*batch, D)}``
    (in the optimizer's own terms) ``T`` steps beyond the optimizer's current state;
    :func:`load_state` writes them back."""

    theta: torch.Tensor
    state: dict
    T: int
    layout: StateLayout


# -- reading and writing per-parameter tensors in the flat layout ----------------------------
def _source(params):
    """An ``nn.Module`` (flattened as :func:`koopman_lib.flatten_params`), a leaf tensor ``theta``
    ``(*batch, D)`` in that layout already, or an object holding one as ``.theta`` (an ensemble)."""
    if isinstance(params, nn.Module):
        layer_shapes(params)  # validates the model
        return params
    if not isinstance(params, torch.Tensor) and isinstance(getattr(params, "theta", None), torch.Tensor):
        params = params.theta
    if isinstance(params, torch.Tensor):
        if params.ndim < 1:
            raise ValueError("theta must be a tensor (*batch, D)")
        return params
    raise TypeError(f"params must be an nn.Module, a leaf tensor theta (*batch, D) or an ensemble with .theta; "
                    f"got {type(params).__name__}")


def _parameters(params) -> list[torch.Tensor]:
    if isinstance(params, torch.Tensor):
        return [params]
    out = []
    for mod in _layers(params):
        out.append(mod.weight)
        if mod.bias is not None:
            out.append(mod.bias)
    return out


def _n_params(params) -> int:
    return params.shape[-1] if isinstance(params, torch.Tensor) else sum(s.size for s in layer_shapes(params))


def _flatten(params, get) -> torch.Tensor:
    """``get(p)`` (shaped like ``p``) of every parameter, in the order of ``flatten_params``."""
    if isinstance(params, torch.Tensor):
        return get(params)
    parts = []
    for mod in _layers(params):
        w = get(mod.weight).reshape(mod.weight.shape[0], -1)
        if mod.bias is not None:
            w = torch.cat([w, get(mod.bias).unsqueeze(1)], dim=1)
        parts.append(w.reshape(-1))
    return torch.cat(parts)


def _unflatten(params, flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(parameter, its slice of flat reshaped like it)``, the inverse of :func:`_flatten`."""
    if isinstance(params, torch.Tensor):
        return [(params, flat)]
    out, offset = [], 0
    for mod, s in zip(_layers(params), layer_shapes(params)):
        node = flat[offset:offset + s.size].reshape(s.n_out, s.row)
        offset += s.size
        out.append((mod.weight, node[:, :s.fan_in].reshape(mod.weight.shape)))
        if s.has_bias:
            out.append((mod.bias, node[:, s.fan_in]))
    return out


def _state_of(optimizer, p: torch.Tensor, buffer: str, kind: str) -> torch.Tensor:
    st = optimizer.state.get(p)
    s = None if st is None else st.get(buffer)
    if not isinstance(s, torch.Tensor):
        raise ValueError(f"{kind} holds no {buffer!r} for a parameter of shape {tuple(p.shape)}: the state is created "
                         "at the first optimizer step; take one step before recording, and give the optimizer every "
                         "parameter of the model")
    return s


def flatten_state(params, optimizer, layout: StateLayout) -> torch.Tensor:
    """The recorded vector ``x = [theta; f_1(s_1); ..]`` ``(*batch, D (1 + b))`` in the parameters'
    dtype (transforms applied in each buffer's dtype). ``params``: the model (an ``nn.Module``),
    or a leaf ``theta`` ``(*batch, D)`` / an ensemble with ``.theta``."""
    params = _source(params)
    parts = [_flatten(params, lambda p: p.detach())]
    for b in layout.buffers:
        parts.append(layout.forward(b, _flatten(params, lambda p: _state_of(optimizer, p, b, layout.optimizer))))
    dtype = parts[0].dtype
    return torch.cat([x.to(dtype) for x in parts], dim=-1)


def load_state(params, optimizer, prediction: StatePrediction, step: int | None = None) -> None:
    """Write a :class:`StatePrediction` back: the weights into ``params`` (the model, a leaf
    ``theta`` or an ensemble), every predicted buffer into ``optimizer``'s state (cast to the
    buffer's dtype), and the step counter of every parameter (Adam's bias correction reads it)
    to ``step``, by default its current value plus ``prediction.T`` (right when the optimizer
    still holds the state the prediction started from). Buffers that were not recorded keep
    their values. Everything is checked (shapes, finiteness, the optimizer's kind and state)
    before anything is written."""
    params = _source(params)
    layout = prediction.layout
    kind = optimizer_kind(optimizer)
    if kind != layout.optimizer:
        raise ValueError(f"the prediction holds {layout.optimizer} state; the optimizer is {kind}")
    want = tuple(params.shape) if isinstance(params, torch.Tensor) else (_n_params(params),)
    for name, x in [("theta", prediction.theta)] + list(prediction.state.items()):
        if tuple(x.shape) != want:
            raise ValueError(f"the predicted {name} has shape {tuple(x.shape)}; the parameters need {want}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"the predicted {name} holds NaN or inf; refusing to write it (the jump diverged: "
                             "use a shorter T or a stabilised fit)")
    ps = _parameters(params)
    targets = {b: [_state_of(optimizer, p, b, kind) for p in ps] for b in prediction.state}
    if step is not None and (isinstance(step, bool) or int(step) != step or step < 0):
        raise ValueError(f"step must be a nonnegative integer, got {step!r}")
    if kind in COUNTED:
        for p in ps:
            if "step" not in optimizer.state.get(p, {}):
                raise ValueError(f"{kind} has no step counter for a parameter of shape {tuple(p.shape)}; "
                                 "take one optimizer step first")
    with torch.no_grad():
        if isinstance(params, torch.Tensor):
            params.copy_(prediction.theta)
        else:
            load_flat(params, prediction.theta)
        for b, x in prediction.state.items():
            for (p, v), s in zip(_unflatten(params, x), targets[b]):
                s.copy_(v)
        if kind in COUNTED:
            for p in ps:
                st = optimizer.state[p]
                old = st["step"]
                new = (float(old) + prediction.T) if step is None else float(step)
                st["step"] = torch.full_like(old, new) if isinstance(old, torch.Tensor) else type(old)(new)


# -- recording ---------------------------------------------------------------------------------
class OptimizerStateRecorder(TrajectoryRecorder):
    """A :class:`koopman_lib.TrajectoryRecorder` of the weights *and* the optimizer's state.

    ``recorder(step)`` after every optimizer step records ``x = [theta; f_1(s_1); ..]``
    (:func:`flatten_state`) for the steps of the window ``t1..t2``; ``buffers`` (default: every
    buffer the optimizer keeps) and ``transforms`` ``{buffer: "sqrt" | "identity"}`` are the
    mapping of :mod:`koopman_lib.optimizer_state`. ``params``: the model (an ``nn.Module``), a
    leaf ``theta`` ``(*batch, D)`` or an ensemble with ``.theta`` (its leading axes are the batch).
    ``layout`` (a :class:`StateLayout`) splits what it records; fit it with
    ``StateKoopman(partition, recorder.layout)``. ``partition`` (the weights' blocks) is needed
    for ``mode="streaming"`` only. Everything else (the memory estimate and its limit, ``mode``,
    ``chunk``, ``dtype``, ``memory_limit``) is :class:`koopman_lib.TrajectoryRecorder`'s, for
    ``D (1 + b)`` coordinates.
    """

    def __init__(self, params, optimizer, t1: int, t2: int, buffers=None, transforms: dict | None = None,
                 partition: Partition | None = None, **kwargs):
        self.params, self.optimizer = _source(params), optimizer
        D = _n_params(self.params)
        self.layout = StateLayout.for_optimizer(optimizer, D, buffers, transforms)
        batch = tuple(self.params.shape[:-1]) if isinstance(self.params, torch.Tensor) else ()
        aug = None if partition is None else self.layout.augment(partition)
        super().__init__(self.layout.n_features, t1, t2, batch_shape=batch, partition=aug, **kwargs)

    def __call__(self, step: int, theta: torch.Tensor | None = None) -> None:
        """Record step ``step`` (reads the model and the optimizer; ``theta``: a recorded vector
        given instead)."""
        if theta is None:
            stride = getattr(self, "stride", 1)
            if step < self.t1 or step > self.t2 or (step - self.t1) % stride:
                return
            theta = flatten_state(self.params, self.optimizer, self.layout)
        super().__call__(step, theta)

    def split(self, x: torch.Tensor, T: int = 0) -> StatePrediction:
        """``self.layout.split(x, T)``: weights and buffers of a recorded or predicted vector."""
        return self.layout.split(x, T)


# -- fitting and jumping ----------------------------------------------------------------------
@dataclass
class StateRollout(Rollout):
    """A :class:`koopman_lib.Rollout` whose ``theta`` ``(E, D)`` is the weights, with the
    optimizer's buffers of the same steps in ``state`` ``{name: (E, D)}``."""

    state: dict = field(default_factory=dict)
    layout: StateLayout | None = None
    batch_shape: tuple | None = None

    def prediction(self, T: int) -> StatePrediction:
        """The kept weights and state as a :class:`StatePrediction` ``T`` steps ahead (for
        :func:`load_state`; ``T = steps[-1]`` when no network was stopped), in the
        estimator's batch shape."""
        batch = self.theta.shape[:-1] if self.batch_shape is None else self.batch_shape
        return StatePrediction(self.theta.reshape(batch + self.theta.shape[-1:]),
                               {b: v.reshape(batch + v.shape[-1:]) for b, v in self.state.items()}, int(T),
                               self.layout)


class StateKoopman(Koopman):
    """:class:`koopman_lib.Koopman` on the augmented blocks ``[w; f_1(s_1); ..]`` of a
    :class:`StateLayout`: the same fit, cutoffs and observables (the weights and the state both
    sit in the block's first ``m (1 + b)`` rows), fitted on the recorded vectors of an
    :class:`OptimizerStateRecorder` (or a tensor ``(k, *batch, D (1 + b))``).

    ``partition``: the weights' blocks (``make_partition(model, "node")``); ``layout``: the
    recorder's ``layout``; ``kwargs``: :class:`koopman_lib.Koopman`'s. ``predict`` returns a
    :class:`StatePrediction`, ``rollout`` a :class:`StateRollout` (``loss_fn`` sees the weights
    ``(E, D)`` only; the ``max_growth`` guard reads the norm of the whole vector); ``path``
    yields the recorded vectors (split them with ``layout.split``). With no buffers it is
    :class:`koopman_lib.Koopman` on the weights.
    """

    def __init__(self, partition: Partition, layout: StateLayout, **kwargs):
        if not isinstance(layout, StateLayout):
            raise TypeError(f"layout must be a StateLayout (OptimizerStateRecorder(...).layout), "
                            f"got {type(layout).__name__}")
        self.layout, self.weights_partition = layout, partition
        super().__init__(layout.augment(partition), **kwargs)

    def predict(self, start: torch.Tensor, T: int) -> StatePrediction:
        """Weights and state ``T`` steps after ``start`` (a recorded vector ``(*batch, D (1 + b))``,
        e.g. ``recorder.last()``), in one jump."""
        return self.layout.split(super().predict(start, T), T)

    def rollout(self, start: torch.Tensor, T: int, every: int | None = None, loss_fn=None, **kwargs) -> StateRollout:
        """:meth:`koopman_lib.Koopman.rollout` of the recorded vector; ``loss_fn(theta (E, D))``
        sees the weights."""
        D = self.layout.n_params
        fn = None if loss_fn is None else (lambda x: loss_fn(x[..., :D]))
        out = super().rollout(start, T, every, fn, **kwargs)
        split = self.layout.split(out.theta, 0)
        return StateRollout(out.steps, out.values, split.theta, out.stopped_at, out.reason, split.state,
                            self.layout, self.batch_shape_)


__all__ = ["OPTIMIZER_BUFFERS", "TRANSFORMS", "StateLayout", "StatePrediction", "StateRollout", "StateKoopman",
           "OptimizerStateRecorder", "flatten_state", "load_state", "optimizer_kind", "kept_buffers"]
