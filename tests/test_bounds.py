"""Tests for vbtutor.bounds: ELBO splits, IWAE_k and naive sampling against the exact log p(x)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import (
    as_mvn,
    assert_within_se,
    diag_gaussian,
    draw_x,
    make_model,
    mean_and_se,
    poor_proposal,
    raises_naming,
    to_numpy,
)
from scipy import special
from torch import distributions as D

from vbtutor import bounds, train
from vbtutor.models import BernoulliVAE

ESTIMATORS = [bounds.elbo, bounds.iwae]
SAMPLED = [bounds.log_weights, bounds.elbo, bounds.elbo_split_one, bounds.iwae]


@pytest.fixture
def model():
    return make_model(x_dim=3, z_dim=2, sigma=0.6, seed=2)


@pytest.fixture
def x(model):
    return draw_x(model, 4)


# --- the exact posterior is a zero-variance proposal --------------------------------------


@pytest.mark.parametrize("k", [1, 7])
def test_exact_posterior_makes_every_log_weight_equal_log_marginal(model, x, k):
    log_px = model.log_marginal(x)
    log_w = bounds.log_weights(model, model.posterior(x), x, k=k)
    assert log_w.shape == (k, 4)
    torch.testing.assert_close(log_w, log_px.expand(k, 4), rtol=0, atol=1e-10)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_exact_posterior_gives_log_marginal_with_zero_error(model, x, estimator):
    estimate = estimator(model, model.posterior(x), x, k=16)
    torch.testing.assert_close(
        estimate.value, model.log_marginal(x), rtol=0, atol=1e-10
    )
    assert estimate.se.abs().max().item() < 1e-10


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_single_draw_has_nan_standard_error(model, x, estimator):
    estimate = estimator(model, poor_proposal(model, x), x, k=1)
    assert estimate.value.shape == (4,)
    assert bool(torch.isnan(estimate.se).all())


# --- ELBO <= IWAE_k <= IWAE_k' <= log p(x) ------------------------------------------------


@pytest.fixture(scope="module")
def replicates():
    """Nested IWAE_k draws for one x: replicate r uses z[:k, r], so differences are paired."""
    torch.manual_seed(1)
    model = make_model(x_dim=3, z_dim=2, sigma=0.6, seed=2)
    x0 = draw_x(model, 1, seed=5)[0]
    q = poor_proposal(model, x0)  # batch shape (): shared by the replicates
    n_rep = 4_000
    x_rep = x0.expand(n_rep, model.x_dim)
    z = q.sample((16, n_rep))
    with torch.no_grad():
        values = {k: bounds.iwae(model, q, x_rep, z=z[:k]).value for k in (1, 4, 16)}
        values["elbo"] = bounds.elbo(model, q, x_rep, z=z[:1]).value
        return values, model.log_marginal(x0).item()


def test_iwae_1_is_the_elbo_draw_by_draw(replicates):
    values, _ = replicates
    torch.testing.assert_close(values[1], values["elbo"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("small, large", [("elbo", 4), (4, 16)])
def test_iwae_increases_in_expectation_with_k(replicates, small, large):
    values, _ = replicates
    gain, se = mean_and_se(values[large] - values[small])
    assert gain > 4 * se  # E[IWAE_large] - E[IWAE_small] > 0, significantly


@pytest.mark.parametrize("k", [1, 4, 16])
def test_iwae_is_below_log_marginal_in_expectation(replicates, k):
    values, log_px = replicates
    mean, se = mean_and_se(values[k])
    assert log_px - mean > 4 * se  # for this poor q the gap is significant at every k


# --- the gap identity: E[ELBO] = log p(x) - KL(q || p(z|x)) --------------------------------


def _gaussian_proposal(model, x, full_covariance: bool, shared: bool):
    """A poor Gaussian q: the posterior mean shifted by 0.7, a wrong (co)variance."""
    post = model.posterior(x)
    mean = post.mean + 0.7
    if full_covariance:
        L = torch.tensor([[1.3, 0.0], [0.8, 0.6]], dtype=torch.float64)
        return D.MultivariateNormal(mean[0] if shared else mean, scale_tril=L)
    std = 1.5 * post.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()
    return diag_gaussian(mean[0], std[0]) if shared else diag_gaussian(mean, std)


@pytest.mark.parametrize("shared", [True, False], ids=["q-batch-()", "q-batch-(n,)"])
@pytest.mark.parametrize("full_covariance", [False, True], ids=["diag-q", "full-q"])
def test_expected_elbo_is_log_marginal_minus_kl_to_posterior(
    model, x, shared, full_covariance
):
    q = _gaussian_proposal(model, x, full_covariance, shared)
    assert q.batch_shape == (() if shared else (4,))
    q_per_x = q.expand(x.shape[:-1])
    exact = model.log_marginal(x) - D.kl_divergence(as_mvn(q_per_x), model.posterior(x))
    estimate = bounds.elbo(model, q, x, k=20_000)
    assert_within_se(estimate.value, exact, estimate.se)


# --- split one and split three --------------------------------------------------------------


def test_split_one_has_the_same_expectation_as_split_two(model):
    """Paired on the same draw: split one - split two = log q(z) - log p(z) - KL(q || p)."""
    x0 = draw_x(model, 1, seed=6)[0]
    q = poor_proposal(model, x0)
    n_rep = 4_000
    x_rep = x0.expand(n_rep, model.x_dim)
    z = q.sample((1, n_rep))
    one = bounds.elbo_split_one(model, q, x_rep, z=z).value
    two = bounds.elbo(model, q, x_rep, z=z).value
    difference, se = mean_and_se(one - two)
    assert_within_se(difference, 0.0, se)


def test_split_one_estimates_log_marginal_minus_kl(model, x):
    q = poor_proposal(model, x)
    estimate = bounds.elbo_split_one(model, q, x, k=20_000)
    exact = model.log_marginal(x) - D.kl_divergence(as_mvn(q), model.posterior(x))
    assert_within_se(estimate.value, exact, estimate.se)


def test_split_one_terms_on_given_draws(model, x):
    q = poor_proposal(model, x)
    z = q.sample((6,))
    estimate = bounds.elbo_split_one(model, q, x, z=z)
    recon = to_numpy(model.likelihood(z).log_prob(x))
    kl = to_numpy(D.kl_divergence(q, model.prior()))
    np.testing.assert_allclose(to_numpy(estimate.value), recon.mean(0) - kl, rtol=1e-12)
    np.testing.assert_allclose(
        to_numpy(estimate.se), recon.std(0, ddof=1) / math.sqrt(6)
    )


def test_split_one_is_not_always_the_lower_variance_split():
    """At the exact posterior split two has zero variance but split one does not."""
    model = make_model(
        x_dim=3, z_dim=1, sigma=0.6, seed=8
    )  # 1-d posterior: diagonal is exact
    x = draw_x(model, 3)
    post = model.posterior(x)
    q = diag_gaussian(post.mean, post.covariance_matrix[..., 0].sqrt())
    two = bounds.elbo(model, q, x, k=500)
    one = bounds.elbo_split_one(model, q, x, k=500)
    assert two.se.max().item() < 1e-10
    assert bool((one.se > 1e-3).all())
    assert_within_se(one.value, model.log_marginal(x), one.se)


def test_split_three_equals_split_two_for_an_x_independent_q(model, x):
    q_z = diag_gaussian(torch.full((2,), 0.3, dtype=torch.float64), torch.ones(2) * 1.2)
    z = q_z.sample((9, 4))
    three = bounds.elbo_split_three(model, q_z, x, z=z)
    two = bounds.elbo(model, q_z, x, z=z)
    torch.testing.assert_close(three.value, two.value, rtol=0, atol=0)
    torch.testing.assert_close(three.se, two.se, rtol=0, atol=0)


@pytest.mark.parametrize("q_z", ["batched", "not-a-distribution"])
def test_split_three_requires_an_x_independent_q(model, x, q_z):
    q = poor_proposal(model, x) if q_z == "batched" else torch.zeros(2)
    with raises_naming("q_z"):
        bounds.elbo_split_three(model, q, x, k=3)


# --- naive prior sampling -------------------------------------------------------------------


@pytest.fixture
def naive_setup():
    model = make_model(x_dim=2, z_dim=1, sigma=1.0, seed=0)
    return model, draw_x(model, 1, seed=2)[0]


def test_naive_with_one_draw_estimates_expected_log_likelihood(naive_setup):
    """k = 1: E_{p(z)} log p(x|z) = -D/2 log(2 pi s^2) - (|x - b|^2 + ||W||_F^2) / (2 s^2)."""
    model, x0 = naive_setup
    W, b, s2 = to_numpy(model.W), to_numpy(model.b), model.sigma.item() ** 2
    r = to_numpy(x0) - b
    exact = -0.5 * len(b) * math.log(2 * math.pi * s2) - (r @ r + (W**2).sum()) / (
        2 * s2
    )
    n_rep = 20_000
    values = bounds.naive_log_marginal(model, x0.expand(n_rep, 2), k=1).value
    mean, se = mean_and_se(values)
    assert_within_se(mean, exact, se)
    assert model.log_marginal(x0).item() - mean > 4 * se  # Jensen: far below log p(x)


def test_naive_approaches_log_marginal_for_large_k(naive_setup):
    r"""With w = p(x|z), z ~ p(z), and rho = Var(w) / p(x)^2, the bias of log(mean of k weights)
    is rho / (2k) + O(k^-2) (second-order delta method). Here rho is exact:
    E[w^2] = (4 pi s^2)^(-D/2) N(x; b, W W^T + s^2/2 I). We allow 4 SE plus twice the leading
    bias, valid while rho / k << 1."""
    model, x0 = naive_setup
    W, b, s2 = model.W.detach(), model.b.detach(), model.sigma.item() ** 2
    eye = torch.eye(2, dtype=torch.float64)
    log_px = model.log_marginal(x0).item()
    log_ew2 = -math.log(4 * math.pi * s2) + D.MultivariateNormal(
        b, W @ W.T + s2 / 2 * eye
    ).log_prob(x0)
    rho = math.exp(log_ew2.item() - 2 * log_px) - 1
    k, n_rep = 2_000, 200
    assert 0 < rho / k < 0.01
    values = bounds.naive_log_marginal(model, x0.expand(n_rep, 2), k=k).value
    mean, se = mean_and_se(values)
    bias = log_px - mean
    assert -4 * se < bias < rho / k + 4 * se


# --- iwae's delta-method standard error and the other formulas on given draws -----------------


def test_estimates_on_given_draws_match_numpy(model, x):
    q = poor_proposal(model, x)
    z = q.sample((10,))
    log_w = to_numpy(model.log_joint(x, z) - q.log_prob(z))
    np.testing.assert_allclose(
        to_numpy(bounds.log_weights(model, q, x, z=z)), log_w, rtol=1e-14
    )
    e = bounds.elbo(model, q, x, z=z)
    np.testing.assert_allclose(to_numpy(e.value), log_w.mean(0), rtol=1e-13)
    np.testing.assert_allclose(
        to_numpy(e.se), log_w.std(0, ddof=1) / math.sqrt(10), rtol=1e-12
    )
    i = bounds.iwae(model, q, x, z=z)
    np.testing.assert_allclose(
        to_numpy(i.value), special.logsumexp(log_w, 0) - math.log(10), rtol=1e-13
    )
    w = np.exp(log_w)
    delta_se = w.std(0, ddof=1) / (math.sqrt(10) * w.mean(0))
    np.testing.assert_allclose(to_numpy(i.se), delta_se, rtol=1e-10)


@pytest.mark.parametrize("estimator", SAMPLED)
def test_given_draws_are_used(model, x, estimator):
    q = poor_proposal(model, x)
    z = q.sample((5,))
    first = estimator(model, q, x, z=z)
    second = estimator(model, q, x, z=z.clone())
    shifted = estimator(model, q, x, z=z + 0.5)
    first_value = first if isinstance(first, torch.Tensor) else first.value
    second_value = second if isinstance(second, torch.Tensor) else second.value
    shifted_value = shifted if isinstance(shifted, torch.Tensor) else shifted.value
    assert torch.equal(first_value, second_value)
    assert not torch.allclose(first_value, shifted_value)
    if estimator is bounds.log_weights:
        assert first.shape == (5, 4)  # all five draws, whatever the default k


# --- gradients (reparameterisation) -----------------------------------------------------------


@pytest.mark.parametrize("estimator", [bounds.elbo, bounds.elbo_split_one, bounds.iwae])
def test_gradients_flow_through_the_samples(model, x, estimator):
    """Internal draws give the same gradients as z = mu + sigma * eps built by hand."""
    start = poor_proposal(model, x)
    mu = torch.nn.Parameter(start.mean.clone())
    log_s = torch.nn.Parameter(start.stddev.log().clone())
    named = [*model.named_parameters(), ("mu", mu), ("log_s", log_s)]

    torch.manual_seed(11)
    estimator(model, diag_gaussian(mu, log_s.exp()), x, k=8).value.sum().backward()
    grads = {name: p.grad.clone() for name, p in named}
    for name, g in grads.items():
        assert bool(torch.isfinite(g).all()) and g.abs().max() > 0, name

    for _, p in named:
        p.grad = None
    torch.manual_seed(11)
    eps = torch.randn(8, *mu.shape, dtype=torch.float64)
    z = mu + log_s.exp() * eps
    estimator(model, diag_gaussian(mu, log_s.exp()), x, z=z).value.sum().backward()
    for name, p in named:
        torch.testing.assert_close(p.grad, grads[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("estimator", [bounds.elbo, bounds.elbo_split_one, bounds.iwae])
def test_reparameterised_gradients_match_finite_differences(model, x, estimator):
    """With the noise eps fixed, the estimate is a smooth function of q's parameters."""
    eps = torch.randn(4, 4, 2, dtype=torch.float64)
    start = poor_proposal(model, x)

    def objective(mu, log_s):
        q = diag_gaussian(mu, log_s.exp())
        return estimator(model, q, x, z=mu + log_s.exp() * eps).value

    mu = start.mean.clone().requires_grad_()
    log_s = start.stddev.log().clone().requires_grad_()
    assert torch.autograd.gradcheck(objective, (mu, log_s), eps=1e-6, atol=1e-6)


