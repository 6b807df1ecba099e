"""The book's figure style, and figures shared by chapters (ELBO/KL split, image grids)."""

from __future__ import annotations

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import distributions as D

__all__ = [
    "BOOK_STYLE",
    "MIN_FONT_PT",
    "TEXT_WIDTH",
    "use_book_style",
    "elbo_gap_figure",
    "image_grid",
    "GRID_GAP",
]

#: Width of the book's text column in inches at ``figure.dpi`` 100: 680 CSS pixels, the
#: column of a page at a 1280 px window. A figure this wide is shown at its natural size.
TEXT_WIDTH = 6.8

#: No text in a figure is set smaller than this (points). With figures shown at their
#: natural size (100 dpi), 9 pt is 12.5 CSS pixels.
MIN_FONT_PT = 9.0

#: Matplotlib settings of every chapter: 1 inch is 100 CSS pixels on the page, and
#: text sizes stay at or above :data:`MIN_FONT_PT`.
BOOK_STYLE = {
    "figure.dpi": 100,
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
}

#: Grey level of the gaps between images in :func:`image_grid` (0 white, 1 black).
GRID_GAP = 0.25


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE`; in a notebook, also store figures at twice their size.

    In a Jupyter kernel the inline backend then saves PNGs at double resolution with
    their natural size in the output's metadata ("retina"), so figures stay sharp on
    high-density screens and the book shows them at that natural size.

    Example:
        >>> use_book_style()
        >>> matplotlib.rcParams["figure.dpi"]
        100.0
    """
    matplotlib.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return
    if get_ipython() is not None and "inline" in matplotlib.get_backend():
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")


def elbo_gap_figure(
    q: D.MultivariateNormal,
    posterior: D.MultivariateNormal,
    log_px: float,
    title: str = "",
    depth: float = 7.0,
) -> Figure:
    r"""Draw a 2-D proposal q against the posterior, and log p(x) split into ELBO + KL(q || p).

    Both distributions must be 2-D Gaussians with empty batch shape; the KL is computed in
    closed form with ``torch.distributions.kl_divergence``. The right panel is one bar on
    a nats axis that ends at log p(x): the ELBO from the axis floor (``depth`` nats below
    log p(x)) up to its value, and the KL stacked on top of it, so the two parts add up
    to log p(x) in every frame. An ELBO below the floor is marked as such. Chapter: elbo.

    Arguments:
        q: the proposal.
        posterior: the exact posterior p(z|x).
        log_px: the exact log p(x).
        title: prefix of the left panel's title.
        depth: nats shown below log p(x), positive.

    Returns:
        A matplotlib ``Figure`` with two panels, :data:`TEXT_WIDTH` wide.

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
    if not depth > 0:
        raise ValueError(f"depth must be positive, got {depth!r}")
    kl = D.kl_divergence(q, posterior).item()
    fig = Figure(figsize=(TEXT_WIDTH, 3.2))
    margins = {"left": 0.1, "right": 0.98, "top": 0.9, "bottom": 0.16, "wspace": 0.35}
    left, right = fig.subplots(1, 2, width_ratios=[1.5, 1], gridspec_kw=margins)
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
    floor, elbo = log_px - depth, log_px - kl
    split = max(elbo, floor)
    right.bar(0, split - floor, bottom=floor, width=0.6, color="C0", label="ELBO")
    right.bar(
        0,
        log_px - split,
        bottom=split,
        width=0.6,
        color="C3",
        label="KL(q ‖ posterior)",
    )
    right.axhline(log_px, color="k", ls="--", lw=1, label="log p(x)")
    if elbo < floor:
        right.annotate(
            f"ELBO {elbo:.1f}\nbelow the axis", (0, floor), (0.45, floor + 0.3)
        )
    right.set(xticks=[], xlim=(-0.5, 2.0), ylim=(floor, log_px + 1.0))
    right.set(ylabel="nats", title=f"KL = {kl:.3f} nats")
    right.legend(loc="center right")
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
