"""Density ratios by classification, and noise-contrastive estimation (NCE).

The same estimator is the critic of adversarial variational Bayes
(:mod:`vbtutor.adversarial`). Chapter contrastive.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from ._checks import (
    check_positive,
    check_positive_int,
    check_same_dtype,
    check_tensor,
)
from .train import fit

__all__ = [
    "log_ratio_loss",
    "fit_log_ratio",
    "discriminator",
    "UnnormalisedGaussian",
    "NCE",
    "fit_nce",
    "nce_asymptotic_covariance",
]

Sampler = torch.Tensor | Callable[[int], torch.Tensor]


def _log_ratio_output(net: Callable, x: torch.Tensor) -> torch.Tensor:
    out = net(x)
    if out.shape == x.shape[:-1] + (1,):
        out = out.squeeze(-1)
    if out.shape != x.shape[:-1]:
        raise ValueError(
            f"net must map rows of shape {tuple(x.shape)} to shape "
            f"{tuple(x.shape[:-1])} or {tuple(x.shape[:-1]) + (1,)}, "
            f"got {tuple(out.shape)}"
        )
    return out


def log_ratio_loss(
    net: Callable[[torch.Tensor], torch.Tensor],
    x_p: torch.Tensor,
    x_q: torch.Tensor,
) -> torch.Tensor:
    r"""Logistic loss of a classifier of ``x_p`` (label 1) against ``x_q`` (label 0).

    The classifier's logit is ``net(x) - log(n_q / n_p)`` with :math:`n_p, n_q` the two
    sample sizes. The mean binary cross-entropy over all :math:`n_p + n_q` rows is, in
    expectation, minimised pointwise by
    :math:`\sigma(\text{logit}) = p / (p + \nu q)` with :math:`\nu = n_q / n_p`, so the
    class-prior correction makes ``net`` itself estimate :math:`\log p(x) / q(x)`
    whatever the ratio of the sample sizes. Chapters: contrastive, avb.

    Arguments:
        net: maps rows of shape ``(..., n, d)`` to log-ratio estimates, shape
            ``(..., n)`` or ``(..., n, 1)``.
        x_p: samples of p, shape ``(n_p, d)``, or ``(S, n_p, d)`` for ``S`` stacked
            copies of ``net`` (:func:`vbtutor.nn.stack_networks`).
        x_q: samples of q, shape ``(n_q, d)`` or ``(S, n_q, d)``.

    Returns:
        The mean binary cross-entropy (nats per row): a scalar, or one per copy,
        shape ``(S,)``.

    References:
        Gutmann & Hyvärinen (2010), noise-contrastive estimation, JMLR W&CP 9:297-304;
        Sugiyama, Suzuki & Kanamori (2012), *Density Ratio Estimation in Machine
        Learning*, ch. 5.

    Example:
        >>> x_p, x_q = torch.zeros(2, 1), torch.zeros(6, 1)
        >>> loss = log_ratio_loss(lambda x: torch.zeros(len(x)), x_p, x_q)
        >>> round(loss.item(), 4)  # logit log(1/3): 2 rows at label 1, 6 at label 0
        0.5623
    """
    check_tensor("x_p", x_p, min_dim=2)
    check_tensor("x_q", x_q, min_dim=2)
    if x_p.shape[-1] != x_q.shape[-1] or x_p.shape[:-2] != x_q.shape[:-2]:
        raise ValueError(
            f"x_q must have the leading axes and the number of columns of x_p "
            f"{tuple(x_p.shape)}, got shape {tuple(x_q.shape)}"
        )
    n_p, n_q = x_p.shape[-2], x_q.shape[-2]
    if n_p == 0 or n_q == 0:
        raise ValueError("x_p and x_q need at least one row each")
    logits = torch.cat([_log_ratio_output(net, x_p), _log_ratio_output(net, x_q)], -1)
    labels = torch.cat([logits.new_ones(n_p), logits.new_zeros(n_q)])
    bce = F.binary_cross_entropy_with_logits(
        logits - math.log(n_q / n_p), labels.expand_as(logits), reduction="none"
    )
    return bce.mean(-1)


def _draw(name: str, sampler: Sampler, n: int) -> torch.Tensor:
    if isinstance(sampler, torch.Tensor):
        rows = torch.randint(0, len(sampler), (n,), device=sampler.device)
        return sampler[rows]
    return check_tensor(name, sampler(n), dim=2)


def fit_log_ratio(
    net: nn.Module,
    sample_p: Sampler,
    sample_q: Sampler,
    steps: int,
    batch_size: int | None = None,
    nu: int = 1,
    lr: float = 1e-2,
    record_every: int = 1,
    progress: bool | None = None,
) -> list[float]:
    r"""Train ``net`` so that it estimates :math:`\log p(x) / q(x)`, by classification.

    Each Adam step minimises :func:`log_ratio_loss` on a batch of p against a batch of
    q. With ``batch_size=None`` both samples must be tensors and every step uses all
    their rows (the fixed-sample estimator of NCE, with :math:`\nu = n_q / n_p` taken
    from the sizes); otherwise each step draws ``batch_size`` rows of p and
    ``nu * batch_size`` rows of q, from a tensor (with replacement) or by calling a
    sampler ``n -> (n, d)`` tensor. At the optimum the classifier's probability is the
    GAN discriminator :math:`D^* = p / (p + \nu q)` (see :func:`discriminator`).
    Chapters: contrastive, avb.

    Arguments:
        net: the log-ratio network, trained in place.
        sample_p, sample_q: a tensor of rows ``(n, d)`` or a callable ``n -> (n, d)``.
        steps: Adam steps, at least 1.
        batch_size: rows of p per step, at least 1; ``None`` for full batches.
        nu: rows of q per row of p in each mini-batch, a positive int (ignored, and
            must stay 1, with full batches).
        lr: Adam learning rate, positive.
        record_every: keep the loss of every ``record_every``-th step.
        progress: as in :func:`vbtutor.train.fit`.

    Returns:
        The recorded losses (mean cross-entropy, nats per row).

    References:
        Goodfellow et al. (2014), generative adversarial nets, arXiv:1406.2661, Prop. 1;
        Gutmann & Hyvärinen (2010), noise-contrastive estimation.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Linear(1, 1)
        >>> p, q = D.Normal(1.0, 1.0), D.Normal(0.0, 1.0)  # log p/q = x - 1/2
        >>> x_p, x_q = p.sample((4000, 1)), q.sample((4000, 1))
        >>> _ = fit_log_ratio(net, x_p, x_q, steps=500, lr=0.05, progress=False)
        >>> [round(v, 1) for v in (net.weight.item(), net.bias.item())]
        [1.0, -0.5]
    """
    check_positive_int("steps", steps)
    check_positive_int("nu", nu)
    check_positive("lr", lr)
    if batch_size is None:
        for name, sample in (("sample_p", sample_p), ("sample_q", sample_q)):
            if not isinstance(sample, torch.Tensor):
                raise ValueError(
                    f"{name} must be a tensor when batch_size is None (full batches)"
                )
        if nu != 1:
            raise ValueError(
                "nu must stay 1 with full batches: the sample sizes set the ratio"
            )
        check_tensor("sample_p", sample_p, dim=2)
        check_tensor("sample_q", sample_q, dim=2)
    else:
        check_positive_int("batch_size", batch_size)
        for name, sample in (("sample_p", sample_p), ("sample_q", sample_q)):
            if isinstance(sample, torch.Tensor):
                check_tensor(name, sample, dim=2)
            elif not callable(sample):
                raise ValueError(f"{name} must be a tensor or a callable n -> rows")

    def loss() -> torch.Tensor:
        if batch_size is None:
            return log_ratio_loss(net, sample_p, sample_q)
        x_p = _draw("sample_p", sample_p, batch_size)
        x_q = _draw("sample_q", sample_q, nu * batch_size)
        return log_ratio_loss(net, x_p, x_q)

    return fit(loss, net.parameters(), steps, lr, record_every, progress)


def discriminator(log_ratio: torch.Tensor, nu: float = 1.0) -> torch.Tensor:
    r"""The classifier probability :math:`p / (p + \nu q) = \sigma(\log p/q - \log \nu)`.

    With an exact log-ratio and :math:`\nu = 1` this is the optimal GAN discriminator
    :math:`D^*(x) = p(x) / (p(x) + q(x))`; with a learned one it is the trained
    classifier's probability of "x came from p". Chapter: contrastive.

    Arguments:
        log_ratio: :math:`\log p(x) - \log q(x)`, any shape.
        nu: noise-to-data ratio of the classification problem, positive.

    Returns:
        Probabilities of the same shape as ``log_ratio``.

    References:
        Goodfellow et al. (2014), arXiv:1406.2661, Proposition 1.

    Example:
        >>> p, q = D.Normal(0.0, 1.0), D.Normal(1.0, 2.0)
        >>> x = torch.tensor([0.3])
        >>> exact = p.log_prob(x).exp() / (p.log_prob(x).exp() + q.log_prob(x).exp())
        >>> torch.allclose(discriminator(p.log_prob(x) - q.log_prob(x)), exact)
        True
    """
    check_tensor("log_ratio", log_ratio, allow_neg_inf=True)
    check_positive("nu", nu)
    return torch.sigmoid(log_ratio - math.log(nu))


class UnnormalisedGaussian(nn.Module):
    r"""The unnormalised Gaussian :math:`\log \tilde p_\theta(x) = -\tfrac12 \|L(x - \mu)\|^2`.

    :math:`L` is lower triangular with a positive diagonal (stored as its log), so the
    precision is :math:`L^\top L` and the normalising constant has the closed form
    :math:`\log Z(\theta) = \tfrac d2 \log 2\pi - \sum_i \log L_{ii}`, which NCE's
    learned constant is checked against. Chapter: contrastive.

    Arguments:
        dim: dimension of x, at least 1.

    Example:
        >>> f = UnnormalisedGaussian(2)
        >>> x = torch.randn(3, 2)
        >>> torch.allclose(f(x) - f.log_normaliser(), f.normalised().log_prob(x))
        True
    """

    def __init__(self, dim: int):
        super().__init__()
        check_positive_int("dim", dim)
        self.dim = dim
        self.mean = nn.Parameter(torch.zeros(dim))
        self.log_diag = nn.Parameter(torch.zeros(dim))
        self.off_diag = nn.Parameter(torch.zeros(dim * (dim - 1) // 2))

    def factor(self) -> torch.Tensor:
        """The lower-triangular factor L (precision ``L.T @ L``)."""
        rows, cols = torch.tril_indices(self.dim, self.dim, -1)
        low = torch.zeros(
            self.dim, self.dim, dtype=self.off_diag.dtype, device=self.off_diag.device
        )
        low = low.index_put((rows, cols), self.off_diag)
        return low + torch.diag(self.log_diag.exp())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, dim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have {self.dim} columns, got {tuple(x.shape)}")
        return -0.5 * ((x - self.mean) @ self.factor().T).pow(2).sum(-1)

    def log_normaliser(self) -> torch.Tensor:
        r"""The exact :math:`\log Z(\theta) = \log \int \tilde p_\theta(x)\,dx`."""
        return 0.5 * self.dim * math.log(2 * math.pi) - self.log_diag.sum()

    def normalised(self) -> D.MultivariateNormal:
        """The normalised density as a ``torch.distributions`` Gaussian."""
        low = self.factor()
        return D.MultivariateNormal(self.mean, precision_matrix=low.T @ low)


class NCE(nn.Module):
    r"""An unnormalised model with a learned log normaliser, as NCE's log-ratio network.

    The model is :math:`\log p_m(x) = \log \tilde p_\theta(x) + c` with :math:`c` a free
    parameter, and ``forward`` returns :math:`\log p_m(x) - \log q(x)` for the known
    noise density q. Trained with :func:`fit_log_ratio` (data against :math:`\nu` noise
    samples per data point), the classifier's logit is
    :math:`\log p_m(x) - \log \nu q(x)`, and at the optimum :math:`p_m` is the data
    density, so :math:`-c` estimates :math:`\log Z(\theta)`. Chapter: contrastive.

    Arguments:
        log_unnormalised: a module mapping rows ``(n, d)`` to
            :math:`\log \tilde p_\theta(x)`, shape ``(n,)``.
        noise: the noise distribution q, with ``event_shape == (d,)``, on the device and
            in the dtype of the data (``.to()`` does not move a distribution).
        c: the initial log normaliser parameter.

    References:
        Gutmann & Hyvärinen (2010), noise-contrastive estimation, JMLR W&CP 9:297-304.

    Example:
        >>> model = NCE(UnnormalisedGaussian(2), D.MultivariateNormal(
        ...     torch.zeros(2), 4 * torch.eye(2)))
        >>> model(torch.zeros(5, 2)).shape
        torch.Size([5])
    """

    def __init__(
        self, log_unnormalised: nn.Module, noise: D.Distribution, c: float = 0.0
    ):
        super().__init__()
        if not isinstance(noise, D.Distribution) or len(noise.event_shape) != 1:
            raise ValueError(
                "noise must be a torch Distribution over vectors (event_shape (d,))"
            )
        self.log_unnormalised = log_unnormalised
        self.noise = noise
        self.c = nn.Parameter(torch.tensor(float(c)))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log \tilde p_\theta(x) + c`, the model's log density."""
        return self.log_unnormalised(x) + self.c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x) - self.noise.log_prob(x)


