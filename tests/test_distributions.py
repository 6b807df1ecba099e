"""Tests for vbtutor.distributions: closed-form Gaussian KLs, Monte Carlo and quadrature KLs."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from conftest import assert_within_se, raises_naming
from scipy import integrate
from torch import distributions as D

from vbtutor import distributions as vd
from vbtutor.bounds import Estimate

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_gaussian(batch: tuple[int, ...], d: int, seed: int):
    """A mean and a well-conditioned random SPD covariance, float64."""
    g = _gen(seed)
    mean = torch.randn(*batch, d, generator=g, dtype=F64)
    a = torch.randn(*batch, d, d, generator=g, dtype=F64)
    cov = a @ a.mT / d + 0.3 * torch.eye(d, dtype=F64)
    return mean, cov


def random_diagonal(batch: tuple[int, ...], d: int, seed: int):
    g = _gen(seed)
    mean = torch.randn(*batch, d, generator=g, dtype=F64)
    var = torch.rand(*batch, d, generator=g, dtype=F64) * 2 + 0.2
    return mean, var


def mvn(mean, cov) -> D.MultivariateNormal:
    return D.MultivariateNormal(mean, covariance_matrix=cov)


def diagonal(mean, var) -> D.Independent:
    return D.Independent(D.Normal(mean, var.sqrt()), 1)


def mixture(separation: float) -> D.MixtureSameFamily:
    """An unequal two-component 1-D mixture with modes at -separation/2 and +separation/2."""
    return vd.gaussian_mixture_1d(
        torch.tensor([0.6, 0.4], dtype=F64),
        torch.tensor([-separation / 2, separation / 2], dtype=F64),
        torch.tensor([1.0, 0.7], dtype=F64),
    )


# --- closed forms against torch.distributions.kl_divergence -------------------------------


@pytest.mark.parametrize("d", [1, 2, 5])
def test_full_matches_torch(d):
    m1, c1 = random_gaussian((3,), d, seed=1)
    m2, c2 = random_gaussian((3,), d, seed=2)
    expected = D.kl_divergence(mvn(m1, c1), mvn(m2, c2))
    torch.testing.assert_close(
        vd.kl_gaussian(m1, c1, m2, c2), expected, rtol=1e-10, atol=1e-12
    )


def test_full_broadcasts_over_batch_dimensions():
    m1, c1 = random_gaussian((4, 1), 3, seed=3)
    m2, c2 = random_gaussian((5,), 3, seed=4)
    kl = vd.kl_gaussian(m1, c1, m2, c2)
    assert kl.shape == (4, 5)
    for i in range(4):
        for j in range(5):
            one = vd.kl_gaussian(m1[i, 0], c1[i, 0], m2[j], c2[j])
            torch.testing.assert_close(kl[i, j], one, rtol=1e-12, atol=1e-12)


def test_diagonal_matches_torch():
    m1, v1 = random_diagonal((4,), 6, seed=5)
    m2, v2 = random_diagonal((4,), 6, seed=6)
    expected = D.kl_divergence(diagonal(m1, v1), diagonal(m2, v2))
    torch.testing.assert_close(
        vd.kl_diagonal_gaussian(m1, v1, m2, v2), expected, rtol=1e-10, atol=1e-12
    )


def test_standard_normal_matches_torch():
    m, v = random_diagonal((2, 3), 4, seed=7)
    zero, one = torch.zeros_like(m), torch.ones_like(v)
    expected = D.kl_divergence(diagonal(m, v), diagonal(zero, one))
    torch.testing.assert_close(
        vd.kl_standard_normal(m, v), expected, rtol=1e-10, atol=1e-12
    )


# --- the special cases agree with the general one -----------------------------------------


def test_diagonal_equals_full_with_diagonal_covariances():
    m1, v1 = random_diagonal((3,), 4, seed=8)
    m2, v2 = random_diagonal((3,), 4, seed=9)
    full = vd.kl_gaussian(m1, torch.diag_embed(v1), m2, torch.diag_embed(v2))
    torch.testing.assert_close(
        vd.kl_diagonal_gaussian(m1, v1, m2, v2), full, rtol=1e-12, atol=1e-12
    )


def test_standard_normal_equals_general_case():
    m, v = random_diagonal((5,), 3, seed=10)
    zero, eye = torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64)
    special = vd.kl_standard_normal(m, v)
    torch.testing.assert_close(
        special,
        vd.kl_diagonal_gaussian(m, v, zero, torch.ones(3, dtype=F64)),
        rtol=1e-12,
        atol=1e-12,
    )
    torch.testing.assert_close(
        special,
        vd.kl_gaussian(m, torch.diag_embed(v), zero, eye),
        rtol=1e-12,
        atol=1e-12,
    )


def test_product_of_independent_factors_is_sum_of_factor_kls():
    """Block-diagonal covariances: the joint KL is the sum of the blocks' KLs."""
    a1, A1 = random_gaussian((), 2, seed=11)
    b1, B1 = random_gaussian((), 3, seed=12)
    a2, A2 = random_gaussian((), 2, seed=13)
    b2, B2 = random_gaussian((), 3, seed=14)
    joint = vd.kl_gaussian(
        torch.cat([a1, b1]),
        torch.block_diag(A1, B1),
        torch.cat([a2, b2]),
        torch.block_diag(A2, B2),
    )
    parts = vd.kl_gaussian(a1, A1, a2, A2) + vd.kl_gaussian(b1, B1, b2, B2)
    torch.testing.assert_close(joint, parts, rtol=1e-12, atol=1e-12)


