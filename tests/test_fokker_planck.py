"""Tests for vbtutor.fokker_planck against closed forms, SciPy quadrature and torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import raises_naming
from scipy import integrate, stats
from torch import distributions as D

from vbtutor import fokker_planck as fp

F64 = torch.float64


@pytest.fixture
def mixture():
    default = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        yield fp.VPMixture1D([0.3, 0.7], [-2.0, 1.5], [0.3, 0.5])
    finally:
        torch.set_default_dtype(default)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0])
def test_mixture_density_integrates_to_one_and_its_cdf_agrees(mixture, t):
    def density(x):
        return float(mixture.density(torch.tensor(x), torch.tensor(t)))

    total, _ = integrate.quad(density, -15, 15, points=[-2, 1.5])
    assert total == pytest.approx(1.0, abs=1e-9)
    below, _ = integrate.quad(density, -15, 0.4, points=[-2])
    assert float(mixture.cdf(torch.tensor(0.4), torch.tensor(t))) == pytest.approx(
        below, abs=1e-9
    )


def test_mixture_at_time_zero_is_torchs_mixture_and_its_score_is_autograds(mixture):
    torch_mixture = D.MixtureSameFamily(
        D.Categorical(torch.tensor([0.3, 0.7], dtype=F64)),
        D.Normal(
            torch.tensor([-2.0, 1.5], dtype=F64), torch.tensor([0.3, 0.5], dtype=F64)
        ),
    )
    x = torch.linspace(-4, 4, 41, dtype=F64)
    torch.testing.assert_close(
        mixture.density(x, torch.zeros(41, dtype=F64)), torch_mixture.log_prob(x).exp()
    )
    t = torch.full((41,), 0.2, dtype=F64)
    d = fp.derivatives(mixture.density, x, t)
    torch.testing.assert_close(mixture.score(x, t), d["f_x"] / d["f"])


def test_mixture_samples_follow_its_cdf(mixture):
    draws = mixture.sample(4000, torch.Generator().manual_seed(0)).numpy()
    result = stats.kstest(draws, lambda z: mixture.cdf(torch.tensor(z), 0.0).numpy())
    assert result.pvalue > 1e-3


def test_derivatives_of_a_polynomial_are_exact():
    x = torch.tensor([1.0, -2.0], dtype=F64)
    t = torch.tensor([0.5, 3.0], dtype=F64)
    d = fp.derivatives(lambda x, t: t**2 * x**3, x, t)
    torch.testing.assert_close(d["f_t"], 2 * t * x**3)
    torch.testing.assert_close(d["f_x"], 3 * t**2 * x**2)
    torch.testing.assert_close(d["f_xx"], 6 * t**2 * x)


def test_fokker_planck_solution_matches_the_ornstein_uhlenbeck_law():
    # dX = -X dt + sqrt(2) dW from N(2, 0.25): X_t ~ N(2 e^-t, 1 + (0.25 - 1) e^-2t)
    def law(t):
        return stats.norm(2 * math.exp(-t), math.sqrt(1 - 0.75 * math.exp(-2 * t)))

    errors = []
    for n in (121, 241):
        x = np.linspace(-6, 8, n)
        p = fp.solve_fokker_planck(
            lambda x, t: -x, lambda x, t: 2 + 0 * x, law(0).pdf(x), x, [0, 0.2, 1.0]
        )
        errors.append(np.abs(p[1:] - [law(0.2).pdf(x), law(1.0).pdf(x)]).max())
    assert errors[1] < 1e-3 and 3 < errors[0] / errors[1] < 5  # second order in h


def test_flow_log_density_of_a_linear_flow_is_the_gaussian_change_of_variables():
    # dx/dt = -x shrinks N(0, 1) to N(0, e^-2) at t = 1
    end = D.Normal(torch.tensor(0.0, dtype=F64), torch.tensor(math.exp(-1), dtype=F64))
    x = torch.tensor([[-1.0], [0.3], [2.0]], dtype=F64)
    got = fp.flow_log_density(
        lambda x, t: -x, lambda z: end.log_prob(z).sum(-1), x, 0.0, 1.0
    )
    expected = D.Normal(torch.tensor(0.0, dtype=F64), 1.0).log_prob(x[:, 0])
    torch.testing.assert_close(got, expected, atol=1e-7, rtol=0)


def test_flow_log_density_of_several_linear_flows_at_once():
    # dx/dt = -a x maps N(0, 1) to N(0, e^-2a) at t = 1: one solve for three rates a,
    # each row against its own Gaussian change of variables, with its own end density
    rates = (0.5, 1.0, 2.0)
    x = torch.tensor([[-1.0], [0.3], [2.0]], dtype=F64)
    ends = torch.tensor([math.exp(-a) for a in rates], dtype=F64)

    def end_log_density(z):  # the rows of model k are rows 3k to 3k + 2
        return D.Normal(0.0, ends.repeat_interleave(3)).log_prob(z[:, 0])

    velocities = [lambda x, t, a=a: -a * x for a in rates]
    got = fp.flow_log_density(velocities, end_log_density, x, 0.0, 1.0)
    expected = D.Normal(torch.tensor(0.0, dtype=F64), 1.0).log_prob(x[:, 0])
    assert got.shape == (3, 3)
    torch.testing.assert_close(got, expected.expand(3, 3), atol=1e-7, rtol=0)
    with raises_naming("velocity"):
        fp.flow_log_density([], end_log_density, x, 0.0, 1.0)


def test_ito_errors_shrink_like_the_square_root_of_the_step(mixture):
    coarse = fp.ito_errors(mixture, 100, 2000, torch.Generator().manual_seed(1))
    fine = fp.ito_errors(mixture, 1000, 2000, torch.Generator().manual_seed(1))
    assert 2 < coarse[0] / fine[0] < 5  # sqrt(10) = 3.2
    b1 = 0.1 + 0.5 * 19.9  # the chain rule misses B(1) = int beta
    assert abs(fine[1] - b1) < 3 * fine[2] + 0.05  # within 3 SE and a bias of O(dt)


def test_bad_input_is_named(mixture):
    x = np.linspace(-1, 1, 11)
    with raises_naming("weights"):
        fp.VPMixture1D([0.5, 0.6], [0.0, 1.0], [1.0, 1.0])
    with raises_naming("sds"):
        fp.VPMixture1D([0.5, 0.5], [0.0, 1.0], [1.0, -1.0])
    with raises_naming("x"):
        fp.solve_fokker_planck(lambda x, t: x, lambda x, t: x, x, x**2, [0, 1])
    with raises_naming("p0"):
        fp.solve_fokker_planck(lambda x, t: x, lambda x, t: x, x[:5], x, [0, 1])
    with raises_naming("times"):
        fp.solve_fokker_planck(lambda x, t: x, lambda x, t: x, x, x, [1, 0])
    with raises_naming("t0"):
        fp.flow_log_density(lambda x, t: x, lambda z: z, torch.ones(1, 1), 1.0, 0.5)
    with raises_naming("n_steps"):
        fp.ito_errors(mixture, 0, 10, torch.Generator())
    with raises_naming("x"):
        fp.derivatives(lambda x, t: x, torch.ones(2), torch.ones(3))


def _gaussian_path(m, s):
    """The straight path from N(0, I) to N(m, s^2 I) in 2-D: its density and velocity."""

    def density(x, t):
        var = (1 - t) ** 2 + t**2 * s**2
        return torch.exp(-((x - t * m) ** 2).sum(-1) / (2 * var)) / (2 * math.pi * var)

    def velocity(x, t):
        var = (1 - t) ** 2 + t**2 * s**2
        return m + (t * s**2 - (1 - t)) / var * (x - t * m)

    return density, velocity


def test_continuity_residual_vanishes_for_the_field_that_carries_the_density():
    m, s = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.5
    density, velocity = _gaussian_path(m, s)
    x = torch.randn(
        50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    for t in (0.1, 0.5, 0.9):
        residual, scale = fp.continuity_residual(density, velocity, x, t)
        assert (residual.abs() / scale).max() < 1e-12
        shifted = lambda x, t: velocity(x, t) + 0.3  # noqa: E731  a wrong field
        residual, scale = fp.continuity_residual(density, shifted, x, t)
        assert (residual.abs() / scale).max() > 1e-2


def test_continuity_residual_names_bad_input():
    density, velocity = _gaussian_path(torch.zeros(2, dtype=torch.float64), 1.0)
    with raises_naming("x"):
        fp.continuity_residual(density, velocity, torch.zeros(3), 0.5)
    with raises_naming("density"):
        fp.continuity_residual(lambda x, t: x, velocity, torch.zeros(3, 2), 0.5)
