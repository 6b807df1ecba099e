r"""Coordinate-ascent variational inference (CAVI) for a truncated Dirichlet-process mixture.

The model is the truncated stick-breaking mixture of isotropic Gaussians with a known
observation noise ``sigma`` and a Gaussian prior on the component means,

.. math::
    v_t \sim \mathrm{Beta}(1, \alpha)\ (t < T),\quad v_T = 1,\quad
    \pi_t = v_t \prod_{j<t} (1 - v_j),\quad
    \mu_t \sim \mathcal N(m_0, s_0^2 I),\quad
    z_n \sim \mathrm{Cat}(\pi),\quad x_n \sim \mathcal N(\mu_{z_n}, \sigma^2 I),

and the mean-field family of Blei & Jordan (2006):
:math:`q(v_t) = \mathrm{Beta}(\gamma_{t1}, \gamma_{t2})`,
:math:`q(\mu_t) = \mathcal N(m_t, s_t^2 I)`, :math:`q(z_n) = \mathrm{Cat}(\phi_n)`.
Every update is the exact maximiser of the ELBO in its block, so the ELBO, computed here
in closed form, never decreases. A sweep of :func:`fit_dpmm` is a handful of tensor
operations on the (N, T) responsibilities, with no loop over points or components, and
gets its ELBO from quantities it has already computed. Chapter: dpmm.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import torch
from torch import distributions as D

from ._checks import (
    check_positive,
    check_positive_int,
    check_same_shape,
    check_tensor,
)
from .bounds import Estimate, _mean_and_se
from .distributions import _one_thread, _ratio_minus_log

__all__ = [
    "DPMMPrior",
    "DPMMPosterior",
    "DPMMFit",
    "StickExpectations",
    "stick_expectations",
    "expected_weights",
    "update_globals",
    "update_responsibilities",
    "elbo_terms",
    "elbo",
    "monte_carlo_elbo",
    "init_responsibilities",
    "fit_dpmm",
    "log_evidence_enumerated",
    "mixture_log_density",
    "n_clusters",
]


class DPMMPrior(NamedTuple):
    """Hyperparameters: concentration ``alpha``, noise ``sigma``, prior ``mean``, ``std``.

    The prior on each component mean is N(mean, std^2 I), with ``mean`` of shape (D,).
    """

    alpha: float
    sigma: float
    mean: torch.Tensor
    std: float


class DPMMPosterior(NamedTuple):
    """Variational parameters for truncation T and N data points.

    ``gamma1``, ``gamma2``: (T - 1,) Beta parameters of the sticks (the last stick is 1);
    ``means`` (T, D) and ``variances`` (T,): q(mu_t) = N(means[t], variances[t] I);
    ``resp`` (N, T): the responsibilities phi.
    """

    gamma1: torch.Tensor
    gamma2: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor
    resp: torch.Tensor


class DPMMFit(NamedTuple):
    """Result of :func:`fit_dpmm`.

    ``q``: the final :class:`DPMMPosterior`; ``elbo``: the ELBO after every sweep (the first
    entry is after the first update of the global factors); ``weights``: E_q[pi_t], shape
    (T,); ``n_iter``: number of sweeps; ``converged``: whether a sweep changed the ELBO by
    less than ``tol`` within ``max_iter`` sweeps.
    """

    q: DPMMPosterior
    elbo: torch.Tensor
    weights: torch.Tensor
    n_iter: int
    converged: bool


class StickExpectations(NamedTuple):
    """E[log v_t], E[log(1 - v_t)] for K Beta sticks and E[log pi_t] for the K + 1 weights."""

    log_v: torch.Tensor
    log_1mv: torch.Tensor
    log_pi: torch.Tensor


def _check_gammas(gamma1: torch.Tensor, gamma2: torch.Tensor) -> None:
    check_tensor("gamma1", gamma1, dim=1)
    check_tensor("gamma2", gamma2, dim=1)
    check_same_shape("gamma2", gamma2, "gamma1", gamma1)
    check_positive("gamma1", gamma1)
    check_positive("gamma2", gamma2)


def stick_expectations(gamma1: torch.Tensor, gamma2: torch.Tensor) -> StickExpectations:
    r"""Expected logs of Beta sticks and of the stick-breaking weights.

    For :math:`v_t \sim \mathrm{Beta}(\gamma_{t1}, \gamma_{t2})`, with :math:`\psi` the
    digamma function,

    .. math::
        \mathbb E[\log v_t] = \psi(\gamma_{t1}) - \psi(\gamma_{t1} + \gamma_{t2}),\quad
        \mathbb E[\log(1 - v_t)] = \psi(\gamma_{t2}) - \psi(\gamma_{t1} + \gamma_{t2}),

    and, since :math:`\log\pi_t = \log v_t + \sum_{j<t}\log(1 - v_j)` with the last stick
    :math:`v_{K+1} = 1`, :math:`\mathbb E[\log\pi_t] = \mathbb E[\log v_t]
    + \sum_{j<t}\mathbb E[\log(1 - v_j)]` for :math:`t = 1, \dots, K + 1`.

    Arguments:
        gamma1, gamma2: positive Beta parameters, shape ``(K,)``.

    Returns:
        :class:`StickExpectations` with ``log_v`` and ``log_1mv`` of shape ``(K,)`` and
        ``log_pi`` of shape ``(K + 1,)``.

    References:
        Blei & Jordan (2006), doi:10.1214/06-BA104, section 4; survey eqs. 47-49.

    Example:
        >>> e = stick_expectations(torch.tensor([1.0]), torch.tensor([1.0]))
        >>> [round(t, 6) for t in e.log_pi.tolist()]  # v ~ U(0, 1): E[log v] = -1
        [-1.0, -1.0]
    """
    _check_gammas(gamma1, gamma2)
    return _sticks(gamma1, gamma2)


def _sticks(gamma1, gamma2):
    total = torch.special.digamma(gamma1 + gamma2)
    log_v = torch.special.digamma(gamma1) - total
    log_1mv = torch.special.digamma(gamma2) - total
    zero = log_v.new_zeros(1)
    before = torch.cat([zero, torch.cumsum(log_1mv, 0)])  # sum_{j<t} E log(1 - v_j)
    return StickExpectations(log_v, log_1mv, torch.cat([log_v, zero]) + before)


def expected_weights(gamma1: torch.Tensor, gamma2: torch.Tensor) -> torch.Tensor:
    r"""Mixture weights :math:`\mathbb E_q[\pi_t] = \mathbb E[v_t]\prod_{j<t}\mathbb E[1 - v_j]`.

    The sticks are independent under q, so the expectation of the product is the product
    of the Beta means. The K + 1 weights sum to one.

    Arguments:
        gamma1, gamma2: positive Beta parameters, shape ``(K,)``.

    Returns:
        Tensor of shape ``(K + 1,)``.

    Example:
        >>> expected_weights(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]))
        tensor([0.5000, 0.2500, 0.2500])
    """
    _check_gammas(gamma1, gamma2)
    return _weights(gamma1, gamma2)


def _weights(gamma1, gamma2):
    mean_v = gamma1 / (gamma1 + gamma2)
    rest = torch.cat([mean_v.new_ones(1), torch.cumprod(1 - mean_v, 0)])
    return torch.cat([mean_v, mean_v.new_ones(1)]) * rest


def _check_prior(prior: DPMMPrior, x: torch.Tensor) -> None:
    if not isinstance(prior, DPMMPrior):
        raise ValueError(f"prior must be a DPMMPrior, got {type(prior).__name__}")
    check_positive("alpha", prior.alpha)
    check_positive("sigma", prior.sigma)
    check_positive("std", prior.std)
    check_tensor("mean", prior.mean, dim=1)
    if prior.mean.shape[0] != x.shape[1]:
        raise ValueError(
            f"mean must have shape ({x.shape[1]},) to match x, "
            f"got {tuple(prior.mean.shape)}"
        )


def _check_x(x: torch.Tensor) -> None:
    check_tensor("x", x, dim=2)
    if not x.is_floating_point() or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x must be a non-empty float tensor (N, D), got {x.shape}")


def _check_resp(resp: torch.Tensor, x: torch.Tensor) -> None:
    check_tensor("resp", resp, dim=2)
    if resp.shape[0] != x.shape[0]:
        raise ValueError(
            f"resp must have one row per row of x ({x.shape[0]}), got {resp.shape[0]}"
        )
    sums = resp.sum(1)
    if bool((resp < 0).any()) or not torch.allclose(sums, torch.ones_like(sums)):
        raise ValueError("resp must be non-negative with rows summing to 1")


def _check_q(q: DPMMPosterior, x: torch.Tensor) -> None:
    if not isinstance(q, DPMMPosterior):
        raise ValueError(f"q must be a DPMMPosterior, got {type(q).__name__}")
    _check_resp(q.resp, x)
    t = q.resp.shape[1]
    if t > 1:
        _check_gammas(q.gamma1, q.gamma2)
    elif not all(isinstance(g, torch.Tensor) and g.shape == (0,) for g in q[:2]):
        raise ValueError(
            "q with T = 1 has no sticks: gamma1, gamma2 must have shape (0,)"
        )
    check_tensor("means", q.means, dim=2)
    check_tensor("variances", q.variances, dim=1)
    check_positive("variances", q.variances)
    if q.gamma1.shape[0] != t - 1 or q.means.shape != (t, x.shape[1]):
        raise ValueError(
            f"q must have T - 1 = {t - 1} sticks and means of shape ({t}, {x.shape[1]}) "
            "to match x and q.resp, "
            f"got {q.gamma1.shape[0]} sticks and means {tuple(q.means.shape)}"
        )


def update_globals(
    x: torch.Tensor, resp: torch.Tensor, prior: DPMMPrior
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The optimal sticks and component means given the responsibilities.

    With :math:`N_t = \sum_n \phi_{nt}`:
    :math:`\gamma_{t1} = 1 + N_t`, :math:`\gamma_{t2} = \alpha + \sum_{j>t} N_j`
    (t < T), and :math:`q(\mu_t) = \mathcal N(m_t, s_t^2 I)` with precision
    :math:`s_t^{-2} = s_0^{-2} + N_t/\sigma^2` and mean
    :math:`m_t = s_t^2\,(m_0/s_0^2 + \sum_n \phi_{nt} x_n/\sigma^2)`.

    Arguments:
        x: data, shape ``(N, D)``.
        resp: responsibilities, shape ``(N, T)``, rows summing to 1.
        prior: a :class:`DPMMPrior`.

    Returns:
        ``(gamma1, gamma2, means, variances)``.

    References:
        Blei & Jordan (2006), doi:10.1214/06-BA104, eqs. 18-19.
    """
    _check_x(x)
    _check_resp(resp, x)
    _check_prior(prior, x)
    return _globals(x, resp.to(x), prior)


