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


def test_vp_marginal_matches_euler_maruyama_and_ddpm_limit():
    x = torch.full((20_000, 1), 2.0, dtype=F64)
    grid = torch.linspace(0, 0.5, 501, dtype=F64)

    def drift(x, t):
        return -0.5 * dd.vp_beta(t) * x

    out = dd.euler_maruyama(drift, lambda t: math.sqrt(dd.vp_beta(t)), x, grid)
    scale, var = dd.vp_marginal(torch.tensor(0.5, dtype=F64))
    m, se = mean_and_se(out[:, 0])
    assert_within_se(m, 2.0 * float(scale), se)
    v, v_se = mean_and_se((out[:, 0] - 2.0 * scale) ** 2)
    assert_within_se(v, float(var), v_se)
    gaps = []
    for n in (100, 1000, 10_000):  # DDPM with beta_i = beta(t_i) / n
        s = dd.linear_schedule(n, 0.1 / n, 20.0 / n, dtype=F64)
        gaps.append(abs(float(s.alpha_bar[n] - dd.vp_marginal(1.0)[0] ** 2)))
    assert gaps[0] > gaps[1] > gaps[2]


def test_diffused_mixture_score_is_gaussian_score_for_one_component():
    mix = dd.ring_mixture(1, radius=1.0, std=0.5, dtype=F64)
    diffused = dd.diffused_mixture(mix, 0.6, 0.3)
    x = torch.randn(5, 2, dtype=F64)
    var = 0.36 * 0.25 + 0.3
    expected = -(x - 0.6 * torch.tensor([1.0, 0.0], dtype=F64)) / var
    assert torch.allclose(dd.score(diffused, x), expected)


def test_reverse_samplers_with_exact_score_recover_gaussian_data():
    m, sd = 1.0, 0.5
    data = D.MixtureSameFamily(
        D.Categorical(torch.ones(1, dtype=F64)),
        D.Independent(
            D.Normal(
                torch.full((1, 1), m, dtype=F64), torch.full((1, 1), sd, dtype=F64)
            ),
            1,
        ),
    )

    def exact(x, t):
        return dd.score(dd.diffused_mixture(data, *dd.vp_marginal(t)), x)

    x1 = torch.randn(20_000, 1, dtype=F64)
    x_ode, nfe = dd.probability_flow(exact, x1, t1=0.0, rtol=1e-8, atol=1e-8)
    assert nfe > 0
    for x in (x_ode[:, 0],):
        mean, se = mean_and_se(x)
        assert_within_se(mean, m, se)
        v, v_se = mean_and_se((x - m) ** 2)
        assert_within_se(v, sd**2, v_se)


def test_dsm_loss_of_zero_net_is_expected_squared_noise():
    losses = torch.stack(
        [
            dd.dsm_loss(lambda x, t: torch.zeros_like(x), torch.zeros(50, 2))
            for _ in range(400)
        ]
    )
    est, se = mean_and_se(losses)
    assert_within_se(est, 2.0, se)


def test_sde_bad_input_is_named():
    with raises_naming("times"):
        dd.euler_maruyama(
            lambda x, t: x,
            lambda t: 1.0,
            torch.zeros(2, 1),
            torch.tensor([0.0, 1.0, 0.5]),
        )
    with raises_naming("t_min"):
        dd.dsm_loss(lambda x, t: x, torch.zeros(2, 1), t_min=0.0)
    with raises_naming("var"):
        dd.diffused_mixture(dd.ring_mixture(), 1.0, -1.0)
    with raises_naming("beta_min"):
        dd.vp_marginal(0.5, beta_min=0.0)


def test_euler_flow_with_exact_velocity_maps_noise_to_gaussian_data():
    m, sd = 1.0, 0.5

    def velocity(x, t):  # E[x1 - x0 | x_t] on the linear path
        t = t.unsqueeze(-1)
        var = (1 - t) ** 2 + t**2 * sd**2
        return m + (t * sd**2 - (1 - t)) / var * (x - t * m)

    x = dd.euler_flow(velocity, torch.randn(20_000, 1, dtype=F64), 1000)[:, 0]
    mean, se = mean_and_se(x)
    assert_within_se(mean, m, se)
    v, v_se = mean_and_se((x - m) ** 2)
    assert_within_se(v, sd**2, v_se)