def test_vae_objectives_give_gradients_to_every_parameter():
    vae = BernoulliVAE(x_dim=10, z_dim=2, hidden=(6,)).double()
    x = torch.bernoulli(torch.full((5, 10), 0.4, dtype=torch.float64))
    for estimator in ESTIMATORS:
        vae.zero_grad()
        (-estimator(vae, vae.encode(x), x, k=3).value.mean()).backward()
        for name, p in vae.named_parameters():
            assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
            assert p.grad.abs().max() > 0, name


# --- log_mean_exp, effective sample size, subsets ---------------------------------------------


@pytest.mark.parametrize("offset", [-1e4, 0.0, 1e4, 1e300])
def test_log_mean_exp_is_stable_for_huge_values(offset):
    log_w = offset + torch.log(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    got = bounds.log_mean_exp(log_w).item()
    assert math.isfinite(got)
    assert got == pytest.approx(offset + math.log(2.0), rel=1e-15, abs=1e-11)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_log_mean_exp_matches_scipy(dim):
    log_w = 50 * torch.randn(5, 7, dtype=torch.float64)
    expected = special.logsumexp(log_w.numpy(), axis=dim) - math.log(log_w.shape[dim])
    np.testing.assert_allclose(
        to_numpy(bounds.log_mean_exp(log_w, dim)), expected, rtol=1e-14
    )


def test_log_mean_exp_handles_zero_weights():
    log_w = torch.tensor([-math.inf, 0.0, -math.inf, 0.0], dtype=torch.float64)
    assert bounds.log_mean_exp(log_w).item() == pytest.approx(math.log(0.5), rel=1e-15)


@pytest.mark.parametrize("k", [1, 5, 64])
@pytest.mark.parametrize("level", [-1000.0, 0.0, 1000.0])
def test_effective_sample_size_of_equal_weights_is_k(k, level):
    ess = bounds.effective_sample_size(torch.full((k,), level, dtype=torch.float64))
    assert ess.item() == pytest.approx(k, rel=1e-12)


@pytest.mark.parametrize("hot", [0, 3])
def test_effective_sample_size_of_one_hot_weights_is_one(hot):
    log_w = torch.full((5,), -math.inf, dtype=torch.float64)
    log_w[hot] = 700.0
    assert bounds.effective_sample_size(log_w).item() == pytest.approx(1.0, rel=1e-12)


def test_effective_sample_size_matches_kish_formula():
    log_w = torch.randn(3, 20, dtype=torch.float64)
    w = np.exp(log_w.numpy())
    expected = w.sum(1) ** 2 / (w**2).sum(1)
    got = bounds.effective_sample_size(log_w, dim=1)
    np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-12)


