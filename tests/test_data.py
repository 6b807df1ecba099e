"""Tests for vbtutor.data: the binarised digits split."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import raises_naming
from sklearn.datasets import load_digits

from vbtutor.data import Split, binary_digits, grey_digits


@pytest.fixture(scope="module")
def digits():
    raw = load_digits()
    return raw.images.reshape(len(raw.images), -1), raw.target


@pytest.fixture(scope="module")
def split():
    return binary_digits()


def _rows(x: torch.Tensor, y: torch.Tensor) -> Counter:
    return Counter(
        (tuple(row), label)
        for row, label in zip(x.int().tolist(), y.tolist(), strict=True)
    )


def test_shapes_and_types(split, digits):
    assert isinstance(split, Split)
    n = len(digits[1])
    n_test = math.ceil(0.2 * n)
    assert split.x_train.shape == (n - n_test, 64) and split.x_test.shape == (
        n_test,
        64,
    )
    assert split.y_train.shape == (n - n_test,) and split.y_test.shape == (n_test,)
    assert split.x_train.dtype == torch.float32 and split.y_train.dtype == torch.long


def test_pixels_are_binary_and_labels_are_digits(split):
    for x in (split.x_train, split.x_test):
        assert set(x.unique().tolist()) == {0.0, 1.0}
    for y in (split.y_train, split.y_test):
        assert set(y.unique().tolist()) == set(range(10))


def test_split_is_a_partition_of_the_thresholded_digits(split, digits):
    """Train and test together are the data set, each image once: disjoint and complete."""
    images, labels = digits
    binary = torch.as_tensor(images >= 8)  # half of the 0..16 intensity range
    everything = _rows(binary, torch.as_tensor(labels))
    parts = _rows(split.x_train, split.y_train) + _rows(split.x_test, split.y_test)
    assert parts == everything


@pytest.mark.parametrize("test_size", [0.2, 0.5, 0.05])
def test_split_is_stratified_by_digit(digits, test_size):
    split = binary_digits(test_size=test_size)
    counts = np.bincount(digits[1], minlength=10)
    test_counts = np.bincount(split.y_test.numpy(), minlength=10)
    assert (test_counts > 0).all()  # every digit in the test set
    # Stratification keeps each digit's share: at most one image off its exact quota.
    assert np.abs(test_counts - test_size * counts).max() <= 1


def test_same_seed_same_split_other_seed_other_split(split):
    again = binary_digits(seed=0)
    other = binary_digits(seed=1)
    for a, b in zip(split, again, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(split.y_test, other.y_test)


def test_dtype_and_device_are_honoured():
    split = binary_digits(dtype=torch.float64, device="cpu")
    assert split.x_test.dtype == torch.float64 and split.y_test.dtype == torch.long
    assert all(t.device.type == "cpu" for t in split)


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_test_size_must_be_a_fraction(test_size):
    with raises_naming("test_size"):
        binary_digits(test_size=test_size)


def test_grey_digits_are_the_same_split_scaled(digits, split):
    grey = grey_digits()
    pixels, labels = digits
    assert torch.equal(grey.y_train, split.y_train)
    assert torch.equal(grey.y_test, split.y_test)
    # thresholding the grey images at 8/16 gives back the binary ones
    assert torch.equal((grey.x_train >= 0.5).float(), split.x_train)
    levels = set((grey.x_train * 16).round().int().unique().tolist())
    assert levels <= set(range(17)) and float(grey.x_train.max()) == 1.0
    assert Counter(grey.y_test.tolist()) == Counter(split.y_test.tolist())


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.5])
def test_grey_digits_reject_bad_test_size(test_size):
    with raises_naming("test_size"):
        grey_digits(test_size=test_size)


@pytest.mark.parametrize("load", [binary_digits, grey_digits])
def test_digits_reject_an_integer_dtype(load):
    # issue 16: grey levels in [0, 1] cast to int64 became zeros and ones
    with raises_naming("dtype"):
        load(dtype=torch.int64)
