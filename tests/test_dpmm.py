"""Tests for vbtutor.dpmm: stick expectations, the exact ELBO, CAVI and its limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_within_se, mean_and_se, raises_naming
from scipy.special import betaln, digamma, logsumexp, xlogy
from scipy.stats import multivariate_normal
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from torch import distributions as D

from vbtutor import dpmm

F64 = torch.float64


def blobs(n: int = 300, seed: int = 0, sigma: float = 0.6):
    centres = np.array([[-5.0, 0.0], [0.0, 4.0], [5.0, 0.0], [0.0, -4.0]])
    x, y = make_blobs(n, centers=centres, cluster_std=sigma, random_state=seed)
    return torch.tensor(x, dtype=F64), y


def prior_for(x: torch.Tensor, alpha: float = 1.0, sigma: float = 0.6, std=5.0):
    return dpmm.DPMMPrior(alpha, sigma, x.mean(0), std)


def random_q(n: int, t: int, d: int, seed: int = 0) -> dpmm.DPMMPosterior:
    """A valid q that is not a CAVI fixed point."""
    g = torch.Generator().manual_seed(seed)
    gamma1 = 0.5 + 3 * torch.rand(t - 1, generator=g, dtype=F64)
    gamma2 = 0.5 + 3 * torch.rand(t - 1, generator=g, dtype=F64)
    means = torch.randn(t, d, generator=g, dtype=F64)
    variances = 0.1 + torch.rand(t, generator=g, dtype=F64)
    resp = dpmm.init_responsibilities(n, t, g)
    return dpmm.DPMMPosterior(gamma1, gamma2, means, variances, resp)


def tiny_data(n: int = 6, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-1.5, 0.0], [1.5, 0.5]], dtype=F64)
    return centres[torch.arange(n) % 2] + 0.5 * torch.randn(
        n, 2, generator=g, dtype=F64
    )


# --- stick-breaking expectations (survey eqs. 47-49) ---------------------------------


def sampled_sticks(gamma1, gamma2, n=200_000):
    v = D.Beta(gamma1, gamma2).sample((n,))
    ones = v.new_ones(n, 1)
    log_pi = torch.log(torch.cat([v, ones], 1)) + torch.cat(
        [v.new_zeros(n, 1), torch.log1p(-v).cumsum(1)], 1
    )
    return v, log_pi


def test_stick_expectations_match_monte_carlo():
    gamma1 = torch.tensor([1.0, 2.5, 0.7, 4.0], dtype=F64)
    gamma2 = torch.tensor([3.0, 1.2, 2.0, 0.9], dtype=F64)
    e = dpmm.stick_expectations(gamma1, gamma2)
    v, log_pi = sampled_sticks(gamma1, gamma2)
    for samples, exact in [
        (v.log(), e.log_v),
        (torch.log1p(-v), e.log_1mv),
        (log_pi, e.log_pi),
    ]:
        mc, se = mean_and_se(samples)
        assert_within_se(mc, exact, se)
    assert e.log_pi.shape == (5,)


def test_expected_weights_sum_to_one_and_match_monte_carlo():
    gamma1 = torch.tensor([2.0, 1.0, 3.0], dtype=F64)
    gamma2 = torch.tensor([1.0, 4.0, 0.5], dtype=F64)
    w = dpmm.expected_weights(gamma1, gamma2)
    assert torch.isclose(w.sum(), torch.tensor(1.0, dtype=F64))
    _, log_pi = sampled_sticks(gamma1, gamma2)
    mc, se = mean_and_se(log_pi.exp())
    assert_within_se(mc, w, se)


def test_prior_weights_are_geometric_in_expectation():
    """Under Beta(1, alpha) sticks, E[pi_t] = alpha^(t-1) / (1 + alpha)^t for t < T."""
    alpha, t = 2.0, 6
    ones = torch.ones(t - 1, dtype=F64)
    w = dpmm.expected_weights(ones, alpha * ones)
    k = torch.arange(1, t, dtype=F64)
    assert torch.allclose(w[:-1], alpha ** (k - 1) / (1 + alpha) ** k)


def test_assignment_term_matches_survey_form_and_monte_carlo():
    """E_q[log p(z_n | v)] in the survey's form (eqs. 48-49), in sum_t phi_t E[log pi_t],
    and by sampling (z_n, v) from q."""
    gamma1 = torch.tensor([1.5, 0.8, 2.0], dtype=F64)
    gamma2 = torch.tensor([2.0, 1.1, 0.6], dtype=F64)
    phi = torch.tensor([0.1, 0.4, 0.2, 0.3], dtype=F64)
    e = dpmm.stick_expectations(gamma1, gamma2)
    beyond = phi.flip(0).cumsum(0).flip(0) - phi  # q(z > t) = sum_{j > t} phi_j
    survey = (beyond[:-1] * e.log_1mv).sum() + (phi[:-1] * e.log_v).sum()
    assert torch.isclose(survey, (phi * e.log_pi).sum())
    v, log_pi = sampled_sticks(gamma1, gamma2)
    z = D.Categorical(probs=phi).sample((v.shape[0],))
    mc, se = mean_and_se(log_pi.gather(1, z[:, None]).squeeze(1))
    assert_within_se(mc, survey, se)
    x = torch.zeros(1, 1, dtype=F64)
    q = dpmm.DPMMPosterior(
        gamma1,
        gamma2,
        torch.zeros(4, 1, dtype=F64),
        torch.ones(4, dtype=F64),
        phi[None],
    )
    prior = dpmm.DPMMPrior(1.0, 1.0, torch.zeros(1, dtype=F64), 1.0)
    assert torch.isclose(dpmm.elbo_terms(x, q, prior)["assignments"], survey)


# --- the ELBO --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_elbo_matches_monte_carlo(seed):
    x = tiny_data(8, seed=seed)
    q = random_q(8, 4, 2, seed=seed)
    prior = dpmm.DPMMPrior(1.5, 0.7, torch.zeros(2, dtype=F64), 2.0)
    estimate = dpmm.monte_carlo_elbo(x, q, prior, n=100_000)
    assert_within_se(estimate.value, dpmm.elbo(x, q, prior), estimate.se)


def test_enumerated_evidence_matches_monte_carlo_from_the_prior():
    """log p(x) by enumeration against the naive estimator E_prior[p(x | v, mu)]."""
    x = tiny_data(4, seed=5)
    t, prior = 2, dpmm.DPMMPrior(1.0, 1.0, torch.zeros(2, dtype=F64), 1.5)
    exact = dpmm.log_evidence_enumerated(x, t, prior)
    n = 400_000
    v = D.Beta(1.0, prior.alpha).sample((n, 1)).to(F64)
    pi = torch.cat([v, 1 - v], 1)
    mu = prior.std * torch.randn(n, t, 2, dtype=F64)
    lik = D.Independent(D.Normal(mu[:, None], prior.sigma), 1).log_prob(
        x[None, :, None]
    )
    log_w = torch.logsumexp(pi.log()[:, None] + lik, 2).sum(1)
    ratio = torch.exp(log_w - exact)  # p(x | v, mu) / p(x): mean 1
    mc, se = mean_and_se(ratio)
    assert_within_se(mc, 1.0, se)


@pytest.mark.parametrize("gap", [1e-9, 1e-6, 1e-3, 0.5])
def test_kl_of_the_means_is_accurate_when_q_is_close_to_the_prior(gap):
    """The "means" term is -sum_t KL(N(m_t, s_t^2 I) || N(m_0, s_0^2 I)). With the means at
    m_0 and s_t^2 = s_0^2 r, r about 1 - gap, it is -D T (r - 1 - log r) / 2, which the
    direct form loses to cancellation for a small gap; compared with 40-digit mpmath."""
    mpmath = pytest.importorskip("mpmath")
    x, t, s0 = tiny_data(4), 3, 2.0
    prior = dpmm.DPMMPrior(1.0, 0.5, x.mean(0), s0)
    variances = torch.full((t,), s0**2 * (1 - gap), dtype=F64)
    ones = torch.ones(t - 1, dtype=F64)
    resp = torch.full((4, t), 1 / t, dtype=F64)
    q = dpmm.DPMMPosterior(ones, ones, prior.mean.repeat(t, 1), variances, resp)
    mpmath.mp.dps = 40
    r = mpmath.mpf(variances[0].item()) / s0**2  # the ratio that was stored
    exact = -float(x.shape[1] * t * (r - 1 - mpmath.log(r)) / 2)
    got = dpmm.elbo_terms(x, q, prior)["means"].item()
    assert got == pytest.approx(exact, rel=1e-12, abs=0)


def test_elbo_is_below_the_exact_evidence():
    x, t = tiny_data(6), 3
    prior = dpmm.DPMMPrior(1.0, 0.5, torch.zeros(2, dtype=F64), 2.0)
    log_px = dpmm.log_evidence_enumerated(x, t, prior)
    fit = dpmm.fit_dpmm(x, t, prior, init="random", tol=1e-10)
    assert fit.elbo[-1] <= log_px
    for seed in range(3):
        assert dpmm.elbo(x, random_q(6, t, 2, seed), prior) < fit.elbo[-1]


def test_truncation_one_gives_the_exact_posterior_and_evidence():
    """With T = 1 the family contains the exact (conjugate) posterior: ELBO = log p(x)."""
    x = tiny_data(5)
    prior = dpmm.DPMMPrior(0.7, 0.8, torch.tensor([0.3, -0.2], dtype=F64), 1.7)
    n, d = x.shape
    cov = prior.sigma**2 * torch.eye(n, dtype=F64) + prior.std**2 * torch.ones(
        n, n, dtype=F64
    )
    per_coordinate = D.MultivariateNormal(prior.mean[:, None].expand(d, n), cov)
    exact = per_coordinate.log_prob(x.T).sum()
    fit = dpmm.fit_dpmm(x, 1, prior)
    assert torch.isclose(fit.elbo[-1], exact, rtol=0, atol=1e-10)
    assert torch.isclose(dpmm.log_evidence_enumerated(x, 1, prior), exact)


def test_small_alpha_limit_puts_every_point_in_one_cluster():
    """As alpha -> 0 the prior on z concentrates on one cluster: evidence -> T = 1's."""
    x = tiny_data(5)
    one = dpmm.log_evidence_enumerated(
        x, 1, dpmm.DPMMPrior(1.0, 0.8, x.new_zeros(2), 2.0)
    )
    tiny = dpmm.DPMMPrior(1e-9, 0.8, x.new_zeros(2), 2.0)
    assert torch.isclose(dpmm.log_evidence_enumerated(x, 3, tiny), one, atol=1e-6)


