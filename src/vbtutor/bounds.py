"""Monte Carlo estimators of log p(x): the ELBO in its three splits, IWAE_k and naive sampling.

Every estimator takes a ``model`` with a ``log_joint(x, z)`` method (and ``likelihood(z)``,
``prior()`` where a split needs them), a proposal ``q`` (a ``torch.distributions``
distribution over z whose batch shape matches ``x.shape[:-1]``, or is empty for an
x-independent q), and data ``x`` of shape ``(..., D)``. Chapters: mle_latent, elbo, iwae.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch
from torch import distributions as D

from ._checks import check_positive_int, check_tensor

__all__ = [
    "Estimate",
    "log_mean_exp",
    "effective_sample_size",
    "log_weights",
    "elbo",
    "elbo_split_one",
    "elbo_split_three",
    "elbo_score_surrogate",
    "iwae",
    "naive_log_marginal",
    "iwae_gap",
    "subset_log_means",
]


class Estimate(NamedTuple):
    """A Monte Carlo estimate per data point with its standard error (NaN when k = 1)."""

    value: torch.Tensor
    se: torch.Tensor


def log_mean_exp(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    r"""Stable :math:`\log \frac1k \sum_j e^{\log w_j}` along ``dim``.

    Example:
        >>> log_mean_exp(torch.tensor([1000.0, 1000.0]))
        tensor(1000.)
    """
    check_tensor("log_w", log_w, min_dim=1, allow_neg_inf=True)
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def effective_sample_size(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    r"""Kish's effective sample size :math:`(\sum_j w_j)^2 / \sum_j w_j^2`, from log-weights.

    It is ``k`` for equal weights and near 1 when a single weight dominates.

    Example:
        >>> effective_sample_size(torch.zeros(10))
        tensor(10.)
    """
    check_tensor("log_w", log_w, min_dim=1, allow_neg_inf=True)
    if log_w.shape[dim] == 0:
        raise ValueError(f"log_w needs at least one weight along dim {dim}, got none")
    return torch.exp(2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim))


def _proposal_for(q: D.Distribution, x: torch.Tensor) -> D.Distribution:
    if not isinstance(q, D.Distribution):
        raise ValueError(
            f"q must be a torch.distributions.Distribution, got {type(q).__name__}"
        )
    batch = x.shape[:-1]
    if q.batch_shape == batch:
        return q
    if q.batch_shape == torch.Size():
        return q.expand(batch)
    raise ValueError(
        f"q must have batch shape {tuple(batch)} (one factor per row of x) or (), "
        f"got {tuple(q.batch_shape)}"
    )


def _samples(
    q: D.Distribution, x: torch.Tensor, k: int, z: torch.Tensor | None
) -> torch.Tensor:
    check_tensor("x", x, min_dim=1)
    if z is None:
        check_positive_int("k", k)
        return q.rsample((k,)) if q.has_rsample else q.sample((k,))
    check_tensor("z", z, min_dim=2)
    expected = q.batch_shape + q.event_shape
    if z.shape[1:] != expected:
        raise ValueError(
            f"z must have shape (k, {', '.join(map(str, expected))}), got {tuple(z.shape)}"
        )
    return z


def _mean_and_se(samples: torch.Tensor) -> Estimate:
    k = samples.shape[0]
    se = (
        samples.std(0) / math.sqrt(k)
        if k > 1
        else torch.full_like(samples[0], math.nan)
    )
    return Estimate(samples.mean(0), se)


def log_weights(
    model, q: D.Distribution, x: torch.Tensor, k: int = 1, z: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Log importance weights :math:`\log p(x, z_j) - \log q(z_j)` for ``k`` draws z_j ~ q.

    Arguments:
        model: has ``log_joint(x, z)``.
        q: the proposal (see the module docstring).
        x: data, shape ``(..., D)``.
        k: number of draws per data point, at least 1.
        z: optional draws of shape ``(k, ..., d)``, to evaluate on given samples.

    Returns:
        Tensor of shape ``(k, ...)``.
    """
    q = _proposal_for(q, x)
    z = _samples(q, x, k, z)
    return model.log_joint(x, z) - q.log_prob(z)


