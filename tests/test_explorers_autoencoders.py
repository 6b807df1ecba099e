"""Tests for vbtutor.explorers.autoencoders: the vae and kl_gaussians explorers.

Each factory is built on small inputs; its controls are moved off the precomputed frames
(the vae explorer's sigma is a choice among trained models, so its live change is a new
draw) and the figure shown must be a fresh render for exactly those values. The figures'
contents are checked against independent computations.
"""

from __future__ import annotations

import math

import ipywidgets
import numpy as np
import pytest
import torch
from conftest import raises_naming
from torch import distributions as D

from vbtutor import distributions as vd
from vbtutor import explorers
from vbtutor.explorers.autoencoders import OBJECTIVES
from vbtutor.models import GaussianVAE

QP, PQ = OBJECTIVES


def assert_recomputed(explorer, **values):
    """Move the controls to ``values`` and check the figure shown is a fresh render.

    Like ``conftest.assert_live``, for explorers with a choice among all of whose options
    are frames: only the numeric values must be off the frames.
    """
    before = explorer.image.value
    for param in explorer.params:
        if param.kind != "choice":
            assert values[param.name] not in param.frames
    explorer.set(**values)
    assert explorer.image.value == explorer.fresh_png(**values) != before


def mixture(separation: float) -> D.MixtureSameFamily:
    """The chapter's target: 0.6 N(-d/2, 1) + 0.4 N(d/2, 1), in float64."""
    return vd.gaussian_mixture_1d(
        torch.tensor([0.6, 0.4], dtype=torch.float64),
        torch.tensor([-separation / 2, separation / 2], dtype=torch.float64),
        torch.ones(2, dtype=torch.float64),
    )


def normal(mean: float, sd: float) -> D.Normal:
    return D.Normal(
        torch.tensor(mean, dtype=torch.float64), torch.tensor(sd, dtype=torch.float64)
    )


# -- kl_gaussians -------------------------------------------------------------------


@pytest.fixture(scope="module")
def kl_explorer():
    return explorers.kl_direction_explorer(weights=[0.6, 0.4], separations=[2, 6])


def test_kl_direction_explorer_recomputes_for_any_separation(kl_explorer):
    assert [p.name for p in kl_explorer.params] == ["separation", "objective"]
    assert kl_explorer.params[0].frames == (2.0, 6.0) and kl_explorer.defaults == {
        "separation": 6.0,
        "objective": QP,
    }
    assert len(kl_explorer.frames) == 4 and not kl_explorer.new_draw
    assert_recomputed(kl_explorer, separation=3.3, objective=PQ)
    assert_recomputed(kl_explorer, separation=5.14, objective=QP)


def test_kl_direction_explorer_draws_both_fits_and_reports_their_kls(kl_explorer):
    separation = 5.6
    target = mixture(separation)
    fig = kl_explorer.render(separation=separation, objective=PQ)
    left = fig.axes[0]
    xs = torch.as_tensor(left.lines[0].get_xdata())
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    for line, direction, name in zip(
        left.lines, ("qp", "pq"), ("mode seeking", "mass covering"), strict=True
    ):
        fit = vd.fit_gaussian_1d(target, direction=direction)
        density = fit.log_prob(xs).exp().numpy()
        np.testing.assert_allclose(line.get_ydata(), density, atol=1e-6)
        value = vd.kl_quadrature(target, fit).item()
        assert f"{name}: KL(p || q) = {value:.3f}" in labels
    # the mode-seeking fit has jumped to the heavier mode, the other matches moments
    seek, cover = (line.get_xdata()[np.argmax(line.get_ydata())] for line in left.lines)
    assert seek == pytest.approx(-separation / 2, abs=0.3)
    assert cover == pytest.approx(target.mean.item(), abs=0.05)