@pytest.mark.parametrize("m", [1, 2, 3, 5, 6])
def test_subset_log_means_average_back_to_the_full_average(m):
    k = 6
    log_w = 3 * torch.randn(k, 3, dtype=torch.float64)
    subsets = bounds.subset_log_means(log_w, m)
    assert subsets.shape == (math.comb(k, m), 3)
    full = bounds.log_mean_exp(log_w)
    torch.testing.assert_close(bounds.log_mean_exp(subsets), full, rtol=0, atol=1e-12)
    assert bool((subsets.mean(0) <= full + 1e-12).all())
    # Brute force, one subset at a time, in itertools' order.
    lw = log_w.numpy()
    expected = [
        special.logsumexp(lw[list(c)], 0) - math.log(m)
        for c in itertools.combinations(range(k), m)
    ]
    np.testing.assert_allclose(
        to_numpy(subsets), np.array(expected), rtol=1e-13, atol=1e-13
    )


def test_mean_subset_log_mean_increases_with_m():
    """The average over all m-subsets of log(mean weight) is nondecreasing in m (Burda et al.)."""
    log_w = 2 * torch.randn(7, 4, dtype=torch.float64)
    means = torch.stack(
        [bounds.subset_log_means(log_w, m).mean(0) for m in range(1, 8)]
    )
    assert bool((means.diff(dim=0) >= -1e-12).all())
    torch.testing.assert_close(means[0], log_w.mean(0))
    torch.testing.assert_close(means[-1], bounds.log_mean_exp(log_w))


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k", [0, -1, 1.5, True], ids=["0", "negative", "float", "bool"]
)
@pytest.mark.parametrize("estimator", SAMPLED + [bounds.elbo_split_three])
def test_bad_k_is_rejected(model, x, estimator, k):
    q = (
        model.prior()
        if estimator is bounds.elbo_split_three
        else poor_proposal(model, x)
    )
    with raises_naming("k"):
        estimator(model, q, x, k=k)


