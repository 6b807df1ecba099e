"""Tests for vbtutor.diffusion: closed forms against iterated sampling, Bayes and the bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_within_se, mean_and_se, raises_naming, to_numpy
from scipy import stats
from torch import distributions as D

import vbtutor
from vbtutor import diffusion as dd
from vbtutor import flow_matching as vfm
from vbtutor import sde as vsde
from vbtutor.distributions import kl_diagonal_gaussian

F64 = torch.float64


@pytest.fixture
def schedule() -> dd.Schedule:
    return dd.linear_schedule(20, 1e-2, 0.3, dtype=F64)


def test_marginal_matches_iterated_chain(schedule):
    x0 = torch.tensor([[1.5, -2.0]], dtype=F64).expand(20_000, 2)
    path = dd.forward_chain(schedule, x0, torch.Generator().manual_seed(1))
    for t in (1, 5, 20):
        mean, var = dd.marginal(schedule, x0[:1], t)
        m, se = mean_and_se(path[t])
        assert_within_se(m, mean[0], se)
        centred = (path[t] - mean).pow(2)  # E = var, per coordinate
        v, v_se = mean_and_se(centred)
        assert_within_se(v, np.full(2, float(var)), v_se)


def test_q_sample_per_row_steps_match_scalar_step(schedule):
    x0, noise = torch.randn(4, 2, dtype=F64), torch.randn(4, 2, dtype=F64)
    t = torch.full((4,), 7)
    assert torch.allclose(
        dd.q_sample(schedule, x0, t, noise), dd.q_sample(schedule, x0, 7, noise)
    )


def test_posterior_is_bayes_on_gaussians(schedule):
    x0, xt = torch.randn(5, 3, dtype=F64), torch.randn(5, 3, dtype=F64)
    for t in (2, 9, 20):
        prior_mean, prior_var = dd.marginal(schedule, x0, t - 1)
        a, b = schedule.alphas[t], schedule.betas[t]
        var = 1 / (1 / prior_var + a / b)
        mean = var * (prior_mean / prior_var + a.sqrt() * xt / b)
        got_mean, got_var = dd.posterior(schedule, x0, xt, t)
        assert torch.allclose(got_mean, mean) and torch.allclose(got_var, var)


def test_mean_from_true_noise_is_posterior_mean(schedule):
    x0, eps = torch.randn(6, 2, dtype=F64), torch.randn(6, 2, dtype=F64)
    for t in (1, 4, 20):
        xt = dd.q_sample(schedule, x0, t, eps)
        assert torch.allclose(
            dd.mean_from_eps(schedule, xt, t, eps),
            dd.posterior(schedule, x0, xt, t)[0],
        )


def test_bound_is_expected_log_ratio_of_the_chains():
    s = dd.linear_schedule(5, 0.05, 0.4, dtype=F64)
    sigma2 = torch.linspace(0.05, 0.5, 6, dtype=F64)

    def mean_fn(x, t):
        return 0.8 * x + 0.1 * t

    x0 = 1.0 + 0.5 * torch.randn(40_000, 1, dtype=F64)
    bound = dd.variational_bound(s, x0, mean_fn, sigma2).total
    path = dd.forward_chain(s, x0)
    log_ratio = -D.Normal(0.0, 1.0).log_prob(path[-1]).sum(-1)
    for t in range(1, s.T + 1):
        rev = D.Normal(mean_fn(path[t], t), sigma2[t].sqrt())
        fwd = D.Normal(s.alphas[t].sqrt() * path[t - 1], s.betas[t].sqrt())
        log_ratio += (fwd.log_prob(path[t]) - rev.log_prob(path[t - 1])).sum(-1)
    est, se = mean_and_se(log_ratio)
    b, b_se = mean_and_se(bound)
    assert_within_se(est, b, math.hypot(se, b_se))


def test_kl_term_is_weighted_noise_error(schedule):
    x0, eps = torch.randn(8, 2, dtype=F64), torch.randn(8, 2, dtype=F64)
    eps_hat = torch.randn(8, 2, dtype=F64)
    t, sigma2 = 6, schedule.betas[6]
    xt = dd.q_sample(schedule, x0, t, eps)
    mu, var = dd.posterior(schedule, x0, xt, t)
    mu_hat = dd.mean_from_eps(schedule, xt, t, eps_hat)
    ones = torch.ones_like(mu)
    kl = kl_diagonal_gaussian(mu, var * ones, mu_hat, sigma2 * ones)
    a, ab, b = schedule.alphas[t], schedule.alpha_bar[t], schedule.betas[t]
    weight = b**2 / (2 * sigma2 * a * (1 - ab))
    const = (var / sigma2 - 1 - (var / sigma2).log()).item()  # d = 2 halves
    assert torch.allclose(kl, weight * (eps - eps_hat).pow(2).sum(-1) + const)


def test_reverse_mean_is_mean_from_eps_of_the_network(schedule):
    def net(x, t):
        return 0.5 * x + 0.01 * t.unsqueeze(-1)

    x = torch.randn(4, 2, dtype=F64)
    for t in (1, 7, 20):
        expected = dd.mean_from_eps(schedule, x, t, net(x, torch.full((4,), t)))
        torch.testing.assert_close(dd.reverse_mean(net, schedule)(x, t), expected)
    with raises_naming("t"):
        dd.reverse_mean(net, schedule)(x, 0)
    with raises_naming("net"):
        dd.reverse_mean("net", schedule)


def test_sampler_with_exact_noise_recovers_gaussian_data():
    s = dd.linear_schedule(1000, dtype=F64)
    m, sd = 1.0, 0.5

    def exact_eps(x, t):
        ab = s.alpha_bar[t[0]]
        return (1 - ab).sqrt() * (x - ab.sqrt() * m) / (ab * sd**2 + 1 - ab)

    x, kept = dd.ddpm_sample(exact_eps, s, 20_000, 1, torch.Generator().manual_seed(3))
    mean, se = mean_and_se(x[:, 0])
    assert_within_se(mean, m, se)
    v, v_se = mean_and_se((x[:, 0] - m) ** 2)
    assert_within_se(v, sd**2, v_se)
    assert kept == {}


def test_simple_loss_of_zero_net_is_expected_squared_noise(schedule):
    losses = torch.stack(
        [
            dd.simple_loss(
                lambda x, t: torch.zeros_like(x), schedule, torch.zeros(50, 3)
            )
            for _ in range(400)
        ]
    )
    est, se = mean_and_se(losses)
    assert_within_se(est, 3.0, se)


def test_energy_distance_matches_scipy_in_one_dimension():
    a, b = torch.randn(300, 1, dtype=F64), 0.5 + torch.randn(200, 1, dtype=F64)
    n, m = len(a), len(b)
    u = dd.energy_distance(a, b)
    xx = torch.cdist(a, a).sum() / (n * (n - 1))
    yy = torch.cdist(b, b).sum() / (m * (m - 1))
    v_stat = u + float(xx) / n + float(yy) / m  # V-statistics keep the zero diagonal
    scipy_sq = stats.energy_distance(to_numpy(a)[:, 0], to_numpy(b)[:, 0]) ** 2
    assert v_stat == pytest.approx(scipy_sq, rel=1e-10)


def test_ring_mixture_and_network_shapes():
    data = dd.ring_mixture(6, radius=1.0, std=0.1, dtype=F64)
    x = data.sample((1000,))
    assert x.shape == (1000, 2)
    mean, se = mean_and_se(x)
    assert_within_se(mean, np.zeros(2), se)
    net = dd.EpsilonNet(2, T=10, hidden=8, layers=1)
    assert net(torch.zeros(3, 2), torch.tensor([1, 5, 10])).shape == (3, 2)


def test_bad_input_is_named(schedule):
    x0 = torch.zeros(4, 2, dtype=F64)
    with raises_naming("T"):
        dd.linear_schedule(0)
    with raises_naming("beta_end"):
        dd.linear_schedule(10, beta_end=1.5)
    with raises_naming("t"):
        dd.marginal(schedule, x0, 21)
    with raises_naming("t"):
        dd.posterior(schedule, x0, x0, 0)
    with raises_naming("noise"):
        dd.q_sample(schedule, x0, 3, torch.zeros(4, 3))
    with raises_naming("x0"):
        dd.forward_chain(schedule, torch.zeros(4))
    with raises_naming("sigma2"):
        dd.variational_bound(schedule, x0, lambda x, t: x, torch.zeros(21))
    with raises_naming("schedule"):
        dd.variational_bound(dd.linear_schedule(1), x0, lambda x, t: x, torch.ones(2))
    with raises_naming("a"):
        dd.energy_distance(torch.zeros(1, 2), torch.zeros(3, 2))
    with raises_naming("std"):
        dd.ring_mixture(std=-1.0)


def test_diffused_mixture_score_is_gaussian_score_for_one_component():
    mix = dd.ring_mixture(1, radius=1.0, std=0.5, dtype=F64)
    diffused = dd.diffused_mixture(mix, 0.6, 0.3)
    x = torch.randn(5, 2, dtype=F64)
    var = 0.36 * 0.25 + 0.3
    expected = -(x - 0.6 * torch.tensor([1.0, 0.0], dtype=F64)) / var
    assert torch.allclose(vsde.score(diffused, x), expected)


def test_train_ring_nets_gives_the_same_networks_whatever_the_default_dtype():
    default = torch.get_default_dtype()
    kwargs = dict(steps=20, n_train=128, batch_size=16)
    try:
        torch.set_default_dtype(torch.float64)
        a, losses = dd.train_ring_nets(vsde.dsm_loss, [3, 4], **kwargs)
        assert torch.get_default_dtype() == torch.float64  # restored
        torch.set_default_dtype(torch.float32)
        b, _ = dd.train_ring_nets(vsde.dsm_loss, [3, 4], **kwargs)
    finally:
        torch.set_default_dtype(default)
    assert losses.shape == (20, 2) and np.isfinite(losses).all()
    for x, y in zip(a, b, strict=True):
        assert all(
            torch.equal(p, q)
            for p, q in zip(x.parameters(), y.parameters(), strict=True)
        )
    assert not torch.equal(a[0].mlp[0].weight, a[1].mlp[0].weight)
    p = next(a[0].parameters())
    assert p.dtype == F64 and p.device.type == "cpu" and not a[0].training
    x, t = torch.zeros(5, 2, dtype=F64), torch.full((5,), 0.5, dtype=F64)
    assert a[0](x, t).shape == (5, 2)


def test_train_ring_nets_starts_each_network_from_its_seed():
    # a vanishing learning rate leaves each network at its seed's initial weights
    nets, _ = dd.train_ring_nets(vfm.cfm_loss, [5, 2], 1, n_train=64, lr=1e-12)
    for seed, net in zip([5, 2], nets, strict=True):
        vbtutor.seed_everything(seed)
        dd.ring_mixture().sample((64,))  # the seed's training points come first
        start = dd.EpsilonNet(2, T=1, hidden=64, layers=3).double()
        for p, q in zip(net.parameters(), start.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-9)


def test_train_ring_nets_learns_the_cfm_velocity_at_time_zero_for_every_seed():
    # At t = 0 the best velocity is E[x1] - x = -x (the ring's mean is the origin).
    nets, losses = dd.train_ring_nets(vfm.cfm_loss, [0, 1], steps=1500, n_train=4000)
    assert (losses[-100:].mean(0) < losses[:100].mean(0)).all()
    x = torch.randn(2000, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    for net in nets:
        with torch.no_grad():
            v = net(x, torch.zeros(2000, dtype=F64))
        rel = (v + x).pow(2).sum(-1).mean() / x.pow(2).sum(-1).mean()
        assert rel < 0.1


def ddpm_loss(
    net, x0
):  # simple_loss with a fixed schedule, as train_ring_nets calls it
    return dd.simple_loss(net, dd.linear_schedule(20, 1e-2, 0.3, dtype=F64), x0)


@pytest.mark.parametrize("loss", [vfm.cfm_loss, vsde.dsm_loss, ddpm_loss])
def test_losses_take_a_leading_seed_axis(loss):
    net = dd.EpsilonNet(2, T=1, hidden=8).double()
    x = torch.randn(50, 2, dtype=F64)
    torch.manual_seed(0)
    flat = loss(net, x)
    torch.manual_seed(0)
    one_seed = loss(net, x.unsqueeze(0))  # the same draws, with a seed axis of 1
    assert flat.shape == () and one_seed.shape == (1,)
    torch.testing.assert_close(one_seed[0], flat)
    assert loss(net, torch.randn(3, 50, 2, dtype=F64)).shape == (3,)


def test_train_ring_nets_builds_networks_on_the_time_scale_asked_for():
    nets, _ = dd.train_ring_nets(ddpm_loss, [0], 2, n_train=64, T=20)
    assert nets[0].T == 20
    start = dd.EpsilonNet(2, T=20, hidden=64, layers=3).double()  # the same sizes
    shapes = [p.shape for p in start.parameters()]
    assert [p.shape for p in nets[0].parameters()] == shapes


def exact_gaussian_eps(schedule, m, sd):
    """E[eps | x_t] when x_0 ~ N(m, sd^2) in one dimension: the ideal noise predictor."""

    def eps(x, t):
        ab = schedule.alpha_bar[t].unsqueeze(-1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * m) / (ab * sd**2 + 1 - ab)

    return eps


def test_ddim_with_eta_one_and_every_step_is_ancestral_sampling(schedule):
    # eta = 1 over all T steps: x_{t-1} ~ N(mu~(x0_hat, x_t), beta~_t), with the forward
    # posterior of ddpm.posterior at the network's guess of x_0
    def net(x, t):
        return 0.3 * x + 0.01 * t.unsqueeze(-1)

    start = torch.randn(6, 2, dtype=F64)
    got = dd.ddim_sample(
        net, schedule, start, 20, 1.0, torch.Generator().manual_seed(4)
    )
    g, x = torch.Generator().manual_seed(4), start
    for t in range(20, 0, -1):
        eps, ab = net(x, torch.full((6,), t)), schedule.alpha_bar[t]
        x0_hat = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        mean, var = dd.posterior(schedule, x0_hat, x, t)
        x = (
            mean + var.sqrt() * torch.randn(6, 2, generator=g, dtype=F64)
            if t > 1
            else mean
        )
    torch.testing.assert_close(got, x)


def test_ddim_converges_to_the_exact_flow_at_first_order():
    # For Gaussian data and the ideal predictor, x / sqrt(alpha_bar) - m scales like
    # sqrt(sd^2 + 1 / alpha_bar - 1) along DDIM's ODE: the exact map from x_T to x_0
    s, m, sd = dd.linear_schedule(1000, dtype=F64), 1.0, 0.5
    x_T = torch.linspace(-2, 2, 9, dtype=F64).unsqueeze(-1)
    ab_T = s.alpha_bar[-1]
    exact = m + (x_T / ab_T.sqrt() - m) * sd / (sd**2 + 1 / ab_T - 1).sqrt()
    net = exact_gaussian_eps(s, m, sd)
    errors = [
        (dd.ddim_sample(net, s, x_T, n) - exact).abs().max().item()
        for n in (100, 200, 400)
    ]
    assert errors[0] < 0.05  # close, and the error halves with each doubling
    for coarse, fine in zip(errors[:-1], errors[1:], strict=True):
        assert 0.4 < fine / coarse < 0.6, errors


def test_ddim_noise_only_with_positive_eta(schedule):
    def net(x, t):
        return 0.1 * x

    x = torch.randn(4, 2, dtype=F64)
    runs = {
        eta: [
            dd.ddim_sample(net, schedule, x, 5, eta, torch.Generator().manual_seed(k))
            for k in (1, 2)
        ]
        for eta in (0.0, 0.5)
    }
    assert torch.equal(*runs[0.0]) and not torch.equal(*runs[0.5])


def test_ddim_bad_input_is_named(schedule):
    def net(x, t):
        return x

    x = torch.zeros(3, 2, dtype=F64)
    with raises_naming("n_steps"):
        dd.ddim_sample(net, schedule, x, 21)
    with raises_naming("n_steps"):
        dd.ddim_sample(net, schedule, x, 0)
    for eta in (-0.1, 1.5, float("nan")):
        with raises_naming("eta"):
            dd.ddim_sample(net, schedule, x, 5, eta)
    with raises_naming("x"):
        dd.ddim_sample(net, schedule, torch.zeros(3), 5)


def test_train_ring_nets_bad_input_is_named():
    with raises_naming("steps"):
        dd.train_ring_nets(vfm.cfm_loss, [0], 0)
    with raises_naming("batch_size"):
        dd.train_ring_nets(vfm.cfm_loss, [0], 5, batch_size=0)
    with raises_naming("seeds"):
        dd.train_ring_nets(vfm.cfm_loss, [-1], 5)


def test_energy_distance_noise_is_the_sd_over_pairs_and_leaves_the_rng_alone():
    data = dd.ring_mixture(dtype=F64)
    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    sd = dd.energy_distance_noise(data, 100, pairs=6, seed=2)
    assert torch.equal(torch.rand(3), before)  # the global stream is untouched
    torch.manual_seed(2)
    values = [
        dd.energy_distance(data.sample((100,)), data.sample((100,))) for _ in range(6)
    ]
    assert sd == pytest.approx(float(np.std(values, ddof=1)), rel=1e-12)
    assert dd.energy_distance_noise(data, 100, pairs=6, seed=2) == sd
    with raises_naming("n"):
        dd.energy_distance_noise(data, 1)
    with raises_naming("pairs"):
        dd.energy_distance_noise(data, 10, pairs=1)


def test_simple_loss_rejects_a_network_output_of_the_wrong_shape():
    # issue 16: an (n, 1) output broadcast against (n, 2) noise without a word
    schedule = dd.linear_schedule(10)
    with raises_naming("net"):
        dd.simple_loss(lambda x, t: x[:, :1], schedule, torch.zeros(4, 2))


def test_ddpm_sample_rejects_steps_outside_the_chain():
    # issue 16: keep=(11,) for a 10-step chain was silently ignored
    schedule = dd.linear_schedule(10)
    with raises_naming("keep"):
        dd.ddpm_sample(lambda x, t: torch.zeros_like(x), schedule, 2, 1, keep=(11,))
