"""koopman_lib.spectra: modes (right and left eigenvectors), modal amplitudes, the jump mode by
mode and growth factors, on operators whose modes are known by construction."""
from __future__ import annotations

import pytest
import torch

import koopman_lib as kl
from koopman_lib.spectra import growth_factors, modal_amplitudes, modal_jump, modal_terms, modes

F64 = dict(dtype=torch.float64)


def _known():
    """``U = Phi diag(lam) Phi^{-1}`` with chosen eigenvalues (one pair complex) and eigenvectors."""
    g = torch.Generator().manual_seed(3)
    lam = torch.tensor([1.02, 0.9, 0.5 + 0.3j, 0.5 - 0.3j], dtype=torch.complex128)
    Phi = torch.randn(4, 4, generator=g, **F64).to(torch.complex128)
    Phi[:, 2] = Phi[:, 2] + 1j * torch.randn(4, generator=g, **F64)
    Phi[:, 3] = Phi[:, 2].conj()                 # a real operator: conjugate modes in a pair
    U = (Phi * lam) @ torch.linalg.inv(Phi)
    assert U.imag.abs().max() < 1e-12
    return U.real.contiguous(), lam, Phi


def _match(a, b):
    """Index ``i`` such that ``a[i]`` is closest to each ``b``."""
    return torch.stack([(a - x).abs().argmin() for x in b])


def test_modes_recover_a_known_diagonalisable_operator():
    U, lam, Phi = _known()
    m = modes(U)
    idx = _match(m.eigenvalues, lam)
    torch.testing.assert_close(m.eigenvalues[idx], lam, rtol=0, atol=1e-12)
    for j, i in enumerate(idx):              # each right eigenvector is parallel to the chosen one
        v, u = m.right[:, i], Phi[:, j]
        cos = (u.conj() @ v).abs() / (u.norm() * v.norm())
        assert float(cos) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(m.left @ m.right, torch.eye(4, dtype=torch.complex128), rtol=0, atol=1e-12)
    torch.testing.assert_close(m.left @ U.to(torch.complex128), m.eigenvalues[:, None] * m.left, rtol=0, atol=1e-12)
    rebuilt = (m.right * m.eigenvalues) @ m.left     # U = sum_j lambda_j phi_j psi_j^T
    torch.testing.assert_close(rebuilt.real, U, rtol=0, atol=1e-12)


def test_the_jump_mode_by_mode_reproduces_the_matrix_power():
    U, _, _ = _known()
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], **F64)
    m = modes(U)
    b = modal_amplitudes(m, w)
    torch.testing.assert_close((m.right @ b).real, w, rtol=0, atol=1e-12)    # w = sum_j b_j phi_j
    for T in (0, 1, 7, 60):
        direct = torch.linalg.matrix_power(U, T) @ w
        terms = modal_terms(m, w, T)
        assert terms.shape == (4, 4)
        torch.testing.assert_close(terms.sum(-1).real, direct, rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(modal_jump(m, w, T), direct, rtol=1e-11, atol=1e-12)
    # a mode's term is b_j lambda_j^T phi_j: its size grows by |lambda_j|^T
    j = int(m.eigenvalues.abs().argmax())
    ratio = modal_terms(m, w, 60)[:, j].norm() / modal_terms(m, w, 0)[:, j].norm()
    assert float(ratio) == pytest.approx(1.02 ** 60, rel=1e-10)
    assert modal_jump(m, w, 5).dtype == torch.float64


def test_modes_of_a_batch_and_the_jump_agree_with_koopman_lib_jump():
    g = torch.Generator().manual_seed(0)
    U = 0.3 * torch.randn(3, 5, 5, generator=g, **F64)
    w = torch.randn(3, 5, generator=g, **F64)
    m = modes(U)
    assert m.eigenvalues.shape == (3, 5) and m.left.shape == (3, 5, 5)
    torch.testing.assert_close(modal_jump(m, w, 9), kl.jump(U, w, 9, method="power"), rtol=1e-10, atol=1e-13)


def test_a_defective_operator_has_no_modal_expansion():
    jordan = torch.tensor([[0.9, 1.0], [0.0, 0.9]], **F64)
    with pytest.raises(kl.FitError, match="not diagonalisable"):
        modes(jordan)
    with pytest.raises(ValueError):
        modal_terms(modes(torch.eye(2, **F64)), torch.ones(2, **F64), 1.5)


def test_growth_factors_are_the_moduli_to_the_power_T():
    lam = torch.tensor([1.004, -0.5, 0.6 + 0.8j, 0.0], dtype=torch.complex128)
    gf = growth_factors(lam, 1876)
    torch.testing.assert_close(gf, torch.tensor([1.004 ** 1876, 0.5 ** 1876, 1.0, 0.0], **F64), rtol=1e-12, atol=0)
    assert float(gf[0]) > 1000 and float(growth_factors(lam, 0)[3]) == 1.0
