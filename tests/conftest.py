"""Shared helpers for the vbtutor test suite: error matching, Monte Carlo tolerances, models."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")  # headless: widgets render figures to PNG

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import distributions as D  # noqa: E402

from vbtutor.models import LinearGaussian  # noqa: E402
from vbtutor.report import mean_se  # noqa: E402

#: Monte Carlo checks accept |estimate - exact| < N_SE standard errors.
N_SE = 4.0


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One torch thread, the chapters' run policy (vbtutor.setup): small ops stay fast,
    and results do not depend on the machine's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seeded_and_tidy():
    """Seed torch's global stream (the estimators draw from it) and close stray figures."""
    torch.manual_seed(0)
    yield
    plt.close("all")


def raises_naming(argument: str):
    """``pytest.raises(ValueError)`` whose message names ``argument`` as a whole word."""
    return pytest.raises(ValueError, match=rf"(?<![\w.]){re.escape(argument)}(?!\w)")


def to_numpy(a) -> np.ndarray:
    """A float64 NumPy copy of a tensor (detached) or array-like."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        return a.numpy().astype(np.float64) if a.is_floating_point() else a.numpy()
    return np.asarray(a, dtype=np.float64)


def mean_and_se(samples, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and its standard error (sd / sqrt(n)) along ``axis``, as arrays.

    :func:`vbtutor.report.mean_se`, itself checked against ``scipy.stats.sem``."""
    mean, se = mean_se(to_numpy(samples), axis)
    return np.asarray(mean), np.asarray(se)


def assert_within_se(estimate, exact, se, n_se: float = N_SE) -> None:
    """Assert |estimate - exact| < n_se * se elementwise (and that se is positive and finite)."""
    estimate, exact, se = to_numpy(estimate), to_numpy(exact), to_numpy(se)
    assert np.all(np.isfinite(se)) and np.all(se > 0), f"bad standard error {se}"
    z = np.abs(estimate - exact) / se
    assert np.all(z < n_se), (
        f"estimate {estimate} vs exact {exact}: {z} standard errors away"
    )


def make_model(
    x_dim: int = 3, z_dim: int = 2, sigma: float = 0.6, seed: int = 2
) -> LinearGaussian:
    """A float64 linear-Gaussian model with standard-normal W and b."""
    return LinearGaussian.random(x_dim=x_dim, z_dim=z_dim, sigma=sigma, seed=seed)


def draw_x(model: LinearGaussian, n: int, seed: int = 1) -> torch.Tensor:
    """``n`` observations from the model, from their own generator."""
    return model.sample(n, torch.Generator().manual_seed(seed))


def diag_gaussian(mean: torch.Tensor, std: torch.Tensor) -> D.Distribution:
    """A diagonal Gaussian over the last dimension (batch shape ``mean.shape[:-1]``)."""
    return D.Independent(D.Normal(mean, std), 1)


def as_mvn(q: D.Distribution) -> D.MultivariateNormal:
    """The same diagonal Gaussian as a MultivariateNormal (so that KLs to full Gaussians exist)."""
    if isinstance(q, D.MultivariateNormal):
        return q
    cov = torch.diag_embed(q.base_dist.scale**2)
    return D.MultivariateNormal(q.base_dist.loc, covariance_matrix=cov)


def poor_proposal(
    model: LinearGaussian, x: torch.Tensor, shift: float = 1.0, widen: float = 1.5
):
    """A diagonal Gaussian q(z|x) that misses the exact posterior: shifted mean, wider spread."""
    post = model.posterior(x)
    std = post.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()
    return diag_gaussian((post.mean + shift).detach(), (widen * std).detach())


def assert_live(explorer, **values):
    """Move the controls to ``values`` and check that the figure was recomputed for them.

    Every slider must be moved off its HTML frames (a choice has only frames); ``seed``,
    a new draw, is never a frame. The figure shown must be a fresh render for exactly
    these values, and differ from the one shown before.
    """
    before = explorer.image.value
    for param in explorer.params:
        if param.kind != "choice":
            assert values[param.name] not in param.frames, f"{param.name} is a frame"
    moved = any(p.kind != "choice" for p in explorer.params) or values.get("seed", 0)
    assert moved, "nothing moved off the frames: give a slider value or a seed"
    explorer.set(**values)
    assert explorer.image.value == explorer.fresh_png(**values) != before


@pytest.fixture
def double_default():
    """float64 as torch's default dtype (for references built from Python floats)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


def flat_parameters(net: torch.nn.Module) -> torch.Tensor:
    """All of a network's parameters, detached, in one flat vector."""
    return torch.cat([p.detach().flatten() for p in net.parameters()])