def test_diagonal_kl_is_sum_of_one_dimensional_kls():
    m1, v1 = random_diagonal((), 4, seed=15)
    m2, v2 = random_diagonal((), 4, seed=16)
    one_d = [
        vd.kl_gaussian(m1[k : k + 1], v1[k].view(1, 1), m2[k : k + 1], v2[k].view(1, 1))
        for k in range(4)
    ]
    torch.testing.assert_close(
        vd.kl_diagonal_gaussian(m1, v1, m2, v2),
        torch.stack(one_d).sum(),
        rtol=1e-12,
        atol=1e-12,
    )


# --- against Monte Carlo, within 4 standard errors ----------------------------------------


def test_full_matches_monte_carlo():
    m1, c1 = random_gaussian((2,), 3, seed=17)
    m2, c2 = random_gaussian((2,), 3, seed=18)
    estimate = vd.kl_monte_carlo(mvn(m1, c1), mvn(m2, c2), n=100_000)
    assert_within_se(estimate.value, vd.kl_gaussian(m1, c1, m2, c2), estimate.se)


def test_diagonal_and_standard_normal_match_monte_carlo():
    m1, v1 = random_diagonal((3,), 4, seed=19)
    m2, v2 = random_diagonal((3,), 4, seed=20)
    estimate = vd.kl_monte_carlo(diagonal(m1, v1), diagonal(m2, v2), n=100_000)
    assert_within_se(
        estimate.value, vd.kl_diagonal_gaussian(m1, v1, m2, v2), estimate.se
    )
    prior = diagonal(torch.zeros(4, dtype=F64), torch.ones(4, dtype=F64))
    estimate = vd.kl_monte_carlo(diagonal(m1, v1), prior, n=100_000)
    assert_within_se(estimate.value, vd.kl_standard_normal(m1, v1), estimate.se)


