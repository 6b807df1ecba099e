"""Tests for vbtutor.explorers.flows: the planar-flow explorer recomputes off its frames.

The factory is built on small untrained flows; its controls are moved to values that are
not among the precomputed frames, and the figure shown must be a fresh render for exactly
those values. The pushed grid, the samples and the KL in the figure are checked against
independent computations: the planar map written out from its parameters, the flow's
own ``sample_and_log_prob`` and its density through the inverses.
"""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import torch
from conftest import assert_live, raises_naming
from torch.nn import functional as F

from vbtutor import explorers, flows

SAMPLES = 2000


def log_target(z):
    return -flows.rezende_energy(z, 1)


def make_flow(K: int) -> flows.Flow:
    generator = torch.Generator().manual_seed(K)
    affine = flows.Affine(torch.tensor([0.3, -0.2]), torch.tensor([0.8, 1.3]))
    layers = [flows.Planar(2, generator) for _ in range(K)]
    with torch.no_grad():
        for layer in layers:
            layer.u.mul_(3.0)  # bend the plane visibly
            layer.b.fill_(0.2)
    return flows.Flow([affine, *layers])


@pytest.fixture(scope="module")
def setup():
    planar_flows = {K: make_flow(K) for K in (1, 2, 3, 4)}
    log_z = flows.grid_log_normaliser(log_target, limit=6.0, n=300).item()
    explorer = explorers.flows_explorer(
        planar_flows, log_target, log_z, samples=SAMPLES
    )
    return planar_flows, log_z, explorer


def base_lines() -> np.ndarray:
    """The square grid of the base space, lines z_1 = c then z_2 = c: (22, 240, 2)."""
    values, along = np.linspace(-3, 3, 11), np.linspace(-3, 3, 240)
    first = [np.stack([np.full_like(along, c), along], 1) for c in values]
    second = [np.stack([along, np.full_like(along, c)], 1) for c in values]
    return np.array(first + second)


def test_flows_explorer_recomputes_for_any_K_and_depth(setup):
    _, _, explorer = setup
    assert [p.name for p in explorer.params] == ["K", "depth"]
    assert explorer.params[0].frames == (1, 3, 4)
    assert explorer.new_draw and len(explorer.frames) == 9
    assert_live(explorer, K=2, depth=0.3)


def test_flows_explorer_grid_is_the_planar_maps_written_out(setup):
    planar_flows, _, explorer = setup
    flow = planar_flows[3]
    fig = explorer.render(K=3, depth=0.5, seed=0)  # j = floor(1.5 + 0.5) = 2
    assert fig.axes[0].get_title() == "base grid through 2 of 3 planar layers"
    shown = np.array(fig.axes[0].collections[0].get_segments())
    with torch.no_grad():
        affine = flow.transforms[0]
        z = affine.loc.double().numpy() + affine.scale.double().numpy() * base_lines()
        for layer in flow.transforms[1:3]:
            u, w, b = (p.double().numpy() for p in (layer.u, layer.w, layer.b))
            wu = w @ u
            softplus = F.softplus(torch.tensor(wu)).item()
            u_hat = u + (softplus - 1 - wu) * w / (w @ w)
            z = z + u_hat * np.tanh(z @ w + b)[..., None]
    np.testing.assert_allclose(shown, z, atol=1e-5)
    straight = explorer.render(K=3, depth=0.1, seed=0).axes[0]  # j = 0
    lines = np.array(straight.collections[0].get_segments())
    assert np.ptp(lines[:11, :, 0], axis=1).max() < 1e-6  # z_1 = const stays so
    assert np.ptp(lines[11:, :, 1], axis=1).max() < 1e-6


def test_flows_explorer_full_depth_shows_the_flows_own_samples(setup):
    planar_flows, _, explorer = setup
    fig = explorer.render(K=4, depth=1.0, seed=7)
    assert fig.axes[0].get_title() == "base grid through 4 of 4 planar layers"
    with torch.no_grad():
        z, _ = planar_flows[4].sample_and_log_prob(
            SAMPLES, torch.Generator().manual_seed(7)
        )
    counts = np.histogram2d(*z.double().numpy().T, bins=64, range=[[-4, 4]] * 2)[0]
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), counts.T)
    other = explorer.render(K=4, depth=1.0, seed=8).axes[1].images[0].get_array()
    assert not np.array_equal(other, counts.T)  # a new draw is a new draw


def test_flows_explorer_kl_matches_the_density_through_the_inverses(setup):
    planar_flows, log_z, explorer = setup
    title = explorer.render(K=2, depth=1.0, seed=3).axes[1].get_title()
    kl, se = (float(v) for v in re.findall(r"= (\S+) ± (\S+) nats", title)[0])
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        z = planar_flows[2].sample_and_log_prob(SAMPLES, generator)[0].double()
        flow = copy.deepcopy(planar_flows[2]).double()
        w = log_target(z) - flow.log_prob(z)  # inverse by bisection
    assert kl == pytest.approx(log_z - w.mean().item(), abs=2e-3)
    assert se == pytest.approx(w.std().item() / math.sqrt(SAMPLES), abs=2e-3)
    assert "q_{2}" in title


def test_flows_explorer_leaves_the_global_random_stream_alone(setup):
    _, _, explorer = setup
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    explorer.png(K=3, depth=0.7, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_flows_explorer_checks_its_arguments(setup):
    planar_flows, log_z, _ = setup
    with raises_naming("planar_flows"):
        explorers.flows_explorer({1: planar_flows[1]}, log_target, log_z)
    with raises_naming("planar_flows"):
        explorers.flows_explorer([planar_flows[1]], log_target, log_z)
    with raises_naming("planar_flows"):  # key 2 but three planar layers
        explorers.flows_explorer(
            {1: planar_flows[1], 2: planar_flows[3]}, log_target, log_z
        )
    reversed_flow = flows.Flow(list(planar_flows[1].transforms)[::-1])
    with raises_naming("planar_flows"):
        explorers.flows_explorer(
            {1: reversed_flow, 2: planar_flows[2]}, log_target, log_z
        )
    with raises_naming("log_target"):
        explorers.flows_explorer(planar_flows, 1.0, log_z)
    with raises_naming("log_z"):
        explorers.flows_explorer(planar_flows, log_target, math.nan)
    with raises_naming("samples"):
        explorers.flows_explorer(planar_flows, log_target, log_z, samples=10)
    with raises_naming("lim"):
        explorers.flows_explorer(planar_flows, log_target, log_z, lim=-1.0)
