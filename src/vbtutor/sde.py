"""The VP-SDE: its marginals, scores, SDE and ODE samplers, and denoising score matching.

Continuous time runs over ``[0, 1]`` with the data at 0 and noise at 1 (Song et al.).
Chapters sde, fokker_planck and flow_matching.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import distributions as D

from ._checks import check_event_shape, check_finite, check_positive, check_tensor

__all__ = [
    "vp_beta",
    "vp_marginal",
    "score",
    "vp_score",
    "vp_reverse_drift",
    "euler_maruyama",
    "langevin_step",
    "vp_predictor_corrector",
    "probability_flow",
    "dsm_loss",
]


def vp_beta(t, beta_min: float = 0.1, beta_max: float = 20.0):
    r"""The VP-SDE's linear noise rate :math:`\beta(t) = \beta_\min + t(\beta_\max - \beta_\min)`.

    Example:
        >>> vp_beta(1.0)
        20.0
    """
    check_positive("beta_min", beta_min)
    check_positive("beta_max", beta_max)
    check_finite("t", t)
    return beta_min + t * (beta_max - beta_min)


def vp_marginal(t, beta_min: float = 0.1, beta_max: float = 20.0):
    r"""Scale and variance of the VP-SDE marginal :math:`x_t | x_0`.

    For :math:`dx = -\tfrac12\beta(t)x\,dt + \sqrt{\beta(t)}\,dw`,
    :math:`x_t | x_0 \sim \mathcal N(e^{-B(t)/2} x_0, (1 - e^{-B(t)}) I)` with
    :math:`B(t) = \int_0^t \beta(s)\,ds = \beta_\min t + \tfrac12(\beta_\max - \beta_\min)t^2`.

    Arguments:
        t: time(s) in [0, 1], a float or tensor; a floating tensor keeps its dtype, a
            number or an integer tensor takes torch's default dtype.
        beta_min, beta_max: the schedule, positive.

    Returns:
        ``(scale, var)``, like ``t``.

    References:
        Song et al., Score-based generative modeling through stochastic differential
        equations, arXiv:2011.13456, eq. 29.

    Example:
        >>> scale, var = vp_marginal(torch.tensor(0.0))
        >>> float(scale), float(var)
        (1.0, 0.0)
    """
    check_positive("beta_min", beta_min)
    check_positive("beta_max", beta_max)
    check_finite("t", t)
    t = torch.as_tensor(t)
    if not t.is_floating_point():  # a floating tensor keeps its precision
        t = t.to(torch.get_default_dtype())
    big_b = beta_min * t + 0.5 * (beta_max - beta_min) * t**2
    return torch.exp(-0.5 * big_b), -torch.expm1(-big_b)


def score(dist: D.Distribution, x: torch.Tensor) -> torch.Tensor:
    r"""The score :math:`\nabla_x \log p(x)` of a distribution with a differentiable ``log_prob``.

    Example:
        >>> score(D.Normal(0.0, 2.0), torch.tensor([1.0]))
        tensor([-0.2500])
    """
    check_tensor("x", x, min_dim=1)
    check_event_shape(dist, x)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(dist.log_prob(x).sum(), x)
    return grad


def vp_score(
    net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor, float | torch.Tensor], torch.Tensor]:
    r"""The VP-SDE's score :math:`s_\theta(x, t) = -\epsilon_\theta(x, t) / \sigma_t`.

    A network trained with :func:`dsm_loss` predicts the noise
    :math:`\epsilon` in :math:`x_t = e^{-B(t)/2} x_0 + \sigma_t \epsilon`, and
    :math:`\nabla_x \log p_t(x \mid x_0) = -\epsilon / \sigma_t`, with
    :math:`\sigma_t^2 = 1 - e^{-B(t)}` (:func:`vp_marginal`). Chapters: sde,
    flow_matching, fokker_planck.

    Arguments:
        net: a noise predictor ``net(x, t)`` with ``t`` of shape ``(n,)``.

    Returns:
        ``score(x, t)`` for x of shape ``(n, d)`` and ``t`` a number or a tensor of shape
        ``(n,)``, in the precision of x; differentiable in x (the samplers of this
        module run it without gradients).

    Example:
        >>> eps = lambda x, t: x  # the exact noise predictor when the data are 0
        >>> s = vp_score(eps)(torch.ones(1, 1), 1.0)
        >>> bool(torch.isclose(s, -1 / vp_marginal(1.0)[1].sqrt()))
        True
    """
    if not callable(net):
        raise ValueError(f"net must be callable, got {type(net).__name__}")

    def score_at(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, dim=2)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[:1])
        sigma = vp_marginal(t)[1].sqrt().to(x.dtype).unsqueeze(-1)
        return -net(x, t) / sigma

    return score_at


def vp_reverse_drift(
    score_fn: Callable[[torch.Tensor, float], torch.Tensor],
    ode: bool = False,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
) -> Callable[[torch.Tensor, float], torch.Tensor]:
    r"""The drift of the reverse-time VP-SDE, or of its probability-flow ODE, from a score.

    With :math:`f(x, t) = -\tfrac12\beta(t)\,x` and :math:`g(t)^2 = \beta(t)`, the
    reverse SDE has drift :math:`f - g^2 s = -\tfrac12\beta(t)\,[x + 2 s(x, t)]` and the
    probability-flow ODE :math:`f - \tfrac12 g^2 s = -\tfrac12\beta(t)\,[x + s(x, t)]`;
    both are integrated from t = 1 down towards 0 (:func:`euler_maruyama` with a
    decreasing grid).

    Arguments:
        score_fn: ``s(x, t)``, e.g. :func:`vp_score` of a network.
        ode: the probability-flow ODE's drift instead of the reverse SDE's.
        beta_min, beta_max: the VP schedule (:func:`vp_beta`).

    Returns:
        A function ``(x, t) -> drift``, of the shape of ``x``.

    References:
        Anderson (1982), doi:10.1016/0304-4149(82)90051-5; Song et al. (2021), eqs. 6
        and 13, arXiv:2011.13456.

    Example:
        >>> drift = vp_reverse_drift(lambda x, t: -x)  # the score of N(0, I)
        >>> drift(torch.ones(1, 2), 0.0)  # -0.05 (1 - 2)
        tensor([[0.0500, 0.0500]])
    """
    if not callable(score_fn):
        raise ValueError(f"score_fn must be callable, got {type(score_fn).__name__}")
    if not isinstance(ode, bool):
        raise ValueError(f"ode must be True or False, got {ode!r}")
    check_positive("beta_min", beta_min)
    check_positive("beta_max", beta_max)
    weight = 1.0 if ode else 2.0

    def drift(x: torch.Tensor, t: float) -> torch.Tensor:
        return -0.5 * vp_beta(t, beta_min, beta_max) * (x + weight * score_fn(x, t))

    return drift


@torch.no_grad()
def euler_maruyama(
    drift: Callable[[torch.Tensor, float], torch.Tensor],
    diffusion: Callable[[float], float],
    x: torch.Tensor,
    times: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Euler-Maruyama for :math:`dx = f(x, t)\,dt + g(t)\,dw` along a grid of times.

    Each step is :math:`x \leftarrow x + f(x, t)\,\Delta t + g(t)\sqrt{|\Delta t|}\,z`. A
    decreasing grid integrates a reverse-time SDE (negative :math:`\Delta t`, as in
    Song et al.'s eq. 6). A sampler: no gradient flows through it (a drift may still
    use autograd inside, as :func:`score` does).

    Arguments:
        drift: ``f(x, t)``; diffusion: ``g(t)``.
        x: the initial state, shape ``(n, d)``.
        times: a 1-D grid of at least two times, monotone.
        generator: optional random stream.

    Returns:
        The state at ``times[-1]``.

    References:
        Kloeden and Platen, Numerical solution of SDEs (1992); Song et al.,
        arXiv:2011.13456.

    Example:
        >>> grid = torch.linspace(0, 1, 11)
        >>> euler_maruyama(lambda x, t: -x, lambda t: 0.0, torch.ones(1, 1), grid)
        tensor([[0.3487]])
    """
    check_tensor("x", x, dim=2)
    check_tensor("times", times, dim=1)
    if len(times) < 2:
        raise ValueError("times needs at least two entries")
    steps = times.diff()
    if not (bool((steps > 0).all()) or bool((steps < 0).all())):
        raise ValueError("times must be strictly monotone")
    for t, dt in zip(times[:-1].tolist(), steps.tolist(), strict=True):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x + drift(x, t) * dt + diffusion(t) * math.sqrt(abs(dt)) * z
    return x


