"""Koopman evolution as the benchmarks time it: step by step (with and without assembling the
full weight vector), the jump by a chosen method, and the block views of a fitted estimator.

The evolution itself is the core's (:mod:`koopman_lib.evolve`); these only arrange its calls.
"""
from __future__ import annotations

import torch

from koopman_lib.estimator import Koopman
from koopman_lib.evolve import iterate, jump


def koopman_steps(operators: list[torch.Tensor], w0: list[torch.Tensor], T: int) -> None:
    """Step-by-step evolution of every block group for ``T`` steps (batched ``bmm``), no assembly."""
    for _ in zip(*[iterate(U, w, T) for U, w in zip(operators, w0)]):
        pass


def dense_operators(kp: Koopman) -> list[torch.Tensor]:
    """The fitted block operators of ``kp`` per group, dense ``(P, m, m)``."""
    return [op.as_dense() for op in kp.operators_]


def block_states(kp: Koopman, theta: torch.Tensor) -> list[torch.Tensor]:
    """The block states of ``theta`` ``(*batch, D)`` per group, ``(batch*P, m)`` in the fit dtype."""
    return [b.reshape(-1, b.shape[-1]).to(kp.dtype) for b in kp.partition.blocks(theta)]


def jump_assembled(kp: Koopman, theta: torch.Tensor, T: int, method: str) -> torch.Tensor:
    """``theta(t2 + T)`` ``(*batch, D)`` by :func:`koopman_lib.jump` with ``method`` on every
    block group (``kp.predict`` is ``method="auto"``, i.e. squaring)."""
    ws = [jump(U, w, T, method).reshape(theta.shape[:-1] + tuple(g.shape))
          for U, w, g in zip(dense_operators(kp), block_states(kp, theta), kp.partition.groups)]
    return kp.partition.assemble(ws)


def steps_assembled(kp: Koopman, theta: torch.Tensor, T: int) -> None:
    """Step-by-step evolution with the full ``theta`` assembled after every step."""
    for _ in kp.path(theta, T, chunk=1):
        pass
