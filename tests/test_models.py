"""Tests for vbtutor.models: exact marginals and posteriors, sampling, the PPCA MLE, the VAE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import (
    assert_within_se,
    draw_x,
    make_model,
    mean_and_se,
    raises_naming,
    to_numpy,
)
from scipy import integrate, stats
from sklearn.decomposition import PCA
from torch import distributions as D

from vbtutor.models import GMVAE, BernoulliVAE, GaussianVAE, LinearGaussian, ppca_mle


def numpy_params(model: LinearGaussian) -> tuple[np.ndarray, np.ndarray, float]:
    return to_numpy(model.W), to_numpy(model.b), model.sigma.item()


def scipy_log_joint(model: LinearGaussian, x: np.ndarray, z: np.ndarray) -> float:
    """log p(x|z) + log p(z) for one x and one z, with scipy.stats only."""
    W, b, sigma = numpy_params(model)
    return float(
        stats.norm.logpdf(x, W @ z + b, sigma).sum() + stats.norm.logpdf(z).sum()
    )


def joint_density(model: LinearGaussian, x: np.ndarray):
    """z -> p(x, z) for one fixed x, written out by hand (fast enough for quadrature)."""
    W, b, sigma = numpy_params(model)
    x_dim, z_dim = W.shape
    log_norm = -0.5 * x_dim * math.log(2 * math.pi * sigma**2) - 0.5 * z_dim * math.log(
        2 * math.pi
    )

    def density(*z: float) -> float:
        zz = np.array(z)
        r = x - W @ zz - b
        return math.exp(log_norm - 0.5 * (r @ r) / sigma**2 - 0.5 * (zz @ zz))

    return density


# --- LinearGaussian: exact marginal -------------------------------------------------------


@pytest.mark.parametrize("x_dim, sigma, seed", [(1, 1.0, 0), (3, 0.3, 1), (4, 2.0, 2)])
def test_log_marginal_equals_quadrature_over_1d_latent(x_dim, sigma, seed):
    model = make_model(x_dim=x_dim, z_dim=1, sigma=sigma, seed=seed)
    x = draw_x(model, 3, seed=seed)
    exact = model.log_marginal(x)
    for xi, log_px in zip(to_numpy(x), exact.tolist(), strict=True):
        # p(z) puts less than 1e-30 of its mass outside [-12, 12].
        value, error = integrate.quad(
            joint_density(model, xi),
            -12.0,
            12.0,
            epsabs=0.0,
            epsrel=1e-12,
            limit=200,
        )
        assert error < 1e-9 * value
        assert math.log(value) == pytest.approx(log_px, abs=1e-8)


def test_log_marginal_equals_quadrature_over_2d_latent():
    model = make_model(x_dim=3, z_dim=2, sigma=0.8, seed=4)
    x = draw_x(model, 1, seed=4)
    xi = to_numpy(x[0])
    density = joint_density(model, xi)
    value, error = integrate.dblquad(
        lambda z2, z1: density(z1, z2),
        -10.0,
        10.0,
        -10.0,
        10.0,
        epsabs=0.0,
        epsrel=1e-9,
    )
    assert error < 1e-8 * value
    assert math.log(value) == pytest.approx(model.log_marginal(x).item(), abs=1e-7)


def test_log_joint_equals_scipy_densities():
    model = make_model()
    x = draw_x(model, 4)
    z = torch.randn(5, 4, model.z_dim, dtype=torch.float64)
    got = model.log_joint(x, z)
    assert got.shape == (5, 4)
    expected = [
        [scipy_log_joint(model, to_numpy(x[i]), to_numpy(z[j, i])) for i in range(4)]
        for j in range(5)
    ]
    np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-12)


# --- LinearGaussian: exact posterior ------------------------------------------------------


@pytest.mark.parametrize("x_dim, z_dim", [(2, 1), (3, 2), (5, 3)])
def test_posterior_is_bayes_rule(x_dim, z_dim):
    """log p(x, z) - log p(x) = log p(z | x) at arbitrary z (Bayes' rule, exactly)."""
    model = make_model(x_dim=x_dim, z_dim=z_dim, sigma=0.5, seed=x_dim)
    x = draw_x(model, 4)
    z = 2.0 * torch.randn(
        6, 4, z_dim, dtype=torch.float64
    )  # far from the posterior too
    post = model.posterior(x)
    assert post.batch_shape == (4,) and post.event_shape == (z_dim,)
    lhs = model.log_joint(x, z) - model.log_marginal(x)
    torch.testing.assert_close(post.log_prob(z), lhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x_dim, z_dim", [(2, 1), (4, 2), (6, 3)])
def test_posterior_equals_gaussian_conditioning_in_x_space(x_dim, z_dim):
    """The z-space formula (M = W^T W + s^2 I) agrees with conditioning the joint Gaussian."""
    model = make_model(x_dim=x_dim, z_dim=z_dim, sigma=0.7, seed=10 + x_dim)
    x = draw_x(model, 3)
    W, b, s2 = to_numpy(model.W), to_numpy(model.b), model.sigma.item() ** 2
    C = W @ W.T + s2 * np.eye(x_dim)  # Cov[x]; Cov[z, x] = W^T
    mean = np.linalg.solve(C, (to_numpy(x) - b).T).T @ W  # rows: W^T C^{-1} (x - b)
    cov = np.eye(z_dim) - W.T @ np.linalg.solve(C, W)
    post = model.posterior(x)
    np.testing.assert_allclose(to_numpy(post.mean), mean, rtol=1e-10, atol=1e-12)
    for i in range(3):
        np.testing.assert_allclose(to_numpy(post.covariance_matrix[i]), cov, atol=1e-12)


def test_posterior_of_a_single_observation_has_empty_batch_shape():
    model = make_model()
    x = draw_x(model, 1)[0]
    post = model.posterior(x)
    assert post.batch_shape == () and post.event_shape == (model.z_dim,)
    assert model.log_marginal(x).shape == ()


# --- LinearGaussian: sampling -------------------------------------------------------------


def test_sample_moments_match_marginal():
    model = make_model(x_dim=3, z_dim=2, sigma=0.6, seed=5)
    n = 20_000
    x = to_numpy(model.sample(n, torch.Generator().manual_seed(0)))
    assert x.shape == (n, 3)
    marginal = model.marginal()
    mean, mean_se = mean_and_se(x)
    assert_within_se(mean, marginal.mean, mean_se)
    centred = x - x.mean(0)
    products = (
        centred[:, :, None] * centred[:, None, :]
    )  # (n, D, D): one term per sample
    cov, cov_se = mean_and_se(products)
    assert_within_se(cov, marginal.covariance_matrix, cov_se)


def test_sample_is_reproducible_with_a_generator():
    model = make_model()
    a = model.sample(7, torch.Generator().manual_seed(3))
    b = model.sample(7, torch.Generator().manual_seed(3))
    c = model.sample(7, torch.Generator().manual_seed(4))
    assert a.dtype == torch.float64 and a.shape == (7, model.x_dim)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not a.requires_grad


def test_random_is_deterministic_in_seed():
    a, b, c = make_model(seed=0), make_model(seed=0), make_model(seed=1)
    assert torch.equal(a.W, b.W) and torch.equal(a.b, b.b)
    assert not torch.equal(a.W, c.W)
    assert a.sigma.item() == pytest.approx(0.6, rel=1e-15)


# --- ppca_mle -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ppca_data():
    truth = make_model(x_dim=5, z_dim=2, sigma=0.5, seed=3)
    x = truth.sample(2_000, torch.Generator().manual_seed(0))
    return truth, x


def _total_log_likelihood(model: LinearGaussian, x: torch.Tensor) -> float:
    with torch.no_grad():
        return model.log_marginal(x).sum().item()


def _perturbed(model: LinearGaussian, what: str) -> LinearGaussian:
    g = torch.Generator().manual_seed(7)
    W, b, sigma = model.W.detach(), model.b.detach(), model.sigma.detach()
    if what == "W":
        W = W + 0.05 * torch.randn(W.shape, generator=g, dtype=W.dtype)
    elif what == "b":
        b = b + 0.05 * torch.randn(b.shape, generator=g, dtype=b.dtype)
    elif what == "sigma_up":
        sigma = sigma * 1.05
    elif what == "sigma_down":
        sigma = sigma * 0.95
    return LinearGaussian(W, b, sigma)


def test_ppca_mle_beats_the_true_parameters(ppca_data):
    truth, x = ppca_data
    fitted = ppca_mle(x, z_dim=2)
    assert _total_log_likelihood(fitted, x) > _total_log_likelihood(truth, x)


@pytest.mark.parametrize("what", ["W", "b", "sigma_up", "sigma_down"])
def test_ppca_mle_beats_perturbed_models(ppca_data, what):
    _, x = ppca_data
    fitted = ppca_mle(x, z_dim=2)
    assert _total_log_likelihood(fitted, x) > _total_log_likelihood(
        _perturbed(fitted, what), x
    )


def test_ppca_mle_is_a_stationary_point(ppca_data):
    _, x = ppca_data
    fitted = ppca_mle(x, z_dim=2)
    fitted.log_marginal(x).sum().backward()
    # The total log-likelihood sums n terms of order one; in float64 its gradient at the
    # optimum is zero up to rounding, far below 1e-8 per data point.
    for name, p in fitted.named_parameters():
        assert p.grad.abs().max().item() < 1e-8 * x.shape[0], name


def test_ppca_mle_is_invariant_to_latent_rotation(ppca_data):
    _, x = ppca_data
    fitted = ppca_mle(x, z_dim=2)
    angle = 0.7
    R = torch.tensor(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]],
        dtype=torch.float64,
    )
    rotated = LinearGaussian(
        fitted.W.detach() @ R, fitted.b.detach(), fitted.sigma.detach()
    )
    ll, ll_rot = _total_log_likelihood(fitted, x), _total_log_likelihood(rotated, x)
    assert ll_rot == pytest.approx(ll, rel=1e-12)


