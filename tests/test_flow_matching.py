"""Tests of vbtutor.flow_matching: marginal velocities, the conditional loss, ODE steps."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_within_se, mean_and_se, raises_naming
from torch import distributions as D

from vbtutor import diffusion as dd
from vbtutor import flow_matching as vfm
from vbtutor import sde as vsde

F64 = torch.float64


def test_euler_flow_with_exact_velocity_maps_noise_to_gaussian_data():
    m, sd = 1.0, 0.5

    def velocity(x, t):  # E[x1 - x0 | x_t] on the linear path
        t = t.unsqueeze(-1)
        var = (1 - t) ** 2 + t**2 * sd**2
        return m + (t * sd**2 - (1 - t)) / var * (x - t * m)

    x = vfm.euler_flow(velocity, torch.randn(20_000, 1, dtype=F64), 1000)[:, 0]
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
    heun = [abs(vfm.heun_flow(velocity, x0, n).item() - exact) for n in steps]
    euler = [abs(vfm.euler_flow(velocity, x0, n).item() - exact) for n in steps]
    heun_rates = [a / b for a, b in zip(heun[:-1], heun[1:], strict=True)]
    euler_rates = [a / b for a, b in zip(euler[:-1], euler[1:], strict=True)]
    assert heun_rates == pytest.approx([4.0] * 3, rel=0.1), heun_rates
    assert euler_rates == pytest.approx([2.0] * 3, rel=0.1), euler_rates
    assert heun[-1] < 1e-4 < euler[-1]
    back = vfm.heun_flow(velocity, torch.full((1, 1), exact, dtype=F64), 64, 1.0, 0.0)
    assert back.item() == pytest.approx(1.0, abs=1e-4)  # a decreasing time grid


def test_cfm_loss_of_zero_net_is_expected_squared_target():
    x1 = torch.full((50, 2), 1.0)
    losses = torch.stack(
        [vfm.cfm_loss(lambda x, t: torch.zeros_like(x), x1) for _ in range(400)]
    )
    est, se = mean_and_se(losses)
    assert_within_se(est, 4.0, se)  # |x1|^2 + E|x0|^2 = 2 + 2


def test_flow_bad_input_is_named():
    with raises_naming("n_steps"):
        vfm.euler_flow(lambda x, t: x, torch.zeros(2, 1), 0)
    with raises_naming("n_steps"):
        vfm.heun_flow(lambda x, t: x, torch.zeros(2, 1), 1.5)
    with raises_naming("x"):
        vfm.heun_flow(lambda x, t: x, torch.zeros(2), 3)
    with raises_naming("x1"):
        vfm.cfm_loss(lambda x, t: x, torch.zeros(3))


def test_gaussian_path_velocity_of_the_straight_path_is_the_closed_form():
    ring, x = dd.ring_mixture(dtype=F64), torch.randn(50, 2, dtype=F64)
    for t in (0.1, 0.5, 0.9):
        v = vfm.gaussian_path_velocity(ring, lambda t: t, lambda t: 1 - t, x, t)
        torch.testing.assert_close(v, vfm.straight_path_velocity(ring, x, t))


def test_gaussian_path_velocity_of_the_vp_path_is_the_probability_flow(double_default):
    # in the flipped time t -> 1 - t the VP path's velocity is beta/2 (x + score)
    ring, x = dd.ring_mixture(dtype=F64), torch.randn(50, 2, dtype=F64)

    def alpha(t):
        return vsde.vp_marginal(1 - t)[0]

    def sigma(t):
        return vsde.vp_marginal(1 - t)[1].sqrt()

    for t in (0.1, 0.5, 0.9):
        p_t = dd.diffused_mixture(ring, *vsde.vp_marginal(1 - t))
        flow = 0.5 * vsde.vp_beta(1 - t) * (x + vsde.score(p_t, x))
        torch.testing.assert_close(
            vfm.gaussian_path_velocity(ring, alpha, sigma, x, t), flow
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
        return vfm.gaussian_path_velocity(ring, alpha, sigma, x, t)

    for t in (0.3, 0.7):
        x = dd.diffused_mixture(ring, alpha(t), sigma(t) ** 2).sample((300,))
        residual, size = fp.continuity_residual(density, velocity, x, t)
        assert (residual.abs() / size).max() < 1e-10
        residual, size = fp.continuity_residual(density, lambda x, t: 0 * x, x, t)
        assert (residual.abs() / size).min() > 0.99  # the control: no cancellation


def test_gaussian_path_velocity_bad_input_is_named():
    ring, x = dd.ring_mixture(dtype=F64), torch.zeros(3, 2, dtype=F64)
    with raises_naming("alpha"):
        vfm.gaussian_path_velocity(ring, 0.5, lambda t: 1 - t, x, 0.5)
    with raises_naming("alpha"):
        vfm.gaussian_path_velocity(ring, lambda t: t, lambda t: 1 - t, x, 0.0)
    with raises_naming("x"):
        vfm.gaussian_path_velocity(ring, lambda t: t, lambda t: 1 - t, x[0], 0.5)


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
    torch.testing.assert_close(vfm.straight_path_velocity(one, x, t), exact)


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
        return vfm.straight_path_velocity(ring, x, t)

    for t in (0.2, 0.6, 0.95):
        residual, scale = fp.continuity_residual(density, velocity, x, t)
        assert (residual.abs() / scale).max() < 1e-10
    torch.testing.assert_close(velocity(x, 0.0), ring.mean - x)
    torch.testing.assert_close(velocity(x, 1.0), x)


def test_straight_path_velocity_names_bad_input():
    ring = dd.ring_mixture(k=3)
    with raises_naming("mixture"):
        vfm.straight_path_velocity(D.Normal(0.0, 1.0), torch.zeros(2, 2), 0.5)
    with raises_naming("x"):
        vfm.straight_path_velocity(ring, torch.zeros(2), 0.5)
    with raises_naming("t"):
        vfm.straight_path_velocity(ring, torch.zeros(2, 2), torch.zeros(3))
