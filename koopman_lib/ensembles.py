"""Ensembles of independent networks as one batched computation, and their one evaluation.

The parameters of ``E`` networks live in one leaf tensor ``theta`` ``(E, D)`` laid out
exactly as :func:`koopman_lib.partition.flatten_params` lays out one network (node
matrices ``[W | b]`` row-major, layer after layer; the rows are output units or output
channels), so recordings, partitions and Koopman operators apply to ``theta`` directly.
Elementwise optimizers (SGD, Adam, Adagrad, Adadelta) on ``theta`` give exactly ``E``
independent runs.

* :class:`EnsembleMLP`: fully connected networks.
* :class:`EnsembleCNN`: ``conv(1 -> c1, k) - ReLU - maxpool 2 - conv(c1 -> c2, k) - ReLU -
  maxpool 2 - linear(c2 s^2 -> n_classes)`` for square grey images, run as one ``groups=E``
  convolution.
* :func:`evaluate`: loss and accuracy of every member.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .partition import LayerShape, load_flat
from .seeds import network_seeds

LOSSES = ("cross_entropy", "mse")

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "sin": torch.sin,
}


def init_uniform(shapes, n_members: int, seed: int = 0, seeds=None, dtype=torch.float32) -> torch.Tensor:
    """Initial parameters ``(E, D)``: member ``e`` draws every layer's ``[W | b]`` from
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's default for ``nn.Linear`` / ``nn.Conv2d``),
    layer after layer, from its own generator seeded ``seeds[e]`` (default
    :func:`koopman_lib.seeds.network_seed` ``(seed, e)``): a network is its own seed, the same
    whichever other members share the ensemble. Drawn in float64, then cast to ``dtype``."""
    seeds = network_seeds(seed, range(n_members)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != n_members:
        raise ValueError(f"seeds has {len(seeds)} entries for {n_members} members")
    rows = []
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        rows.append(torch.cat([(torch.rand(sh.size, generator=gen, dtype=torch.float64) * 2 - 1)
                               / math.sqrt(sh.fan_in) for sh in shapes]))
    return torch.stack(rows).to(dtype)


def node_views(shapes, theta: torch.Tensor):
    """Yield ``(W (E, out, fan_in), b (E, out))`` views of ``theta`` ``(E, D)``, layer after layer,
    for node matrices ``[W | b]`` laid out as :func:`koopman_lib.partition.flatten_params` does."""
    offset = 0
    for s in shapes:
        node = theta[:, offset:offset + s.size].reshape(theta.shape[0], s.n_out, s.row)
        offset += s.size
        yield node[..., :s.fan_in], node[..., s.fan_in]


class EnsembleMLP:
    """``E`` independent fully connected networks ``sizes[0] : ... : sizes[-1]``.

    ``activation`` is applied after every layer but the last. Initialisation follows
    PyTorch's default for ``nn.Linear`` (weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``);
    member ``e`` is drawn from its own seed, ``seeds[e]`` or by default
    :func:`koopman_lib.seeds.network_seed` ``(seed, e)`` (:func:`init_uniform`).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", n_members: int = 1,
                 seed: int = 0, dtype=torch.float32, seeds=None):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if len(sizes) < 2:
            raise ValueError("sizes needs at least an input and an output size")
        self.sizes, self.activation, self.n_members = tuple(sizes), activation, n_members
        self.shapes = [LayerShape(f"layer{i}", o, i_, True) for i, (i_, o) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.n_params = sum(s.size for s in self.shapes)
        self.theta = init_uniform(self.shapes, n_members, seed, seeds, dtype).requires_grad_(True)

    def layers(self, theta: torch.Tensor):
        """Yield ``(W (E, out, fan_in), b (E, out))`` views of ``theta`` ``(E, D)``."""
        return node_views(self.shapes, theta)

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


class EnsembleCNN:
    """``E`` independent two-conv-layer CNNs on ``image x image`` inputs given flat ``(.., image^2)``.

    Initialisation is PyTorch's default for ``nn.Conv2d`` / ``nn.Linear`` (weights and biases
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), each member from its own seed (:func:`init_uniform`).
    """

    def __init__(self, channels: tuple[int, int] = (8, 16), kernel: int = 5, n_classes: int = 10,
                 image: int = 28, n_members: int = 1, seed: int = 0, dtype=torch.float32, seeds=None):
        c1, c2 = channels
        s1 = image - kernel + 1
        if s1 < 2 or s1 % 2:
            raise ValueError(f"image {image} and kernel {kernel} give a {s1}-pixel map; need an even size >= 2")
        s2 = s1 // 2 - kernel + 1
        if s2 < 2 or s2 % 2:
            raise ValueError(f"the second convolution gives a {s2}-pixel map; need an even size >= 2")
        self.channels, self.kernel, self.image, self.n_classes = (c1, c2), kernel, image, n_classes
        self.n_members = n_members
        self.final = s2 // 2
        self.sizes = (image * image, n_classes)
        self.shapes = [LayerShape("conv1", c1, kernel * kernel), LayerShape("conv2", c2, c1 * kernel * kernel),
                       LayerShape("fc", n_classes, c2 * self.final ** 2)]
        self.n_params = sum(s.size for s in self.shapes)
        self.theta = init_uniform(self.shapes, n_members, seed, seeds, dtype).requires_grad_(True)

    def layers(self, theta: torch.Tensor):
        """Yield ``(W (E, out, fan_in), b (E, out))`` views of ``theta`` ``(E, D)``."""
        return node_views(self.shapes, theta)

    def forward(self, x: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, image^2)`` (shared) or ``(E, B, image^2)`` -> logits ``(E, B, n_classes)``."""
        theta = self.theta if theta is None else theta
        E, k = theta.shape[0], self.kernel
        c1, c2 = self.channels
        if x.ndim == 2:
            B = x.shape[0]
            h = x.reshape(B, 1, self.image, self.image).expand(B, E, self.image, self.image)
        elif x.ndim == 3 and x.shape[0] == E:
            B = x.shape[1]
            h = x.reshape(E, B, self.image, self.image).transpose(0, 1)
        else:
            raise ValueError(f"x must be (B, {self.image ** 2}) or ({E}, B, {self.image ** 2}), got {tuple(x.shape)}")
        (W1, b1), (W2, b2), (W3, b3) = self.layers(theta)
        h = F.conv2d(h, W1.reshape(E * c1, 1, k, k), b1.reshape(-1), groups=E)
        h = F.max_pool2d(torch.relu(h), 2)
        h = F.conv2d(h, W2.reshape(E * c2, c1, k, k), b2.reshape(-1), groups=E)
        h = F.max_pool2d(torch.relu(h), 2)                    # (B, E*c2, s, s)
        h = h.reshape(B, E, -1).transpose(0, 1)               # (E, B, c2 s^2), flattened as nn.Flatten
        return torch.baddbmm(b3.unsqueeze(1), h, W3.transpose(1, 2))

    __call__ = forward

    def member_module(self, e: int, theta: torch.Tensor | None = None) -> nn.Sequential:
        """Member ``e`` as an ordinary float64 ``nn.Sequential`` (a copy)."""
        c1, c2 = self.channels
        model = nn.Sequential(
            nn.Unflatten(1, (1, self.image, self.image)),
            nn.Conv2d(1, c1, self.kernel), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, self.kernel), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * self.final ** 2, self.n_classes)).to(torch.float64)
        theta = self.theta if theta is None else theta
        load_flat(model, theta[e].detach().to(torch.float64))
        return model


def ensemble_forward(net: EnsembleMLP, x: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
    """Outputs ``(E, B, out)`` of every member on a shared input ``x`` ``(B, in)``
    (or per-member inputs ``(E, B, in)``). For a shared input the first layer is one
    GEMM ``x @ [W_1; ...; W_E]^T`` instead of ``E`` products with an expanded copy."""
    theta = net.theta if theta is None else theta
    if x.ndim == 3:
        return net.forward(x, theta)
    if x.ndim != 2:
        raise ValueError(f"x must be (B, in) or (E, B, in), got {tuple(x.shape)}")
    E = theta.shape[0]
    act = ACTIVATIONS[net.activation]
    layers = list(net.layers(theta))
    h = None
    for i, (W, b) in enumerate(layers):
        if i == 0:
            n_out = W.shape[1]
            h = (x @ W.reshape(E * n_out, -1).T).reshape(x.shape[0], E, n_out).transpose(0, 1) + b.unsqueeze(1)
        else:
            h = torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
        if i < len(layers) - 1:
            h = act(h)
    return h


def _loss_sum(out: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-member summed loss ``(E,)`` of outputs ``(E, B, C)`` against ``target`` ``(E, B)`` / ``(E, B, C)``."""
    if loss == "cross_entropy":
        ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1), reduction="none")
        return ce.reshape(out.shape[:2]).sum(1)
    if loss == "mse":
        return (out - target).pow(2).reshape(out.shape[0], -1).sum(1)
    raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")


