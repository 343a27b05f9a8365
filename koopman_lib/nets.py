"""Ensembles of independent MLPs as one batched computation.

The parameters of ``E`` networks live in one leaf tensor ``theta`` ``(E, D)`` laid out
exactly as :func:`koopman_lib.partition.flatten_params` lays out one network (node
matrices ``[W | b]`` row-major, layer after layer), so recordings, partitions and
Koopman operators apply to ``theta`` directly. Elementwise optimizers (SGD, Adam,
Adagrad, Adadelta) on ``theta`` give exactly ``E`` independent runs.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from .partition import LayerShape

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "sin": torch.sin,
}


class EnsembleMLP:
    """``E`` independent fully connected networks ``sizes[0] : ... : sizes[-1]``.

    ``activation`` is applied after every layer but the last. Initialisation follows
    PyTorch's default for ``nn.Linear`` (weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", n_members: int = 1,
                 seed: int = 0, dtype=torch.float32):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if len(sizes) < 2:
            raise ValueError("sizes needs at least an input and an output size")
        self.sizes, self.activation, self.n_members = tuple(sizes), activation, n_members
        self.shapes = [LayerShape(f"layer{i}", o, i_, True) for i, (i_, o) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.n_params = sum(s.size for s in self.shapes)
        gen = torch.Generator().manual_seed(seed)
        parts = []
        for s in self.shapes:
            bound = 1.0 / math.sqrt(s.fan_in)
            parts.append((torch.rand(n_members, s.size, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
        self.theta = torch.cat(parts, dim=1).to(dtype).requires_grad_(True)

    def layers(self, theta: torch.Tensor):
        """Yield ``(W (E, out, in), b (E, out))`` views of ``theta`` ``(E, D)``."""
        offset = 0
        for s in self.shapes:
            node = theta[:, offset:offset + s.size].reshape(theta.shape[0], s.n_out, s.row)
            offset += s.size
            yield node[..., :s.fan_in], node[..., s.fan_in]

    def forward(self, x: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, in)`` (shared by all members) or ``(E, B, in)`` -> ``(E, B, out)``."""
        theta = self.theta if theta is None else theta
        h = x.unsqueeze(0).expand(theta.shape[0], -1, -1) if x.ndim == 2 else x
        act = ACTIVATIONS[self.activation]
        n = len(self.shapes)
        for i, (W, b) in enumerate(self.layers(theta)):
            h = torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
            if i < n - 1:
                h = act(h)
        return h

    __call__ = forward

    def member_module(self, e: int, theta: torch.Tensor | None = None) -> nn.Sequential:
        """Member ``e`` as an ordinary ``nn.Sequential`` (a copy), for checks and export."""
        from .partition import load_flat
        act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}.get(self.activation)
        if act is None:
            raise ValueError(f"no nn.Module for activation {self.activation!r}")
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(self.sizes) - 2:
                mods.append(act())
        model = nn.Sequential(*mods).to(torch.float64)
        theta = self.theta if theta is None else theta
        load_flat(model, theta[e].detach().to(torch.float64))
        return model
