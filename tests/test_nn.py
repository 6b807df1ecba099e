"""Tests for vbtutor.nn: MLP shapes and structure, the reparameterised Gaussian encoder, and
several seeds' networks stacked and trained side by side."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import raises_naming, to_numpy
from scipy import stats
from torch import nn

from vbtutor.models import BernoulliVAE
from vbtutor.nn import (
    MLP,
    GaussianEncoder,
    StackedLinear,
    stack_networks,
    unstack_networks,
)


@pytest.mark.parametrize(
    "sizes, batch",
    [((3, 2), (7,)), ((3, 16, 2), (2, 5)), ((4, 8, 8, 1), ()), ((1, 1), (1,))],
)
def test_mlp_maps_the_last_dimension(sizes, batch):
    net = MLP(sizes).double()
    out = net(torch.zeros(*batch, sizes[0], dtype=torch.float64))
    assert out.shape == (*batch, sizes[-1])
    assert (net.in_features, net.out_features) == (sizes[0], sizes[-1])


@pytest.mark.parametrize("activation", [nn.Tanh, nn.ReLU])
def test_mlp_structure_is_linear_layers_with_hidden_activations(activation):
    sizes = (3, 5, 4, 2)
    net = MLP(sizes, activation=activation)
    kinds = [type(layer) for layer in net]
    assert kinds == [nn.Linear, activation, nn.Linear, activation, nn.Linear]
    widths = [
        (layer.in_features, layer.out_features)
        for layer in net
        if isinstance(layer, nn.Linear)
    ]
    assert widths == list(zip(sizes[:-1], sizes[1:], strict=True))


def test_mlp_computes_tanh_layers_and_a_linear_output():
    net = MLP((3, 6, 2)).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    (W1, b1), (W2, b2) = [
        (to_numpy(layer.weight), to_numpy(layer.bias))
        for layer in net
        if isinstance(layer, nn.Linear)
    ]
    expected = np.tanh(x.numpy() @ W1.T + b1) @ W2.T + b2
    np.testing.assert_allclose(to_numpy(net(x)), expected, rtol=1e-12, atol=1e-14)


@pytest.fixture
def encoder():
    return GaussianEncoder(x_dim=3, z_dim=2, hidden=(8,)).double()


def test_encoder_distribution_shapes(encoder):
    x = torch.randn(4, 3, dtype=torch.float64)
    q = encoder(x)
    assert q.batch_shape == (4,) and q.event_shape == (2,)
    assert q.rsample((7,)).shape == (7, 4, 2)
    assert encoder(x[0]).batch_shape == ()


def test_encoder_mean_and_std_come_from_the_network(encoder):
    x = torch.randn(4, 3, dtype=torch.float64)
    out = encoder.net(x)
    q = encoder(x)
    torch.testing.assert_close(q.mean, out[:, :2], rtol=0, atol=0)
    torch.testing.assert_close(q.stddev, out[:, 2:].exp(), rtol=0, atol=0)
    z = torch.randn(5, 4, 2, dtype=torch.float64)
    expected = stats.norm.logpdf(z.numpy(), to_numpy(q.mean), to_numpy(q.stddev)).sum(
        -1
    )
    np.testing.assert_allclose(to_numpy(q.log_prob(z)), expected, rtol=1e-12)


def test_encoder_rsample_is_mean_plus_std_times_eps(encoder):
    x = torch.randn(4, 3, dtype=torch.float64)
    q = encoder(x)
    torch.manual_seed(123)
    z = q.rsample((6,))
    torch.manual_seed(123)
    eps = torch.randn(6, 4, 2, dtype=torch.float64)
    torch.testing.assert_close(z, q.mean + q.stddev * eps, rtol=1e-14, atol=1e-14)
    # The draw is differentiable: dz/dmean = 1 and dz/dstd = eps.
    mean, std = q.base_dist.loc, q.base_dist.scale  # the tensors rsample used
    grad_mean, grad_std = torch.autograd.grad(z.sum(), (mean, std), retain_graph=True)
    torch.testing.assert_close(grad_mean, torch.full_like(mean, 6.0))
    torch.testing.assert_close(grad_std, eps.sum(0))


def test_encoder_draws_give_gradients_to_every_weight(encoder):
    x = torch.randn(4, 3, dtype=torch.float64)
    encoder(x).rsample((3,)).pow(2).sum().backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_linear_encoder_mean_is_affine_in_x():
    encoder = GaussianEncoder(x_dim=3, z_dim=2).double()
    assert sum(isinstance(layer, nn.Linear) for layer in encoder.net) == 1
    x1, x2 = torch.randn(2, 3, dtype=torch.float64)
    a = 0.3
    mix = encoder(a * x1 + (1 - a) * x2).mean
    torch.testing.assert_close(mix, a * encoder(x1).mean + (1 - a) * encoder(x2).mean)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(3,), (), (3, 0), (3, 2.5), (3, True)])
def test_mlp_rejects_bad_sizes(sizes):
    with raises_naming("sizes"):
        MLP(sizes)


def test_mlp_rejects_bad_x():
    net = MLP((3, 2))
    with raises_naming("x"):
        net(torch.zeros(4, 5))
    with raises_naming("x"):
        net(torch.tensor([1.0, math.nan, 0.0]))


@pytest.mark.parametrize("z_dim", [0, 1.5, True])
def test_encoder_rejects_bad_z_dim(z_dim):
    with raises_naming("z_dim"):
        GaussianEncoder(x_dim=3, z_dim=z_dim)


def test_encoder_rejects_x_of_the_wrong_width(encoder):
    with raises_naming("x"):
        encoder(torch.zeros(4, 2, dtype=torch.float64))


# --- several seeds at once ----------------------------------------------------------------


def seeded(make, seeds):
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(make().double())
    return models


def test_stacked_network_runs_each_model_on_its_own_slice():
    vaes = seeded(lambda: BernoulliVAE(x_dim=6, z_dim=2, hidden=(5, 4)), range(3))
    stacked = stack_networks(vaes)
    x = torch.bernoulli(torch.full((3, 7, 6), 0.5, dtype=torch.float64))
    z = torch.randn(4, 3, 7, 2, dtype=torch.float64)  # sample dimension in front
    q = stacked.encode(x)
    for s, vae in enumerate(vaes):
        mine = vae.encode(x[s])
        torch.testing.assert_close(q.mean[s], mine.mean)
        torch.testing.assert_close(q.stddev[s], mine.stddev)
        torch.testing.assert_close(
            stacked.log_joint(x, z)[:, s], vae.log_joint(x[s], z[:, s])
        )


def test_training_the_stack_equals_training_each_model_alone():
    # Adam is element-wise, so the sum of the S losses trains S independent models.
    x = torch.randn(3, 10, 4, dtype=torch.float64)
    y = torch.randn(3, 10, 2, dtype=torch.float64)
    alone = seeded(lambda: MLP((4, 8, 2)), range(3))
    together = seeded(lambda: MLP((4, 8, 2)), range(3))
    for s, net in enumerate(alone):
        opt = torch.optim.Adam(net.parameters(), lr=0.05)
        for _ in range(20):
            opt.zero_grad()
            ((net(x[s]) - y[s]) ** 2).mean().backward()
            opt.step()
    stacked = stack_networks(together)
    opt = torch.optim.Adam(stacked.parameters(), lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        ((stacked(x) - y) ** 2).mean((-2, -1)).sum().backward()
        opt.step()
    unstack_networks(stacked, together)
    for a, b in zip(alone, together, strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_stack_and_unstack_round_trip_leave_the_models_unchanged():
    nets = seeded(lambda: MLP((3, 5, 2)), range(2))
    before = [{k: v.clone() for k, v in n.state_dict().items()} for n in nets]
    back = unstack_networks(stack_networks(nets), nets)
    for net, state in zip(back, before, strict=True):
        for key, value in net.state_dict().items():
            assert torch.equal(value, state[key])


def test_a_model_that_is_one_linear_layer_stacks_too():
    layers = seeded(lambda: nn.Linear(3, 2), range(2))
    stacked = stack_networks(layers)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    for s, layer in enumerate(layers):
        torch.testing.assert_close(stacked(x)[s], layer(x[s]))
    with torch.no_grad():
        stacked.bias.zero_()
    assert unstack_networks(stacked, layers)[1].bias.abs().max() == 0


def test_stacking_rejects_mismatched_or_shared_parameters():
    with pytest.raises(ValueError, match="models"):
        stack_networks([])
    with pytest.raises(ValueError, match="models"):
        stack_networks([MLP((3, 2)), MLP((3, 4))])

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.scale = MLP((3, 2)), nn.Parameter(torch.ones(1))

    with pytest.raises(ValueError, match="nn.Linear"):
        stack_networks([Scaled(), Scaled()])
    with pytest.raises(ValueError, match="layers"):
        StackedLinear([nn.Linear(3, 2), nn.Linear(3, 4)])
    with pytest.raises(ValueError, match="stacked"):
        unstack_networks(MLP((3, 2)), [MLP((3, 2))])


def test_stacked_layer_rejects_inputs_without_the_seed_axis():
    layer = StackedLinear([nn.Linear(3, 2) for _ in range(4)])
    with raises_naming("x"):
        layer(torch.zeros(5, 3))
    with raises_naming("x"):
        layer(torch.zeros(2, 5, 3))
