"""Tests for vbtutor.plotting: the ELBO/KL figure shows the right numbers."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from conftest import raises_naming
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from torch import distributions as D

from vbtutor.plotting import (
    BOOK_STYLE,
    GRID_GAP,
    MIN_FONT_PT,
    elbo_gap_figure,
    image_grid,
    use_book_style,
)


@pytest.fixture
def book_style():
    with matplotlib.rc_context():
        use_book_style()
        yield


def test_book_style_sets_every_text_size_at_or_above_the_minimum(book_style):
    keys = [k for k in matplotlib.rcParams if k.endswith(("size", "fontsize"))]
    keys = [k for k in keys if "font" in k or "label" in k or "title" in k]
    assert "legend.fontsize" in keys and "xtick.labelsize" in keys
    for key in keys:
        value = matplotlib.rcParams[key]
        if value is None:
            continue
        points = FontProperties(size=value).get_size_in_points()
        assert points >= MIN_FONT_PT, f"{key} = {value} is {points:.1f} pt"
    assert matplotlib.rcParams["figure.dpi"] == BOOK_STYLE["figure.dpi"] == 100


def test_every_text_of_a_book_figure_is_readable(book_style, pair):
    q, post, _ = pair
    fig = elbo_gap_figure(q, post, log_px=-3.0)
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert texts and min(t.get_fontsize() for t in texts) >= MIN_FONT_PT


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
    """The ELBO bar ends at ELBO = log p(x) - KL and the KL bar fills the rest."""
    q, post, kl = pair
    fig = elbo_gap_figure(q, post, log_px=-3.0, depth=5.0)
    right = fig.axes[1]
    elbo_bar, kl_bar = right.patches
    floor = right.get_ylim()[0]
    np.testing.assert_allclose(floor, -8.0)
    np.testing.assert_allclose(elbo_bar.get_y(), floor)  # drawn from the axis floor
    np.testing.assert_allclose(elbo_bar.get_y() + elbo_bar.get_height(), -3.0 - kl)
    np.testing.assert_allclose(kl_bar.get_y(), -3.0 - kl, rtol=1e-10)
    np.testing.assert_allclose(kl_bar.get_height(), kl, rtol=1e-10)
    assert right.get_ylim()[1] > -3.0  # log p(x) is inside the axis
    assert right.get_title() == f"KL = {kl:.3f} nats" and right.get_ylabel() == "nats"


def test_an_elbo_below_the_axis_is_marked(pair):
    q, post, kl = pair
    right = elbo_gap_figure(q, post, log_px=0.0, depth=kl / 2).axes[1]
    elbo_bar, kl_bar = right.patches
    assert elbo_bar.get_height() == 0 and kl_bar.get_y() == right.get_ylim()[0]
    assert any("below the axis" in t.get_text() for t in right.texts)


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


@pytest.mark.parametrize("depth", [0.0, -1.0, float("nan")])
def test_rejects_a_non_positive_depth(pair, depth):
    q, post, _ = pair
    with raises_naming("depth"):
        elbo_gap_figure(q, post, log_px=0.0, depth=depth)


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
