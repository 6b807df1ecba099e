"""Tests for vbtutor.explorers.foundations: the iwae explorer recomputes off its frames.

Every factory is built on small inputs; its controls are moved to values that are not
among the precomputed frames, and the figure shown must be a fresh render for exactly
those values. The figures' contents are checked against independent computations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_live, raises_naming
from torch import distributions as D

from vbtutor import explorers
from vbtutor.distributions import weight_second_moment
from vbtutor.models import LinearGaussian


@pytest.fixture(scope="module")
def iwae_setup():
    torch.set_default_dtype(torch.float64)
    model = LinearGaussian.random(x_dim=4, z_dim=2, sigma=0.7, seed=1)
    x = model.sample(1, torch.Generator().manual_seed(0))[0]
    explorer = explorers.iwae_explorer(model, x, replicates=40)
    yield model, x, explorer
    torch.set_default_dtype(torch.float32)


def test_iwae_explorer_recomputes_for_any_k_and_width(iwae_setup):
    _, _, explorer = iwae_setup
    assert [p.name for p in explorer.params] == ["k", "width"]
    assert explorer.new_draw and len(explorer.frames) == 15
    assert_live(explorer, k=37, width=0.8)


def test_iwae_explorer_lines_are_log_px_the_draws_mean_and_the_exact_elbo(iwae_setup):
    model, x, explorer = iwae_setup
    fig = explorer.render(k=3, width=1.2, seed=4)
    log_px, mean, elbo = (line.get_xdata()[0] for line in fig.axes[0].lines)
    post = model.posterior(x)
    sd = post.covariance_matrix.diagonal().sqrt()
    q = D.MultivariateNormal(post.mean + sd, torch.diag((1.2 * sd) ** 2))
    exact_log_px = model.log_marginal(x).item()
    assert log_px == pytest.approx(exact_log_px, abs=1e-12)
    assert elbo == pytest.approx(exact_log_px - D.kl_divergence(q, post).item())
    assert elbo < mean < log_px + 0.5  # 40 draws of IWAE_3 average above the ELBO


def test_iwae_explorer_states_when_the_weight_variance_is_infinite(iwae_setup):
    model, x, explorer = iwae_setup
    post = model.posterior(x)
    sd = post.covariance_matrix.diagonal().sqrt()
    for width in (0.5, 2.0):
        q = D.MultivariateNormal(post.mean + sd, torch.diag((width * sd) ** 2))
        variance = weight_second_moment(post, q) - 1
        title = explorer.render(k=10, width=width, seed=0).axes[1].get_title()
        if math.isfinite(variance):
            assert title == f"Var[w/p] = {variance:.2f}: gap ~ 1/k"
        else:
            assert title == "Var[w/p] is infinite: no 1/k rate"
    assert weight_second_moment(
        post, D.MultivariateNormal(post.mean, post.covariance_matrix)
    ) == (pytest.approx(1.0))


def test_iwae_explorer_gaps_match_the_asymptote_at_large_k(iwae_setup):
    """For k >= 500 the gap is Var[w/p]/(2k) up to O(1/k^2) terms (a few per cent)."""
    model, x, explorer = iwae_setup
    width = 2.0
    right = explorer.render(k=10, width=width, seed=0).axes[1]
    ks, gaps = right.lines[0].get_xdata(), right.lines[0].get_ydata()
    segments = right.containers[0].lines[2][0].get_segments()
    se = np.array([(top[1] - bottom[1]) / 4 for bottom, top in segments])
    post = model.posterior(x)
    sd = post.covariance_matrix.diagonal().sqrt()
    q = D.MultivariateNormal(post.mean + sd, torch.diag((width * sd) ** 2))
    asymptote = (weight_second_moment(post, q) - 1) / (2 * ks)
    large = ks >= 500
    assert large.sum() == 4
    error = np.abs(gaps - asymptote)[large]
    assert np.all(error < 4 * se[large] + 0.05 * asymptote[large]), (error, se[large])


def test_iwae_explorer_leaves_the_global_random_stream_alone(iwae_setup):
    _, _, explorer = iwae_setup
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    explorer.png(k=21, width=1.7, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_iwae_explorer_needs_one_observation(iwae_setup):
    model, x, _ = iwae_setup
    with raises_naming("x"):
        explorers.iwae_explorer(model, x.expand(2, -1))


# --- mle_latent -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mle_explorer():
    torch.set_default_dtype(torch.float64)
    yield explorers.mle_latent_explorer(x_dim=6, budget=20_000)
    torch.set_default_dtype(torch.float32)


def test_mle_latent_explorer_recomputes_for_any_d_and_k(mle_explorer):
    assert [p.name for p in mle_explorer.params] == ["d", "k"]
    assert_live(mle_explorer, d=5, k=37)


def test_mle_latent_errors_agree_with_the_naive_estimator_of_bounds():
    """The explorer's errors and bounds.naive_log_marginal estimate the same bias."""
    from vbtutor import bounds
    from vbtutor.explorers.foundations import _naive_errors

    torch.set_default_dtype(torch.float64)
    d, k, n = 3, 50, 4000
    errors, ess = _naive_errors(d, k, n, seed=1, x_dim=6, loading=0.5)
    g = torch.Generator().manual_seed(d)
    model = LinearGaussian(0.5 * torch.randn(6, d, generator=g), torch.zeros(6), 1.0)
    x = model.sample(10, g).repeat(n // 10, 1)
    torch.manual_seed(7)
    with torch.no_grad():
        other = bounds.naive_log_marginal(model, x, k).value - model.log_marginal(x)
    torch.set_default_dtype(torch.float32)
    se = math.sqrt(errors.var() / n + other.var().item() / n)
    assert abs(errors.mean() - other.mean().item()) < 4 * se
    assert np.all((1 <= ess) & (ess <= k))


def test_mle_latent_histogram_mean_line_is_the_mean_error(mle_explorer):
    from vbtutor.explorers.foundations import _naive_errors

    fig = mle_explorer.render(d=4, k=100, seed=3)
    zero, mean = (line.get_xdata()[0] for line in fig.axes[0].lines)
    errors, _ = _naive_errors(4, 100, 200, seed=3 + 4, x_dim=6, loading=0.5)
    assert zero == 0 and mean == pytest.approx(errors.mean())


# --- elbo -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def elbo_setup():
    torch.set_default_dtype(torch.float64)
    model = LinearGaussian.random(x_dim=5, z_dim=2, sigma=0.5, seed=0)
    x = model.sample(1, torch.Generator().manual_seed(1))[0]
    with torch.no_grad():
        post, log_px = model.posterior(x), model.log_marginal(x).item()
    yield post, log_px, explorers.elbo_explorer(post, log_px)
    torch.set_default_dtype(torch.float32)


def test_elbo_explorer_recomputes_for_any_scale_and_shift(elbo_setup):
    _, _, explorer = elbo_setup
    assert_live(explorer, scale=0.7, shift=-1.3)


def test_elbo_explorer_bars_add_the_closed_form_kl_to_the_elbo(elbo_setup):
    post, log_px, explorer = elbo_setup
    scale, shift = 1.8, 0.6
    sd = post.covariance_matrix.diagonal().sqrt()
    q = D.MultivariateNormal(
        post.mean + torch.tensor([shift * sd[0], 0.0]), torch.diag((scale * sd) ** 2)
    )
    kl = D.kl_divergence(q, post).item()
    elbo_bar, kl_bar = explorer.render(scale=scale, shift=shift).axes[1].patches
    assert kl_bar.get_height() == pytest.approx(kl, rel=1e-10)
    assert kl_bar.get_y() == pytest.approx(log_px - kl, rel=1e-10)


def test_elbo_explorer_needs_a_2d_posterior(elbo_setup):
    with raises_naming("posterior"):
        explorers.elbo_explorer(D.Normal(0.0, 1.0), 0.0)