@pytest.mark.parametrize("k", [0, 2.5, True])
def test_naive_rejects_bad_k(model, x, k):
    with raises_naming("k"):
        bounds.naive_log_marginal(model, x, k=k)


@pytest.mark.parametrize("estimator", SAMPLED)
def test_nan_in_x_is_rejected(model, x, estimator):
    bad = x.clone()
    bad[1, 2] = math.nan
    with raises_naming("x"):
        estimator(model, poor_proposal(model, x), bad, k=2)


@pytest.mark.parametrize(
    "estimator",
    [
        bounds.log_weights,
        bounds.elbo,
        bounds.elbo_split_one,
        bounds.iwae,
    ],
)
def test_x_of_the_wrong_width_is_rejected(model, x, estimator):
    q = model.prior()  # x-independent, so only x's width is wrong
    with raises_naming("x"):
        estimator(model, q, torch.zeros(4, 5, dtype=torch.float64), k=2)


@pytest.mark.parametrize("estimator", SAMPLED)
def test_q_with_the_wrong_batch_shape_is_rejected(model, x, estimator):
    with raises_naming("q"):
        estimator(model, poor_proposal(model, x[:3]), x, k=2)
    with raises_naming("q"):
        estimator(model, "posterior", x, k=2)


@pytest.mark.parametrize(
    "z_shape",
    [(3, 5, 2), (3, 4, 3), (4, 2), (3, 4, 2, 1)],
    ids=["batch", "width", "rank", "extra"],
)
@pytest.mark.parametrize("estimator", SAMPLED)
def test_z_of_the_wrong_shape_is_rejected(model, x, estimator, z_shape):
    with raises_naming("z"):
        estimator(
            model,
            poor_proposal(model, x),
            x,
            z=torch.zeros(z_shape, dtype=torch.float64),
        )