def fit_nce(
    model: NCE,
    data: torch.Tensor,
    steps: int,
    nu: int = 1,
    lr: float = 1e-2,
    record_every: int = 1,
    progress: bool | None = None,
) -> list[float]:
    r"""Noise-contrastive estimation: classify ``data`` against ``nu * len(data)`` noise draws.

    The noise sample is drawn once (from the global torch stream) and kept, as in the
    fixed-sample estimator of Gutmann & Hyvärinen, and every step uses all rows
    (:func:`fit_log_ratio` with full batches). Chapter: contrastive.

    Arguments:
        model: an :class:`NCE` model, trained in place.
        data: observations, shape ``(n, d)``.
        steps: Adam steps, at least 1.
        nu: noise samples per data point, a positive int.
        lr, record_every, progress: as in :func:`fit_log_ratio`.

    Returns:
        The recorded losses.

    References:
        Gutmann & Hyvärinen (2010), noise-contrastive estimation, JMLR W&CP 9:297-304.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> noise = D.MultivariateNormal(torch.zeros(1), 4 * torch.eye(1))
        >>> model = NCE(UnnormalisedGaussian(1), noise)
        >>> data = 1.0 + 0.5 * torch.randn(2000, 1)  # log Z = log(0.5 sqrt(2 pi))
        >>> _ = fit_nce(model, data, steps=800, nu=4, lr=0.05, progress=False)
        >>> round(-model.c.item(), 1), round(math.log(0.5 * math.sqrt(2 * math.pi)), 1)
        (0.2, 0.2)
    """
    if not isinstance(model, NCE):
        raise ValueError(f"model must be an NCE model, got {type(model).__name__}")
    check_tensor("data", data, dim=2)
    check_positive_int("nu", nu)
    noise = model.noise.sample((nu * len(data),)).to(data.dtype)
    if noise.shape[1:] != data.shape[1:]:
        raise ValueError(
            f"data must have rows of the noise's shape {tuple(noise.shape[1:])}, "
            f"got {tuple(data.shape)}"
        )
    return fit_log_ratio(
        model, data, noise, steps, lr=lr, record_every=record_every, progress=progress
    )