# --- the coordinate updates ------------------------------------------------------------


def test_updates_are_stationary_points_of_the_elbo():
    """Autograd: after each block update the ELBO's gradient in that block vanishes."""
    x = tiny_data(10)
    prior = dpmm.DPMMPrior(1.3, 0.6, torch.zeros(2, dtype=F64), 2.0)
    resp = random_q(10, 4, 2).resp
    gamma1, gamma2, means, variances = dpmm.update_globals(x, resp, prior)
    params = [
        p.clone().requires_grad_() for p in (gamma1, gamma2, means, variances.log())
    ]
    q = dpmm.DPMMPosterior(*params[:3], params[3].exp(), resp)
    grads = torch.autograd.grad(dpmm.elbo(x, q, prior), params)
    assert all(g.abs().max() < 1e-9 for g in grads)
    new = dpmm.update_responsibilities(x, gamma1, gamma2, means, variances, prior)
    logits = new.log().clone().requires_grad_()
    q = dpmm.DPMMPosterior(gamma1, gamma2, means, variances, torch.softmax(logits, 1))
    (grad,) = torch.autograd.grad(dpmm.elbo(x, q, prior), logits)
    assert grad.abs().max() < 1e-9


@pytest.mark.parametrize("alpha", [0.05, 1.0, 20.0])
@pytest.mark.parametrize("init", ["random", "kmeans"])
def test_elbo_never_decreases(alpha, init):
    x, _ = blobs(200, seed=1)
    fit = dpmm.fit_dpmm(x, 12, prior_for(x, alpha), init=init, tol=1e-8, max_iter=300)
    scale = fit.elbo.abs().max()
    assert bool((fit.elbo.diff() >= -1e-12 * scale).all())