@pytest.mark.parametrize("z_dim", [1, 2, 3, 4])
def test_ppca_mle_covariance_is_the_top_d_reconstruction(ppca_data, z_dim):
    _, x = ppca_data
    fitted = ppca_mle(x, z_dim=z_dim)
    data = to_numpy(x)
    n, x_dim = data.shape
    centred = data - data.mean(0)
    evals, evecs = np.linalg.eigh(centred.T @ centred / n)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    U = evecs[:, :z_dim]
    sigma2 = evals[z_dim:].mean()
    expected = U @ np.diag(evals[:z_dim]) @ U.T + sigma2 * (np.eye(x_dim) - U @ U.T)
    W = to_numpy(fitted.W)
    got = W @ W.T + fitted.sigma.item() ** 2 * np.eye(x_dim)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(to_numpy(fitted.b), data.mean(0), atol=1e-14)
    assert fitted.sigma.item() ** 2 == pytest.approx(sigma2, rel=1e-12)
    # scikit-learn's PCA is the same probabilistic PCA, with the n - 1 normaliser.
    pca = PCA(n_components=z_dim).fit(data)
    np.testing.assert_allclose(got, pca.get_covariance() * (n - 1) / n, atol=1e-10)


# --- BernoulliVAE -------------------------------------------------------------------------


