"""Input checks shared by the vbtutor modules: each raises ValueError naming the argument."""

from __future__ import annotations

import numbers

import torch

__all__ = ["check_tensor", "check_positive_int", "check_positive"]


def check_tensor(name: str, value, dim: int | None = None, min_dim: int | None = None):
    """Return ``value`` as a tensor after checking its rank and that it holds no NaN."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if dim is not None and value.dim() != dim:
        raise ValueError(
            f"{name} must have {dim} dimensions, got shape {tuple(value.shape)}"
        )
    if min_dim is not None and value.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimensions, got shape {tuple(value.shape)}"
        )
    if value.is_floating_point() and torch.isnan(value).any():
        raise ValueError(f"{name} contains NaN")
    return value


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an int after checking it is an integer of at least 1.

    NumPy integers count as integers; ``bool`` does not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def check_positive(name: str, value) -> None:
    """Check that a number or every entry of a tensor is finite and strictly positive."""
    t = torch.as_tensor(value)
    if (
        torch.isnan(t).any()
        or not bool((t > 0).all())
        or not bool(torch.isfinite(t).all())
    ):
        raise ValueError(f"{name} must be finite and positive, got {value!r}")


def check_same_shape(
    name: str, value: torch.Tensor, ref_name: str, ref: torch.Tensor
) -> None:
    """Check that ``value`` has the shape of ``ref``; the message names both arguments."""
    if value.shape != ref.shape:
        raise ValueError(
            f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, "
            f"got {tuple(value.shape)}"
        )


def check_seeds(seeds) -> list[int]:
    """Return ``seeds`` as a list after checking it holds at least one int >= 0."""
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ValueError(
            f"seeds must be non-negative ints, at least one, got {seeds!r}"
        )
    return seeds
