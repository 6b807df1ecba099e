"""Figures shared by chapters: a Gaussian proposal against a posterior, and the ELBO/KL split."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from torch import distributions as D

__all__ = ["elbo_gap_figure"]


def elbo_gap_figure(
    q: D.MultivariateNormal,
    posterior: D.MultivariateNormal,
    log_px: float,
    title: str = "",
) -> Figure:
    r"""Draw a 2-D proposal q against the posterior, and log p(x) split into ELBO + KL(q || p).

    Both distributions must be 2-D Gaussians with empty batch shape; the KL is computed in
    closed form with ``torch.distributions.kl_divergence``. Chapter: elbo.

    Arguments:
        q: the proposal.
        posterior: the exact posterior p(z|x).
        log_px: the exact log p(x).
        title: prefix of the left panel's title.

    Returns:
        A matplotlib ``Figure`` with two panels.

    Example:
        >>> p = D.MultivariateNormal(torch.zeros(2), torch.eye(2))
        >>> fig = elbo_gap_figure(p, p, log_px=-1.0)
        >>> len(fig.axes)
        2
    """
    for name, dist in (("q", q), ("posterior", posterior)):
        if not isinstance(dist, D.MultivariateNormal) or dist.event_shape != (2,):
            raise ValueError(
                f"{name} must be a 2-D MultivariateNormal with empty batch shape"
            )
        if dist.batch_shape != torch.Size():
            raise ValueError(
                f"{name} must have empty batch shape, got {tuple(dist.batch_shape)}"
            )
    kl = D.kl_divergence(q, posterior).item()
    fig = Figure(figsize=(8, 3.3))
    left, right = fig.subplots(1, 2, width_ratios=[1.2, 1])
    scale = 3 * posterior.covariance_matrix.diagonal().sqrt().max()
    axis = torch.linspace(-1, 1, 120, dtype=posterior.mean.dtype) * scale
    grid = posterior.mean + torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1)
    with torch.no_grad():
        gx, gy = grid[..., 0], grid[..., 1]
        left.contourf(gx, gy, q.log_prob(grid).exp(), cmap="Blues", levels=12)
        left.contour(gx, gy, posterior.log_prob(grid).exp(), colors="k", levels=5)
    left.set(
        title=f"{title}q (filled), posterior (lines)", xlabel="$z_1$", ylabel="$z_2$"
    )
    right.bar([0], [log_px - kl], color="C0", label="ELBO")
    right.bar([0], [kl], bottom=[log_px - kl], color="C3", label="KL(q || p(z|x))")
    right.axhline(log_px, color="k", ls="--", label="log p(x)")
    right.set(xticks=[], ylim=(log_px - 6, log_px + 0.5), title=f"KL = {kl:.2f} nats")
    right.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