def nce_asymptotic_covariance(
    grad_log_model: torch.Tensor, log_ratio: torch.Tensor, nu: float
) -> torch.Tensor:
    r"""The asymptotic covariance of the NCE estimator, per data point.

    With :math:`n` data points and :math:`\nu n` noise points, and a model family that
    contains the data density, :math:`\sqrt n\,(\hat\theta - \theta^*)` tends to
    :math:`\mathcal N(0, \Sigma)` with

    .. math::
        \Sigma = I_\nu^{-1} - (1 + \tfrac1\nu)\, I_\nu^{-1} m_\nu m_\nu^\top I_\nu^{-1},
        \quad I_\nu = \mathbb E_{p_d}[g g^\top P_\nu], \quad
        m_\nu = \mathbb E_{p_d}[g P_\nu],

    where :math:`g = \nabla_\theta \log p_m(x; \theta^*)` (the log normaliser
    :math:`c` is one of the parameters) and
    :math:`P_\nu = \nu q / (p_d + \nu q)` is the probability that the classifier
    calls x noise. The expectations are Monte Carlo averages over the rows given.
    Chapter: contrastive.

    Arguments:
        grad_log_model: :math:`g(x_i)` at draws :math:`x_i \sim p_d`, shape ``(N, k)``.
        log_ratio: :math:`\log p_d(x_i) - \log q(x_i)` at the same draws, shape
            ``(N,)``.
        nu: noise samples per data point, positive.

    Returns:
        :math:`\Sigma`, shape ``(k, k)``; divide by n for the covariance of the
        estimate.

    References:
        Gutmann & Hyvärinen (2012), noise-contrastive estimation of unnormalized
        statistical models, JMLR 13:307-361, Theorem 3.

    Example:
        A model whose only parameter is c, with noise equal to the data: the logit is a
        constant, which the fixed class sizes pin down exactly (zero variance).

        >>> g = torch.ones(1000, 1, dtype=torch.float64)
        >>> log_ratio = torch.zeros(1000, dtype=torch.float64)
        >>> nce_asymptotic_covariance(g, log_ratio, nu=2.0).abs().item() < 1e-12
        True
    """
    check_tensor("grad_log_model", grad_log_model, dim=2)
    check_tensor("log_ratio", log_ratio, dim=1)
    check_same_dtype("log_ratio", log_ratio, "grad_log_model", grad_log_model)
    if len(log_ratio) != len(grad_log_model):
        raise ValueError(
            f"log_ratio must have one entry per row of grad_log_model "
            f"({len(grad_log_model)}), got {len(log_ratio)}"
        )
    check_positive("nu", nu)
    weight = torch.sigmoid(math.log(nu) - log_ratio).unsqueeze(-1)
    info = (grad_log_model * weight).T @ grad_log_model / len(log_ratio)
    mean = (grad_log_model * weight).mean(0)
    info_inv = torch.linalg.inv(info)
    a = info_inv @ mean
    return info_inv - (1 + 1 / nu) * torch.outer(a, a)
