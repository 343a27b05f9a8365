"""Ensembles of independent small CNNs as one batched computation (grouped convolutions).

``E`` networks ``conv(1 -> c1, k) - ReLU - maxpool 2 - conv(c1 -> c2, k) - ReLU - maxpool 2 -
linear(c2 s^2 -> n_classes)`` for square grey images. Their parameters live in one leaf
``theta`` ``(E, D)`` laid out exactly as :func:`koopman_lib.partition.flatten_params` lays out
one such ``nn.Sequential``: every layer is a node matrix ``[W | b]`` whose rows are the
*output channels* (conv) or output units (linear), so :func:`koopman_lib.make_partition`
with ``"node"`` gives one Koopman block per channel. The ``E`` members run as one
``groups=E`` convolution, so an elementwise optimizer on ``theta`` is exactly ``E``
independent runs. The class has the attributes :class:`koopman_lib.training.EnsembleTrainer`
uses (``theta``, ``sizes``, ``forward``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .partition import LayerShape, load_flat


class EnsembleCNN:
    """``E`` independent two-conv-layer CNNs on ``image x image`` inputs given flat ``(.., image^2)``.

    Initialisation is PyTorch's default for ``nn.Conv2d`` / ``nn.Linear`` (weights and biases
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``).
    """

    def __init__(self, channels: tuple[int, int] = (8, 16), kernel: int = 5, n_classes: int = 10,
                 image: int = 28, n_members: int = 1, seed: int = 0, dtype=torch.float32):
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
        gen = torch.Generator().manual_seed(seed)
        parts = [(torch.rand(n_members, s.size, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(s.fan_in)
                 for s in self.shapes]
        self.theta = torch.cat(parts, dim=1).to(dtype).requires_grad_(True)

    def layers(self, theta: torch.Tensor):
        """Yield ``(W (E, out, fan_in), b (E, out))`` views of ``theta`` ``(E, D)``."""
        off = 0
        for s in self.shapes:
            node = theta[:, off:off + s.size].reshape(theta.shape[0], s.n_out, s.row)
            off += s.size
            yield node[..., :s.fan_in], node[..., s.fan_in]

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


@torch.no_grad()
def evaluate(net, x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor | None = None,
             batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy ``(E,)`` of any ensemble with ``forward(x, theta)``
    (``EnsembleCNN`` or ``EnsembleMLP``) on ``x`` ``(N, in)``, ``y`` ``(N,)``; ``theta`` is cast
    to ``x``'s dtype. Members with non-finite weights get ``nan``."""
    theta = (net.theta if theta is None else theta).detach()
    if theta.ndim == 1:
        theta = theta.unsqueeze(0)
    finite = torch.isfinite(theta).all(-1)
    th = torch.where(finite.unsqueeze(-1), theta, torch.zeros_like(theta)).to(x.dtype)
    E, N = th.shape[0], x.shape[0]
    total = torch.zeros(E, dtype=torch.float64)
    correct = torch.zeros(E, dtype=torch.float64)
    for s in range(0, N, batch_size):
        out = net.forward(x[s:s + batch_size], th)
        yb = y[s:s + batch_size]
        ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), yb.repeat(E), reduction="none")
        total += ce.reshape(E, -1).double().sum(1)
        correct += (out.argmax(-1) == yb.unsqueeze(0)).double().sum(1)
    nan = torch.full((E,), float("nan"), dtype=torch.float64)
    return torch.where(finite, total / N, nan), torch.where(finite, correct / N, nan)