@pytest.fixture
def vae():
    return BernoulliVAE(x_dim=12, z_dim=3, hidden=(8,)).double()


def test_vae_shapes(vae):
    x = torch.bernoulli(torch.full((4, 12), 0.5, dtype=torch.float64))
    q = vae.encode(x)
    assert q.batch_shape == (4,) and q.event_shape == (3,)
    z = q.rsample((5,))
    assert z.shape == (5, 4, 3)
    assert vae.log_joint(x, z).shape == (5, 4)
    probs = vae.sample(6)
    assert probs.shape == (6, 12)
    assert bool(((probs > 0) & (probs < 1)).all())


def test_vae_log_joint_equals_bernoulli_and_normal_log_densities(vae):
    x = torch.bernoulli(torch.full((4, 12), 0.5, dtype=torch.float64))
    z = torch.randn(5, 4, 3, dtype=torch.float64)
    with torch.no_grad():
        p = torch.sigmoid(vae.decoder(z)).numpy()
    xn, zn = x.numpy(), z.numpy()
    expected = (xn * np.log(p) + (1 - xn) * np.log1p(-p)).sum(-1) + stats.norm.logpdf(
        zn
    ).sum(-1)
    np.testing.assert_allclose(to_numpy(vae.log_joint(x, z)), expected, rtol=1e-10)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.0, -1.0, math.nan, math.inf])
