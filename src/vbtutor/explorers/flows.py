"""Explorers of the chapters flows."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import contourpy
import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .. import flows
from ..plotting import TEXT_WIDTH
from ..widgets import Explorer, choice, number
from ._common import memo

__all__ = ["flows_explorer"]

#: Margins of the two square panels (the figure is 6.8 x 3.6 in).
_LAYOUT = {"left": 0.09, "right": 0.98, "top": 0.9, "bottom": 0.15, "wspace": 0.25}

#: The square grid of the base space, pushed through the flow: lines at these values of
#: one coordinate, each drawn through ``_GRID_POINTS`` values of the other.
_GRID_LINES = np.linspace(-3.0, 3.0, 11)
_GRID_POINTS = 240


def _planar_layers(planar_flows) -> dict[int, int]:
    """Check the chapter's flows; return, per K, how many leading affine layers it has."""
    if not isinstance(planar_flows, Mapping) or len(planar_flows) < 2:
        raise ValueError(
            "planar_flows must be a dict of at least two trained flows keyed by K, "
            f"got {type(planar_flows).__name__}"
        )
    leading = {}
    for K, flow in planar_flows.items():
        if not isinstance(K, int) or isinstance(K, bool) or K < 1:
            raise ValueError(f"planar_flows: keys must be positive ints, got {K!r}")
        if not isinstance(flow, flows.Flow) or flow.dim != 2:
            raise ValueError(
                f"planar_flows[{K}] must be a 2-D vbtutor.flows.Flow, "
                f"got {type(flow).__name__}"
            )
        kinds = [type(t) for t in flow.transforms]
        n_affine = len(kinds) - K
        if n_affine < 0 or kinds != [flows.Affine] * n_affine + [flows.Planar] * K:
            raise ValueError(
                f"planar_flows[{K}] must be affine layers then {K} planar layers, "
                f"got {[kind.__name__ for kind in kinds]}"
            )
        leading[K] = n_affine
    return leading


