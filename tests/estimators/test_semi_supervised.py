"""Weak supervision: ``semi_supervised=True`` with y = -1 for unlabeled rows."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from skentropy import (
    EntropyClustering,
    MaxMarginEntropyClustering,
)
from skentropy.metrics import clustering_accuracy

from helpers import each_paper_estimator, fit_quietly, make_fast


def make_weak(Estimator, **params):
    """A quick-to-fit weakly supervised instance for 10 clusters."""
    return make_fast(Estimator, **{"semi_supervised": True, **params})


def hide_labels(y, fraction, seed):
    """y with all but a random ``fraction`` of the labels replaced by -1."""
    labeled = np.random.RandomState(seed).uniform(size=y.shape[0]) < fraction
    return np.where(labeled, y, -1)


# --- acceptance: 10 % labels help on the unlabeled rows ----------------------


@pytest.mark.slow
@each_paper_estimator
def test_ten_percent_labels_raise_the_accuracy_on_unlabeled_rows(Estimator, digits):
    # Measured (max_iter=10, seeds 0-2): 0.70 -> 0.90 (reverse CE),
    # 0.72 -> 0.91 (collision CE), 0.71 -> 0.90 (maximum margin); at
    # max_iter=20 0.74 -> 0.93, 0.79 -> 0.92, 0.75 -> 0.92.
    X, y = digits
    accuracies = {0.0: [], 0.1: []}
    for seed in range(3):
        partial = hide_labels(y, 0.1, seed)
        unlabeled = partial == -1
        for fraction, y_fit in ((0.0, np.full_like(y, -1)), (0.1, partial)):
            estimator = fit_quietly(
                make_weak(Estimator, max_iter=10, random_state=seed), X, y_fit
            )
            accuracies[fraction].append(
                clustering_accuracy(y[unlabeled], estimator.labels_[unlabeled])
            )
    assert np.mean(accuracies[0.1]) >= np.mean(accuracies[0.0]) + 0.02


# --- meaning of the labels ---------------------------------------------------


@each_paper_estimator
def test_cluster_k_means_class_k(Estimator, digits):
    # No Hungarian matching: the labeled rows name the clusters.
    X, y = digits
    partial = hide_labels(y, 0.1, 0)
    unlabeled = partial == -1
    estimator = fit_quietly(make_weak(Estimator, max_iter=20), X, partial)
    assert np.mean(estimator.labels_[unlabeled] == y[unlabeled]) > 0.85
    assert np.mean(estimator.predict(X[unlabeled]) == y[unlabeled]) > 0.85


@each_paper_estimator
def test_partial_fit_uses_the_labels(Estimator, digits):
    X, y = digits
    partial = hide_labels(y, 0.1, 0)
    unlabeled = partial == -1
    chunks = np.array_split(np.random.RandomState(0).permutation(X.shape[0]), 3)
    estimator = make_weak(Estimator)
    for _ in range(5):
        for rows in chunks:
            estimator.partial_fit(X[rows], partial[rows])
    assert np.mean(estimator.predict(X[unlabeled]) == y[unlabeled]) > 0.8


@pytest.mark.parametrize(
    "y_fit", [None, "all_unlabeled"], ids=["y=None", "all-unlabeled"]
)
def test_no_labels_is_unsupervised_clustering(digits, y_fit):
    X, y = digits
    if y_fit == "all_unlabeled":
        y_fit = np.full_like(y, -1)
    unsupervised = fit_quietly(make_weak(EntropyClustering, semi_supervised=False), X)
    without_labels = fit_quietly(make_weak(EntropyClustering), X, y_fit)
    assert_array_equal(without_labels.labels_, unsupervised.labels_)
    assert without_labels.loss_curve_ == unsupervised.loss_curve_


def test_labels_of_zero_weight_rows_are_ignored(digits):
    X, y = digits
    partial = hide_labels(y, 0.1, 0)
    sample_weight = np.where(partial >= 0, 0.0, 1.0)
    sample_weight[:5] = 0.0  # also zero-weight unlabeled rows
    weighted = fit_quietly(
        make_weak(MaxMarginEntropyClustering), X, partial, sample_weight=sample_weight
    )
    unlabeled = fit_quietly(
        make_weak(MaxMarginEntropyClustering),
        X,
        np.full_like(y, -1),
        sample_weight=sample_weight,
    )
    assert_array_equal(weighted.labels_, unlabeled.labels_)


def test_labels_add_cross_entropy_to_the_training_loss(digits):
    # Labeling every row adds mean −ln σ_{i,y_i} > 0 to each batch's loss. One
    # batch of all rows and a vanishing step: the loss with labels, then the
    # loss without them at the same parameters, differ by the cross-entropy.
    # (γ = 0: the margin term grows over the first epochs of a new model, so
    # it differs between the two calls.)
    X, y = digits
    model = make_weak(
        MaxMarginEntropyClustering,
        gamma=0.0,
        lr=1e-12,
        optimizer="sgd",
        batch_size=X.shape[0],
    ).partial_fit(X, y)
    with_labels = model.loss_curve_[-1]
    probs = model.predict_proba(X)
    cross_entropy = -np.mean(np.log(probs[np.arange(y.shape[0]), y]))
    without_labels = model.set_params(semi_supervised=False).partial_fit(X)
    assert with_labels == pytest.approx(
        without_labels.loss_curve_[-1] + cross_entropy, rel=1e-6
    )


def test_labeled_clusters_start_at_their_class_means(digits):
    # seeded k-means: cluster k starts at the mean of the rows labeled k
    X, y = digits
    given = np.where(np.arange(y.shape[0]) % 5 == 0, y, -1)
    model = make_weak(EntropyClustering, lr=1e-12, optimizer="sgd")
    model.partial_fit(X, given)
    means = np.array([X[given == k].mean(axis=0) for k in range(10)])
    assert_array_equal(model.predict(means), np.arange(10))


def test_y_is_ignored_without_semi_supervised(digits):
    X, y = digits
    bad = np.full(y.shape, 42.5)  # would be rejected with semi_supervised=True
    ignored = fit_quietly(make_weak(EntropyClustering, semi_supervised=False), X, bad)
    unsupervised = fit_quietly(make_weak(EntropyClustering, semi_supervised=False), X)
    assert_array_equal(ignored.labels_, unsupervised.labels_)


# --- invalid labels ------------------------------------------------------------


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize(
    "make_labels, message",
    [
        (lambda y: np.where(y == 3, 10, y), r"outside -1\.\.9: \[10\]"),
        (lambda y: np.where(y == 3, -2, y), r"outside -1\.\.9: \[-2\]"),
        (lambda y: y + 0.5, "non-integer labels"),
        (lambda y: np.where(y == 3, np.nan, y), "non-integer labels"),
        (lambda y: y.astype(str), "dtype"),
        (lambda y: y[:-1], "inconsistent numbers of samples"),
        (lambda y: np.c_[y, y], "1d array"),
    ],
    ids=["too-large", "below-minus-one", "fraction", "nan", "strings", "length", "2d"],
)
def test_invalid_labels_raise_value_error(digits, method, make_labels, message):
    X, y = digits
    with pytest.raises(ValueError, match=message):
        getattr(make_weak(EntropyClustering), method)(X, make_labels(y))


def test_integral_float_labels_are_accepted(digits):
    X, y = digits
    partial = hide_labels(y, 0.1, 0)
    as_float = fit_quietly(make_weak(EntropyClustering, max_iter=2), X, partial * 1.0)
    as_int = fit_quietly(make_weak(EntropyClustering, max_iter=2), X, partial)
    assert_array_equal(as_float.labels_, as_int.labels_)
