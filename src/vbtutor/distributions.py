"""KL divergences between Gaussians in closed form, by Monte Carlo and by quadrature.

The closed forms cover full covariances, diagonal covariances (variances as vectors) and
the VAE's case of a diagonal Gaussian against the standard normal; all are vectorised over
leading batch dimensions. The 1-D helpers (a Gaussian-mixture target, a quadrature KL on a
grid, and a Gaussian fitted in either KL direction) support the asymmetry demo of the
chapter kl_gaussians.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import distributions as D

from ._checks import (
    check_positive,
    check_positive_int,
    check_same_shape,
    check_tensor,
)
from .bounds import Estimate, _mean_and_se

__all__ = [
    "kl_gaussian",
    "kl_diagonal_gaussian",
    "kl_standard_normal",
    "kl_monte_carlo",
    "compare_estimate",
    "gaussian_mixture_1d",
    "kl_quadrature",
    "fit_gaussian_1d",
    "weight_second_moment",
]


def _batch_shape(shapes: dict[str, torch.Size]) -> torch.Size:
    try:
        return torch.broadcast_shapes(*shapes.values())
    except RuntimeError:
        described = ", ".join(f"{name} {tuple(s)}" for name, s in shapes.items())
        raise ValueError(
            f"the batch shapes of {' and '.join(shapes)} do not broadcast: {described}"
        ) from None


def _cholesky(name: str, cov: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a symmetric positive-definite ``cov``, or a ValueError."""
    if cov.shape[-1] != cov.shape[-2]:
        raise ValueError(
            f"{name} must be square in its last two dimensions, got {tuple(cov.shape)}"
        )
    scale = cov.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1.0)
    tol = 100 * torch.finfo(cov.dtype).eps * scale
    if bool(((cov - cov.mT).abs() > tol).any()):
        raise ValueError(f"{name} must be symmetric")
    factor, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()) or not bool(torch.isfinite(factor).all()):
        raise ValueError(
            f"{name} must be positive definite (its Cholesky factor failed)"
        )
    return factor


def kl_gaussian(
    mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor, cov2: torch.Tensor
) -> torch.Tensor:
    r"""Closed-form KL between two Gaussians with full covariances.

    :math:`\mathrm{KL}(\mathcal N(\mu_1, \Sigma_1) \,\|\, \mathcal N(\mu_2, \Sigma_2))` is

    .. math::
        \tfrac12\big[\operatorname{tr}(\Sigma_2^{-1}\Sigma_1)
        + (\mu_2 - \mu_1)^\top \Sigma_2^{-1} (\mu_2 - \mu_1) - d
        + \log|\Sigma_2| - \log|\Sigma_1|\big],

    computed from Cholesky factors :math:`\Sigma_i = L_i L_i^\top`: the trace is
    :math:`\|L_2^{-1} L_1\|_F^2`, the quadratic form :math:`\|L_2^{-1}(\mu_2 - \mu_1)\|^2`
    and :math:`\log|\Sigma_i| = 2 \sum_j \log (L_i)_{jj}`, so no inverse is formed.

    Arguments:
        mean1, mean2: means, shape ``(..., d)``.
        cov1, cov2: symmetric positive-definite covariances, shape ``(..., d, d)``.
            All four batch shapes must broadcast.

    Returns:
        The KL in nats, shape: the broadcast batch shape.

    References:
        Survey (xu2026survey) eq. 32; chapter kl_gaussians.

    Example:
        >>> m, S = torch.zeros(2), torch.eye(2)
        >>> kl_gaussian(m, S, m + 1.0, 2 * S)  # (1 + 1 - 2 + 2 log 2) / 2 = log 2
        tensor(0.6931)
    """
    check_tensor("mean1", mean1, min_dim=1)
    check_tensor("cov1", cov1, min_dim=2)
    check_tensor("mean2", mean2, min_dim=1)
    check_tensor("cov2", cov2, min_dim=2)
    d = mean1.shape[-1]
    for name, value in (("cov1", cov1), ("cov2", cov2)):
        if value.shape[-2:] != (d, d):
            raise ValueError(
                f"{name} must have shape (..., {d}, {d}) to match mean1, "
                f"got {tuple(value.shape)}"
            )
    if mean2.shape[-1] != d:
        raise ValueError(
            f"mean2 must have last dimension {d} to match mean1, "
            f"got {tuple(mean2.shape)}"
        )
    batch = _batch_shape(
        {
            "mean1": mean1.shape[:-1],
            "cov1": cov1.shape[:-2],
            "mean2": mean2.shape[:-1],
            "cov2": cov2.shape[:-2],
        }
    )
    L1, L2 = _cholesky("cov1", cov1), _cholesky("cov2", cov2)
    L1 = L1.expand(batch + (d, d))
    L2 = L2.expand(batch + (d, d))
    M = torch.linalg.solve_triangular(L2, L1, upper=False)
    diff = (mean2 - mean1).expand(batch + (d,)).unsqueeze(-1)
    y = torch.linalg.solve_triangular(L2, diff, upper=False)
    log_det1 = 2 * L1.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    log_det2 = 2 * L2.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    trace = M.pow(2).sum((-2, -1))
    quad = y.pow(2).sum((-2, -1))
    return 0.5 * (trace + quad - d + log_det2 - log_det1)