def _globals(x, resp, prior):
    counts = resp.sum(0)  # N_t
    after = (counts.sum() - counts.cumsum(0)).clamp(min=0)  # sum_{j>t} N_j, never < 0
    gamma1, gamma2 = counts[:-1] + 1, after[:-1] + prior.alpha
    precision = counts / prior.sigma**2 + 1 / prior.std**2
    variances = precision.reciprocal()  # 1 / tensor would take a slower Python path
    weighted = resp.T @ x / prior.sigma**2 + prior.mean / prior.std**2
    return gamma1, gamma2, weighted * variances[:, None], variances


def _expected_log_lik(
    x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor, sigma: float
) -> torch.Tensor:
    """E_q[log N(x_n | mu_t, sigma^2 I)], shape (N, T)."""
    d = x.shape[1]
    sq = (x[:, None, :] - means).square().sum(-1) + d * variances
    return -0.5 * d * math.log(2 * math.pi * sigma**2) - sq / (2 * sigma**2)


def update_responsibilities(
    x: torch.Tensor,
    gamma1: torch.Tensor,
    gamma2: torch.Tensor,
    means: torch.Tensor,
    variances: torch.Tensor,
    prior: DPMMPrior,
) -> torch.Tensor:
    r"""The optimal q(z_n): :math:`\phi_{nt} \propto \exp(\mathbb E[\log\pi_t]
    + \mathbb E[\log\mathcal N(x_n \mid \mu_t, \sigma^2 I)])`.

    Arguments:
        x: data ``(N, D)``; gamma1, gamma2: ``(T - 1,)``; means ``(T, D)``, variances
        ``(T,)``: the current q(mu_t); prior: a :class:`DPMMPrior`.

    Returns:
        Responsibilities of shape ``(N, T)``.

    References:
        Blei & Jordan (2006), doi:10.1214/06-BA104, eq. 22.
    """
    _check_x(x)
    _check_prior(prior, x)
    _check_gammas(gamma1, gamma2)
    check_tensor("means", means, dim=2)
    check_tensor("variances", variances, dim=1)
    check_positive("variances", variances)
    t = gamma1.shape[0] + 1
    if means.shape != (t, x.shape[1]) or variances.shape != (t,):
        raise ValueError(
            f"means must be ({t}, {x.shape[1]}) and variances ({t},) for "
            f"{t - 1} sticks, got {tuple(means.shape)} and {tuple(variances.shape)}"
        )
    gamma1, gamma2, means, variances = (
        a.to(x) for a in (gamma1, gamma2, means, variances)
    )
    return _responsibilities(x, gamma1, gamma2, means, variances, prior)


