"""Tests for vbtutor.flows: invertibility, log-determinants against autograd, densities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_within_se, mean_and_se, raises_naming
from scipy.linalg import expm
from torch import distributions as D
from torch.autograd.functional import jacobian

from vbtutor import flows

DIM = 3


def _perturbed(t: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A float64 copy of ``t`` with every parameter moved off its initial value."""
    g = torch.Generator().manual_seed(seed)
    t = t.double()
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return t


def _transforms():
    mask = torch.tensor([True, False, True])
    return {
        "affine": flows.Affine(torch.randn(DIM), torch.tensor([2.0, -0.5, 1.5])),
        "planar": flows.Planar(DIM),
        "additive": flows.AdditiveCoupling(mask, hidden=(16,)),
        "affine_coupling": flows.AffineCoupling(mask, hidden=(16,)),
    }


@pytest.fixture(params=list(_transforms()))
def transform(request):
    return _perturbed(_transforms()[request.param])


@pytest.fixture
def x():
    return torch.randn(6, DIM, dtype=torch.float64)


def test_inverse_undoes_forward(transform, x):
    assert torch.allclose(transform.inverse(transform(x)), x, atol=1e-10)
    assert torch.allclose(transform(transform.inverse(x)), x, atol=1e-10)


def test_log_det_matches_autograd_jacobian(transform, x):
    log_det = transform.log_abs_det_jacobian(x, transform(x))
    for i in range(x.shape[0]):
        jac = jacobian(lambda v: transform(v[None])[0], x[i])
        expected = torch.linalg.slogdet(jac).logabsdet
        assert torch.allclose(log_det[i], expected, atol=1e-10)


def test_transforms_reject_wrong_width(transform):
    with raises_naming("x"):
        transform(torch.zeros(2, DIM + 1, dtype=torch.float64))
    with raises_naming("y"):
        transform.inverse(torch.zeros(DIM, dtype=torch.float64))
    with raises_naming("y"):
        transform.log_abs_det_jacobian(
            torch.zeros(2, DIM, dtype=torch.float64),
            torch.zeros(3, DIM, dtype=torch.float64),
        )


def test_additive_coupling_has_zero_log_det_and_unit_triangular_jacobian(x):
    t = _perturbed(flows.AdditiveCoupling(torch.tensor([True, False, True])))
    assert torch.equal(t.log_abs_det_jacobian(x), torch.zeros(x.shape[0]).double())
    jac = jacobian(lambda v: t(v[None])[0], x[0])
    assert torch.allclose(jac.diagonal(), torch.ones(DIM, dtype=torch.float64))
    # rows of passed-through coordinates are rows of the identity
    assert torch.allclose(jac[[0, 2]], torch.eye(DIM, dtype=torch.float64)[[0, 2]])


def test_affine_coupling_jacobian_is_triangular_with_exp_s_diagonal(x):
    mask = torch.tensor([True, True, False])  # z1 = first two, z2 = last
    t = _perturbed(flows.AffineCoupling(mask, hidden=(16,)))
    jac = jacobian(lambda v: t(v[None])[0], x[0])
    s, _ = t._s_t(x[:1])
    assert torch.allclose(jac[2, 2], s[0, 2].exp())
    assert torch.allclose(jac[:2], torch.eye(DIM, dtype=torch.float64)[:2])
    assert jac[2, :2].abs().min() > 0  # the block d z2 / d z1 is dense


def test_planar_u_hat_keeps_w_dot_u_above_minus_one():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        u, w = 5 * torch.randn(2, DIM, generator=g, dtype=torch.float64)
        assert w @ flows.planar_u_hat(u, w) >= -1 - 1e-12  # rounding
    w = torch.tensor([1.0, 0.0])
    u = torch.tensor([3.0, -2.0])  # already w.u > -1: still changed, but smoothly
    assert torch.isfinite(flows.planar_u_hat(u, w)).all()


