"""The image data sets the experiments train on (MNIST, Fashion-MNIST), shared by the MNIST
experiment and "Beyond the paper": pixels in [0, 1] read (and checksum-verified) once per
process, and the two input normalisations the book compares."""
from __future__ import annotations

import functools

import torch

from ..data import load_mnist

#: (mean, std) of the PyTorch MNIST example, which the paper used
PAPER_NORMALIZE = (0.1307, 0.3081)
#: (mean, std) of the replication (Rao 2024)
REPLICATION_NORMALIZE = (0.5, 0.5)


@functools.lru_cache(maxsize=2)
def raw_images(dataset: str = "mnist") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train (60000, 784), y_train, x_test (10000, 784), y_test)``, pixels in [0, 1] (float32).
    Cached: treat the tensors as read-only."""
    xtr, ytr = load_mnist("train", dataset=dataset, normalize=None)
    xte, yte = load_mnist("test", dataset=dataset, normalize=None)
    return xtr, ytr, xte, yte


def normalise(x: torch.Tensor, normalize: tuple) -> torch.Tensor:
    """``(x - mean) / std`` for ``normalize = (mean, std)``."""
    m, s = normalize
    return (x - m) / s