def test_non_positive_or_non_finite_sigma_is_rejected(sigma):
    with raises_naming("sigma"):
        LinearGaussian(torch.ones(3, 2, dtype=torch.float64), torch.zeros(3), sigma)


def test_nan_in_W_is_rejected():
    W = torch.ones(3, 2, dtype=torch.float64)
    W[1, 0] = math.nan
    with raises_naming("W"):
        LinearGaussian(W, torch.zeros(3, dtype=torch.float64), 1.0)


@pytest.mark.parametrize("W", [torch.ones(3), [[1.0, 0.0]]], ids=["1-d", "list"])
def test_W_must_be_a_matrix_tensor(W):
    with raises_naming("W"):
        LinearGaussian(W, torch.zeros(3), 1.0)


@pytest.mark.parametrize(
    "b", [torch.zeros(4), torch.zeros(3, 1)], ids=["length", "2-d"]
)
def test_wrong_b_shape_is_rejected(b):
    with raises_naming("b"):
        LinearGaussian(torch.ones(3, 2), b, 1.0)


def test_model_rejects_mismatched_x_and_z():
    model = make_model(x_dim=3, z_dim=2)
    x = draw_x(model, 4)
    with raises_naming("x"):
        model.log_marginal(torch.zeros(4, 5, dtype=torch.float64))
    with raises_naming("x"):
        model.posterior(torch.zeros(4, 2, dtype=torch.float64))
    with raises_naming("z"):
        model.log_joint(x, torch.zeros(4, 3, dtype=torch.float64))
    bad = x.clone()
    bad[0, 0] = math.nan
    with raises_naming("x"):
        model.log_marginal(bad)


@pytest.mark.parametrize("n", [0, 2.0, True])
def test_sample_rejects_bad_n(n):
    with raises_naming("n"):
        make_model().sample(n)


@pytest.mark.parametrize("argument", ["x_dim", "z_dim"])
def test_random_rejects_bad_dimensions(argument):
    sizes = {"x_dim": 3, "z_dim": 2, argument: 0}
    with raises_naming(argument):
        LinearGaussian.random(**sizes)


@pytest.mark.parametrize("z_dim", [5, 6, 0])
def test_ppca_mle_rejects_bad_z_dim(ppca_data, z_dim):
    _, x = ppca_data  # x has 5 columns
    with raises_naming("z_dim"):
        ppca_mle(x, z_dim=z_dim)


def test_ppca_mle_rejects_bad_x(ppca_data):
    _, x = ppca_data
    with raises_naming("x"):
        ppca_mle(x[0], z_dim=1)
    bad = x.clone()
    bad[3, 2] = math.nan
    with raises_naming("x"):
        ppca_mle(bad, z_dim=1)