def elbo(
    model, q: D.Distribution, x: torch.Tensor, k: int = 1, z: torch.Tensor | None = None
) -> Estimate:
    r"""ELBO_k, split two: :math:`\frac1k\sum_j [\log p(x, z_j) - \log q(z_j|x)]`.

    Arguments:
        model, q, x, k, z: as in :func:`log_weights`.

    Returns:
        :class:`Estimate` with one value per data point and its standard error.

    References:
        Kingma & Welling (2013), arXiv:1312.6114, eq. 3; survey eqs. 6 and 11.

    Example:
        >>> from vbtutor.models import LinearGaussian
        >>> m = LinearGaussian.random(3, 2, seed=0)
        >>> x = m.sample(5)
        >>> post = m.posterior(x)  # the exact posterior makes every log-weight equal log p(x)
        >>> torch.allclose(elbo(m, post, x, k=4).value, m.log_marginal(x))
        True
    """
    return _mean_and_se(log_weights(model, q, x, k, z))


def elbo_split_one(
    model, q: D.Distribution, x: torch.Tensor, k: int = 1, z: torch.Tensor | None = None
) -> Estimate:
    r"""ELBO_k, split one: reconstruction :math:`\frac1k\sum_j\log p(x|z_j)` minus the
    closed-form :math:`\mathrm{KL}(q(z|x)\,\|\,p(z))`.

    The standard error covers the reconstruction term only: the KL term is exact.

    Arguments:
        model: has ``log_joint(x, z)`` and ``prior()``; q, x, k, z as in :func:`log_weights`.

    References:
        Kingma & Welling (2013), arXiv:1312.6114, eq. 10; survey eq. 9.
    """
    q = _proposal_for(q, x)
    z = _samples(q, x, k, z)
    prior = model.prior()
    recon = _mean_and_se(
        model.log_joint(x, z) - prior.log_prob(z)
    )  # log p(x|z); checks x
    kl = _closed_form_kl(q, prior)
    return Estimate(recon.value - kl, recon.se)


def _as_full_gaussian(dist: D.Distribution) -> D.Distribution:
    """An ``Independent`` diagonal Normal as the equal ``MultivariateNormal``; else as is."""
    if (
        isinstance(dist, D.Independent)
        and isinstance(dist.base_dist, D.Normal)
        and dist.reinterpreted_batch_ndims == 1
    ):
        base = dist.base_dist
        return D.MultivariateNormal(base.loc, scale_tril=torch.diag_embed(base.scale))
    return dist


def _closed_form_kl(q: D.Distribution, p: D.Distribution) -> torch.Tensor:
    """KL(q || p) by torch's registered formulas, a diagonal Gaussian taken as a full one
    when torch has no formula for the mixed pair (a full q against a diagonal prior)."""
    try:
        return D.kl_divergence(q, p)
    except NotImplementedError:
        try:
            return D.kl_divergence(_as_full_gaussian(q), _as_full_gaussian(p))
        except NotImplementedError:
            raise ValueError(
                f"q: no closed-form KL from {type(q).__name__} to the prior"
                f" {type(p).__name__}; use elbo or elbo_split_three"
            ) from None


def elbo_split_three(
    model,
    q_z: D.Distribution,
    x: torch.Tensor,
    k: int = 1,
    z: torch.Tensor | None = None,
) -> Estimate:
    r"""ELBO_k, split three: the same bound with a proposal q(z) that ignores x.

    Arguments:
        q_z: a distribution over z with empty batch shape (one q shared by all x).

    References:
        Survey eq. 12.
    """
    if not isinstance(q_z, D.Distribution) or q_z.batch_shape != torch.Size():
        raise ValueError(
            "q_z must be a torch distribution with empty batch shape (x-independent)"
        )
    return elbo(model, q_z, x, k, z)