# --- the vectorised sweep against a slow reference, and the stopping rule ---------------


def slow_sweep(x, phi, alpha, sigma, m0, s0):
    """One CAVI sweep and the ELBO of its result, written out with loops over points and
    components from the textbook formulas (Blei & Jordan 2006, eqs. 18-22)."""
    n, d = x.shape
    t_max = phi.shape[1]
    counts = [sum(phi[i, t] for i in range(n)) for t in range(t_max)]
    g1 = [1 + counts[t] for t in range(t_max - 1)]
    g2 = [alpha + sum(counts[t + 1 :]) for t in range(t_max - 1)]
    var = [1 / (1 / s0**2 + counts[t] / sigma**2) for t in range(t_max)]
    mean = [
        var[t] * (m0 / s0**2 + sum(phi[i, t] * x[i] for i in range(n)) / sigma**2)
        for t in range(t_max)
    ]
    e_log_v = [digamma(g1[t]) - digamma(g1[t] + g2[t]) for t in range(t_max - 1)]
    e_log_1mv = [digamma(g2[t]) - digamma(g1[t] + g2[t]) for t in range(t_max - 1)]
    e_log_pi = [
        (e_log_v[t] if t < t_max - 1 else 0.0) + sum(e_log_1mv[:t])
        for t in range(t_max)
    ]

    def e_log_lik(i, t):  # E_q log N(x_i | mu_t, sigma^2 I)
        sq = sum((x[i, k] - mean[t][k]) ** 2 for k in range(d)) + d * var[t]
        return -0.5 * d * np.log(2 * np.pi * sigma**2) - sq / (2 * sigma**2)

    new = np.zeros_like(phi)
    for i in range(n):
        logits = [e_log_pi[t] + e_log_lik(i, t) for t in range(t_max)]
        top = max(logits)
        weights = [np.exp(v - top) for v in logits]
        new[i] = [w / sum(weights) for w in weights]
    kl_v = sum(
        betaln(1, alpha) - betaln(g1[t], g2[t]) + (g1[t] - 1) * e_log_v[t]
        + (g2[t] - alpha) * e_log_1mv[t]
        for t in range(t_max - 1)
    )  # fmt: skip
    kl_mu = sum(
        np.log(s0 / np.sqrt(var[t]))
        + (var[t] + (mean[t][k] - m0[k]) ** 2) / (2 * s0**2) - 0.5
        for t in range(t_max) for k in range(d)
    )  # fmt: skip
    expected = sum(  # assignments + likelihood + entropy of q(z)
        new[i, t] * (e_log_pi[t] + e_log_lik(i, t)) - xlogy(new[i, t], new[i, t])
        for i in range(n) for t in range(t_max)
    )  # fmt: skip
    return (g1, g2, mean, var, new), expected - kl_v - kl_mu


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_sweeps_match_a_slow_reference(offset):
    """fit_dpmm's vectorised sweeps, and the ELBO it assembles from them, agree with the
    loops of slow_sweep to rounding, sweep after sweep (also far from the origin)."""
    x = tiny_data(12, seed=4) + offset
    alpha, sigma, s0 = 1.3, 0.6, 2.0
    prior = dpmm.DPMMPrior(alpha, sigma, x.mean(0), s0)
    phi = dpmm.init_responsibilities(12, 4, torch.Generator().manual_seed(2))
    fit = dpmm.fit_dpmm(x, 4, prior, max_iter=6, tol=0.0, init=phi)
    assert fit.n_iter == 6 and not fit.converged
    xs, phi, m0 = x.numpy(), phi.numpy(), prior.mean.numpy()
    for sweep in range(6):
        q, elbo = slow_sweep(xs, phi, alpha, sigma, m0, s0)
        phi = q[-1]
        assert fit.elbo[sweep].item() == pytest.approx(elbo, rel=1e-12)
    for mine, theirs in zip(fit.q, q, strict=True):
        np.testing.assert_allclose(
            mine.numpy(), np.array(theirs), rtol=1e-9, atol=1e-12
        )