@pytest.mark.parametrize("argument", ["x_dim", "z_dim"])
def test_vae_rejects_bad_dimensions(argument):
    sizes = {"x_dim": 4, "z_dim": 2, argument: 0}
    with raises_naming(argument):
        BernoulliVAE(**sizes, hidden=(3,))


def test_vae_rejects_x_of_the_wrong_width(vae):
    with raises_naming("x"):
        vae.log_joint(torch.zeros(2, 11, dtype=torch.float64), torch.zeros(2, 3))


# --- GaussianVAE -------------------------------------------------------------------------


def test_gaussian_vae_likelihood_is_squared_error_plus_constant():
    torch.manual_seed(0)
    vae = GaussianVAE(x_dim=5, z_dim=2, hidden=(4,), sigma=0.3).double()
    z, x = torch.randn(3, 2, dtype=torch.float64), torch.rand(3, 5, dtype=torch.float64)
    x_hat = vae.decode(z)
    expected = stats.norm(to_numpy(x_hat), 0.3).logpdf(to_numpy(x)).sum(-1)
    np.testing.assert_allclose(
        to_numpy(vae.likelihood(z).log_prob(x)), expected, rtol=1e-12
    )
    assert bool(((x_hat > 0) & (x_hat < 1)).all())  # the sigmoid keeps means in (0, 1)


@pytest.mark.parametrize("sigma", [0.0, -1.0, math.nan])
def test_gaussian_vae_rejects_bad_sigma(sigma):
    with raises_naming("sigma"):
        GaussianVAE(x_dim=5, z_dim=2, hidden=(4,), sigma=sigma)


def test_vae_samples_are_decoded_prior_draws():
    vae = GaussianVAE(x_dim=5, z_dim=2, hidden=(4,), sigma=0.3)
    torch.manual_seed(1)
    samples = vae.sample(4)
    torch.manual_seed(1)
    expected = vae.decode(vae.prior().sample((4,)))
    torch.testing.assert_close(samples, expected.detach())


# --- GMVAE -----------------------------------------------------------------------------


@pytest.fixture
def gmvae():
    torch.manual_seed(0)
    return GMVAE(y_dim=6, x_dim=3, w_dim=2, k=4, hidden=(5,)).double()


def test_gmvae_cluster_posterior_is_bayes_rule_against_scipy(gmvae):
    x, w = (
        torch.randn(3, 3, dtype=torch.float64),
        torch.randn(3, 2, dtype=torch.float64),
    )
    comps = gmvae.components(w)
    mean, std = to_numpy(comps.base_dist.loc), to_numpy(comps.base_dist.scale)
    dens = np.stack(
        [
            [
                stats.multivariate_normal(mean[n, k], np.diag(std[n, k] ** 2)).pdf(
                    to_numpy(x[n])
                )
                for k in range(4)
            ]
            for n in range(3)
        ]
    )
    expected = dens / dens.sum(1, keepdims=True)
    np.testing.assert_allclose(
        to_numpy(gmvae.cluster_posterior(x, w)), expected, rtol=1e-10
    )


def test_gmvae_middle_terms_add_up_to_the_mixture_log_ratio(gmvae):
    y = torch.bernoulli(torch.full((5, 6), 0.4, dtype=torch.float64))
    torch.manual_seed(3)
    terms = gmvae.elbo_terms(y)
    torch.manual_seed(3)
    q_x, q_w = gmvae.encode(y)
    x, w = q_x.rsample(), q_w.rsample()
    log_mix = torch.logsumexp(
        gmvae.components(w).log_prob(x.unsqueeze(-2)), -1
    ) - math.log(4)
    torch.testing.assert_close(
        terms["conditional_prior"] + terms["z_prior"], log_mix - q_x.log_prob(x)
    )