def flows_explorer(
    planar_flows: Mapping[int, flows.Flow],
    log_target: Callable[[torch.Tensor], torch.Tensor],
    log_z: float,
    samples: int = 20_000,
    lim: float = 4.0,
) -> Explorer:
    r"""Watch a trained planar flow deform the plane, one layer at a time.

    ``planar_flows[K]`` is a flow :math:`f_K \circ \dots \circ f_1 \circ A` on a
    standard-normal base: affine layers :math:`A` (an elementwise scale and shift, kept
    in every view) followed by K planar layers. For the chosen K and a share of its
    layers, :math:`j` of K, the left panel draws the lines of a square grid of the base
    space, :math:`[-3, 3]^2`, pushed through :math:`A` and the first :math:`j` planar
    layers (one family of lines in blue, the other in orange), over the target
    :math:`e^{\log \tilde p(z)} / Z` in grey. The right panel is the histogram of
    ``samples`` base draws pushed through the same layers, :math:`q_j`, with the
    target's contours, and its title the Monte Carlo
    :math:`\mathrm{KL}(q_j \,\|\, p) = \log Z - \mathbb E_{q_j}[\log \tilde p(z) -
    \log q_j(z)]` with its standard error. With all layers applied (:math:`j = K`) the
    samples are those of ``planar_flows[K].sample_and_log_prob`` for a generator seeded
    with the draw number. Nothing is trained: pushing points through a trained flow is
    cheap.

    Arguments:
        planar_flows: trained :class:`vbtutor.flows.Flow` s of dimension 2 keyed by
            their number of planar layers K (at least two), each made of
            :class:`~vbtutor.flows.Affine` layers followed by K
            :class:`~vbtutor.flows.Planar` layers.
        log_target: the unnormalised target :math:`\log \tilde p(z)` of points of shape
            ``(n, 2)``.
        log_z: its log-normaliser :math:`\log Z`.
        samples: base draws pushed through the flow.
        lim: the panels show :math:`[-\mathrm{lim}, \mathrm{lim}]^2`.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``K`` (the keys of ``planar_flows``;
        the smallest, a middle and the largest as HTML frames) and ``depth``, the share
        of the planar layers applied (0 to 1, :math:`j = \lfloor \mathrm{depth}\, K +
        1/2 \rfloor`), with a "new draw" button for the base samples.

    Chapter: flows
    """
    leading = _planar_layers(planar_flows)
    if not callable(log_target):
        raise ValueError(
            f"log_target must be a function of z, got {type(log_target).__name__}"
        )
    if not isinstance(log_z, (int, float)) or not math.isfinite(log_z):
        raise ValueError(f"log_z must be a finite number, got {log_z!r}")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 100:
        raise ValueError(f"samples must be an int of at least 100, got {samples!r}")
    if not isinstance(lim, (int, float)) or not 0 < lim < math.inf:
        raise ValueError(f"lim must be a positive number, got {lim!r}")
    log_z, lim = float(log_z), float(lim)

    axis = torch.linspace(-lim, lim, 200)
    mesh = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        target = (log_target(mesh) - log_z).exp().reshape(200, 200).cpu().numpy()
    axis = axis.numpy()
    contours = contourpy.contour_generator(axis, axis, target, line_type="Separate")
    target_lines = [
        line
        for level in np.linspace(0, target.max(), 5)[1:]
        for line in contours.lines(level)
    ]
    extent = (-lim, lim, -lim, lim)
    ticks = MaxNLocator(5).tick_values(-lim, lim)
    along = np.linspace(_GRID_LINES[0], _GRID_LINES[-1], _GRID_POINTS)
    fixed = np.repeat(_GRID_LINES, _GRID_POINTS)
    moving = np.tile(along, len(_GRID_LINES))
    base_grid = torch.tensor(  # lines z_1 = c, then lines z_2 = c
        np.concatenate([np.stack([fixed, moving], 1), np.stack([moving, fixed], 1)]),
        dtype=torch.float32,
    )

    @memo
    def partial(K: int, j: int) -> flows.Flow:
        """The affine layers and the first j planar layers of planar_flows[K]."""
        return flows.Flow(list(planar_flows[K].transforms[: leading[K] + j]), dim=2)

    @memo
    def grid_lines(K: int, j: int) -> np.ndarray:
        """The base grid's lines through the first j layers: (2, lines, points, 2)."""
        flow = partial(K, j)
        reference = next(planar_flows[K].parameters())
        with torch.no_grad():
            z = flow(base_grid.to(reference.device, reference.dtype))[0]
        return z.cpu().double().numpy().reshape(2, len(_GRID_LINES), _GRID_POINTS, 2)

    def pushed(K: int, j: int, seed: int):
        """Base draws through the first j layers, and the KL of q_j with its SE."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            z, log_q = partial(K, j).sample_and_log_prob(samples, generator)
            w = (log_target(z) - log_q).double().cpu()
        kl, se = log_z - w.mean().item(), w.std().item() / math.sqrt(samples)
        return z.cpu().double().numpy(), kl, se

    def render(K: int, depth: float, seed: int) -> Figure:
        j = math.floor(depth * K + 0.5)
        z, kl, se = pushed(K, j, seed)
        counts = np.histogram2d(*z.T, bins=64, range=[[-lim, lim]] * 2)[0]
        fig = Figure(figsize=(TEXT_WIDTH, 3.6))
        left, right = fig.subplots(1, 2, gridspec_kw=_LAYOUT)
        left.imshow(target, cmap="Greys", origin="lower", extent=extent)
        lines = grid_lines(K, j)
        colours = ["C0"] * len(lines[0]) + ["C1"] * len(lines[1])
        left.add_collection(
            LineCollection(
                list(lines.reshape(-1, _GRID_POINTS, 2)), colors=colours, lw=0.7
            )
        )
        right.imshow(counts.T, origin="lower", extent=extent)
        right.add_collection(LineCollection(target_lines, colors="w", lw=0.5))
        layers = "planar layer" if K == 1 else "planar layers"
        left.set_title(f"base grid through {j} of {K} {layers}")
        right.set_title(
            f"$\\mathrm{{KL}}(q_{{{j}}} \\,\\|\\, p)$ = {kl:.3f} ± {se:.3f} nats"
        )
        for ax in (left, right):
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="$z_1$", ylabel="$z_2$")
            ax.set(xticks=ticks, yticks=ticks)  # fewer ticks draw faster
        return fig

    Ks = sorted(planar_flows)
    K_frames = sorted({Ks[0], Ks[len(Ks) // 2], Ks[-1]})
    params = [
        choice("K", Ks, frames=K_frames, default=Ks[-1], label="planar layers K"),
        number(
            "depth",
            0.0,
            1.0,
            [0.0, 0.5, 1.0],
            default=1.0,
            label="layers applied",
            fmt="{:.0%}",
        ),
    ]
    return Explorer(render, params, title="a planar flow layer by layer", new_draw=True)
