import os
from pathlib import Path

import pytest
import torch

torch.set_default_dtype(torch.float32)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if "KOOPMAN_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["KOOPMAN_DATA_DIR"] = str(SHARED_DATA)
os.environ.setdefault("KOOPMAN_PROGRESS", "0")


def stable_operators(P, m, radius=0.95, seed=0):
    """Random operators with spectral radius `radius` (diagonalisable, real)."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(P, m, m, generator=g, dtype=torch.float64))[0]
    lam = (torch.rand(P, m, generator=g, dtype=torch.float64) * 2 - 1) * radius
    return Q @ torch.diag_embed(lam) @ Q.mT


def trajectory(U, k, seed=1, noise=0.0):
    """Snapshots (P, m, k) of w(t+1) = U w(t) (+ noise), from a random start."""
    g = torch.Generator().manual_seed(seed)
    P, m, _ = U.shape
    X = torch.empty(P, m, k, dtype=torch.float64)
    X[..., 0] = torch.randn(P, m, generator=g, dtype=torch.float64)
    for t in range(1, k):
        X[..., t] = (U @ X[..., t - 1:t]).squeeze(-1)
        if noise:
            X[..., t] += noise * torch.randn(P, m, generator=g, dtype=torch.float64)
    return X


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