@pytest.mark.parametrize(
    "log_w", [torch.tensor(1.0), torch.tensor([0.0, math.nan]), [0.0, 1.0]]
)
@pytest.mark.parametrize(
    "function",
    [bounds.log_mean_exp, bounds.effective_sample_size, bounds.subset_log_means],
)
def test_bad_log_weights_are_rejected(function, log_w):
    args = (log_w, 1) if function is bounds.subset_log_means else (log_w,)
    with raises_naming("log_w"):
        function(*args)


@pytest.mark.parametrize("m", [0, 5, 1.0, True])
def test_subset_log_means_rejects_bad_m(m):
    with raises_naming("m"):
        bounds.subset_log_means(torch.zeros(4, dtype=torch.float64), m)


def test_subset_log_means_refuses_too_many_subsets():
    with raises_naming("m"):
        bounds.subset_log_means(torch.zeros(30, dtype=torch.float64), 15)


# --- score-function surrogate ----------------------------------------------------------


def test_score_and_reparameterised_gradients_are_both_unbiased(model, x):
    """Both estimators of grad_phi ELBO average to the exact gradient of
    log p(x) - KL(q || posterior), differentiated in closed form (4 SE)."""
    post = model.posterior(x[:1])
    mean = (post.mean[0] + 0.4).clone().requires_grad_(True)
    log_std = (
        (0.5 * post.covariance_matrix[0].diagonal().log()).clone().requires_grad_(True)
    )

    def q():
        return diag_gaussian(mean, log_std.exp())

    cov = torch.diag_embed(q().base_dist.scale ** 2)
    exact_kl = D.kl_divergence(
        D.MultivariateNormal(q().mean, cov),
        D.MultivariateNormal(post.mean[0], post.covariance_matrix[0]),
    )
    exact = torch.cat(
        [g.flatten() for g in torch.autograd.grad(-exact_kl, [mean, log_std])]
    )
    x0 = x[0]
    for surrogate in (
        lambda: bounds.elbo(model, q(), x0).value,
        lambda: bounds.elbo_score_surrogate(model, q(), x0),
    ):
        draws = train.gradient_samples(surrogate, [mean, log_std], 4000)
        estimate, se = mean_and_se(draws)
        assert_within_se(estimate, exact.detach(), se)


