"""Explorers of the chapters vae and kl_gaussians."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import distributions as vd
from ..plotting import TEXT_WIDTH, image_grid
from ..widgets import Explorer, choice, number
from ._common import FIXED_LAYOUT, memo

__all__ = ["vae_sigma_explorer", "kl_direction_explorer"]

#: The two objectives of :func:`kl_direction_explorer`, as the reader picks them.
OBJECTIVES = ("KL(q || p)", "KL(p || q)")

#: Log standard deviations of q over which the KL(q || p) profile is minimised (the grid's
#: minimum is refined by a parabola through its neighbours).
PROFILE_LOG_SDS = np.linspace(math.log(0.2), math.log(8.0), 41)

#: Standardised nodes u of the expectation under q = N(m, s^2) at x = m + s u, and their
#: trapezoidal weights times the standard normal density (normalised to sum to one).
_NODES = np.linspace(-8.0, 8.0, 241)
_NODE_WEIGHTS = np.exp(-0.5 * _NODES**2) * np.r_[0.5, np.ones(239), 0.5]
_NODE_WEIGHTS /= _NODE_WEIGHTS.sum()


def _positive_pair(name: str, value) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be two positive numbers, got {value!r}"
        ) from None
    if array.shape != (2,) or not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be two positive numbers, got {value!r}")
    return array


#: Separations precomputed for the static HTML by :func:`kl_direction_explorer`: the
#: mode-seeking fit jumps between 5 and 5.5 for the chapter's mixture.
SEPARATIONS = (0.0, 2.0, 4.0, 5.0, 5.5, 6.0, 8.0)


def kl_direction_explorer(
    weights=(0.6, 0.4), stds=(1.0, 1.0), separations=SEPARATIONS
) -> Explorer:
    r"""The two Gaussian fits to a two-mode mixture, for any separation (chapter kl_gaussians).

    The target is :math:`p = w_1 \mathcal N(-\delta/2, s_1^2) + w_2 \mathcal N(\delta/2,
    s_2^2)` with modes a separation :math:`\delta` apart. The left panel shows p and the two
    Gaussians fitted by :func:`vbtutor.distributions.fit_gaussian_1d`: the minimiser of
    :math:`\mathrm{KL}(q \,\|\, p)` (mode seeking) and of :math:`\mathrm{KL}(p \,\|\, q)`
    (mass covering). The right panel shows the chosen objective as a function of q's mean
    m, minimised over q's standard deviation s (the profile whose lowest point is that
    direction's fit), with both fits placed at their own value of the objective; the
    legend reports those values, computed by :func:`vbtutor.distributions.kl_quadrature`.
    Switching the objective shows the other KL of the same two fits. For
    :math:`\mathrm{KL}(q \,\|\, p)` the profile takes the expectation under q by the
    trapezoidal rule at :math:`x = m + s u`, 241 nodes u in [-8, 8], over 41 log-spaced s
    from 0.2 to 8, its minimum refined by a parabola (about 1e-3 nats from a dense search
    with :func:`~vbtutor.distributions.kl_quadrature`); for
    :math:`\mathrm{KL}(p \,\|\, q)` it is exact, :math:`-\mathbb H[p] + \frac12
    \log\big(2\pi e (\operatorname{Var}_p + (\mathbb E_p - m)^2)\big)`, with the
    entropy by quadrature. A profile with two local minima is why the mode-seeking fit
    jumps from one branch to the other as the modes separate; a fit's value beyond the
    right panel's range is drawn at its top as a triangle. The fits and profiles are
    remembered per separation; nothing is random.

    Arguments:
        weights: the two components' weights, positive (normalised to sum to one).
        stds: the two components' standard deviations, positive.
        separations: the separations, from 0 to 8, precomputed (with both objectives)
            for the static HTML; it starts at 6 where that is one of them.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``separation`` (0 to 8, live) and
        ``objective`` (one of :data:`OBJECTIVES`).

    Chapter: kl_gaussians.
    """
    weights = _positive_pair("weights", weights)
    stds = _positive_pair("stds", stds)
    try:
        separations = tuple(float(d) for d in separations)
    except (TypeError, ValueError):
        raise ValueError(
            f"separations must be numbers from 0 to 8, got {separations!r}"
        ) from None
    if not separations or not all(0 <= d <= 8 for d in separations):
        raise ValueError(
            f"separations must be numbers from 0 to 8, got {separations!r}"
        )
    weights_t = torch.tensor(weights / weights.sum(), dtype=torch.float64)
    stds_t = torch.tensor(stds, dtype=torch.float64)
    reach = 4 + 5 * stds.max()  # the densities' x axis: past the modes at separation 8
    xs = torch.linspace(-reach, reach, 721, dtype=torch.float64)
    profile_means = np.linspace(-4 - 2 * stds.max(), 4 + 2 * stds.max(), 81)

    def mixture(separation: float):
        means = torch.tensor([-separation / 2, separation / 2], dtype=torch.float64)
        return vd.gaussian_mixture_1d(weights_t, means, stds_t)

    @memo
    def fits(separation: float):
        """The two fits and their KLs: {objective: (fit, KL(q || p), KL(p || q))}."""
        target = mixture(separation)
        result = {}
        for objective, direction in zip(OBJECTIVES, ("qp", "pq"), strict=True):
            fit = vd.fit_gaussian_1d(target, direction=direction)
            result[objective] = (
                fit,
                vd.kl_quadrature(fit, target).item(),
                vd.kl_quadrature(target, fit).item(),
            )
        return result

    def log_mixture(x: np.ndarray, separation: float) -> np.ndarray:
        """log p(x) of the target in NumPy (the profile needs it at 800,000 points)."""
        means = (-separation / 2, separation / 2)
        terms = [
            math.log(w / s) - 0.5 * math.log(2 * math.pi) - 0.5 * ((x - m) / s) ** 2
            for w, m, s in zip(weights / weights.sum(), means, stds, strict=True)
        ]
        return np.logaddexp(*terms)

    @memo
    def profile(separation: float, objective: str) -> np.ndarray:
        """The objective minimised over s, at each mean in profile_means."""
        target = mixture(separation)
        if objective == OBJECTIVES[1]:
            edge = separation / 2 + 12 * stds.max()
            grid = np.linspace(-edge, edge, 4001)
            log_p = log_mixture(grid, separation)
            neg_entropy = np.trapezoid(np.exp(log_p) * log_p, grid)
            spread = target.variance.item() + (target.mean.item() - profile_means) ** 2
            return neg_entropy + 0.5 * np.log(2 * math.pi * math.e * spread)
        sds = np.exp(PROFILE_LOG_SDS)
        points = profile_means[:, None, None] + sds[None, :, None] * _NODES
        cross = log_mixture(points, separation) @ _NODE_WEIGHTS  # E_q[log p]
        values = -0.5 * np.log(2 * math.pi * math.e * sds**2) - cross
        # the grid's minimum over log s, refined by the parabola through its neighbours
        j = np.clip(values.argmin(axis=1), 1, len(sds) - 2)
        rows = np.arange(len(profile_means))
        below, at, above = (values[rows, j + k] for k in (-1, 0, 1))
        curvature = np.maximum(above - 2 * at + below, 1e-12)
        return np.minimum(
            values.min(axis=1), at - (above - below) ** 2 / (8 * curvature)
        )

    def render(separation: float, objective: str) -> Figure:
        fitted = fits(separation)
        target = mixture(separation)
        column = 1 if objective == OBJECTIVES[0] else 2
        fig = Figure(figsize=(TEXT_WIDTH, 3.7))
        left, right = fig.subplots(1, 2, gridspec_kw=FIXED_LAYOUT)
        with torch.no_grad():
            density = target.log_prob(xs).exp().numpy()
            curves = [fitted[o][0].log_prob(xs).exp().numpy() for o in OBJECTIVES]
        handles = [left.fill_between(xs, density, color="0.85", label="target p")]
        styles = [{"color": "C0"}, {"color": "C1", "ls": "--"}]
        names = ["mode seeking", "mass covering"]
        for o, curve, style, name in zip(
            OBJECTIVES, curves, styles, names, strict=True
        ):
            value = fitted[o][column]
            label = f"{name}: {objective} = {value:.3f}"
            handles += left.plot(xs, curve, label=label, **style)
        top = 1.1 * max(density.max(), *(c.max() for c in curves))
        left.set(xlabel="x", ylabel="density", xlim=(-reach, reach), ylim=(0, top))
        left.set_title(f"modes {separation:.2f} apart")
        values = profile(separation, objective)
        handles += right.plot(
            profile_means,
            values,
            color="k",
            lw=1,
            label="objective, min over s at each m",
        )
        top = max(1.5, 2.5 * values.min())
        for o, style in zip(OBJECTIVES, styles, strict=True):
            mean, value = fitted[o][0].mean.item(), fitted[o][column]
            marker = "o" if value <= top else "^"  # "^": off the scale, at the top
            right.plot(
                mean,
                min(value, top),
                marker,
                color=style["color"],
                ms=7,
                mfc="none",
                mew=1.5,
                clip_on=False,
            )
        right.set(
            xlabel="mean m of q",
            ylabel=f"{objective} (nats)",
            xlim=(profile_means[0], profile_means[-1]),
            ylim=(0, top),
        )
        right.set_title(f"objective {objective}")
        fig.legend(handles=handles, loc="lower center", ncol=2, bbox_to_anchor=(0.5, 0))
        return fig

    params = [
        number(
            "separation",
            0.0,
            8.0,
            separations,
            default=6.0 if 6.0 in separations else separations[len(separations) // 2],
            label="separation",
        ),
        choice("objective", OBJECTIVES, label="objective"),
    ]
    return Explorer(render, params, title="Gaussian fits to a mixture in each KL")


def vae_sigma_explorer(
    vaes: Mapping, terms: Mapping, x_test: torch.Tensor, default=None
) -> Explorer:
    r"""Gaussian VAEs trained for several decoder sigmas, with fresh digits and draws (chapter vae).

    For the chosen decoder :math:`\sigma` (KL weight :math:`\beta = 2\sigma^2`), the top
    row shows ten test digits above their reconstructions (the decoded posterior means)
    and twenty decoded prior samples (the means of :math:`p_\theta(x \mid z)` for
    :math:`z \sim p(z)`). The bottom row shows the test squared error and the test KL of
    every trained model against :math:`\sigma`, with the chosen one marked. A new draw
    picks ten other test digits and other prior draws; every :math:`\sigma` decodes the
    same draws, so switching :math:`\sigma` compares the models on the same ``z``. Draw
    0 shows the first ten test digits. The draws come from their own generators: the
    global random streams are untouched.

    Arguments:
        vaes: the trained models by decoder sigma, at least two (e.g.
            :class:`vbtutor.models.GaussianVAE`; anything with ``encode``, ``decode`` and
            ``prior``).
        terms: by the same sigmas, the pair (mean test squared error, mean test KL in
            nats) of each model.
        x_test: test images, shape ``(n, side * side)`` with ``n >= 10``, on the models'
            device.
        default: the sigma shown first, one of the keys of ``vaes`` (default: the middle
            one).

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``sigma`` (the keys of ``vaes``), with a
        "new draw" button.

    Chapter: vae.
    """
    if not isinstance(vaes, Mapping) or len(vaes) < 2:
        raise ValueError("vaes must map at least two decoder sigmas to models")
    sigmas = sorted(vaes)
    for sigma in sigmas:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma <= 0:
            raise ValueError(f"vaes must have positive numbers as keys, got {sigma!r}")
        if not all(hasattr(vaes[sigma], a) for a in ("encode", "decode", "prior")):
            raise ValueError(f"vaes[{sigma}] must be a VAE (encode, decode, prior)")
    if not isinstance(terms, Mapping) or sorted(terms) != sigmas:
        raise ValueError(f"terms must have the same sigmas as vaes, {sigmas}")
    curves = np.array([terms[s] for s in sigmas], dtype=np.float64)
    if curves.shape != (len(sigmas), 2) or not np.all(np.isfinite(curves)):
        raise ValueError(
            "terms must map each sigma to (squared error, KL), two numbers"
        )
    if not isinstance(x_test, torch.Tensor) or x_test.dim() != 2 or len(x_test) < 10:
        raise ValueError("x_test must be a tensor of at least 10 images, shape (n, D)")
    side = math.isqrt(x_test.shape[1])
    if side * side != x_test.shape[1]:
        raise ValueError(
            f"x_test must hold square images, got {x_test.shape[1]} pixels"
        )
    default = sigmas[len(sigmas) // 2] if default is None else default
    if default not in sigmas:
        raise ValueError(f"default must be one of the sigmas {sigmas}, got {default!r}")

    def render(sigma, seed: int) -> Figure:
        model = vaes[sigma]
        if seed == 0:
            index = np.arange(10)
        else:
            index = np.random.default_rng(seed).choice(len(x_test), 10, replace=False)
        x = x_test[torch.as_tensor(index, device=x_test.device)]
        with torch.no_grad():
            recon = model.decode(model.encode(x).mean)
            prior = model.prior()
            eps = torch.randn(
                (20, *prior.event_shape),
                generator=torch.Generator().manual_seed(seed),
                dtype=prior.mean.dtype,
            ).to(prior.mean.device)
            samples = model.decode(prior.mean + prior.stddev * eps)
        fig = Figure(figsize=(TEXT_WIDTH, 4.9))
        grid = fig.add_gridspec(
            3,
            2,
            height_ratios=[1, 1, 1.5],
            left=0.1,
            right=0.98,
            top=0.94,
            bottom=0.09,
            wspace=0.35,
            hspace=0.45,
        )
        digits, draws = fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, :])
        beta = f"σ = {sigma:g}, β = 2σ² = {2 * sigma**2:.3g}"
        image_grid(
            digits,
            torch.cat([x, recon]),
            side=side,
            title=f"{beta}: test digits / reconstructions",
        )
        image_grid(draws, samples, side=side, title="decoded prior samples")
        current = sigmas.index(sigma)
        names = ["test squared error", "test KL (nats)"]
        for column, name in enumerate(names):
            ax = fig.add_subplot(grid[2, column])
            ax.plot(sigmas, curves[:, column], "o-", color=f"C{column}", ms=4)
            ax.plot(sigma, curves[current, column], "o", color="C3", ms=8)
            ax.axvline(sigma, color="0.5", ls=":", lw=1)
            ax.set(xscale="log", xlabel="decoder σ", ylabel=name)
            ax.set_xticks(sigmas, [f"{s:g}" for s in sigmas], minor=False)
            ax.minorticks_off()
            ax.margins(0.1)
            ax.set_title(f"{curves[current, column]:.2f} at σ = {sigma:g}")
        return fig

    param = choice("sigma", sigmas, default=default, label="decoder sigma")
    return Explorer(
        render, [param], title="Gaussian VAEs by decoder sigma", new_draw=True
    )
