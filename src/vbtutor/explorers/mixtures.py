"""Explorers of the chapters gmvae, dpmm and sbvae."""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator
from torch import distributions as D

from .. import dpmm
from .. import stick_breaking as sb
from ..models import GMVAE
from ..plotting import TEXT_WIDTH, image_grid
from ..widgets import Explorer, integer, log_scale, number
from ._common import FIXED_LAYOUT, memo

__all__ = [
    "gmvae_component_explorer",
    "dpmm_explorer",
    "sbvae_gem_explorer",
    "sbvae_kl_explorer",
]

#: Numbers of series terms on the truncation-error curve of :func:`sbvae_kl_explorer`.
KL_TERMS_GRID = tuple(int(m) for m in np.unique(np.logspace(0, 4, 33).astype(int)))

#: Below this (nats) a truncation error is under the accuracy of the quadrature.
QUAD_ACCURACY = 1e-10


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(value: float, _position=None) -> str:
    """``10⁻³`` for 0.001: a log-axis tick label in plain text (mathtext is slower)."""
    exponent = round(math.log10(value))
    return "1" if exponent == 0 else "10" + str(exponent).translate(_SUPERSCRIPTS)


def _decades(axis, most: int = 7) -> None:
    """Label at most ``most`` decades of a log axis in plain text, without minor ticks.

    Mathtext labels and minor ticks take most of the time of a small figure's redraw.
    """
    axis.set_major_locator(LogLocator(base=10, numticks=most))
    axis.set_major_formatter(FuncFormatter(_power_of_ten))
    axis.set_minor_locator(NullLocator())


