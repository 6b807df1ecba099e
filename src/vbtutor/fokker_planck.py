"""The equations behind the reverse SDE, in one dimension (chapter fokker_planck).

For an SDE :math:`dX = \\mu(X, t)\\,dt + \\sigma(X, t)\\,dW` the density of :math:`X_t`
obeys the Fokker-Planck equation, a transition density obeys the Kolmogorov backward
equation, and the reversed process has Anderson's drift. The chapter checks each of
them on the VP-SDE, whose marginals are known in closed form, with three independent
tools from here: exact derivatives of a density by autograd (:func:`derivatives`), a
finite-difference solution of the Fokker-Planck equation (:func:`solve_fokker_planck`),
and the log-density carried along the probability-flow ODE
(:func:`flow_log_density`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy import sparse
from scipy.integrate import solve_ivp

from ._checks import check_positive, check_positive_int, check_tensor
from .flows import cnf_integrate
from .sde import vp_marginal

__all__ = [
    "VPMixture1D",
    "derivatives",
    "continuity_residual",
    "ito_errors",
    "solve_fokker_planck",
    "flow_log_density",
]

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class VPMixture1D:
    r"""A 1-D Gaussian mixture noised by the VP-SDE, with :math:`p_t` in closed form.

    The data :math:`\sum_k w_k \mathcal N(m_k, s_k^2)` evolve under
    :math:`dX = -\tfrac12\beta(t)X\,dt + \sqrt{\beta(t)}\,dW`; at time :math:`t` every
    component is :math:`\mathcal N(a_t m_k, a_t^2 s_k^2 + 1 - a_t^2)` with
    :math:`a_t = e^{-B(t)/2}` (:func:`vbtutor.sde.vp_marginal`). Every method
    works elementwise on tensors ``x`` and ``t`` that broadcast, and is differentiable.

    Arguments:
        weights: mixture weights, positive, summing to 1.
        means, sds: the components' means and standard deviations (positive).
        beta_min, beta_max: the VP schedule.

    Example:
        >>> p = VPMixture1D([0.5, 0.5], [-1.0, 1.0], [0.5, 0.5])
        >>> round(float(p.density(torch.tensor(0.0), torch.tensor(1.0))), 4)  # ~N(0, 1)
        0.3989
    """

    def __init__(
        self, weights, means, sds, beta_min: float = 0.1, beta_max: float = 20.0
    ):
        dtype = torch.get_default_dtype()
        self.w, self.m, self.s = (
            torch.as_tensor(v, dtype=dtype) for v in (weights, means, sds)
        )
        if not (self.w.dim() == 1 and self.w.shape == self.m.shape == self.s.shape):
            raise ValueError("weights, means and sds must be 1-D and of one length")
        check_positive("weights", self.w)
        check_positive("sds", self.s)
        if abs(float(self.w.sum()) - 1) > 1e-9:
            raise ValueError(f"weights must sum to 1, got {float(self.w.sum())}")
        check_positive("beta_min", beta_min)
        check_positive("beta_max", beta_max)
        self.beta_min, self.beta_max = beta_min, beta_max

    def beta(self, t):
        """The noise rate :math:`\beta(t)` (as :func:`vbtutor.sde.vp_beta`, with the
        schedule checked once, not at every call of a solver)."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def drift(self, x, t):
        """:math:`\\mu(x, t) = -\tfrac12\beta(t)x`."""
        return -0.5 * self.beta(t) * x

    def diffusion_sq(self, x, t):
        """:math:`\\sigma^2(x, t) = \beta(t)`, the same at every ``x``."""
        return self.beta(t) + 0 * x

    def components(self, t):
        """Means and variances of the components at ``t``, shape ``t.shape + (K,)``."""
        a, v = vp_marginal(t, self.beta_min, self.beta_max)
        a, v = a.unsqueeze(-1), v.unsqueeze(-1)
        return a * self.m, a**2 * self.s**2 + v

    def _terms(self, x, t):
        mean, var = self.components(torch.as_tensor(t, dtype=self.m.dtype))
        x = torch.as_tensor(x, dtype=self.m.dtype).unsqueeze(-1)
        each = self.w * torch.exp(-((x - mean) ** 2) / (2 * var))
        return each / torch.sqrt(2 * math.pi * var), (mean - x) / var

    def density(self, x, t):
        """:math:`p_t(x)`."""
        return self._terms(x, t)[0].sum(-1)

    def score(self, x, t):
        r""":math:`\partial_x \log p_t(x)`, in closed form."""
        each, pull = self._terms(x, t)
        return (each * pull).sum(-1) / each.sum(-1)

    def cdf(self, x, t):
        r""":math:`P(X_t \le x)`."""
        mean, var = self.components(torch.as_tensor(t, dtype=self.m.dtype))
        x = torch.as_tensor(x, dtype=self.m.dtype).unsqueeze(-1)
        return (self.w * torch.special.ndtr((x - mean) / var.sqrt())).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of :math:`X_0`, shape ``(n,)``."""
        check_positive_int("n", n)
        k = torch.multinomial(self.w, n, replacement=True, generator=generator)
        noise = torch.randn(n, generator=generator, dtype=self.m.dtype)
        return self.m[k] + self.s[k] * noise


def derivatives(fn: Field, x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""A function of :math:`(x, t)` and its derivatives :math:`f_t, f_x, f_{xx}`, by autograd.

    Arguments:
        fn: maps tensors ``x`` and ``t`` of one shape to values of that shape,
            elementwise and differentiable (e.g. a density :math:`p_t(x)`).
        x, t: points and times, tensors of one shape (float64 for exact checks).

    Returns:
        Dict with ``f``, ``f_t``, ``f_x`` and ``f_xx``, each of the shape of ``x``.

    Example:
        >>> d = derivatives(lambda x, t: x**2 * t, torch.tensor([3.0]), torch.tensor([2.0]))
        >>> [float(d[k]) for k in ("f", "f_t", "f_x", "f_xx")]
        [18.0, 9.0, 12.0, 4.0]
    """
    check_tensor("x", x)
    check_tensor("t", t)
    if x.shape != t.shape:
        raise ValueError(f"x and t must have one shape, got {x.shape} and {t.shape}")
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        t = t.detach().requires_grad_(True)
        f = fn(x, t)
        if f.shape != x.shape:
            raise ValueError(f"fn must return the shape of x, got {tuple(f.shape)}")
        f_x, f_t = torch.autograd.grad(f.sum(), (x, t), create_graph=True)
        (f_xx,) = torch.autograd.grad(f_x.sum(), x)
    return {"f": f.detach(), "f_t": f_t.detach(), "f_x": f_x.detach(), "f_xx": f_xx}


