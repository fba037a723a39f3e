"""Input scale and geometry: the same clustering for X and c·X + t, whatever
the units, no collapse on unit-norm rows, and a warning on a collapse."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import normalize

from skentropy import (
    EntropyClustering,
)
from skentropy.metrics import clustering_accuracy

from helpers import each_paper_estimator, each_softmax_estimator, fit_quietly


def fit_labels(estimator, X):
    return fit_quietly(estimator, X).labels_


@pytest.fixture(scope="module")
def blobs():
    """Five overlapping blobs in 20 dimensions, off the origin, float64."""
    X, _ = make_blobs(
        n_samples=600, n_features=20, centers=5, cluster_std=3.0, random_state=0
    )
    return X + 7.0


@pytest.fixture(scope="module")
def unit_digits():
    """``load_digits`` with L2-normalized rows (cosine geometry), float32."""
    X, y = load_digits(return_X_y=True)
    return normalize(X).astype(np.float32), y


# The fits that the scaled and translated inputs are compared with.
BLOB_PARAMS = {"n_clusters": 5, "max_iter": 15, "random_state": 0}


@pytest.fixture(scope="module")
def blob_labels(blobs):
    """``labels(Estimator)``: its fit's labels on the blobs, one fit per module."""
    fitted = {}

    def labels(Estimator):
        if Estimator not in fitted:
            fitted[Estimator] = fit_labels(Estimator(**BLOB_PARAMS), blobs)
        return fitted[Estimator]

    return labels


@each_softmax_estimator
@pytest.mark.parametrize("factor", [1e-4, 1e-2, 1e2, 1e4])
def test_same_clustering_for_scaled_x(Estimator, factor, blobs, blob_labels):
    reference = blob_labels(Estimator)
    scaled = fit_labels(Estimator(**BLOB_PARAMS), factor * blobs)
    assert len(np.unique(reference)) == 5
    assert adjusted_rand_score(reference, scaled) > 0.99


@each_softmax_estimator
def test_same_clustering_for_translated_x(Estimator, blobs, blob_labels):
    reference = blob_labels(Estimator)
    moved = fit_labels(Estimator(**BLOB_PARAMS), blobs - 40.0)
    assert adjusted_rand_score(reference, moved) > 0.99


@pytest.mark.slow
@each_paper_estimator
def test_same_clustering_for_scaled_float32_digits(Estimator, digits):
    X = np.asarray(digits[0], dtype=np.float32)
    reference = fit_labels(Estimator(10, max_iter=15, random_state=0), X)
    for factor in (1e-3, 1e3):
        scaled = fit_labels(
            Estimator(10, max_iter=15, random_state=0), np.float32(factor) * X
        )
        assert adjusted_rand_score(reference, scaled) > 0.95


def test_partial_fit_stream_is_scale_free(blobs):
    """The first chunk fixes the standardization; later chunks reuse it."""
    rows = np.random.default_rng(0).permutation(blobs.shape[0])
    models = []
    for factor in (1.0, 1e3):
        model = EntropyClustering(n_clusters=5, random_state=0)
        for _ in range(5):
            for chunk in np.array_split(factor * blobs[rows], 3):
                model.partial_fit(chunk)
        models.append(model)
    assert (
        adjusted_rand_score(models[0].predict(blobs), models[1].predict(1e3 * blobs))
        > 0.99
    )


@each_softmax_estimator
def test_fitted_linear_head_acts_on_the_features(Estimator, blobs):
    """coef_ and intercept_ give the logits on X itself, not on standardized X."""
    X = 50.0 * blobs
    estimator = Estimator(n_clusters=5, max_iter=3, random_state=0)
    fit_labels(estimator, X)
    logits = X @ estimator.coef_.T + estimator.intercept_
    expected = torch.softmax(torch.as_tensor(logits), dim=1).numpy()
    np.testing.assert_allclose(estimator.predict_proba(X), expected, rtol=1e-6)


@pytest.mark.slow
@each_paper_estimator
def test_no_collapse_on_unit_norm_rows(Estimator, unit_digits):
    """Unit-norm rows in 64 dimensions: all 10 clusters used, and meaningful.

    Before the scale-free head the defaults put all 1 797 rows into one
    cluster (accuracy 0.10); K-means reaches 0.79 here.
    """
    X, y = unit_digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        labels = Estimator(10, random_state=0).fit(X).labels_
    assert len(np.unique(labels)) == 10
    assert np.bincount(labels).min() > 0.02 * len(labels)
    assert clustering_accuracy(y, labels) > 0.65


