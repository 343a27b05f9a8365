"""A network is its own seed: the seeds of one network's initial weights and of its data order.

Network ``i`` of a run seeded ``seed`` draws its initial weights from a generator seeded
:func:`network_seed` ``(seed, i)`` and its minibatch order from one seeded
:func:`shuffle_seed` ``(seed, i)``. Neither depends on how many other networks share the run or
on which of them are trained together, so network 7 of a 25-network run is network 7 of any
run with the same seed, and can be rerun alone (``koopman reproduce --check`` does).

>>> network_seed(0, 7), shuffle_seed(0, 7), network_seed(2, 7)
(7, 500007, 2000007)
>>> branch_seed(0, 7) - shuffle_seed(0, 7) == 2**40
True
"""
from __future__ import annotations

#: networks per seed: network indices are ``0 .. MAX_NETWORKS - 1``, so that no two networks, of
#: runs with the same or different ``seed``, share a seed
MAX_NETWORKS = 500_000


def _check(seed: int, network: int) -> None:
    if not 0 <= int(network) < MAX_NETWORKS:
        raise ValueError(f"network index {network} is outside 0..{MAX_NETWORKS - 1}; a run has at most "
                         f"{MAX_NETWORKS} networks per seed (use another seed for more)")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def network_seed(seed: int, network: int) -> int:
    """Seed of the initial weights of network ``network`` in a run seeded ``seed``."""
    _check(seed, network)
    return 1_000_000 * int(seed) + int(network)


def shuffle_seed(seed: int, network: int) -> int:
    """Seed of the data order (minibatch shuffle, sampled inputs) of network ``network`` in a run
    seeded ``seed``."""
    _check(seed, network)
    return 1_000_000 * int(seed) + MAX_NETWORKS + int(network)


def branch_seed(seed: int, network: int, branch: int = 1) -> int:
    """Seed of the data order of branch ``branch >= 1`` of network ``network``: a continuation of
    its training from some state with another stream of minibatches (the optimizer against
    itself, :meth:`koopman_lib.training.EnsembleTrainer.branch`). Disjoint from every
    :func:`network_seed` and :func:`shuffle_seed`."""
    if int(branch) < 1:
        raise ValueError(f"branch must be >= 1 (0 is the network's own data order, shuffle_seed), got {branch}")
    return shuffle_seed(seed, network) + int(branch) * 2**40


def network_seeds(seed: int, networks) -> list[int]:
    """:func:`network_seed` of each index in ``networks``."""
    return [network_seed(seed, i) for i in networks]


def shuffle_seeds(seed: int, networks) -> list[int]:
    """:func:`shuffle_seed` of each index in ``networks``."""
    return [shuffle_seed(seed, i) for i in networks]
