"""Diffusion models: DDPM chains, the VP-SDE, scores, SDE/ODE samplers and sample distances.

Discrete steps are indexed ``t = 1, ..., T`` as in Ho et al.; every schedule tensor has
``T + 1`` entries and entry 0 is the data end (``beta_0 = 0``, ``alpha_bar_0 = 1``), so
``schedule.alpha_bar[t]`` reads as in the paper. Continuous time runs over ``[0, 1]`` with
the data at 0 (Song et al.), except in flow matching, where noise sits at 0 and data
at 1 (Lipman et al.). Chapters ddpm, sde and flow_matching.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
import torch
from torch import distributions as D
from torch import nn

from ._checks import (
    check_broadcastable,
    check_finite,
    check_positive,
    check_positive_int,
    check_same_shape,
    check_tensor,
)
from .distributions import kl_diagonal_gaussian
from .nn import MLP
from .train import fit_seeds

__all__ = [
    "Schedule",
    "linear_schedule",
    "marginal",
    "q_sample",
    "forward_chain",
    "posterior",
    "mean_from_eps",
    "reverse_mean",
    "EpsilonNet",
    "simple_loss",
    "BoundTerms",
    "variational_bound",
    "ddpm_sample",
    "ddim_sample",
    "ring_mixture",
    "energy_distance",
    "energy_distance_noise",
    "vp_beta",
    "vp_marginal",
    "diffused_mixture",
    "straight_path_velocity",
    "gaussian_path_velocity",
    "score",
    "vp_score",
    "euler_maruyama",
    "langevin_step",
    "vp_predictor_corrector",
    "probability_flow",
    "dsm_loss",
    "cfm_loss",
    "train_ring_nets",
    "euler_flow",
    "heun_flow",
]

MeanFn = Callable[[torch.Tensor, int], torch.Tensor]


class Schedule(NamedTuple):
    """A variance schedule: ``betas[t]``, ``alphas[t] = 1 - betas[t]`` and their products.

    All three tensors have ``T + 1`` entries with entry 0 for the data (``beta_0 = 0``).
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bar: torch.Tensor

    @property
    def T(self) -> int:  # noqa: N802 (the paper's name)
        """The number of noising steps."""
        return len(self.betas) - 1


def linear_schedule(
    T: int,  # noqa: N803
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    dtype: torch.dtype | None = None,
) -> Schedule:
    r"""Ho et al.'s linear schedule: :math:`\beta_t` evenly spaced over ``T`` steps.

    Arguments:
        T: the number of steps, at least 1.
        beta_start, beta_end: the first and last :math:`\beta_t`, in (0, 1).
        dtype: floating dtype (default: torch's default).

    Returns:
        A :class:`Schedule` with :math:`\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)`.

    References:
        Ho, Jain and Abbeel, Denoising diffusion probabilistic models, arXiv:2006.11239.

    Example:
        >>> s = linear_schedule(1000)
        >>> s.T, round(float(s.alpha_bar[-1]), 5)
        (1000, 4e-05)
    """
    check_positive_int("T", T)
    for name, b in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not 0 < b < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {b!r}")
    betas = torch.cat(
        [torch.zeros(1), torch.linspace(beta_start, beta_end, T, dtype=torch.float64)]
    ).to(dtype or torch.get_default_dtype())
    alphas = 1 - betas
    return Schedule(betas, alphas, torch.cumprod(alphas, 0))


def _check_t(schedule: Schedule, t: int, low: int = 0) -> int:
    integer = isinstance(t, numbers.Integral) and not isinstance(t, bool)
    if not integer or not low <= t <= schedule.T:
        raise ValueError(f"t must be an int in [{low}, {schedule.T}], got {t!r}")
    return int(t)