def continuity_residual(
    density: Field, velocity: Field, x: torch.Tensor, t: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The residual of the continuity equation :math:`\partial_t p + \nabla\cdot(v\,p) = 0`.

    A density :math:`p_t` is carried by the flow of a velocity field :math:`v` exactly
    when this holds. The time derivative comes from a Jacobian-vector product in t, the
    divergence from one gradient per coordinate. Chapters: fokker_planck, flow_matching.

    Arguments:
        density: ``p(x, t)`` for points ``(n, d)`` and a 0-dim tensor t, shape ``(n,)``,
            twice differentiable.
        velocity: ``v(x, t)``, shape ``(n, d)``, differentiable in x.
        x: points, shape ``(n, d)`` (float64 for exact checks).
        t: the time.

    Returns:
        ``(residual, scale)``, each of shape ``(n,)``: the left-hand side, and the sum
        of the absolute values of its terms, the size of what should cancel.

    Example:
        >>> from torch import distributions as D
        >>> def p(x, t):  # N(t, 1) in one dimension, carried by v = 1
        ...     return D.Normal(t, 1.0).log_prob(x[:, 0]).exp()
        >>> res, scale = continuity_residual(p, lambda x, t: torch.ones_like(x),
        ...                                  torch.tensor([[0.3], [1.2]]), 0.5)
        >>> bool(res.abs().max() < 1e-6 * scale.min())
        True
    """
    check_tensor("x", x, dim=2)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        time = torch.tensor(float(t), dtype=x.dtype, device=x.device)
        p = density(x, time)
        if p.shape != x.shape[:1]:
            raise ValueError(
                f"density must return one value per point, shape ({len(x)},), "
                f"got {tuple(p.shape)}"
            )
        _, p_t = torch.autograd.functional.jvp(
            lambda s: density(x, s), time, torch.ones_like(time)
        )
        flux = velocity(x, time) * p.unsqueeze(-1)
        if flux.shape != x.shape:
            raise ValueError(f"velocity must return shape {tuple(x.shape)}")
        terms = [p_t.detach()]
        for i in range(x.shape[1]):
            (grad,) = torch.autograd.grad(flux[:, i].sum(), x, retain_graph=True)
            terms.append(grad[:, i])
    terms = torch.stack(terms)
    return terms.sum(0), terms.abs().sum(0)


def ito_errors(
    mixture: VPMixture1D, n_steps: int, n_paths: int, generator: torch.Generator
) -> tuple[float, float, float]:
    r"""Itô's lemma for :math:`f(x) = x^2` along simulated VP paths from 0 to 1.

    Each path takes ``n_steps`` Euler-Maruyama steps with increments
    :math:`\Delta W`, and the change :math:`f(X_1) - f(X_0)` is compared with the sum
    of Itô's terms, :math:`\sum (\mu f' + \tfrac12\sigma^2 f'')\Delta t + \sigma f'
    \Delta W` (here :math:`f' = 2x`, :math:`f'' = 2`), and with the same sum without
    the second-order term :math:`\tfrac12\sigma^2 f''\Delta t`, the ordinary chain rule.

    Returns:
        ``(rms, missing, missing_se)``: the root mean square over paths of the change
        minus Itô's sum (it shrinks like :math:`\sqrt{\Delta t}`), the mean over paths
        of the change minus the chain rule's sum (it tends to
        :math:`\int_0^1\beta\,dt = B(1)`), and that mean's standard error.

    Example:
        >>> p = VPMixture1D([1.0], [0.0], [1.0])
        >>> rms, missing, _ = ito_errors(p, 1000, 500, torch.Generator().manual_seed(0))
        >>> rms < 1, round(missing)  # B(1) = 10.05
        (True, 10)
    """
    check_positive_int("n_steps", n_steps)
    check_positive_int("n_paths", n_paths)
    x = mixture.sample(n_paths, generator)
    start, dt = x.clone(), 1.0 / n_steps
    ito, chain = torch.zeros_like(x), torch.zeros_like(x)
    for i in range(n_steps):
        beta = mixture.beta(i * dt)
        dw = math.sqrt(dt) * torch.randn(n_paths, generator=generator, dtype=x.dtype)
        first_order = (
            2 * x * mixture.drift(x, i * dt) * dt + 2 * x * math.sqrt(beta) * dw
        )
        chain += first_order
        ito += first_order + 0.5 * beta * 2 * dt
        x = x + mixture.drift(x, i * dt) * dt + math.sqrt(beta) * dw
    change = x**2 - start**2
    missing = change - chain
    return (
        float((change - ito).pow(2).mean().sqrt()),
        float(missing.mean()),
        float(missing.std() / math.sqrt(n_paths)),
    )


def solve_fokker_planck(
    drift: Callable[[np.ndarray, float], np.ndarray],
    diffusion_sq: Callable[[np.ndarray, float], np.ndarray],
    p0: np.ndarray,
    x: np.ndarray,
    times: np.ndarray,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> np.ndarray:
    r"""Solve the Fokker-Planck equation on a grid of points.

    The equation is :math:`\partial_t p = -\partial_x(\mu p) + \tfrac12\partial_x^2(\sigma^2 p)`.

    The method of lines: central differences of second order in :math:`x` on the
    uniform grid ``x``, with :math:`p = 0` beyond its two ends, turn the equation into
    one ODE per grid point, integrated by SciPy's implicit BDF solver (the diffusion
    term makes it stiff). The error shrinks like the square of the grid spacing while
    the density is negligible at the ends.

    Arguments:
        drift: :math:`\mu(x, t)` on an array of points.
        diffusion_sq: :math:`\sigma^2(x, t)` on an array of points, non-negative.
        p0: the density at ``times[0]`` on the grid.
        x: a uniform grid, increasing, at least 5 points.
        times: increasing times at which to report the density; the first is the start.
        rtol, atol: the ODE solver's tolerances.

    Returns:
        The density on the grid at each time, shape ``(len(times), len(x))``.

    Example:
        >>> x = np.linspace(-6, 6, 241)
        >>> p0 = np.exp(-x**2 / 2) / np.sqrt(2 * np.pi)  # N(0, 1) is stationary for
        >>> p = solve_fokker_planck(lambda x, t: -x, lambda x, t: 2 + 0 * x, p0, x, [0, 1])
        >>> bool(np.abs(p[1] - p0).max() < 1e-4)  # dX = -X dt + sqrt(2) dW
        True
    """
    x, p0, times = (np.asarray(a, dtype=float) for a in (x, p0, times))
    if x.ndim != 1 or len(x) < 5 or not np.allclose(np.diff(x), x[1] - x[0]):
        raise ValueError("x must be a uniform increasing grid of at least 5 points")
    if x[1] <= x[0]:
        raise ValueError("x must be increasing")
    if p0.shape != x.shape or not np.isfinite(p0).all():
        raise ValueError(f"p0 must be finite with the shape of x, got {p0.shape}")
    if times.ndim != 1 or len(times) < 2 or not (np.diff(times) > 0).all():
        raise ValueError("times must be increasing, at least two of them")
    check_positive("rtol", rtol)
    check_positive("atol", atol)
    h = x[1] - x[0]

    def rhs(t: float, p: np.ndarray) -> np.ndarray:
        flux = np.pad(drift(x, t) * p, 1)  # mu p, zero beyond the grid
        spread = np.pad(diffusion_sq(x, t) * p, 1)  # sigma^2 p
        return (
            -(flux[2:] - flux[:-2]) / (2 * h)
            + 0.5 * (spread[2:] - 2 * spread[1:-1] + spread[:-2]) / h**2
        )

    bands = sparse.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(len(x), len(x)))
    solution = solve_ivp(
        rhs,
        (times[0], times[-1]),
        p0,
        method="BDF",
        t_eval=times,
        jac_sparsity=bands,
        rtol=rtol,
        atol=atol,
    )
    if not solution.success:
        raise RuntimeError(f"solve_ivp failed: {solution.message}")
    return solution.y.T


def flow_log_density(
    velocity: Field,
    log_density_end: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    t0: float,
    t1: float,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> torch.Tensor:
    r""":math:`\log p_{t_0}(x)` from :math:`\log p_{t_1}`, carrying ``x`` along an ODE.

    The ODE is :math:`\dot x = v(x, t)`.

    Along a path of the ODE, :math:`\frac{d}{dt}\log p_t(x_t) = -\nabla\cdot v(x_t, t)`
    (the instantaneous change of variables), so
    :math:`\log p_{t_0}(x) = \log p_{t_1}(x_{t_1}) + \int_{t_0}^{t_1} \nabla\cdot v\,dt`.
    The time is appended to the state as a coordinate with velocity 1, which adds 0 to
    the divergence, and :func:`vbtutor.flows.cnf_integrate` integrates the pair with the
    exact divergence.

    Several models' densities at the same points come from one solve: pass a list of
    velocities, and the paths of all of them are integrated together (the solver's
    per-step cost is paid once; its step sizes are chosen for all paths at once).

    Arguments:
        velocity: ``v(x, t)`` for points ``x`` of shape ``(n, d)`` and times ``t`` of
            shape ``(n, 1)``; differentiable in ``x``. Or a list or tuple of ``S`` such
            fields, one per model.
        log_density_end: :math:`\log p_{t_1}` of points of shape ``(n, d)``; with
            ``S`` velocities it gets all models' end points, stacked model by model,
            shape ``(S * n, d)``.
        x: points at time ``t0``, shape ``(n, d)``.
        t0, t1: the start and end times, ``t0 < t1``.
        rtol, atol: the solver's tolerances.

    Returns:
        :math:`\log p_{t_0}(x)`, shape ``(n,)``, or ``(S, n)`` for ``S`` velocities.

    Example:
        >>> from torch.distributions import Normal
        >>> grow = lambda x, t: x  # dx/dt = x doubles the sd in time log 2
        >>> end = lambda x: Normal(0.0, 2.0).log_prob(x).sum(-1)
        >>> x = torch.tensor([[0.5]], dtype=torch.float64)
        >>> got = flow_log_density(grow, end, x, 0.0, float(np.log(2)))
        >>> round(got.item(), 6) == round(Normal(0.0, 1.0).log_prob(x).item(), 6)
        True
    """
    check_tensor("x", x, dim=2)
    if not t0 < t1:
        raise ValueError(f"t0 must be below t1, got {t0} and {t1}")
    if isinstance(velocity, (list, tuple)):
        return _joint_log_density(
            list(velocity), log_density_end, x, t0, t1, rtol, atol
        )
    if not callable(velocity):
        raise ValueError(f"velocity must be callable, got {type(velocity).__name__}")
    d = x.shape[1]

    def field(state: torch.Tensor) -> torch.Tensor:
        points, t = state[:, :d], state[:, d:]
        return torch.cat([velocity(points, t), torch.ones_like(t)], dim=1)

    start = torch.cat([x, torch.full_like(x[:, :1], t0)], dim=1)
    end, delta = cnf_integrate(field, start, t1=t1 - t0, rtol=rtol, atol=atol)
    return log_density_end(end[:, :d]) - delta


def _joint_log_density(velocities, log_density_end, x, t0, t1, rtol, atol):
    """:func:`flow_log_density` for several velocities at once, as one stacked field."""
    if not velocities or not all(callable(v) for v in velocities):
        raise ValueError("velocity must be callable or a non-empty list of callables")
    n = x.shape[0]

    def stacked(points: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        rows = [slice(k * n, (k + 1) * n) for k in range(len(velocities))]
        return torch.cat(
            [v(points[r], t[r]) for v, r in zip(velocities, rows, strict=True)]
        )

    repeated = x.repeat(len(velocities), 1)
    log_p = flow_log_density(stacked, log_density_end, repeated, t0, t1, rtol, atol)
    return log_p.reshape(len(velocities), n)
