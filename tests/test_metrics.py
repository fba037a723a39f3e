"""Tests for skentropy.metrics."""

import doctest
import itertools

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV

import skentropy.metrics
from skentropy.metrics import (
    clustering_accuracy,
    clustering_accuracy_scorer,
    stability_score,
)


def brute_force_accuracy(labels_true, labels_pred):
    """Best accuracy over every injective map between clusters and classes."""
    classes = np.unique(labels_true)
    clusters = np.unique(labels_pred)
    best = 0
    if len(clusters) <= len(classes):
        maps = (
            dict(zip(clusters, image, strict=True))
            for image in itertools.permutations(classes, len(clusters))
        )
    else:
        maps = (
            dict(zip(preimage, classes, strict=True))
            for preimage in itertools.permutations(clusters, len(classes))
        )
    for mapping in maps:
        hits = sum(
            mapping.get(p) == t for t, p in zip(labels_true, labels_pred, strict=True)
        )
        best = max(best, hits)
    return best / len(labels_true)


def test_known_values():
    assert clustering_accuracy([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert clustering_accuracy([0, 0, 1, 1], [0, 0, 0, 1]) == 0.75
    assert clustering_accuracy([0, 1, 2, 3], [0, 0, 0, 0]) == 0.25
    # 3 classes, 2 clusters: the best map gets 2 + 2 of 6 samples right.
    assert clustering_accuracy([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1]) == pytest.approx(
        4 / 6
    )
    # 2 classes, 4 clusters: only two clusters can be matched.
    assert clustering_accuracy([0, 0, 0, 1, 1, 1], [0, 0, 1, 2, 2, 3]) == pytest.approx(
        4 / 6
    )


def test_greedy_matching_would_be_wrong():
    # Greedy (largest entry first) maps cluster 0 -> class 0 (3 hits) and then
    # cluster 1 -> class 1 (0 hits): 3/7. The optimum maps 0 -> 1, 1 -> 0: 4/7.
    labels_true = [0, 0, 0, 1, 1, 0, 0]
    labels_pred = [0, 0, 0, 0, 0, 1, 1]
    assert clustering_accuracy(labels_true, labels_pred) == pytest.approx(4 / 7)


def test_returns_python_float():
    assert type(clustering_accuracy([0, 1], [1, 0])) is float


@pytest.mark.parametrize("seed", range(5))
def test_permutation_invariance(seed):
    rng = np.random.default_rng(seed)
    labels_true = rng.integers(0, 4, size=60)
    labels_pred = rng.integers(0, 5, size=60)
    renamed = rng.permutation(5)[labels_pred]
    expected = clustering_accuracy(labels_true, labels_pred)
    assert clustering_accuracy(labels_true, renamed) == pytest.approx(expected)
    assert clustering_accuracy(labels_pred, labels_true) == pytest.approx(expected)


def test_arbitrary_label_types():
    labels_true = np.array(["cat", "cat", "dog", "dog", "eel"])
    labels_pred = np.array([7, 7, -1, 3, 3])
    assert clustering_accuracy(labels_true, labels_pred) == pytest.approx(4 / 5)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize(("n_classes", "n_clusters"), [(3, 3), (4, 2), (2, 5), (5, 5)])
def test_matches_brute_force(seed, n_classes, n_clusters):
    rng = np.random.default_rng(seed)
    labels_true = rng.integers(0, n_classes, size=25)
    # Correlated with the truth so that the optimum is not trivial.
    labels_pred = np.where(
        rng.random(25) < 0.6,
        labels_true % n_clusters,
        rng.integers(0, n_clusters, size=25),
    )
    assert clustering_accuracy(labels_true, labels_pred) == pytest.approx(
        brute_force_accuracy(labels_true, labels_pred)
    )


@pytest.mark.parametrize(
    ("labels_true", "labels_pred", "match"),
    [
        ([0, 1, 1], [0, 1], "same length"),
        ([], [], "empty"),
        ([[0, 1], [1, 0]], [0, 1], "labels_true must be 1-D"),
        ([0, 1], [[0], [1]], "labels_pred must be 1-D"),
        (0, 0, "labels_true must be 1-D"),
    ],
)
def test_invalid_input(labels_true, labels_pred, match):
    with pytest.raises(ValueError, match=match):
        clustering_accuracy(labels_true, labels_pred)


def test_scorer_in_grid_search_finds_true_number_of_clusters():
    X, y = make_blobs(n_samples=150, centers=3, cluster_std=0.8, random_state=0)
    search = GridSearchCV(
        KMeans(n_init=3, random_state=0),
        {"n_clusters": [2, 3, 4, 5]},
        scoring=clustering_accuracy_scorer,
        cv=3,
    ).fit(X, y)
    assert search.best_params_ == {"n_clusters": 3}
    assert search.best_score_ > 0.95
    # Too many clusters are penalized: unmatched clusters count as errors.
    scores = dict(
        zip(
            search.cv_results_["param_n_clusters"],
            search.cv_results_["mean_test_score"],
            strict=True,
        )
    )
    assert scores[5] < scores[3] - 0.1


def test_scorer_calls_predict():
    X, y = make_blobs(n_samples=90, centers=3, random_state=1)
    kmeans = KMeans(n_clusters=3, n_init=3, random_state=0).fit(X)
    assert clustering_accuracy_scorer(kmeans, X, y) == pytest.approx(
        clustering_accuracy(y, kmeans.predict(X))
    )
    # scikit-learn's permutation-invariant scores work by name as well.
    assert get_scorer("adjusted_rand_score")(kmeans, X, y) > 0.9


# -- stability_score -----------------------------------------------------------


def test_stability_score_of_a_renaming_is_one():
    labels = np.repeat([0, 1, 2, 3], 25)
    renamed = np.array(["d", "c", "b", "a"])[labels]
    assert stability_score(labels, renamed) == 1.0


def test_stability_score_of_independent_labelings_is_near_zero():
    rng = np.random.default_rng(0)
    for n_clusters in (2, 5, 15):
        scores = [
            stability_score(
                rng.integers(n_clusters, size=2000), rng.integers(n_clusters, size=2000)
            )
            for _ in range(5)
        ]
        assert abs(np.mean(scores)) < 0.02


def test_stability_score_decreases_with_disagreement():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 100)
    scores = []
    for share in (0.0, 0.1, 0.3, 0.6):
        other = labels.copy()
        moved = rng.random(labels.size) < share
        other[moved] = rng.integers(5, size=moved.sum())
        scores.append(stability_score(labels, other))
    assert scores[0] == 1.0
    assert all(b < a for a, b in zip(scores, scores[1:], strict=False))


def test_stability_score_counts_empty_clusters_as_not_found():
    labels = np.repeat(np.arange(4), 50)
    # Both labelings agree, but only 4 of the 5 requested clusters are used.
    assert stability_score(labels, labels, n_clusters=5) < 0.85
    assert stability_score(labels, labels, n_clusters=4) == 1.0


def test_stability_score_is_deterministic_and_seedable():
    rng = np.random.default_rng(0)
    a, b = rng.integers(4, size=200), rng.integers(4, size=200)
    assert stability_score(a, b) == stability_score(a, b)
    assert stability_score(a, b, random_state=1) != stability_score(a, b)


def test_stability_score_checks_input():
    with pytest.raises(ValueError, match="same length"):
        stability_score([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="1-D"):
        stability_score([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="empty"):
        stability_score([], [])
    with pytest.raises(ValueError, match="smaller than the 3 distinct"):
        stability_score([0, 1, 2], [0, 0, 1], n_clusters=2)


@pytest.mark.parametrize("nan", [np.nan, float("nan")])
def test_stability_score_rejects_nan_labels(nan):
    labels = np.repeat([0.0, 1.0, 2.0], 10)
    with_nan = labels.copy()
    with_nan[[3, 17]] = nan
    with pytest.raises(ValueError, match="labels_a contains NaN"):
        stability_score(with_nan, labels)
    with pytest.raises(ValueError, match="labels_b contains NaN"):
        stability_score(labels, with_nan)
    as_objects = np.array(["a"] * 29 + [nan], dtype=object)
    with pytest.raises(ValueError, match="labels_b contains NaN"):
        stability_score(labels, as_objects)


def test_docstring_examples():
    result = doctest.testmod(skentropy.metrics, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
