"""Figures shared by chapters: the ELBO/KL split of a Gaussian proposal, image grids."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import distributions as D

__all__ = ["elbo_gap_figure", "image_grid", "GRID_GAP"]

#: Grey level of the gaps between images in :func:`image_grid` (0 white, 1 black).
GRID_GAP = 0.25


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


def image_grid(
    ax: Axes, images, side: int = 8, ncol: int = 10, title: str = ""
) -> None:
    """Tile square grey images (rows of ``side * side`` pixels in [0, 1]) on ``ax``.

    Pixels are drawn dark for 1 and white for 0; images are separated by one-pixel
    light-grey gaps (``GRID_GAP``), and the axis frame and ticks are hidden.
    Chapter: vae.

    Arguments:
        ax: the matplotlib axes to draw on.
        images: array or tensor of shape ``(n, side * side)``.
        side: image width and height in pixels.
        ncol: images per row of the grid.
        title: axes title.

    Example:
        >>> fig = Figure()
        >>> image_grid(fig.subplots(), np.zeros((12, 64)), ncol=5)
        >>> fig.axes[0].images[0].get_array().shape
        (26, 44)
    """
    a = torch.as_tensor(images).detach().cpu().double().numpy()
    if a.ndim != 2 or a.shape[1] != side * side:
        raise ValueError(f"images must have shape (n, {side * side}), got {a.shape}")
    if ncol < 1:
        raise ValueError(f"ncol must be at least 1, got {ncol}")
    n, ncol = len(a), min(ncol, len(a))
    nrow = -(-n // ncol)
    canvas = np.full((nrow * (side + 1) - 1, ncol * (side + 1) - 1), GRID_GAP)
    for i, image in enumerate(a.reshape(n, side, side)):
        r, c = divmod(i, ncol)
        canvas[
            r * (side + 1) : r * (side + 1) + side,
            c * (side + 1) : c * (side + 1) + side,
        ] = image
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set(xticks=[], yticks=[], title=title)
    ax.set_frame_on(False)