def test_monte_carlo_broadcasts_an_unbatched_q():
    m1, v1 = random_diagonal((3,), 2, seed=21)
    prior = diagonal(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    estimate = vd.kl_monte_carlo(diagonal(m1, v1), prior, n=10)
    assert estimate.value.shape == estimate.se.shape == (3,)


# --- non-negativity, and zero exactly at equality ------------------------------------------


def test_kl_is_zero_for_equal_gaussians():
    m, c = random_gaussian((4,), 3, seed=22)
    torch.testing.assert_close(
        vd.kl_gaussian(m, c, m, c), torch.zeros(4, dtype=F64), rtol=0, atol=1e-12
    )
    m, v = random_diagonal((4,), 3, seed=23)
    torch.testing.assert_close(
        vd.kl_diagonal_gaussian(m, v, m, v),
        torch.zeros(4, dtype=F64),
        rtol=0,
        atol=1e-12,
    )


def test_kl_is_positive_for_different_gaussians():
    m1, c1 = random_gaussian((200,), 3, seed=24)
    m2, c2 = random_gaussian((200,), 3, seed=25)
    assert bool((vd.kl_gaussian(m1, c1, m2, c2) > 0).all())
    # a change in the mean only, or in the covariance only, is also detected
    assert bool((vd.kl_gaussian(m1, c1, m1 + 1e-3, c1) > 0).all())
    assert bool((vd.kl_gaussian(m1, c1, m1, 1.01 * c1) > 0).all())


# --- quadrature, the mixture target and the fitted Gaussians ------------------------------


def test_quadrature_matches_closed_form_for_gaussians():
    x = torch.linspace(-20, 20, 4001, dtype=F64)
    p = D.Normal(torch.tensor(0.3, dtype=F64), torch.tensor(0.8, dtype=F64))
    q = D.Normal(torch.tensor(-1.1, dtype=F64), torch.tensor(1.7, dtype=F64))
    exact = vd.kl_diagonal_gaussian(
        p.mean.view(1), p.variance.view(1), q.mean.view(1), q.variance.view(1)
    )
    torch.testing.assert_close(vd.kl_quadrature(p, q, x), exact, rtol=1e-10, atol=0)


def test_quadrature_matches_scipy_and_monte_carlo_for_a_mixture():
    p = mixture(4.0)
    q = D.Normal(torch.tensor(0.5, dtype=F64), torch.tensor(2.0, dtype=F64))
    x = torch.linspace(-20, 20, 4001, dtype=F64)
    grid = vd.kl_quadrature(p, q, x)

    def integrand(t: float) -> float:
        t = torch.tensor(t, dtype=F64)
        return (p.log_prob(t).exp() * (p.log_prob(t) - q.log_prob(t))).item()

    value, abserr = integrate.quad(integrand, -20, 20, limit=200)
    assert abs(grid.item() - value) < max(10 * abserr, 1e-10)
    estimate = vd.kl_monte_carlo(p, q, n=100_000)
    assert_within_se(estimate.value, grid, estimate.se)


def test_quadrature_is_converged_in_spacing_and_range():
    p, q = mixture(3.0), D.Normal(torch.tensor(1.0, dtype=F64), 1.5)
    coarse = vd.kl_quadrature(p, q, torch.linspace(-20, 20, 2001, dtype=F64))
    fine = vd.kl_quadrature(p, q, torch.linspace(-20, 20, 4001, dtype=F64))
    wide = vd.kl_quadrature(p, q, torch.linspace(-40, 40, 8001, dtype=F64))
    assert abs((coarse - fine).item()) < 1e-10
    assert abs((wide - fine).item()) < 1e-10
    assert abs((vd.kl_quadrature(p, q) - fine).item()) < 1e-10  # the default grid


def test_mixture_moments():
    """Mean and variance of the mixture: the law of total variance."""
    p = mixture(3.0)
    w = torch.tensor([0.6, 0.4], dtype=F64)
    m = torch.tensor([-1.5, 1.5], dtype=F64)
    s = torch.tensor([1.0, 0.7], dtype=F64)
    mean = (w * m).sum()
    torch.testing.assert_close(p.mean, mean)
    torch.testing.assert_close(p.variance, (w * (s**2 + m**2)).sum() - mean**2)


@pytest.mark.parametrize("separation", [0.0, 2.0, 6.0])
def test_mass_covering_fit_matches_moments(separation):
    p = mixture(separation)
    q = vd.fit_gaussian_1d(p, direction="pq")
    torch.testing.assert_close(q.mean, p.mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(q.variance, p.variance, rtol=1e-6, atol=0)


def test_fits_of_a_gaussian_target_recover_it():
    p = D.Normal(torch.tensor(0.7, dtype=F64), torch.tensor(1.3, dtype=F64))
    for direction in ("qp", "pq"):
        q = vd.fit_gaussian_1d(p, direction=direction)
        torch.testing.assert_close(q.mean, p.mean, rtol=0, atol=1e-6)
        torch.testing.assert_close(q.stddev, p.stddev, rtol=1e-6, atol=0)


def _kl_qp(q: D.Normal, p) -> float:
    x = q.mean + q.stddev * torch.linspace(-12, 12, 2401, dtype=F64)
    return vd.kl_quadrature(q, p, x).item()


def test_mode_seeking_fit_beats_the_candidates():
    """KL(q || p) at the fit is at most its value at each component and at the moment match."""
    p = mixture(8.0)
    fit = vd.fit_gaussian_1d(p, direction="qp")
    comp = p.component_distribution
    candidates = [D.Normal(p.mean, p.stddev)] + [
        D.Normal(m, s) for m, s in zip(comp.mean, comp.stddev, strict=True)
    ]
    assert all(_kl_qp(fit, p) <= _kl_qp(c, p) + 1e-10 for c in candidates)
    # far-apart modes: q sits on the heavier one, and KL(q || p) is near -log(0.6)
    assert abs(fit.mean.item() - comp.mean[0].item()) < comp.stddev[0].item()
    assert _kl_qp(fit, p) <= -math.log(0.6) + 1e-6


def test_each_fit_is_worse_in_the_other_direction():
    p = mixture(5.0)
    x = torch.linspace(-20, 20, 4001, dtype=F64)
    seek, cover = vd.fit_gaussian_1d(p, "qp"), vd.fit_gaussian_1d(p, "pq")
    assert _kl_qp(seek, p) < _kl_qp(cover, p)
    assert vd.kl_quadrature(p, cover, x) < vd.kl_quadrature(p, seek, x)


# --- bad input ---------------------------------------------------------------------------


def _pair(d: int = 2):
    m, c = random_gaussian((), d, seed=30)
    return m, c


@pytest.mark.parametrize("which", ["cov1", "cov2"])
def test_non_positive_definite_covariance_is_named(which):
    m, c = _pair()
    bad = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64)  # eigenvalues 3 and -1
    args = {"mean1": m, "cov1": c, "mean2": m, "cov2": c, which: bad}
    with raises_naming(which):
        vd.kl_gaussian(**args)


@pytest.mark.parametrize("which", ["cov1", "cov2"])
def test_asymmetric_covariance_is_named(which):
    m, c = _pair()
    bad = c + torch.tensor([[0.0, 0.5], [0.0, 0.0]], dtype=F64)
    args = {"mean1": m, "cov1": c, "mean2": m, "cov2": c, which: bad}
    with raises_naming(which):
        vd.kl_gaussian(**args)


@pytest.mark.parametrize("which", ["mean1", "cov1", "mean2", "cov2"])
def test_nan_in_full_arguments_is_named(which):
    m, c = _pair()
    args = {"mean1": m, "cov1": c, "mean2": m, "cov2": c}
    args[which] = args[which].clone()
    args[which].view(-1)[0] = math.nan
    with raises_naming(which):
        vd.kl_gaussian(**args)


def test_full_shape_mismatches_are_named():
    m, c = _pair(2)
    m3, c3 = random_gaussian((), 3, seed=31)
    with raises_naming("cov1"):
        vd.kl_gaussian(m, c3, m, c)
    with raises_naming("cov2"):
        vd.kl_gaussian(m, c, m, c3)
    with raises_naming("mean2"):
        vd.kl_gaussian(m, c, m3, c)
    with raises_naming("cov1"):
        vd.kl_gaussian(m, torch.ones(2, 3, dtype=F64), m, c)
    mb, cb = random_gaussian((3,), 2, seed=32)
    with raises_naming("cov2"):  # batch (3,) against batch (4,)
        vd.kl_gaussian(mb, cb, m, torch.eye(2, dtype=F64).expand(4, 2, 2))
    with raises_naming("mean1"):
        vd.kl_gaussian([0.0, 0.0], c, m, c)


@pytest.mark.parametrize("which", ["var1", "var2"])
@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_bad_variance_is_named(which, value):
    m, v = random_diagonal((), 3, seed=33)
    bad = v.clone()
    bad[1] = value
    args = {"mean1": m, "var1": v, "mean2": m, "var2": v, which: bad}
    with raises_naming(which):
        vd.kl_diagonal_gaussian(**args)


def test_diagonal_shape_mismatches_and_nan_means_are_named():
    m, v = random_diagonal((), 3, seed=34)
    with raises_naming("var2"):
        vd.kl_diagonal_gaussian(m, v, m, v[:2])
    with raises_naming("mean2"):
        vd.kl_diagonal_gaussian(m, v, m[:2], v)
    with raises_naming("mean1"):
        vd.kl_diagonal_gaussian(torch.full_like(m, math.nan), v, m, v)
    mb, vb = random_diagonal((2,), 3, seed=35)
    with raises_naming("var2"):  # batch (2,) against batch (5,)
        vd.kl_diagonal_gaussian(mb, vb, m, torch.ones(5, 3, dtype=F64))


def test_standard_normal_bad_input_is_named():
    m, v = random_diagonal((), 3, seed=36)
    with raises_naming("var"):
        vd.kl_standard_normal(m, -v)
    with raises_naming("var"):
        vd.kl_standard_normal(m, v[:2])
    with raises_naming("mean"):
        vd.kl_standard_normal(torch.full_like(m, math.nan), v)


def test_monte_carlo_bad_input_is_named():
    p = D.Normal(torch.tensor(0.0, dtype=F64), 1.0)
    q2 = diagonal(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    with raises_naming("p"):
        vd.kl_monte_carlo(torch.zeros(2), p, n=10)
    with raises_naming("q"):
        vd.kl_monte_carlo(p, q2, n=10)
    for n in (0, 1, 2.5):
        with raises_naming("n"):
            vd.kl_monte_carlo(p, p, n=n)


def test_mixture_bad_input_is_named():
    ones = torch.ones(2, dtype=F64)
    with raises_naming("weights"):
        vd.gaussian_mixture_1d(torch.tensor([1.0, -1.0]), ones, ones)
    with raises_naming("stds"):
        vd.gaussian_mixture_1d(ones, ones, torch.tensor([1.0, 0.0]))
    with raises_naming("means"):
        vd.gaussian_mixture_1d(ones, torch.ones(3), ones)
    with raises_naming("means"):
        vd.gaussian_mixture_1d(ones, torch.tensor([0.0, math.nan]), ones)


def test_quadrature_and_fit_bad_input_is_named():
    p = mixture(2.0)
    x = torch.linspace(-10, 10, 101, dtype=F64)
    with raises_naming("x"):
        vd.kl_quadrature(p, p, x.flip(0))
    with raises_naming("x"):
        vd.kl_quadrature(p, p, x[:2])
    with raises_naming("p"):
        vd.kl_quadrature(D.Normal(torch.zeros(2), 1.0), p, x)
    with raises_naming("q"):
        vd.kl_quadrature(p, diagonal(torch.zeros(2), torch.ones(2)), x)
    with raises_naming("direction"):
        vd.fit_gaussian_1d(p, direction="forward")
    with raises_naming("target"):
        vd.fit_gaussian_1d(D.Normal(torch.zeros(2), 1.0))


def test_compare_estimate_with_zero_spread_is_exact_or_infinitely_far():
    # issue 16, D4: KL(p || p) from p's own draws has zero SE; this divided by it
    p = D.Normal(torch.tensor(0.0), 1.0)
    line = vd.compare_estimate(vd.kl_monte_carlo(p, p, n=100), 0.0, digits=2)
    assert line == "0.00 ± 0.00 (0.0 SE from 0.00)"
    off = Estimate(torch.tensor(1.0), torch.tensor(0.0))
    assert vd.compare_estimate(off, 0.0, digits=1) == "1.0 ± 0.0 (inf SE from 0.0)"


def test_compare_estimate_reports_the_distance_in_standard_errors():
    e = Estimate(torch.tensor(1.5), torch.tensor(0.25))
    assert vd.compare_estimate(e, 1.0, digits=2) == "1.50 ± 0.25 (2.0 SE from 1.00)"
    with raises_naming("estimate"):
        vd.compare_estimate(Estimate(torch.zeros(2), torch.ones(2)), 0.0)
    with raises_naming("digits"):
        vd.compare_estimate(e, 1.0, digits=0)


# --- the second moment of the importance weight ---------------------------------------


def _mvn(mean, cov):
    return D.MultivariateNormal(
        torch.tensor(mean, dtype=torch.float64), torch.tensor(cov, dtype=torch.float64)
    )


def test_weight_second_moment_matches_monte_carlo():
    """A proposal wide enough that (p/q)^2 has finite variance, so the SE is valid."""
    p = _mvn([0.3, -0.2], [[0.5, 0.1], [0.1, 0.4]])
    q = _mvn([0.5, 0.0], [[1.2, -0.1], [-0.1, 0.9]])
    z = q.sample((400_000,))
    ratio2 = torch.exp(2 * (p.log_prob(z) - q.log_prob(z)))
    se = ratio2.std() / math.sqrt(len(ratio2))
    assert_within_se(ratio2.mean(), vd.weight_second_moment(p, q), se)


def test_weight_second_moment_is_one_for_equal_and_infinite_for_narrow_proposals():
    p = _mvn([1.0, 2.0], [[1.0, 0.3], [0.3, 0.5]])
    assert vd.weight_second_moment(p, p) == pytest.approx(1.0, abs=1e-12)
    # 1-D: finite exactly while the proposal sd exceeds the target sd / sqrt(2)
    target = _mvn([0.0], [[1.0]])
    assert math.isfinite(vd.weight_second_moment(target, _mvn([0.0], [[0.51]])))
    assert vd.weight_second_moment(target, _mvn([0.0], [[0.49]])) == math.inf


def test_weight_second_moment_matches_the_one_dimensional_formula():
    """For N(0, 1) against N(m, s^2): s^2 / sqrt(2 s^2 - 1) * exp(m^2 / (2 s^2 - 1))."""
    m, s = 0.7, 1.3
    exact = s**2 / math.sqrt(2 * s**2 - 1) * math.exp(m**2 / (2 * s**2 - 1))
    value = vd.weight_second_moment(_mvn([0.0], [[1.0]]), _mvn([m], [[s**2]]))
    assert value == pytest.approx(exact, rel=1e-12)


def test_weight_second_moment_rejects_bad_input():
    p = _mvn([0.0], [[1.0]])
    with raises_naming("target"):
        vd.weight_second_moment(D.Normal(0.0, 1.0), p)
    with raises_naming("proposal"):
        vd.weight_second_moment(p, _mvn([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]))


def test_kl_quadrature_on_a_grid_that_misses_p_is_an_error():
    # issue 16, D9: a grid far from p integrated p's tail and returned about 0
    p = D.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    q = D.Normal(torch.tensor(1.0, dtype=torch.float64), 1.0)
    with raises_naming("x"):
        vd.kl_quadrature(p, q, torch.linspace(20, 30, 101, dtype=torch.float64))
    with raises_naming("x"):  # half of p's mass
        vd.kl_quadrature(p, q, torch.linspace(0, 12, 1001, dtype=torch.float64))


@pytest.mark.parametrize("ratio", [1 + 1e-9, 1 + 1e-6, 1 - 1e-4, 0.99, 3.0, 1e-8, 1e8])
def test_kl_of_nearly_equal_variances_is_accurate_to_rounding(ratio):
    """KL = (r - 1 - log r) / 2 in one dimension; near r = 1 the direct form cancels to a
    relative error of eps / (r - 1)^2 (3e-11 at r = 1 + 1e-6), the stable one does not."""
    mpmath.mp.dps = 40
    r = mpmath.mpf(ratio)
    exact = float((r - 1 - mpmath.log(r)) / 2)
    zero, var = torch.zeros(1, dtype=F64), torch.tensor([ratio], dtype=F64)
    for kl in (
        vd.kl_diagonal_gaussian(zero, var, zero, torch.ones(1, dtype=F64)),
        vd.kl_standard_normal(zero, var),
    ):
        assert abs(float(kl) - exact) <= 1e-13 * exact
