"""Evaluation measures: image sharpness, a Fréchet feature distance, clustering accuracy."""

from __future__ import annotations

import numpy as np
from scipy import linalg, ndimage, optimize
from sklearn.neural_network import MLPClassifier

from ._checks import check_positive_int

__all__ = ["sharpness", "classifier_features", "frechet_distance", "cluster_accuracy"]


def _finite_array(name: str, value) -> np.ndarray:
    """``value`` as a float64 array, after checking it is non-empty and finite."""
    a = np.asarray(value, dtype=np.float64)
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _as_images(x, side: int) -> np.ndarray:
    a = _finite_array("x", x)
    if a.ndim != 2 or a.shape[1] != side * side:
        raise ValueError(f"x must have shape (n, {side * side}), got {a.shape}")
    return a.reshape(-1, side, side)


def sharpness(x, side: int = 8) -> np.ndarray:
    """Mean absolute Laplacian of each image: large for crisp edges, small for blur.

    Arguments:
        x: images as rows, shape ``(n, side * side)``, array or tensor on the CPU.
        side: image width and height.

    Returns:
        Array of shape ``(n,)``. Chapter: vae.

    Example:
        >>> flat, edge = np.zeros((1, 64)), np.eye(8).reshape(1, 64)
        >>> float(sharpness(flat)[0]), bool(sharpness(edge)[0] > 0)
        (0.0, True)
    """
    check_positive_int("side", side)
    images = _as_images(x, side)
    return np.stack(
        [np.abs(ndimage.laplace(im, mode="nearest")).mean() for im in images]
    )


def classifier_features(clf: MLPClassifier, x) -> np.ndarray:
    """Activations of the first hidden layer of a fitted scikit-learn ``MLPClassifier``.

    These play the role of Inception features in the FID: a representation learned to
    tell the classes apart, independent of the models being compared. Chapter: vae.

    Arguments:
        clf: a fitted classifier (ReLU activation).
        x: inputs of shape ``(n, n_features_in_)``.
    """
    if not hasattr(clf, "coefs_") or clf.activation != "relu":
        raise ValueError("clf must be a fitted MLPClassifier with activation='relu'")
    a = _finite_array("x", x)
    if a.ndim != 2 or a.shape[1] != clf.n_features_in_:
        raise ValueError(f"x must have shape (n, {clf.n_features_in_}), got {a.shape}")
    return np.maximum(a @ clf.coefs_[0] + clf.intercepts_[0], 0)


def frechet_distance(a, b) -> float:
    r"""Fréchet distance between Gaussians fitted to two sets of feature vectors.

    :math:`\|\mu_a - \mu_b\|^2 + \mathrm{tr}(\Sigma_a + \Sigma_b - 2(\Sigma_a\Sigma_b)^{1/2})`,
    the formula of the FID (Heusel et al. 2017, arXiv:1706.08500). Chapter: vae.

    Arguments:
        a, b: arrays of shape ``(n_a, d)`` and ``(n_b, d)``, each with at least 2 rows.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(size=(500, 3))
        >>> abs(frechet_distance(a, a)) < 1e-9
        True
    """
    a, b = _finite_array("a", a), _finite_array("b", b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must be (n, d) with the same d, got {a.shape}, {b.shape}"
        )
    if len(a) < 2 or len(b) < 2:
        raise ValueError("a and b need at least 2 rows each")
    # np.cov returns a 0-d array for one feature: keep the (d, d) shape
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    # tr (S_a S_b)^(1/2) = tr (R S_b R)^(1/2) with R = S_a^(1/2): a symmetric PSD root,
    # stable even when a covariance is singular (dead ReLU units give zero variance).
    evals, evecs = linalg.eigh(cov_a)
    root_a = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
    middle = linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    mean_term = np.sum((a.mean(0) - b.mean(0)) ** 2)
    return float(mean_term + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def cluster_accuracy(clusters, labels) -> float:
    """Accuracy of an unsupervised clustering under the best one-to-one label matching.

    Clusters are matched to classes by the Hungarian algorithm
    (``scipy.optimize.linear_sum_assignment``) on the contingency table, as is standard
    for reporting clustering accuracy; clusters left unmatched count as errors.
    Chapter: gmvae.

    Arguments:
        clusters: integer cluster index of each item, shape ``(n,)``; any integers,
            negative ones included (e.g. -1 for the noise points of DBSCAN).
        labels: integer true class of each item, shape ``(n,)``.

    Returns:
        The fraction of items whose matched cluster is their class.

    Example:
        >>> cluster_accuracy([2, 2, 0, 0, 1], [0, 0, 1, 1, 1])
        0.8
    """
    c = np.asarray(clusters)
    y = np.asarray(labels)
    if c.ndim != 1 or y.shape != c.shape or len(c) == 0:
        raise ValueError(
            f"clusters and labels must be non-empty 1-D arrays of the same length, "
            f"got {c.shape} and {y.shape}"
        )
    if not (np.issubdtype(c.dtype, np.integer) and np.issubdtype(y.dtype, np.integer)):
        raise ValueError("clusters and labels must hold integers")
    # any integers (e.g. -1 for noise points) index the table through their ranks
    c = np.unique(c, return_inverse=True)[1]
    y = np.unique(y, return_inverse=True)[1]
    table = np.zeros((c.max() + 1, y.max() + 1))
    np.add.at(table, (c, y), 1)
    rows, cols = optimize.linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(c))
