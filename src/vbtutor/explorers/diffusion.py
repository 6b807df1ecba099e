"""Explorers of the chapters ddpm, sde, fokker_planck and flow_matching."""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import distributions as D

from .. import diffusion as dd
from .. import flow_matching as vfm
from .. import sde as vsde
from ..fokker_planck import VPMixture1D, solve_fokker_planck
from ..plotting import TEXT_WIDTH
from ..widgets import Explorer, choice, integer, log_scale, number
from ._common import memo

__all__ = [
    "ddpm_explorer",
    "ddim_explorer",
    "sde_explorer",
    "fokker_planck_explorer",
    "flow_matching_explorer",
]

#: Margins of the two-panel figures here: room for two-line titles above the panels and
#: for axis labels and a legend below them.
LAYOUT = {"left": 0.1, "right": 0.98, "top": 0.85, "bottom": 0.3, "wspace": 0.35}

#: Square scatter panels show the plane over [-LIMIT, LIMIT]^2.
LIMIT = 3.5

#: Step counts of the sde explorer's distance curve.
SDE_STEPS = (5, 7, 10, 15, 20, 30, 50, 100, 200, 500, 1000)

#: Evaluation counts of the flow_matching explorer's distance curves (Heun uses the even
#: ones).
FLOW_NFES = (1, 2, 3, 4, 6, 10, 20, 50, 100, 200, 1000)

#: The samplers of the sde explorer: their names on the control (short, for a phone's
#: control row) and in the figure.
SDE_SAMPLERS = {"SDE": "reverse SDE", "ODE": "probability-flow ODE"}

#: The solvers of the flow_matching explorer.
FLOW_SOLVERS = ("Euler", "Heun")

#: The samplers of the ddim explorer, as the reader sees them (short, for a phone's
#: control row), and their eta.
DDIM_SAMPLERS = {"DDIM": 0.0, "DDPM": 1.0}


def _fmt(value: float) -> str:
    """One decimal, without a minus sign on a value that rounds to zero."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _points(name: str, x, rows: int = 2) -> torch.Tensor:
    """``x`` as a float64 CPU tensor of 2-D points, or a ValueError naming ``name``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor of 2-D points (n, 2), got {shape}")
    if x.shape[0] < rows or not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} needs at least {rows} finite points")
    return x.detach().double().cpu()


def _distance_to(test: torch.Tensor):
    """``x -> 1000 * energy_distance(x, test)``, with the test sample's own term computed
    once (it is the same for every ``x``)."""
    m = test.shape[0]
    test_term = float(torch.cdist(test, test).sum() / (m * (m - 1)))

    def distance(x: torch.Tensor) -> float:
        x = x.detach().double().cpu()
        n = x.shape[0]
        own = float(torch.cdist(x, x).sum() / (n * (n - 1)))
        return 1000 * (2 * float(torch.cdist(x, test).mean()) - own - test_term)

    return distance


def _scatter(ax, x: torch.Tensor, color: str = "C0") -> None:
    ax.scatter(*x.T.numpy(), s=2, alpha=0.5, color=color, lw=0)
    ax.set(xlim=(-LIMIT, LIMIT), ylim=(-LIMIT, LIMIT), aspect="equal")
    ax.set(xlabel="x₁", ylabel="x₂")  # no mathtext: it costs a parse per figure


def _data(ax, test: torch.Tensor) -> None:
    shown = test[:1000]  # fewer points: a lighter figure
    ax.scatter(*shown.T.numpy(), s=2, lw=0, color="0.8")
    ax.plot([], [], "o", ms=3, color="0.8", label="held-out data")  # legend entry


def _distance_panel(ax, curves: dict, floor: float | None, current: tuple) -> None:
    """Energy distance (x 1000) against the cost, one line per sampler, on a log axis.

    ``curves`` maps a label to ``(costs, distances, colour)``; ``current`` is
    ``(cost, distance, colour)`` of the figure's samples.
    """
    for label, (costs, distances, color) in curves.items():
        ax.plot(costs, distances, "o-", ms=3, color=color, label=label)
    if floor is not None:
        ax.axhline(floor, color="0.4", ls="--", lw=1, label="data vs data")
    cost, distance, color = current
    ax.plot(
        [cost],
        [distance],
        "*",
        ms=13,
        color=color,
        markeredgecolor="k",
        label="shown on the left",
    )
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=10)
    values = [distance, floor or 0, *(v for _, d, _ in curves.values() for v in d)]
    top = 10 ** max(2, math.ceil(math.log10(max(max(values), 1)) + 0.3))
    ax.set_ylim(min(-10, 1.5 * min(values)), top)  # linear from -10 to 10, log beyond
    ax.set_title("distance to held-out data")