def kl_diagonal_gaussian(
    mean1: torch.Tensor, var1: torch.Tensor, mean2: torch.Tensor, var2: torch.Tensor
) -> torch.Tensor:
    r"""Closed-form KL between Gaussians with diagonal covariances ``diag(var1)``, ``diag(var2)``.

    .. math::
        \tfrac12 \sum_{k=1}^{d} \Big[\frac{\sigma_{1k}^2}{\sigma_{2k}^2}
        + \frac{(\mu_{1k} - \mu_{2k})^2}{\sigma_{2k}^2} - 1
        + \log \sigma_{2k}^2 - \log \sigma_{1k}^2\Big],

    the sum over coordinates of 1-D KLs (survey eqs. 35-36).

    Arguments:
        mean1, mean2: means, shape ``(..., d)``.
        var1, var2: variances (not standard deviations), positive, shape ``(..., d)``.
            All four shapes must broadcast and share the last dimension ``d``.

    Returns:
        The KL in nats, shape: the broadcast batch shape (the last dimension is summed).

    References:
        Survey (xu2026survey) eqs. 35-36; chapter kl_gaussians.

    Example:
        >>> kl_diagonal_gaussian(torch.zeros(2), torch.ones(2), torch.ones(2), torch.ones(2))
        tensor(1.)
    """
    shapes = {}
    for name, value in (
        ("mean1", mean1),
        ("var1", var1),
        ("mean2", mean2),
        ("var2", var2),
    ):
        check_tensor(name, value, min_dim=1)
        shapes[name] = value.shape
    check_positive("var1", var1)
    check_positive("var2", var2)
    d = mean1.shape[-1]
    for name, shape in shapes.items():
        if shape[-1] != d:
            raise ValueError(
                f"{name} must have last dimension {d} to match mean1, got {tuple(shape)}"
            )
    _batch_shape({name: shape[:-1] for name, shape in shapes.items()})
    terms = (mean1 - mean2).pow(2) / var2 + _ratio_minus_log(var1, var2)
    return 0.5 * terms.sum(-1)


