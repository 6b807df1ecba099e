"""Tests for vbtutor.explorers.implicit: the avb and contrastive explorers recompute.

Each factory is built on small inputs (untrained encoders, small NCE problems); its
control is moved to a value that is not among the precomputed frames, and the figure
shown must be a fresh render for exactly that value. The figures' contents are checked
against independent computations: the exact posterior on the grid, the TV formula, a
Gaussian encoder that is the exact posterior, and NCE fits by
``vbtutor.density_ratio.fit_nce`` as the chapter runs them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_live, raises_naming
from torch import distributions as D

from vbtutor import adversarial as adv
from vbtutor import density_ratio as dr
from vbtutor import explorers
from vbtutor.explorers.implicit import AVB_CURVE_XS
from vbtutor.nn import GaussianEncoder

# -- avb ---------------------------------------------------------------------------

PRIOR = D.Independent(D.Normal(torch.zeros(2), 1.0), 1)


def product_likelihood(x, z):  # the chapter's p(x | z) = N(x; z1 z2, 1)
    return D.Normal(z[:, 0] * z[:, 1], 1.0).log_prob(x[:, 0])


def linear_likelihood(x, z):  # p(x | z) = N(x; z1, 1): posterior N((x/2, 0), (1/2, 1))
    return D.Normal(z[:, 0], 1.0).log_prob(x[:, 0])


def exact_gaussian(x):  # the exact posterior under linear_likelihood, as an encoder
    mean = torch.cat([x / 2, torch.zeros_like(x)], -1)
    return D.Independent(D.Normal(mean, torch.tensor([0.5**0.5, 1.0])), 1)


@pytest.fixture(scope="module")
def avb_setup():
    torch.manual_seed(0)
    avb = adv.ImplicitEncoder(1, 2, noise_dim=4, hidden=(8,))
    gaussian = GaussianEncoder(1, 2, hidden=(8,))
    return explorers.avb_explorer(
        avb, gaussian, product_likelihood, PRIOR, samples=2000
    )


def binned_posterior(x: float, log_likelihood) -> np.ndarray:
    """The posterior's mass in each 0.2 x 0.2 bin, by a midpoint rule in NumPy."""
    fine = np.linspace(-3.975, 3.975, 160)
    z1, z2 = np.meshgrid(fine, fine, indexing="ij")
    z = torch.tensor(np.stack([z1.ravel(), z2.ravel()], -1))
    x_rows = torch.full((len(z), 1), x, dtype=z.dtype)
    log_joint = -0.5 * (z**2).sum(-1).numpy() + log_likelihood(x_rows, z).numpy()
    mass = np.exp(log_joint - log_joint.max())
    return (mass / mass.sum()).reshape(40, 4, 40, 4).sum((1, 3))


def tv_of(hist: np.ndarray, bins: np.ndarray) -> float:
    return 0.5 * (np.abs(hist - bins).sum() + 1 - hist.sum())


def test_avb_explorer_recomputes_for_any_x(avb_setup):
    explorer = avb_setup
    assert [p.name for p in explorer.params] == ["x"]
    assert len(explorer.frames) == 7 and not explorer.new_draw
    assert_live(explorer, x=1.37)


def test_avb_explorer_shows_the_exact_posterior_and_the_tvs_of_its_histograms(
    avb_setup,
):
    x = 2.3
    fig = avb_setup.render(x=x)
    exact, avb, gaussian, tv_axis = fig.axes
    bins = np.asarray(exact.images[0].get_array()).T
    np.testing.assert_allclose(bins, binned_posterior(x, product_likelihood), atol=1e-6)
    assert exact.get_title() == "exact posterior, x = 2.30"
    tvs = []
    for ax, name in [(avb, "AVB"), (gaussian, "Gaussian VAE")]:
        hist = np.asarray(ax.images[0].get_array()).T
        assert hist.sum() <= 1 + 1e-6 and np.all(np.round(hist * 2000, 6) % 1 == 0)
        tvs.append(tv_of(hist, bins))
        assert ax.get_title() == f"{name} (TV {tvs[-1]:.2f})"
    markers = [line for line in tv_axis.lines if len(line.get_xdata()) == 1]
    marked = [line.get_ydata()[0] for line in markers]
    assert marked[:2] == pytest.approx(tvs, abs=1e-6)
    curve = tv_axis.lines[0]
    assert list(curve.get_xdata()) == list(AVB_CURVE_XS)
    assert tv_axis.lines[-1].get_xdata()[0] == x  # the current x


def test_avb_explorer_tv_of_an_exact_encoder_is_at_the_noise_floor():
    torch.manual_seed(0)
    explorer = explorers.avb_explorer(
        lambda x: exact_gaussian(x).sample(),
        exact_gaussian,
        linear_likelihood,
        PRIOR,
        samples=20_000,
    )
    tv_axis = explorer.render(x=1.1).axes[3]
    avb, gaussian, floor = (line.get_ydata() for line in tv_axis.lines[0:6:2])
    # exact samples of either kind: only histogram noise (and binning) separates them
    assert np.abs(gaussian - floor).max() < 0.03
    assert np.abs(avb - floor).max() < 0.03
    assert 0.05 < floor.mean() < 0.2