def test_gmvae_elbo_is_a_lower_bound_on_the_evidence(gmvae):
    """The ELBO (mean of the four terms over many draws) is below an importance-sampled
    log p(y); both have standard errors, and the bound holds by more than 4 of them."""
    y = torch.bernoulli(torch.full((1, 6), 0.4, dtype=torch.float64))
    ys = y.expand(20_000, 6)
    elbo_draws = sum(gmvae.elbo_terms(ys).values())
    q_x, q_w = gmvae.encode(ys)
    x, w = q_x.sample(), q_w.sample()
    log_mix = torch.logsumexp(
        gmvae.components(w).log_prob(x.unsqueeze(-2)), -1
    ) - math.log(4)
    prior_w = D.Independent(D.Normal(torch.zeros(2, dtype=torch.float64), 1.0), 1)
    log_w = (
        gmvae.likelihood(x).log_prob(ys)
        + log_mix
        + prior_w.log_prob(w)
        - q_x.log_prob(x)
        - q_w.log_prob(w)
    ).detach()
    elbo, elbo_se = mean_and_se(elbo_draws)
    ratio = torch.exp(log_w - log_w.max())
    log_py = (log_w.max() + ratio.mean().log()).item()
    log_py_se = (ratio.std() / ratio.mean()).item() / math.sqrt(len(ratio))
    assert log_py - elbo > 4 * math.hypot(elbo_se, log_py_se)


def test_gmvae_samples_come_from_the_requested_component(gmvae):
    torch.manual_seed(4)
    samples = gmvae.sample(7, component=2)
    assert samples.shape == (7, 6) and bool(((samples > 0) & (samples < 1)).all())
    with raises_naming("component"):
        gmvae.sample(3, component=4)


@pytest.mark.parametrize("k", [1, 0])
def test_gmvae_needs_two_components(k):
    with raises_naming("k"):
        GMVAE(y_dim=6, x_dim=3, w_dim=2, k=k)


def test_gmvae_rejects_y_of_the_wrong_width(gmvae):
    with raises_naming("y"):
        gmvae.elbo_terms(torch.zeros(2, 5, dtype=torch.float64))


@pytest.mark.parametrize("sigma", [1e-3, 1e-6, 1e-8])
def test_log_marginal_is_exact_at_tiny_noise(sigma):
    # issue 16, D6: through the D x D covariance, log p(x) lost all precision as
    # sigma -> 0 (off by 5e-4 at 1e-6, a failed Cholesky at 1e-8); the reference is
    # the same formula in 50-digit arithmetic
    mpmath = pytest.importorskip("mpmath")
    model = LinearGaussian.random(5, 2, sigma=sigma, seed=0)
    x = model.sample(4, torch.Generator().manual_seed(1))
    mpmath.mp.dps = 50
    W = mpmath.matrix(model.W.detach().tolist())
    cov = W * W.T + mpmath.mpf(sigma) ** 2 * mpmath.eye(5)
    for row, got in zip(x.tolist(), model.log_marginal(x).tolist(), strict=True):
        r = mpmath.matrix(row) - mpmath.matrix(model.b.detach().tolist())
        quad = (r.T * mpmath.lu_solve(cov, r))[0]
        exact = (
            -(5 * mpmath.log(2 * mpmath.pi) + mpmath.log(mpmath.det(cov)) + quad) / 2
        )
        # x itself is stored to ~1e-16: its part off W's span (size sigma) is known
        # only to ~1e-16 / sigma relative, and the quadratic form inherits that
        assert got == pytest.approx(float(exact), rel=0, abs=max(1e-9, 3e-14 / sigma))


def test_ppca_mle_on_noise_free_data_names_x():
    # issue 16, D6: the error blamed "sigma", an argument the caller never passed
    x = torch.randn(50, 2, dtype=torch.float64) @ torch.randn(2, 4, dtype=torch.float64)
    with raises_naming("x"):
        ppca_mle(x, z_dim=2)