def elbo_score_surrogate(
    model, q: D.Distribution, x: torch.Tensor, k: int = 1
) -> torch.Tensor:
    r"""A surrogate whose gradient is the score-function (REINFORCE) estimate of the ELBO's.

    With draws :math:`z_j \sim q_\phi` held fixed (no reparameterisation) and
    :math:`\log w_j = \log p_\theta(x, z_j) - \log q_\phi(z_j|x)`, the surrogate
    :math:`\frac1k\sum_j [\log w_j + \mathrm{sg}(\log w_j)\,(\log q_\phi(z_j|x)
    - \mathrm{sg}(\log q_\phi(z_j|x)))]` (sg: stop-gradient) has the value of
    ``ELBO_k`` and the gradient
    :math:`\frac1k\sum_j [\log w_j \nabla_\phi \log q_\phi(z_j|x)
    + \nabla \log w_j]`, which is unbiased for :math:`\nabla \mathrm{ELBO}` because
    :math:`\mathbb E_q[\nabla_\phi \log q_\phi] = 0`. Compare its variance with the
    gradient of :func:`elbo`, which reparameterises. Chapter: vae.

    Arguments:
        model, q, x, k: as in :func:`log_weights`.

    Returns:
        Tensor of shape ``x.shape[:-1]``; differentiate its sum or mean.

    References:
        Williams (1992), "Simple statistical gradient-following algorithms"; Mohamed et
        al. (2020), arXiv:1906.10652, section 4.

    Example:
        >>> from vbtutor.models import LinearGaussian
        >>> m = LinearGaussian.random(3, 2, seed=0)
        >>> x = m.sample(4)
        >>> elbo_score_surrogate(m, m.posterior(x), x, k=8).shape
        torch.Size([4])
    """
    q = _proposal_for(q, x)
    check_tensor("x", x, min_dim=1)
    check_positive_int("k", k)
    z = q.sample((k,))
    log_q = q.log_prob(z)
    log_w = model.log_joint(x, z) - log_q
    # the second term is 0 in value; its gradient is log w * grad log q
    return (log_w + log_w.detach() * (log_q - log_q.detach())).mean(0)


def iwae(
    model, q: D.Distribution, x: torch.Tensor, k: int = 1, z: torch.Tensor | None = None
) -> Estimate:
    r"""One draw of the IWAE_k estimate :math:`\log \frac1k \sum_j p(x, z_j)/q(z_j|x)`.

    The standard error is the delta-method one,
    :math:`\widehat{\mathrm{sd}}(w) / (\sqrt{k}\,\bar w)`, of the log of the average weight.

    References:
        Burda, Grosse & Salakhutdinov (2015), arXiv:1509.00519, eq. 8; survey eq. 15.

    Example:
        >>> from vbtutor.models import LinearGaussian
        >>> m = LinearGaussian.random(3, 2, seed=0)
        >>> x = m.sample(5)
        >>> torch.allclose(iwae(m, m.posterior(x), x, k=4).value, m.log_marginal(x))
        True
    """
    log_w = log_weights(model, q, x, k, z)
    k = log_w.shape[0]
    value = log_mean_exp(log_w, 0)
    if k == 1:
        return Estimate(value, torch.full_like(value, math.nan))
    w = torch.exp(
        log_w - log_w.max(0).values
    )  # rescaled weights: the ratio is unchanged
    return Estimate(value, w.std(0) / (math.sqrt(k) * w.mean(0)))