def kmeans_start(x: torch.Tensor, t: int) -> torch.Tensor:
    labels = KMeans(t, n_init=1, random_state=0).fit_predict(x.numpy())
    return torch.nn.functional.one_hot(torch.as_tensor(labels).long(), t).to(x)


@pytest.mark.parametrize("start", ["random", "kmeans"])
def test_recorded_elbo_is_each_sweeps_elbo_and_never_decreases(start):
    """Replay the sweeps with the public updates: the ELBO that fit_dpmm records from inside
    the sweep equals dpmm.elbo (the five terms, computed separately) of each sweep's q, and
    it never decreases."""
    x, _ = blobs(200, seed=2)
    prior = prior_for(x, alpha=2.0)
    g = torch.Generator().manual_seed(0)
    resp = {
        "random": lambda: dpmm.init_responsibilities(200, 10, g),
        "kmeans": lambda: kmeans_start(x, 10),
    }[start]()
    fit = dpmm.fit_dpmm(x, 10, prior, init=resp, tol=1e-6, max_iter=200)
    assert fit.converged
    for recorded in fit.elbo:
        globals_ = dpmm.update_globals(x, resp, prior)
        resp = dpmm.update_responsibilities(x, *globals_, prior)
        q = dpmm.DPMMPosterior(*globals_, resp)
        assert recorded.item() == pytest.approx(
            dpmm.elbo(x, q, prior).item(), rel=1e-12
        )
    assert torch.allclose(fit.q.resp, resp, rtol=0, atol=1e-12)
    assert bool((fit.elbo.diff() >= -1e-12 * fit.elbo.abs().max()).all())


