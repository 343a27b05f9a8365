"""Partitions of a network's weights and biases into Koopman blocks (paper Alg. 1, Fig. 1).

Every supported layer (``nn.Linear``, ``nn.Conv2d``) is seen as a *node matrix*
``N`` of shape ``(n_out, fan_in + 1)``: row ``j`` holds the weights into node
(output unit / channel) ``j`` followed by its bias. The flat parameter vector
``theta`` is the concatenation of the row-major node matrices of all layers.

A :class:`Partition` is a list of *groups*; each group is an index tensor
``(P, m)`` into ``theta`` holding ``P`` blocks of equal size ``m``. Blocks of equal
size from different layers share one group, so each group is one batched fit.
The groups cover every entry of ``theta`` exactly once, so
``assemble(blocks(theta)) == theta`` exactly.

Partition kinds (``spec`` strings): ``"single"`` (m = 1), ``"quasi_node:q"``
(each node vector cut into chunks of ``q``; a shorter leftover chunk if ``q`` does
not divide ``fan_in + 1``), ``"node"`` (m = fan_in + 1), ``"layer"`` (all
weights and biases of a layer), ``"network"`` (everything, one block).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

SUPPORTED = (nn.Linear, nn.Conv2d)


class PartitionError(ValueError):
    """A model or spec that cannot be partitioned (the message says why and what to do)."""


@dataclass(frozen=True)
class LayerShape:
    """One layer as a node matrix ``(n_out, fan_in + has_bias)``."""

    name: str
    n_out: int
    fan_in: int
    has_bias: bool = True

    @property
    def row(self) -> int:
        return self.fan_in + int(self.has_bias)

    @property
    def size(self) -> int:
        return self.n_out * self.row


def layer_shapes(model: nn.Module) -> list[LayerShape]:
    """The node-matrix shapes of ``model``'s layers, in registration order."""
    shapes = []
    for name, mod in model.named_modules():
        own = list(mod.parameters(recurse=False))
        if not own:
            continue
        if not isinstance(mod, SUPPORTED):
            raise PartitionError(
                f"module {name or '<root>'!r} of type {type(mod).__name__} has parameters but is not "
                f"supported; supported layer types: {[c.__name__ for c in SUPPORTED]}. Freeze it "
                "(requires_grad=False is not enough: move it out of the model) or add support."
            )
        w = mod.weight
        shapes.append(LayerShape(name, w.shape[0], int(math.prod(w.shape[1:])), mod.bias is not None))
    if not shapes:
        raise PartitionError("model has no nn.Linear or nn.Conv2d layers with parameters")
    return shapes


def _layers(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, SUPPORTED)]


def flatten_params(model: nn.Module, dtype=torch.float64) -> torch.Tensor:
    """``theta`` ``(D,)``: node matrices of all layers, row-major, concatenated."""
    layer_shapes(model)  # validates the model
    parts = []
    for mod in _layers(model):
        w = mod.weight.detach().reshape(mod.weight.shape[0], -1)
        if mod.bias is not None:
            w = torch.cat([w, mod.bias.detach().unsqueeze(1)], dim=1)
        parts.append(w.reshape(-1).to(dtype))
    return torch.cat(parts)


def load_flat(model: nn.Module, theta: torch.Tensor) -> None:
    """Write ``theta`` ``(D,)`` into ``model``'s parameters (cast to their dtype).

    Checks the size and finiteness first, so a bad vector never half-writes the model.
    """
    shapes = layer_shapes(model)
    total = sum(s.size for s in shapes)
    if theta.ndim != 1 or theta.numel() != total:
        raise PartitionError(
            f"theta has shape {tuple(theta.shape)} but the model has {total} parameters "
            f"in {len(shapes)} layers; was the recording made from a different architecture?"
        )
    if not bool(torch.isfinite(theta).all()):
        raise PartitionError("theta holds NaN or inf; refusing to write it into the model")
    offset = 0
    with torch.no_grad():
        for mod, s in zip(_layers(model), shapes):
            node = theta[offset:offset + s.size].reshape(s.n_out, s.row)
            offset += s.size
            mod.weight.copy_(node[:, :s.fan_in].reshape(mod.weight.shape))
            if s.has_bias:
                mod.bias.copy_(node[:, s.fan_in])


def _parse(spec: str) -> tuple[str, int | None]:
    if spec.startswith("quasi_node"):
        try:
            q = int(spec.split(":", 1)[1])
        except (IndexError, ValueError):
            raise PartitionError(f"quasi-node spec must look like 'quasi_node:157', got {spec!r}")
        if q < 1:
            raise PartitionError(f"quasi-node chunk size must be >= 1, got {q}")
        return "quasi_node", q
    if spec in ("single", "node", "layer", "network"):
        return spec, None
    raise PartitionError(
        f"unknown partition {spec!r}; use 'single', 'quasi_node:q', 'node', 'layer' or 'network'"
    )


def _as_range(g: torch.Tensor) -> tuple[int, int] | None:
    """``(start, stop)`` when the indices ``g`` ``(P, m)`` are ``start .. stop - 1`` in row-major order."""
    flat = g.reshape(-1)
    start = int(flat[0]) if flat.numel() else 0
    same = torch.equal(flat, torch.arange(start, start + flat.numel(), dtype=flat.dtype))
    return (start, start + flat.numel()) if same else None


