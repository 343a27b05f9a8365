"""Check values: the per-network values every experiment stores so that a saved run can be
regenerated network by network (:mod:`koopman_repro.regeneration` compares them).

For each network ``i`` (a network is its own seed, :mod:`koopman_lib.seeds`), a few of its key
results and the norm of its weights at fixed early steps, stored under ``results["check_values"]``
as :func:`check_table` makes it. Keys that start with :data:`EARLY` are early-trajectory values.
"""
from __future__ import annotations

import dataclasses
import math

import torch

#: key prefix of the early-trajectory check values (compared on any hardware)
EARLY = "early:"
#: the steps at which every experiment stores each network's weight norm (``early:weights_norm@S``):
#: step 0 checks the initialisation (exact on any hardware), 1, 10 and 100 the loss, its gradient,
#: the data order and the optimizer before training has amplified any rounding
EARLY_STEPS = (0, 1, 10, 100)


def weight_norms(theta: torch.Tensor) -> list[float]:
    """``||theta_e||_2`` of every member of ``theta`` ``(E, D)`` (float64 sums)."""
    return [float(v) for v in theta.detach().double().norm(dim=-1)]


class EarlyNorms:
    """``on_step(step, theta)`` hook that keeps each member's weight norm at :data:`EARLY_STEPS`.

    ``networks[e]`` is member ``e``'s network index. Call it once with ``step=0`` before training
    (the initial weights). :meth:`values` gives ``{network: {"early:weights_norm@S": norm}}``."""

    def __init__(self, networks, prefix: str = ""):
        self.networks, self.prefix = list(networks), prefix
        self.norms: dict[int, dict[str, float]] = {i: {} for i in self.networks}

    def __call__(self, step: int, theta: torch.Tensor) -> None:
        if step in EARLY_STEPS:
            for i, v in zip(self.networks, weight_norms(theta.reshape(len(self.networks), -1))):
                self.norms[i][f"{EARLY}{self.prefix}weights_norm@{step}"] = v

    def values(self) -> dict[int, dict[str, float]]:
        return self.norms


def merge(*parts: dict[int, dict[str, float | None]]) -> dict[int, dict[str, float | None]]:
    """Per-network check values of several sources, merged key by key."""
    out: dict[int, dict[str, float | None]] = {}
    for part in parts:
        for i, values in part.items():
            out.setdefault(int(i), {}).update(values)
    return out


def check_table(per_network: dict[int, dict[str, float | None]], mark_absent: bool = False) -> dict:
    """The stored form of per-network check values: networks, keys (sorted) and a value matrix
    (``None`` for a key a network lacks or a non-finite value). ``mark_absent``: where some
    networks lack keys others have (a run whose studies have different numbers of networks),
    ``absent`` lists, per such network, the indices of the keys it has no value for, which
    :func:`read_check_values` then leaves out (a value that does not exist, not a non-finite one)."""
    networks = sorted(int(i) for i in per_network)
    keys = sorted({k for v in per_network.values() for k in v})
    values = [[_plain(per_network[i].get(k)) for k in keys] for i in networks]
    table = {"networks": networks, "keys": keys, "values": values}
    absent = {str(i): [j for j, k in enumerate(keys) if k not in per_network[i]]
              for i in networks} if mark_absent else {}
    if any(absent.values()):
        table["absent"] = {i: js for i, js in absent.items() if js}
    return table


def _plain(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def read_check_values(results: dict) -> dict[int, dict[str, float | None]]:
    """``{network: {key: value}}`` from ``results["check_values"]`` (:func:`check_table`)."""
    table = results.get("check_values")
    if not table:
        return {}
    out = {}
    for i, row in zip(table["networks"], table["values"]):
        absent = set(table.get("absent", {}).get(str(i), ()))  # keys network i has no value for
        out[int(i)] = {k: v for j, (k, v) in enumerate(zip(table["keys"], row)) if j not in absent}
    return out


def with_networks(cfg, networks, field_name: str = "networks", **off):
    """``cfg`` restricted to ``networks`` (its ``field_name`` field), with the fields in ``off`` set
    (the studies that store no check values switched off)."""
    return dataclasses.replace(cfg, **{field_name: tuple(int(i) for i in networks)}, **off)
