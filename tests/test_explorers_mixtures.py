"""Tests for vbtutor.explorers.mixtures: the gmvae, dpmm and sbvae explorers recompute.

Every factory is built on small inputs (an untrained GMVAE, a small data set for the DP
mixture); its controls are moved to values that are not among the precomputed frames,
and the figure shown must be a fresh render for exactly those values. The figures'
contents are checked against independent computations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_live, raises_naming
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from scipy import stats
from torch import distributions as D

from vbtutor import dpmm, explorers
from vbtutor import stick_breaking as sb
from vbtutor.models import GMVAE
from vbtutor.plotting import image_grid


def canvas(images) -> np.ndarray:
    """The pixels that image_grid draws for ``images`` (8 per row)."""
    ax = Figure().subplots()
    image_grid(ax, images, ncol=8)
    return ax.images[0].get_array()


# -- gmvae ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gmvae_setup():
    torch.manual_seed(0)
    model = GMVAE(y_dim=64, x_dim=3, w_dim=2, k=12, hidden=(16,))
    generator = torch.Generator().manual_seed(1)
    x_test = torch.bernoulli(torch.full((80, 64), 0.4), generator=generator)
    y_test = torch.randint(0, 10, (80,), generator=generator).numpy()
    explorer = explorers.gmvae_component_explorer(model, x_test, y_test, n=8)
    return model, x_test, y_test, explorer


def test_gmvae_explorer_recomputes_for_any_component_and_spread(gmvae_setup):
    *_, explorer = gmvae_setup
    assert [p.name for p in explorer.params] == ["component", "spread"]
    assert explorer.params[0].frames == (0, 1, 2, 4, 5, 6, 7, 9, 10, 11)
    assert explorer.new_draw and len(explorer.frames) == 20
    assert_live(explorer, component=3, spread=0.6, seed=2)


def test_gmvae_explorer_shows_the_test_digits_of_the_component(gmvae_setup):
    model, x_test, y_test, explorer = gmvae_setup
    assigned = model.cluster(x_test).numpy()
    component = int(np.bincount(assigned).argmax())  # one that owns test digits
    right = explorer.render(component=component, spread=1.0, seed=0).axes[1]
    members = assigned == component
    assert right.get_title() == (f"{members.sum()} test digits assigned to {component}")
    assert np.array_equal(right.images[0].get_array(), canvas(x_test[members][:8]))
    label, count = np.unique(y_test[members], return_counts=True)
    best = label[np.lexsort((label, -count))][0]
    assert right.get_xlabel().startswith(
        f"most frequent labels: {best} ({count.max()})"
    )
    other = explorer.render(component=component, spread=1.0, seed=5).axes[1]
    shown = other.images[0].get_array()
    if members.sum() > 8:  # a new draw shows other members
        assert not np.array_equal(shown, right.images[0].get_array())


def test_gmvae_explorer_spread_zero_decodes_the_component_mean(gmvae_setup):
    """With a mixture network that ignores w, spread 0 shows one image n times."""
    _, x_test, y_test, _ = gmvae_setup
    torch.manual_seed(2)
    model = GMVAE(y_dim=64, x_dim=3, w_dim=2, k=3, hidden=(16,))
    with torch.no_grad():
        model.beta[-1].weight.zero_()  # mu_k and sigma_k no longer depend on w
        mean = model.components(torch.zeros(1, 2)).mean[0]  # (k, x_dim)
        decoded = model.likelihood(mean).mean
    explorer = explorers.gmvae_component_explorer(model, x_test, y_test, n=8)
    for component in range(3):
        left = explorer.render(component=component, spread=0.0, seed=4).axes[0]
        expected = canvas(decoded[component].expand(8, -1))
        np.testing.assert_allclose(left.images[0].get_array(), expected, atol=1e-6)
    noisy = explorer.render(component=1, spread=1.0, seed=4).axes[0]
    assert not np.allclose(
        noisy.images[0].get_array(), canvas(decoded[1].expand(8, -1))
    )


def test_gmvae_explorer_leaves_the_global_random_streams_alone(gmvae_setup):
    *_, explorer = gmvae_setup
    torch.manual_seed(123)
    np.random.seed(123)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    explorer.png(component=8, spread=1.3, seed=9)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])


def test_gmvae_explorer_checks_its_arguments(gmvae_setup):
    model, x_test, y_test, _ = gmvae_setup
    with raises_naming("gmvae"):
        explorers.gmvae_component_explorer("model", x_test, y_test)
    with raises_naming("x_test"):
        explorers.gmvae_component_explorer(model, x_test[:, :10], y_test)
    with raises_naming("y_test"):
        explorers.gmvae_component_explorer(model, x_test, y_test[:-1])
    with raises_naming("n"):
        explorers.gmvae_component_explorer(model, x_test, y_test, n=0)


# -- dpmm ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dpmm_setup():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    noise = torch.randn(90, 2, generator=generator, dtype=torch.float64)
    x = centres.repeat(30, 1) + 0.5 * noise
    prior = dpmm.DPMMPrior(alpha=1.0, sigma=0.5, mean=x.mean(0), std=4.0)
    explorer = explorers.dpmm_explorer(x, prior, centres.numpy())
    return x, prior, explorer


def test_dpmm_explorer_refits_for_any_alpha_and_truncation(dpmm_setup):
    *_, explorer = dpmm_setup
    assert [p.name for p in explorer.params] == ["alpha", "T"]
    assert len(explorer.frames) == 12
    assert not any(c.continuous_update for c in explorer.controls.values())
    assert_live(explorer, alpha=2.7, T=9)


def test_dpmm_explorer_draws_the_cavi_fit(dpmm_setup):
    x, prior, explorer = dpmm_setup
    fit = dpmm.fit_dpmm(x, 9, prior._replace(alpha=2.7))
    left, right = explorer.render(alpha=2.7, T=9).axes
    bars = right.patches
    heights = np.array([bar.get_height() for bar in bars])
    np.testing.assert_allclose(heights, fit.weights.numpy(), rtol=1e-12)
    assert [bar.get_hatch() for bar in bars] == [None] * 8 + ["//"]
    owns = np.isin(np.arange(9), fit.q.resp.argmax(1).numpy())
    blue = [bar.get_facecolor() == to_rgba("C0") for bar in bars]
    assert blue == owns.tolist()  # grey for the components that own no point
    big = fit.weights > 0.01
    assert left.get_title() == f"α = 2.7, T = 9: {int(big.sum())} weights above 1%"
    circles = [(p.center, p.radius) for p in left.patches]
    assert len(circles) == int(big.sum())
    for (centre, radius), mean in zip(circles, fit.q.means[big].numpy(), strict=True):
        assert radius == pytest.approx(2 * prior.sigma)
        np.testing.assert_allclose(centre, mean)
    weights = sorted(float(t.get_text().split()[0]) for t in left.texts)
    np.testing.assert_allclose(weights, np.sort(fit.weights[big].numpy()), atol=0.005)
    assert right.get_title().startswith(f"{fit.n_iter} sweeps")


def test_dpmm_explorer_checks_its_arguments(dpmm_setup):
    x, prior, _ = dpmm_setup
    with raises_naming("x"):
        explorers.dpmm_explorer(torch.cat([x, x[:, :1]], 1), prior)
    with raises_naming("prior"):
        explorers.dpmm_explorer(x, (1.0, 0.5, x.mean(0), 4.0))
    with raises_naming("centres"):
        explorers.dpmm_explorer(x, prior, centres=np.zeros(3))


# -- sbvae -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gem():
    return explorers.sbvae_gem_explorer(truncation=12, draws=500)


def test_gem_explorer_recomputes_for_any_alpha0(gem):
    assert [p.name for p in gem.params] == ["alpha0"]
    assert gem.new_draw and len(gem.frames) == 8
    assert_live(gem, alpha0=4.2, seed=1)


def test_gem_explorer_bars_are_the_geometric_means_and_the_draws_agree(gem):
    alpha = 4.2
    ax = gem.render(alpha0=alpha, seed=3).axes[0]
    keep = alpha / (1 + alpha)
    k = np.arange(12)
    exact = (1 - keep) * keep**k
    exact[-1] = keep**11
    heights = np.array([bar.get_height() for bar in ax.patches])
    np.testing.assert_allclose(heights, exact, rtol=1e-12)
    mean_of_draws, one_draw = (line.get_ydata() for line in ax.lines)
    assert np.abs(mean_of_draws - exact).max() < 0.03  # about 4 SE for 500 draws
    assert one_draw.sum() == pytest.approx(1.0)
    n95 = next(n for n in range(1, 1000) if 1 - keep**n >= 0.95)
    assert ax.get_title() == f"α₀ = 4.2: 95% of the mass in {n95} sticks on average"
    other = gem.render(alpha0=alpha, seed=4).axes[0].lines[1].get_ydata()
    assert not np.allclose(other, one_draw)


def test_gem_explorer_leaves_the_global_random_stream_alone(gem):
    torch.manual_seed(5)
    np.random.seed(5)
    expected = torch.rand(2), np.random.rand(2)
    torch.manual_seed(5)
    np.random.seed(5)
    gem.png(alpha0=0.7, seed=11)
    assert torch.equal(torch.rand(2), expected[0])
    assert np.array_equal(np.random.rand(2), expected[1])


@pytest.fixture(scope="module")
def kl_explorer():
    return explorers.sbvae_kl_explorer(alpha0=5.0)


def test_kl_explorer_recomputes_for_any_a_b_and_terms(kl_explorer):
    assert [p.name for p in kl_explorer.params] == ["a", "b", "M"]
    assert len(kl_explorer.frames) == 12
    assert_live(kl_explorer, a=0.8, b=3.3, M=25)


def test_kl_explorer_at_a_1_is_the_beta_kl(kl_explorer):
    """Kumaraswamy(1, b) is Beta(1, b): densities and the exact KL in closed form."""
    b, M = 2.5, 40
    left, right = kl_explorer.render(a=1.0, b=b, M=M).axes
    v, density = left.lines[0].get_data()
    np.testing.assert_allclose(density, stats.beta(1, b).pdf(v), rtol=1e-9)
    np.testing.assert_allclose(left.lines[1].get_ydata(), stats.beta(1, 5).pdf(v))
    kl = D.kl_divergence(D.Beta(1.0, b), D.Beta(1.0, 5.0)).item()
    assert kl == pytest.approx(math.log(b / 5) - 1 + 5 / b, rel=1e-5)
    assert left.get_title() == f"Kumaraswamy(1, 2.5): KL = {kl:.4f}"
    exact = math.log(b / 5) - 1 + 5 / b
    terms, errors = right.lines[0].get_data()
    params = torch.tensor([1.0, b, 1.0, 5.0], dtype=torch.float64)
    series = [sb.kl_kumaraswamy_beta(*params, terms=int(m)).item() for m in terms]
    np.testing.assert_allclose(errors, exact - np.array(series), rtol=1e-6, atol=1e-10)
    marker = right.lines[-1]
    assert marker.get_xdata()[0] == M
    truncated = sb.kl_kumaraswamy_beta(*params, terms=M).item()
    assert marker.get_ydata()[0] == pytest.approx(exact - truncated, rel=1e-6)
    assert (
        right.get_title().startswith(f"M = {M}: ") and "too small" in right.get_title()
    )


def test_kl_explorer_error_falls_like_m_to_the_minus_b(kl_explorer):
    b = 1.5
    terms, errors = kl_explorer.render(a=0.7, b=b, M=10).axes[1].lines[0].get_data()
    large = terms >= 1000
    slope = np.polyfit(np.log(terms[large]), np.log(errors[large]), 1)[0]
    assert slope == pytest.approx(-b, abs=0.05)


def test_sbvae_explorers_check_their_arguments():
    with raises_naming("alpha0"):
        explorers.sbvae_kl_explorer(alpha0=0.0)
    with raises_naming("alpha0"):
        explorers.sbvae_kl_explorer(alpha0="5")
    with raises_naming("truncation"):
        explorers.sbvae_gem_explorer(truncation=1)
    with raises_naming("draws"):
        explorers.sbvae_gem_explorer(draws=1)
