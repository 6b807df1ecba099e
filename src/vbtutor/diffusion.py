"""DDPM: the discrete diffusion chain, its bound, DDPM and DDIM samplers, and the ring toy.

Discrete steps are indexed ``t = 1, ..., T`` as in Ho et al.; every schedule tensor has
``T + 1`` entries and entry 0 is the data end (``beta_0 = 0``, ``alpha_bar_0 = 1``), so
``schedule.alpha_bar[t]`` reads as in the paper. The ring of Gaussians, its diffused
laws, the energy distance and the shared training of small networks on the ring serve
the continuous-time chapters too (:mod:`vbtutor.sde`, :mod:`vbtutor.flow_matching`).
Chapter ddpm.
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
    "diffused_mixture",
    "train_ring_nets",
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


def diffused_mixture(mixture: D.MixtureSameFamily, scale, var) -> D.MixtureSameFamily:
    r"""The law of :math:`a X + \sqrt{v}\,\epsilon` for a mixture ``X`` of isotropic Gaussians.

    Every component :math:`\mathcal N(\mu_k, s_k^2 I)` becomes
    :math:`\mathcal N(a\mu_k, (a^2 s_k^2 + v) I)`, so the diffused density, and its score,
    stay exact at every time of a DDPM chain or a VP-SDE.

    Arguments:
        mixture: a mixture as made by :func:`ring_mixture`.
        scale: the factor :math:`a` (e.g. from :func:`vbtutor.sde.vp_marginal`).
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
        loss: ``loss(net, batch)``, e.g. :func:`vbtutor.sde.dsm_loss` (a noise
            predictor, the score network of chapter sde),
            :func:`vbtutor.flow_matching.cfm_loss` (a velocity field) or
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
        >>> from vbtutor.flow_matching import cfm_loss
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