def gmvae_component_explorer(gmvae: GMVAE, x_test: torch.Tensor, y_test, n: int = 16):
    r"""What one component of a trained GMVAE generates and claims (chapter gmvae).

    The left panel decodes ``n`` draws from component k of the prior:
    :math:`w \sim \mathcal N(0, I)`, :math:`x = \mu_k(w) + s\,\sigma_k(w)\,\varepsilon`
    with :math:`\varepsilon \sim \mathcal N(0, I)`, shown as the decoder's pixel
    probabilities. At spread :math:`s = 1` these are samples of the model; at
    :math:`s = 0` each image is the decoded component mean for its :math:`w`, so any
    difference between them comes from :math:`w`. The draws use their own generator,
    seeded by the draw number, with the same noise for every component and spread. The
    right panel shows test digits that :meth:`GMVAE.cluster` assigns to component k
    (the first ``n`` for draw 0, a random ``n`` of them for later draws), their number,
    and their most frequent true labels.

    Arguments:
        gmvae: a trained :class:`vbtutor.models.GMVAE`.
        x_test: test images, shape ``(N, y_dim)``, on the model's device.
        y_test: their true labels, ``N`` non-negative ints (array or tensor).
        n: images per panel, 1 to 40.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``component`` (0 to K - 1; the
        frames are all components, or ten spread out if K > 10) and ``spread`` (0 to 2;
        frames 0 and 1), with a "new draw" button.
    """
    if not isinstance(gmvae, GMVAE):
        raise ValueError(f"gmvae must be a GMVAE, got {type(gmvae).__name__}")
    if (
        not isinstance(x_test, torch.Tensor)
        or x_test.dim() != 2
        or x_test.shape[1] != gmvae.y_dim
        or len(x_test) < 1
    ):
        raise ValueError(
            f"x_test must be a tensor of shape (N, {gmvae.y_dim}) with N >= 1, got "
            f"{tuple(x_test.shape) if isinstance(x_test, torch.Tensor) else x_test!r}"
        )
    labels = np.asarray(
        y_test.detach().cpu() if isinstance(y_test, torch.Tensor) else y_test
    )
    if (
        labels.shape != (len(x_test),)
        or not np.issubdtype(labels.dtype, np.integer)
        or (labels < 0).any()
    ):
        raise ValueError(
            f"y_test must hold {len(x_test)} non-negative int labels, one per row of "
            f"x_test, got shape {labels.shape} and dtype {labels.dtype}"
        )
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 40:
        raise ValueError(f"n must be an int from 1 to 40, got {n!r}")
    images = x_test.detach().cpu()
    assigned = gmvae.cluster(x_test).cpu().numpy()
    weight = next(gmvae.parameters())

    def draws(component: int, spread: float, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        w = torch.randn(n, gmvae.w_dim, generator=generator, dtype=weight.dtype)
        eps = torch.randn(n, gmvae.x_dim, generator=generator, dtype=weight.dtype)
        with torch.no_grad():
            comps = gmvae.components(w.to(weight.device))
            mean = comps.mean[:, component]
            sd = comps.stddev[:, component]
            x = mean + spread * sd * eps.to(weight.device)
            return gmvae.likelihood(x).mean.cpu()

    def render(component: int, spread: float, seed: int) -> Figure:
        fig = Figure(figsize=(TEXT_WIDTH, 2.5))
        left, right = fig.subplots(1, 2)
        fig.subplots_adjust(left=0.01, right=0.99, top=0.86, bottom=0.16, wspace=0.06)
        image_grid(left, draws(component, spread, seed), ncol=8)
        left.set_title(f"component {component}: {n} draws, spread {spread:.2f}")
        left.set_xlabel(
            r"decoded $x = \mu_k(w) + \mathrm{spread}\cdot\sigma_k(w)\,\varepsilon$"
        )
        members = np.flatnonzero(assigned == component)
        if len(members) == 0:
            right.set_axis_off()
            right.text(0.5, 0.5, "no test digit", ha="center", va="center")
            right.set_title(f"no test digits assigned to {component}")
            return fig
        if seed:
            members = np.random.default_rng(seed).permutation(members)
        image_grid(right, images[members[:n]], ncol=8)
        right.set_title(f"{len(members)} test digits assigned to {component}")
        counts = np.bincount(labels[members])
        top = np.argsort(-counts, kind="stable")[:3]
        common = ", ".join(f"{d} ({counts[d]})" for d in top if counts[d])
        right.set_xlabel(f"most frequent labels: {common}")
        return fig

    k = gmvae.k
    shown = sorted({round(v) for v in np.linspace(0, k - 1, min(k, 10))})
    params = [
        integer("component", 0, k - 1, shown, default=0),
        number("spread", 0.0, 2.0, [0.0, 1.0], default=1.0),
    ]
    return Explorer(
        render, params, title="GMVAE component: draws and members", new_draw=True
    )


def dpmm_explorer(x: torch.Tensor, prior: dpmm.DPMMPrior, centres=None):
    r"""CAVI's fit of the truncated DP mixture for any concentration and truncation
    (chapter dpmm).

    Every new pair :math:`(\alpha, T)` is fitted live by :func:`vbtutor.dpmm.fit_dpmm`
    (k-means start, the default tolerance) and remembered. The left panel shows the data
    coloured by their most probable component, the :math:`2\sigma` circle and expected
    weight of every component with :math:`\mathbb E_q[\pi_t] > 1\%`, and the true
    centres if given. The right panel shows all :math:`T` expected weights on a log
    axis: blue for components that own at least one point, grey for the others, the
    last one (which takes the remainder of the stick) hatched, and a dotted line at 1%.

    Arguments:
        x: two-dimensional data, shape ``(N, 2)``, floating point.
        prior: a :class:`vbtutor.dpmm.DPMMPrior`; its ``alpha`` is replaced by the
            control's value.
        centres: optional true cluster centres, shape ``(C, 2)``, marked with crosses.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``alpha`` (0.1 to 100, log scale;
        frames 0.1, 1, 10, 100) and ``T`` (2 to 40; frames 5, 20, 40), whose sliders
        update the figure when they are released.
    """
    if (
        not isinstance(x, torch.Tensor)
        or x.dim() != 2
        or x.shape[1] != 2
        or len(x) < 2
        or not x.is_floating_point()
    ):
        raise ValueError(
            "x must be a float tensor of shape (N, 2) with N >= 2, got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    if not isinstance(prior, dpmm.DPMMPrior):
        raise ValueError(f"prior must be a DPMMPrior, got {type(prior).__name__}")
    if not isinstance(prior.mean, torch.Tensor) or prior.mean.shape != (2,):
        raise ValueError("prior must have a mean of shape (2,), like the data")
    if centres is not None:
        centres = np.asarray(centres, dtype=float)
        if centres.ndim != 2 or centres.shape[1] != 2:
            raise ValueError(f"centres must have shape (C, 2), got {centres.shape}")
    points = x.detach().cpu().numpy()
    low, high = points.min(0), points.max(0)
    pad = 0.08 * (high - low).max() + 2 * prior.sigma
    limits = [(lo - pad, hi + pad) for lo, hi in zip(low, high, strict=True)]

    layout = {**FIXED_LAYOUT, "bottom": 0.3}

    @memo
    def fit(alpha: float, truncation: int) -> dpmm.DPMMFit:
        return dpmm.fit_dpmm(x, truncation, prior._replace(alpha=alpha))

    def render(alpha: float, T: int) -> Figure:
        result = fit(alpha, T)
        weights = result.weights.detach().cpu().numpy()
        means = result.q.means.detach().cpu().numpy()
        hard = result.q.resp.argmax(1).cpu().numpy()
        big = np.flatnonzero(weights > 0.01)
        fig = Figure(figsize=(TEXT_WIDTH, 3.6))
        left, right = fig.subplots(1, 2, gridspec_kw=layout)
        left.scatter(*points.T, c=hard % 10, cmap="tab10", s=5, vmin=0, vmax=9)
        for t in big:
            colour = f"C{t % 10}"
            left.add_patch(Circle(means[t], 2 * prior.sigma, fill=False, color=colour))
            top = (means[t, 0], means[t, 1] + 2.1 * prior.sigma)
            text = f"{weights[t]:.2f}" + (" (last)" if t == T - 1 else "")
            left.annotate(text, top, ha="center", va="bottom")
        if centres is not None:
            left.scatter(*centres.T, marker="x", color="k", s=40)
        left.set(xlim=limits[0], ylim=limits[1], aspect="equal")
        left.set(xlabel="x₁", ylabel="x₂")
        left.set_title(f"α = {alpha:.3g}, T = {T}: {len(big)} weights above 1%")
        owns = np.isin(np.arange(T), hard)
        t = np.arange(1, T + 1)
        bars = right.bar(t, weights, color=np.where(owns, "C0", "0.7"), width=0.8)
        bars[-1].set_hatch("//")
        bars[-1].set_edgecolor("k")
        right.axhline(0.01, color="k", ls=":", lw=1)
        right.set(yscale="log", ylim=(1e-5, 1.5), xlim=(0.3, T + 0.7))
        _decades(right.yaxis)
        right.set(xlabel="component t", ylabel="expected weight E[πₜ]")
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        converged = "" if result.converged else " (not converged)"
        right.set_title(
            f"{result.n_iter} sweeps{converged}, last weight {weights[-1]:.3f}"
        )
        handles = [
            Patch(color="C0", label="owns data"),
            Patch(color="0.7", label="owns no point"),
            Patch(facecolor="w", edgecolor="k", hatch="//", label="last: remainder"),
            Line2D([], [], color="k", ls=":", lw=1, label="1% of the weight"),
            Line2D([], [], ls="", marker="o", mfc="none", label="2σ circle if > 1%"),
        ]
        if centres is not None:
            handles.append(
                Line2D([], [], ls="", marker="x", color="k", label="true centre")
            )
        fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0))
        return fig

    params = [
        log_scale("alpha", 0.1, 100.0, [0.1, 1.0, 10.0, 100.0], default=1.0, label="α"),
        integer("T", 2, 40, [5, 20, 40], default=20),
    ]
    explorer = Explorer(
        render, params, title="DP mixture by CAVI: alpha and truncation T"
    )
    # An update runs CAVI and saves a scatter plot (about 0.3 s, more than the drawing
    # that Explorer times): update when a slider is released, not for every step of a drag.
    for control in explorer.controls.values():
        control.continuous_update = False
    return explorer


