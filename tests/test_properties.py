"""Properties that must hold for any valid input, on inputs that hypothesis draws.

Each test states an invariant of the mathematics (Jensen's inequality, KL >= 0, a flow
and its inverse, weights that sum to one) and checks it over random shapes and values,
including the extremes of the allowed range; the bad-input tests check that NaN, infinite
and non-positive arguments are refused with a ValueError naming them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import raises_naming
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vbtutor import bounds, flows, models
from vbtutor import distributions as vd
from vbtutor.stick_breaking import stick_breaking

F64 = torch.float64
FAST = settings(max_examples=40, deadline=None)


def matrices(low: float, high: float, rows=(1, 30), cols=(1, 4)):
    """float64 arrays of shape (rows, cols) with entries in [low, high]."""
    shape = st.tuples(st.integers(*rows), st.integers(*cols))
    return arrays(np.float64, shape, elements=st.floats(low, high))


def rounding(t: torch.Tensor) -> float:
    """A float64 rounding allowance for sums of entries of ``t``'s size."""
    return 1e-12 * (1.0 + float(t.detach().abs().max()))


@FAST
@given(matrices(-700.0, 700.0))
def test_log_mean_exp_is_at_least_the_mean_of_the_logs(values):
    log_w = torch.from_numpy(values)  # Jensen: log E[w] >= E[log w]
    gap = bounds.log_mean_exp(log_w) - log_w.mean(0)
    assert (gap >= -rounding(log_w)).all()
    equal = log_w[:1].expand_as(log_w)  # equality for equal weights
    assert torch.allclose(bounds.log_mean_exp(equal), equal[0], rtol=0, atol=1e-9)


@FAST
@given(
    seed=st.integers(0, 2**16),
    dims=st.tuples(st.integers(1, 5), st.integers(1, 3)),
    k=st.integers(1, 30),
    widen=st.floats(0.3, 5.0),
)
def test_iwae_is_at_least_the_elbo_on_the_same_draws(seed, dims, k, widen):
    model = models.LinearGaussian.random(*dims, seed=seed)
    x = model.sample(3)
    post = model.posterior(x)
    q = torch.distributions.MultivariateNormal(post.loc, widen * post.covariance_matrix)
    z = q.sample((k,))
    iwae = bounds.iwae(model, q, x, z=z).value
    elbo = bounds.elbo(model, q, x, z=z).value
    assert (iwae >= elbo - rounding(elbo)).all()


def gaussian_pairs(d: int):
    """Means in [-1e3, 1e3] and variances in [1e-4, 1e4] of two d-dimensional Gaussians."""
    return st.tuples(
        arrays(np.float64, (2, d), elements=st.floats(-1e3, 1e3)),
        arrays(np.float64, (2, d), elements=st.floats(1e-4, 1e4)),
    )


@FAST
@given(st.integers(1, 6).flatmap(gaussian_pairs))
def test_diagonal_gaussian_kl_is_nonnegative_and_zero_at_equal_arguments(pair):
    means, variances = pair
    mu1, mu2 = torch.from_numpy(means)
    var1, var2 = torch.from_numpy(variances)
    kl = vd.kl_diagonal_gaussian(mu1, var1, mu2, var2)
    scale = float((mu1 - mu2).pow(2).div(var2).sum() + 1)
    assert kl >= -1e-12 * scale
    assert vd.kl_diagonal_gaussian(mu1, var1, mu1, var1).abs() < 1e-12


@FAST
@given(seed=st.integers(0, 2**16), d=st.integers(1, 5), jitter=st.floats(1e-3, 10.0))
def test_full_gaussian_kl_is_nonnegative_and_zero_at_equal_arguments(seed, d, jitter):
    g = torch.Generator().manual_seed(seed)
    mean1, mean2 = torch.randn(2, d, generator=g, dtype=F64)
    a, b = torch.randn(2, d, d, generator=g, dtype=F64)
    cov1 = a @ a.T + jitter * torch.eye(d, dtype=F64)
    cov2 = b @ b.T + jitter * torch.eye(d, dtype=F64)
    kl = vd.kl_gaussian(mean1, cov1, mean2, cov2)
    expected = torch.distributions.kl_divergence(  # an independent implementation
        torch.distributions.MultivariateNormal(mean1, cov1),
        torch.distributions.MultivariateNormal(mean2, cov2),
    )
    assert kl >= 0 and torch.allclose(kl, expected, rtol=1e-6, atol=1e-9)
    assert vd.kl_gaussian(mean1, cov1, mean1, cov1).abs() < 1e-9