@each_softmax_estimator
def test_a_collapse_is_never_silent(Estimator, blobs):
    """A huge margin weight (past the warm-up) flattens σ: a warning says so.

    The collapse shows as empty clusters or as nearly uniform predictions
    (SeLa's balanced hard labels keep every argmax cluster filled).
    """
    estimator = Estimator(n_clusters=5, gamma=1e3, max_iter=15, random_state=0)
    with pytest.warns(ConvergenceWarning, match="hold no training|nearly uniform"):
        estimator.fit(blobs)


def test_no_warning_for_empty_zero_weight_rows(blobs):
    """Rows of zero weight are not training samples: they fill no cluster."""
    estimator = EntropyClustering(n_clusters=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        estimator.fit(blobs, sample_weight=np.r_[np.ones(599), 0.0])
    assert len(np.unique(estimator.labels_[:-1])) == 5


@each_paper_estimator
def test_initial_predictions_have_nine_tenths_of_the_largest_entropy(
    Estimator, blobs, unit_digits
):
    """The start is equally soft in 20 and in 64 dimensions, at any scale.

    With no more rows than the seeding subset and a negligible step, the
    fitted model is the initial one: its mean prediction entropy on the rows
    is 0.9 ln K (before the bias shift that makes it fair, which moves it a
    little), and its mean prediction is the prior.
    """
    for X, n_clusters in ((blobs, 5), (1e3 * unit_digits[0][:600], 10)):
        estimator = Estimator(n_clusters, lr=1e-12, max_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            probs = estimator.fit(X).predict_proba(X)
        entropy = -(probs * np.log(probs)).sum(axis=1).mean()
        np.testing.assert_allclose(entropy, 0.9 * np.log(n_clusters), rtol=1e-2)
        np.testing.assert_allclose(probs.mean(axis=0), 1 / n_clusters, rtol=1e-3)


@each_paper_estimator
def test_a_new_model_starts_with_the_prior_as_mean_prediction(Estimator, blobs):
    """Every cluster starts with its share u_k, even a seed far from the data.

    A k-means++ seed on an outlier would otherwise start with almost no mass
    and never gain any (measured: one of ten clusters empty on standardized
    MNIST-5k features in five of eight seeds).
    """
    prior = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    X = np.vstack([blobs, [[400.0] * blobs.shape[1]]])  # one far outlier
    estimator = Estimator(5, prior=prior, lr=1e-12, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probs = estimator.fit(X).predict_proba(X)
    np.testing.assert_allclose(probs.mean(axis=0), prior, rtol=1e-3)


@each_softmax_estimator
def test_margin_weight_grows_from_zero_over_the_first_epochs(Estimator, blobs):
    """Epoch 0 of a new model has no margin term; epoch 1 has one tenth of it."""
    params = {"n_clusters": 5, "random_state": 0}

    def coef_after(epochs, gamma):
        estimator = Estimator(max_iter=epochs, gamma=gamma, **params)
        fit_labels(estimator, blobs)
        return estimator.coef_

    np.testing.assert_array_equal(coef_after(1, 1e3), coef_after(1, 0.0))
    assert not np.allclose(coef_after(2, 1e3), coef_after(2, 0.0))
    streamed = Estimator(gamma=1e3, **params).partial_fit(blobs)
    np.testing.assert_array_equal(streamed.coef_, coef_after(1, 0.0))


@each_paper_estimator
def test_nearly_uniform_predictions_warn(Estimator, blobs):
    """A margin weight that flattens σ everywhere is a trivial model: it warns.

    Under a dominant margin term Adam's steps of about lr per weight keep
    the weights from settling below lr: at lr = 0.01 (what "auto" gives
    1,280 features) σ on these 20 features is flat after 15 epochs; at
    larger steps (the uncapped rule's 0.08) it was not, and the fit warned
    of empty clusters instead.
    """
    estimator = Estimator(n_clusters=5, gamma=1e3, max_iter=15, random_state=0, lr=0.01)
    with pytest.warns(ConvergenceWarning, match="nearly uniform"):
        estimator.fit(blobs)