def test_heun_flow_converges_at_second_order_and_euler_at_first():
    """dx/dt = t x from x(0) = 1 has x(1) = e^(1/2): halving the step divides Heun's
    error by 4 and Euler's by 2."""

    def velocity(x, t):
        return t.unsqueeze(-1) * x

    x0 = torch.ones(1, 1, dtype=F64)
    exact = math.exp(0.5)
    steps = (16, 32, 64, 128)
    heun = [abs(dd.heun_flow(velocity, x0, n).item() - exact) for n in steps]
    euler = [abs(dd.euler_flow(velocity, x0, n).item() - exact) for n in steps]
    heun_rates = [a / b for a, b in zip(heun[:-1], heun[1:], strict=True)]
    euler_rates = [a / b for a, b in zip(euler[:-1], euler[1:], strict=True)]
    assert heun_rates == pytest.approx([4.0] * 3, rel=0.1), heun_rates
    assert euler_rates == pytest.approx([2.0] * 3, rel=0.1), euler_rates
    assert heun[-1] < 1e-4 < euler[-1]
    back = dd.heun_flow(velocity, torch.full((1, 1), exact, dtype=F64), 64, 1.0, 0.0)
    assert back.item() == pytest.approx(1.0, abs=1e-4)  # a decreasing time grid


def test_cfm_loss_of_zero_net_is_expected_squared_target():
    x1 = torch.full((50, 2), 1.0)
    losses = torch.stack(
        [dd.cfm_loss(lambda x, t: torch.zeros_like(x), x1) for _ in range(400)]
    )
    est, se = mean_and_se(losses)
    assert_within_se(est, 4.0, se)  # |x1|^2 + E|x0|^2 = 2 + 2


def test_flow_bad_input_is_named():
    with raises_naming("n_steps"):
        dd.euler_flow(lambda x, t: x, torch.zeros(2, 1), 0)
    with raises_naming("n_steps"):
        dd.heun_flow(lambda x, t: x, torch.zeros(2, 1), 1.5)
    with raises_naming("x"):
        dd.heun_flow(lambda x, t: x, torch.zeros(2), 3)
    with raises_naming("x1"):
        dd.cfm_loss(lambda x, t: x, torch.zeros(3))


def test_train_ring_nets_gives_the_same_networks_whatever_the_default_dtype():
    default = torch.get_default_dtype()
    kwargs = dict(steps=20, n_train=128, batch_size=16)
    try:
        torch.set_default_dtype(torch.float64)
        a, losses = dd.train_ring_nets(dd.dsm_loss, [3, 4], **kwargs)
        assert torch.get_default_dtype() == torch.float64  # restored
        torch.set_default_dtype(torch.float32)
        b, _ = dd.train_ring_nets(dd.dsm_loss, [3, 4], **kwargs)
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
    nets, _ = dd.train_ring_nets(dd.cfm_loss, [5, 2], 1, n_train=64, lr=1e-12)
    for seed, net in zip([5, 2], nets, strict=True):
        vbtutor.seed_everything(seed)
        dd.ring_mixture().sample((64,))  # the seed's training points come first
        start = dd.EpsilonNet(2, T=1, hidden=64, layers=3).double()
        for p, q in zip(net.parameters(), start.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-9)


def test_train_ring_nets_learns_the_cfm_velocity_at_time_zero_for_every_seed():
    # At t = 0 the best velocity is E[x1] - x = -x (the ring's mean is the origin).
    nets, losses = dd.train_ring_nets(dd.cfm_loss, [0, 1], steps=1500, n_train=4000)
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


@pytest.mark.parametrize("loss", [dd.cfm_loss, dd.dsm_loss, ddpm_loss])
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


def test_gaussian_path_velocity_of_the_straight_path_is_the_closed_form():
    ring, x = dd.ring_mixture(dtype=F64), torch.randn(50, 2, dtype=F64)
    for t in (0.1, 0.5, 0.9):
        v = dd.gaussian_path_velocity(ring, lambda t: t, lambda t: 1 - t, x, t)
        torch.testing.assert_close(v, dd.straight_path_velocity(ring, x, t))