def marginal(
    schedule: Schedule, x0: torch.Tensor, t: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and variance of the closed-form marginal :math:`q(x_t | x_0)`.

    :math:`q(x_t | x_0) = \mathcal N(\sqrt{\bar\alpha_t} x_0, (1 - \bar\alpha_t) I)`.

    Arguments:
        schedule: a :class:`Schedule`.
        x0: data, shape ``(..., d)``.
        t: the step, ``0 <= t <= T``.

    Returns:
        ``(mean, var)``; ``var`` is a scalar tensor (the covariance is ``var * I``).

    Example:
        >>> m, v = marginal(linear_schedule(10), torch.ones(2), 0)
        >>> m.tolist(), float(v)
        ([1.0, 1.0], 0.0)
    """
    check_tensor("x0", x0, min_dim=1)
    _check_t(schedule, t)
    ab = schedule.alpha_bar[t].to(x0.dtype)
    return ab.sqrt() * x0, 1 - ab


def q_sample(
    schedule: Schedule,
    x0: torch.Tensor,
    t: int | torch.Tensor,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Draw :math:`x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon` in one step.

    Arguments:
        schedule: a :class:`Schedule`.
        x0: data, shape ``(n, d)``, or ``(S, n, d)`` for stacked batches.
        t: one step for all rows, or a long tensor of shape ``x0.shape[:-1]`` with one
            per row.
        noise: the :math:`\epsilon` to use (default: fresh standard normal draws).

    Returns:
        ``x_t``, shaped like ``x0``.

    Example:
        >>> s = linear_schedule(10)
        >>> q_sample(s, torch.zeros(3, 2), 10, noise=torch.ones(3, 2)).shape
        torch.Size([3, 2])
    """
    check_tensor("x0", x0, min_dim=2)
    if noise is None:
        noise = torch.randn_like(x0)
    else:
        check_tensor("noise", noise)
        check_same_shape("noise", noise, "x0", x0)
    if isinstance(t, torch.Tensor):
        rows = x0.shape[:-1]
        if t.shape != rows or bool((t < 0).any() | (t > schedule.T).any()):
            raise ValueError(
                f"t must have shape {tuple(rows)}, with steps in [0, {schedule.T}]"
            )
        ab = schedule.alpha_bar.to(x0)[t].unsqueeze(-1)
    else:
        ab = schedule.alpha_bar[_check_t(schedule, t)].to(x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def forward_chain(
    schedule: Schedule, x0: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Run the chain :math:`x_t = \sqrt{1 - \beta_t} x_{t-1} + \sqrt{\beta_t}\,\epsilon_t`.

    Arguments:
        schedule: a :class:`Schedule`.
        x0: data, shape ``(n, d)``.
        generator: optional random stream.

    Returns:
        The whole path, shape ``(T + 1, n, d)`` with ``x0`` in entry 0.

    Example:
        >>> forward_chain(linear_schedule(5), torch.zeros(4, 2)).shape
        torch.Size([6, 4, 2])
    """
    check_tensor("x0", x0, dim=2)
    path = [x0]
    betas = schedule.betas.to(x0)
    for t in range(1, schedule.T + 1):
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        path.append((1 - betas[t]).sqrt() * path[-1] + betas[t].sqrt() * eps.to(x0))
    return torch.stack(path)


def posterior(
    schedule: Schedule, x0: torch.Tensor, xt: torch.Tensor, t: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and variance of the forward posterior :math:`q(x_{t-1} | x_t, x_0)`.

    .. math::
        \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1 - \bar\alpha_t} x_0
        + \frac{\sqrt{\alpha_t}(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t, \qquad
        \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t.

    Arguments:
        schedule: a :class:`Schedule`.
        x0, xt: shape ``(..., d)``, broadcastable.
        t: the step, ``1 <= t <= T``.

    Returns:
        ``(mean, var)``; ``var`` is a scalar tensor (zero at ``t = 1``).

    References:
        Ho et al. (2020), eqs. 6-7, arXiv:2006.11239.

    Example:
        >>> s = linear_schedule(10)
        >>> float(posterior(s, torch.zeros(1), torch.zeros(1), 1)[1])
        0.0
    """
    check_tensor("x0", x0, min_dim=1)
    check_tensor("xt", xt, min_dim=1)
    check_broadcastable("xt", xt, "x0", x0)
    _check_t(schedule, t, low=1)
    ab, ab_prev = schedule.alpha_bar[t].to(x0), schedule.alpha_bar[t - 1].to(x0)
    beta, alpha = schedule.betas[t].to(x0), schedule.alphas[t].to(x0)
    mean = (ab_prev.sqrt() * beta * x0 + alpha.sqrt() * (1 - ab_prev) * xt) / (1 - ab)
    return mean, (1 - ab_prev) / (1 - ab) * beta


def mean_from_eps(
    schedule: Schedule, xt: torch.Tensor, t: int, eps: torch.Tensor
) -> torch.Tensor:
    r"""The reverse mean from a noise value.

    :math:`\mu = (x_t - \beta_t \epsilon / \sqrt{1 - \bar\alpha_t}) / \sqrt{\alpha_t}`.

    With the true noise it equals the posterior mean :math:`\tilde\mu_t(x_t, x_0)`; with a
    network's :math:`\epsilon_\theta(x_t, t)` it is DDPM's :math:`\mu_\theta`.

    Arguments:
        schedule: a :class:`Schedule`.
        xt, eps: shape ``(..., d)``.
        t: the step, ``1 <= t <= T``.

    Returns:
        The mean, shaped like ``xt``.

    References:
        Ho et al. (2020), eq. 11, arXiv:2006.11239.

    Example:
        >>> s = linear_schedule(10)
        >>> mean_from_eps(s, torch.zeros(2), 3, torch.zeros(2)).tolist()
        [0.0, 0.0]
    """
    check_tensor("xt", xt, min_dim=1)
    check_tensor("eps", eps, min_dim=1)
    check_broadcastable("eps", eps, "xt", xt)
    _check_t(schedule, t, low=1)
    ab, beta = schedule.alpha_bar[t].to(xt), schedule.betas[t].to(xt)
    return (xt - beta / (1 - ab).sqrt() * eps) / schedule.alphas[t].to(xt).sqrt()


def reverse_mean(
    net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: Schedule
) -> Callable[[torch.Tensor, int], torch.Tensor]:
    r"""DDPM's reverse mean :math:`\mu_\theta(x_t, t)` of a noise predictor, as a function.

    The function maps ``(x_t, t)``, with ``t`` one step for all rows, to
    :func:`mean_from_eps` of ``net(x_t, t)``: the ``mean_fn`` that
    :func:`variational_bound` takes.

    Arguments:
        net: the noise predictor ``(x_t, t) -> eps``, ``t`` a tensor of shape ``(n,)``.
        schedule: a :class:`Schedule`.

    Example:
        >>> s = linear_schedule(10)
        >>> reverse_mean(lambda x, t: torch.zeros_like(x), s)(torch.zeros(3, 2), 4).shape
        torch.Size([3, 2])
    """
    if not callable(net):
        raise ValueError(f"net must be callable, got {type(net).__name__}")

    def mean(xt: torch.Tensor, t: int) -> torch.Tensor:
        _check_t(schedule, t, low=1)
        steps = torch.full(xt.shape[:-1], t, device=xt.device)
        return mean_from_eps(schedule, xt, t, net(xt, steps))

    return mean


class EpsilonNet(nn.Module):
    r"""A noise predictor :math:`\epsilon_\theta(x_t, t)`: an MLP on ``x`` and features of ``t``.

    The time enters as sines and cosines of ``t / T`` at ``n_freq`` frequencies. ``x`` has
    shape ``(n, dim)`` (or ``(S, n, dim)`` for networks stacked by
    :func:`vbtutor.nn.stack_networks`); ``t`` is a number or has shape ``x.shape[:-1]``.

    Arguments:
        dim: data dimension.
        T: number of diffusion steps (scales the time input).
        hidden: hidden width; ``layers`` hidden layers with SiLU activations.
        n_freq: number of sine/cosine frequency pairs for the time features.

    Example:
        >>> net = EpsilonNet(2, T=100)
        >>> net(torch.zeros(5, 2), torch.full((5,), 7)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        dim: int,
        T: int,
        hidden: int = 128,
        layers: int = 3,
        n_freq: int = 8,  # noqa: N803
    ):
        super().__init__()
        for name, v in (("dim", dim), ("T", T), ("hidden", hidden), ("layers", layers)):
            check_positive_int(name, v)
        check_positive_int("n_freq", n_freq)
        self.dim, self.T = dim, T
        self.register_buffer("freq", math.pi * 2.0 ** torch.arange(n_freq) / 2)
        sizes = (dim + 2 * n_freq, *([hidden] * layers), dim)
        self.mlp = MLP(sizes, activation=nn.SiLU)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, min_dim=2)
        t = torch.as_tensor(t, device=x.device).expand(x.shape[:-1])
        angle = (t.to(x.dtype) / self.T).unsqueeze(-1) * self.freq.to(x.dtype)
        return self.mlp(torch.cat([x, angle.sin(), angle.cos()], -1))


def simple_loss(
    net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: Schedule,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""DDPM's noise-prediction loss :math:`L_\text{simple}`.

    :math:`L_\text{simple} = \mathbb E_{t, x_0, \epsilon}\|\epsilon - \epsilon_\theta(x_t, t)\|^2`.

    One uniform step :math:`t \in \{1, \dots, T\}` and one noise draw per row of ``x0``.

    Arguments:
        net: maps ``(x_t, t)`` to predicted noise.
        schedule: a :class:`Schedule`.
        x0: a mini-batch of data, shape ``(n, d)``, or ``(S, n, d)``: one batch per
            stacked network.
        generator: optional random stream.

    Returns:
        The loss (squared error summed over coordinates, averaged over rows): a scalar,
        or shape ``(S,)``.

    References:
        Ho et al. (2020), eq. 14, arXiv:2006.11239.

    Example:
        >>> s = linear_schedule(10)
        >>> loss = simple_loss(lambda x, t: torch.zeros_like(x), s, torch.zeros(4, 2))
        >>> loss.dim()
        0
    """
    check_tensor("x0", x0, min_dim=2)
    rows = x0.shape[:-1]
    t = torch.randint(1, schedule.T + 1, rows, generator=generator).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    xt = q_sample(schedule, x0, t, eps)
    predicted = net(xt, t)
    if predicted.shape != eps.shape:  # (n, 1) would broadcast against (n, d) silently
        raise ValueError(
            f"net must return the noise's shape {tuple(eps.shape)},"
            f" got {tuple(predicted.shape)}"
        )
    return (eps - predicted).pow(2).sum(-1).mean(-1)


class BoundTerms(NamedTuple):
    """The variational bound's terms per data point: L = prior + sum(kls) + decoder (nats)."""

    prior: torch.Tensor
    kls: torch.Tensor
    decoder: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """The bound per data point."""
        return self.prior + self.kls.sum(0) + self.decoder


def variational_bound(
    schedule: Schedule,
    x0: torch.Tensor,
    mean_fn: MeanFn,
    sigma2: torch.Tensor,
    generator: torch.Generator | None = None,
) -> BoundTerms:
    r"""DDPM's bound :math:`L = L_T + \sum_{t=2}^T L_{t-1} + L_0` as Gaussian KLs.

    :math:`L_T = \mathrm{KL}(q(x_T|x_0) \| \mathcal N(0, I))` and
    :math:`L_{t-1} = \mathrm{KL}(q(x_{t-1}|x_t, x_0) \| p_\theta(x_{t-1}|x_t))`
    are closed form given one draw :math:`x_t \sim q(x_t|x_0)`;
    :math:`L_0 = -\log \mathcal N(x_0; \mu_\theta(x_1, 1), \sigma_1^2 I)`. The KLs use
    :func:`vbtutor.distributions.kl_diagonal_gaussian`.

    Arguments:
        schedule: a :class:`Schedule` with ``T >= 2``.
        x0: data, shape ``(n, d)``.
        mean_fn: maps ``(x_t, t)`` to the mean of :math:`p_\theta(x_{t-1}|x_t)`.
        sigma2: reverse variances, positive, shape ``(T + 1,)`` (entry ``t`` for step t).
        generator: optional random stream for the draws of :math:`x_t`.

    Returns:
        :class:`BoundTerms` with ``prior`` and ``decoder`` of shape ``(n,)`` and ``kls`` of
        shape ``(T - 1, n)`` (row ``t - 2`` for step t).

    References:
        Ho et al. (2020), eq. 5, arXiv:2006.11239; Sohl-Dickstein et al. (2015),
        arXiv:1503.03585.

    Example:
        >>> s = linear_schedule(5)
        >>> exact = lambda xt, t: posterior(s, torch.zeros_like(xt), xt, t)[0]
        >>> b = variational_bound(s, torch.zeros(3, 1), exact, s.betas.clamp_min(1e-4))
        >>> b.kls.shape
        torch.Size([4, 3])
    """
    check_tensor("x0", x0, dim=2)
    if schedule.T < 2:
        raise ValueError(f"schedule must have T >= 2 steps, got T = {schedule.T}")
    check_tensor("sigma2", sigma2, dim=1)
    if sigma2.shape[0] != schedule.T + 1:
        raise ValueError(f"sigma2 must have T + 1 = {schedule.T + 1} entries")
    check_positive("sigma2", sigma2[1:])
    sigma2 = sigma2.to(x0)
    m, v = marginal(schedule, x0, schedule.T)
    one = torch.ones_like(x0)
    prior = kl_diagonal_gaussian(m, v * one, 0 * one, one)
    kls = []
    for t in range(2, schedule.T + 1):
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0)
        xt = q_sample(schedule, x0, t, noise)
        mu, var = posterior(schedule, x0, xt, t)
        kls.append(kl_diagonal_gaussian(mu, var * one, mean_fn(xt, t), sigma2[t] * one))
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0)
    x1 = q_sample(schedule, x0, 1, noise)
    decoder = D.Normal(mean_fn(x1, 1), sigma2[1].sqrt()).log_prob(x0).sum(-1).neg()
    return BoundTerms(prior, torch.stack(kls), decoder)


@torch.no_grad()
def ddpm_sample(
    net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: Schedule,
    n: int,
    dim: int,
    generator: torch.Generator | None = None,
    keep: tuple[int, ...] = (),
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    r"""Ancestral sampling :math:`x_{t-1} = \mu_\theta(x_t, t) + \sqrt{\beta_t}\, z` from noise.

    Starts from :math:`x_T \sim \mathcal N(0, I)`; no noise is added at the last step.

    Arguments:
        net: the noise predictor ``(x_t, t) -> eps``.
        schedule: a :class:`Schedule`.
        n: number of samples; dim: their dimension.
        generator: optional random stream (CPU).
        keep: steps ``t`` whose states to return as well (e.g. for an animation).
        device: where to run ``net``.

    Returns:
        ``(x0, kept)`` with ``x0`` of shape ``(n, dim)`` and ``kept`` mapping each ``t`` in
        ``keep`` to the state ``x_t``.

    References:
        Ho et al. (2020), Algorithm 2, arXiv:2006.11239.

    Example:
        >>> s = linear_schedule(4)
        >>> x, kept = ddpm_sample(lambda x, t: torch.zeros_like(x), s, 3, 2, keep=(4,))
        >>> x.shape, sorted(kept)
        (torch.Size([3, 2]), [4])
    """
    check_positive_int("n", n)
    check_positive_int("dim", dim)
    outside = [t for t in keep if not 0 <= t <= schedule.T]
    if outside:
        raise ValueError(
            f"keep must hold steps from 0 to T = {schedule.T}, got {outside}"
        )
    dtype = schedule.betas.dtype
    x = torch.randn(n, dim, generator=generator, dtype=dtype).to(device)
    kept = {}
    for t in range(schedule.T, 0, -1):
        if t in keep:
            kept[t] = x.cpu()
        eps = net(x, torch.full((n,), t, device=device))
        x = mean_from_eps(schedule, x, t, eps.to(dtype))
        if t > 1:
            z = torch.randn(n, dim, generator=generator, dtype=dtype).to(device)
            x = x + schedule.betas[t].to(x).sqrt() * z
    if 0 in keep:
        kept[0] = x.cpu()
    return x.cpu(), kept


@torch.no_grad()
def ddim_sample(
    net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: Schedule,
    x: torch.Tensor,
    n_steps: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""DDIM's sampler: ``n_steps`` jumps down an evenly spaced subsequence of the steps.

    From step :math:`t` to the next smaller step :math:`s` of the subsequence, with the
    network's guesses :math:`\hat\epsilon = \epsilon_\theta(x_t, t)` and
    :math:`\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}`,

    .. math::
        x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\,
        \hat\epsilon + \sigma z, \qquad
        \sigma = \eta \sqrt{\frac{1 - \bar\alpha_s}{1 - \bar\alpha_t}
        \Big(1 - \frac{\bar\alpha_t}{\bar\alpha_s}\Big)}.

    ``eta = 0`` is the deterministic DDIM sampler; ``eta = 1`` with ``n_steps = T`` is
    ancestral DDPM sampling with variance :math:`\tilde\beta_t`, and with fewer steps
    its strided version. Each step costs one network evaluation.

    Arguments:
        net: the noise predictor ``(x_t, t) -> eps``, with ``t`` a long tensor ``(n,)``.
        schedule: a :class:`Schedule`.
        x: the starting noise :math:`x_T`, shape ``(n, d)``.
        n_steps: number of steps, from 1 to ``T``; the subsequence is
            ``round(linspace(0, T, n_steps + 1))``.
        eta: the scale of the fresh noise, from 0 to 1.
        generator: optional random stream for that noise.

    Returns:
        The samples :math:`x_0`, shaped like ``x``.

    References:
        Song, Meng and Ermon, Denoising diffusion implicit models, eq. 12 and
        eq. 16, arXiv:2010.02502.

    Example:
        >>> s = linear_schedule(10)
        >>> ddim_sample(lambda x, t: torch.zeros_like(x), s, torch.ones(3, 2), 5).shape
        torch.Size([3, 2])
    """
    check_tensor("x", x, dim=2)
    check_positive_int("n_steps", n_steps)
    if n_steps > schedule.T:
        raise ValueError(f"n_steps must be at most T = {schedule.T}, got {n_steps}")
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must lie in [0, 1], got {eta!r}")
    steps = torch.linspace(0, schedule.T, n_steps + 1).round().long().tolist()
    alpha_bar = schedule.alpha_bar.to(x)
    for t, s in zip(steps[:0:-1], steps[-2::-1], strict=True):
        eps = net(x, torch.full((len(x),), t, device=x.device)).to(x)
        ab_t, ab_s = alpha_bar[t], alpha_bar[s]
        x0_hat = (x - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
        var = eta**2 * (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
        x = ab_s.sqrt() * x0_hat + (1 - ab_s - var).sqrt() * eps
        if eta > 0 and s > 0:
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + var.sqrt() * z.to(x.device)
    return x


def ring_mixture(
    k: int = 8, radius: float = 2.0, std: float = 0.25, dtype: torch.dtype | None = None
) -> D.MixtureSameFamily:
    """An equal-weight mixture of ``k`` isotropic 2-D Gaussians on a circle (known density).

    Arguments:
        k: number of components, at least 1.
        radius: radius of the circle of means, positive.
        std: standard deviation of each component, positive.
        dtype: floating dtype (default: torch's default).

    Returns:
        A ``torch.distributions.MixtureSameFamily`` with ``sample`` and ``log_prob``.

    Example:
        >>> ring_mixture(4).sample((10,)).shape
        torch.Size([10, 2])
    """
    check_positive_int("k", k)
    check_positive("radius", radius)
    check_positive("std", std)
    dtype = dtype or torch.get_default_dtype()
    angle = 2 * math.pi * torch.arange(k, dtype=dtype) / k
    means = radius * torch.stack([angle.cos(), angle.sin()], -1)
    comp = D.Independent(D.Normal(means, torch.full_like(means, std)), 1)
    return D.MixtureSameFamily(D.Categorical(torch.ones(k, dtype=dtype)), comp)


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""Squared energy distance between two samples.

    :math:`2\mathbb E\|X - Y\| - \mathbb E\|X - X'\| - \mathbb E\|Y - Y'\|`.

    Zero exactly when the two distributions agree; the within-sample means exclude the
    zero diagonal (U-statistics), so two samples of one distribution give about 0.

    Arguments:
        a, b: samples, shapes ``(n, d)`` and ``(m, d)`` with ``n, m >= 2``.

    Returns:
        The estimate as a float.

    References:
        Székely and Rizzo, Energy statistics, J. Stat. Plan. Inference 143 (2013).

    Example:
        >>> x = torch.tensor([[0.0], [1.0]])
        >>> energy_distance(x, x + 10.0)
        18.0
    """
    check_tensor("a", a, dim=2)
    check_tensor("b", b, dim=2)
    if a.shape[1] != b.shape[1] or a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(
            f"a and b need >= 2 rows and equal widths, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    n, m = a.shape[0], b.shape[0]
    xy = torch.cdist(a, b).mean()
    xx = torch.cdist(a, a).sum() / (n * (n - 1))
    yy = torch.cdist(b, b).sum() / (m * (m - 1))
    return float(2 * xy - xx - yy)


def energy_distance_noise(
    dist: D.Distribution, n: int, pairs: int = 20, seed: int = 0
) -> float:
    r"""The sampling noise of :func:`energy_distance` for samples of size ``n``.

    The standard deviation of the energy distance between ``pairs`` pairs of
    independent samples of ``n`` points from ``dist``: how far the estimate scatters
    around zero when the two distributions agree. The samples come from a private
    random stream seeded with ``seed`` (the global one is left as it was), so chapters
    that ask the same question get the same answer. The null distribution is skewed to
    the right, so a value beyond about twice this noise is unusual, not impossible.

    Arguments:
        dist: a distribution with ``sample``; n: sample size, at least 2.
        pairs: number of pairs, at least 2; seed: a non-negative integer.

    Returns:
        The standard deviation (with ``pairs - 1`` degrees of freedom), a float.

    Example:
        >>> sd = energy_distance_noise(ring_mixture(), 200, pairs=5)
        >>> 0 < sd < 0.1
        True
    """
    check_positive_int("n", n)
    check_positive_int("pairs", pairs)
    if n < 2 or pairs < 2:
        raise ValueError(f"n and pairs must be at least 2, got {n} and {pairs}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        values = [
            energy_distance(dist.sample((n,)), dist.sample((n,))) for _ in range(pairs)
        ]
    return float(torch.tensor(values, dtype=torch.float64).std())


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


def diffused_mixture(mixture: D.MixtureSameFamily, scale, var) -> D.MixtureSameFamily:
    r"""The law of :math:`a X + \sqrt{v}\,\epsilon` for a mixture ``X`` of isotropic Gaussians.

    Every component :math:`\mathcal N(\mu_k, s_k^2 I)` becomes
    :math:`\mathcal N(a\mu_k, (a^2 s_k^2 + v) I)`, so the diffused density, and its score,
    stay exact at every time of a DDPM chain or a VP-SDE.

    Arguments:
        mixture: a mixture as made by :func:`ring_mixture`.
        scale: the factor :math:`a` (e.g. from :func:`vp_marginal`).
        var: the added variance :math:`v \ge 0`.

    Returns:
        A new ``MixtureSameFamily``.

    Example:
        >>> m = diffused_mixture(ring_mixture(4), 0.0, 1.0)
        >>> round(float(m.log_prob(torch.zeros(2))), 4)
        -1.8379
    """
    if not isinstance(mixture, D.MixtureSameFamily):
        raise ValueError("mixture must be a torch MixtureSameFamily of Gaussians")
    check_finite("scale", scale)
    check_finite("var", var)
    if bool((torch.as_tensor(var).detach() < 0).any()):
        raise ValueError(f"var must be non-negative, got {var!r}")
    base = mixture.component_distribution.base_dist
    scale = torch.as_tensor(scale, dtype=base.loc.dtype)
    std = (scale**2 * base.scale**2 + torch.as_tensor(var, dtype=base.loc.dtype)).sqrt()
    comp = D.Independent(D.Normal(scale * base.loc, std), 1)
    return D.MixtureSameFamily(mixture.mixture_distribution, comp)


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
            :func:`ring_mixture`.
        x: points, shape ``(n, d)``.
        t: a time in [0, 1], or one per point, shape ``(n,)``; may require grad.

    Returns:
        The velocity at each point, shape ``(n, d)``.

    Example:
        >>> ring = ring_mixture(4)
        >>> x = torch.randn(3, 2)  # at t = 0 the velocity is E[x_1] - x = -x
        >>> bool(torch.allclose(straight_path_velocity(ring, x, 0.0), -x))
        True
    """
    if not isinstance(mixture, D.MixtureSameFamily):
        raise ValueError("mixture must be a torch MixtureSameFamily of Gaussians")
    check_tensor("x", x, dim=2)
    _check_event_dim(mixture, x)
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
    _check_event_dim(mixture, x)
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


def _check_event_dim(dist: D.Distribution, x: torch.Tensor) -> None:
    """Check that the trailing axes of ``x`` are ``dist``'s event shape."""
    event = dist.event_shape
    if event and x.shape[-len(event) :] != event:
        raise ValueError(
            f"x must end in the distribution's event shape {tuple(event)}, "
            f"got shape {tuple(x.shape)}"
        )


def _derivative(value: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
    """d value / d time by autograd; 0 for a value that does not depend on time."""
    if not value.requires_grad:
        return torch.zeros_like(time).detach()
    (grad,) = torch.autograd.grad(value, time, retain_graph=True)
    return grad


def score(dist: D.Distribution, x: torch.Tensor) -> torch.Tensor:
    r"""The score :math:`\nabla_x \log p(x)` of a distribution with a differentiable ``log_prob``.

    Example:
        >>> score(D.Normal(0.0, 2.0), torch.tensor([1.0]))
        tensor([-0.2500])
    """
    check_tensor("x", x, min_dim=1)
    _check_event_dim(dist, x)
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
    for t, s in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
        drift = -0.5 * vp_beta(t) * (x + 2 * score(x, t))
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x + drift * (s - t) + math.sqrt(vp_beta(t) * (t - s)) * z
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

    def rhs(t, y):
        xt = torch.as_tensor(y, dtype=dtype).reshape(shape)
        with torch.no_grad():
            v = -0.5 * vp_beta(t, beta_min, beta_max) * (xt + score_fn(xt, t))
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


def train_ring_nets(
    loss: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    seeds: Iterable[int],
    steps: int,
    device: torch.device | str | None = None,
    n_train: int = 20_000,
    batch_size: int = 256,
    lr: float = 3e-3,
    T: int = 1,  # noqa: N803 (the paper's name)
) -> tuple[list[EpsilonNet], np.ndarray]:
    r"""Train the diffusion chapters' small network on the ring of eight Gaussians, once per seed.

    One function for every chapter that trains a network on the ring, so that two
    chapters comparing the same thing use the same networks: the same ``loss``,
    ``seeds``, ``steps`` and ``T`` give the same weights (on the same device). Seed ``s``
    fixes its network's ``n_train`` training points, drawn from :func:`ring_mixture`,
    and the initial weights of its ``EpsilonNet(2, T, hidden=64, layers=3)``. The
    networks then train side by side (:func:`vbtutor.train.fit_seeds`: Adam with
    learning rate ``lr``), each on mini-batches of ``batch_size`` of its own points
    (drawn with replacement) and its own noise inside ``loss``. Training runs in single
    precision, whatever torch's default dtype. Chapters ddpm, sde, fokker_planck and
    flow_matching.

    Arguments:
        loss: ``loss(net, batch)``, e.g. :func:`dsm_loss` (a noise predictor, the
            score network of chapter sde), :func:`cfm_loss` (a velocity field) or
            :func:`simple_loss` with a schedule (DDPM's noise predictor, with ``T``
            the schedule's); it must take a batch of shape ``(S, n, 2)`` and return
            ``S`` losses.
        seeds: at least one non-negative integer.
        steps: optimiser steps, at least 1.
        device: where to train (default: the CPU).
        n_train: size of each network's training sample.
        batch_size: mini-batch size.
        lr: Adam learning rate.
        T: the network's time scale: 1 for continuous time ``t`` in ``[0, 1]``, the
            number of steps for DDPM's integer ``t``.

    Returns:
        ``(nets, losses)``: the trained networks in double precision on the CPU, in eval
        mode (the samplers run in float64), and every step's training loss per network,
        an array of shape ``(steps, len(seeds))``.

    Example:
        >>> a, _ = train_ring_nets(cfm_loss, [1, 2], steps=3, n_train=64, batch_size=8)
        >>> b, _ = train_ring_nets(cfm_loss, [1, 2], steps=3, n_train=64, batch_size=8)
        >>> all(torch.equal(p, q) for p, q in zip(a[1].parameters(), b[1].parameters()))
        True
    """
    check_positive_int("n_train", n_train)
    check_positive_int("batch_size", batch_size)
    device = torch.device(device or "cpu")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    points = []

    def make() -> EpsilonNet:
        points.append(ring_mixture().sample((n_train,)).to(device))
        return EpsilonNet(2, T, hidden=64, layers=3).to(device)

    def stacked_loss(stacked: nn.Module) -> torch.Tensor:
        train = torch.stack(points)
        idx = torch.randint(0, n_train, (len(points), batch_size), device=device)
        return loss(stacked, train.gather(1, idx.unsqueeze(-1).expand(-1, -1, 2)))

    try:
        nets, losses = fit_seeds(make, seeds, stacked_loss, steps, lr=lr)
    finally:
        torch.set_default_dtype(default)
    return [net.double().cpu().eval() for net in nets], losses


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
