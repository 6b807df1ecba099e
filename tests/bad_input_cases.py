"""A sweep of bad input over vbtutor's public functions.

Each :class:`Case` is one public call with valid arguments. :func:`variants` derives
bad calls from it, one argument at a time: NaN, +inf and -inf entries, an empty or
mis-shaped tensor, the other float precision, a NumPy array for a tensor, and for
numbers NaN, inf, zero, a negative value, a fraction for a count, and a NumPy scalar.
:func:`outcome` classifies what the call did:

- ``clear``: a ValueError or TypeError whose message names the argument;
- ``opaque``: any other exception, or one that names nothing the caller passed;
- ``silent``: it returned, for input that must be refused;
- ``accepted``: it returned, for input that may be accepted (a NumPy array or integer,
  the other float precision, -inf log-weights), with a finite-or-legitimate result.

``tests/test_bad_input.py`` requires every variant to be ``clear`` or ``accepted``;
``python tests/bad_input_cases.py`` prints the counts per class (run it with
``PYTHONPATH`` pointing at an older checkout's ``src`` to compare).
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import distributions as D

from vbtutor import (
    bounds,
    density_ratio,
    diffusion,
    distributions,
    dpmm,
    flow_matching,
    flows,
    metrics,
    models,
    nn,
    report,
    sde,
    stick_breaking,
)
from vbtutor import fokker_planck as fp

F64 = torch.float64

#: Corruptions that a function must refuse, and those it may accept instead.
#: An empty tensor may give an empty or zero result (a map over no points), not NaN; a
#: shorter last axis ("shape") must be refused unless the case allows it (its size is
#: free when nothing else must match it).
MUST_REFUSE = {"nan", "+inf", "-inf", "shape", "zero", "negative", "fraction"}
MAY_ACCEPT = {"numpy", "other_dtype", "numpy_int", "empty"}


@dataclasses.dataclass
class Case:
    """One valid public call: ``call(**make())``."""

    name: str
    call: Callable[..., Any]
    make: Callable[[], dict]
    #: number arguments that must be positive (a scale, a count): tried at 0 and -1
    positive: tuple[str, ...] = ()
    #: integer arguments: tried as a fraction and as a NumPy integer
    integers: tuple[str, ...] = ()
    #: (argument, corruption) pairs that the function may legitimately accept
    allow: frozenset = frozenset()
    #: tensor arguments whose size is free (nothing else must match it)
    free_shape: tuple[str, ...] = ()
    #: other words that count as naming an argument (attributes, e.g. ``prior.mean``)
    aliases: dict = dataclasses.field(default_factory=dict)


def _lg():
    return models.LinearGaussian.random(3, 2, seed=0).double()


def _lg_args(k=3):
    m = _lg()
    x = m.sample(4)
    return {"model": m, "q": m.posterior(x), "x": x, "k": k}


def _mixture():
    return diffusion.ring_mixture(k=4, dtype=F64)


def _eps_net(x, t):
    return torch.zeros_like(x)


def _velocity(x, t):
    return -x


def _score(x, t):
    return -x


def _dp_prior():
    return dpmm.DPMMPrior(1.0, 1.0, torch.zeros(2, dtype=F64), 2.0)


def _dp_q():
    x = torch.randn(20, 2, dtype=F64)
    resp = dpmm.init_responsibilities(20, 4)
    g1, g2, means, var = dpmm.update_globals(x, resp, _dp_prior())
    return x, dpmm.DPMMPosterior(g1, g2, means, var, resp)


def _schedule():
    return diffusion.linear_schedule(10, dtype=F64)


def _cases() -> list[Case]:
    t = torch.tensor
    lw = lambda: torch.randn(6, 3, dtype=F64)  # noqa: E731
    no_inf_lw = frozenset({("log_w", "-inf")})
    return [
        Case(
            "bounds.log_mean_exp",
            bounds.log_mean_exp,
            lambda: {"log_w": lw()},
            allow=no_inf_lw,
            free_shape=("log_w",),
        ),
        Case(
            "bounds.effective_sample_size",
            bounds.effective_sample_size,
            lambda: {"log_w": lw()},
            allow=no_inf_lw,
            free_shape=("log_w",),
        ),
        Case("bounds.elbo", bounds.elbo, _lg_args, positive=("k",), integers=("k",)),
        Case("bounds.iwae", bounds.iwae, _lg_args, positive=("k",), integers=("k",)),
        Case(
            "bounds.log_weights",
            bounds.log_weights,
            _lg_args,
            positive=("k",),
            integers=("k",),
        ),
        Case(
            "bounds.elbo_split_one",
            bounds.elbo_split_one,
            _lg_args,
            positive=("k",),
            integers=("k",),
        ),
        Case(
            "bounds.naive_log_marginal",
            bounds.naive_log_marginal,
            lambda: {k: v for k, v in _lg_args().items() if k != "q"},
            positive=("k",),
            integers=("k",),
        ),
        Case(
            "bounds.iwae_gap",
            bounds.iwae_gap,
            lambda: {"log_w": lw(), "log_px": t([0.5, 0.5, 0.5], dtype=F64)},
            allow=no_inf_lw,
        ),
        Case(
            "bounds.subset_log_means",
            bounds.subset_log_means,
            lambda: {"log_w": lw(), "m": 2},
            positive=("m",),
            integers=("m",),
            allow=no_inf_lw,
            free_shape=("log_w",),
        ),
        Case(
            "distributions.kl_gaussian",
            distributions.kl_gaussian,
            lambda: {
                "mean1": torch.zeros(2),
                "cov1": torch.eye(2),
                "mean2": torch.ones(2),
                "cov2": 2 * torch.eye(2),
            },
        ),
        Case(
            "distributions.kl_diagonal_gaussian",
            distributions.kl_diagonal_gaussian,
            lambda: {
                "mean1": torch.zeros(2),
                "var1": torch.ones(2),
                "mean2": torch.ones(2),
                "var2": torch.ones(2),
            },
        ),
        Case(
            "distributions.kl_standard_normal",
            distributions.kl_standard_normal,
            lambda: {"mean": torch.zeros(2), "var": torch.ones(2)},
        ),
        Case(
            "distributions.kl_monte_carlo",
            distributions.kl_monte_carlo,
            lambda: {"p": D.Normal(0.0, 1.0), "q": D.Normal(1.0, 2.0), "n": 50},
            positive=("n",),
            integers=("n",),
        ),
        Case(
            "distributions.gaussian_mixture_1d",
            distributions.gaussian_mixture_1d,
            lambda: {
                "weights": t([0.3, 0.7]),
                "means": t([0.0, 1.0]),
                "stds": t([1.0, 0.5]),
            },
        ),
        Case(
            "distributions.kl_quadrature",
            distributions.kl_quadrature,
            lambda: {
                "p": D.Normal(0.0, 1.0),
                "q": D.Normal(1.0, 2.0),
                "x": torch.linspace(-10, 10, 401, dtype=F64),
            },
            free_shape=("x",),
        ),
        Case(
            "dpmm.stick_expectations",
            dpmm.stick_expectations,
            lambda: {
                "gamma1": t([1.0, 2.0], dtype=F64),
                "gamma2": t([2.0, 1.0], dtype=F64),
            },
        ),
        Case(
            "dpmm.expected_weights",
            dpmm.expected_weights,
            lambda: {
                "gamma1": t([1.0, 2.0], dtype=F64),
                "gamma2": t([2.0, 1.0], dtype=F64),
            },
        ),
        Case(
            "dpmm.update_globals",
            dpmm.update_globals,
            lambda: {
                "x": torch.randn(20, 2, dtype=F64),
                "resp": dpmm.init_responsibilities(20, 4),
                "prior": _dp_prior(),
            },
        ),
        Case(
            "dpmm.elbo",
            dpmm.elbo,
            lambda: dict(zip(("x", "q"), _dp_q(), strict=True), prior=_dp_prior()),
        ),
        Case(
            "dpmm.fit_dpmm",
            dpmm.fit_dpmm,
            lambda: {
                "x": torch.randn(20, 2, dtype=F64),
                "truncation": 4,
                "prior": _dp_prior(),
                "max_iter": 5,
            },
            positive=("truncation", "max_iter"),
            integers=("truncation", "max_iter"),
        ),
        Case(
            "dpmm.init_responsibilities",
            dpmm.init_responsibilities,
            lambda: {"n": 10, "truncation": 3},
            positive=("n", "truncation"),
            integers=("n", "truncation"),
        ),
        Case(
            "dpmm.mixture_log_density",
            dpmm.mixture_log_density,
            lambda: {
                "x": torch.randn(5, 2, dtype=F64),
                "weights": t([0.4, 0.6], dtype=F64),
                "means": torch.zeros(2, 2, dtype=F64),
                "covariances": torch.eye(2, dtype=F64).expand(2, 2, 2).clone(),
            },
        ),
        Case(
            "dpmm.n_clusters",
            dpmm.n_clusters,
            lambda: {"weights": t([0.5, 0.5, 0.0])},
            free_shape=("weights",),
        ),
        Case(
            "flows.Affine",
            flows.Affine,
            lambda: {"loc": torch.zeros(2), "scale": t([1.0, 2.0])},
        ),
        Case(
            "flows.planar_u_hat",
            flows.planar_u_hat,
            lambda: {"u": t([1.0, 0.0]), "w": t([0.5, 0.5])},
        ),
        Case(
            "flows.rezende_energy",
            flows.rezende_energy,
            lambda: {"z": torch.randn(5, 2), "which": 1},
        ),
        Case(
            "flows.planar_field_trace",
            flows.planar_field_trace,
            lambda: {
                "z": torch.randn(5, 2),
                "u": t([1.0, 0.0]),
                "w": t([0.5, 0.5]),
                "b": 0.1,
            },
        ),
        Case(
            "flows.leapfrog",
            flows.leapfrog,
            lambda: {
                "q": torch.randn(5, 2),
                "p": torch.randn(5, 2),
                "grad_potential": lambda q: q,
                "step": 0.1,
                "n_steps": 3,
            },
            positive=("step", "n_steps"),
            integers=("n_steps",),
        ),
        Case(
            "flows.AdditiveCoupling",
            flows.AdditiveCoupling,
            lambda: {"mask": t([1.0, 0.0])},
        ),
        Case(
            "diffusion.linear_schedule",
            diffusion.linear_schedule,
            lambda: {"T": 10},
            positive=("T", "beta_start", "beta_end"),
            integers=("T",),
        ),
        Case(
            "diffusion.marginal",
            diffusion.marginal,
            lambda: {
                "schedule": _schedule(),
                "x0": torch.randn(5, 2, dtype=F64),
                "t": 3,
            },
            positive=("t",),
            integers=("t",),
            free_shape=("x0",),
            allow=frozenset({("t", "zero")}),
        ),
        Case(
            "diffusion.q_sample",
            diffusion.q_sample,
            lambda: {
                "schedule": _schedule(),
                "x0": torch.randn(5, 2, dtype=F64),
                "t": 3,
                "noise": torch.randn(5, 2, dtype=F64),
            },
            positive=("t",),
            integers=("t",),
            allow=frozenset({("t", "zero")}),
        ),
        Case(
            "diffusion.posterior",
            diffusion.posterior,
            lambda: {
                "schedule": _schedule(),
                "x0": torch.randn(5, 2, dtype=F64),
                "xt": torch.randn(5, 2, dtype=F64),
                "t": 3,
            },
            positive=("t",),
            integers=("t",),
        ),
        Case(
            "diffusion.mean_from_eps",
            diffusion.mean_from_eps,
            lambda: {
                "schedule": _schedule(),
                "xt": torch.randn(5, 2, dtype=F64),
                "t": 3,
                "eps": torch.randn(5, 2, dtype=F64),
            },
            positive=("t",),
            integers=("t",),
        ),
        Case(
            "diffusion.simple_loss",
            diffusion.simple_loss,
            lambda: {
                "net": _eps_net,
                "schedule": _schedule(),
                "x0": torch.randn(5, 2, dtype=F64),
            },
            free_shape=("x0",),
        ),
        Case(
            "diffusion.ddpm_sample",
            diffusion.ddpm_sample,
            lambda: {"net": _eps_net, "schedule": _schedule(), "n": 4, "dim": 2},
            positive=("n", "dim"),
            integers=("n", "dim"),
        ),
        Case(
            "diffusion.ddim_sample",
            diffusion.ddim_sample,
            lambda: {
                "net": _eps_net,
                "schedule": _schedule(),
                "x": torch.randn(4, 2, dtype=F64),
                "n_steps": 5,
            },
            positive=("n_steps",),
            integers=("n_steps",),
            free_shape=("x",),
        ),
        Case(
            "diffusion.ring_mixture",
            diffusion.ring_mixture,
            lambda: {"k": 4},
            positive=("k", "radius", "std"),
            integers=("k",),
        ),
        Case(
            "diffusion.energy_distance",
            diffusion.energy_distance,
            lambda: {"a": torch.randn(6, 2), "b": torch.randn(7, 2)},
        ),
        Case(
            "sde.vp_marginal",
            sde.vp_marginal,
            lambda: {"t": t([0.1, 0.5], dtype=F64)},
            free_shape=("t",),
        ),
        Case(
            "diffusion.diffused_mixture",
            diffusion.diffused_mixture,
            lambda: {"mixture": _mixture(), "scale": 0.5, "var": 0.75},
            positive=("var",),
            allow=frozenset({("var", "zero")}),
        ),
        Case(
            "flow_matching.straight_path_velocity",
            flow_matching.straight_path_velocity,
            lambda: {
                "mixture": _mixture(),
                "x": torch.randn(5, 2, dtype=F64),
                "t": 0.5,
            },
        ),
        Case(
            "sde.score",
            sde.score,
            lambda: {"dist": _mixture(), "x": torch.randn(5, 2, dtype=F64)},
        ),
        Case(
            "sde.euler_maruyama",
            sde.euler_maruyama,
            lambda: {
                "drift": lambda x, s: -x,
                "diffusion": lambda s: 1.0,
                "x": torch.randn(5, 2, dtype=F64),
                "times": torch.linspace(0, 1, 5, dtype=F64),
            },
            free_shape=(
                "x",
                "times",
            ),
        ),
        Case(
            "sde.langevin_step",
            sde.langevin_step,
            lambda: {"score": _score, "x": torch.randn(5, 2, dtype=F64), "t": 0.5},
            positive=("snr",),
            free_shape=("x",),
            allow=frozenset({("snr", "zero")}),
        ),
        Case(
            "sde.dsm_loss",
            sde.dsm_loss,
            lambda: {"net": _eps_net, "x0": torch.randn(5, 2)},
            free_shape=("x0",),
        ),
        Case(
            "flow_matching.cfm_loss",
            flow_matching.cfm_loss,
            lambda: {"net": _velocity, "x1": torch.randn(5, 2)},
            free_shape=("x1",),
        ),
        Case(
            "flow_matching.euler_flow",
            flow_matching.euler_flow,
            lambda: {"velocity": _velocity, "x": torch.randn(5, 2), "n_steps": 4},
            positive=("n_steps",),
            integers=("n_steps",),
            free_shape=("x",),
        ),
        Case(
            "flow_matching.heun_flow",
            flow_matching.heun_flow,
            lambda: {"velocity": _velocity, "x": torch.randn(5, 2), "n_steps": 4},
            positive=("n_steps",),
            integers=("n_steps",),
            free_shape=("x",),
        ),
        Case(
            "fokker_planck.VPMixture1D",
            fp.VPMixture1D,
            lambda: {"weights": [0.3, 0.7], "means": [-1.0, 1.0], "sds": [0.5, 0.5]},
        ),
        Case(
            "fokker_planck.derivatives",
            fp.derivatives,
            lambda: {
                "fn": lambda x, s: x**2 * s,
                "x": torch.randn(5, dtype=F64),
                "t": torch.full((5,), 0.5, dtype=F64),
            },
        ),
        Case(
            "metrics.frechet_distance",
            metrics.frechet_distance,
            lambda: {"a": np.random.randn(30, 2), "b": np.random.randn(40, 2)},
        ),
        Case(
            "metrics.cluster_accuracy",
            metrics.cluster_accuracy,
            lambda: {"clusters": [0, 0, 1, 1], "labels": [1, 1, 0, 0]},
        ),
        Case(
            "metrics.sharpness", metrics.sharpness, lambda: {"x": np.random.rand(3, 64)}
        ),
        Case(
            "models.LinearGaussian",
            models.LinearGaussian,
            lambda: {"W": torch.randn(3, 2), "b": torch.zeros(3), "sigma": 0.5},
            positive=("sigma",),
            free_shape=("W",),
        ),
        Case(
            "models.ppca_mle",
            models.ppca_mle,
            lambda: {"x": torch.randn(50, 3, dtype=F64), "z_dim": 1},
            positive=("z_dim",),
            integers=("z_dim",),
            free_shape=("x",),
        ),
        Case(
            "models.VAE",
            models.BernoulliVAE,
            lambda: {"x_dim": 4, "z_dim": 2, "hidden": (8,)},
            positive=("x_dim", "z_dim"),
            integers=("x_dim", "z_dim"),
        ),
        Case("nn.MLP", nn.MLP, lambda: {"sizes": (2, 4, 1)}),
        Case(
            "stick_breaking.stick_breaking",
            stick_breaking.stick_breaking,
            lambda: {"v": t([0.5, 0.25])},
            free_shape=("v",),
        ),
        Case(
            "stick_breaking.Kumaraswamy",
            stick_breaking.Kumaraswamy,
            lambda: {"a": t([1.0, 2.0]), "b": t([3.0, 0.5])},
            free_shape=(
                "a",
                "b",
            ),
        ),
        Case(
            "stick_breaking.kl_kumaraswamy_beta",
            stick_breaking.kl_kumaraswamy_beta,
            lambda: {"a": t([1.0, 2.0]), "b": t([3.0, 0.5]), "alpha": 1.0, "beta": 5.0},
            positive=("alpha", "beta", "terms"),
            integers=("terms",),
            free_shape=(
                "a",
                "b",
            ),
        ),
        Case(
            "stick_breaking.gem_mean",
            stick_breaking.gem_mean,
            lambda: {"alpha": 2.0, "truncation": 5},
            positive=("alpha", "truncation"),
            integers=("truncation",),
        ),
        Case(
            "density_ratio.discriminator",
            density_ratio.discriminator,
            lambda: {"log_ratio": torch.randn(5)},
            positive=("nu",),
            free_shape=("log_ratio",),
            allow=frozenset({("log_ratio", "-inf")}),
        ),
        Case(
            "density_ratio.nce_asymptotic_covariance",
            density_ratio.nce_asymptotic_covariance,
            lambda: {
                "grad_log_model": torch.randn(40, 2, dtype=F64),
                "log_ratio": torch.randn(40, dtype=F64),
                "nu": 1.0,
            },
            positive=("nu",),
            free_shape=("grad_log_model",),
        ),
        Case(
            "report.mean_se",
            report.mean_se,
            lambda: {"values": np.array([1.0, 2.0, 4.0])},
            free_shape=("values",),
        ),
        Case("report.pm", report.pm, lambda: {"mean": 1.234, "se": 0.05}),
    ]


def _flip_dtype(value: torch.Tensor) -> torch.Tensor:
    return value.float() if value.dtype == F64 else value.double()


def _tensor_variants(value: torch.Tensor) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if value.is_floating_point() and value.numel():
        for label, bad in (("nan", np.nan), ("+inf", np.inf), ("-inf", -np.inf)):
            v = value.detach().clone()
            v.view(-1)[-1] = bad
            out[label] = v
        out["other_dtype"] = _flip_dtype(value)
    if value.dim() and value.shape[0] > 0:
        out["empty"] = value[:0]
    if value.dim() and value.shape[-1] > 1:
        out["shape"] = value[..., :-1]
    out["numpy"] = value.detach().cpu().numpy()
    return out


def _number_variants(name: str, value: Any, case: Case) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, float) and not isinstance(value, bool):
        out.update({"nan": float("nan"), "+inf": float("inf"), "-inf": float("-inf")})
    if name in case.positive:
        out.update({"zero": 0 * value, "negative": -1 * value - 1})
    if name in case.integers:
        out.update({"fraction": value + 0.5, "numpy_int": np.int64(value)})
    return out


def _defaults(case: Case) -> dict:
    """Keyword defaults named in ``positive`` but not passed in ``make``."""
    params = inspect.signature(case.call).parameters
    given = case.make()
    return {
        n: params[n].default
        for n in case.positive
        if n not in given
        and n in params
        and params[n].default is not inspect.Parameter.empty
    }


def variants(case: Case):
    """Yield (argument, corruption, kwargs) for every bad call derived from ``case``."""
    base = {**_defaults(case), **case.make()}
    for name, value in base.items():
        if isinstance(value, torch.Tensor):
            bad = _tensor_variants(value)
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
            bad = {
                k: v.numpy()
                for k, v in _tensor_variants(torch.from_numpy(value)).items()
                if k not in ("numpy", "other_dtype")
            }
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            bad = _number_variants(name, value, case)
        else:
            continue
        for label, bad_value in bad.items():
            kwargs = {**_defaults(case), **case.make()}
            kwargs[name] = bad_value
            yield name, label, kwargs


def _names_argument(message: str, name: str, case: Case) -> bool:
    words = (name, *case.aliases.get(name, ()))
    return any(re.search(rf"\b{re.escape(w)}\b", message) for w in words)


def _legitimate(result: Any) -> bool:
    """True when a returned value holds no NaN (inf may be the right answer)."""
    tensors = result if isinstance(result, (tuple, list)) else (result,)
    for r in tensors:
        if isinstance(r, torch.Tensor) and r.is_floating_point() and r.isnan().any():
            return False
        if isinstance(r, float) and np.isnan(r):
            return False
    return True


def outcome(case: Case, name: str, label: str, kwargs: dict) -> str:
    """Classify one bad call: clear, opaque, silent or accepted."""
    try:
        with np.errstate(all="ignore"):
            result = case.call(**kwargs)
    except (ValueError, TypeError) as err:
        return "clear" if _names_argument(str(err), name, case) else "opaque"
    except Exception:
        return "opaque"
    allowed = (
        label in MAY_ACCEPT
        or (name, label) in case.allow
        or (label == "shape" and name in case.free_shape)
    )
    return "accepted" if allowed and _legitimate(result) else "silent"


def sweep() -> list[tuple[str, str, str, str]]:
    """Every bad call with its outcome: (case, argument, corruption, outcome)."""
    rows = []
    for case in _cases():
        for name, label, kwargs in variants(case):
            torch.manual_seed(0)
            rows.append((case.name, name, label, outcome(case, name, label, kwargs)))
    return rows


CASES = _cases()

if __name__ == "__main__":
    rows = sweep()
    counts = collections.Counter(r[3] for r in rows)
    print(f"{len(CASES)} functions, {len(rows)} bad calls: {dict(counts)}")
    by_label = collections.defaultdict(collections.Counter)
    for _, _, label, result in rows:
        by_label[label][result] += 1
    for label, c in sorted(by_label.items()):
        print(f"  {label:12s} {dict(c)}")
    if "-v" in sys.argv:
        for r in rows:
            if r[3] in ("opaque", "silent"):
                print("   ", *r)