def coupling(kind: str, seed: int, mask: list[bool]):
    torch.manual_seed(seed)
    mask = torch.tensor(mask)
    if kind == "additive":
        return flows.AdditiveCoupling(mask, hidden=(8,)).double()
    return flows.AffineCoupling(mask, hidden=(8,)).double()


def autograd_log_det(transform, x: torch.Tensor) -> torch.Tensor:
    """log|det J| of each row by the full Jacobian from autograd."""
    rows = [
        torch.autograd.functional.jacobian(lambda r: transform(r[None])[0], row)
        for row in x
    ]
    return torch.stack([torch.linalg.slogdet(j).logabsdet for j in rows])


@FAST
@given(
    kind=st.sampled_from(["additive", "affine"]),
    seed=st.integers(0, 2**16),
    mask=st.lists(st.booleans(), min_size=2, max_size=5).filter(
        lambda m: any(m) and not all(m)
    ),
    points=st.integers(1, 6),
    spread=st.floats(0.1, 20.0),
)
def test_coupling_layers_invert_and_their_log_det_matches_autograd(
    kind, seed, mask, points, spread
):
    transform = coupling(kind, seed, mask)
    x = spread * torch.randn(points, len(mask), dtype=F64)
    y = transform(x)
    assert torch.allclose(transform.inverse(y), x, rtol=1e-9, atol=1e-9)
    log_det = transform.log_abs_det_jacobian(x)
    assert torch.allclose(log_det, autograd_log_det(transform, x), atol=1e-9)


@FAST
@given(
    w=arrays(np.float64, 2, elements=st.floats(-5, 5)),
    u=arrays(np.float64, 2, elements=st.floats(-50, 50)),
    b=st.floats(-5, 5),
    x=arrays(np.float64, (3, 2), elements=st.floats(-10, 10)),
)
def test_planar_log_det_matches_autograd(w, u, b, x):
    w, u, x = (torch.from_numpy(a) for a in (w, u, x))
    if w.norm() < 1e-3:  # w = 0: the map is a shift, u_hat is undefined
        return
    transform = flows.Planar(2).double()
    with torch.no_grad():
        transform.w.copy_(w)
        transform.u.copy_(u)
        transform.b.fill_(b)
    log_det = transform.log_abs_det_jacobian(x)
    assert torch.isfinite(log_det).all()
    # compared as determinants: near det = 0 (w . u_hat close to -1) the autograd
    # Jacobian loses the digits that the package's stable form keeps, so the logs
    # may differ; the determinants agree to rounding at the size of their terms
    scale = 1.0 + float(w.norm() * transform.u_hat().detach().norm())
    det = autograd_log_det(transform, x).exp()
    assert torch.allclose(log_det.exp(), det, rtol=0, atol=1e-12 * scale)


@FAST
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 5), st.integers(1, 8)),
        elements=st.floats(0.0, 1.0),
    )
)
def test_stick_weights_are_nonnegative_and_sum_to_one(v):
    weights = stick_breaking(torch.from_numpy(v))
    assert weights.shape[-1] == v.shape[-1] + 1 and (weights >= 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(len(v), dtype=F64))


# -- bad input: refused, with the argument named ------------------------------------

BAD_VALUES = [float("nan"), float("inf"), -float("inf"), 0.0, -1.0]


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_kl_refuses_a_bad_variance(bad):
    ok = torch.ones(3, dtype=F64)
    bad_var = torch.tensor([1.0, bad, 1.0], dtype=F64)
    with raises_naming("var1"):
        vd.kl_diagonal_gaussian(ok, bad_var, ok, ok)
    with raises_naming("var2"):
        vd.kl_diagonal_gaussian(ok, ok, ok, bad_var)


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.5])
def test_stick_breaking_refuses_fractions_outside_the_unit_interval(bad):
    with raises_naming("v"):
        stick_breaking(torch.tensor([0.2, bad], dtype=F64))
