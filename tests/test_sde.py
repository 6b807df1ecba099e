"""Tests of vbtutor.sde: VP-SDE marginals, scores, samplers and the score-matching loss."""

from __future__ import annotations

import math

import torch
from conftest import assert_within_se, mean_and_se, raises_naming
from torch import distributions as D

from vbtutor import diffusion as dd
from vbtutor import sde as vsde

F64 = torch.float64


def test_vp_marginal_matches_euler_maruyama_and_ddpm_limit():
    x = torch.full((20_000, 1), 2.0, dtype=F64)
    grid = torch.linspace(0, 0.5, 501, dtype=F64)

    def drift(x, t):
        return -0.5 * vsde.vp_beta(t) * x

    out = vsde.euler_maruyama(drift, lambda t: math.sqrt(vsde.vp_beta(t)), x, grid)
    scale, var = vsde.vp_marginal(torch.tensor(0.5, dtype=F64))
    m, se = mean_and_se(out[:, 0])
    assert_within_se(m, 2.0 * float(scale), se)
    v, v_se = mean_and_se((out[:, 0] - 2.0 * scale) ** 2)
    assert_within_se(v, float(var), v_se)
    gaps = []
    for n in (100, 1000, 10_000):  # DDPM with beta_i = beta(t_i) / n
        s = dd.linear_schedule(n, 0.1 / n, 20.0 / n, dtype=F64)
        gaps.append(abs(float(s.alpha_bar[n] - vsde.vp_marginal(1.0)[0] ** 2)))
    assert gaps[0] > gaps[1] > gaps[2]


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
        return vsde.score(dd.diffused_mixture(data, *vsde.vp_marginal(t)), x)

    x1 = torch.randn(20_000, 1, dtype=F64)
    x_ode, nfe = vsde.probability_flow(exact, x1, t1=0.0, rtol=1e-8, atol=1e-8)
    assert nfe > 0
    for x in (x_ode[:, 0],):
        mean, se = mean_and_se(x)
        assert_within_se(mean, m, se)
        v, v_se = mean_and_se((x - m) ** 2)
        assert_within_se(v, sd**2, v_se)


def test_reverse_drifts_transport_the_marginals_of_gaussian_data():
    """For data N(0, s0^2) the VP marginal is N(0, v(t)), v = a^2 s0^2 + var from
    vp_marginal. The velocity that moves N(0, v(t)) along is x v'(t) / (2 v(t)) (v' by
    autograd): the probability-flow drift must be that, and the reverse SDE's drift
    f - g^2 s must be twice it less f = -beta x / 2 (their g^2 s differ by a factor 2)."""
    s0, x = 0.3, torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    for beta_min, beta_max in [(0.1, 20.0), (0.5, 5.0)]:

        def v(t, beta_min=beta_min, beta_max=beta_max):
            scale, var = vsde.vp_marginal(t, beta_min, beta_max)
            return scale**2 * s0**2 + var

        def score(x, t, v=v):
            return -x / v(torch.tensor(t, dtype=torch.float64))

        schedule = {"beta_min": beta_min, "beta_max": beta_max}
        ode = vsde.vp_reverse_drift(score, ode=True, **schedule)
        sde = vsde.vp_reverse_drift(score, **schedule)
        for t in (0.01, 0.3, 0.9):
            time = torch.tensor(t, dtype=torch.float64, requires_grad=True)
            (dv,) = torch.autograd.grad(v(time), time)
            velocity = x * dv / (2 * v(time.detach()))
            f = -0.5 * vsde.vp_beta(t, beta_min, beta_max) * x
            assert torch.allclose(ode(x, t), velocity, rtol=1e-12, atol=1e-14)
            assert torch.allclose(sde(x, t), 2 * velocity - f, rtol=1e-12, atol=1e-14)
    with raises_naming("score_fn"):
        vsde.vp_reverse_drift(None)
    with raises_naming("ode"):
        vsde.vp_reverse_drift(score, ode="yes")


def test_samplers_build_no_autograd_graph():
    """A learned score has weights that require gradients; a sampler must not record a
    graph through hundreds of steps (memory), and its output must plot as it is."""
    layer = torch.nn.Linear(2, 2).double()

    def score(x, t):
        return layer(x)

    x, grid = torch.randn(4, 2, dtype=torch.float64), torch.linspace(1.0, 0.5, 4)
    drift, g = vsde.vp_reverse_drift(score), lambda t: 1.0
    assert drift(x, 0.5).requires_grad  # the drift itself is plain autograd code
    for out in (
        vsde.euler_maruyama(drift, g, x, grid),
        vsde.langevin_step(score, x, 0.5),
        vsde.vp_predictor_corrector(score, x, grid),
    ):
        assert not out.requires_grad


