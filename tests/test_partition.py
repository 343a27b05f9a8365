import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import koopman_lib as kl
from koopman_lib.partition import PartitionError


def mlp(*sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


SPECS = ["single", "node", "layer", "network", "quasi_node:1", "quasi_node:3", "quasi_node:157"]


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4), spec=st.sampled_from(SPECS))
def test_round_trip_is_exact_and_covers_each_parameter_once(sizes, spec):
    model = mlp(*sizes)
    part = kl.make_partition(model, spec)
    theta = kl.flatten_params(model)
    idx = torch.cat([g.reshape(-1) for g in part.groups])
    assert torch.equal(idx.sort().values, torch.arange(theta.numel()))
    assert torch.equal(part.assemble(part.blocks(theta)), theta)
    # batched (ensemble) round trip too
    stacked = torch.stack([theta, 2 * theta, -theta])
    assert torch.equal(part.assemble(part.blocks(stacked)), stacked)


def test_flatten_layout_is_node_rows_weights_then_bias():
    model = mlp(3, 2)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2, 3], [4, 5, 6]]))
        model[0].bias.copy_(torch.tensor([7.0, 8]))
    assert kl.flatten_params(model).tolist() == [1, 2, 3, 7, 4, 5, 6, 8]


def test_load_flat_round_trip_and_refuses_bad_vectors():
    model = mlp(4, 3, 2)
    theta = kl.flatten_params(model)
    other = mlp(4, 3, 2)
    kl.load_flat(other, theta)
    assert torch.equal(kl.flatten_params(other), theta)
    before = kl.flatten_params(other).clone()
    bad = theta.clone()
    bad[-1] = float("nan")
    with pytest.raises(PartitionError, match="NaN"):
        kl.load_flat(other, bad)
    with pytest.raises(PartitionError, match="different architecture"):
        kl.load_flat(other, theta[:-1])
    assert torch.equal(kl.flatten_params(other), before)  # never half-written


def test_paper_mnist_partition_sizes():
    shapes = kl.layer_shapes(mlp(784, 20, 20, 20, 10))
    part = kl.make_partition(shapes, ["quasi_node:157", "node", "node", "node"])
    assert [tuple(g.shape) for g in part.groups] == [(100, 157), (50, 21)]
    # the DE solver's: layer 1 chunks of weight+bias (q=2), Node elsewhere
    de = kl.make_partition(mlp(1, 10, 10, 2), ["quasi_node:2", "node", "node"])
    assert [tuple(g.shape) for g in de.groups] == [(12, 11), (10, 2)]


def test_quasi_node_leftover_chunk():
    part = kl.make_partition(mlp(4, 2), "quasi_node:2")  # row = 5 -> chunks 2, 2, 1
    assert [tuple(g.shape) for g in part.groups] == [(4, 2), (2, 1)]
    # chunks stay inside their node
    assert part.groups[0].tolist() == [[0, 1], [2, 3], [5, 6], [7, 8]]


def test_conv2d_output_channels_are_nodes():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    part = kl.make_partition(model, "node")
    assert sorted(part.block_sizes) == [10, 145]
    theta = kl.flatten_params(model)
    clone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    kl.load_flat(clone, theta)
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(clone(x), model(x))


def test_errors_name_the_problem():
    with pytest.raises(PartitionError, match="BatchNorm1d"):
        kl.layer_shapes(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    with pytest.raises(PartitionError, match="unknown partition"):
        kl.make_partition(mlp(2, 2), "nodes")
    with pytest.raises(PartitionError, match="cannot be mixed"):
        kl.make_partition(mlp(2, 2, 2), ["network", "node"])
    with pytest.raises(PartitionError, match="2 partition specs for 1 layers"):
        kl.make_partition(mlp(2, 2), ["node", "node"])
    part = kl.make_partition(mlp(2, 2), "node")
    with pytest.raises(PartitionError, match="do not match"):
        part.blocks(torch.zeros(5))


def test_time_last_is_the_block_layout_of_a_recording():
    from koopman_lib.partition import LayerShape
    part = kl.make_partition([LayerShape("a", 3, 2), LayerShape("b", 2, 3)], "node")
    rec = torch.randn(7, 4, part.n_params, dtype=torch.float64)            # (k, E, D)
    for x, b, g in zip(part.time_last(rec), part.blocks(rec), part.groups):
        assert x.shape == (4 * g.shape[0], g.shape[1], 7)
        assert torch.equal(x[..., 3], b[3].reshape(-1, g.shape[1]))       # time step 3, member-major


@pytest.mark.parametrize("spec", [["quasi_node:4", "node", "node"], "node", "layer", "single", "network"])
@pytest.mark.parametrize("method", ["svd", "cholesky", "eigh"])
def test_contiguous_groups_are_read_as_views_and_fit_the_same(spec, method):
    """A group that is one contiguous range of theta is a slice (a view: no copy of the recording);
    blocks, time_last and every fit are the same, value for value, as through its index tensor."""
    import copy
    from koopman_lib.ensembles import EnsembleMLP
    part = kl.make_partition(EnsembleMLP([7, 6, 5, 3], "relu").shapes, spec)
    indexed = copy.copy(part)
    indexed._ranges = [None] * len(part.groups)
    g = torch.Generator().manual_seed(0)
    rec = torch.randn(130, 2, part.n_params, generator=g).cumsum(0)           # more pairs than the largest block
    for a, b in zip(part.blocks(rec), indexed.blocks(rec)):
        assert torch.equal(a, b)
    for a, b in zip(part.time_last(rec), indexed.time_last(rec)):
        assert torch.equal(a, b)
    if spec == "node":
        assert all(r is not None for r in part._ranges)
        assert part.blocks(rec)[0].data_ptr() == rec.data_ptr()            # a view
    ours = kl.Koopman(part, method=method).fit(rec)
    ref = kl.Koopman(indexed, method=method).fit(rec)
    for a, b in zip(ours.operators_, ref.operators_):
        for x, y in zip((a.U, a.A, a.B), (b.U, b.A, b.B)):
            assert (x is None and y is None) or torch.equal(x, y)
