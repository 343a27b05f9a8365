"""Batched LU inverses (:mod:`koopman_lib.lu`) at the MNIST block size after the thread count has
been set, which makes oneMKL's multi-threaded batched LU fail and hang on this CPU build: run in a
subprocess with a timeout, so that a hang fails the test instead of stalling the suite."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import torch
from koopman_lib.lu import inv_ex
from koopman_lib import clip_spectrum
torch.set_num_threads(2)
g = torch.Generator().manual_seed(0)
for dtype in (torch.float64, torch.complex128):
    A = torch.randn(3, 157, 157, dtype=dtype, generator=g)
    inv, info = inv_ex(A)
    eye = torch.eye(157, dtype=dtype).expand(3, 157, 157)
    assert info.eq(0).all() and torch.allclose(A @ inv, eye, atol=1e-8), dtype
    assert torch.get_num_threads() == 2
U = torch.randn(3, 157, 157, dtype=torch.float64, generator=g) / 10
assert torch.linalg.eigvals(clip_spectrum(U)).abs().max() <= 1.0
print("ok")
"""


def test_batched_inverse_at_mnist_block_size_after_setting_threads():
    got = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert got.returncode == 0 and got.stdout.strip() == "ok", got.stderr[-2000:]