def _check_snr(snr) -> None:
    if not (isinstance(snr, (int, float)) and 0 <= snr < math.inf):
        raise ValueError(f"snr must be a finite number >= 0, got {snr!r}")


@torch.no_grad()
def langevin_step(
    score: Callable[[torch.Tensor, float], torch.Tensor],
    x: torch.Tensor,
    t: float,
    snr: float = 0.16,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""One Langevin step, :math:`x + \varepsilon\, s(x, t) + \sqrt{2\varepsilon}\, z`.

    Langevin dynamics :math:`dx = \nabla\log p\,dt + \sqrt2\,dw` has :math:`p` as its
    stationary law, so small steps move samples towards :math:`p_t` and leave samples of
    it (nearly) where they are. The step size follows Song et al.'s signal-to-noise rule,
    :math:`\varepsilon = 2\,(r\,\overline{\|z\|} / \overline{\|s\|})^2` with the norms
    averaged over the batch (their factor :math:`\alpha_i \approx 1` of the VP-SDE is
    dropped).

    Arguments:
        score: ``s(x, t)``, the score of the target; x: shape ``(n, d)``.
        t: the time at which to evaluate the score.
        snr: the signal-to-noise ratio :math:`r`, at least 0.
        generator: optional random stream.

    Returns:
        The moved points, shaped like ``x``.

    References:
        Song et al. (2021), Algorithm 5, arXiv:2011.13456.

    Example:
        >>> x = torch.zeros(4, 2)
        >>> langevin_step(lambda x, t: -x, x, 0.5, snr=0.0).abs().max().item()
        0.0
    """
    check_tensor("x", x, dim=2)
    _check_snr(snr)
    check_finite("t", t)
    grad = score(x, t)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    ratio = z.norm(dim=-1).mean() / grad.norm(dim=-1).mean().clamp_min(1e-12)
    eps = 2 * (snr * ratio) ** 2
    return x + eps * grad + (2 * eps).sqrt() * z


@torch.no_grad()
def vp_predictor_corrector(
    score: Callable[[torch.Tensor, float], torch.Tensor],
    x: torch.Tensor,
    times: torch.Tensor,
    snr: float = 0.16,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Song et al.'s predictor-corrector sampler for the VP-SDE, along a decreasing grid.

    Each step is one Euler-Maruyama step of the reverse VP-SDE,
    :math:`dx = -\tfrac12\beta(t)\,[x + 2 s(x, t)]\,dt + \sqrt{\beta(t)}\,d\bar w`
    (the predictor, as :func:`euler_maruyama`), followed by one :func:`langevin_step`
    at the new time (the corrector): two score evaluations per step.

    Arguments:
        score: ``s(x, t)``, e.g. :func:`vp_score` of a network.
        x: the starting noise at ``times[0]``, shape ``(n, d)``.
        times: a strictly decreasing 1-D grid of at least two times.
        snr: the corrector's signal-to-noise ratio (0 makes it do nothing).
        generator: optional random stream.

    Returns:
        The state at ``times[-1]``.

    References:
        Song et al. (2021), section 4.2 and Algorithm 2, arXiv:2011.13456.

    Example:
        >>> grid = torch.linspace(1.0, 0.5, 3)
        >>> vp_predictor_corrector(lambda x, t: -x, torch.zeros(5, 2), grid).shape
        torch.Size([5, 2])
    """
    check_tensor("x", x, dim=2)
    check_tensor("times", times, dim=1)
    if len(times) < 2 or not bool((times.diff() < 0).all()):
        raise ValueError("times must be a strictly decreasing grid of at least 2 times")
    _check_snr(snr)
    drift = vp_reverse_drift(score)
    for t, s in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x + drift(x, t) * (s - t) + math.sqrt(vp_beta(t) * (t - s)) * z
        x = langevin_step(score, x, s, snr, generator)
    return x


def probability_flow(
    score_fn: Callable[[torch.Tensor, float], torch.Tensor],
    x: torch.Tensor,
    t0: float = 1.0,
    t1: float = 1e-3,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> tuple[torch.Tensor, int]:
    r"""Solve the VP probability-flow ODE with SciPy's adaptive Runge-Kutta.

    The ODE is :math:`\dot x = -\tfrac12\beta(t)[x + s(x, t)]`.

    It shares its marginals with the VP-SDE; it is integrated from ``t0`` to ``t1``
    with ``scipy.integrate.solve_ivp`` (RK45, adaptive steps).

    Arguments:
        score_fn: ``s(x, t)``, the score of the marginal at time ``t``.
        x: states at ``t0``, shape ``(n, d)``.
        t0, t1: start and end times in [0, 1].
        beta_min, beta_max: the VP schedule.
        rtol, atol: solver tolerances.

    Returns:
        ``(x_t1, nfe)``: the states at ``t1`` and the number of score evaluations.

    References:
        Song et al. (2021), eq. 13, arXiv:2011.13456.

    Example:
        >>> x, nfe = probability_flow(lambda x, t: -x, torch.ones(2, 1))
        >>> x.shape
        torch.Size([2, 1])
    """
    from scipy.integrate import solve_ivp

    check_tensor("x", x, dim=2)
    shape, dtype = x.shape, x.dtype
    velocity = vp_reverse_drift(
        score_fn, ode=True, beta_min=beta_min, beta_max=beta_max
    )

    def rhs(t, y):
        xt = torch.as_tensor(y, dtype=dtype).reshape(shape)
        with torch.no_grad():
            v = velocity(xt, t)
        return v.reshape(-1).double().numpy()

    sol = solve_ivp(rhs, (t0, t1), x.reshape(-1).double().numpy(), rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return torch.as_tensor(sol.y[:, -1], dtype=dtype).reshape(shape), int(sol.nfev)


def dsm_loss(
    net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
    t_min: float = 1e-3,
) -> torch.Tensor:
    r"""Denoising score matching for the VP-SDE, in the noise parameterisation.

    With :math:`x_t = a_t x_0 + \sigma_t \epsilon` the minimiser of
    :math:`\mathbb E\|s(x_t, t) + \epsilon/\sigma_t\|^2` is the score of :math:`p_t`;
    weighting by :math:`\sigma_t^2` and writing :math:`s = -\epsilon_\theta/\sigma_t`
    gives :math:`\mathbb E\|\epsilon_\theta(x_t, t) - \epsilon\|^2`, with
    :math:`t \sim \mathcal U(t_\min, 1)`.

    Arguments:
        net: maps ``(x_t, t)`` (``t`` a float tensor of shape ``x_t.shape[:-1]``) to
            predicted noise.
        x0: a mini-batch of data, shape ``(n, d)``, or ``(S, n, d)``: one batch per
            stacked network.
        beta_min, beta_max: the VP schedule; t_min: smallest time, in (0, 1).

    Returns:
        The loss averaged over the batch: a scalar, or shape ``(S,)``.

    References:
        Vincent, A connection between score matching and denoising autoencoders (2011);
        Song et al. (2021), eq. 7, arXiv:2011.13456.

    Example:
        >>> dsm_loss(lambda x, t: torch.zeros_like(x), torch.zeros(8, 2)).dim()
        0
    """
    check_tensor("x0", x0, min_dim=2)
    if not 0 < t_min < 1:
        raise ValueError(f"t_min must lie in (0, 1), got {t_min!r}")
    shape = x0.shape[:-1]
    t = t_min + (1 - t_min) * torch.rand(shape, dtype=x0.dtype, device=x0.device)
    scale, var = vp_marginal(t, beta_min, beta_max)
    scale, std = scale.to(x0).unsqueeze(-1), var.to(x0).sqrt().unsqueeze(-1)
    eps = torch.randn_like(x0)
    return (net(scale * x0 + std * eps, t) - eps).pow(2).sum(-1).mean(-1)