def test_avb_explorer_leaves_the_global_random_stream_alone(avb_setup):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    avb_setup.png(x=0.77)
    assert torch.equal(torch.rand(3), expected)


def test_avb_explorer_checks_its_arguments():
    encoder = GaussianEncoder(1, 2)
    with raises_naming("samples"):
        explorers.avb_explorer(encoder, encoder, product_likelihood, PRIOR, 10)
    flat = D.Normal(torch.zeros(2), 1.0)  # event_shape () instead of (2,)
    with raises_naming("prior"):
        explorers.avb_explorer(encoder, encoder, product_likelihood, flat)


# -- contrastive -------------------------------------------------------------------

N, STEPS, LR, SETS = 60, 60, 0.1, 2


def chapter_problem():
    dtype = torch.float64
    truth = dr.UnnormalisedGaussian(2).to(dtype)
    with torch.no_grad():
        truth.mean.copy_(torch.tensor([1.0, -0.5]))
        truth.log_diag.copy_(torch.tensor([0.3, -0.2]))
        truth.off_diag.fill_(0.6)
    noise = D.MultivariateNormal(torch.zeros(2, dtype=dtype), 4 * torch.eye(2).double())
    return truth, noise


def chapter_fits(truth, noise, nu: int) -> np.ndarray:
    """Errors of c as the chapter fits them: one fit_nce per seeded data set."""
    c_star = -truth.log_normaliser().item()
    errors = []
    for seed in range(SETS):
        torch.manual_seed(seed)
        sample = truth.normalised().sample((N,))
        model = dr.NCE(dr.UnnormalisedGaussian(2), noise).double()
        dr.fit_nce(model, sample, steps=STEPS, nu=nu, lr=LR, progress=False)
        errors.append(model.c.item() - c_star)
    return np.array(errors)


def theory(nu: float) -> float:  # a stand-in for the chapter's asymptotic sd
    return 0.1 * math.sqrt(1 + 1 / nu)


@pytest.fixture(scope="module")
def contrastive_setup():
    truth, noise = chapter_problem()
    errors = {nu: chapter_fits(truth, noise, nu) for nu in (1, 3)}
    explorer = explorers.contrastive_explorer(
        truth, noise, errors, theory, n=N, steps=STEPS, lr=LR
    )
    return truth, noise, errors, explorer


def test_contrastive_explorer_recomputes_for_any_nu(contrastive_setup):
    *_, explorer = contrastive_setup
    assert [p.name for p in explorer.params] == ["nu"]
    assert len(explorer.frames) == 7
    assert_live(explorer, nu=7)


def test_contrastive_explorer_refits_as_the_chapter_does(contrastive_setup):
    truth, noise, errors, explorer = contrastive_setup
    nu = 4
    right = explorer.render(nu=nu).axes[1]
    live = [line for line in right.lines if line.get_color() == "C3"]
    points, rms = live[0], live[-1]
    expected = chapter_fits(truth, noise, nu)
    assert list(points.get_xdata()) == [nu] * SETS
    np.testing.assert_allclose(points.get_ydata(), np.abs(expected), atol=1e-9)
    rms_expected = math.sqrt(np.mean(expected**2))
    assert rms.get_ydata()[0] == pytest.approx(rms_expected, abs=1e-9)
    assert right.get_title() == (
        rf"$\nu$ = {nu}: RMS {rms_expected:.2f}, asymptotic sd {theory(nu):.2f}"
    )
    # at the chapter's values the refits give the chapter's errors back
    at_three = explorer.render(nu=3).axes[1]
    refit = [line for line in at_three.lines if line.get_color() == "C3"][0]
    np.testing.assert_allclose(refit.get_ydata(), np.abs(errors[3]), atol=1e-9)


def test_contrastive_explorer_draws_the_theory_and_the_chapters_errors(
    contrastive_setup,
):
    _, _, errors, explorer = contrastive_setup
    right = explorer.render(nu=2).axes[1]
    curve = right.lines[0]
    expected = [theory(v) for v in curve.get_xdata()]
    np.testing.assert_allclose(curve.get_ydata(), expected)
    dots = [line for line in right.lines if line.get_marker() == "o"]
    for nu, e in errors.items():
        match = [d for d in dots if list(d.get_xdata()) == [nu] * SETS]
        np.testing.assert_allclose(match[0].get_ydata(), np.abs(e))


def test_contrastive_explorer_leaves_the_global_random_stream_alone(
    contrastive_setup,
):
    *_, explorer = contrastive_setup
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    explorer.png(nu=6)
    assert torch.equal(torch.rand(3), expected)


def test_contrastive_explorer_checks_its_arguments(contrastive_setup):
    truth, noise, errors, _ = contrastive_setup
    with raises_naming("errors"):
        explorers.contrastive_explorer(truth, noise, {1.5: errors[1]}, theory)
    with raises_naming("errors"):
        explorers.contrastive_explorer(
            truth, noise, {1: errors[1], 3: errors[3][:1]}, theory
        )
    with raises_naming("lr"):
        explorers.contrastive_explorer(truth, noise, errors, theory, lr=-1.0)