def test_kl_direction_explorer_profile_of_kl_p_q_is_the_moment_matched_kl(kl_explorer):
    separation = 3.3
    target = mixture(separation)
    right = kl_explorer.render(separation=separation, objective=PQ).axes[1]
    means, values = right.lines[0].get_data()
    for i in (0, 20, 40, 63, 80):
        m = means[i]
        sd = math.sqrt(target.variance.item() + (target.mean.item() - m) ** 2)
        assert values[i] == pytest.approx(
            vd.kl_quadrature(target, normal(m, sd)).item(), abs=1e-6
        )
    fit = vd.fit_gaussian_1d(target, direction="pq")
    assert right.lines[2].get_xdata()[0] == pytest.approx(fit.mean.item())
    assert right.lines[2].get_ydata()[0] == pytest.approx(values.min(), abs=1e-3)


def test_kl_direction_explorer_profile_of_kl_q_p_matches_a_dense_search(kl_explorer):
    """min over s of KL(N(m, s^2) || p) against the trapezoidal rule on 200 values of s."""
    separation = 5.0  # two nearly equal local minima: the profile must resolve both
    target = mixture(separation)
    right = kl_explorer.render(separation=separation, objective=QP).axes[1]
    means, values = right.lines[0].get_data()
    u = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    sds = torch.logspace(math.log10(0.2), math.log10(8.0), 200, dtype=torch.float64)
    for i in (10, 30, 40, 55):
        x = means[i] + sds[:, None] * u  # a grid that moves with each q, as in the fits
        q = D.Normal(torch.tensor(means[i], dtype=torch.float64), sds[:, None])
        log_q = q.log_prob(x)
        kls = torch.trapezoid(log_q.exp() * (log_q - target.log_prob(x)), x)
        assert values[i] == pytest.approx(kls.min().item(), abs=2e-3)
    seek = vd.fit_gaussian_1d(target, direction="qp")
    assert values.min() == pytest.approx(
        vd.kl_quadrature(seek, target).item(), abs=5e-3
    )
    assert np.all(values > vd.kl_quadrature(seek, target).item() - 1e-3)


def test_kl_direction_explorer_marks_an_off_scale_fit_at_the_top(kl_explorer):
    right = kl_explorer.render(separation=8.0, objective=PQ).axes[1]
    seek, cover = right.lines[1], right.lines[2]
    top = right.get_ylim()[1]
    assert seek.get_marker() == "^" and seek.get_ydata()[0] == top
    assert cover.get_marker() == "o" and cover.get_ydata()[0] < top


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"weights": [0.6, 0.3, 0.1]}, "weights"),
        ({"weights": [0.6, 0.0]}, "weights"),
        ({"stds": [1.0, -1.0]}, "stds"),
        ({"stds": "wide"}, "stds"),
        ({"separations": [0, 9]}, "separations"),
    ],
)
def test_kl_direction_explorer_checks_its_arguments(kwargs, name):
    with raises_naming(name):
        explorers.kl_direction_explorer(**kwargs)


# -- vae ----------------------------------------------------------------------------

SIGMAS = (0.1, 0.3, 0.9)


@pytest.fixture(scope="module")
def vae_setup():
    torch.manual_seed(0)
    vaes = {s: GaussianVAE(x_dim=16, z_dim=3, hidden=(8,), sigma=s) for s in SIGMAS}
    x_test = torch.rand(30, 16, generator=torch.Generator().manual_seed(1))
    terms = {s: (1.0 + i, 10.0 - 4 * i) for i, s in enumerate(SIGMAS)}
    explorer = explorers.vae_sigma_explorer(vaes, terms, x_test, default=0.3)
    return vaes, terms, x_test, explorer


def tiles(ax, rows: int, side: int = 4) -> np.ndarray:
    """The images of an image_grid panel, shape (rows * 10, side * side)."""
    canvas = ax.images[0].get_array()
    return np.stack(
        [
            canvas[
                r * (side + 1) : r * (side + 1) + side,
                c * (side + 1) : c * (side + 1) + side,
            ].ravel()
            for r in range(rows)
            for c in range(10)
        ]
    )