def test_dsm_loss_of_zero_net_is_expected_squared_noise():
    losses = torch.stack(
        [
            vsde.dsm_loss(lambda x, t: torch.zeros_like(x), torch.zeros(50, 2))
            for _ in range(400)
        ]
    )
    est, se = mean_and_se(losses)
    assert_within_se(est, 2.0, se)


def test_sde_bad_input_is_named():
    with raises_naming("times"):
        vsde.euler_maruyama(
            lambda x, t: x,
            lambda t: 1.0,
            torch.zeros(2, 1),
            torch.tensor([0.0, 1.0, 0.5]),
        )
    with raises_naming("t_min"):
        vsde.dsm_loss(lambda x, t: x, torch.zeros(2, 1), t_min=0.0)
    with raises_naming("var"):
        dd.diffused_mixture(dd.ring_mixture(), 1.0, -1.0)
    with raises_naming("beta_min"):
        vsde.vp_marginal(0.5, beta_min=0.0)


def test_vp_marginal_keeps_the_precision_of_a_tensor_time():
    # under a float32 default, a float64 time must not be rounded to float32
    t = torch.tensor(0.3, dtype=F64)
    scale, var = vsde.vp_marginal(t)
    big_b = 0.1 * 0.3 + 0.5 * 19.9 * 0.3**2
    assert scale.dtype == F64 and var.dtype == F64
    assert abs(scale.item() - math.exp(-0.5 * big_b)) < 1e-15
    assert abs(var.item() + math.expm1(-big_b)) < 1e-15
    assert vsde.vp_marginal(0.3)[0].dtype == torch.get_default_dtype()


def test_langevin_steps_pull_a_wide_cloud_to_the_target_gaussian():
    # target N(1, 0.5^2); start four times too wide; the unadjusted chain's stationary
    # variance exceeds the target's by a factor 1 / (1 - eps / (2 v)), a few per cent
    m, v = 1.0, 0.25

    def score(x, t):
        return -(x - m) / v

    g = torch.Generator().manual_seed(2)
    x = m + 2 * math.sqrt(v) * torch.randn(20_000, 1, generator=g, dtype=F64)
    for _ in range(300):
        x = vsde.langevin_step(score, x, 0.5, snr=0.16, generator=g)
    mean, se = mean_and_se(x[:, 0])
    assert_within_se(mean, m, se)
    assert 1.0 < x[:, 0].var().item() / v < 1.06


def test_predictor_corrector_with_the_exact_score_recovers_gaussian_data(
    double_default,
):
    # data N(1, 0.5^2) in one dimension: p_t = N(a m, a^2 s^2 + sigma^2), exact score
    m, sd = 1.0, 0.5

    def score(x, t):
        a, var = vsde.vp_marginal(t)
        return -(x - a * m) / (a**2 * sd**2 + var)

    g = torch.Generator().manual_seed(3)
    x1 = torch.randn(20_000, 1, generator=g, dtype=F64)
    x = vsde.vp_predictor_corrector(score, x1, torch.linspace(1, 1e-3, 301), 0.16, g)
    mean, se = mean_and_se(x[:, 0])
    assert_within_se(mean, m, se)
    v, v_se = mean_and_se((x[:, 0] - m) ** 2)
    assert abs(v - sd**2) < 4 * v_se + 0.01  # SE and a discretisation bias of O(dt)


def test_predictor_corrector_bad_input_is_named():
    x = torch.zeros(3, 2)
    with raises_naming("times"):
        vsde.vp_predictor_corrector(lambda x, t: -x, x, torch.linspace(0.5, 1, 3))
    with raises_naming("snr"):
        vsde.vp_predictor_corrector(lambda x, t: -x, x, torch.linspace(1, 0.5, 3), -1.0)
    with raises_naming("snr"):
        vsde.langevin_step(lambda x, t: -x, x, 0.5, float("nan"))


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
    got = vsde.vp_score(optimal_eps)(x, t)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, -(x - a * m) / total)
    at_one_time = vsde.vp_score(optimal_eps)(
        x, 0.3
    )  # a number: the same t for every row
    a, _, total = moments(torch.full((4,), 0.3))
    torch.testing.assert_close(at_one_time, -(x - a * m) / total)


def test_vp_score_names_bad_input():
    with raises_naming("net"):
        vsde.vp_score("net")
    with raises_naming("x"):
        vsde.vp_score(lambda x, t: x)(torch.ones(3), 0.5)
