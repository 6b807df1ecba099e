"""Explorers of the foundations chapters: mle_latent, elbo and iwae."""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import distributions as D

from .. import bounds
from ..distributions import weight_second_moment
from ..models import LinearGaussian
from ..plotting import TEXT_WIDTH, elbo_gap_figure
from ..widgets import Explorer, integer, log_scale, number
from ._common import FIXED_LAYOUT, memo

__all__ = ["mle_latent_explorer", "elbo_explorer", "iwae_explorer"]

#: Latent dimensions on the bias curve of the mle_latent explorer.
CURVE_DIMS = (1, 2, 4, 8, 12, 16)


def _naive_errors(d: int, k: int, n: int, seed: int, x_dim: int, loading: float):
    """n naive estimates of log p(x) minus the exact value, and their ESSs.

    The model of latent dimension d is the chapter's: loadings ``loading * N(0, 1)`` and
    10 observations drawn with generator seed d; the prior draws use ``seed``.
    """
    g = torch.Generator().manual_seed(d)
    model = LinearGaussian(
        loading * torch.randn(x_dim, d, generator=g), torch.zeros(x_dim), 1.0
    )
    observations = model.sample(10, g)
    x = observations.repeat(-(-n // 10), 1)[:n]
    draws = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(k, n, d, generator=draws, dtype=x.dtype)
        log_w = model.likelihood(z).log_prob(x)
        error = bounds.log_mean_exp(log_w, 0) - model.log_marginal(x)
    return error.numpy(), bounds.effective_sample_size(log_w, 0).numpy()


def mle_latent_explorer(x_dim: int = 16, loading: float = 0.5, budget: int = 200_000):
    """The naive estimator's error against the latent dimension d and k (chapter mle_latent).

    For the chapter's linear-Gaussian models (``x_dim`` observed dimensions, loadings
    of scale ``loading``, unit noise), the left panel is the histogram of the naive
    estimate minus the exact log p(x) for latent dimension d with k prior draws, over
    about ``budget / k`` estimates (at least 40) spread over 10 observations; its title
    gives the median effective sample size. The right panel is the mean error (bias) and
    its spread over d for the same k (a quarter of the budget per d, from fixed draws),
    with the current d marked.

    Arguments:
        x_dim: observed dimension D.
        loading: scale of the loadings.
        budget: prior draws per figure, which sets the number of estimates.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``d`` (1 to 16) and ``k`` (10 to
        10,000, log scale), with a "new draw" button.
    """
    if not isinstance(x_dim, int) or x_dim < 1:
        raise ValueError(f"x_dim must be a positive int, got {x_dim!r}")
    if not loading > 0:
        raise ValueError(f"loading must be positive, got {loading!r}")

    def estimates(k: int, draws: int) -> int:
        return min(1000, max(40, draws // k))

    @memo
    def errors(d: int, k: int, seed: int):
        return _naive_errors(d, k, estimates(k, budget), seed, x_dim, loading)

    @memo
    def bias_curve(k: int):
        n = estimates(k, budget // 4)
        runs = [_naive_errors(d, k, n, d, x_dim, loading)[0] for d in CURVE_DIMS]
        return np.array([r.mean() for r in runs]), np.array([r.std() for r in runs])

    def render(d: int, k: int, seed: int) -> Figure:
        error, ess = errors(d, k, seed + d)
        mean, spread = bias_curve(k)
        fig = Figure(figsize=(TEXT_WIDTH, 3.3))
        left, right = fig.subplots(1, 2, gridspec_kw=FIXED_LAYOUT | {"bottom": 0.15})
        left.hist(error, bins=np.linspace(-10, 3, 66), color="C0", alpha=0.7)
        left.axvline(0, color="k", ls="--", label="exact log p(x)")
        left.axvline(error.mean(), color="C3", label="mean")
        left.set(xlabel="naive estimate - exact (nats)", ylabel="count")
        left.set_title(f"d = {d}, k = {k}: median ESS {np.median(ess):.1f}")
        left.legend(loc="upper left")
        right.errorbar(CURVE_DIMS, mean, spread, fmt="o-", ms=3, label="mean ± sd")
        right.axhline(0, color="k", ls="--", lw=1)
        right.axvline(d, color="C3", lw=1)
        right.set(xlabel="latent dimension d", ylabel="error (nats)")
        right.set_title(f"bias and spread, k = {k}")
        return fig

    params = [
        integer("d", 1, 16, [1, 4, 8, 12], default=8, label="latent dimension d"),
        log_scale("k", 10, 10_000, [100, 1000, 10_000], default=1000, integer=True),
    ]
    return Explorer(render, params, title="naive estimator by d and k", new_draw=True)


def elbo_explorer(posterior: D.MultivariateNormal, log_px: float):
    r"""log p(x) split into ELBO + KL for a Gaussian q of any centre and width (chapter elbo).

    The proposal is :math:`q = \mathcal N(\mu + \text{shift}\cdot s,\
    \mathrm{diag}(\text{scale}^2 s^2))` with :math:`\mu` and :math:`s` the posterior's
    mean and marginal sds, drawn by :func:`vbtutor.plotting.elbo_gap_figure`: q against
    the posterior, and the bar log p(x) = ELBO + KL(q ‖ posterior) in closed form.

    Arguments:
        posterior: the exact posterior, a 2-D ``MultivariateNormal``.
        log_px: the exact log p(x).

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``scale`` (0.3 to 3, log scale) and
        ``shift`` (-2 to 2 posterior sds, along the first coordinate).
    """
    if not isinstance(posterior, D.MultivariateNormal) or posterior.event_shape != (2,):
        raise ValueError("posterior must be a 2-D MultivariateNormal")
    mean = posterior.mean.detach()
    sd = posterior.covariance_matrix.diagonal().sqrt().detach()

    def render(scale: float, shift: float) -> Figure:
        centre = mean + torch.stack([shift * sd[0], torch.zeros_like(sd[0])])
        q = D.MultivariateNormal(centre, torch.diag((scale * sd) ** 2))
        return elbo_gap_figure(
            q, posterior, log_px, f"s = {scale:.2f}, shift {shift:.1f}: "
        )

    params = [
        log_scale("scale", 0.3, 3.0, [0.3, 1.0, 3.0], default=1.0, label="scale s"),
        number("shift", -2.0, 2.0, [0.0, 1.0, 2.0], label="shift", fmt="{:.1f}"),
    ]
    return Explorer(
        render, params, title="ELBO and KL by the proposal's scale and centre"
    )


#: Values of k on the gap curve of the IWAE explorer.
GAP_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def iwae_explorer(model, x: torch.Tensor, replicates: int = 200, shift: float = 1.0):
    r"""IWAE_k against k and the proposal's width, with a fresh draw on request (chapter iwae).

    The proposal is :math:`q = \mathcal N(\mu + \text{shift}\cdot s,\ (\text{width}\cdot
    s)^2)` with :math:`\mu` and :math:`s` the exact posterior's mean and marginal sds.
    The left panel is the histogram of ``replicates`` draws of
    :math:`\widehat{\mathrm{IWAE}}_k` against the exact log p(x) and the exact ELBO of q.
    The right panel is the gap :math:`\log p(x) - \mathrm{IWAE}_k` over k, estimated as
    in :func:`vbtutor.bounds.iwae_gap` (100 replicates, 25 from k = 500 on, where its SE
    is small), with ±2 SE, the current k marked and, where it is finite, the asymptote
    :math:`\mathrm{Var}[w/p(x)]/(2k)` (:func:`vbtutor.distributions.weight_second_moment`).
    For a proposal much narrower than the posterior the variance is infinite and the
    1/k rate breaks down.

    Arguments:
        model: a :class:`vbtutor.models.LinearGaussian` (exact posterior and log p(x)).
        x: one observation, shape ``(D,)``.
        replicates: draws of the estimator in the histogram.
        shift: the proposal's offset from the posterior mean, in posterior sds.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``k`` (1 to 5000, log scale) and
        ``width`` (0.5 to 3 posterior sds), with a "new draw" button.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        raise ValueError(
            f"x must be one observation of shape (D,), got {type(x).__name__}"
        )
    with torch.no_grad():
        post = model.posterior(x)
        mean, sd = post.mean, post.covariance_matrix.diagonal().sqrt()
        log_px = model.log_marginal(x).item()

    def proposal(width: float) -> D.Independent:
        return D.Independent(D.Normal(mean + shift * sd, width * sd), 1)

    def iwae_draws(k: int, width: float, n: int, seed: int) -> torch.Tensor:
        """Log-weights of shape (k, n), drawn in blocks of 100 replicates."""
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            with torch.no_grad():
                q, blocks = proposal(width), []
                for start in range(0, n, 100):
                    rows = x.expand(min(100, n - start), -1)
                    blocks.append(bounds.log_weights(model, q, rows, k))
        finally:
            torch.random.set_rng_state(generator_state)
        return torch.cat(blocks, 1)

    @memo
    def gap_curve(width: float, seed: int):
        gaps = [
            bounds.iwae_gap(
                iwae_draws(k, width, 100 if k < 500 else 25, seed + k), log_px
            )
            for k in GAP_KS
        ]
        return np.array([g.value.item() for g in gaps]), np.array(
            [g.se.item() for g in gaps]
        )

    def render(k: int, width: float, seed: int) -> Figure:
        q = proposal(width)
        full_q = D.MultivariateNormal(q.mean, torch.diag(q.variance))
        with torch.no_grad():
            elbo = log_px - D.kl_divergence(full_q, post).item()
        variance = weight_second_moment(post, full_q) - 1
        draws = bounds.log_mean_exp(iwae_draws(k, width, replicates, seed), 0).numpy()
        fig = Figure(figsize=(TEXT_WIDTH, 3.7))
        left, right = fig.subplots(1, 2, gridspec_kw=FIXED_LAYOUT)
        low = min(np.quantile(draws, 0.01), elbo) - 0.3
        high = max(draws.max(), log_px) + 0.1
        left.hist(draws, bins=np.linspace(low, high, 50), color="C0", alpha=0.7)
        left.axvline(log_px, color="k", ls="--", label=r"exact $\log p(x)$")
        left.axvline(draws.mean(), color="C3", label="mean of the draws")
        left.axvline(elbo, color="C2", ls=":", label="ELBO of q")
        left.set(xlabel=r"$\widehat{\mathrm{IWAE}}_k$ (nats)", ylabel="count")
        left.set_title(f"k = {k}, width {width:.2f}: {replicates} draws")
        gap, se = gap_curve(width, seed)
        ks = np.array(GAP_KS)
        shown = gap > 0  # a log axis cannot show a gap estimated below 0
        right.errorbar(ks[shown], gap[shown], 2 * se[shown], fmt="o", ms=3, label="gap")
        if math.isfinite(variance):
            right.plot(
                ks, variance / (2 * ks), "--", color="0.4", label="Var[w/p]/(2k)"
            )
            right.set_title(f"Var[w/p] = {variance:.2f}: gap ~ 1/k")
        else:
            right.set_title("Var[w/p] is infinite: no 1/k rate")
        right.axvline(k, color="C3", lw=1, label="current k")
        right.set(xscale="log", yscale="log", xlabel="k", ylabel="gap (nats), ±2 SE")
        handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
        fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0))
        return fig

    params = [
        log_scale("k", 1, 5000, [1, 10, 100, 1000, 5000], default=10, integer=True),
        log_scale(
            "width",
            0.5,
            3.0,
            [0.5, 1.5, 3.0],
            default=1.5,
            label="width",
            fmt="{:.2f}",
        ),
    ]
    return Explorer(
        render, params, title="IWAE_k by k and proposal width", new_draw=True
    )
