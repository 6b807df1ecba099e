"""Tests for vbtutor.plotting: the ELBO/KL figure shows the right numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import raises_naming
from matplotlib.figure import Figure
from torch import distributions as D

from vbtutor.plotting import GRID_GAP, elbo_gap_figure, image_grid


def gaussian_kl(m0, S0, m1, S1) -> float:
    """KL(N(m0, S0) || N(m1, S1)) from the textbook formula, in NumPy."""
    S1_inv = np.linalg.inv(S1)
    d = m1 - m0
    return 0.5 * (
        np.trace(S1_inv @ S0)
        + d @ S1_inv @ d
        - len(m0)
        + np.log(np.linalg.det(S1) / np.linalg.det(S0))
    )


@pytest.fixture
def pair():
    m0, S0 = np.array([0.3, -0.2]), np.array([[0.5, 0.1], [0.1, 0.4]])
    m1, S1 = np.array([0.0, 0.1]), np.array([[0.8, -0.3], [-0.3, 0.6]])
    q = D.MultivariateNormal(torch.tensor(m0), torch.tensor(S0))
    post = D.MultivariateNormal(torch.tensor(m1), torch.tensor(S1))
    return q, post, gaussian_kl(m0, S0, m1, S1)


def test_bars_split_log_marginal_into_elbo_and_kl(pair):
    q, post, kl = pair
    fig = elbo_gap_figure(q, post, log_px=-3.0)
    right = fig.axes[1]
    elbo_bar, kl_bar = right.patches
    np.testing.assert_allclose(kl_bar.get_height(), kl, rtol=1e-10)
    np.testing.assert_allclose(elbo_bar.get_height(), -3.0 - kl, rtol=1e-10)
    np.testing.assert_allclose(kl_bar.get_y() + kl_bar.get_height(), -3.0, rtol=1e-10)
    assert right.get_title() == f"KL = {kl:.2f} nats"


def test_left_panel_is_centred_on_the_posterior(pair):
    q, post, _ = pair
    left = elbo_gap_figure(q, post, log_px=0.0, title="A: ").axes[0]
    assert left.get_title().startswith("A: ")
    centre = np.array([np.mean(left.get_xlim()), np.mean(left.get_ylim())])
    np.testing.assert_allclose(centre, post.mean.numpy(), atol=1e-12)


@pytest.mark.parametrize("bad", ["q", "posterior"])
def test_rejects_non_2d_or_batched_gaussians(pair, bad):
    q, post, _ = pair
    three_d = D.MultivariateNormal(torch.zeros(3), torch.eye(3))
    batched = D.MultivariateNormal(torch.zeros(4, 2), torch.eye(2))
    for wrong in (three_d, batched, D.Normal(0.0, 1.0)):
        args = {"q": q, "posterior": post, bad: wrong}
        with raises_naming(bad):
            elbo_gap_figure(args["q"], args["posterior"], log_px=0.0)


def test_image_grid_places_each_image_in_its_cell():
    images = torch.rand(5, 64)
    fig = Figure()
    image_grid(fig.subplots(), images, ncol=3, title="t")
    ax = fig.axes[0]
    canvas = np.asarray(ax.images[0].get_array())
    assert canvas.shape == (2 * 9 - 1, 3 * 9 - 1) and ax.get_title() == "t"
    for i in range(5):
        r, c = divmod(i, 3)
        cell = canvas[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8]
        np.testing.assert_allclose(cell, images[i].reshape(8, 8).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(canvas[8, :], GRID_GAP)  # gap between rows
    np.testing.assert_array_equal(canvas[9:, 18:], GRID_GAP)  # the empty sixth cell


@pytest.mark.parametrize("bad", [torch.zeros(3, 63), torch.zeros(64)])
def test_image_grid_rejects_wrong_shapes(bad):
    with raises_naming("images"):
        image_grid(Figure().subplots(), bad)
