"""Tests for vbtutor.stick_breaking: Kumaraswamy, its KL to a Beta, stick weights, SB-VAE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_within_se, mean_and_se, raises_naming
from scipy import integrate, special, stats
from torch import distributions as D

from vbtutor import bounds
from vbtutor import stick_breaking as sb
from vbtutor.train import fit_vae

F64 = torch.float64
PARAMS = [(0.5, 0.5), (1.0, 1.0), (2.0, 3.0), (0.7, 2.0), (5.0, 0.4), (1.5, 10.0)]


def t64(*values: float) -> list[torch.Tensor]:
    return [torch.tensor(v, dtype=F64) for v in values]


def density(a: float, b: float):
    """The Kumaraswamy density written out with NumPy, for quadrature."""
    return lambda v: a * b * v ** (a - 1) * (1 - v**a) ** (b - 1)


def kl_by_quadrature(a: float, b: float, alpha: float, beta: float) -> float:
    """KL(Kumaraswamy || Beta) as an integral over the survival level s = 1 - F(v).

    With s uniform, v = (1 - s^(1/b))^(1/a), and log q(v) needs no power of (1 - v^a);
    written in log space, the integrand has only integrable log singularities.
    """

    def log_ratio(s: float) -> float:
        log_v = math.log1p(-(s ** (1 / b))) / a
        log_1mv = (
            math.log(-math.expm1(log_v))
            if log_v > -0.69
            else math.log1p(-math.exp(log_v))
        )
        log_q = math.log(a * b) + (a - 1) * log_v + (b - 1) / b * math.log(s)
        log_p = (alpha - 1) * log_v + (beta - 1) * log_1mv - special.betaln(alpha, beta)
        return log_q - log_p

    return integrate.quad(log_ratio, 0, 1, limit=500)[0]


# --- the Kumaraswamy distribution ------------------------------------------------------


@pytest.mark.parametrize("a, b", PARAMS)
def test_log_prob_matches_torch_and_integrates_to_one(a, b):
    q = sb.Kumaraswamy(*t64(a, b))
    v = torch.linspace(0.01, 0.99, 99, dtype=F64)
    reference = D.Kumaraswamy(*t64(a, b)).log_prob(v)
    torch.testing.assert_close(q.log_prob(v), reference, rtol=1e-9, atol=1e-9)
    total, _ = integrate.quad(density(a, b), 0, 1, limit=200)
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("a, b", PARAMS)
def test_cdf_is_the_integral_of_the_density_and_icdf_inverts_it(a, b):
    q = sb.Kumaraswamy(*t64(a, b))
    for v in (0.05, 0.3, 0.7, 0.95):
        integral, _ = integrate.quad(density(a, b), 0, v, limit=200)
        assert q.cdf(torch.tensor(v, dtype=F64)).item() == pytest.approx(
            integral, abs=1e-7
        )
    p = torch.linspace(0.01, 0.99, 50, dtype=F64)
    torch.testing.assert_close(q.cdf(q.icdf(p)), p, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("a, b", PARAMS)
def test_draws_follow_the_cdf_within_standard_errors(a, b):
    q = sb.Kumaraswamy(*t64(a, b))
    n = 40_000
    v = q.sample((n,))
    levels = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], dtype=F64)
    points = q.icdf(levels)
    empirical = (v.unsqueeze(-1) <= points).to(F64).mean(0)
    se = (levels * (1 - levels) / n).sqrt()  # binomial standard error at the exact CDF
    assert_within_se(empirical, levels, se)


@pytest.mark.parametrize("a, b", [(0.5, 0.5), (2.0, 3.0), (5.0, 0.4)])
def test_draws_equal_torch_draws_from_the_same_stream(a, b):
    torch.manual_seed(7)
    ours = sb.Kumaraswamy(*t64(a, b)).rsample((1000,))
    torch.manual_seed(7)
    theirs = D.Kumaraswamy(*t64(a, b)).rsample((1000,))
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)


def test_the_survey_sampler_is_the_inverse_cdf_of_one_minus_u():
    q = sb.Kumaraswamy(*t64(2.0, 3.0))
    u = torch.rand(100, dtype=F64)
    survey = (1 - u ** (1 / q.b)) ** (1 / q.a)
    torch.testing.assert_close(survey, q.icdf(1 - u))
    torch.testing.assert_close(q.cdf(survey), 1 - u)


@pytest.mark.parametrize("a, b", PARAMS)
def test_mean_variance_entropy_match_quadrature_and_torch(a, b):
    q = sb.Kumaraswamy(*t64(a, b))
    pdf = density(a, b)
    m1 = integrate.quad(lambda v: v * pdf(v), 0, 1, limit=200)[0]
    m2 = integrate.quad(lambda v: v * v * pdf(v), 0, 1, limit=200)[0]
    assert q.mean.item() == pytest.approx(m1, abs=1e-7)
    assert q.variance.item() == pytest.approx(m2 - m1**2, abs=1e-7)
    torch.testing.assert_close(q.entropy(), D.Kumaraswamy(*t64(a, b)).entropy())


@pytest.mark.parametrize("a, b", [(2.0, 3.0), (0.7, 2.0)])
def test_entropy_matches_monte_carlo(a, b):
    q = sb.Kumaraswamy(*t64(a, b))
    log_q = q.log_prob(q.sample((100_000,)))
    mean, se = mean_and_se(-log_q)
    assert_within_se(mean, q.entropy(), se)


@pytest.mark.parametrize(
    "make", [sb.Kumaraswamy, D.Kumaraswamy], ids=["vbtutor", "torch"]
)
def test_reparameterised_gradients_match_the_gradient_of_the_mean(make):
    """Per-draw derivatives dv/da, dv/db average to the derivatives of E[v]."""
    n = 50_000
    a = torch.full((n,), 2.0, dtype=F64, requires_grad=True)
    b = torch.full((n,), 3.0, dtype=F64, requires_grad=True)
    make(a, b).rsample().sum().backward()
    a0, b0 = (torch.tensor(x, dtype=F64, requires_grad=True) for x in (2.0, 3.0))
    grad_a, grad_b = torch.autograd.grad(sb.Kumaraswamy(a0, b0).mean, (a0, b0))
    for per_draw, exact in ((a.grad, grad_a), (b.grad, grad_b)):
        mean, se = mean_and_se(per_draw)
        assert_within_se(mean, exact, se)


def test_expand_and_batch_shapes():
    q = sb.Kumaraswamy(torch.tensor([1.0, 2.0], dtype=F64), 3.0)
    assert q.batch_shape == (2,)
    wide = q.expand((4, 2))
    assert wide.rsample((5,)).shape == (5, 4, 2)
    torch.testing.assert_close(wide.mean[0], q.mean)


def test_extreme_parameters_give_finite_draws_and_log_densities():
    q = sb.Kumaraswamy(*t64(50.0, 0.05))  # mass piled against v = 1
    v = q.rsample((10_000,))
    assert bool(((v > 0) & (v < 1)).all())
    assert bool(torch.isfinite(q.log_prob(v)).all())
    assert bool(torch.isfinite(D.Beta(*t64(1.0, 5.0)).log_prob(v)).all())


# --- the KL to a Beta ----------------------------------------------------------------


@pytest.mark.parametrize("a, b", [(2.0, 3.0), (0.7, 2.0), (1.5, 10.0), (1.0, 1.0)])
@pytest.mark.parametrize("alpha, beta", [(1.0, 5.0), (2.0, 2.0)])
def test_series_kl_matches_monte_carlo(a, b, alpha, beta):
    q, p = sb.Kumaraswamy(*t64(a, b)), D.Beta(*t64(alpha, beta))
    v = q.sample((200_000,))
    mean, se = mean_and_se(q.log_prob(v) - p.log_prob(v))
    assert_within_se(mean, sb.kl_kumaraswamy_beta(a, b, alpha, beta, terms=20_000), se)


@pytest.mark.parametrize("a, b", [(2.0, 3.0), (1.0, 1.0), (0.5, 0.5), (3.0, 0.3)])
def test_truncation_underestimates_and_the_error_shrinks_with_terms(a, b):
    """With beta > 1 every term adds to the KL: truncation underestimates it."""
    exact = kl_by_quadrature(a, b, 1.0, 5.0)
    errors = [
        exact - sb.kl_kumaraswamy_beta(a, b, 1.0, 5.0, terms=m).item()
        for m in (1, 3, 10, 30, 100, 1000)
    ]
    assert all(e > 0 for e in errors)
    assert all(e2 < e1 for e1, e2 in zip(errors[:-1], errors[1:], strict=True))


@pytest.mark.parametrize("a, b", [(2.0, 3.0), (1.0, 1.5), (0.7, 2.0)])
def test_series_converges_to_quadrature_within_its_tail_bound(a, b):
    """For b >= 1, B(m/a, b) <= a/m, so the neglected terms sum to at most ab/M."""
    terms, beta = 2000, 5.0
    exact = kl_by_quadrature(a, b, 1.0, beta)
    series = sb.kl_kumaraswamy_beta(a, b, 1.0, beta, terms=terms).item()
    assert 0 <= exact - series <= (beta - 1) * a * b / terms


def test_kl_is_zero_when_the_two_distributions_coincide():
    # Kumaraswamy(a, 1) = Beta(a, 1) exactly; Kumaraswamy(1, b) = Beta(1, b).
    assert sb.kl_kumaraswamy_beta(3.0, 1.0, 3.0, 1.0, terms=1).item() == pytest.approx(
        0.0, abs=1e-12
    )
    kl = sb.kl_kumaraswamy_beta(1.0, 4.0, 1.0, 4.0, terms=5000).item()
    assert abs(kl) < 1e-6


def test_kumaraswamy_one_b_against_torch_beta_kl():
    kl = sb.kl_kumaraswamy_beta(1.0, 2.0, 1.0, 5.0, terms=20_000)
    reference = D.kl_divergence(D.Beta(*t64(1.0, 2.0)), D.Beta(*t64(1.0, 5.0)))
    torch.testing.assert_close(kl.to(F64), reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("a, b", [*PARAMS, (50.0, 0.05), (0.05, 50.0)])
def test_quadrature_kl_matches_the_independent_quadrature(a, b):
    expected = kl_by_quadrature(a, b, 2.0, 5.0)
    assert sb.kl_kumaraswamy_beta_quad(a, b, 2.0, 5.0) == pytest.approx(
        expected, rel=1e-9
    )


@pytest.mark.parametrize("b, beta", [(2.0, 5.0), (0.3, 1.5), (4.0, 0.5)])
def test_quadrature_kl_of_kumaraswamy_one_b_is_a_beta_kl(b, beta):
    reference = D.kl_divergence(D.Beta(*t64(1.0, b)), D.Beta(*t64(1.0, beta)))
    assert sb.kl_kumaraswamy_beta_quad(1.0, b, 1.0, beta) == pytest.approx(
        reference.item(), abs=1e-9
    )


@pytest.mark.parametrize("a, b", [(0.5, 0.5), (3.0, 0.3)])
def test_quadrature_kl_matches_monte_carlo_where_the_series_is_slow(a, b):
    q, p = sb.Kumaraswamy(*t64(a, b)), D.Beta(*t64(1.0, 5.0))
    v = q.sample((200_000,))
    mean, se = mean_and_se(q.log_prob(v) - p.log_prob(v))
    assert_within_se(mean, sb.kl_kumaraswamy_beta_quad(a, b, 1.0, 5.0), se)


def test_registered_kl_uses_the_default_terms_and_broadcasts():
    a = torch.tensor([[2.0, 0.7], [1.5, 3.0]], dtype=F64)
    b = torch.tensor([[3.0, 2.0], [10.0, 1.0]], dtype=F64)
    p = D.Beta(torch.ones(2, dtype=F64), torch.full((2,), 5.0, dtype=F64))
    kl = D.kl_divergence(sb.Kumaraswamy(a, b), p)
    torch.testing.assert_close(kl, sb.kl_kumaraswamy_beta(a, b, 1.0, 5.0, sb.KL_TERMS))
    independent = D.kl_divergence(
        D.Independent(sb.Kumaraswamy(a, b), 1), D.Independent(p, 1)
    )
    torch.testing.assert_close(independent, kl.sum(-1))


def test_kl_gradients_are_finite():
    a, b = (torch.tensor(x, dtype=F64, requires_grad=True) for x in (0.8, 2.5))
    sb.kl_kumaraswamy_beta(a, b, 1.0, 5.0).backward()
    assert torch.isfinite(a.grad) and torch.isfinite(b.grad)


# --- stick breaking -----------------------------------------------------------------


def test_weights_sum_to_one_with_the_remainder():
    v = torch.rand(1000, 9, dtype=F64)
    pi = sb.stick_breaking(v)
    assert pi.shape == (1000, 10)
    assert bool((pi >= 0).all())
    torch.testing.assert_close(pi.sum(-1), torch.ones(1000, dtype=F64))
    broken_off = pi[:, :-1].sum(-1)
    torch.testing.assert_close(broken_off, 1 - torch.prod(1 - v, -1))
    assert bool((broken_off <= 1).all())
    torch.testing.assert_close(pi[:, 0], v[:, 0])


def test_each_weight_is_its_fraction_of_what_was_left():
    v = torch.rand(50, 5, dtype=F64)
    pi = sb.stick_breaking(v)
    left = 1 - torch.cumsum(pi, -1)[:, :-1]  # stick left after k breaks
    torch.testing.assert_close(pi[:, 1:-1] / left[:, :-1], v[:, 1:])


def test_expected_weights_under_the_gem_prior():
    alpha, k = 3.0, 6
    v = D.Beta(torch.tensor(1.0, dtype=F64), torch.tensor(alpha, dtype=F64)).sample(
        (100_000, k - 1)
    )
    mean, se = mean_and_se(sb.stick_breaking(v))
    assert_within_se(mean, sb.gem_mean(alpha, k), se)
    assert sb.gem_mean(alpha, k).sum().item() == pytest.approx(1.0)


def test_stick_breaking_gradients_match_finite_differences():
    v = (0.1 + 0.8 * torch.rand(3, 4, dtype=F64)).requires_grad_()
    assert torch.autograd.gradcheck(sb.stick_breaking, (v,))


# --- the stick-breaking VAE ----------------------------------------------------------


def small_sbvae(seed: int = 0) -> sb.StickBreakingVAE:
    torch.manual_seed(seed)
    return sb.StickBreakingVAE(x_dim=16, truncation=5, hidden=(8,), alpha0=3.0).double()


def binary_x(n: int = 6) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, 16), 0.4, dtype=F64))


def test_sbvae_log_joint_is_likelihood_plus_beta_prior():
    vae, x = small_sbvae(), binary_x()
    v = vae.encode(x).rsample((3,))
    assert v.shape == (3, 6, 4)
    prior = D.Beta(torch.tensor(1.0, dtype=F64), torch.tensor(3.0, dtype=F64))
    logits = vae.decoder(sb.stick_breaking(v))
    expected = D.Bernoulli(logits=logits).log_prob(x).sum(-1) + prior.log_prob(v).sum(
        -1
    )
    torch.testing.assert_close(vae.log_joint(x, v), expected)


def test_sbvae_bounds_are_ordered_on_the_same_draws():
    vae, x = small_sbvae(), binary_x()
    with torch.no_grad():
        q = vae.encode(x)
        v = q.sample((64,))
        lower = bounds.elbo(vae, q, x, z=v).value
        tighter = bounds.iwae(vae, q, x, z=v).value
    assert bool((lower <= tighter + 1e-12).all())


def test_sbvae_split_one_matches_split_two_within_standard_errors():
    """Split two minus split one, draw by draw, is log p(v) - log q(v) + KL: mean zero.

    The untrained encoder has b < 1, where the series converges slowly: the exact KL
    comes from quadrature here.
    """
    vae, x = small_sbvae(), binary_x(2)
    with torch.no_grad():
        q = vae.encode(x)
        a, b = q.base_dist.a.flatten().tolist(), q.base_dist.b.flatten().tolist()
        pairs = zip(a, b, strict=True)
        kl = torch.tensor([kl_by_quadrature(ai, bi, 1.0, 3.0) for ai, bi in pairs])
        v = q.sample((100_000,))
        log_w = vae.log_joint(x, v) - q.log_prob(v)
        difference = log_w - vae.likelihood(v).log_prob(x) + kl.reshape(2, 4).sum(-1)
    mean, se = mean_and_se(difference)
    assert_within_se(mean, np.zeros_like(mean), se)


def test_sbvae_iwae_agrees_with_prior_sampling():
    """The prior and the encoder are densities of the same v: both estimate log p(x)."""
    vae, x = small_sbvae(), binary_x(2)
    with torch.no_grad():
        q = vae.encode(x)
        via_q = bounds.log_weights(vae, q, x, k=200_000)
        via_prior = bounds.log_weights(vae, vae.prior(), x, k=200_000)
    w_q = torch.exp(via_q - via_q.max(0).values)
    w_p = torch.exp(via_prior - via_q.max(0).values)
    diff = w_q.mean(0) - w_p.mean(0)  # both estimate p(x) up to the same scale
    se = (w_q.var(0) / 200_000 + w_p.var(0) / 200_000).sqrt()
    assert_within_se(diff, torch.zeros_like(diff), se)


def test_sbvae_trains_with_fit_vae_and_samples():
    vae, x = small_sbvae(), binary_x(40)
    history = fit_vae(vae, x, steps=20, batch_size=10, record_every=5)
    assert len(history["kl"]) == 4 and all(np.isfinite(history["objective"]))
    assert vae.sample(3).shape == (3, 16)
    assert bool(((vae.sample(3) > 0) & (vae.sample(3) < 1)).all())


def test_sbvae_encoder_has_reparameterised_gradients():
    vae, x = small_sbvae(), binary_x()
    bounds.elbo(vae, vae.encode(x), x, k=2).value.sum().backward()
    grads = [p.grad for p in vae.encoder.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: sb.Kumaraswamy(0.0, 1.0), "a"),
        (lambda: sb.Kumaraswamy(1.0, -2.0), "b"),
        (lambda: sb.Kumaraswamy(float("nan"), 1.0), "a"),
        (lambda: sb.kl_kumaraswamy_beta(-1.0, 1.0, 1.0, 1.0), "a"),
        (lambda: sb.kl_kumaraswamy_beta(1.0, 0.0, 1.0, 1.0), "b"),
        (lambda: sb.kl_kumaraswamy_beta(1.0, 1.0, 0.0, 1.0), "alpha"),
        (lambda: sb.kl_kumaraswamy_beta(1.0, 1.0, 1.0, -3.0), "beta"),
        (lambda: sb.kl_kumaraswamy_beta(1.0, 1.0, 1.0, 1.0, terms=0), "terms"),
        (lambda: sb.kl_kumaraswamy_beta(1.0, 1.0, 1.0, 1.0, terms=2.5), "terms"),
        (lambda: sb.kl_kumaraswamy_beta_quad(0.0, 1.0, 1.0, 1.0), "a"),
        (lambda: sb.kl_kumaraswamy_beta_quad(1.0, -1.0, 1.0, 1.0), "b"),
        (lambda: sb.kl_kumaraswamy_beta_quad(1.0, 1.0, float("inf"), 1.0), "alpha"),
        (lambda: sb.kl_kumaraswamy_beta_quad(1.0, 1.0, 1.0, 0.0), "beta"),
        (lambda: sb.kl_kumaraswamy_beta_quad(torch.ones(2), 1.0, 1.0, 1.0), "a"),
        (lambda: sb.stick_breaking([0.5, 0.5]), "v"),
        (lambda: sb.stick_breaking(torch.tensor(0.5)), "v"),
        (lambda: sb.stick_breaking(torch.zeros(3, 0)), "v"),
        (lambda: sb.stick_breaking(torch.tensor([0.5, 1.5])), "v"),
        (lambda: sb.stick_breaking(torch.tensor([-0.1, 0.5])), "v"),
        (lambda: sb.stick_breaking(torch.tensor([float("nan")])), "v"),
        (lambda: sb.gem_mean(0.0, 5), "alpha"),
        (lambda: sb.gem_mean(1.0, 1), "truncation"),
        (lambda: sb.gem_mean(1.0, 3.0), "truncation"),
        (lambda: sb.StickBreakingVAE(16, truncation=1), "truncation"),
        (lambda: sb.StickBreakingVAE(16, truncation=4, alpha0=0.0), "alpha0"),
        (lambda: sb.StickBreakingVAE(0, truncation=4), "x_dim"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, name):
    with raises_naming(name):
        call()


def test_likelihood_rejects_the_wrong_latent_size():
    vae = small_sbvae()
    with raises_naming("v"):
        vae.likelihood(torch.rand(3, 5, dtype=F64))


def test_numpy_helpers_agree_with_scipy():
    """The test's own quadrature KL against scipy's Beta for Kumaraswamy(1, b) = Beta(1, b)."""
    exact = kl_by_quadrature(1.0, 2.0, 1.0, 5.0)
    p, q = stats.beta(1.0, 2.0), stats.beta(1.0, 5.0)
    direct = integrate.quad(lambda v: p.pdf(v) * (p.logpdf(v) - q.logpdf(v)), 0, 1)[0]
    assert exact == pytest.approx(direct, abs=1e-8)