@pytest.fixture
def double_default():
    """float64 as torch's default dtype (for references built from Python floats)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    yield
    torch.set_default_dtype(default)


def test_vp_marginal_keeps_the_precision_of_a_tensor_time():
    # under a float32 default, a float64 time must not be rounded to float32
    t = torch.tensor(0.3, dtype=F64)
    scale, var = dd.vp_marginal(t)
    big_b = 0.1 * 0.3 + 0.5 * 19.9 * 0.3**2
    assert scale.dtype == F64 and var.dtype == F64
    assert abs(scale.item() - math.exp(-0.5 * big_b)) < 1e-15
    assert abs(var.item() + math.expm1(-big_b)) < 1e-15
    assert dd.vp_marginal(0.3)[0].dtype == torch.get_default_dtype()


def test_gaussian_path_velocity_of_the_vp_path_is_the_probability_flow(double_default):
    # in the flipped time t -> 1 - t the VP path's velocity is beta/2 (x + score)
    ring, x = dd.ring_mixture(dtype=F64), torch.randn(50, 2, dtype=F64)

    def alpha(t):
        return dd.vp_marginal(1 - t)[0]

    def sigma(t):
        return dd.vp_marginal(1 - t)[1].sqrt()

    for t in (0.1, 0.5, 0.9):
        p_t = dd.diffused_mixture(ring, *dd.vp_marginal(1 - t))
        flow = 0.5 * dd.vp_beta(1 - t) * (x + dd.score(p_t, x))
        torch.testing.assert_close(
            dd.gaussian_path_velocity(ring, alpha, sigma, x, t), flow
        )


def test_gaussian_path_velocity_carries_its_path_by_the_continuity_equation():
    # a path neither of the other tests covers: alpha = sin, sigma = cos of pi t / 2
    from vbtutor import fokker_planck as fp

    ring = dd.ring_mixture(dtype=F64)

    def alpha(t):
        return torch.sin(0.5 * math.pi * torch.as_tensor(t, dtype=F64))

    def sigma(t):
        return torch.cos(0.5 * math.pi * torch.as_tensor(t, dtype=F64))

    def density(x, t):
        return dd.diffused_mixture(ring, alpha(t), sigma(t) ** 2).log_prob(x).exp()

    def velocity(x, t):
        return dd.gaussian_path_velocity(ring, alpha, sigma, x, t)

    for t in (0.3, 0.7):
        x = dd.diffused_mixture(ring, alpha(t), sigma(t) ** 2).sample((300,))
        residual, size = fp.continuity_residual(density, velocity, x, t)
        assert (residual.abs() / size).max() < 1e-10
        residual, size = fp.continuity_residual(density, lambda x, t: 0 * x, x, t)
        assert (residual.abs() / size).min() > 0.99  # the control: no cancellation


def test_gaussian_path_velocity_bad_input_is_named():
    ring, x = dd.ring_mixture(dtype=F64), torch.zeros(3, 2, dtype=F64)
    with raises_naming("alpha"):
        dd.gaussian_path_velocity(ring, 0.5, lambda t: 1 - t, x, 0.5)
    with raises_naming("alpha"):
        dd.gaussian_path_velocity(ring, lambda t: t, lambda t: 1 - t, x, 0.0)
    with raises_naming("x"):
        dd.gaussian_path_velocity(ring, lambda t: t, lambda t: 1 - t, x[0], 0.5)


def test_langevin_steps_pull_a_wide_cloud_to_the_target_gaussian():
    # target N(1, 0.5^2); start four times too wide; the unadjusted chain's stationary
    # variance exceeds the target's by a factor 1 / (1 - eps / (2 v)), a few per cent
    m, v = 1.0, 0.25

    def score(x, t):
        return -(x - m) / v

    g = torch.Generator().manual_seed(2)
    x = m + 2 * math.sqrt(v) * torch.randn(20_000, 1, generator=g, dtype=F64)
    for _ in range(300):
        x = dd.langevin_step(score, x, 0.5, snr=0.16, generator=g)
    mean, se = mean_and_se(x[:, 0])
    assert_within_se(mean, m, se)
    assert 1.0 < x[:, 0].var().item() / v < 1.06


def test_predictor_corrector_with_the_exact_score_recovers_gaussian_data(
    double_default,
):
    # data N(1, 0.5^2) in one dimension: p_t = N(a m, a^2 s^2 + sigma^2), exact score
    m, sd = 1.0, 0.5

    def score(x, t):
        a, var = dd.vp_marginal(t)
        return -(x - a * m) / (a**2 * sd**2 + var)

    g = torch.Generator().manual_seed(3)
    x1 = torch.randn(20_000, 1, generator=g, dtype=F64)
    x = dd.vp_predictor_corrector(score, x1, torch.linspace(1, 1e-3, 301), 0.16, g)
    mean, se = mean_and_se(x[:, 0])
    assert_within_se(mean, m, se)
    v, v_se = mean_and_se((x[:, 0] - m) ** 2)
    assert abs(v - sd**2) < 4 * v_se + 0.01  # SE and a discretisation bias of O(dt)


def test_predictor_corrector_bad_input_is_named():
    x = torch.zeros(3, 2)
    with raises_naming("times"):
        dd.vp_predictor_corrector(lambda x, t: -x, x, torch.linspace(0.5, 1, 3))
    with raises_naming("snr"):
        dd.vp_predictor_corrector(lambda x, t: -x, x, torch.linspace(1, 0.5, 3), -1.0)
    with raises_naming("snr"):
        dd.langevin_step(lambda x, t: -x, x, 0.5, float("nan"))


def test_train_ring_nets_bad_input_is_named():
    with raises_naming("steps"):
        dd.train_ring_nets(dd.cfm_loss, [0], 0)
    with raises_naming("batch_size"):
        dd.train_ring_nets(dd.cfm_loss, [0], 5, batch_size=0)
    with raises_naming("seeds"):
        dd.train_ring_nets(dd.cfm_loss, [-1], 5)


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


def test_vp_score_of_the_optimal_noise_predictor_is_the_exact_score():
    """Gaussian data N(m, s^2): x_t = a x_0 + sigma eps has E[eps | x_t] =
    sigma (x - a m) / (a^2 s^2 + sigma^2) and score -(x - a m) / (a^2 s^2 + sigma^2),
    with B(t) = 0.1 t + 9.95 t^2 written out here, not taken from vp_marginal."""
    m, s = 1.5, 0.7
    t = torch.tensor([0.05, 0.3, 0.7, 1.0], dtype=torch.float32)  # one time per row
    x = torch.tensor([[0.2], [-1.0], [2.0], [0.5]], dtype=torch.float32)

    def moments(t):
        big_b = 0.1 * t + 9.95 * t**2
        a, var = torch.exp(-big_b / 2), 1 - torch.exp(-big_b)
        return a[:, None], var[:, None], a[:, None] ** 2 * s**2 + var[:, None]

    def optimal_eps(x, t):
        a, var, total = moments(t)
        return var.sqrt() * (x - a * m) / total

    a, _, total = moments(t)
    got = dd.vp_score(optimal_eps)(x, t)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, -(x - a * m) / total)
    at_one_time = dd.vp_score(optimal_eps)(x, 0.3)  # a number: the same t for every row
    a, _, total = moments(torch.full((4,), 0.3))
    torch.testing.assert_close(at_one_time, -(x - a * m) / total)


def test_vp_score_names_bad_input():
    with raises_naming("net"):
        dd.vp_score("net")
    with raises_naming("x"):
        dd.vp_score(lambda x, t: x)(torch.ones(3), 0.5)


def test_straight_path_velocity_of_one_gaussian_is_the_closed_form():
    m, s = torch.tensor([1.0, -0.5], dtype=F64), 0.4
    one = D.MixtureSameFamily(
        D.Categorical(torch.ones(1, dtype=F64)),
        D.Independent(D.Normal(m[None], torch.full((1, 2), s, dtype=F64)), 1),
    )
    gen = torch.Generator().manual_seed(1)
    x, t = (
        torch.randn(20, 2, generator=gen, dtype=F64),
        torch.rand(20, generator=gen, dtype=F64),
    )
    var = ((1 - t) ** 2 + t**2 * s**2)[:, None]
    exact = m + (t[:, None] * s**2 - (1 - t[:, None])) / var * (x - t[:, None] * m)
    torch.testing.assert_close(dd.straight_path_velocity(one, x, t), exact)


def test_straight_path_velocity_carries_the_mixture_path_and_has_its_limits():
    """The density of x_t is the diffused mixture N(t m_k, t^2 s^2 + (1 - t)^2): the
    continuity equation ties it to the velocity; at t = 0 the velocity is E[x_1] - x
    and at t = 1 it is x (given x_1 = x, the noise x_0 has mean 0)."""
    from vbtutor import fokker_planck as fp

    ring = dd.ring_mixture(k=5, radius=2.0, std=0.3, dtype=F64)
    x = ring.sample((40,)) + 0.5 * torch.randn(40, 2, dtype=F64)

    def density(x, t):
        return dd.diffused_mixture(ring, t, (1 - t) ** 2).log_prob(x).exp()

    def velocity(x, t):
        return dd.straight_path_velocity(ring, x, t)

    for t in (0.2, 0.6, 0.95):
        residual, scale = fp.continuity_residual(density, velocity, x, t)
        assert (residual.abs() / scale).max() < 1e-10
    torch.testing.assert_close(velocity(x, 0.0), ring.mean - x)
    torch.testing.assert_close(velocity(x, 1.0), x)


def test_straight_path_velocity_names_bad_input():
    ring = dd.ring_mixture(k=3)
    with raises_naming("mixture"):
        dd.straight_path_velocity(D.Normal(0.0, 1.0), torch.zeros(2, 2), 0.5)
    with raises_naming("x"):
        dd.straight_path_velocity(ring, torch.zeros(2), 0.5)
    with raises_naming("t"):
        dd.straight_path_velocity(ring, torch.zeros(2, 2), torch.zeros(3))