@torch.no_grad()
def evaluate(net, x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor | None = None,
             batch_size: int | None = None, loss: str = "cross_entropy") -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and accuracy of every member of an ensemble (:class:`EnsembleMLP` or
    :class:`EnsembleCNN`) on ``(x (N, in), y (N,))``: the one evaluation of the package.

    ``theta`` ``(E, D)`` defaults to ``net.theta``; it is cast to ``x``'s dtype (so float64
    Koopman predictions are evaluated like weights loaded back into the float32 model).
    Returns ``loss`` ``(E,)`` = sum over samples / ``N`` (the PyTorch MNIST example's
    test loss) and ``acc`` ``(E,)`` = fraction correct (``nan`` for ``loss="mse"``); members
    whose weights are non-finite get ``nan`` for both. ``batch_size``: samples per forward pass
    (default 10000 for MLPs, 2000 for CNNs).
    """
    theta = (net.theta if theta is None else theta).detach()
    if theta.ndim == 1:
        theta = theta.unsqueeze(0)
    finite = torch.isfinite(theta).all(-1)
    theta = torch.where(finite.unsqueeze(-1), theta, torch.zeros_like(theta)).to(x.dtype)
    mlp = isinstance(net, EnsembleMLP)
    batch_size = batch_size or (10000 if mlp else 2000)
    E, N = theta.shape[0], x.shape[0]
    total = torch.zeros(E, dtype=torch.float64)
    correct = torch.zeros(E, dtype=torch.float64)
    for s in range(0, N, batch_size):
        xb, yb = x[s:s + batch_size], y[s:s + batch_size]
        out = ensemble_forward(net, xb, theta) if mlp else net.forward(xb, theta)
        target = yb.unsqueeze(0).expand(E, *yb.shape)
        total += _loss_sum(out, target, loss).double()
        if loss == "cross_entropy":
            correct += (out.argmax(-1) == target).sum(1).double()
    nan = torch.full((E,), float("nan"), dtype=torch.float64)
    acc = correct / N if loss == "cross_entropy" else nan
    return torch.where(finite, total / N, nan), torch.where(finite, acc, nan)
