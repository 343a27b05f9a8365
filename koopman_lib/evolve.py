"""Evolve block states with fitted operators: step by step (the path) or in one jump."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Iterator

import torch

from .stride import check_stride, strides_in


def _check_T(T: int) -> int:
    """``T`` as an ``int``; a clear ``ValueError`` for anything but a positive integer
    (numpy and torch integer scalars are accepted)."""
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or int(T) <= 0:
        raise ValueError(f"T must be a positive integer number of steps, got {T!r}")
    return int(T)


def iterate(operators: torch.Tensor, w0: torch.Tensor, T: int) -> Iterator[torch.Tensor]:
    """Yield ``w(1) .. w(T)`` where ``w(t+1) = U w(t)``.

    ``operators`` ``(P, m, m)``, ``w0`` ``(P, m)``; each yielded tensor is ``(P, m)``
    (a fresh tensor, never a view of ``w0``). ``T`` is checked when this is called,
    not at the first step.
    """
    return _iterate(operators, w0, _check_T(T))


def _iterate(operators: torch.Tensor, w0: torch.Tensor, T: int) -> Iterator[torch.Tensor]:
    w = w0.unsqueeze(-1)
    for _ in range(T):
        w = torch.bmm(operators, w) if operators.ndim == 3 else operators @ w
        yield w.squeeze(-1)


def path(operators: torch.Tensor, w0: torch.Tensor, T: int, method: str = "step") -> torch.Tensor:
    """The whole path ``(T+1, P, m)``, ``path[0] = w0``.

    ``method="step"``: ``T`` matrix-vector products (memory-bound: every step reads all
    operators). ``"doubling"``: the Krylov block ``[w, Uw, .., U^(j-1) w]`` is doubled by
    one product with ``U^j`` (kept up to date by squaring), so the work is
    ``O(m^2 T + m^3 log T)`` flops in matrix-matrix products; same states up to rounding
    (powers by squaring instead of one factor at a time).
    """
    T = _check_T(T)
    if method == "doubling":
        out = torch.empty(tuple(w0.shape) + (T + 1,), dtype=w0.dtype, device=w0.device)
        out[..., 0] = w0
        A, width = operators, 1
        while width < T + 1:
            n = min(width, T + 1 - width)
            out[..., width:width + n] = A @ out[..., :n]
            width += n
            if width < T + 1:
                A = A @ A
        return out.movedim(-1, 0).contiguous()
    if method != "step":
        raise ValueError(f"unknown path method {method!r}; use 'step' or 'doubling'")
    out = torch.empty((T + 1,) + tuple(w0.shape), dtype=w0.dtype, device=w0.device)
    out[0] = w0
    for t, w in enumerate(iterate(operators, w0, T), start=1):
        out[t] = w
    return out


def _power_apply(operators: torch.Tensor, w0: torch.Tensor, T: int) -> torch.Tensor:
    """``U^T w0`` by binary powering applied to the vector: ``floor(log2 T)`` squarings of
    ``U`` and one matrix-vector product per set bit of ``T`` (``torch.linalg.matrix_power``
    would also multiply the matrices of the set bits together: about 1.5x the work)."""
    w, A = w0.unsqueeze(-1), operators
    while True:
        if T & 1:
            w = A @ w
        T >>= 1
        if not T:
            return w.squeeze(-1)
        A = A @ A


#: ``jump(method="auto")`` switches from squaring to eig at ``T >= 2**AUTO_EIG_LOG2_T``
AUTO_EIG_LOG2_T = 32


def jump(operators: torch.Tensor, w0: torch.Tensor, T: int, method: str = "auto",
         max_condition: float = 1e8) -> torch.Tensor:
    """``U^T w0`` in time independent of ``T`` (up to ``log T`` for squaring).

    ``method="eig"`` diagonalises ``U = V diag(lambda) V^{-1}`` (cost independent of T) and
    falls back to squaring for blocks whose eigenvector basis has condition number above
    ``max_condition``; ``"power"`` uses repeated squaring (``O(m^3 log T)``). ``"auto"``
    picks squaring unless ``T >= 2**AUTO_EIG_LOG2_T``: measured on the 2-core CPU (cost
    chapter), the ``floor(log2 T)`` batched squarings are 3-10x faster than a batched
    ``eig`` (plus its condition check) for every block size from 8 to 256 and T up to
    1e4, and a general eig costs tens of matrix products. Returns ``(P, m)``.
    """
    T = _check_T(T)
    if method == "auto":
        method = "eig" if T >= 2 ** AUTO_EIG_LOG2_T else "power"
    if method == "power":
        return _power_apply(operators, w0, T)
    if method != "eig":
        raise ValueError(f"unknown jump method {method!r}; use 'auto', 'eig' or 'power'")
    lam, V = torch.linalg.eig(operators)
    rhs = w0.to(V.dtype).unsqueeze(-1)
    if operators.shape[-1] < 64:  # batched LU solve fails (MKL) at larger sizes on this CPU build
        coeffs = torch.linalg.solve_ex(V, rhs)[0]
    else:
        coeffs = torch.linalg.lstsq(V, rhs).solution
    wT = (V @ (lam.pow(T).unsqueeze(-1) * coeffs)).squeeze(-1).real.to(w0.dtype)
    cond = torch.linalg.cond(V)
    bad = ~(cond < max_condition) | ~torch.isfinite(wT).all(dim=-1)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten()
        wT[idx] = jump(operators[idx], w0[idx], T, method="power")
    return wT


# -- the one guarded rollout -------------------------------------------------------------------
@dataclass
class Rollout:
    """A guarded evolution of ``E`` networks (see :func:`rollout`).

    ``steps``: the evaluated steps after t2 (0 first); ``values``: one ``(len(steps), E)`` tensor
    per output of ``loss_fn`` (``nan`` for a network after the guard stopped it; ``loss`` and
    ``acc`` name the first two); ``theta`` ``(E, D)``: each network's last weights that passed the
    guard; ``stopped_at`` / ``reason``: per network, the evaluated step at which the guard stopped
    it and why (``None`` if it ran to the end).
    """

    steps: list[int] = field(default_factory=list)
    values: list = field(default_factory=list)
    theta: torch.Tensor | None = None
    stopped_at: list = field(default_factory=list)
    reason: list = field(default_factory=list)

    @property
    def loss(self) -> torch.Tensor:
        return self.values[0]

    @property
    def acc(self) -> torch.Tensor:
        return self.values[1]


def rollout(partition, operators: list, z0: list[torch.Tensor], theta0: torch.Tensor, T: int,
            every: int | None = None, loss_fn=None, max_growth: float | None = None,
            loss_limit: float | None = None, jump: bool = True, dtype=None, stride: int = 1) -> Rollout:
    """Evolve ``E`` networks ``T`` steps with per-group :class:`koopman_lib.fit.Operators`.

    ``z0``: per group the starting (lifted) block states ``(E * P_g, n_g)`` (member-major, as
    :meth:`Partition.blocks` of ``theta0`` ``(E, D)``); ``theta0``: the weights at step 0.
    ``loss_fn(theta (E, D))`` returns a tensor ``(E,)`` or a tuple of them; it is called at
    step 0, every ``every`` steps and at ``T`` (``every=None``: at ``T`` only). Between two
    evaluation points the state moves by one product with a cached matrix power (``jump``;
    ``jump=False`` steps one step at a time: the same states up to rounding).

    The guard, checked at every evaluation point, stops a network whose weights are
    non-finite, whose norm exceeds ``max_growth`` times its norm at step 0, or whose first
    ``loss_fn`` output is non-finite or (with ``loss_limit``) above ``loss_limit``; the
    others go on, and the rollout ends when all have stopped. A non-finite loss always stops
    a network. A stopped network gets ``nan``
    values from then on (``loss_fn`` sees zeros in its place) and keeps its last weights that
    passed. ``dtype`` (default: ``theta0``'s): the dtype of the weights handed to ``loss_fn``.

    ``stride=s``: the operators advance ``s`` optimizer steps each (a fit on every ``s``-th
    snapshot); ``T`` and ``every`` stay in optimizer steps and must be multiples of ``s`` (a
    ``ValueError`` naming ``s`` otherwise); the operators are applied ``T / s`` times and
    ``Rollout.steps`` / ``stopped_at`` are in optimizer steps.
    """
    T = _check_T(T)
    if every is not None and (isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1):
        raise ValueError(f"every must be a positive integer number of steps, got {every!r}")
    stride = check_stride(stride)
    if stride != 1:      # everything below counts applications of the s-step operators
        T = strides_in(T, stride, "T")
        every = None if every is None else strides_in(int(every), stride, "every")
    if max_growth is not None and not max_growth > 0:
        raise ValueError(f"max_growth must be > 0, got {max_growth!r}")
    every = T if every is None else int(every)
    E = theta0.shape[0]
    dtype = dtype or theta0.dtype
    states = [op.start(z) for op, z in zip(operators, z0)]
    powers = [dict() for _ in operators]
    out = Rollout(theta=theta0.detach().clone())
    dead = torch.zeros(E, dtype=torch.bool)
    out.stopped_at, out.reason = [None] * E, [None] * E
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    norm0 = theta0.double().norm(dim=-1)
    values: list = []

    def stop(mask, t, why):
        for e in torch.nonzero(mask & ~dead).flatten().tolist():
            out.stopped_at[e], out.reason[e] = t, why

    def record(t, theta):
        nonlocal dead
        bad = ~torch.isfinite(theta).all(-1)
        stop(bad, t, "non-finite weights")
        if max_growth is not None:
            grew = theta.double().norm(dim=-1) > max_growth * norm0.clamp_min(1e-12)
            stop(grew & ~bad, t, f"weight norm grew more than {max_growth:g}x")
            bad = bad | grew
        dead = dead | bad
        out.steps.append(t)
        if loss_fn is not None:
            got = loss_fn(torch.where(dead.unsqueeze(-1), torch.zeros_like(theta), theta).to(dtype))
            got = tuple(got) if isinstance(got, (tuple, list)) else (got,)
            got = [torch.as_tensor(v, dtype=torch.float64).reshape(E) for v in got]
            nonfinite = ~torch.isfinite(got[0]) & ~dead
            stop(nonfinite, t, "non-finite loss")
            dead = dead | nonfinite
            if loss_limit is not None:
                over = ~(got[0] <= loss_limit) & ~dead
                stop(over, t, f"loss above {loss_limit:g}")
                dead = dead | over
            values.append([torch.where(dead, nan, v) for v in got])
        ok = ~dead
        out.theta[ok] = theta[ok].to(out.theta.dtype)

    record(0, theta0)
    last = 0
    for t in sorted(set(range(every, T + 1, every)) | {T}):
        ws = []
        for g, op in enumerate(operators):
            if jump:
                w, states[g] = op.advance(states[g], t - last, powers[g])
            else:
                for _ in range(t - last):
                    w, states[g] = op.advance(states[g], 1)
            ws.append(w)
        last = t
        record(t * stride, partition.assemble([w.reshape((E,) + tuple(g.shape)) for w, g in zip(ws, partition.groups)]))
        if bool(dead.all()):
            break
    if values:
        out.values = [torch.stack([v[i] for v in values]) for i in range(len(values[0]))]
    return out