def sbvae_gem_explorer(truncation: int = 30, draws: int = 2000):
    r"""Stick-breaking (GEM) weights for any concentration :math:`\alpha_0` (chapter
    sbvae).

    Bars: the expected weights :func:`vbtutor.stick_breaking.gem_mean` truncated at
    ``truncation`` sticks, the remainder in grey. Dots: the average of ``draws`` draws
    of the weights, with fractions :math:`v_k \sim \mathrm{Beta}(1, \alpha_0)` from
    NumPy's generator seeded by the draw number. Line: the first of those draws. The
    title gives the number of sticks holding 95% of the mass on average,
    :math:`\lceil \log 0.05 / \log(\alpha_0 / (1 + \alpha_0)) \rceil`.

    Arguments:
        truncation: the number of weights K, 2 to 100.
        draws: the number of draws averaged, at least 2.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``alpha0`` (0.2 to 50, log scale;
        frames 0.5 to 20), with a "new draw" button.
    """
    if isinstance(truncation, bool) or not isinstance(truncation, int):
        raise ValueError(f"truncation must be an int, got {truncation!r}")
    if not 2 <= truncation <= 100:
        raise ValueError(f"truncation must be from 2 to 100, got {truncation}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws must be an int of at least 2, got {draws!r}")
    k = np.arange(1, truncation + 1)

    def render(alpha0: float, seed: int) -> Figure:
        rng = np.random.default_rng(seed)
        v = torch.from_numpy(rng.beta(1.0, alpha0, size=(draws, truncation - 1)))
        weights = sb.stick_breaking(v).numpy()
        mean = sb.gem_mean(alpha0, truncation).numpy()
        n95 = math.ceil(math.log(0.05) / math.log(alpha0 / (1 + alpha0)))
        fig = Figure(figsize=(TEXT_WIDTH, 3.2))
        ax = fig.subplots()
        fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.27)
        ax.bar(k[:-1], mean[:-1], color="C0", alpha=0.6, label="E[πₖ]")
        ax.bar(k[-1], mean[-1], color="0.6", label="E[remainder]")
        ax.plot(k, weights.mean(0), "k.", label=f"mean of {draws} draws")
        ax.plot(k, weights[0], color="C3", lw=1, label="one draw")
        ax.set(xlabel="stick k", ylabel="weight πₖ", ylim=(0, 1))
        ax.set(xlim=(0.3, truncation + 0.7))
        ax.set_title(f"α₀ = {alpha0:.3g}: 95% of the mass in {n95} sticks on average")
        fig.legend(loc="lower center", ncol=4, bbox_to_anchor=(0.5, 0))
        return fig

    params = [
        log_scale(
            "alpha0",
            0.2,
            50.0,
            [0.5, 1, 2, 3, 5, 8, 13, 20],
            default=5.0,
            label="α₀",
        )
    ]
    return Explorer(render, params, title="GEM stick weights by alpha0", new_draw=True)