def _legend(fig: Figure, axes) -> None:
    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=3,
        bbox_to_anchor=(0.5, 0),
    )


def _nfe_figure(test, x, title: str, curves: dict, floor, current: tuple) -> Figure:
    """Samples over the held-out data (left) and the distance-by-NFE curves (right)."""
    fig = Figure(figsize=(TEXT_WIDTH, 4.0))
    left, right = fig.subplots(1, 2, gridspec_kw=LAYOUT)
    _data(left, test)
    _scatter(left, x, color=current[2])
    left.set_title(title)
    _distance_panel(right, curves, floor, current)
    right.set(xlabel="NFE (network evaluations)", ylabel="energy distance ×1000")
    _legend(fig, [left, right])
    return fig


def ddpm_explorer(schedule: dd.Schedule, x0: torch.Tensor, reverse: dict, seed=0):
    r"""The forward marginal and the model's reverse chain at any step t (chapter ddpm).

    The left panel is the forward marginal :math:`q(x_t)`: the points ``x0`` pushed to
    step t in one jump, :math:`\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`,
    with one fixed noise draw :math:`\epsilon` (from its own generator), so that
    every point moves smoothly as t changes. The right panel is one run of the trained
    model's reverse chain, stopped at the same step, from the states kept by
    :func:`vbtutor.diffusion.ddpm_sample` (``keep=range(T + 1)``). Its title gives the
    energy distance (x 1000, :func:`vbtutor.diffusion.energy_distance`) between the two
    panels, which a perfect model would bring to the sampling noise at every t.

    Arguments:
        schedule: the :class:`vbtutor.diffusion.Schedule` of the chain (T steps).
        x0: data points, shape ``(n, 2)``, e.g. held-out data.
        reverse: the reverse chain's states, a dict from every step ``t = 0, ..., T``
            to a tensor of shape ``(m, 2)``.
        seed: seed of the forward noise.

    Returns:
        An :class:`vbtutor.widgets.Explorer` over the step t, an integer from 0 to T
        (precomputed frames at nine steps).

    Chapter: ddpm
    """
    if not isinstance(schedule, dd.Schedule):
        raise ValueError(
            f"schedule must be a vbtutor.diffusion.Schedule, got {type(schedule)}"
        )
    T = schedule.T  # noqa: N806 (the paper's name)
    if T < 2:
        raise ValueError(f"schedule must have T >= 2 steps, got T = {T}")
    x0 = _points("x0", x0)
    if not isinstance(reverse, dict) or set(range(T + 1)) - set(reverse):
        raise ValueError(
            f"reverse must be a dict with the states of every step 0, ..., {T}"
        )
    states = {t: _points("reverse", reverse[t]) for t in range(T + 1)}
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    generator = torch.Generator().manual_seed(seed)
    eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    alpha_bar = schedule.alpha_bar.double()

    def render(t: int) -> Figure:
        scale, sd = alpha_bar[t].sqrt(), (1 - alpha_bar[t]).sqrt()
        forward = scale * x0 + sd * eps
        distance = 1000 * dd.energy_distance(forward, states[t])
        fig = Figure(figsize=(TEXT_WIDTH, 3.9))
        left, right = fig.subplots(1, 2, gridspec_kw={**LAYOUT, "bottom": 0.14})
        _scatter(left, forward)
        _scatter(right, states[t], color="C1")
        left.set_title(f"forward q(xₜ), t = {t}\nxₜ = {scale:.2f} x₀ + {sd:.2f} ε")
        right.set_title(
            f"reverse model, t = {t}\nenergy distance ×1000: {_fmt(distance)}"
        )
        return fig

    frames = [0, 5, 10, 20, 30, 50, 70, 100, T]
    frames = sorted({min(f, T) for f in frames})
    default = 50 if 50 in frames else frames[len(frames) // 2]
    params = [integer("t", 0, T, frames, default=default, label="step t")]
    return Explorer(render, params, title="DDPM forward and reverse chains by step t")


def _mixture_score(mixture: D.MixtureSameFamily, t_min: float):
    """The exact score of the VP-diffused mixture, in closed form.

    At time t every component :math:`\\mathcal N(\\mu_k, \\mathrm{diag}(s_k^2))` becomes
    :math:`\\mathcal N(a\\mu_k, \\mathrm{diag}(a^2 s_k^2 + v))` (see
    :func:`vbtutor.diffusion.diffused_mixture`), and the score is the average of the
    components' scores under their posterior weights, without autograd.
    """
    base = mixture.component_distribution.base_dist
    means, var0 = base.loc.double(), base.scale.double() ** 2
    log_w = mixture.mixture_distribution.logits.double().log_softmax(-1)

    def score(x: torch.Tensor, t: float) -> torch.Tensor:
        a, v = (float(c) for c in vsde.vp_marginal(max(t, t_min)))
        precision = 1 / (a**2 * var0 + v)  # (k, d)
        target = a * means * precision  # (k, d)
        # log N(x; a mu_k, diag(1 / precision_k)) up to a constant, as matrix products
        log_r = (
            log_w
            + 0.5 * precision.log().sum(-1)
            - 0.5 * (x * x) @ precision.T
            + x @ target.T
            - 0.5 * (a * means * target).sum(-1)
        )
        r = log_r.softmax(-1)  # (n, k): the components' posterior weights
        return r @ target - x * (r @ precision)

    return score


def _sampler_inputs(test, noise, floor_sample, points):
    """The checked inputs of a sampler explorer: the test points (float64), the first
    ``points`` rows of ``noise`` (in its own precision), the distance to ``test`` and the
    distance of ``floor_sample`` to it (``None`` without one)."""
    points = _check_points_arg(points)
    test = _points("test", test)
    noise = _points("noise", noise, rows=points)[:points].to(noise.dtype)
    distance_to_test = _distance_to(test)
    floor = None
    if floor_sample is not None:
        floor = distance_to_test(_points("floor_sample", floor_sample))
    return test, noise, distance_to_test, floor


def _check_points_arg(points) -> int:
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be an int >= 2, got {points!r}")
    return points


def sde_explorer(
    mixture: D.MixtureSameFamily,
    test: torch.Tensor,
    noise: torch.Tensor,
    floor_sample: torch.Tensor | None = None,
    points: int = 1000,
    t_min: float = 1e-3,
):
    r"""Samplers of the VP-SDE with the exact score, by sampler and step count (chapter sde).

    Both samplers integrate from :math:`t = 1` down to ``t_min`` on a uniform grid of
    ``steps`` steps (one score evaluation each) with the exact score of the diffused
    Gaussian mixture, in closed form: the reverse SDE by Euler-Maruyama
    (:func:`vbtutor.sde.euler_maruyama`), and the probability-flow ODE
    :math:`\dot x = -\tfrac12\beta(t)[x + \nabla\log p_t(x)]` by Euler's method. The
    left panel shows the samples over the held-out data (grey), started from the
    first ``points`` rows of ``noise`` (draw 0) or from fresh noise ("new draw"); the
    reverse SDE's Brownian increments come from a generator seeded with the draw. The
    right panel shows the energy distance (x 1000) to ``test`` against the number of
    steps for both samplers at draw 0, the distance of ``floor_sample`` to ``test``
    (the sampling floor) and the point of the samples shown.

    Arguments:
        mixture: the data distribution, a ``MixtureSameFamily`` of diagonal Gaussians
            in 2-D (e.g. :func:`vbtutor.diffusion.ring_mixture`).
        test: held-out data, shape ``(m, 2)``.
        noise: starting points at t = 1, shape ``(n, 2)`` with ``n >= points``.
        floor_sample: optional second data sample, shape ``(m', 2)``.
        points: how many samples each sampler draws (fewer are faster).
        t_min: where the samplers stop, in (0, 1).

    Returns:
        An :class:`vbtutor.widgets.Explorer` over the sampler (reverse SDE or
        probability-flow ODE) and the number of steps (5 to 1000, log scale), with a
        "new draw" button.

    Chapter: sde
    """
    if not isinstance(mixture, D.MixtureSameFamily) or not isinstance(
        mixture.component_distribution.base_dist, D.Normal
    ):
        raise ValueError("mixture must be a MixtureSameFamily of diagonal Gaussians")
    if mixture.event_shape != (2,):
        raise ValueError(f"mixture must be 2-D, got event shape {mixture.event_shape}")
    test, noise, distance_to_test, floor = _sampler_inputs(
        test, noise, floor_sample, points
    )
    if not 0 < t_min < 1:
        raise ValueError(f"t_min must lie in (0, 1), got {t_min!r}")
    score = _mixture_score(mixture, t_min)

    drift_sde = vsde.vp_reverse_drift(score)
    drift_ode = vsde.vp_reverse_drift(score, ode=True)

    def diffusion(t):
        return math.sqrt(vsde.vp_beta(t))

    @memo
    def samples(sampler: str, steps: int, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        x = noise
        if seed:
            x = torch.randn(noise.shape, generator=generator, dtype=torch.float64)
        grid = torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)
        if sampler == "SDE":
            return vsde.euler_maruyama(drift_sde, diffusion, x, grid, generator)
        for t, dt in zip(grid[:-1].tolist(), grid.diff().tolist(), strict=True):
            x = x + drift_ode(x, t) * dt
        return x

    @memo
    def distance(sampler: str, steps: int, seed: int) -> float:
        return distance_to_test(samples(sampler, steps, seed))

    colors = dict(zip(SDE_SAMPLERS, ("C0", "C1"), strict=True))
    curves = {
        f"{long_name}, draw 0": (
            SDE_STEPS,
            [distance(name, n, 0) for n in SDE_STEPS],
            colors[name],
        )
        for name, long_name in SDE_SAMPLERS.items()
    }

    def render(sampler: str, steps: int, seed: int) -> Figure:
        x, d = samples(sampler, steps, seed), distance(sampler, steps, seed)
        fig = Figure(figsize=(TEXT_WIDTH, 4.0))
        left, right = fig.subplots(1, 2, gridspec_kw=LAYOUT)
        _data(left, test)
        _scatter(left, x, color=colors[sampler])
        method = "Euler-Maruyama" if sampler == "SDE" else "Euler"
        left.set_title(
            f"{SDE_SAMPLERS[sampler]}: {steps} {method} steps\nenergy distance ×1000: {_fmt(d)}"
        )
        _distance_panel(right, curves, floor, (steps, d, colors[sampler]))
        right.set(xlabel="steps (score evaluations)", ylabel="energy distance ×1000")
        _legend(fig, [left, right])
        return fig

    params = [
        choice("sampler", SDE_SAMPLERS, label="sampler"),
        log_scale("steps", 5, 1000, [5, 10, 20, 100, 1000], default=20, integer=True),
    ]
    return Explorer(
        render, params, title="VP-SDE samplers by sampler and steps", new_draw=True
    )


def fokker_planck_explorer(mixture: VPMixture1D, paths: int = 2000, width: float = 6.0):
    r"""The VP density at time t three ways, by t and grid size (chapter fokker_planck).

    The left panel shows :math:`p_t` in closed form, the finite-difference solution of
    the Fokker-Planck equation on a grid of ``grid`` points over [-``width``,
    ``width``] (:func:`vbtutor.fokker_planck.solve_fokker_planck`, started from
    :math:`p_0`, relative tolerance :math:`10^{-6}`), and a histogram of ``paths``
    Euler-Maruyama paths of the SDE (200 steps per unit of time, from draws of
    :math:`p_0`; "new draw" draws new paths). The
    right panel shows the finite-difference error over the grid, on a log scale.

    Arguments:
        mixture: the data and the SDE, a :class:`vbtutor.fokker_planck.VPMixture1D`.
        paths: number of simulated paths.
        width: half-width of the grid.

    Returns:
        An :class:`~vbtutor.widgets.Explorer` over ``t`` (0.01 to 1) and ``grid`` (41,
        81 or 161 points), with a "new draw" button.
    """
    if not isinstance(mixture, VPMixture1D):
        raise ValueError("mixture must be a vbtutor.fokker_planck.VPMixture1D")
    if not isinstance(paths, int) or paths < 100:
        raise ValueError(f"paths must be an int of at least 100, got {paths!r}")

    def density(x: np.ndarray, t: float) -> np.ndarray:
        return mixture.density(torch.as_tensor(x), torch.tensor(t)).numpy()

    @memo
    def simulated(t: float, seed: int) -> np.ndarray:
        generator = torch.Generator().manual_seed(seed)
        x = mixture.sample(paths, generator).unsqueeze(-1)
        grid = torch.linspace(0.0, t, max(10, round(200 * t)) + 1, dtype=x.dtype)
        noise = vsde.euler_maruyama(
            mixture.drift, lambda s: math.sqrt(mixture.beta(s)), x, grid, generator
        )
        return noise[:, 0].numpy()

    def render(t: float, grid: int, seed: int) -> Figure:
        x = np.linspace(-width, width, grid)
        solved = solve_fokker_planck(
            lambda x, s: mixture.drift(x, s),
            lambda x, s: mixture.diffusion_sq(x, s),
            density(x, 0.0),
            x,
            [0.0, t],
            rtol=1e-6,
            atol=1e-9,
        )[-1]
        fine = np.linspace(-width, width, 801)
        fig = Figure(figsize=(TEXT_WIDTH, 3.4))
        left, right = fig.subplots(1, 2, gridspec_kw=LAYOUT)
        left.hist(
            simulated(t, seed),
            bins=60,
            range=(-width, width),
            density=True,
            color="C0",
            alpha=0.35,
            histtype="stepfilled",  # one patch: faster to draw than 60 bars
            label=f"{paths} SDE paths",
        )
        left.plot(fine, density(fine, t), "k", lw=1.5, label="closed form")
        left.plot(x, solved, "C1--", lw=1.5, label=f"Fokker-Planck, {grid} points")
        left.set(xlabel="x", ylabel="density", title=f"the density at t = {t:.2f}")
        error = np.abs(solved - density(x, t))
        right.semilogy(x, np.maximum(error, 1e-12), "C1", lw=1.2)
        right.set(xlabel="x", ylabel="|finite differences - exact|", ylim=(1e-9, 1))
        right.set_title(f"largest error {error.max():.1e}")
        fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=3)
        return fig

    params = [
        number("t", 0.01, 1.0, [0.02, 0.1, 0.3, 1.0], default=0.1),
        choice("grid", [41, 81, 161], default=81, label="grid points"),
    ]
    return Explorer(render, params, title="Fokker-Planck by t and grid", new_draw=True)


