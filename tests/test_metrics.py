"""Tests for vbtutor.metrics: sharpness, classifier features, the Fréchet distance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import raises_naming
from scipy import linalg, ndimage
from sklearn.neural_network import MLPClassifier

from vbtutor.metrics import (
    classifier_features,
    cluster_accuracy,
    frechet_distance,
    sharpness,
)


def test_frechet_distance_between_gaussians_matches_the_closed_form():
    """Replicated plug-in estimates average to the exact distance between two Gaussians.

    The tolerance is 4 standard errors of the replicate mean plus the plug-in bias of
    the mean term, (tr C1 + tr C2) / n, which is exact for the squared mean difference.
    """
    rng = np.random.default_rng(0)
    m1, m2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.0, -1.0])
    a_ = rng.normal(size=(3, 3))
    c1, c2 = a_ @ a_.T + np.eye(3), np.diag([1.0, 2.0, 0.5])
    exact = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    n, reps = 5_000, 40
    values = [
        frechet_distance(
            rng.multivariate_normal(m1, c1, size=n),
            rng.multivariate_normal(m2, c2, size=n),
        )
        for _ in range(reps)
    ]
    se = np.std(values, ddof=1) / np.sqrt(reps)
    bias = (np.trace(c1) + np.trace(c2)) / n
    assert abs(np.mean(values) - exact) < 4 * se + bias


def test_frechet_distance_is_symmetric_and_zero_on_itself():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 4)), rng.normal(1.0, 2.0, size=(200, 4))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert abs(frechet_distance(a, a)) < 1e-9


def test_frechet_distance_handles_singular_covariances():
    """A feature that never varies (a dead ReLU unit) must not break the distance."""
    rng = np.random.default_rng(2)
    a = np.column_stack([rng.normal(size=500), np.zeros(500)])
    b = np.column_stack([rng.normal(2.0, 1.0, size=500), np.zeros(500)])
    expected = (a[:, 0].mean() - b[:, 0].mean()) ** 2 + (
        a[:, 0].std(ddof=1) - b[:, 0].std(ddof=1)
    ) ** 2  # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_sharpness_is_the_mean_absolute_laplacian():
    rng = np.random.default_rng(3)
    images = rng.random((4, 64))
    expected = [
        np.abs(ndimage.laplace(im.reshape(8, 8), mode="nearest")).mean()
        for im in images
    ]
    np.testing.assert_allclose(sharpness(images), expected)
    blurred = ndimage.uniform_filter(images.reshape(4, 8, 8), size=(1, 3, 3)).reshape(
        4, 64
    )
    assert np.all(sharpness(blurred) < sharpness(images))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_classifier_features_are_the_first_hidden_layer():
    rng = np.random.default_rng(4)
    x, y = rng.random((60, 5)), rng.integers(0, 2, 60)
    clf = MLPClassifier((7,), max_iter=50, random_state=0).fit(x, y)
    features = classifier_features(clf, x)
    assert features.shape == (60, 7) and features.min() >= 0
    # the network's output layer applied to these features reproduces its predictions
    logits = features @ clf.coefs_[1] + clf.intercepts_[1]
    np.testing.assert_array_equal((logits[:, 0] > 0).astype(int), clf.predict(x))


@pytest.mark.parametrize("bad", [np.zeros((3, 63)), np.zeros(64)])
def test_sharpness_rejects_images_of_the_wrong_size(bad):
    with raises_naming("x"):
        sharpness(bad)


def test_frechet_distance_rejects_mismatched_features():
    with raises_naming("a"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with raises_naming("a"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_classifier_features_reject_unfitted_or_wrong_inputs():
    with raises_naming("clf"):
        classifier_features(MLPClassifier(), np.zeros((2, 5)))
    rng = np.random.default_rng(5)
    clf = MLPClassifier((3,), max_iter=20, random_state=0).fit(
        rng.random((20, 5)), [0, 1] * 10
    )
    with raises_naming("x"):
        classifier_features(clf, np.zeros((2, 4)))


def test_cluster_accuracy_is_invariant_to_relabelling_and_matches_brute_force():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, 200)
    clusters = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 4, 200))
    perm = np.array([2, 0, 3, 1])
    # brute force over all 24 matchings
    best = max(
        np.mean(np.array(p)[clusters] == labels)
        for p in itertools.permutations(range(4))
    )
    assert cluster_accuracy(clusters, labels) == pytest.approx(best)
    assert cluster_accuracy(perm[clusters], labels) == pytest.approx(best)


def test_frechet_distance_of_one_feature_is_the_gaussian_formula():
    # issue 16, D2: np.cov gives a 0-d array for d = 1, and scipy failed on it
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.0, 1.0, (50, 1)), rng.normal(0.5, 2.0, (60, 1))
    sa, sb = a.std(ddof=1), b.std(ddof=1)
    expected = (a.mean() - b.mean()) ** 2 + (sa - sb) ** 2  # 1-D: (s_a - s_b)^2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)


def test_cluster_accuracy_takes_negative_labels_as_labels():
    # issue 16, D3: -1 (DBSCAN's noise) used to wrap around as an index and give 1.0
    assert cluster_accuracy([-1, 1, 0, 0], [0, 0, 1, 1]) == pytest.approx(0.75)
    shifted = cluster_accuracy(np.array([5, 5, 0, 0, 1]) - 3, [0, 0, 1, 1, 1])
    assert shifted == pytest.approx(cluster_accuracy([2, 2, 0, 0, 1], [0, 0, 1, 1, 1]))


def test_cluster_accuracy_counts_surplus_clusters_as_errors():
    assert cluster_accuracy([0, 1, 2, 3], [0, 0, 1, 1]) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "clusters, labels", [([0, 1], [0]), ([], []), ([0.5, 1.0], [0, 1])]
)
def test_cluster_accuracy_rejects_bad_input(clusters, labels):
    with raises_naming("clusters"):
        cluster_accuracy(clusters, labels)