def test_stops_at_the_first_sweep_that_changes_the_elbo_by_less_than_tol():
    """The rule of scikit-learn's BayesianGaussianMixture: stop after sweep k >= 2 if
    |ELBO_k - ELBO_k-1| < tol, in nats for the whole data set (not per point)."""
    x, _ = blobs(300, seed=3)
    prior = prior_for(x)
    full = dpmm.fit_dpmm(x, 12, prior, tol=0.0, max_iter=150).elbo
    change = full.diff().abs()  # change[k] is the change made by sweep k + 2
    first = {}
    for tol in [10.0, 1.0, 0.1, 1e-3]:
        first[tol] = int(torch.nonzero(change < tol)[0]) + 2
        fit = dpmm.fit_dpmm(x, 12, prior, tol=tol, max_iter=150)
        assert fit.converged and fit.n_iter == first[tol], tol
        assert torch.equal(fit.elbo, full[: first[tol]])
    assert len(set(first.values())) == 4  # four different stopping sweeps
    short = first[1e-3] - 1
    late = dpmm.fit_dpmm(x, 12, prior, tol=1e-3, max_iter=short)
    assert not late.converged and late.n_iter == short
    loose = dpmm.fit_dpmm(x, 12, prior, tol=float("inf"))
    assert loose.converged and loose.n_iter == 2  # the first sweep has no change yet


def test_float32_fit_far_from_the_origin_matches_float64():
    """The sweep expands ||x - m||^2 into a matrix product; working around the prior mean
    keeps that accurate in float32 for data far from the origin."""
    x, labels = blobs(400, seed=4)
    x = x + 1e4
    init = kmeans_start(x, 8)
    fits = [
        dpmm.fit_dpmm(x.to(dtype), 8, prior_for(x.to(dtype)), init=init.to(dtype))
        for dtype in (torch.float32, F64)
    ]
    assert [dpmm.n_clusters(f.weights) for f in fits] == [4, 4]
    assert torch.equal(fits[0].q.resp.argmax(1), fits[1].q.resp.argmax(1))
    assert adjusted_rand_score(labels, fits[0].q.resp.argmax(1).numpy()) > 0.99


def test_fit_returns_ordinary_tensors():
    """fit_dpmm sweeps in inference mode; what it returns still works with autograd."""
    x = tiny_data(8)
    prior = dpmm.DPMMPrior(1.0, 0.5, torch.zeros(2, dtype=F64), 2.0)
    fit = dpmm.fit_dpmm(x, 3, prior)
    assert not any(t.is_inference() for t in (*fit.q, fit.elbo, fit.weights))
    assert fit.q.resp.is_contiguous()
    means = fit.q.means.requires_grad_()
    dpmm.elbo(x, fit.q._replace(means=means), prior).backward()
    assert torch.isfinite(means.grad).all()


def test_recovers_the_number_of_well_separated_clusters():
    x, labels = blobs(400)
    fit = dpmm.fit_dpmm(x, 20, prior_for(x))
    assert fit.converged and dpmm.n_clusters(fit.weights) == 4
    hard = fit.q.resp.argmax(1).numpy()
    assert adjusted_rand_score(labels, hard) > 0.99
    assert torch.isclose(fit.weights.sum(), torch.tensor(1.0, dtype=F64))


def test_mixture_log_density_agrees_with_scipy():
    g = np.random.default_rng(0)
    x = g.normal(size=(50, 2))
    w = np.array([0.2, 0.5, 0.3])
    means = g.normal(size=(3, 2))
    a = g.normal(size=(3, 2, 2))
    covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(2)
    dens = [
        multivariate_normal(m, c).logpdf(x) for m, c in zip(means, covs, strict=True)
    ]
    expected = logsumexp(np.log(w)[:, None] + np.array(dens), axis=0)
    mine = dpmm.mixture_log_density(
        *(torch.tensor(a, dtype=F64) for a in (x, w, means, covs))
    )
    np.testing.assert_allclose(mine.numpy(), expected, rtol=1e-12)


def test_n_clusters_counts_weights_above_the_threshold():
    w = torch.tensor([0.5, 0.3, 0.15, 0.04, 0.01])
    assert dpmm.n_clusters(w) == 4 and dpmm.n_clusters(w, threshold=0.1) == 3


