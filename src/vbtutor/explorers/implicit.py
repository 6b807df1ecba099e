"""Explorers of the chapters avb and contrastive."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import distributions as D
from torch import nn

from .. import density_ratio as dr
from .. import train
from ..plotting import TEXT_WIDTH
from ..widgets import Explorer, log_scale, number
from ._common import FIXED_LAYOUT, memo

__all__ = ["avb_explorer", "contrastive_explorer"]

#: Histogram bins of the avb explorer (as in the chapter): 40 x 40 bins of width 0.2 on
#: [-4, 4]^2, each holding 4 x 4 points of the grid on which the posterior is computed.
AVB_EDGES = torch.linspace(-4, 4, 41)
AVB_FINE = torch.linspace(-3.975, 3.975, 160)

#: Ticks of the z axes in the avb explorer.
AVB_TICKS = (-4, -2, 0, 2, 4)

#: Seed of the avb explorer's local random stream, the same for every x.
AVB_SEED = 0

#: Observations at which the avb explorer's TV curves are computed.
AVB_CURVE_XS = tuple(np.linspace(0.0, 3.0, 13))

#: Ticks of the noise ratio in the contrastive explorer.
NU_TICKS = (1, 3, 10, 30)


def _rng_devices(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []


def _histogram(z: torch.Tensor) -> torch.Tensor:
    """Fraction of the rows of ``z`` in each of the 40 x 40 bins (outside ones drop)."""
    hist = torch.histogramdd(z.detach().cpu().float(), bins=[AVB_EDGES, AVB_EDGES])
    return hist.hist / len(z)


def _total_variation(hist: torch.Tensor, bins: torch.Tensor) -> float:
    """Half the L1 distance, counting mass outside the grid as misplaced."""
    return 0.5 * ((hist - bins).abs().sum() + 1 - hist.sum()).item()


def avb_explorer(
    avb: Callable,
    gaussian: Callable,
    log_likelihood: Callable,
    prior: D.Distribution,
    samples: int = 10_000,
) -> Explorer:
    r"""The exact posterior of z given x against the samples of two encoders (chapter avb).

    For the observation x picked (any value from 0 to 3) the exact posterior
    :math:`p(z \mid x) \propto p(z)\,p(x \mid z)` is computed on a 160 x 160 grid and
    summed into 40 x 40 bins of width 0.2 on :math:`[-4, 4]^2`. Three panels show it,
    the histogram of ``samples`` draws of the AVB encoder and that of the Gaussian
    encoder, on one grey scale; their titles give the total-variation distance of each
    histogram to the binned posterior (mass outside the grid counts as misplaced), as
    in the chapter. The fourth panel is the TV of both encoders over x (13 values,
    computed once), with the noise floor (the TV of as many exact samples, drawn from
    the grid and jittered within their cell), and the current x marked. The draws come
    from a local stream seeded with :data:`AVB_SEED` at every x, so the global random
    stream is left alone and nearby values of x share their noise.

    Arguments:
        avb: the implicit encoder, mapping x of shape ``(n, 1)`` to samples z of shape
            ``(n, 2)`` (it draws its own noise from torch's stream).
        gaussian: the Gaussian encoder, mapping x of shape ``(n, 1)`` to a
            distribution over z with ``event_shape == (2,)``.
        log_likelihood: ``(x, z) -> log p(x | z)`` for x of shape ``(n, 1)`` and z of
            shape ``(n, 2)``, returning shape ``(n,)``.
        prior: p(z), a distribution with ``event_shape == (2,)`` on the device of the
            encoders.
        samples: draws per histogram, an int of at least 100.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``x`` (0 to 3).
    """
    if not callable(avb):
        raise ValueError(f"avb must be a callable encoder, got {type(avb).__name__}")
    if not callable(gaussian):
        raise ValueError(
            f"gaussian must be a callable encoder, got {type(gaussian).__name__}"
        )
    if not callable(log_likelihood):
        raise ValueError("log_likelihood must be a callable (x, z) -> log p(x | z)")
    if not isinstance(prior, D.Distribution) or tuple(prior.event_shape) != (2,):
        raise ValueError("prior must be a torch Distribution with event_shape (2,)")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 100:
        raise ValueError(f"samples must be an int of at least 100, got {samples!r}")
    device = prior.mean.device
    grid_z = torch.stack(torch.meshgrid(AVB_FINE, AVB_FINE, indexing="ij"), -1)
    grid_z = grid_z.reshape(-1, 2).to(device, prior.mean.dtype)
    with torch.no_grad():
        log_prior = prior.log_prob(grid_z)

    @memo
    def summary(x: float) -> dict:
        """Binned posterior, the encoders' histograms and the three TVs at x."""
        with torch.no_grad():
            rows = torch.full((len(grid_z), 1), x, device=device, dtype=grid_z.dtype)
            weights = torch.softmax(log_prior + log_likelihood(rows, grid_z), 0)
            bins = weights.cpu().reshape(40, 4, 40, 4).sum((1, 3)).float()
            with torch.random.fork_rng(devices=_rng_devices(device)):
                torch.manual_seed(AVB_SEED)
                column = torch.full((samples, 1), x, device=device, dtype=rows.dtype)
                z_avb = avb(column)
                z_gauss = gaussian(column[:1]).sample((samples,))[:, 0]
                cell = torch.multinomial(weights, samples, replacement=True)
                jitter = (torch.rand(samples, 2, device=device) - 0.5) * 0.05
                z_exact = grid_z[cell] + jitter
        hists = {"AVB": _histogram(z_avb), "Gaussian VAE": _histogram(z_gauss)}
        tvs = {name: _total_variation(h, bins) for name, h in hists.items()}
        tvs["exact samples"] = _total_variation(_histogram(z_exact), bins)
        return {"bins": bins, "hists": hists, "tv": tvs}

    rows = [summary(float(x))["tv"] for x in AVB_CURVE_XS]
    curves = {name: np.array([r[name] for r in rows]) for name in rows[0]}

    def render(x: float) -> Figure:
        now = summary(x)
        fig = Figure(figsize=(TEXT_WIDTH, 5.8))
        axes = fig.subplots(2, 2)
        fig.subplots_adjust(
            left=0.09, right=0.98, top=0.95, bottom=0.16, wspace=0.25, hspace=0.45
        )
        images = [now["bins"], *now["hists"].values()]
        titles = [f"exact posterior, x = {x:.2f}"] + [
            f"{name} (TV {now['tv'][name]:.2f})" for name in now["hists"]
        ]
        top = now["bins"].max().item()
        for ax, image, title in zip(axes.flat, images, titles, strict=False):
            ax.imshow(
                image.T.numpy(),
                origin="lower",
                extent=(-4, 4, -4, 4),
                cmap="Greys",
                vmin=0,
                vmax=top,
                interpolation="nearest",
            )
            ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$")
            ax.set(xticks=AVB_TICKS, yticks=AVB_TICKS)
        tv_axis = axes[1, 1]
        styles = {"AVB": ("C0", "-"), "Gaussian VAE": ("C1", "-")}
        styles["exact samples"] = ("0.5", "--")
        labels = {"exact samples": "exact samples (floor)"}
        for name, values in curves.items():
            colour, line = styles[name]
            label = labels.get(name, name)
            tv_axis.plot(AVB_CURVE_XS, values, ls=line, color=colour, label=label)
            tv_axis.plot(x, now["tv"][name], "o", color=colour, ms=5)
        tv_axis.axvline(x, color="C3", lw=1, label="current x")
        high = max(0.6, max(now["tv"].values()), *map(max, curves.values()))
        tv_axis.set(xlabel="observation x", ylabel="TV to the exact posterior")
        tv_axis.set(xlim=(-0.1, 3.1), ylim=(0, 1.05 * high), title="TV against x")
        handles, names = tv_axis.get_legend_handles_labels()
        fig.legend(
            handles, names, loc="lower center", ncol=4, bbox_to_anchor=(0.5, 0.0)
        )
        return fig

    params = [
        number(
            "x",
            0.0,
            3.0,
            [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
            default=3.0,
            label="x",
        )
    ]
    return Explorer(render, params, title="AVB and Gaussian encoders against x")


class _StackedNCE(nn.Module):
    r"""k NCE models of :class:`~vbtutor.density_ratio.UnnormalisedGaussian` form.

    The model's log density :math:`-\tfrac12 \|L(x - \mu)\|^2 + c` is quadratic in
    x, so it is a linear function :math:`\phi(x)^\top w` of the features
    :math:`\phi(x) = (x_i x_j)_{i \le j}, (x_i)_i, 1` with weights w computed from
    :math:`(\mu, L, c)`. An input row is :math:`(\phi(x), \log q(x))`, computed once,
    and the rows come in k equal blocks, block s for model s; the output for a row of
    block s is :math:`\log \tilde p_{\theta_s}(x) + c_s - \log q(x)`, what
    :class:`~vbtutor.density_ratio.NCE` computes for one model, in one matrix product.
    The parameters are those of ``UnnormalisedGaussian`` and ``NCE``, and k times
    :func:`~vbtutor.density_ratio.log_ratio_loss` on the stacked rows is the sum of the
    k models' losses: Adam, which acts on each coordinate separately, then takes the k
    models through the steps of k separate fits.
    """

    def __init__(self, k: int, dim: int, like: torch.Tensor):
        super().__init__()
        options = {"dtype": like.dtype, "device": like.device}
        self.k, self.dim = k, dim
        self.mean = nn.Parameter(torch.zeros(k, dim, **options))
        self.log_diag = nn.Parameter(torch.zeros(k, dim, **options))
        self.off_diag = nn.Parameter(torch.zeros(k, dim * (dim - 1) // 2, **options))
        self.c = nn.Parameter(torch.zeros(k, **options))
        # constant maps: (exp(log_diag), off_diag) -> L row by row, and the precision
        # matrix row by row -> the weights of the features x_i x_j (i <= j)
        pairs, size = torch.triu_indices(dim, dim), dim * dim
        lower = torch.tril_indices(dim, dim, -1)
        place = torch.zeros(dim + lower.shape[1], size, **options)
        place[torch.arange(dim), torch.arange(dim) * (dim + 1)] = 1.0
        place[torch.arange(dim, place.shape[0]), lower[0] * dim + lower[1]] = 1.0
        pick = torch.zeros(size, pairs.shape[1], **options)
        diagonal = pairs[0] == pairs[1]
        pick[pairs[0] * dim + pairs[1], torch.arange(pairs.shape[1])] = torch.where(
            diagonal, -0.5, -1.0
        ).to(like.dtype)
        self.register_buffer("place", place)
        self.register_buffer("pick", pick)

    @staticmethod
    def features(x: torch.Tensor, log_noise: torch.Tensor) -> torch.Tensor:
        r"""Rows :math:`(x_i x_j)_{i \le j}, x, 1, \log q(x)` for x of shape (n, dim)."""
        i, j = torch.triu_indices(x.shape[1], x.shape[1])
        quadratic = x[:, i] * x[:, j]
        ones = torch.ones_like(log_noise)[:, None]
        return torch.cat([quadratic, x, ones, log_noise[:, None]], 1)

    def weights(self) -> torch.Tensor:
        """Each model's weights on :meth:`features` (-1 on log q), shape (k, f, 1)."""
        entries = torch.cat([self.log_diag.exp(), self.off_diag], 1)
        low = (entries @ self.place).view(self.k, self.dim, self.dim)
        precision = low.mT @ low
        quadratic = precision.reshape(self.k, -1) @ self.pick
        linear = (self.mean[:, None, :] @ precision)[:, 0]  # the precision is symmetric
        constant = self.c - 0.5 * (linear * self.mean).sum(1)
        minus_one = torch.full_like(constant, -1.0)
        columns = [quadratic, linear, constant[:, None], minus_one[:, None]]
        return torch.cat(columns, 1)[:, :, None]

    def forward(self, rows: torch.Tensor, weights: torch.Tensor | None = None):
        """The log-ratio at each row; ``weights`` saves recomputing :meth:`weights`."""
        weights = self.weights() if weights is None else weights
        return (rows.reshape(self.k, -1, rows.shape[1]) @ weights).reshape(-1)


def _fit_nce_sets(truth, noise, seeds, n: int, nu: int, steps: int, lr: float):
    """NCE fits of an ``UnnormalisedGaussian`` to one data set per seed, all at once.

    Data set s and its noise are the draws that ``torch.manual_seed(s)``, ``n`` draws of
    the true density and :func:`~vbtutor.density_ratio.fit_nce` make, from a forked
    stream (the global one is left alone); the fit is that of ``fit_nce`` with full
    batches, from the same zero initialisation.
    """
    like = truth.mean.detach()
    data, noise_rows = [], []
    with torch.no_grad(), torch.random.fork_rng(devices=_rng_devices(like.device)):
        for seed in seeds:
            torch.manual_seed(seed)
            data.append(truth.normalised().sample((n,)))
            noise_rows.append(noise.sample((nu * n,)).to(like.dtype))
        x_p, x_q = (torch.cat(x) for x in (data, noise_rows))
        x_p, x_q = (_StackedNCE.features(x, noise.log_prob(x)) for x in (x_p, x_q))
    model = _StackedNCE(len(seeds), truth.dim, like)

    def loss() -> torch.Tensor:
        weights = model.weights()  # once per step, for both samples
        net = lambda rows: model(rows, weights)  # noqa: E731
        return len(seeds) * dr.log_ratio_loss(net, x_p, x_q)

    train.fit(loss, model.parameters(), steps, lr=lr, progress=False)
    return model


def _log_density(model: _StackedNCE, x: torch.Tensor) -> torch.Tensor:
    """Every model's log density at the points x (n, dim): shape (k, n)."""
    rows = _StackedNCE.features(x, torch.zeros(len(x), dtype=x.dtype, device=x.device))
    return (rows @ model.weights())[..., 0]


def contrastive_explorer(
    truth: dr.UnnormalisedGaussian,
    noise: D.Distribution,
    errors: Mapping[int, np.ndarray],
    theory_sd: Callable[[float], float],
    n: int = 200,
    steps: int = 200,
    lr: float = 0.1,
) -> Explorer:
    r"""NCE fits and the error of the normaliser against the noise ratio (chapter contrastive).

    For the noise ratio :math:`\nu` picked (any integer from 1 to 30) the NCE model
    :math:`\log\tilde p_\theta + c` is refitted to every data set, all at once: data set
    i holds the ``n`` points that the true density gives after ``torch.manual_seed(i)``,
    and the fit is :func:`~vbtutor.density_ratio.fit_nce` with ``steps`` full-batch Adam
    steps at rate ``lr`` from zero, so at the chapter's values of :math:`\nu` the fits
    are the chapter's (the global random stream is left alone). The left panel shows
    the fitted densities' contours at level 0.08 against the true density's; the right
    panel the absolute error of each fitted :math:`\hat c` and their RMS at the current
    :math:`\nu`, the chapter's errors at its values of :math:`\nu`, and the asymptotic
    standard deviation ``theory_sd`` over :math:`\nu`.

    Arguments:
        truth: the true model, a 2-D :class:`~vbtutor.density_ratio.UnnormalisedGaussian`
            (its normaliser gives the true :math:`c^* = -\log Z`).
        noise: the noise distribution q, on the device and in the dtype of ``truth``.
        errors: the chapter's errors :math:`\hat c - c^*`, a dict from the noise
            ratios it fitted at (ints from 1 to 30) to arrays with one entry per data
            set, all of one length, which sets how many data sets are refitted.
        theory_sd: :math:`\nu \mapsto` the asymptotic sd of :math:`\hat c` with ``n``
            data points.
        n: data points per data set, at least 2.
        steps: Adam steps of each fit, at least 1.
        lr: Adam learning rate, positive.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``nu`` (1 to 30, log scale).
    """
    if not isinstance(truth, dr.UnnormalisedGaussian) or truth.dim != 2:
        raise ValueError(
            "truth must be a 2-D vbtutor.density_ratio.UnnormalisedGaussian"
        )
    if not isinstance(noise, D.Distribution) or tuple(noise.event_shape) != (2,):
        raise ValueError("noise must be a torch Distribution with event_shape (2,)")
    if not isinstance(errors, Mapping) or not errors:
        raise ValueError("errors must be a non-empty dict {nu: array of errors}")
    errors = {nu: np.asarray(e, dtype=float) for nu, e in errors.items()}
    sizes = {e.shape for e in errors.values()}
    low, high = 1, 30
    if any(
        isinstance(nu, bool) or not isinstance(nu, int) or not low <= nu <= high
        for nu in errors
    ):
        raise ValueError(
            f"errors must be keyed by ints from {low} to {high}, got {list(errors)}"
        )
    if len(sizes) != 1 or len(next(iter(sizes))) != 1 or not min(sizes)[0]:
        raise ValueError(f"errors must hold 1-D arrays of one length, got {sizes}")
    if not callable(theory_sd):
        raise ValueError("theory_sd must be a callable nu -> asymptotic sd")
    for name, value, least in (("n", n, 2), ("steps", steps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(
                f"{name} must be an int of at least {least}, got {value!r}"
            )
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be finite and positive, got {lr!r}")
    seeds = range(len(next(iter(errors.values()))))
    c_star = -truth.log_normaliser().item()
    nu_curve = np.geomspace(low, high, 40)
    sd_curve = np.array([theory_sd(float(v)) for v in nu_curve])
    top = max(0.4, 1.1 * max(np.abs(e).max() for e in errors.values()))
    like = truth.mean.detach()
    x1 = torch.linspace(-0.5, 2.5, 61, dtype=like.dtype, device=like.device)
    x2 = torch.linspace(-3.0, 2.0, 101, dtype=like.dtype, device=like.device)
    mesh = torch.stack(torch.meshgrid(x1, x2, indexing="xy"), -1).reshape(-1, 2)
    axes_mesh = x1.cpu().numpy(), x2.cpu().numpy()
    with torch.no_grad():
        true_density = truth.normalised().log_prob(mesh).exp()
    true_density = true_density.reshape(101, 61).cpu().numpy()

    @memo
    def fitted(nu: int) -> tuple[np.ndarray, np.ndarray]:
        """Errors of c and densities on the mesh of every data set's fit at nu."""
        model = _fit_nce_sets(truth, noise, seeds, n, nu, steps, lr)
        with torch.no_grad():
            density = _log_density(model, mesh).exp().reshape(-1, 101, 61)
            return (model.c - c_star).cpu().numpy(), density.cpu().numpy()

    def render(nu: int) -> Figure:
        error, density = fitted(nu)
        rms = math.sqrt(np.mean(error**2))
        fig = Figure(figsize=(TEXT_WIDTH, 3.6))
        left, right = fig.subplots(1, 2, gridspec_kw=FIXED_LAYOUT)
        for d in density:
            left.contour(*axes_mesh, d, [0.08], colors="C1", linewidths=0.8)
        left.contour(*axes_mesh, true_density, [0.08], colors="k", linewidths=2)
        left.plot([], [], "k", lw=2, label="true density")
        left.plot([], [], "C1", lw=0.8, label=f"NCE fits ({len(seeds)})")
        left.set(xlabel="$x_1$", ylabel="$x_2$", xlim=(-0.5, 2.5), ylim=(-3, 2))
        left.set_title(rf"$\nu$ = {nu}: densities at level 0.08")
        left.set_aspect("equal")
        right.plot(nu_curve, sd_curve, "k--", label="asymptotic sd")
        for v, e in errors.items():
            right.plot([v] * len(e), np.abs(e), "o", color="C0", ms=3)
            right.plot(v, math.sqrt(np.mean(e**2)), "s", color="C0", mfc="none")
        right.plot([], [], "o", color="C0", ms=3, label="|error|, table")
        right.plot([], [], "s", color="C0", mfc="none", label="RMS, table")
        right.axvline(nu, color="0.6", ls=":")
        right.plot([nu] * len(error), np.abs(error), "o", color="C3", ms=4)
        right.plot([], [], "o", color="C3", ms=4, label=r"|error| at this $\nu$")
        right.plot(nu, rms, "D", color="C3", ms=6, label=r"RMS at this $\nu$")
        right.set(xscale="log", xlabel=r"noise samples per data point $\nu$")
        right.set(ylabel=r"error of $\hat c$ (nats)", xlim=(0.85, 35))
        right.set(ylim=(0, max(top, 1.05 * np.abs(error).max())))
        right.set(xticks=NU_TICKS, xticklabels=[str(v) for v in NU_TICKS])
        right.minorticks_off()
        sd = theory_sd(float(nu))
        right.set_title(rf"$\nu$ = {nu}: RMS {rms:.2f}, asymptotic sd {sd:.2f}")
        handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
        fig.legend(handles=handles, loc="lower center", ncol=4, bbox_to_anchor=(0.5, 0))
        return fig

    params = [
        log_scale(
            "nu",
            low,
            high,
            [1, 2, 3, 5, 10, 20, 30],
            default=3,
            integer=True,
            label="ν",
        )
    ]
    return Explorer(render, params, title="NCE fits and the error of c against nu")