def sbvae_kl_explorer(alpha0: float = 5.0):
    r"""The Kumaraswamy posterior of one stick against its Beta prior, and the series
    for their KL divergence (chapter sbvae).

    Left: the density of :math:`\mathrm{Kumaraswamy}(a, b)` and of the prior
    :math:`\mathrm{Beta}(1, \alpha_0)`. Right: the truncation error
    :math:`\mathrm{KL} - \mathrm{KL}_M` of
    :func:`vbtutor.stick_breaking.kl_kumaraswamy_beta` with M series terms, against the
    quadrature value :func:`vbtutor.stick_breaking.kl_kumaraswamy_beta_quad`, for M
    from 1 to 10,000 on a log-log scale (its absolute value if the series overshoots,
    as it does for :math:`\alpha_0 < 1`), with the current M marked and a dotted line
    of slope :math:`-b`, the rate at which the error falls. Errors below
    :data:`QUAD_ACCURACY`, the quadrature's accuracy, are left out.

    Arguments:
        alpha0: the prior's concentration, positive.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``a`` (0.2 to 10; frames 0.5, 1, 2),
        ``b`` (0.2 to 20; frames 0.5, 5), both on log scales, and ``M`` (1 to 10,000,
        log scale; frames 10 and 100).
    """
    if isinstance(alpha0, bool) or not isinstance(alpha0, (int, float)):
        raise ValueError(f"alpha0 must be a number, got {type(alpha0).__name__}")
    if not (math.isfinite(alpha0) and alpha0 > 0):
        raise ValueError(f"alpha0 must be finite and positive, got {alpha0!r}")
    alpha0 = float(alpha0)
    grid = torch.linspace(0.0005, 0.9995, 800, dtype=torch.float64)
    one = torch.tensor(1.0, dtype=torch.float64)
    prior = D.Beta(one, one * alpha0)
    prior_density = prior.log_prob(grid).exp().numpy()
    terms = np.array(KL_TERMS_GRID)
    layout = {**FIXED_LAYOUT, "left": 0.09, "bottom": 0.3}

    def kl_series(a: float, b: float, M: int) -> float:
        # float64 whatever the default dtype: the errors go down to 1e-10
        return sb.kl_kumaraswamy_beta(one * a, one * b, one, one * alpha0, M).item()

    @memo
    def curve(a: float, b: float) -> tuple[float, np.ndarray]:
        exact = sb.kl_kumaraswamy_beta_quad(a, b, 1.0, alpha0)
        return exact, np.array([exact - kl_series(a, b, M) for M in KL_TERMS_GRID])

    def render(a: float, b: float, M: int) -> Figure:
        exact, errors = curve(a, b)
        error = exact - kl_series(a, b, M)
        density = sb.Kumaraswamy(one * a, one * b).log_prob(grid).exp().numpy()
        fig = Figure(figsize=(TEXT_WIDTH, 3.6))
        left, right = fig.subplots(1, 2, gridspec_kw=layout)
        v = grid.numpy()
        left.plot(v, density, lw=2, label="Kumaraswamy(a, b)")
        left.plot(
            v, prior_density, "--", color="C1", label=f"prior Beta(1, {alpha0:g})"
        )
        top = min(max(density.max(), prior_density.max()), 6.0)
        left.set(xlim=(0, 1), ylim=(0, 1.1 * top), xlabel="stick fraction v")
        left.set(ylabel="density")
        shown_kl = exact if abs(exact) >= 5e-5 else 0.0  # not -0.0000 at a = 1
        left.set_title(f"Kumaraswamy({a:.3g}, {b:.3g}): KL = {shown_kl:.4f}")
        size = np.abs(errors)
        shown = size > QUAD_ACCURACY
        right.plot(terms[shown], size[shown], ".-", color="C0", label="|KL − KL_M|")
        if shown.any():
            last = np.flatnonzero(shown)[-1]
            guide = size[last] * (terms[: last + 1] / terms[last]) ** -b
            right.plot(terms[: last + 1], guide, ":", color="0.4", label="∝ M⁻ᵇ")
        right.axvline(M, color="C3", lw=1, label="current M")
        if abs(error) > QUAD_ACCURACY:
            right.plot([M], [abs(error)], "o", color="C3")
            small = "small" if error > 0 else "large"
            right.set_title(f"M = {M}: {abs(error):.3g} nats too {small}")
        else:
            right.set_title(f"M = {M}: exact to 1e-10 nats")
        low = max(size[shown].min() if shown.any() else 1e-12, 1e-11)
        right.set(xscale="log", yscale="log", xlim=(0.7, 1.4e4))
        right.set(ylim=(0.5 * low, 2 * max(size.max(), 10 * low)))
        right.set(xlabel="series terms M", ylabel="truncation error (nats)")
        _decades(right.xaxis, 5)
        _decades(right.yaxis)
        handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
        fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0))
        return fig

    params = [
        log_scale("a", 0.2, 10.0, [0.5, 1.0, 2.0], default=2.0),
        log_scale("b", 0.2, 20.0, [0.5, 5.0], default=5.0),
        log_scale("M", 1, 10_000, [10, 100], default=10, integer=True),
    ]
    return Explorer(render, params, title="KL(Kumaraswamy || Beta) series by a, b, M")
