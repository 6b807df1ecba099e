"""vbtutor: the companion package of the book *Variational Bayes, checked*."""

from . import (
    adversarial,
    bounds,
    data,
    density_ratio,
    diffusion,
    distributions,
    dpmm,
    explorers,
    flows,
    fokker_planck,
    metrics,
    models,
    nn,
    plotting,
    report,
    stick_breaking,
    train,
    widgets,
)
from .report import glue
from .train import choose, full_mode, get_device, seed_everything, setup

__all__ = [
    "adversarial",
    "bounds",
    "data",
    "density_ratio",
    "diffusion",
    "distributions",
    "dpmm",
    "explorers",
    "flows",
    "fokker_planck",
    "metrics",
    "models",
    "nn",
    "plotting",
    "report",
    "stick_breaking",
    "train",
    "widgets",
    "glue",
    "choose",
    "full_mode",
    "get_device",
    "seed_everything",
    "setup",
]
__version__ = "0.1.0"
