"""Tests for vbtutor.density_ratio: the classifier log-ratio, NCE and AVB's alternating loop.

Tolerances for fitted parameters come from the asymptotic covariance of the logistic
estimator, the inverse Hessian of the summed cross-entropy at the fit. With fixed class
sizes (as here) the true covariance is smaller still (Gutmann & Hyvärinen 2012, Thm. 3),
so the tests are conservative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import N_SE, flat_parameters, raises_naming
from scipy import integrate, stats
from torch import distributions as D
from torch import nn

from vbtutor.density_ratio import (
    NCE,
    UnnormalisedGaussian,
    discriminator,
    fit_log_ratio,
    fit_nce,
    log_ratio_loss,
    nce_asymptotic_covariance,
)
from vbtutor.nn import MLP, stack_networks

#: chi-square tail probability that matches N_SE standard errors in one dimension.
TAIL = 2 * stats.norm.sf(N_SE)


class Quadratic(nn.Module):
    """A linear model on the features (x_i, x_i x_j for i <= j) plus a bias."""

    def __init__(self, dim: int):
        super().__init__()
        self.rows, self.cols = torch.triu_indices(dim, dim)
        self.linear = nn.Linear(dim + len(self.rows), 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x[:, self.rows] * x[:, self.cols]], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x)).squeeze(-1)


def summed_loss(net: nn.Module, x_p, x_q):
    """The summed cross-entropy as a function of the flattened parameters."""
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]

    def total(flat: torch.Tensor) -> torch.Tensor:
        chunks = flat.split([math.prod(s) for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}

        def call(x):
            return torch.func.functional_call(net, params, (x,))

        return log_ratio_loss(call, x_p, x_q) * (len(x_p) + len(x_q))

    return total


def chi_square(net, x_p, x_q, truth: torch.Tensor) -> tuple[float, float]:
    """Mahalanobis distance^2 of the fit from ``truth`` and its N_SE-matched threshold."""
    total = summed_loss(net, x_p, x_q)
    hessian = torch.autograd.functional.hessian(total, flat_parameters(net))
    delta = flat_parameters(net) - truth
    return (delta @ hessian @ delta).item(), stats.chi2.isf(TAIL, len(truth))


def gaussian_pair(dim: int):
    g = torch.Generator().manual_seed(dim)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    b = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    p = D.MultivariateNormal(0.5 * torch.ones(dim, dtype=torch.float64), a @ a.T + dim)
    q = D.MultivariateNormal(torch.zeros(dim, dtype=torch.float64), b @ b.T + 2 * dim)
    return p, q


def exact_coefficients(net: Quadratic, p, q) -> torch.Tensor:
    """The weights and bias for which ``net`` is exactly log p/q (a quadratic)."""
    x = q.sample((200,))
    design = torch.cat([net.features(x), torch.ones(len(x), 1)], -1)
    target = (p.log_prob(x) - q.log_prob(x)).unsqueeze(-1)
    coef = torch.linalg.lstsq(design, target).solution.squeeze(-1)
    residual = design @ coef - target.squeeze(-1)
    assert residual.abs().max() < 1e-9  # the log-ratio of two Gaussians is quadratic
    return torch.cat([coef[:-1], coef[-1:]])  # order of net.parameters(): weight, bias


def test_loss_is_minimised_by_the_log_ratio_whatever_the_sample_sizes():
    """On a 3-point space with exact counts, the gradient vanishes at t = log p/q."""
    p = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    q = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    n_p, n_q = 10, 30  # nu = 3
    x_p = torch.repeat_interleave(torch.arange(3), (p * n_p).round().long())
    x_q = torch.repeat_interleave(torch.arange(3), (q * n_q).round().long())
    table = nn.Parameter((p / q).log())
    loss = log_ratio_loss(
        lambda x: table[x.squeeze(-1).long()],
        x_p.double().unsqueeze(-1),
        x_q.double().unsqueeze(-1),
    )
    (grad,) = torch.autograd.grad(loss, table)
    assert grad.abs().max() < 1e-12
    # without the class-prior correction the optimum would be log(p / (nu q)):
    assert (p / q).log().sub((p / (3 * q)).log()).abs().min() > 1


@pytest.mark.parametrize("dim, nu", [(1, 1), (1, 4), (2, 1), (2, 4)])
def test_learned_log_ratio_matches_the_gaussian_pair(dim, nu):
    p, q = gaussian_pair(dim)
    net = Quadratic(dim).double()
    truth = exact_coefficients(net, p, q)
    x_p, x_q = p.sample((1500,)), q.sample((1500 * nu,))
    fit_log_ratio(net, x_p, x_q, steps=600, lr=0.05, progress=False)
    distance, threshold = chi_square(net, x_p, x_q, truth)
    assert distance < threshold
    if nu > 1:  # the same fit without the log(nu) correction is rejected
        with torch.no_grad():
            net.linear.bias -= math.log(nu)
        assert chi_square(net, x_p, x_q, truth)[0] > threshold


def test_learned_log_ratio_agrees_with_scikit_learn():
    """Unpenalised logistic regression on the same features has the same optimum."""
    from sklearn.linear_model import LogisticRegression

    p, q = gaussian_pair(2)
    net = Quadratic(2).double()
    x_p, x_q = p.sample((1500,)), q.sample((1500,))
    fit_log_ratio(net, x_p, x_q, steps=600, lr=0.05, progress=False)
    x = torch.cat([x_p, x_q])
    y = np.r_[np.ones(len(x_p)), np.zeros(len(x_q))]
    clf = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000)
    clf.fit(net.features(x).numpy(), y)
    theirs = torch.tensor(np.r_[clf.coef_[0], clf.intercept_])
    total = summed_loss(net, x_p, x_q)
    hessian = torch.autograd.functional.hessian(total, flat_parameters(net))
    delta = flat_parameters(net) - theirs
    # the optimisation error is a small fraction of one standard error
    assert (delta @ hessian @ delta).item() < 0.1**2


def test_avb_critic_recovers_log_q_minus_log_prior():
    """Pairs (x, z ~ q(z|x)) against (x, z ~ p(z)): the critic learns log q(z|x) - log p(z)."""
    x = torch.randn(3000, 1, dtype=torch.float64)
    slope, scale = 0.8, 0.6

    def posterior(x):
        return D.Normal(slope * x, scale)

    prior = D.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    pairs_q = torch.cat([x, posterior(x).sample()], -1)
    pairs_p = torch.cat([x, prior.sample((3000, 1))], -1)
    net = Quadratic(2).double()
    grid = torch.randn(200, 2, dtype=torch.float64)
    design = torch.cat([net.features(grid), torch.ones(200, 1)], -1)
    xs, zs = grid[:, :1], grid[:, 1:]
    t_star = (posterior(xs).log_prob(zs) - prior.log_prob(zs)).squeeze(-1)
    truth = torch.linalg.lstsq(design, t_star.unsqueeze(-1)).solution.squeeze(-1)
    assert (design @ truth - t_star).abs().max() < 1e-9
    fit_log_ratio(net, pairs_q, pairs_p, steps=600, lr=0.05, progress=False)
    distance, threshold = chi_square(net, pairs_q, pairs_p, truth)
    assert distance < threshold


def test_minibatches_draw_nu_rows_of_q_per_row_of_p():
    calls = []

    def sampler(mean):
        def draw(n):
            calls.append((mean, n))
            return torch.full((n, 1), mean)

        return draw

    fit_log_ratio(
        nn.Linear(1, 1), sampler(1.0), sampler(0.0), 3, batch_size=5, nu=3,
        progress=False,
    )  # fmt: skip
    assert calls == [(1.0, 5), (0.0, 15)] * 3


def test_discriminator_is_p_over_p_plus_nu_q():
    p, q = D.Normal(0.0, 1.0), D.Normal(1.0, 2.0)
    x = torch.linspace(-40, 40, 81, dtype=torch.float64)
    for nu in (1.0, 5.0):
        d = discriminator(p.log_prob(x) - q.log_prob(x), nu)
        ratio = (q.log_prob(x) - p.log_prob(x)).exp()
        torch.testing.assert_close(d, 1 / (1 + nu * ratio))
        assert torch.isfinite(d).all() and (d >= 0).all() and (d <= 1).all()


def test_unnormalised_gaussian_normaliser_by_quadrature():
    f = UnnormalisedGaussian(2).double()
    with torch.no_grad():
        f.mean.copy_(torch.tensor([0.3, -0.5]))
        f.log_diag.copy_(torch.tensor([0.4, -0.2]))
        f.off_diag.copy_(torch.tensor([0.7]))

    def density(y, x):
        return f(torch.tensor([[x, y]], dtype=torch.float64)).exp().item()

    value, error = integrate.dblquad(density, -12, 12, -12, 12, epsabs=1e-11)
    assert abs(math.log(value) - f.log_normaliser().item()) < 1e-8
    assert error < 1e-8


def nce_problem(dim: int, nu: int, n: int = 2000):
    truth = UnnormalisedGaussian(dim).double()
    with torch.no_grad():
        truth.mean.copy_(torch.linspace(-0.5, 1.0, dim))
        truth.log_diag.copy_(torch.linspace(0.3, -0.2, dim))
        truth.off_diag.fill_(0.4)
    data = truth.normalised().sample((n,))
    noise = D.MultivariateNormal(
        torch.zeros(dim, dtype=torch.float64), 4 * torch.eye(dim, dtype=torch.float64)
    )
    model = NCE(UnnormalisedGaussian(dim).double(), noise).double()
    fit_nce(model, data, steps=600, nu=nu, lr=0.05, progress=False)
    return truth, data, model


@pytest.mark.parametrize("dim, nu", [(1, 1), (2, 5)])
def test_nce_recovers_the_model_and_its_normalising_constant(dim, nu):
    truth, data, model = nce_problem(dim, nu)
    noise = model.noise.sample((nu * len(data),))  # an independent noise sample
    total = summed_loss(model, data, noise)
    hessian = torch.autograd.functional.hessian(total, flat_parameters(model))
    covariance = torch.linalg.inv(hessian)
    c_star = -truth.log_normaliser().detach()
    theta_star = flat_parameters(NCE(truth, model.noise, c=c_star.item()))
    delta = flat_parameters(model) - theta_star
    assert (delta @ hessian @ delta).item() < stats.chi2.isf(TAIL, len(delta))
    c_se = covariance[-1, -1].sqrt()
    assert abs(model.c.item() - c_star.item()) < N_SE * c_se
    # self-normalisation: c + log Z(theta) = log of the model's total mass, near 0
    mass = model.c + model.log_unnormalised.log_normaliser()
    grads = torch.autograd.grad(mass, list(model.parameters()), materialize_grads=True)
    grad = torch.cat([g.flatten() for g in grads])
    assert abs(mass.item()) < N_SE * (grad @ covariance @ grad).sqrt()


def test_log_ratio_loss_takes_a_leading_copy_axis():
    """Stacked copies: one loss per copy, each that of the copy alone on its slice."""
    torch.manual_seed(3)
    nets = [MLP((2, 5, 1)) for _ in range(3)]
    x_p, x_q = torch.randn(3, 4, 2), torch.randn(3, 7, 2)
    per_copy = log_ratio_loss(stack_networks(nets), x_p, x_q)
    pairs = zip(nets, x_p, x_q, strict=True)
    alone = torch.stack([log_ratio_loss(n, p, q) for n, p, q in pairs])
    assert per_copy.shape == (3,)
    torch.testing.assert_close(per_copy, alone)


def test_bad_inputs_are_named():
    x = torch.randn(5, 2)
    net = nn.Linear(2, 1)
    with raises_naming("steps"):
        fit_log_ratio(net, x, x, steps=0)
    with raises_naming("batch_size"):
        fit_log_ratio(net, x, x, steps=1, batch_size=0)
    with raises_naming("sample_p"):
        fit_log_ratio(net, lambda n: x, x, steps=1)
    with raises_naming("nu"):
        fit_log_ratio(net, x, x, steps=1, nu=2)
    with raises_naming("nu"):
        fit_log_ratio(net, x, x, steps=1, batch_size=2, nu=0)
    with raises_naming("lr"):
        fit_log_ratio(net, x, x, steps=1, lr=-1.0)
    with raises_naming("x_q"):
        log_ratio_loss(net, x, torch.randn(5, 3))
    with raises_naming("net"):
        log_ratio_loss(lambda rows: torch.zeros(len(rows), 2), x, x)
    with raises_naming("nu"):
        discriminator(torch.zeros(3), nu=0.0)
    with raises_naming("dim"):
        UnnormalisedGaussian(0)
    with raises_naming("noise"):
        NCE(UnnormalisedGaussian(2), noise=D.Normal(0.0, 1.0))
    with raises_naming("model"):
        fit_nce(UnnormalisedGaussian(2), x, steps=1)
    with raises_naming("log_ratio"):
        nce_asymptotic_covariance(torch.ones(4, 1), torch.zeros(3), 2.0)
    with raises_naming("nu"):
        nce_asymptotic_covariance(torch.ones(4, 1), torch.zeros(4), 0.0)


def test_nce_asymptotic_covariance_matches_repeated_estimates():
    """Solve a 2-parameter NCE problem exactly (Newton) on many independent samples."""
    dt = torch.float64
    p_d = D.Normal(torch.tensor(0.0, dtype=dt), 1.0)
    q = D.Normal(torch.tensor(0.5, dtype=dt), 1.5)

    def features(x):  # log p_m = c - lam x^2 / 2, truth c = -log sqrt(2 pi), lam = 1
        return torch.stack([torch.ones_like(x), -0.5 * x**2], -1)

    truth = torch.tensor([-0.5 * math.log(2 * math.pi), 1.0], dtype=dt)
    n, nu, reps = 1000, 2, 1500
    x, y = p_d.sample((reps, n)), q.sample((reps, nu * n))
    fx, fy = features(x), features(y)
    ox, oy = -math.log(nu) - q.log_prob(x), -math.log(nu) - q.log_prob(y)
    beta = truth.repeat(reps, 1)
    for _ in range(10):  # Newton steps on the summed log-likelihood of the classifier
        score, hessian = 0.0, 0.0
        for f, offset, label in [(fx, ox, 1.0), (fy, oy, 0.0)]:
            logit = (f @ beta.unsqueeze(-1)).squeeze(-1) + offset
            prob = torch.sigmoid(logit)
            score = score + ((label - prob).unsqueeze(-1) * f).sum(1)
            hessian = hessian + (f * (prob * (1 - prob)).unsqueeze(-1)).mT @ f
        beta = beta + torch.linalg.solve(hessian, score)
    assert score.abs().max() < 1e-8
    empirical = beta.var(0)
    draws = p_d.sample((1_000_000,))
    log_ratio = p_d.log_prob(draws) - q.log_prob(draws)
    theory = nce_asymptotic_covariance(features(draws), log_ratio, nu).diagonal() / n
    se = theory * math.sqrt(2 / (reps - 1))  # standard error of a sample variance
    assert ((empirical - theory).abs() < N_SE * se).all()
    # without the (1 + 1/nu) term, the inverse information is far off for c
    g, weight = features(draws), torch.sigmoid(math.log(nu) - log_ratio)
    naive = torch.linalg.inv((g * weight.unsqueeze(-1)).mT @ g / len(g))[0, 0] / n
    assert (naive - empirical[0]).abs() > N_SE * se[0]
