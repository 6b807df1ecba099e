"""Data sets that need no network: scikit-learn's binarised 8x8 digits."""

from __future__ import annotations

from typing import NamedTuple

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

__all__ = ["Split", "binary_digits"]


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
    if not 0 < test_size < 1:
        raise ValueError(
            f"test_size must be strictly between 0 and 1, got {test_size!r}"
        )
    digits = load_digits()
    x = (digits.data >= 8).astype("float64")
    parts = train_test_split(
        x, digits.target, test_size=test_size, random_state=seed, stratify=digits.target
    )
    x_tr, x_te, y_tr, y_te = parts
    as_x = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.long, device=device)  # noqa: E731
    return Split(as_x(x_tr), as_x(x_te), as_y(y_tr), as_y(y_te))
