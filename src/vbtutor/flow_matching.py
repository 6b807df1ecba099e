"""Flow matching: marginal velocities of Gaussian paths, the conditional loss, ODE steps.

Time runs over ``[0, 1]`` with noise at 0 and data at 1 (Lipman et al.), the reverse of
:mod:`vbtutor.sde`. Chapter flow_matching.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import distributions as D

from ._checks import check_event_shape, check_finite, check_positive_int, check_tensor
from .diffusion import diffused_mixture

__all__ = [
    "straight_path_velocity",
    "gaussian_path_velocity",
    "cfm_loss",
    "euler_flow",
    "heun_flow",
]


def straight_path_velocity(
    mixture: D.MixtureSameFamily, x: torch.Tensor, t: float | torch.Tensor
) -> torch.Tensor:
    r"""The marginal velocity of flow matching's straight path to a Gaussian mixture.

    For :math:`x_t = (1 - t)x_0 + t x_1`, :math:`x_0 \sim \mathcal N(0, I)` and
    :math:`x_1` from ``mixture`` (components :math:`\mathcal N(m_k, \mathrm{diag}\,
    s_k^2)`), :math:`x_t` and :math:`x_1 - x_0` are jointly Gaussian given the component
    k, so :math:`u_k(x) = \mathbb E[x_1 - x_0 \mid x_t = x, k] = m_k + c_k / v_k\,(x -
    t m_k)` with :math:`v_k = (1 - t)^2 + t^2 s_k^2` and :math:`c_k = t s_k^2 - (1 - t)`
    per coordinate. The marginal velocity :math:`\mathbb E[x_1 - x_0 \mid x_t = x]` is
    the average of the :math:`u_k` under the posterior of k given :math:`x_t = x`. The
    density of :math:`x_t` is ``diffused_mixture(mixture, t, (1 - t) ** 2)``.
    Chapter: flow_matching.

    Arguments:
        mixture: a ``MixtureSameFamily`` of ``Independent(Normal)`` components, e.g.
            :func:`vbtutor.diffusion.ring_mixture`.
        x: points, shape ``(n, d)``.
        t: a time in [0, 1], or one per point, shape ``(n,)``; may require grad.

    Returns:
        The velocity at each point, shape ``(n, d)``.

    Example:
        >>> from vbtutor.diffusion import ring_mixture
        >>> ring = ring_mixture(4)
        >>> x = torch.randn(3, 2)  # at t = 0 the velocity is E[x_1] - x = -x
        >>> bool(torch.allclose(straight_path_velocity(ring, x, 0.0), -x))
        True
    """
    if not isinstance(mixture, D.MixtureSameFamily):
        raise ValueError("mixture must be a torch MixtureSameFamily of Gaussians")
    check_tensor("x", x, dim=2)
    check_event_shape(mixture, x)
    check_finite("t", t)
    base = mixture.component_distribution.base_dist
    m, s2 = base.loc, base.scale.expand_as(base.loc) ** 2  # (K, d)
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() > 1 or (t.dim() == 1 and t.shape != x.shape[:1]):
        raise ValueError(
            f"t must be a number or of shape ({len(x)},), got {tuple(t.shape)}"
        )
    t = t.reshape(-1, 1, 1) if t.dim() == 1 else t
    var, cov = (1 - t) ** 2 + t**2 * s2, t * s2 - (1 - t)  # (K, d) or (n, K, d)
    diff = x.unsqueeze(-2) - t * m  # (n, K, d)
    log_post = mixture.mixture_distribution.logits - 0.5 * (
        diff**2 / var + var.log()
    ).sum(-1)
    each = m + cov / var * diff
    return (log_post.softmax(-1).unsqueeze(-1) * each).sum(-2)


def gaussian_path_velocity(
    mixture: D.MixtureSameFamily,
    alpha: Callable[[torch.Tensor], torch.Tensor],
    sigma: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    t: float | torch.Tensor,
) -> torch.Tensor:
    r"""The marginal velocity of a Gaussian path to a Gaussian mixture, from its score.

    For :math:`x_t = \alpha_t x_1 + \sigma_t x_0` with :math:`x_0 \sim \mathcal N(0, I)`
    and :math:`x_1` from ``mixture``, Tweedie's formula
    :math:`\mathbb E[x_0 \mid x_t = x] = -\sigma_t \nabla\log p_t(x)` turns the
    average of the conditional velocities :math:`\dot\alpha_t x_1 + \dot\sigma_t x_0`
    into

    .. math::
        v(x, t) = \frac{\dot\alpha_t}{\alpha_t}\,x + \Big(\frac{\dot\alpha_t
        \sigma_t^2}{\alpha_t} - \dot\sigma_t \sigma_t\Big) \nabla \log p_t(x),

    with :math:`p_t` = ``diffused_mixture(mixture, alpha(t), sigma(t) ** 2)``. The
    derivatives of the schedules come from autograd. The straight path is
    ``alpha(t) = t``, ``sigma(t) = 1 - t`` (:func:`straight_path_velocity` gives the
    same field in closed form). If ``x`` requires grad, the result is differentiable in
    ``x`` (as :func:`vbtutor.fokker_planck.continuity_residual` needs). Chapter
    flow_matching.

    Arguments:
        mixture: a ``MixtureSameFamily`` of ``Independent(Normal)`` components.
        alpha, sigma: the schedules, functions of a 0-dim tensor ``t`` built from
            torch operations; ``alpha(t)`` must be positive.
        x: points, shape ``(n, d)``.
        t: one time for all points.

    Returns:
        The velocity at each point, shape ``(n, d)``.

    References:
        Lipman et al., Flow matching guide and code, section 4.8, arXiv:2412.06264.

    Example:
        >>> from vbtutor.diffusion import ring_mixture
        >>> ring = ring_mixture(4, dtype=torch.float64)
        >>> x = torch.randn(3, 2, dtype=torch.float64)
        >>> v = gaussian_path_velocity(ring, lambda t: t, lambda t: 1 - t, x, 0.5)
        >>> bool(torch.allclose(v, straight_path_velocity(ring, x, 0.5)))
        True
    """
    if not isinstance(mixture, D.MixtureSameFamily):
        raise ValueError("mixture must be a torch MixtureSameFamily of Gaussians")
    for name, f in (("alpha", alpha), ("sigma", sigma)):
        if not callable(f):
            raise ValueError(f"{name} must be callable, got {type(f).__name__}")
    check_tensor("x", x, dim=2)
    check_event_shape(mixture, x)
    check_finite("t", t)
    with torch.enable_grad():
        time = torch.tensor(float(t), dtype=x.dtype, requires_grad=True)
        a, s = torch.as_tensor(alpha(time)), torch.as_tensor(sigma(time))
        da, ds = (_derivative(value, time) for value in (a, s))
        a, s = a.detach(), s.detach()
        if not float(a) > 0:
            raise ValueError(f"alpha(t) must be positive, got {float(a)!r}")
        p_t = diffused_mixture(mixture, a, s**2)
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(
            p_t.log_prob(xg).sum(), xg, create_graph=x.requires_grad
        )
    return (da / a) * x + (da * s**2 / a - ds * s) * grad


def _derivative(value: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
    """d value / d time by autograd; 0 for a value that does not depend on time."""
    if not value.requires_grad:
        return torch.zeros_like(time).detach()
    (grad,) = torch.autograd.grad(value, time, retain_graph=True)
    return grad


def cfm_loss(
    net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x1: torch.Tensor
) -> torch.Tensor:
    r"""Conditional flow matching with the linear path, noise at ``t = 0`` and data at 1.

    :math:`x_t = (1 - t) x_0 + t x_1` with :math:`x_0 \sim \mathcal N(0, I)`,
    :math:`t \sim \mathcal U(0, 1)`; the loss is
    :math:`\mathbb E\|v_\theta(x_t, t) - (x_1 - x_0)\|^2`.

    Arguments:
        net: maps ``(x_t, t)`` (``t`` a float tensor of shape ``x_t.shape[:-1]``) to a
            velocity.
        x1: a mini-batch of data, shape ``(n, d)``, or ``(S, n, d)``: one batch per
            stacked network.

    Returns:
        The loss averaged over the batch: a scalar, or shape ``(S,)``.

    References:
        Lipman et al., Flow matching for generative modeling, arXiv:2210.02747;
        Liu et al., Flow straight and fast, arXiv:2209.03003.

    Example:
        >>> cfm_loss(lambda x, t: torch.zeros_like(x), torch.zeros(8, 2)).dim()
        0
    """
    check_tensor("x1", x1, min_dim=2)
    t = torch.rand(x1.shape[:-1], dtype=x1.dtype, device=x1.device)
    x0 = torch.randn_like(x1)
    xt = (1 - t).unsqueeze(-1) * x0 + t.unsqueeze(-1) * x1
    return (net(xt, t) - (x1 - x0)).pow(2).sum(-1).mean(-1)


@torch.no_grad()
def euler_flow(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    n_steps: int,
    t0: float = 0.0,
    t1: float = 1.0,
) -> torch.Tensor:
    r"""Integrate :math:`\dot x = v(x, t)` from ``t0`` to ``t1`` with ``n_steps`` Euler steps.

    Arguments:
        velocity: ``v(x, t)`` with ``t`` a tensor of shape ``(n,)``.
        x: the initial states, shape ``(n, d)``.
        n_steps: number of steps (= network evaluations), at least 1.
        t0, t1: start and end times.

    Returns:
        The states at ``t1``.

    Example:
        >>> euler_flow(lambda x, t: torch.ones_like(x), torch.zeros(3, 2), 4)[0].tolist()
        [1.0, 1.0]
    """
    check_tensor("x", x, dim=2)
    check_positive_int("n_steps", n_steps)
    dt = (t1 - t0) / n_steps
    for i in range(n_steps):
        t = torch.full((x.shape[0],), t0 + i * dt, dtype=x.dtype, device=x.device)
        x = x + dt * velocity(x, t)
    return x


@torch.no_grad()
def heun_flow(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    n_steps: int,
    t0: float = 0.0,
    t1: float = 1.0,
) -> torch.Tensor:
    r"""Integrate :math:`\dot x = v(x, t)` from ``t0`` to ``t1`` with ``n_steps`` Heun steps.

    Each step is Euler's predictor :math:`\tilde x = x + \Delta t\, v(x, t)` followed by
    the trapezoidal corrector
    :math:`x \leftarrow x + \tfrac12 \Delta t\,[v(x, t) + v(\tilde x, t + \Delta t)]`:
    two network evaluations per step and a global error of order :math:`\Delta t^2`
    (Euler's is of order :math:`\Delta t`).

    Arguments:
        velocity: ``v(x, t)`` with ``t`` a tensor of shape ``(n,)``.
        x: the initial states, shape ``(n, d)``.
        n_steps: number of steps, at least 1 (``2 * n_steps`` evaluations).
        t0, t1: start and end times.

    Returns:
        The states at ``t1``.

    References:
        Süli and Mayers, An introduction to numerical analysis (2003), section 12.5;
        Karras et al., Elucidating the design space of diffusion-based generative
        models, arXiv:2206.00364.

    Example:
        >>> heun_flow(lambda x, t: t.unsqueeze(-1), torch.zeros(3, 1), 1)[0].tolist()
        [0.5]
    """
    check_tensor("x", x, dim=2)
    check_positive_int("n_steps", n_steps)
    dt = (t1 - t0) / n_steps
    for i in range(n_steps):
        t = torch.full((x.shape[0],), t0 + i * dt, dtype=x.dtype, device=x.device)
        v = velocity(x, t)
        v_next = velocity(x + dt * v, t + dt)
        x = x + 0.5 * dt * (v + v_next)
    return x