def flow_matching_explorer(
    velocity,
    test: torch.Tensor,
    noise: torch.Tensor,
    floor_sample: torch.Tensor | None = None,
    points: int = 1000,
):
    r"""Flow-matching samples by network evaluations and solver (chapter flow_matching).

    The ODE :math:`\dot x = v_\theta(x, t)` is integrated from the first ``points``
    rows of ``noise`` at t = 0 to t = 1 within a budget of NFE network evaluations.
    Euler's method takes NFE steps (:func:`vbtutor.flow_matching.euler_flow`). Heun's
    method evaluates the network twice per step and takes NFE // 2 steps, at least one
    (:func:`vbtutor.flow_matching.heun_flow`): it uses the even number of evaluations at
    or below NFE (2 for NFE = 1); titles and the marker give the evaluations actually
    used. The left panel shows the samples over the held-out data (grey). The right
    panel shows the energy distance (x 1000) to ``test`` against the evaluations used
    for both solvers, the distance of ``floor_sample`` to ``test`` (the sampling
    floor) and the point of the samples shown.

    Arguments:
        velocity: the trained velocity field ``v(x, t)`` with ``t`` of shape ``(n,)``,
            e.g. a :class:`vbtutor.diffusion.EpsilonNet` trained with
            :func:`vbtutor.flow_matching.cfm_loss`.
        test: held-out data, shape ``(m, 2)``.
        noise: starting points at t = 0, shape ``(n, 2)`` with ``n >= points``, in the
            precision of ``velocity`` (the solvers keep it).
        floor_sample: optional second data sample, shape ``(m', 2)``.
        points: how many samples each solver draws (fewer are faster).

    Returns:
        An :class:`vbtutor.widgets.Explorer` over NFE (1 to 1000, log scale) and the
        solver (Euler or Heun).

    Chapter: flow_matching
    """
    if not callable(velocity):
        raise ValueError(f"velocity must be callable, got {type(velocity).__name__}")
    test, noise, distance_to_test, floor = _sampler_inputs(
        test, noise, floor_sample, points
    )

    def used(solver: str, nfe: int) -> int:
        """The evaluations the solver uses within a budget of ``nfe``."""
        return nfe if solver == "Euler" else 2 * max(1, nfe // 2)

    @memo
    def samples(solver: str, nfe: int) -> torch.Tensor:
        if solver == "Euler":
            return vfm.euler_flow(velocity, noise, nfe)
        return vfm.heun_flow(velocity, noise, nfe // 2)

    @memo
    def distance(solver: str, nfe: int) -> float:
        return distance_to_test(samples(solver, nfe))

    colors = dict(zip(FLOW_SOLVERS, ("C0", "C1"), strict=True))
    curves = {}
    for solver in FLOW_SOLVERS:
        nfes = sorted({used(solver, n) for n in FLOW_NFES})
        curves[solver] = (nfes, [distance(solver, n) for n in nfes], colors[solver])

    def render(nfe: int, solver: str) -> Figure:
        n = used(solver, nfe)
        x, d = samples(solver, n), distance(solver, n)
        steps = n if solver == "Euler" else n // 2
        title = (
            f"{solver}: {steps} step{'s' if steps > 1 else ''}, NFE {n}\n"
            f"energy distance ×1000: {_fmt(d)}"
        )
        return _nfe_figure(test, x, title, curves, floor, (n, d, colors[solver]))

    params = [
        log_scale(
            "nfe",
            1,
            1000,
            [1, 4, 10, 20, 100],
            default=10,
            integer=True,
            label="NFE",
        ),
        choice("solver", FLOW_SOLVERS, label="solver"),
    ]
    return Explorer(render, params, title="flow-matching samples by NFE and solver")


def ddim_explorer(
    net,
    schedule: dd.Schedule,
    test: torch.Tensor,
    noise: torch.Tensor,
    floor_sample: torch.Tensor | None = None,
    points: int = 1000,
    seed: int = 0,
):
    r"""DDIM against strided DDPM sampling by network evaluations (chapter ddpm).

    Both samplers are :func:`vbtutor.diffusion.ddim_sample` with ``n_steps`` = NFE
    evenly spaced steps: with ``eta = 0`` (DDIM, deterministic) and with ``eta = 1``
    (DDPM's ancestral sampling with the forward posterior's variance, strided), from
    the first ``points`` rows of ``noise``; the fresh noise of DDPM comes from a
    generator seeded with ``seed`` at every call. The left panel shows the samples over
    the held-out data (grey); the right panel shows the energy distance (x 1000) to
    ``test`` against NFE for both samplers, the distance of ``floor_sample`` to
    ``test`` and the point of the samples shown.

    Arguments:
        net: the noise predictor ``(x_t, t) -> eps`` with integer steps ``t``.
        schedule: its :class:`vbtutor.diffusion.Schedule` (T steps).
        test: held-out data, shape ``(m, 2)``.
        noise: starting points :math:`x_T`, shape ``(n, 2)`` with ``n >= points``, in
            the precision of ``net``.
        floor_sample: optional second data sample, shape ``(m', 2)``.
        points: how many samples each sampler draws (fewer are faster).
        seed: seed of DDPM's fresh noise.

    Returns:
        An :class:`vbtutor.widgets.Explorer` over NFE (1 to T, log scale) and the
        sampler.

    Chapter: ddpm
    """
    if not callable(net):
        raise ValueError(f"net must be callable, got {type(net).__name__}")
    if not isinstance(schedule, dd.Schedule):
        raise ValueError(
            f"schedule must be a vbtutor.diffusion.Schedule, got {type(schedule)}"
        )
    if schedule.T < 5:
        raise ValueError(f"schedule must have T >= 5 steps, got T = {schedule.T}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    test, noise, distance_to_test, floor = _sampler_inputs(
        test, noise, floor_sample, points
    )

    @memo
    def samples(sampler: str, nfe: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        eta = DDIM_SAMPLERS[sampler]
        return dd.ddim_sample(net, schedule, noise, nfe, eta, generator)

    @memo
    def distance(sampler: str, nfe: int) -> float:
        return distance_to_test(samples(sampler, nfe))

    nfes = sorted({n for n in FLOW_NFES if n < schedule.T} | {schedule.T})
    colors = dict(zip(DDIM_SAMPLERS, ("C0", "C1"), strict=True))
    curves = {
        name: (nfes, [distance(name, n) for n in nfes], colors[name])
        for name in DDIM_SAMPLERS
    }

    def render(nfe: int, sampler: str) -> Figure:
        x, d = samples(sampler, nfe), distance(sampler, nfe)
        eta = DDIM_SAMPLERS[sampler]
        title = f"{sampler} (η = {eta:g}): NFE {nfe}\nenergy distance ×1000: {_fmt(d)}"
        return _nfe_figure(test, x, title, curves, floor, (nfe, d, colors[sampler]))

    frames = sorted({n for n in (2, 5, 10, 20, 50) if n < schedule.T} | {schedule.T})
    params = [
        log_scale(
            "nfe",
            1,
            schedule.T,
            frames,
            default=min(10, schedule.T),
            integer=True,
            label="NFE",
        ),
        choice("sampler", tuple(DDIM_SAMPLERS), label="sampler"),
    ]
    return Explorer(render, params, title="DDIM and DDPM samples by NFE")