def test_score_surrogate_has_the_value_of_the_elbo_estimate(model, x):
    q = poor_proposal(model, x)
    torch.manual_seed(7)
    value = bounds.elbo_score_surrogate(model, q, x, k=3)
    torch.manual_seed(7)
    z = q.sample((3,))
    expected = bounds.elbo(model, q, x, z=z).value
    torch.testing.assert_close(value, expected)


@pytest.mark.parametrize("k", [0, 1.5, True])
def test_score_surrogate_rejects_bad_k(model, x, k):
    with raises_naming("k"):
        bounds.elbo_score_surrogate(model, poor_proposal(model, x), x, k=k)


def test_effective_sample_size_of_no_weights_is_an_error():
    # issue 16, D9: an empty set of weights used to give NaN
    with raises_naming("log_w"):
        bounds.effective_sample_size(torch.zeros(0))
    with raises_naming("log_w"):
        bounds.effective_sample_size(torch.zeros(3, 0), dim=1)


def test_numpy_integers_are_accepted_as_k(model, x):
    # issue 16, D10: k = np.int64(5) was rejected as "not an int"
    q = model.posterior(x)
    torch.manual_seed(0)
    with_numpy = bounds.iwae(model, q, x, k=np.int64(5)).value
    torch.manual_seed(0)
    with_int = bounds.iwae(model, q, x, k=5).value
    torch.testing.assert_close(with_numpy, with_int)
    with raises_naming("k"):
        bounds.iwae(model, q, x, k=np.int64(0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_iwae_gap_far_below_the_marginal_stays_finite(dtype):
    # issue 16, D5: w_bar = exp(-120) underflows in float32 (and exp(-800) in float64),
    # and log(w_bar) was -inf with a NaN standard error
    depth = 120.0 if dtype == torch.float32 else 800.0
    log_w = torch.full((20, 10), -depth, dtype=dtype)
    log_w[0] += torch.linspace(0, 1, 10, dtype=dtype)  # replicates differ a little
    gap = bounds.iwae_gap(log_w, 0.0)
    assert torch.isfinite(gap.value) and torch.isfinite(gap.se)
    exact = -(
        bounds.log_mean_exp(log_w.double(), 0)
        - torch.expm1(bounds.log_mean_exp(log_w.double(), 0))
    ).mean()
    assert gap.value.item() == pytest.approx(exact.item(), rel=1e-5)


def test_elbo_split_one_takes_a_full_covariance_posterior(model, x):
    # issue 16, D1: torch has no KL(MultivariateNormal || Independent Normal), so the
    # exact posterior, which elbo and iwae accept, failed here
    post = model.posterior(x)
    torch.manual_seed(1)
    split = bounds.elbo_split_one(model, post, x, k=2000)
    exact = model.log_marginal(x)  # q = posterior: the ELBO is log p(x)
    assert_within_se(split.value, exact, split.se)


def test_elbo_split_one_without_a_closed_form_kl_names_q(model, x):
    mixture = D.MixtureSameFamily(
        D.Categorical(torch.ones(2, dtype=torch.float64)),
        D.Independent(D.Normal(torch.zeros(2, 2, dtype=torch.float64), 1.0), 1),
    )
    with raises_naming("q"):
        bounds.elbo_split_one(model, mixture, x[0], k=3)