def kl_standard_normal(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    r"""Closed-form KL from a diagonal Gaussian to the standard normal.

    :math:`\mathrm{KL}(\mathcal N(\mu, \operatorname{diag}\sigma^2) \,\|\, \mathcal N(0, I))` is

    .. math::
        \tfrac12 \sum_{k=1}^{d} \big(\sigma_k^2 + \mu_k^2 - 1 - \log \sigma_k^2\big),

    the KL term of the VAE objective.

    Arguments:
        mean: means, shape ``(..., d)``.
        var: variances (not standard deviations), positive, same shape as ``mean``.

    Returns:
        The KL in nats, shape ``mean.shape[:-1]``.

    References:
        Kingma & Welling (2013), arXiv:1312.6114, appendix B; survey (xu2026survey) eq. 33
        (eqs. 37-38 misstate it); chapter kl_gaussians.

    Example:
        >>> kl_standard_normal(torch.zeros(3), torch.ones(3))
        tensor(0.)
        >>> kl_standard_normal(torch.tensor([0.0]), torch.tensor([2.0]))  # (1 - log 2) / 2
        tensor(0.1534)
    """
    check_tensor("mean", mean, min_dim=1)
    check_tensor("var", var, min_dim=1)
    check_positive("var", var)
    if var.shape != mean.shape:
        raise ValueError(
            f"var must have the shape of mean {tuple(mean.shape)}, got {tuple(var.shape)}"
        )
    return 0.5 * (mean.pow(2) + _ratio_minus_log(var, torch.ones_like(var))).sum(-1)


def _ratio_minus_log(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    r""":math:`r - 1 - \log r \ge 0` for :math:`r = ` num / den, accurate relative to its size.

    Near :math:`r = 1` the value is about :math:`d^2/2` with :math:`d = r - 1`, and the
    direct difference cancels to a relative error of about :math:`\epsilon / d^2`.
    There (:math:`|d| < 0.01`) it is the Taylor series
    :math:`\sum_{n \ge 2} (-d)^n / n` in :math:`d = (\text{num} - \text{den}) /
    \text{den}`, whose numerator is exact for close arguments; the terms after
    :math:`n = 9` are below :math:`10^{-16}` of the first. Elsewhere the direct form is
    accurate (it keeps :math:`\log r` exact for tiny :math:`r`, where :math:`\log(1 + d)`
    would not be).
    """
    d = (num - den) / den
    small = d.abs() < 0.01
    ds = torch.where(small, d, torch.zeros_like(d))
    series = sum((-ds) ** n / n for n in range(9, 1, -1))
    ratio = torch.where(small, torch.ones_like(d), num / den)
    return torch.where(small, series, ratio - 1 - ratio.log())


def kl_monte_carlo(p: D.Distribution, q: D.Distribution, n: int) -> Estimate:
    r"""Monte Carlo estimate of KL(p || q) with its standard error, from draws of p.

    :math:`\mathrm{KL}(p \,\|\, q) \approx \frac1n \sum_j [\log p(x_j) - \log q(x_j)]`
    with :math:`x_j \sim p`. It is unbiased, and its standard error is
    :math:`\widehat{\mathrm{sd}}/\sqrt n`.

    It needs only samples from ``p`` and both log-densities, so it also covers pairs
    without a closed form (a mixture against a Gaussian, say).

    Arguments:
        p: the distribution sampled from (``torch.distributions``, with ``log_prob``).
        q: the other distribution, with the same event shape; batch shapes broadcast.
        n: number of draws, at least 2 (for a standard error).

    Returns:
        :class:`vbtutor.bounds.Estimate` with the value and its standard error, of the
        broadcast batch shape. Draws come from torch's global random stream.

    Example:
        >>> p = D.Normal(torch.tensor(0.0), torch.tensor(1.0))
        >>> e = kl_monte_carlo(p, p, n=100)  # every term is exactly zero
        >>> e.value.item(), e.se.item()
        (0.0, 0.0)
    """
    for name, dist in (("p", p), ("q", q)):
        if not isinstance(dist, D.Distribution):
            raise ValueError(
                f"{name} must be a torch.distributions.Distribution, "
                f"got {type(dist).__name__}"
            )
    if q.event_shape != p.event_shape:
        raise ValueError(
            f"q must have the event shape of p {tuple(p.event_shape)}, "
            f"got {tuple(q.event_shape)}"
        )
    check_positive_int("n", n)
    if n < 2:
        raise ValueError(f"n must be at least 2 for a standard error, got {n}")
    _batch_shape({"p": p.batch_shape, "q": q.batch_shape})
    with torch.no_grad():
        x = p.sample((n,))
        return _mean_and_se(p.log_prob(x) - q.log_prob(x))


def compare_estimate(estimate: Estimate, exact, digits: int = 4) -> str:
    r"""One line comparing a scalar Monte Carlo estimate with an exact value.

    Reads ``value ± se (z SE from exact)`` where z is :math:`|\text{value} - \text{exact}|
    / \text{se}`: values of z up to about 2 are what chance alone produces, and the test
    suite accepts up to 4.

    Arguments:
        estimate: an :class:`vbtutor.bounds.Estimate` holding one number.
        exact: the exact value (a number or a one-element tensor).
        digits: decimals shown for the value, the standard error and the exact value.

    Returns:
        The formatted line.

    Example:
        >>> e = Estimate(torch.tensor(1.02), torch.tensor(0.01))
        >>> compare_estimate(e, 1.0, digits=2)
        '1.02 ± 0.01 (2.0 SE from 1.00)'
    """
    if not isinstance(estimate, Estimate) or estimate.value.numel() != 1:
        raise ValueError("estimate must be an Estimate holding a single number")
    check_positive_int("digits", digits)
    value, se = estimate.value.item(), estimate.se.item()
    exact = torch.as_tensor(exact).item()
    if se > 0:
        z = abs(value - exact) / se
    else:  # no spread (e.g. KL(p || p) estimated from p's own draws): exact or not
        z = 0.0 if value == exact else math.inf
    return f"{value:.{digits}f} ± {se:.{digits}f} ({z:.1f} SE from {exact:.{digits}f})"


def gaussian_mixture_1d(
    weights: torch.Tensor, means: torch.Tensor, stds: torch.Tensor
) -> D.MixtureSameFamily:
    r"""A 1-D Gaussian mixture :math:`\sum_i w_i \mathcal N(m_i, s_i^2)` (a MixtureSameFamily).

    Arguments:
        weights: positive component weights, shape ``(c,)``; normalised to sum to one.
        means: component means, shape ``(c,)``.
        stds: positive component standard deviations, shape ``(c,)``.

    Returns:
        A ``MixtureSameFamily`` with scalar events; its ``mean`` and ``variance`` are exact.

    Example:
        >>> p = gaussian_mixture_1d(
        ...     torch.tensor([1.0, 1.0]), torch.tensor([-1.0, 1.0]), torch.ones(2)
        ... )
        >>> p.mean, p.variance  # variance: within-component 1 + between-component 1
        (tensor(0.), tensor(2.))
    """
    for name, value in (("weights", weights), ("means", means), ("stds", stds)):
        check_tensor(name, value, dim=1)
        check_same_shape(name, value, "weights", weights)
    check_positive("weights", weights)
    check_positive("stds", stds)
    return D.MixtureSameFamily(
        D.Categorical(probs=weights / weights.sum()), D.Normal(means, stds)
    )


def _check_1d(name: str, dist) -> None:
    if not isinstance(dist, D.Distribution) or dist.event_shape != torch.Size():
        raise ValueError(
            f"{name} must be a torch.distributions.Distribution over scalars "
            f"(empty event shape), got {type(dist).__name__}"
        )
    if dist.batch_shape != torch.Size():
        raise ValueError(
            f"{name} must have empty batch shape, got {tuple(dist.batch_shape)}"
        )


def _check_grid(x: torch.Tensor) -> None:
    check_tensor("x", x, dim=1)
    if x.numel() < 3 or not bool((x.diff() > 0).all()):
        raise ValueError(
            f"x must be a strictly increasing grid of at least 3 points, "
            f"got {x.numel()} points"
        )


def _default_grid(target: D.Distribution, n: int = 4001) -> torch.Tensor:
    """A uniform grid 12 standard deviations past every component of ``target``."""
    if isinstance(target, D.MixtureSameFamily):
        comp = target.component_distribution
        lo, hi = comp.mean - 12 * comp.stddev, comp.mean + 12 * comp.stddev
    else:
        lo, hi = target.mean - 12 * target.stddev, target.mean + 12 * target.stddev
    return torch.linspace(lo.min().item(), hi.max().item(), n, dtype=target.mean.dtype)


def kl_quadrature(
    p: D.Distribution, q: D.Distribution, x: torch.Tensor | None = None
) -> torch.Tensor:
    r"""KL(p || q) between two 1-D densities by the trapezoidal rule on a grid.

    :math:`\mathrm{KL}(p \,\|\, q) = \int p(x) \log \frac{p(x)}{q(x)}\, dx`.

    For scalar densities whose log-ratio is smooth and whose ``p`` has Gaussian tails (any
    pair of Gaussian mixtures), the trapezoidal rule on a uniform grid converges
    geometrically in the spacing, and cutting the integral at the grid's ends misses only
    the tail terms. So the error is controlled by the two choices you can check: halve the
    spacing, widen the range, and compare. The result is differentiable in the parameters
    of ``p`` and ``q``.

    Arguments:
        p, q: distributions over scalars with empty batch shape.
        x: a strictly increasing 1-D grid covering the mass of ``p``. By default 4001
            points reaching 12 standard deviations past each component of ``p`` (a
            mixture) or past ``p``; the spacing then resolves every component whose
            standard deviation is at least about 1/100 of the grid's range.

    Returns:
        A 0-dimensional tensor, the KL in nats.

    Example:
        >>> x = torch.linspace(-12, 12, 2001, dtype=torch.float64)
        >>> p = D.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
        >>> q = D.Normal(torch.tensor(1.0, dtype=torch.float64), 1.0)
        >>> round(kl_quadrature(p, q, x).item(), 10)  # closed form: (0 - 1)^2 / 2
        0.5
        >>> round(kl_quadrature(p, q).item(), 10)  # the default grid
        0.5
    """
    _check_1d("p", p)
    _check_1d("q", q)
    if x is None:
        x = _default_grid(p)
    _check_grid(x)
    log_p = p.log_prob(x)
    finite = torch.isfinite(log_p)
    safe = torch.where(finite, log_p, torch.zeros_like(log_p))
    mass = torch.trapezoid(torch.where(finite, safe.exp(), 0.0), x).item()
    if abs(mass - 1) > 1e-3:  # a grid that misses p's mass integrates the wrong thing
        raise ValueError(
            f"x must cover the mass of p: the grid holds {mass:.4f} of it, not 1"
        )
    integrand = torch.where(
        finite, safe.exp() * (safe - q.log_prob(x)), torch.zeros_like(log_p)
    )
    return torch.trapezoid(integrand, x)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run a block on one CPU thread, then restore torch's thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


#: Standardised quadrature nodes for expectations under a Gaussian q: x = m + s * u.
_U = torch.linspace(-12.0, 12.0, 1201, dtype=torch.float64)


def fit_gaussian_1d(
    target: D.Distribution, direction: str = "qp", x: torch.Tensor | None = None
) -> D.Normal:
    r"""The Gaussian :math:`q = \mathcal N(m, s^2)` closest to a 1-D ``target`` p in one KL.

    ``direction="qp"`` minimises :math:`\mathrm{KL}(q \,\|\, p)` (the variational
    objective; mode-seeking), ``direction="pq"`` minimises :math:`\mathrm{KL}(p \,\|\, q)`
    (mass-covering; its optimum matches the mean and variance of p). Both KLs are computed
    with :func:`kl_quadrature`: for ``"pq"`` on the fixed grid ``x`` that covers p, for
    ``"qp"`` on a grid that moves with q, :math:`m + s u` for 1201 points u in [-12, 12],
    so that q is always resolved whatever its width. They are minimised over
    ``(m, log s)`` by L-BFGS, started from the moment-matched Gaussian and, for a mixture
    target, from each component; the best local optimum is returned. The work runs on one
    CPU thread: each step touches a few thousand numbers, where synchronising threads costs
    more than it saves, and far more on a machine that is busy with something else.

    Arguments:
        target: a distribution over scalars with empty batch shape, e.g. from
            :func:`gaussian_mixture_1d`.
        direction: ``"qp"`` or ``"pq"``.
        x: the grid for ``"pq"``; by default 4001 points reaching 12 standard deviations
            past each mixture component (or past the target).

    Returns:
        The fitted ``torch.distributions.Normal`` (detached).

    References:
        Minka (2005), "Divergence measures and message passing", MSR-TR-2005-173;
        Bishop (2006), Pattern Recognition and Machine Learning, sec. 10.1.2;
        chapter kl_gaussians.

    Example:
        >>> p = gaussian_mixture_1d(
        ...     torch.tensor([0.5, 0.5], dtype=torch.float64),
        ...     torch.tensor([-2.0, 2.0], dtype=torch.float64),
        ...     torch.ones(2, dtype=torch.float64),
        ... )
        >>> q = fit_gaussian_1d(p, direction="pq")  # moment matching: N(0, 1 + 4)
        >>> round(q.mean.item(), 4) + 0.0, round(q.variance.item(), 4)
        (0.0, 5.0)
    """
    _check_1d("target", target)
    if direction not in ("qp", "pq"):
        raise ValueError(f"direction must be 'qp' or 'pq', got {direction!r}")
    if x is None:
        x = _default_grid(target)
    _check_grid(x)
    starts = [(target.mean, target.stddev)]
    if isinstance(target, D.MixtureSameFamily):
        comp = target.component_distribution
        starts += list(zip(comp.mean.unbind(), comp.stddev.unbind(), strict=True))
    with _one_thread():
        best = _best_fit(target, direction, x, starts)
    return D.Normal(best[0], best[1].exp())


def _best_fit(
    target: D.Distribution,
    direction: str,
    x: torch.Tensor,
    starts: list[tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    """Run L-BFGS from each (mean, sd) start; return the best (mean, log sd)."""
    u = _U.to(x.dtype)
    best, best_value = None, math.inf
    for m0, s0 in starts:
        params = torch.stack([m0, s0.log()]).detach().to(x.dtype).requires_grad_()

        def objective(params=params):
            q = D.Normal(params[0], params[1].exp())
            if direction == "qp":
                return kl_quadrature(q, target, params[0] + params[1].exp() * u)
            return kl_quadrature(target, q, x)

        optimizer = torch.optim.LBFGS(
            [params],
            lr=1.0,
            max_iter=100,
            tolerance_grad=1e-10,
            tolerance_change=1e-14,
            line_search_fn="strong_wolfe",
        )

        def closure(params=params, objective=objective, optimizer=optimizer):
            optimizer.zero_grad()
            value = objective()
            value.backward()
            return value

        optimizer.step(closure)
        with torch.no_grad():
            value = objective().item()
        if value < best_value:
            best, best_value = params.detach().clone(), value
    return best


def weight_second_moment(
    target: D.MultivariateNormal, proposal: D.MultivariateNormal
) -> float:
    r"""The second moment :math:`\mathbb E_q[(p/q)^2]` of the density ratio of two Gaussians.

    With ``target`` the exact posterior p(z|x), :math:`p/q = w / p(x)` is the normalised
    importance weight, so this minus 1 is :math:`\mathrm{Var}_q[w/p(x)]`, the constant of
    the IWAE gap :math:`\approx \mathrm{Var}[w/p(x)]/(2k)`. It is finite exactly when
    :math:`A = 2\Sigma_p^{-1} - \Sigma_q^{-1}` is positive definite, i.e. the proposal is
    not too narrow (for one dimension, its sd above the target's over :math:`\sqrt 2`);
    then, with :math:`b = 2\Sigma_p^{-1}\mu_p - \Sigma_q^{-1}\mu_q` and
    :math:`c = 2\mu_p^\top\Sigma_p^{-1}\mu_p - \mu_q^\top\Sigma_q^{-1}\mu_q`,

    .. math:: \log \mathbb E_q[(p/q)^2] = -\log|\Sigma_p| + \tfrac12\log|\Sigma_q|
              - \tfrac12\log|A| + \tfrac12 b^\top A^{-1} b - \tfrac12 c .

    Chapter: iwae (its explorer).

    Arguments:
        target: p, a ``MultivariateNormal`` with empty batch shape.
        proposal: q, of the same dimension.

    Returns:
        The moment as a float, ``inf`` when it diverges.

    Example:
        >>> p = D.MultivariateNormal(torch.zeros(1), torch.eye(1))
        >>> round(weight_second_moment(p, p), 6)
        1.0
        >>> weight_second_moment(p, D.MultivariateNormal(torch.zeros(1), 0.4 * torch.eye(1)))
        inf
    """
    for name, dist in (("target", target), ("proposal", proposal)):
        if (
            not isinstance(dist, D.MultivariateNormal)
            or dist.batch_shape != torch.Size()
        ):
            raise ValueError(
                f"{name} must be a MultivariateNormal with empty batch shape"
            )
    if target.event_shape != proposal.event_shape:
        raise ValueError(
            f"target and proposal must have one dimension, got "
            f"{tuple(target.event_shape)} and {tuple(proposal.event_shape)}"
        )
    p_prec = torch.linalg.inv(target.covariance_matrix).double()
    q_prec = torch.linalg.inv(proposal.covariance_matrix).double()
    a = 2 * p_prec - q_prec
    if torch.linalg.eigvalsh(a).min() <= 0:
        return math.inf
    mp, mq = target.mean.double(), proposal.mean.double()
    b = 2 * p_prec @ mp - q_prec @ mq
    c = 2 * mp @ p_prec @ mp - mq @ q_prec @ mq
    log_moment = (
        -torch.logdet(target.covariance_matrix.double())
        + 0.5 * torch.logdet(proposal.covariance_matrix.double())
        - 0.5 * torch.logdet(a)
        + 0.5 * b @ torch.linalg.solve(a, b)
        - 0.5 * c
    )
    return math.exp(log_moment.item())
