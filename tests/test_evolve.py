import pytest
import torch

import koopman_lib as kl
from conftest import stable_operators


@pytest.mark.parametrize("P,m,T", [(7, 3, 25), (10, 21, 200), (4, 40, 50)])
@pytest.mark.parametrize("method", ["eig", "power", "auto"])
def test_jump_equals_step_by_step(P, m, T, method):
    U = stable_operators(P, m, radius=0.999, seed=P + m)
    w0 = torch.randn(P, m, dtype=torch.float64)
    stepped = kl.path(U, w0, T)[-1]
    jumped = kl.jump(U, w0, T, method=method)
    assert torch.allclose(jumped, stepped, atol=1e-9, rtol=1e-8)


def test_jump_falls_back_for_defective_operators():
    # a Jordan block: eigenvector basis is singular, eig alone would be garbage
    U = torch.tensor([[[0.9, 1.0], [0.0, 0.9]]], dtype=torch.float64)
    w0 = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    expected = torch.linalg.matrix_power(U, 30) @ w0.unsqueeze(-1)
    assert torch.allclose(kl.jump(U, w0, 30, method="eig"), expected.squeeze(-1), atol=1e-8)


def test_path_shape_and_start():
    U = stable_operators(3, 4)
    w0 = torch.randn(3, 4, dtype=torch.float64)
    p = kl.path(U, w0, 5)
    assert p.shape == (6, 3, 4)
    assert torch.equal(p[0], w0)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_T_must_be_positive_integer(bad):
    U = stable_operators(1, 2)
    with pytest.raises(ValueError, match="positive integer"):
        kl.jump(U, torch.zeros(1, 2, dtype=torch.float64), bad)
    with pytest.raises(ValueError, match="positive integer"):
        next(kl.iterate(U, torch.zeros(1, 2, dtype=torch.float64), bad))
