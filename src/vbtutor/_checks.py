"""Input checks shared by the vbtutor modules: each raises ValueError naming the argument."""

from __future__ import annotations

import numbers

import torch

__all__ = ["check_tensor", "check_positive_int", "check_positive"]


def check_tensor(
    name: str,
    value,
    dim: int | None = None,
    min_dim: int | None = None,
    allow_neg_inf: bool = False,
    allow_empty: bool = False,
):
    """Return ``value`` after checking it is a non-empty tensor of the given rank, with no
    NaN or inf.

    ``allow_neg_inf`` lets -inf through, for log-weights and log-densities, where it
    stands for a zero weight or density; ``allow_empty`` lets an empty tensor through,
    where no entries is a valid case (a truncation with no sticks to break)."""
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
    if value.numel() == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {tuple(value.shape)})")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        if bool(torch.isnan(value).any()):
            raise ValueError(f"{name} contains NaN")
        if not allow_neg_inf:
            raise ValueError(f"{name} contains inf; it must be finite")
        if bool((value == float("inf")).any()):
            raise ValueError(f"{name} contains +inf")
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
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
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
    integers = all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in seeds
    )
    if not seeds or not integers or min(seeds) < 0:
        raise ValueError(
            f"seeds must be non-negative ints, at least one, got {seeds!r}"
        )
    return [int(s) for s in seeds]


def check_broadcastable(
    name: str, value: torch.Tensor, ref_name: str, ref: torch.Tensor
) -> None:
    """Check that ``value`` and ``ref`` broadcast and share their last (event) axis."""
    try:
        torch.broadcast_shapes(value.shape, ref.shape)
    except RuntimeError:
        ok = False
    else:
        ok = value.shape[-1:] == ref.shape[-1:]
    if not ok:
        raise ValueError(
            f"{name} {tuple(value.shape)} must broadcast with {ref_name} "
            f"{tuple(ref.shape)} and have the same last dimension"
        )


def check_same_dtype(
    name: str, value: torch.Tensor, ref_name: str, ref: torch.Tensor
) -> None:
    """Check that ``value`` has the dtype of ``ref``; the message names both arguments."""
    if value.dtype != ref.dtype:
        raise ValueError(
            f"{name} has dtype {value.dtype} but {ref_name} has {ref.dtype}; "
            "convert one with .to()"
        )


def check_finite(name: str, value) -> None:
    """Check that a number or every entry of a tensor is finite (no NaN, no inf)."""
    if not bool(torch.isfinite(torch.as_tensor(value).detach()).all()):
        raise ValueError(f"{name} must be finite, got {value!r}")


def check_event_shape(dist: torch.distributions.Distribution, x: torch.Tensor) -> None:
    """Check that the trailing axes of ``x`` are ``dist``'s event shape."""
    event = dist.event_shape
    if event and x.shape[-len(event) :] != event:
        raise ValueError(
            f"x must end in the distribution's event shape {tuple(event)}, "
            f"got shape {tuple(x.shape)}"
        )