def naive_log_marginal(model, x: torch.Tensor, k: int) -> Estimate:
    r"""The prior-sampling estimate :math:`\log \frac1k \sum_j p(x|z_j)`, z_j ~ p(z).

    This is IWAE_k with q = p(z). The survey's eq. 3 omits the 1/k; with it the estimate
    targets log p(x) (it is still biased low for finite k, by Jensen).

    Example:
        >>> from vbtutor.models import LinearGaussian
        >>> m = LinearGaussian.random(2, 1, seed=0)
        >>> x = m.sample(3)
        >>> naive_log_marginal(m, x, k=10).value.shape
        torch.Size([3])
    """
    return iwae(model, model.prior(), x, k)


def iwae_gap(log_w: torch.Tensor, log_px: torch.Tensor | float) -> Estimate:
    r"""Estimate the gap :math:`\log p(x) - \mathrm{IWAE}_k` from replicate sets of log-weights.

    Needs the exact ``log_px``. Each replicate gives
    :math:`g = \log \bar w - (\bar w - 1)` with :math:`\bar w = \frac1k\sum_j w_j / p(x)`;
    since :math:`\mathbb E[\bar w] = 1`, :math:`\mathbb E[g] = \mathrm{IWAE}_k - \log p(x)`,
    and the subtracted control variate cancels the first-order noise of :math:`\log \bar w`,
    so the standard error shrinks like 1/k instead of 1/sqrt(k).

    Arguments:
        log_w: log-weights of shape ``(k, R, ...)``: ``R >= 2`` replicate sets of ``k``.
        log_px: exact log p(x), broadcastable to ``log_w.shape[2:]``.

    Returns:
        :class:`Estimate` of the gap (non-negative in expectation) over the ``...`` dims.

    Example:
        >>> log_w = torch.zeros(5, 10)  # every weight equals p(x) = 1: no gap
        >>> iwae_gap(log_w, 0.0).value
        tensor(0.)
    """
    check_tensor("log_w", log_w, min_dim=2, allow_neg_inf=True)
    if log_w.shape[1] < 2:
        raise ValueError(
            f"log_w needs at least 2 replicates along dim 1, got {log_w.shape[1]}"
        )
    log_px = check_tensor("log_px", torch.as_tensor(log_px, dtype=log_w.dtype))
    try:
        fits = torch.broadcast_shapes(log_px.shape, log_w.shape[1:]) == log_w.shape[1:]
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"log_px {tuple(log_px.shape)} must broadcast to log_w.shape[2:] "
            f"{tuple(log_w.shape[2:])}"
        )
    # log w_bar directly, not log(exp(.)): far below p(x), w_bar underflows to 0
    log_w_bar = log_mean_exp(log_w, 0) - log_px
    g = log_w_bar - torch.expm1(log_w_bar)
    return _mean_and_se(-g)


def subset_log_means(log_w: torch.Tensor, m: int) -> torch.Tensor:
    r"""log of the average weight over every m-element subset of the k weights (along dim 0).

    The average of the subset averages is the full average (survey eq. 21), so
    ``log_mean_exp(subset_log_means(log_w, m))`` equals ``log_mean_exp(log_w)``; averaging
    the logs instead gives at most that (Jensen), which is the step IWAE_m <= IWAE_k.

    Returns:
        Tensor of shape ``(C(k, m), ...)``.

    Example:
        >>> lw = torch.log(torch.tensor([1.0, 2.0, 3.0]))
        >>> subset_log_means(lw, 2).exp()
        tensor([1.5000, 2.0000, 2.5000])
    """
    check_tensor("log_w", log_w, min_dim=1, allow_neg_inf=True)
    k = log_w.shape[0]
    check_positive_int("m", m)
    if m > k:
        raise ValueError(f"m must be at most k = {k}, got {m}")
    if math.comb(k, m) > 100_000:
        raise ValueError(
            f"C(k, m) = {math.comb(k, m)} subsets is too many; use a smaller k or m"
        )
    index = torch.tensor(list(itertools.combinations(range(k), m)), device=log_w.device)
    return log_mean_exp(log_w[index], dim=1)