def _point_terms(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The part of E_q[log N(x_n | mu_t, sigma^2 I)] that is the same for every t, (N,)."""
    s2, d = sigma**2, x.shape[1]
    return -0.5 * d * math.log(2 * math.pi * s2) - x.square().sum(1) / (2 * s2)


def _expected_sq_norms(means, variances):
    """E_q ||mu_t||^2 = ||m_t||^2 + D s_t^2, shape (T,)."""
    return means.square().sum(1).add_(variances, alpha=means.shape[1])


def _logits(x, log_pi, means, sq_norms, sigma):
    """log pi_t + E_q[log N(x_n | mu_t, sigma^2 I)] - _point_terms(x), shape (N, T).

    Expanding E||x_n - mu_t||^2 = ||x_n||^2 - 2 x_n . m_t + E||mu_t||^2 (``sq_norms``)
    leaves one matrix product; the ||x_n||^2 part does not depend on t and is left to
    _point_terms. The result is the (N, T) view of a (T, N) array: sums over t then run
    along memory.
    """
    s2 = sigma**2
    bias = torch.add(log_pi, sq_norms, alpha=-0.5 / s2)
    return torch.addmm(bias[:, None], means, x.T, alpha=1 / s2).T


def _assign(logits):
    """q(z_n) = softmax_t(logit_nt), and the log normaliser log sum_t exp(logit_nt), (N,)."""
    top = logits.amax(1, keepdim=True)  # taken out first, so that exp cannot overflow
    weights = torch.exp(logits - top)
    total = weights.sum(1, keepdim=True)
    # times the reciprocal: half the time of dividing each of the N * T entries
    return weights * total.reciprocal(), (top + total.log()).squeeze(1)


def _responsibilities(x, gamma1, gamma2, means, variances, prior):
    log_pi = _sticks(gamma1, gamma2).log_pi
    sq_norms = _expected_sq_norms(means, variances)
    return _assign(_logits(x, log_pi, means, sq_norms, prior.sigma))[0]


def elbo_terms(
    x: torch.Tensor, q: DPMMPosterior, prior: DPMMPrior
) -> dict[str, torch.Tensor]:
    r"""The five terms of the ELBO, each in closed form.

    ``sticks``: :math:`-\sum_{t<T}\mathrm{KL}(q(v_t)\,\|\,\mathrm{Beta}(1, \alpha))`;
    ``means``: :math:`-\sum_t\mathrm{KL}(q(\mu_t)\,\|\,\mathcal N(m_0, s_0^2 I))`;
    ``assignments``: :math:`\sum_n\mathbb E_q[\log p(z_n \mid v)]
    = \sum_{n,t}\phi_{nt}\,\mathbb E[\log\pi_t]`;
    ``likelihood``: :math:`\sum_{n,t}\phi_{nt}\,\mathbb E_q[\log\mathcal N(x_n \mid
    \mu_t, \sigma^2 I)]`; ``entropy_z``: :math:`-\sum_{n,t}\phi_{nt}\log\phi_{nt}`.

    Arguments:
        x: data ``(N, D)``; q: a :class:`DPMMPosterior`; prior: a :class:`DPMMPrior`.

    Returns:
        A dict of scalar tensors; their sum is :func:`elbo`.

    References:
        Blei & Jordan (2006), doi:10.1214/06-BA104, eq. 16; survey eq. 46.
    """
    _check_x(x)
    _check_q(q, x)
    _check_prior(prior, x)
    return _terms(x, q, prior)


def _terms(x, q, prior):
    kl_v = q.gamma1.new_zeros(1)  # no sticks when T = 1
    if q.gamma1.numel():
        one = q.gamma1.new_ones(())
        p_v = D.Beta(one, one * prior.alpha)
        kl_v = D.kl_divergence(D.Beta(q.gamma1, q.gamma2), p_v)
    log_pi = _sticks(q.gamma1, q.gamma2).log_pi
    return {
        "sticks": -kl_v.sum(),
        "means": -_kl_means(q.means, q.variances, prior),
        "assignments": (q.resp * log_pi).sum(),
        "likelihood": (
            q.resp * _expected_log_lik(x, q.means, q.variances, prior.sigma)
        ).sum(),
        "entropy_z": -torch.special.xlogy(q.resp, q.resp).sum(),
    }


def _kl_means(means, variances, prior):
    """sum_t KL(N(m_t, s_t^2 I) || N(m_0, s_0^2 I)), accurate also where s_t ~ s_0."""
    d, v0 = means.shape[1], prior.std**2
    sq = (means - prior.mean).square().sum(1) / v0
    return 0.5 * (d * _ratio_minus_log(variances, variances.new_tensor(v0)) + sq).sum()


def elbo(x: torch.Tensor, q: DPMMPosterior, prior: DPMMPrior) -> torch.Tensor:
    r"""The exact ELBO :math:`\mathbb E_q[\log p(x, v, \mu, z) - \log q(v, \mu, z)]`.

    It is a lower bound on :math:`\log p(x)` of the truncated model (see
    :func:`log_evidence_enumerated`), with equality when q is the exact posterior.

    Example:
        >>> x = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
        >>> prior = DPMMPrior(1.0, 1.0, torch.zeros(1, dtype=torch.float64), 1.0)
        >>> fit = fit_dpmm(x, truncation=1, prior=prior)  # T = 1: q is the exact posterior
        >>> round(float(elbo(x, fit.q, prior) - log_evidence_enumerated(x, 1, prior)), 10)
        0.0
    """
    return sum(elbo_terms(x, q, prior).values())


def monte_carlo_elbo(
    x: torch.Tensor, q: DPMMPosterior, prior: DPMMPrior, n: int
) -> Estimate:
    r"""Monte Carlo ELBO: the average of :math:`\log p(x, v, \mu, z) - \log q(v, \mu, z)`
    over ``n`` joint draws from q (torch's global random stream), scored with
    ``torch.distributions``.

    An independent check of :func:`elbo`, which uses no sampling. The sticks are drawn
    in floating point, so keep their Beta parameters moderate (a draw of exactly 0 or 1
    has an infinite log density).

    Arguments:
        x, q, prior: as in :func:`elbo_terms`; n: number of draws, at least 2.

    Returns:
        :class:`~vbtutor.bounds.Estimate` (scalar value and standard error).
    """
    _check_x(x)
    _check_q(q, x)
    _check_prior(prior, x)
    if check_positive_int("n", n) < 2:
        raise ValueError(f"n must be at least 2 for a standard error, got {n}")
    one = q.gamma1.new_ones(())
    q_v, p_v = D.Beta(q.gamma1, q.gamma2), D.Beta(one, one * prior.alpha)
    std = q.variances.sqrt()[:, None].expand_as(q.means)
    q_mu = D.Independent(D.Normal(q.means, std), 1)
    p_mu = D.Independent(
        D.Normal(prior.mean, prior.std * torch.ones_like(prior.mean)), 1
    )
    q_z = D.Categorical(probs=q.resp)
    v, mu, z = q_v.sample((n,)), q_mu.sample((n,)), q_z.sample((n,))
    ones = v.new_ones(n, 1)
    sticks = torch.cat([v, ones], 1)  # the last stick is 1
    rest = torch.cat([ones, torch.cumprod(1 - v, 1)], 1)
    log_pi = torch.log(sticks * rest)
    centre = mu.gather(1, z[..., None].expand(-1, -1, x.shape[1]))
    lik = D.Independent(D.Normal(centre, prior.sigma), 1)
    log_p = (
        p_v.log_prob(v).sum(1)
        + p_mu.log_prob(mu).sum(1)
        + log_pi.gather(1, z).sum(1)
        + lik.log_prob(x).sum(1)
    )
    log_q = q_v.log_prob(v).sum(1) + q_mu.log_prob(mu).sum(1) + q_z.log_prob(z).sum(1)
    return _mean_and_se(log_p - log_q)


def init_responsibilities(
    n: int,
    truncation: int,
    generator: torch.Generator | None = None,
    dtype=torch.float64,
) -> torch.Tensor:
    """Random responsibilities: each row a draw from the flat Dirichlet on T categories.

    Arguments:
        n: number of data points; truncation: T; generator: optional torch.Generator.

    Returns:
        Tensor of shape ``(n, truncation)`` with rows summing to 1.
    """
    check_positive_int("n", n)
    check_positive_int("truncation", truncation)
    e = -torch.log(torch.rand((n, truncation), generator=generator, dtype=dtype))
    return e / e.sum(1, keepdim=True)


def fit_dpmm(
    x: torch.Tensor,
    truncation: int,
    prior: DPMMPrior,
    max_iter: int = 500,
    tol: float = 1e-3,
    init: str | torch.Tensor = "kmeans",
    seed: int = 0,
) -> DPMMFit:
    r"""Fit the truncated DP mixture by coordinate ascent (CAVI).

    Each sweep sets the sticks and the component means to their optimum given the
    responsibilities (:func:`update_globals`), then the responsibilities to theirs
    (:func:`update_responsibilities`), and records the exact ELBO (:func:`elbo`), here
    assembled from the sweep's own quantities: after the update of q(z), its three terms
    that involve q(z) add up to :math:`\sum_n \log\sum_t \exp(\text{logit}_{nt})`, the log
    normaliser of the softmax. Each step maximises the ELBO over its block exactly, so
    the recorded ELBO never decreases.

    Stopping rule: the fit stops after sweep k >= 2 if
    :math:`|\mathrm{ELBO}_k - \mathrm{ELBO}_{k-1}| < \mathrm{tol}`, in nats for the whole
    data set, not per point. This is the rule of scikit-learn's
    ``BayesianGaussianMixture`` (scikit-learn 1.9, ``BaseMixture.fit_predict``): its
    ``lower_bound_`` is also a sum over the data, and it stops when
    ``abs(change) < tol``. (The "average gain" of its docstring holds for
    ``GaussianMixture``, whose bound is a mean per point.) So the same ``tol`` asks the
    same flatness of both bounds; for a threshold per point, pass ``N`` times it.

    Arguments:
        x: data, shape ``(N, D)``, floating point.
        truncation: T, the number of components of q, at least 1.
        prior: a :class:`DPMMPrior`.
        max_iter: maximum number of sweeps, at least 1.
        tol: non-negative threshold on the ELBO's change per sweep, in nats for the
            whole data set (scikit-learn's default, ``1e-3``).
        init: ``"kmeans"`` (one-hot labels of scikit-learn's k-means with T clusters,
            the start that scikit-learn's ``BayesianGaussianMixture`` uses),
            ``"random"`` (flat-Dirichlet responsibilities) or a ``(N, T)`` tensor of
            responsibilities.
        seed: seed of the initialisation (k-means' ``random_state``).

    Returns:
        :class:`DPMMFit`.

    References:
        Blei & Jordan (2006), Variational inference for Dirichlet process mixtures,
        Bayesian Analysis 1(1), doi:10.1214/06-BA104; survey section 8.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> centres = torch.tensor([[-4.0, 0.0], [4.0, 0.0]], dtype=torch.float64)
        >>> noise = torch.randn(100, 2, generator=g, dtype=torch.float64)
        >>> x = centres.repeat(50, 1) + 0.5 * noise
        >>> prior = DPMMPrior(1.0, sigma=0.5, mean=x.new_zeros(2), std=5.0)
        >>> fit = fit_dpmm(x, truncation=10, prior=prior)
        >>> n_clusters(fit.weights), bool((fit.elbo.diff() >= -1e-9).all())
        (2, True)
    """
    _check_x(x)
    check_positive_int("truncation", truncation)
    _check_prior(prior, x)
    check_positive_int("max_iter", max_iter)
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not tol >= 0:
        raise ValueError(f"tol must be a non-negative number, got {tol!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    resp = _initial_resp(x, truncation, init, seed)
    # Small tensors: threads only add overhead on a busy CPU, and so does autograd's
    # bookkeeping, which inference mode skips (about 15% of a sweep).
    with _one_thread(), torch.inference_mode():
        fit = _cavi(x, resp, prior, max_iter, tol)
    return _plain(fit)


def _plain(fit: DPMMFit) -> DPMMFit:
    """Contiguous copies of the tensors made in inference mode, usable anywhere."""
    return fit._replace(
        q=DPMMPosterior(
            *(t.clone(memory_format=torch.contiguous_format) for t in fit.q)
        ),
        elbo=fit.elbo.clone(),
        weights=fit.weights.clone(),
    )


class _StickMaps(NamedTuple):
    """The stick bookkeeping of truncation T as constant linear maps (K = T - 1 sticks).

    The Beta parameters are linear in the counts N_t, and E[log pi_t] is linear in their
    digammas, so a sweep does each in one matrix-vector product. ``gammas`` below is
    the (3K,) vector (gamma_1, gamma_2, gamma_1 + gamma_2) of :func:`update_globals`:
    ``gammas = offset + to_gammas @ counts`` with ``offset`` = (1, alpha, 1 + alpha), and
    ``log_pi = to_log_pi @ digamma(gammas)`` is :func:`stick_expectations`' ``log_pi``.
    """

    to_gammas: torch.Tensor  # (3K, T)
    offset: torch.Tensor  # (3K,)
    to_log_pi: torch.Tensor  # (T, 3K)
    sign: torch.Tensor  # (3K,): +1, +1, -1 on the three blocks


def _stick_maps(truncation, alpha, like):
    k, ones = truncation - 1, like.new_ones
    eye = functools.partial(torch.eye, dtype=like.dtype, device=like.device)
    first = eye(k, truncation)  # gamma_1t - 1 = N_t
    later = ones(k, truncation).triu(1)  # gamma_2t - alpha = sum_{j>t} N_j
    own = eye(truncation, k)  # E log v_t
    before = ones(truncation, k).tril(-1)  # sum_{j<t} E log(1 - v_j)
    block = ones(k)
    return _StickMaps(
        to_gammas=torch.cat([first, later, first + later]),
        offset=torch.cat([block, alpha * block, (1 + alpha) * block]),
        to_log_pi=torch.cat([own, before, -(own + before)], 1),
        sign=torch.cat([block, block, -block]),
    )


def _sweep(x, stats_of, resp, prior, maps):
    """One CAVI sweep from ``resp``: the new q, and its ELBO less the constant of _cavi.

    The data are centred on the prior mean (see _cavi), and ``stats_of`` is x with a
    column of ones, so that one product gives sum_n phi_nt x_n and N_t. The sweep does
    :func:`update_globals` then :func:`update_responsibilities`, and gets the ELBO from
    what it has computed anyway. Once q(z_n) is the softmax of the logits, the three terms
    that involve it (assignments, likelihood, entropy_z) add up to sum_t phi_nt (logit_nt
    - log phi_nt) = log sum_t exp(logit_nt) per point, so only the two KL terms are left:

    - KL(Beta(g1, g2) || Beta(1, alpha)) = (g1 - 1) psi(g1) + (g2 - alpha) psi(g2)
      - (g1 + g2 - 1 - alpha) psi(g1 + g2) - log B(g1, g2) - log alpha, which over the
      blocks of ``gammas`` is sum sign [(gammas - offset) psi(gammas) - lgamma(gammas)],
      less K log alpha;
    - KL(N(m_t, s_t^2 I) || N(0, s0^2 I)) = (E||mu_t||^2 / s0^2 - D log s_t^2
      + D log s0^2 - D) / 2.

    The parts that do not change (K log alpha and the terms in s0) are left to _cavi.
    """
    d, s2, v0 = x.shape[1], prior.sigma**2, prior.std**2
    stats = resp.T @ stats_of  # (T, D + 1)
    counts = stats[:, d]
    gammas = torch.addmv(maps.offset, maps.to_gammas, counts)
    digammas = torch.special.digamma(gammas)
    variances = counts.mul(1 / s2).add_(1 / v0).reciprocal_()
    means = stats[:, :d] * (variances / s2)[:, None]
    sq_norms = _expected_sq_norms(means, variances)
    logits = _logits(x, maps.to_log_pi @ digammas, means, sq_norms, prior.sigma)
    resp, log_norm = _assign(logits)
    kl_sticks = torch.dot(maps.sign * (gammas - maps.offset), digammas) - torch.dot(
        maps.sign, torch.lgamma(gammas)
    )
    kl_means = 0.5 * (sq_norms.sum() / v0 - d * variances.log().sum())
    gamma1, gamma2, _ = gammas.tensor_split(3)
    q = DPMMPosterior(gamma1, gamma2, means, variances, resp)
    return q, log_norm.sum() - kl_sticks - kl_means


def _cavi(x, resp, prior, max_iter, tol):
    # Work around the prior mean (the model is translation-equivariant), so that the
    # expanded square in _logits loses no precision on data far from the origin.
    centre = prior.mean.to(x)
    x, prior = x - centre, prior._replace(mean=torch.zeros_like(centre))
    (n, d), t = x.shape, resp.shape[1]
    stats_of = torch.cat([x, x.new_ones(n, 1)], 1)
    maps = _stick_maps(t, prior.alpha, x)
    constant = (  # sum_n _point_terms, and what the KLs' constant parts add (see _sweep)
        _point_terms(x, prior.sigma).sum().item()
        + (t - 1) * math.log(prior.alpha)
        + 0.5 * d * t * (1 - math.log(prior.std**2))
    )
    history, converged = [], False
    for _ in range(max_iter):
        q, elbo_less_constant = _sweep(x, stats_of, resp, prior, maps)
        resp = q.resp
        history.append(elbo_less_constant.item() + constant)
        if len(history) > 1 and abs(history[-1] - history[-2]) < tol:
            converged = True
            break
    return DPMMFit(
        q._replace(means=q.means + centre),
        torch.tensor(history, dtype=x.dtype, device=x.device),
        _weights(q.gamma1, q.gamma2),
        len(history),
        converged,
    )


def _initial_resp(
    x: torch.Tensor, truncation: int, init: str | torch.Tensor, seed: int
) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        _check_resp(init, x)
        if init.shape[1] != truncation:
            raise ValueError(
                f"init must have truncation = {truncation} columns, got {init.shape[1]}"
            )
        return init.to(x.dtype)
    if init == "random":
        generator = torch.Generator().manual_seed(seed)
        return init_responsibilities(x.shape[0], truncation, generator, x.dtype)
    if init == "kmeans":
        from sklearn.cluster import KMeans

        k = min(truncation, x.shape[0])
        # a small problem: threads only add overhead
        with _thread_pools().limit(limits=1):
            kmeans = KMeans(k, n_init=1, random_state=seed)
            labels = kmeans.fit_predict(x.detach().cpu().numpy())
        return torch.nn.functional.one_hot(
            torch.as_tensor(labels).long(), truncation
        ).to(x)
    raise ValueError(
        f"init must be 'random', 'kmeans' or a tensor of responsibilities, got {init!r}"
    )


@functools.cache
def _thread_pools():
    """threadpoolctl's view of the loaded thread pools (OpenMP, BLAS), found once: the
    search takes about a millisecond, as long as the k-means fit it would limit."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _log_prior_counts(counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """log p(z) of assignments with cluster sizes ``counts`` (..., T) under the truncated
    stick-breaking prior: prod_{t<T} B(1 + n_t, alpha + sum_{j>t} n_j) / B(1, alpha)."""
    after = counts.flip(-1).cumsum(-1).flip(-1) - counts
    a, b = 1 + counts[..., :-1], alpha + after[..., :-1]
    log_beta = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    return (log_beta + math.log(alpha)).sum(-1)  # B(1, alpha) = 1 / alpha


def log_evidence_enumerated(
    x: torch.Tensor, truncation: int, prior: DPMMPrior
) -> torch.Tensor:
    r"""Exact :math:`\log p(x)` of the truncated model, by summing over all T^N assignments.

    For fixed z the sticks integrate to a product of Beta functions and each cluster's
    points are jointly Gaussian (covariance :math:`\sigma^2 I + s_0^2 \mathbf 1\mathbf
    1^\top` per coordinate), so :math:`p(x) = \sum_z p(z)\,p(x \mid z)` is exact. Only
    for tiny data sets: T^N must not exceed one million.

    Arguments:
        x: data ``(N, D)``; truncation: T; prior: a :class:`DPMMPrior`.

    Returns:
        A scalar tensor.
    """
    _check_x(x)
    check_positive_int("truncation", truncation)
    _check_prior(prior, x)
    n, d = x.shape
    if truncation**n > 1_000_000:
        raise ValueError(
            f"truncation ** N = {truncation}**{n} assignments is too many to enumerate "
            "(at most 1e6)"
        )
    z = torch.tensor(list(itertools.product(range(truncation), repeat=n)))
    onehot = torch.nn.functional.one_hot(z, truncation).to(x)  # (C, N, T)
    counts = onehot.sum(1)
    y = x - prior.mean
    sums = onehot.mT @ y  # (C, T, D)
    sumsq = onehot.mT @ y.square().sum(1)  # (C, T)
    s2, v0 = prior.sigma**2, prior.std**2
    quad = (sumsq - v0 * sums.square().sum(-1) / (s2 + counts * v0)) / s2
    logdet = d * (counts * math.log(s2) + torch.log1p(counts * v0 / s2))
    log_lik = -0.5 * (counts * d * math.log(2 * math.pi) + logdet + quad)
    return torch.logsumexp(_log_prior_counts(counts, prior.alpha) + log_lik.sum(-1), 0)


def mixture_log_density(
    x: torch.Tensor,
    weights: torch.Tensor,
    means: torch.Tensor,
    covariances: torch.Tensor,
) -> torch.Tensor:
    r"""Per-point :math:`\log\sum_t w_t\,\mathcal N(x_n \mid \mu_t, \Sigma_t)`.

    Used to score a fitted mixture (CAVI's or scikit-learn's point estimates) on held-out
    data in the same way.

    Arguments:
        x: ``(N, D)``; weights: ``(T,)``, non-negative, summing to 1; means: ``(T, D)``;
        covariances: ``(T, D, D)``, positive definite.

    Returns:
        Tensor of shape ``(N,)``.

    Example:
        >>> x = torch.zeros(1, 1)
        >>> mixture_log_density(x, torch.tensor([1.0]), torch.zeros(1, 1), torch.ones(1, 1, 1))
        tensor([-0.9189])
    """
    _check_x(x)
    check_tensor("weights", weights, dim=1)
    check_tensor("means", means, dim=2)
    check_tensor("covariances", covariances, dim=3)
    t, d = weights.shape[0], x.shape[1]
    if means.shape != (t, d) or covariances.shape != (t, d, d):
        raise ValueError(
            "x (N, D), weights (T,), means (T, D) and covariances (T, D, D) must agree; "
            f"got x {tuple(x.shape)}, weights {tuple(weights.shape)}, means "
            f"{tuple(means.shape)} and covariances {tuple(covariances.shape)}"
        )
    if bool((weights < 0).any()) or abs(float(weights.sum()) - 1) > 1e-6:
        raise ValueError("weights must be non-negative and sum to 1")
    components = D.MultivariateNormal(means.to(x), covariance_matrix=covariances.to(x))
    log_w = torch.log(weights.to(x))
    return torch.logsumexp(log_w + components.log_prob(x[:, None, :]), dim=1)


def n_clusters(weights: torch.Tensor, threshold: float = 0.01) -> int:
    """Number of mixture weights above ``threshold`` (the clusters that matter).

    Example:
        >>> n_clusters(torch.tensor([0.6, 0.395, 0.005]))
        2
    """
    check_tensor("weights", weights, dim=1)
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    return int((weights > threshold).sum())