def test_vae_sigma_explorer_recomputes_for_a_new_draw_and_any_sigma(vae_setup):
    *_, explorer = vae_setup
    assert [p.name for p in explorer.params] == ["sigma"]
    assert explorer.new_draw and len(explorer.frames) == len(SIGMAS)
    before = explorer.image.value
    assert before == explorer.png(sigma=0.3, seed=0)
    buttons = [
        w
        for box in explorer.widget.children
        if isinstance(box, ipywidgets.HBox)
        for w in box.children
        if isinstance(w, ipywidgets.Button)
    ]
    buttons[0].click()  # "new draw"
    assert explorer.image.value == explorer.fresh_png(sigma=0.3, seed=1) != before
    explorer.set(sigma=0.9)
    assert explorer.image.value == explorer.fresh_png(sigma=0.9, seed=1)
    assert explorer.image.value != explorer.png(sigma=0.9, seed=0)


def test_vae_sigma_explorer_shows_digits_reconstructions_and_shared_draws(vae_setup):
    vaes, terms, x_test, explorer = vae_setup
    for sigma, seed in [(0.1, 0), (0.9, 0), (0.3, 5)]:
        fig = explorer.render(sigma=sigma, seed=seed)
        digits, draws = fig.axes[0], fig.axes[1]
        shown = tiles(digits, 2)
        rows = [
            int(torch.cdist(torch.tensor(d)[None], x_test.double()).argmin())
            for d in shown[:10]
        ]
        np.testing.assert_allclose(shown[:10], x_test[rows].numpy(), atol=1e-6)
        assert len(set(rows)) == 10
        if seed == 0:
            assert rows == list(range(10))
        model = vaes[sigma]
        with torch.no_grad():
            recon = model.decode(model.encode(x_test[rows]).mean)
            z = torch.randn(20, 3, generator=torch.Generator().manual_seed(seed))
            samples = model.decode(z)
        np.testing.assert_allclose(shown[10:], recon.numpy(), atol=1e-6)
        np.testing.assert_allclose(tiles(draws, 2), samples.numpy(), atol=1e-6)
        assert f"σ = {sigma:g}, β = 2σ² = {2 * sigma**2:.3g}" in digits.get_title()
        for column, ax in enumerate(fig.axes[2:]):
            xs, ys = ax.lines[0].get_data()
            assert list(xs) == list(SIGMAS)
            assert list(ys) == [terms[s][column] for s in SIGMAS]
            assert ax.lines[1].get_ydata()[0] == terms[sigma][column]
            assert ax.get_xlabel() and ax.get_ylabel()


def test_vae_sigma_explorer_leaves_the_global_random_streams_alone(vae_setup):
    *_, explorer = vae_setup
    torch.manual_seed(123)
    np.random.seed(123)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    explorer.png(sigma=0.1, seed=17)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])


def test_vae_sigma_explorer_checks_its_arguments(vae_setup):
    vaes, terms, x_test, _ = vae_setup
    with raises_naming("vaes"):
        explorers.vae_sigma_explorer({0.1: vaes[0.1]}, {0.1: terms[0.1]}, x_test)
    with raises_naming("terms"):
        explorers.vae_sigma_explorer(vaes, {0.1: terms[0.1]}, x_test)
    with raises_naming("terms"):
        explorers.vae_sigma_explorer(vaes, {s: (1.0,) for s in SIGMAS}, x_test)
    with raises_naming("x_test"):
        explorers.vae_sigma_explorer(vaes, terms, x_test[:5])
    with raises_naming("x_test"):
        explorers.vae_sigma_explorer(vaes, terms, x_test[:, :15])
    with raises_naming("default"):
        explorers.vae_sigma_explorer(vaes, terms, x_test, default=0.2)
