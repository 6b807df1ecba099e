"""Data sets that need no network: scikit-learn's 8x8 digits, binarised or grey."""

from __future__ import annotations

from typing import NamedTuple

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

__all__ = ["Split", "binary_digits", "grey_digits"]


class Split(NamedTuple):
    """A train/test split of images ``x`` (rows) and labels ``y``."""

    x_train: torch.Tensor
    x_test: torch.Tensor
    y_train: torch.Tensor
    y_test: torch.Tensor


def binary_digits(
    test_size: float = 0.2,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Split:
    """scikit-learn's 1,797 handwritten 8x8 digits, binarised at half intensity (>= 8 of 16).

    The threshold is deterministic, so the data are the same on every machine; the split is
    stratified by digit and fixed by ``seed``.

    Arguments:
        test_size: fraction of images held out, strictly between 0 and 1.
        seed: seed of the split.
        device: where to put the tensors.
        dtype: floating dtype of the images.

    Returns:
        :class:`Split` with ``x_*`` of shape ``(n, 64)`` in {0, 1} and integer labels ``y_*``.

    Example:
        >>> d = binary_digits()
        >>> tuple(d.x_train.shape), tuple(d.x_test.shape), sorted(d.x_train.unique().tolist())
        ((1437, 64), (360, 64), [0.0, 1.0])
    """
    return _digits(lambda pixels: pixels >= 8, test_size, seed, device, dtype)


def grey_digits(
    test_size: float = 0.2,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Split:
    """The same digits and split as :func:`binary_digits`, with intensities scaled to [0, 1].

    Each pixel takes one of the 17 values k/16. Chapter: vae (Gaussian decoder, VAE-GAN).

    Arguments:
        test_size, seed, device, dtype: as in :func:`binary_digits`.

    Example:
        >>> d = grey_digits()
        >>> tuple(d.x_test.shape), d.x_train.min().item(), d.x_train.max().item()
        ((360, 64), 0.0, 1.0)
    """
    return _digits(lambda pixels: pixels / 16, test_size, seed, device, dtype)


def _digits(transform, test_size, seed, device, dtype) -> Split:
    if not 0 < test_size < 1:
        raise ValueError(
            f"test_size must be strictly between 0 and 1, got {test_size!r}"
        )
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    digits = load_digits()
    x = transform(digits.data).astype("float64")
    parts = train_test_split(
        x, digits.target, test_size=test_size, random_state=seed, stratify=digits.target
    )
    x_tr, x_te, y_tr, y_te = parts
    as_x = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.long, device=device)  # noqa: E731
    return Split(as_x(x_tr), as_x(x_te), as_y(y_tr), as_y(y_te))