def test_flow_log_prob_matches_transformed_distribution(x):
    loc, scale = torch.randn(DIM).double(), torch.tensor([2.0, -0.5, 1.5]).double()
    flow = flows.Flow([flows.Affine(loc, scale)])
    base = D.Independent(D.Normal(torch.zeros(DIM).double(), 1.0), 1)
    ref = D.TransformedDistribution(base, [D.AffineTransform(loc, scale, 1)])
    assert torch.allclose(flow.log_prob(x), ref.log_prob(x), atol=1e-12)
    gauss = D.MultivariateNormal(loc, torch.diag(scale**2))
    assert torch.allclose(flow.log_prob(x), gauss.log_prob(x), atol=1e-12)


def test_forward_and_inverse_densities_agree_for_a_composed_flow():
    mask = torch.tensor([True, False, True])
    flow = flows.Flow(
        [
            _perturbed(flows.AffineCoupling(mask, hidden=(8,)), 0),
            _perturbed(flows.Planar(DIM), 1),
            _perturbed(flows.AdditiveCoupling(~mask, hidden=(8,)), 2),
        ]
    )
    z, log_q = flow.sample_and_log_prob(50)
    assert torch.allclose(flow.log_prob(z), log_q, atol=1e-9)


def test_flow_density_integrates_to_one_on_a_grid():
    mask = torch.tensor([True, False])
    flow = flows.Flow(
        [
            _perturbed(flows.AffineCoupling(mask, hidden=(8,))),
            _perturbed(flows.AffineCoupling(~mask, hidden=(8,)), 1),
        ]
    )
    with torch.no_grad():
        log_z = flows.grid_log_normaliser(flow.log_prob, limit=12.0, n=600)
    assert abs(log_z.item()) < 1e-4


def test_flow_expectation_by_sampling_within_standard_error():
    loc, scale = torch.tensor([1.0, -2.0]), torch.tensor([0.5, -3.0])
    flow = flows.Flow([flows.Affine(loc, scale)]).double()
    z, _ = flow.sample_and_log_prob(20_000)
    mean, se = mean_and_se(z.detach())
    assert_within_se(mean, loc.numpy(), se)


def test_flow_rejects_mixed_dims_and_bad_input():
    with raises_naming("transforms"):
        flows.Flow([flows.Planar(2), flows.Planar(3)])
    with raises_naming("transforms"):
        flows.Flow([torch.nn.Linear(2, 2)])
    with raises_naming("z"):
        flows.Flow([flows.Planar(2)])(torch.zeros(4, 3))
    with raises_naming("n"):
        flows.Flow([flows.Planar(2)]).sample_and_log_prob(0)


def test_constructors_reject_bad_arguments():
    with raises_naming("mask"):
        flows.AdditiveCoupling(torch.tensor([True, True]))
    with raises_naming("mask"):
        flows.AffineCoupling(torch.zeros(2, 2))
    with raises_naming("scale"):
        flows.Affine(torch.zeros(2), torch.tensor([1.0, 0.0]))
    with raises_naming("scale_bound"):
        flows.AffineCoupling(torch.tensor([True, False]), scale_bound=-1.0)
    with raises_naming("dim"):
        flows.Planar(0)
    with raises_naming("u"):
        flows.planar_u_hat(torch.zeros(3), torch.ones(2))


def test_grid_normaliser_of_a_gaussian_and_rezende_energies():
    sd = torch.tensor([0.7, 1.3], dtype=torch.float64)
    log_z = flows.grid_log_normaliser(lambda z: -0.5 * ((z / sd) ** 2).sum(-1), 10.0)
    assert abs(log_z.item() - math.log(2 * math.pi * sd.prod().item())) < 1e-8
    for which in (1, 2, 3, 4):
        lz = flows.grid_log_normaliser(
            lambda z, w=which: -flows.rezende_energy(z, w), 6.0, 300
        )
        assert torch.isfinite(lz)
    with raises_naming("which"):
        flows.rezende_energy(torch.zeros(1, 2), 5)
    with raises_naming("z"):
        flows.rezende_energy(torch.zeros(1, 3), 1)
    with raises_naming("limit"):
        flows.grid_log_normaliser(lambda z: z[:, 0], -1.0)


def test_planar_field_trace_matches_autograd(x):
    g = torch.Generator().manual_seed(3)
    u, w = torch.randn(2, DIM, generator=g, dtype=torch.float64)
    b = 0.3
    trace = flows.planar_field_trace(x, u, w, b)
    for i in range(x.shape[0]):
        jac = jacobian(lambda v: u * torch.tanh(v @ w + b), x[i])
        assert torch.allclose(trace[i], jac.trace(), atol=1e-12)
    with raises_naming("w"):
        flows.planar_field_trace(x, u, w[:2], b)