class Partition:
    """Groups of equal-size blocks covering ``theta`` exactly once.

    ``groups[g]`` is a LongTensor ``(P_g, m_g)`` of indices into ``theta``. A group whose indices
    are one contiguous range in row-major order (a node, quasi-node or layer partition of
    consecutive layers) is read as a slice of ``theta``: :meth:`blocks` gives a view, not a copy.
    """

    def __init__(self, groups: list[torch.Tensor], n_params: int, specs: tuple[str, ...]):
        self.groups = groups
        self.n_params = n_params
        self.specs = specs
        self._ranges = [_as_range(g) for g in groups]

    @property
    def block_sizes(self) -> list[int]:
        return [int(g.shape[1]) for g in self.groups]

    @property
    def n_blocks(self) -> int:
        return sum(int(g.shape[0]) for g in self.groups)

    def operator_entries(self) -> int:
        """Total number of operator entries, ``sum_g P_g m_g^2``."""
        return sum(int(g.shape[0]) * int(g.shape[1]) ** 2 for g in self.groups)

    def blocks(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """``theta`` ``(..., D)`` -> list over groups of ``(..., P_g, m_g)``."""
        self._check_width(theta)
        return [self._block(theta, i) for i in range(len(self.groups))]

    def _check_width(self, theta: torch.Tensor) -> None:
        if theta.shape[-1] != self.n_params:
            raise PartitionError(
                f"last axis of theta is {theta.shape[-1]} but the partition covers {self.n_params} "
                "parameters; recording and model do not match"
            )

    def _block(self, theta: torch.Tensor, i: int) -> torch.Tensor:
        g, r = self.groups[i], self._ranges[i]
        if r is None:
            return theta[..., g]
        return theta[..., r[0]:r[1]].unflatten(-1, tuple(g.shape))

    def time_last(self, recording: torch.Tensor) -> list[torch.Tensor]:
        """A time-first recording ``(k, *batch, D)`` as block snapshots, per group
        ``(batch * P_g, m_g, k)`` (time last, member-major): the layout every fit takes.
        :meth:`iter_time_last` makes them one group at a time."""
        return list(self.iter_time_last(recording))

    def iter_time_last(self, recording: torch.Tensor):
        """:meth:`time_last`, one group at a time (a group that is not a view of the recording is
        copied only when it is reached, so at most one such copy need be alive)."""
        self._check_width(recording)
        k = recording.shape[0]
        for i, g in enumerate(self.groups):
            yield self._block(recording, i).reshape(k, -1, int(g.shape[1])).permute(1, 2, 0)

    def assemble(self, blocks: Sequence[torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`blocks`: list of ``(..., P_g, m_g)`` -> ``(..., D)``."""
        if len(blocks) != len(self.groups):
            raise PartitionError(f"expected {len(self.groups)} block groups, got {len(blocks)}")
        lead = blocks[0].shape[:-2]
        theta = torch.empty(lead + (self.n_params,), dtype=blocks[0].dtype, device=blocks[0].device)
        for g, b in zip(self.groups, blocks):
            if b.shape[-2:] != g.shape:
                raise PartitionError(f"block group shape {tuple(b.shape)} does not match {tuple(g.shape)}")
            theta[..., g] = b
        return theta

    def describe(self) -> str:
        return ", ".join(f"{g.shape[0]} x m={g.shape[1]}" for g in self.groups)


def make_partition(model_or_shapes, spec: str | Sequence[str] = "node") -> Partition:
    """Build a :class:`Partition`.

    ``spec`` is one string for all layers, or one per layer (e.g. the paper's MNIST
    choice ``["quasi_node:157", "node", "node", "node"]``). ``"network"`` must be used
    alone.
    """
    shapes = layer_shapes(model_or_shapes) if isinstance(model_or_shapes, nn.Module) else list(model_or_shapes)
    specs = [spec] * len(shapes) if isinstance(spec, str) else list(spec)
    if len(specs) != len(shapes):
        raise PartitionError(f"got {len(specs)} partition specs for {len(shapes)} layers")
    total = sum(s.size for s in shapes)
    if any(s == "network" for s in specs):
        if any(s != "network" for s in specs):
            raise PartitionError("'network' covers every layer; it cannot be mixed with other specs")
        return Partition([torch.arange(total).unsqueeze(0)], total, tuple(specs))
    by_size: dict[int, list[torch.Tensor]] = {}
    offset = 0
    for s, sp in zip(shapes, specs):
        kind, q = _parse(sp)
        idx = torch.arange(offset, offset + s.size).reshape(s.n_out, s.row)
        offset += s.size
        if kind == "single":
            chunks = [idx.reshape(-1, 1)]
        elif kind == "node":
            chunks = [idx]
        elif kind == "layer":
            chunks = [idx.reshape(1, -1)]
        else:
            full = (s.row // q) * q
            chunks = [idx[:, :full].reshape(-1, q)] if full else []
            if full < s.row:
                chunks.append(idx[:, full:])
        for c in chunks:
            by_size.setdefault(int(c.shape[1]), []).append(c)
    groups = [torch.cat(by_size[m], dim=0) for m in sorted(by_size, reverse=True)]
    return Partition(groups, total, tuple(specs))
