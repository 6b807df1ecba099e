"""Tests for vbtutor.explorers.diffusion: the ddpm, sde and flow_matching explorers.

Every factory is built on small inputs; its controls are moved to values that are not
among the precomputed frames, and the figure shown must be a fresh render for exactly
those values. The figures' contents are checked against independent computations: the
closed-form forward marginal, samplers rerun with the autograd score of
:func:`vbtutor.diffusion.diffused_mixture`, and the exact flow of Gaussian data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_live, raises_naming

from vbtutor import diffusion as dd
from vbtutor import explorers
from vbtutor import flow_matching as vfm
from vbtutor import sde as vsde
from vbtutor.explorers.diffusion import SDE_SAMPLERS, _mixture_score

F64 = torch.float64


def offsets(ax, index: int = -1) -> np.ndarray:
    """The points of the ``index``-th scatter plot of ``ax``."""
    return np.asarray(ax.collections[index].get_offsets())


def title_distance(ax) -> float:
    return float(ax.get_title().rsplit(":", 1)[1])


def star(ax) -> tuple[float, float]:
    (line,) = [line for line in ax.lines if line.get_marker() == "*"]
    return line.get_xdata()[0], line.get_ydata()[0]


# -- ddpm ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddpm_setup():
    schedule = dd.linear_schedule(20, 1e-3, 0.3, dtype=F64)
    x0 = dd.ring_mixture(dtype=F64).sample((200,))
    torch.manual_seed(1)
    net = dd.EpsilonNet(2, 20, hidden=16, layers=1).double()
    generator = torch.Generator().manual_seed(2)
    _, kept = dd.ddpm_sample(net, schedule, 150, 2, generator, keep=range(21))
    return schedule, x0, kept, explorers.ddpm_explorer(schedule, x0, kept)


def test_ddpm_explorer_recomputes_for_any_step(ddpm_setup):
    explorer = ddpm_setup[3]
    assert [p.name for p in explorer.params] == ["t"]
    assert explorer.params[0].frames == (0, 5, 10, 20)
    assert_live(explorer, t=7)


def test_ddpm_explorer_shows_the_marginal_and_the_kept_reverse_states(ddpm_setup):
    schedule, x0, kept, explorer = ddpm_setup
    noises = []
    for t in (0, 7, 20):
        left, right = explorer.render(t=t).axes
        forward = torch.as_tensor(offsets(left))
        ab = schedule.alpha_bar[t]
        if t == 0:
            assert torch.allclose(forward, x0)
        else:  # x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps, with one noise for every t
            noises.append((forward - ab.sqrt() * x0) / (1 - ab).sqrt())
        np.testing.assert_allclose(offsets(right), kept[t].numpy())
        distance = 1000 * dd.energy_distance(forward, kept[t])
        assert title_distance(right) == pytest.approx(distance, abs=0.051)
        assert left.get_title().startswith(f"forward q(xₜ), t = {t}\n")
    assert torch.allclose(noises[0], noises[1])
    assert abs(float(noises[0].mean())) < 0.2 and abs(noises[0].std() - 1) < 0.1


def test_ddpm_explorer_leaves_the_global_random_stream_alone(ddpm_setup):
    schedule, x0, kept, _ = ddpm_setup
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    explorer = explorers.ddpm_explorer(schedule, x0, kept, seed=3)
    explorer.png(t=13)
    assert torch.equal(torch.rand(3), expected)


def test_ddpm_explorer_checks_its_input(ddpm_setup):
    schedule, x0, kept, _ = ddpm_setup
    with raises_naming("schedule"):
        explorers.ddpm_explorer("linear", x0, kept)
    with raises_naming("x0"):
        explorers.ddpm_explorer(schedule, x0[:, :1], kept)
    with raises_naming("reverse"):
        explorers.ddpm_explorer(schedule, x0, {t: kept[t] for t in range(20)})
    with raises_naming("reverse"):
        explorers.ddpm_explorer(schedule, x0, {**kept, 3: kept[3][:, :1]})
    with raises_naming("seed"):
        explorers.ddpm_explorer(schedule, x0, kept, seed=-1)


# -- sde -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sde_setup():
    mixture = dd.ring_mixture(k=4, radius=2.0, std=0.3, dtype=F64)
    torch.manual_seed(3)
    test, floor = mixture.sample((300,)), mixture.sample((300,))
    noise = torch.randn(250, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    explorer = explorers.sde_explorer(mixture, test, noise, floor, points=200)
    return mixture, test, noise, floor, explorer


def autograd_drift(mixture, probability_flow: bool):
    """The reverse drift with the score by autograd, ``vsde.score``."""

    def drift(x, t):
        score = vsde.score(dd.diffused_mixture(mixture, *vsde.vp_marginal(t)), x)
        return -0.5 * vsde.vp_beta(t) * (x + (1 if probability_flow else 2) * score)

    return drift


def test_sde_explorer_recomputes_for_any_sampler_and_step_count(sde_setup):
    explorer = sde_setup[4]
    assert [p.name for p in explorer.params] == ["sampler", "steps"]
    assert explorer.new_draw and len(explorer.frames) == 10
    assert_live(explorer, sampler="ODE", steps=37)
    assert_live(explorer, sampler="SDE", steps=8, seed=3)


def test_mixture_score_is_the_autograd_score_of_the_diffused_mixture(sde_setup):
    mixture = dd.ring_mixture(k=3, radius=1.5, std=0.2, dtype=F64)
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.tensor([0.2, 0.5, 0.3], dtype=F64)),
        mixture.component_distribution,
    )
    score = _mixture_score(mixture, t_min=1e-3)
    x = 2 * torch.randn(50, 2, dtype=F64)
    for t in (1e-3, 0.05, 0.4, 1.0):
        exact = vsde.score(dd.diffused_mixture(mixture, *vsde.vp_marginal(t)), x)
        assert torch.allclose(score(x, t), exact, atol=1e-9, rtol=1e-9)


def test_sde_explorer_samples_match_samplers_with_the_autograd_score(sde_setup):
    mixture, test, noise, floor, explorer = sde_setup
    x1, grid = noise[:200], torch.linspace(1.0, 1e-3, 13, dtype=F64)
    generator = torch.Generator().manual_seed(0)
    g = lambda t: math.sqrt(vsde.vp_beta(t))  # noqa: E731
    sde = vsde.euler_maruyama(autograd_drift(mixture, False), g, x1, grid, generator)
    zero = lambda t: 0.0  # noqa: E731
    ode = vsde.euler_maruyama(autograd_drift(mixture, True), zero, x1, grid)
    for sampler, expected in [("SDE", sde), ("ODE", ode)]:
        left, right = explorer.render(sampler=sampler, steps=12, seed=0).axes
        np.testing.assert_allclose(offsets(left), expected.numpy(), atol=1e-8)
        distance = 1000 * dd.energy_distance(expected, test)
        assert title_distance(left) == pytest.approx(distance, abs=0.051)
        assert star(right) == pytest.approx((12, distance))
        assert left.get_title().startswith(f"{SDE_SAMPLERS[sampler]}: 12 ")
    (floor_line,) = [ln for ln in right.lines if ln.get_linestyle() == "--"]
    expected_floor = 1000 * dd.energy_distance(floor, test)
    assert floor_line.get_ydata()[0] == pytest.approx(expected_floor)


def test_sde_explorer_converges_to_the_data_and_draws_fresh_noise(sde_setup):
    _, test, _, _, explorer = sde_setup
    right = explorer.render(sampler="SDE", steps=20, seed=0).axes[1]
    curves = {line.get_label(): line.get_ydata() for line in right.lines}
    ode, sde = curves["probability-flow ODE, draw 0"], curves["reverse SDE, draw 0"]
    assert np.all(
        np.diff(ode) < 0
    )  # from 5 to 1000 steps, one noise: no sampling noise
    assert ode[0] > 5 * ode[-1] > 0 and sde[0] > 5 * abs(sde[-1])
    fresh = explorer.render(sampler="SDE", steps=20, seed=5).axes[0]
    again = explorer.render(sampler="SDE", steps=20, seed=5).axes[0]
    shown = explorer.render(sampler="SDE", steps=20, seed=0).axes[0]
    assert np.array_equal(offsets(fresh), offsets(again))
    assert not np.allclose(offsets(fresh), offsets(shown))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    explorer.png(sampler="SDE", steps=23, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_sde_explorer_checks_its_input(sde_setup):
    mixture, test, noise, _, _ = sde_setup
    with raises_naming("mixture"):
        explorers.sde_explorer(torch.distributions.Normal(0.0, 1.0), test, noise)
    with raises_naming("test"):
        explorers.sde_explorer(mixture, test[:, 0], noise)
    with raises_naming("noise"):
        explorers.sde_explorer(mixture, test, noise, points=300)
    with raises_naming("points"):
        explorers.sde_explorer(mixture, test, noise, points=1)
    with raises_naming("t_min"):
        explorers.sde_explorer(mixture, test, noise, points=10, t_min=0.0)


# -- flow_matching -------------------------------------------------------------------

M, S = torch.tensor([1.0, -0.5], dtype=F64), 0.5


def gaussian_velocity(x, t):
    """The marginal velocity of the straight path to N(M, S^2 I) data: its exact flow
    maps x_0 to M + S x_0 at t = 1."""
    t = t.unsqueeze(-1)
    var = (1 - t) ** 2 + t**2 * S**2
    return M + (t * S**2 - (1 - t)) / var * (x - t * M)


@pytest.fixture(scope="module")
def flow_setup():
    torch.manual_seed(5)
    test, floor = M + S * torch.randn(300, 2), M + S * torch.randn(300, 2)
    noise = torch.randn(200, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    explorer = explorers.flow_matching_explorer(
        gaussian_velocity, test, noise, floor, points=200
    )
    return test, noise, floor, explorer


def test_flow_explorer_recomputes_for_any_nfe_and_solver(flow_setup):
    explorer = flow_setup[3]
    assert [p.name for p in explorer.params] == ["nfe", "solver"]
    assert not explorer.new_draw and len(explorer.frames) == 10
    assert_live(explorer, nfe=37, solver="Heun")
    assert_live(explorer, nfe=3, solver="Euler")


def test_flow_explorer_heun_converges_faster_than_euler_at_equal_nfe(flow_setup):
    test, noise, _, explorer = flow_setup
    exact = (M + S * noise).numpy()
    errors = {}
    for solver in ("Euler", "Heun"):
        for nfe in (40, 80):
            left, right = explorer.render(nfe=nfe, solver=solver).axes
            errors[solver, nfe] = np.abs(offsets(left) - exact).max()
            distance = 1000 * dd.energy_distance(torch.as_tensor(offsets(left)), test)
            assert title_distance(left) == pytest.approx(distance, abs=0.051)
            assert star(right) == pytest.approx((nfe, distance))
    assert errors["Euler", 40] / errors["Euler", 80] == pytest.approx(2, rel=0.15)
    assert errors["Heun", 40] / errors["Heun", 80] == pytest.approx(4, rel=0.15)
    assert errors["Heun", 80] < errors["Euler", 80] / 10


def test_flow_explorer_runs_in_the_precision_of_its_noise(flow_setup):
    """A single-precision network is sampled from single-precision noise."""
    test, noise, floor, double = flow_setup
    seen = []

    def single_velocity(x, t):
        seen.append(x.dtype)
        return gaussian_velocity(x.double(), t.double()).float()

    explorer = explorers.flow_matching_explorer(
        single_velocity, test, noise.float(), floor, points=200
    )
    assert set(seen) == {torch.float32}
    single_points = offsets(explorer.render(nfe=40, solver="Euler").axes[0])
    double_points = offsets(double.render(nfe=40, solver="Euler").axes[0])
    # the same 40 Euler steps; only rounding differs: a few float32 roundings of
    # numbers of the points' size per step
    scale = np.abs(double_points).max()
    bound = 40 * 8 * np.finfo(np.float32).eps * scale
    assert np.abs(single_points - double_points).max() < bound


def test_flow_explorer_counts_the_evaluations_heun_uses(flow_setup):
    _, noise, _, explorer = flow_setup
    calls = []

    def counted(x, t):
        calls.append(1)
        return gaussian_velocity(x, t)

    for nfe, steps, used in [(37, 18, 36), (1, 1, 2), (2, 1, 2)]:
        left, right = explorer.render(nfe=nfe, solver="Heun").axes
        assert left.get_title().startswith(
            f"Heun: {steps} step{'s' if steps > 1 else ''}, NFE {used}\n"
        )
        assert star(right)[0] == used
        calls.clear()
        heun = vfm.heun_flow(counted, noise, steps)
        assert len(calls) == used
        np.testing.assert_allclose(offsets(left), heun.numpy())
    left = explorer.render(nfe=37, solver="Euler").axes[0]
    assert left.get_title().startswith("Euler: 37 steps, NFE 37\n")


def test_flow_explorer_checks_its_input(flow_setup):
    test, noise, _, _ = flow_setup
    with raises_naming("velocity"):
        explorers.flow_matching_explorer("net", test, noise)
    with raises_naming("noise"):
        explorers.flow_matching_explorer(gaussian_velocity, test, noise[:10, :1])
    with raises_naming("points"):
        explorers.flow_matching_explorer(gaussian_velocity, test, noise, points=2.5)
    with raises_naming("floor_sample"):
        explorers.flow_matching_explorer(
            gaussian_velocity, test, noise, test[:1], points=10
        )


# -- ddim ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddim_setup():
    schedule = dd.linear_schedule(40, 1e-3, 0.3, dtype=F64)
    torch.manual_seed(3)
    net = dd.EpsilonNet(2, 40, hidden=16, layers=1).double()
    test, floor = dd.ring_mixture(dtype=F64).sample((2, 300))
    noise = torch.randn(150, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    explorer = explorers.ddim_explorer(net, schedule, test, noise, floor, points=120)
    return net, schedule, test, noise, explorer


def test_ddim_explorer_recomputes_for_any_nfe_and_sampler(ddim_setup):
    explorer = ddim_setup[4]
    assert [p.name for p in explorer.params] == ["nfe", "sampler"]
    assert explorer.params[0].frames == (2, 5, 10, 20, 40)
    assert len(explorer.frames) == 10
    assert_live(explorer, nfe=7, sampler="DDPM")
    assert_live(explorer, nfe=33, sampler="DDIM")


def test_ddim_explorer_shows_the_samplers_output(ddim_setup):
    net, schedule, test, noise, explorer = ddim_setup
    for sampler, eta in [("DDIM", 0.0), ("DDPM", 1.0)]:
        left, right = explorer.render(nfe=7, sampler=sampler).axes
        expected = dd.ddim_sample(
            net, schedule, noise[:120], 7, eta, torch.Generator().manual_seed(0)
        )
        np.testing.assert_allclose(offsets(left), expected.numpy())
        distance = 1000 * dd.energy_distance(expected, test)
        assert title_distance(left) == pytest.approx(distance, abs=0.051)
        assert star(right) == pytest.approx((7, distance))
        assert left.get_title().startswith(f"{sampler} (η = {eta:g}): NFE 7\n")


def test_ddim_explorer_checks_its_input(ddim_setup):
    net, schedule, test, noise, _ = ddim_setup
    with raises_naming("net"):
        explorers.ddim_explorer("net", schedule, test, noise)
    with raises_naming("schedule"):
        explorers.ddim_explorer(net, dd.linear_schedule(3), test, noise)
    with raises_naming("noise"):
        explorers.ddim_explorer(net, schedule, test, noise[:10], points=20)
    with raises_naming("seed"):
        explorers.ddim_explorer(net, schedule, test, noise, seed=-1)


@pytest.fixture(scope="module")
def fp_explorer():
    from vbtutor.fokker_planck import VPMixture1D

    default = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        mixture = VPMixture1D([0.3, 0.7], [-2.0, 1.5], [0.3, 0.5])
        yield mixture, explorers.fokker_planck_explorer(mixture, paths=300)
    finally:
        torch.set_default_dtype(default)


def test_fokker_planck_explorer_recomputes_for_any_time_and_grid(fp_explorer):
    _, explorer = fp_explorer
    assert [p.name for p in explorer.params] == ["t", "grid"]
    assert explorer.new_draw and len(explorer.frames) == 12
    assert_live(explorer, t=0.37, grid=161)
    assert_live(explorer, t=0.61, grid=41, seed=2)


def test_fokker_planck_explorer_error_panel_shrinks_with_the_grid(fp_explorer):
    _, explorer = fp_explorer
    titles = []
    for grid in (41, 161):
        fig = explorer.render(t=0.3, grid=grid, seed=0)
        titles.append(float(fig.axes[1].get_title().split()[-1]))
    assert titles[1] < titles[0] / 8  # second order: 16 times smaller in theory


def test_fokker_planck_explorer_checks_its_input(fp_explorer):
    mixture, _ = fp_explorer
    with raises_naming("mixture"):
        explorers.fokker_planck_explorer(dd.ring_mixture())
    with raises_naming("paths"):
        explorers.fokker_planck_explorer(mixture, paths=10)
