"""The unit of ``gamma`` on fixed features.

γ‖v‖² acts on the weights of 10·z, z = (x − x̄)/s the rows centered and
scaled to unit root-mean-square norm: a value means the same whatever the
scale of X, and the papers' values (0.001 … 0.02) keep every cluster and
beat K-means.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler, normalize

from skentropy import (
    CollisionCEClustering,
    EntropyClustering,
    MaxMarginEntropyClustering,
)
from skentropy._estimators._heads import MARGIN_REFERENCE_SQUARED_NORM, LinearHead
from skentropy.metrics import clustering_accuracy


def test_margin_acts_on_the_rows_at_mean_squared_norm_100():
    """On fixed features γ‖·‖² sees W/10, the weights of 10·z; in deep mode W."""
    head = LinearHead(n_features=6, n_clusters=3)
    head.reset_parameters(np.eye(3, 6))
    assert torch.equal(head.margin_weight, head.weight)  # not standardized
    head.standardize(np.zeros(6), 2.0)
    torch.testing.assert_close(head.margin_weight, head.weight / 10)
    assert MARGIN_REFERENCE_SQUARED_NORM == 100.0


@pytest.fixture(scope="module")
def kmeans_accuracy(digits):
    X, y = digits
    return clustering_accuracy(y, KMeans(10, n_init=10, random_state=0).fit(X).labels_)


@pytest.mark.slow
@pytest.mark.parametrize("gamma", [0.001, 0.009, 0.02])
def test_papers_gamma_keeps_every_cluster_and_beats_kmeans(
    gamma, digits, kmeans_accuracy
):
    """``EntropyClustering(n_clusters=10, gamma=0.02).fit(X)``, as users call it.

    The papers' values for fixed features (0.001 MNIST, 0.009 CIFAR-100,
    0.02 CIFAR-10 and STL-10) use all 10 clusters on standardized digits,
    without a warning, and beat K-means (accuracy 0.59 there).
    """
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        labels = (
            EntropyClustering(n_clusters=10, gamma=gamma, random_state=0).fit(X).labels_
        )
    assert len(np.unique(labels)) == 10
    assert clustering_accuracy(y, labels) >= kmeans_accuracy


def degenerate_warnings(caught):
    """The collapse warnings among caught warnings (not max_iter's)."""
    return [
        str(w.message)
        for w in caught
        if "hold no training" in str(w.message) or "nearly uniform" in str(w.message)
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "Estimator", [CollisionCEClustering, MaxMarginEntropyClustering]
)
def test_papers_gamma_keeps_every_cluster_for_every_loss(Estimator, digits):
    X, _ = digits
    for gamma in (0.001, 0.02):
        estimator = Estimator(10, gamma=gamma, n_heads=1, max_iter=60, random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            labels = estimator.fit(X).labels_
        assert len(np.unique(labels)) == 10
        assert not degenerate_warnings(caught)


@pytest.mark.parametrize("prep", ["raw", "std", "l2"])
def test_same_labels_for_x_scaled_by_a_thousand(prep):
    X = load_digits().data
    X = {"raw": X, "std": StandardScaler().fit_transform(X), "l2": normalize(X)}[prep]
    params = {"n_clusters": 10, "n_heads": 2, "max_iter": 20, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = [
            EntropyClustering(**params).fit(factor * X).labels_
            for factor in (1.0, 1e-3, 1e3)
        ]
    assert adjusted_rand_score(labels[0], labels[1]) == 1.0
    assert adjusted_rand_score(labels[0], labels[2]) == 1.0


def test_collapse_warning_names_gamma_and_a_smaller_value():
    X, _ = make_blobs(600, n_features=20, centers=5, random_state=0)
    estimator = EntropyClustering(n_clusters=5, gamma=1e4, max_iter=15, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"gamma=10000 .*try gamma=1000"):
        estimator.fit(X)