def test_cnf_on_a_linear_field_matches_the_gaussian_pushforward():
    a = torch.tensor([[-0.5, 1.0], [-0.3, 0.2]], dtype=torch.float64)
    t1 = 1.3
    z0 = torch.randn(5, 2, dtype=torch.float64)
    z1, delta = flows.cnf_integrate(lambda z: z @ a.T, z0, t1)
    m = torch.from_numpy(expm(a.numpy() * t1))
    assert torch.allclose(z1, z0 @ m.T, atol=1e-6)
    assert torch.allclose(delta, -t1 * a.trace().expand(5), atol=1e-8)
    base = D.MultivariateNormal(torch.zeros(2).double(), torch.eye(2).double())
    pushed = D.MultivariateNormal(torch.zeros(2).double(), m @ m.T)
    assert torch.allclose(base.log_prob(z0) + delta, pushed.log_prob(z1), atol=1e-6)
    with raises_naming("t1"):
        flows.cnf_integrate(lambda z: z, z0, 0.0)


def test_leapfrog_is_volume_preserving_and_nearly_conserves_energy():
    def grad_u(q):
        return q**3 - q

    def step(v):
        q, p = flows.leapfrog(v[None, :2], v[None, 2:], grad_u, 0.1, 5)
        return torch.cat([q, p], -1)[0]

    v = torch.tensor([0.3, -1.2, 0.5, 0.7], dtype=torch.float64)
    jac = jacobian(step, v)
    assert abs(torch.linalg.slogdet(jac).logabsdet.item()) < 1e-12
    with raises_naming("p"):
        flows.leapfrog(torch.zeros(2, 2), torch.zeros(2, 3), grad_u, 0.1)
    with raises_naming("step"):
        flows.leapfrog(torch.zeros(2, 2), torch.zeros(2, 2), grad_u, 0.0)


def test_sampling_is_reproducible_with_a_generator():
    flow = flows.Flow([flows.Planar(2)])
    a, _ = flow.sample_and_log_prob(5, torch.Generator().manual_seed(0))
    b, _ = flow.sample_and_log_prob(5, torch.Generator().manual_seed(0))
    assert np.array_equal(a.detach().numpy(), b.detach().numpy())


def test_planar_u_hat_with_w_zero_is_u_and_has_finite_gradients():
    # issue 16, D8: w = 0 (a translation, invertible for any u) divided 0 by 0
    u = torch.tensor([1.0, -2.0], requires_grad=True)
    w = torch.zeros(2, requires_grad=True)
    u_hat = flows.planar_u_hat(u, w)
    torch.testing.assert_close(u_hat, u.detach())
    u_hat.sum().backward()
    assert torch.isfinite(u.grad).all() and torch.isfinite(w.grad).all()


def test_planar_log_det_stays_finite_where_the_jacobian_is_tiny():
    # issue 16, D7: w.u_hat rounds to -1 for w.u = -50, and log|1 + w.u_hat| was -inf
    t = flows.Planar(2).double()
    with torch.no_grad():
        t.w.copy_(torch.tensor([1.0, 0.0]))
        t.u.copy_(torch.tensor([-50.0, 0.0]))
    x = torch.zeros(1, 2, dtype=torch.float64)
    assert t.log_abs_det_jacobian(x, t(x)).item() == pytest.approx(-50.0, rel=1e-9)
    with torch.no_grad():  # w = 0: a translation, log-determinant 0
        t.w.zero_()
        t.b.fill_(0.3)
    assert t.log_abs_det_jacobian(x, t(x)).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "loc, scale, name",
    [
        ([0.0, 0.0], [1.0, math.inf], "scale"),
        ([0.0, 0.0], [0.0, 1.0], "scale"),
        ([0.0, -math.inf], [1.0, 1.0], "loc"),
    ],
)
def test_affine_rejects_infinite_or_zero_parameters(loc, scale, name):
    # issue 16: an infinite scale silently produced inf
    with raises_naming(name):
        flows.Affine(torch.tensor(loc), torch.tensor(scale))