# --- input checks ----------------------------------------------------------------------


def test_bad_gammas_are_rejected():
    good = torch.ones(3, dtype=F64)
    with raises_naming("gamma1"):
        dpmm.stick_expectations(torch.ones(2, dtype=F64), good)
    with raises_naming("gamma2"):
        dpmm.stick_expectations(good, torch.tensor([1.0, 0.0, 1.0], dtype=F64))
    with raises_naming("gamma1"):
        dpmm.expected_weights(good[:, None], good[:, None])


def test_bad_data_and_prior_are_rejected():
    x, _ = blobs(40)
    prior = prior_for(x)
    with raises_naming("x"):
        dpmm.fit_dpmm(x[:, 0], 5, prior)
    with raises_naming("x"):
        dpmm.fit_dpmm(torch.zeros(4, 2, dtype=torch.long), 5, prior)
    with raises_naming("truncation"):
        dpmm.fit_dpmm(x, 0, prior)
    with raises_naming("prior"):
        dpmm.fit_dpmm(x, 5, (1.0, 0.6, x.mean(0), 5.0))
    with raises_naming("alpha"):
        dpmm.fit_dpmm(x, 5, prior._replace(alpha=0.0))
    with raises_naming("sigma"):
        dpmm.fit_dpmm(x, 5, prior._replace(sigma=-1.0))
    with raises_naming("std"):
        dpmm.fit_dpmm(x, 5, prior._replace(std=float("inf")))
    with raises_naming("mean"):
        dpmm.fit_dpmm(x, 5, prior._replace(mean=torch.zeros(3, dtype=F64)))


def test_bad_fit_settings_are_rejected():
    x, _ = blobs(40)
    prior = prior_for(x)
    with raises_naming("max_iter"):
        dpmm.fit_dpmm(x, 5, prior, max_iter=0)
    with raises_naming("tol"):
        dpmm.fit_dpmm(x, 5, prior, tol=-1.0)
    with raises_naming("seed"):
        dpmm.fit_dpmm(x, 5, prior, seed=-2)
    with raises_naming("init"):
        dpmm.fit_dpmm(x, 5, prior, init="uniform")
    with raises_naming("init"):
        dpmm.fit_dpmm(x, 5, prior, init=torch.full((40, 4), 0.25, dtype=F64))
    with raises_naming("resp"):
        dpmm.fit_dpmm(x, 5, prior, init=torch.full((40, 5), 0.3, dtype=F64))


def test_bad_variational_parameters_are_rejected():
    x = tiny_data(6)
    prior = dpmm.DPMMPrior(1.0, 0.5, torch.zeros(2, dtype=F64), 2.0)
    q = random_q(6, 3, 2)
    with raises_naming("q"):
        dpmm.elbo(x, tuple(q), prior)
    with raises_naming("q"):
        dpmm.elbo(x, q._replace(means=torch.zeros(4, 2, dtype=F64)), prior)
    with raises_naming("variances"):
        dpmm.elbo(x, q._replace(variances=-q.variances), prior)
    with raises_naming("resp"):
        dpmm.update_globals(x, q.resp[:5], prior)
    with raises_naming("variances"):
        dpmm.update_responsibilities(
            x, q.gamma1, q.gamma2, q.means, 0 * q.variances, prior
        )
    with raises_naming("means"):
        dpmm.update_responsibilities(
            x, q.gamma1, q.gamma2, q.means[:2], q.variances, prior
        )
    with raises_naming("n"):
        dpmm.monte_carlo_elbo(x, q, prior, n=1)
    with raises_naming("truncation"):
        dpmm.log_evidence_enumerated(blobs(40)[0], 3, prior)
    with raises_naming("n"):
        dpmm.init_responsibilities(0, 3)


def test_bad_mixtures_are_rejected():
    x = torch.zeros(3, 2, dtype=F64)
    w, m, c = torch.tensor([0.5, 0.5]), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2)
    with raises_naming("weights"):
        dpmm.mixture_log_density(x, torch.tensor([0.5, 0.6]), m, c)
    with raises_naming("means"):
        dpmm.mixture_log_density(x, w, torch.zeros(3, 2), c)
    with raises_naming("covariances"):
        dpmm.mixture_log_density(x, w, m, torch.eye(2))
    with raises_naming("weights"):
        dpmm.n_clusters(w[:, None])
    with raises_naming("threshold"):
        dpmm.n_clusters(w, threshold=1.5)
