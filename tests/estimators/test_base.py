"""Behaviour of the entropy clustering estimators through their public API."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skentropy import EntropyClustering, MaxMarginEntropyClustering, losses
from skentropy._estimators._training import MARGIN_WARMUP_EPOCHS
from skentropy.metrics import clustering_accuracy, clustering_accuracy_scorer

from helpers import (
    best_params_by_split_scores,
    each_estimator,
    each_paper_estimator,
    fit_quietly,
    make_fast,
)

# --- composition with scikit-learn ----------------------------------------


@pytest.mark.slow
@each_paper_estimator
def test_pipeline_with_scaler_and_pca(Estimator):
    X, y = load_digits(return_X_y=True)
    pipeline = make_pipeline(
        StandardScaler(),
        PCA(n_components=32, random_state=0),
        Estimator(n_clusters=10, n_heads=1, random_state=0),
    )
    labels = pipeline.fit_predict(X)
    assert adjusted_rand_score(y, labels) > 0.4
    assert_array_equal(pipeline.predict(X), labels)


@pytest.mark.slow
@pytest.mark.parametrize("scoring", ["adjusted_rand_score", clustering_accuracy_scorer])
def test_grid_search_over_gamma_with_label_scorer(digits, scoring):
    X, y = digits
    search = fit_quietly(
        GridSearchCV(
            make_fast(MaxMarginEntropyClustering, max_iter=30),
            {"gamma": [1e-4, 1e-3]},
            scoring=scoring,
            cv=2,
        ),
        X,
        y,
    )
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_ == best_params_by_split_scores(search)
    assert search.best_estimator_.gamma == search.best_params_["gamma"]
    assert search.best_estimator_.labels_.shape == (X.shape[0],)
    assert search.best_score_ > 0.3


@each_paper_estimator
def test_clone_gives_an_unfitted_copy_with_the_same_parameters(Estimator, digits):
    X, _ = digits
    estimator = fit_quietly(make_fast(Estimator, gamma=0.05, prior=np.full(10, 0.1)), X)
    cloned = clone(estimator)
    assert cloned.get_params().keys() == estimator.get_params().keys()
    assert cloned.gamma == 0.05
    assert_array_equal(cloned.prior, estimator.prior)
    with pytest.raises(NotFittedError):
        cloned.predict(X)


def test_y_is_ignored(digits):
    X, y = digits
    with_y = fit_quietly(make_fast(EntropyClustering), X, y)
    without_y = fit_quietly(make_fast(EntropyClustering), X)
    assert_array_equal(with_y.labels_, without_y.labels_)


def test_pandas_feature_names_and_output(digits):
    pd = pytest.importorskip("pandas")
    X, _ = digits
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    estimator = fit_quietly(make_fast(MaxMarginEntropyClustering), frame)
    assert_array_equal(estimator.feature_names_in_, frame.columns)
    output = estimator.set_output(transform="pandas").transform(frame)
    assert list(output.columns) == [f"maxmarginentropyclustering{k}" for k in range(10)]


# --- fitted state, persistence, reproducibility ----------------------------


@each_paper_estimator
def test_fitted_attributes(Estimator, digits):
    X, _ = digits
    estimator = fit_quietly(make_fast(Estimator), X)
    assert estimator.coef_.shape == (10, X.shape[1])
    assert estimator.intercept_.shape == (10,)
    assert estimator.labels_.shape == (X.shape[0],)
    assert estimator.n_iter_ == len(estimator.loss_curve_) <= 10
    assert estimator.n_steps_ == estimator.n_iter_ * 8  # ceil(1797 / 250) batches
    assert estimator.n_features_in_ == X.shape[1]
    # Plain numpy state: the estimator unpickles on a machine without a GPU.
    assert not any(
        isinstance(value, torch.Tensor) for value in vars(estimator).values()
    )


@each_paper_estimator
def test_pickle_and_joblib_round_trips(Estimator, digits, tmp_path):
    X, _ = digits
    estimator = fit_quietly(make_fast(Estimator), X)
    joblib.dump(estimator, tmp_path / "estimator.joblib")
    for restored in (
        pickle.loads(pickle.dumps(estimator)),
        joblib.load(tmp_path / "estimator.joblib"),
    ):
        assert_array_equal(restored.predict(X), estimator.predict(X))
        assert_array_equal(restored.predict_proba(X), estimator.predict_proba(X))


@pytest.mark.slow
@each_paper_estimator
def test_same_random_state_gives_identical_results(
    Estimator, digits, global_random_seed
):
    X, _ = digits
    seed = global_random_seed
    first, second, other = (
        fit_quietly(make_fast(Estimator, random_state=state), X)
        for state in (seed, seed, seed + 1)
    )
    assert_array_equal(first.labels_, second.labels_)
    assert_array_equal(first.coef_, second.coef_)
    assert not np.array_equal(first.coef_, other.coef_)


@pytest.mark.slow
@each_paper_estimator
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trains_in_the_input_dtype(Estimator, digits, dtype):
    X, y = digits
    X = X.astype(dtype)
    estimator = fit_quietly(make_fast(Estimator, max_iter=30), X)
    assert estimator.coef_.dtype == dtype
    assert estimator.intercept_.dtype == dtype
    assert estimator.predict_proba(X).dtype == dtype
    assert clustering_accuracy(y, estimator.labels_) > 0.5


@each_paper_estimator
def test_half_precision_trains_in_float32(Estimator, digits):
    # float32 holds every float16 value: the fit on float16 features is the
    # fit on the same values in float32 (scikit-learn's rule would give float64)
    X, _ = digits
    half = X.astype(np.float16)
    params = {"max_iter": 3, "random_state": 0}
    estimator = fit_quietly(make_fast(Estimator, **params), half)
    single = fit_quietly(make_fast(Estimator, **params), half.astype(np.float32))
    assert estimator.coef_.dtype == np.float32
    assert_array_equal(estimator.coef_, single.coef_)
    assert_array_equal(estimator.labels_, single.labels_)
    assert estimator.predict_proba(half).dtype == np.float32
    assert_array_equal(estimator.predict(half), single.predict(half))


@each_paper_estimator
def test_read_only_memmap(Estimator, digits, tmp_path, global_random_seed):
    X, _ = digits
    np.save(tmp_path / "X.npy", X)
    X_map = np.load(tmp_path / "X.npy", mmap_mode="r")
    params = {"max_iter": 2, "random_state": global_random_seed}
    estimator = fit_quietly(make_fast(Estimator, **params), X_map)
    in_memory = fit_quietly(make_fast(Estimator, **params), X)
    assert_array_equal(estimator.labels_, in_memory.labels_)
    estimator.partial_fit(X_map)
    assert_array_equal(estimator.predict(X_map), estimator.predict(X))


# --- prediction API ---------------------------------------------------------


@each_paper_estimator
def test_predict_proba_transform_and_predict_agree(Estimator, digits):
    X, _ = digits
    estimator = fit_quietly(make_fast(Estimator), X)
    probs = estimator.predict_proba(X)
    assert_allclose(probs.sum(axis=1), 1.0)
    assert_array_equal(estimator.transform(X), probs)
    assert_array_equal(estimator.predict(X), probs.argmax(axis=1))


@each_paper_estimator
def test_fit_predict_equals_fit_then_predict(Estimator, digits, global_random_seed):
    X, _ = digits
    rng = np.random.RandomState(global_random_seed)
    sample_weight = rng.uniform(0.5, 2.0, size=X.shape[0])
    estimator = make_fast(Estimator, max_iter=3, random_state=global_random_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = estimator.fit_predict(X, sample_weight=sample_weight)
    assert_array_equal(labels, estimator.predict(X))


def test_score_is_the_opposite_of_the_maximum_margin_loss(digits):
    X, _ = digits
    prior = np.linspace(1.0, 2.0, 10) / np.linspace(1.0, 2.0, 10).sum()
    estimator = fit_quietly(
        make_fast(MaxMarginEntropyClustering, fairness_weight=2.0, prior=prior), X
    )
    log_probs = torch.log(torch.as_tensor(estimator.predict_proba(X)))
    # γ acts on the weights on 10·z = (x − x̄)/(s/10): the rows at mean squared
    # norm 100, s the root-mean-square distance to the mean
    scale = np.sqrt(np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=1))) / 10
    expected = (
        losses.decisiveness(log_probs)
        + 2.0 * losses.fairness(log_probs, prior)
        + estimator.gamma * losses.margin(torch.as_tensor(estimator.coef_ * scale))
    )
    assert estimator.score(X) == pytest.approx(-expected.item(), rel=1e-6)


def test_training_raises_the_score(digits):
    X, _ = digits
    short = fit_quietly(make_fast(MaxMarginEntropyClustering, max_iter=1), X)
    long = fit_quietly(make_fast(MaxMarginEntropyClustering, max_iter=30), X)
    assert long.score(X) > short.score(X)


# --- training ----------------------------------------------------------------


@each_paper_estimator
def test_partial_fit_runs_one_epoch_per_call(Estimator, digits, global_random_seed):
    X, _ = digits
    estimator = Estimator(
        n_clusters=10, batch_size=250, random_state=global_random_seed
    )
    for n_calls in (1, 2, 3):
        estimator.partial_fit(X)
        assert estimator.n_iter_ == n_calls
        assert len(estimator.loss_curve_) == n_calls
        assert estimator.n_steps_ == n_calls * 8


@each_paper_estimator
def test_partial_fit_on_chunks_improves_the_clustering(Estimator, digits):
    X, y = digits
    order = np.random.RandomState(0).permutation(X.shape[0])
    chunks = np.array_split(order, 3)
    estimator = Estimator(n_clusters=10, random_state=0)
    estimator.partial_fit(X[chunks[0]])
    first_accuracy = clustering_accuracy(y, estimator.predict(X))
    for _ in range(10):
        for rows in chunks:
            estimator.partial_fit(X[rows])
    accuracy = clustering_accuracy(y, estimator.predict(X))
    assert accuracy >= first_accuracy - 0.02
    assert accuracy > 0.6


@each_paper_estimator
def test_warm_start_continues_from_the_fitted_parameters(Estimator, digits):
    X, _ = digits
    estimator = fit_quietly(make_fast(Estimator, warm_start=True), X)
    previous_coef = estimator.coef_.copy()
    fit_quietly(estimator.set_params(max_iter=1), X)
    cold = fit_quietly(make_fast(Estimator, max_iter=1), X)
    warm_change = np.linalg.norm(estimator.coef_ - previous_coef)
    cold_change = np.linalg.norm(cold.coef_ - previous_coef)
    assert warm_change < 0.5 * cold_change

    estimator.set_params(n_clusters=5)
    with pytest.raises(ValueError, match="n_clusters=5"):
        estimator.fit(X)


@each_paper_estimator
def test_margin_term_leaves_the_bias_free(Estimator, digits):
    # A huge γ holds v at 0 (the margin term is (γ/100)‖v‖² on the weights on
    # z, so an SGD step with lr = 100 / 2γ zeroes it), so that σ = softmax(b)
    # for every sample; only an unpenalized bias can then move the
    # predictions towards the largest entry of an imbalanced prior.
    X, _ = digits
    estimator = fit_quietly(
        Estimator(
            n_clusters=3,
            gamma=1000.0,
            optimizer="sgd",
            lr=0.05,
            prior=[0.6, 0.3, 0.1],
            max_iter=30,
            random_state=0,
        ),
        X,
    )
    assert np.abs(estimator.coef_).max() < 1e-3
    assert np.ptp(estimator.intercept_) > 1.0
    assert estimator.predict_proba(X).mean(axis=0).argmax() == 0


@pytest.mark.slow
@each_paper_estimator
def test_prior_sets_the_cluster_proportions(Estimator, digits):
    X, _ = digits
    estimator = fit_quietly(
        Estimator(n_clusters=2, prior=[0.8, 0.2], max_iter=30, random_state=0), X
    )
    proportions = np.bincount(estimator.labels_, minlength=2) / X.shape[0]
    assert_allclose(proportions, [0.8, 0.2], atol=0.1)


@pytest.mark.slow
@each_estimator
def test_views_with_negative_strides_fit_as_their_copies(Estimator, digits):
    # X[::-1] is a numpy view that torch cannot wrap without a copy.
    X, _ = digits
    reversed_view, weights = X[::-1], np.linspace(0.5, 1.5, X.shape[0])[::-1]
    copy = np.ascontiguousarray(reversed_view)
    assert reversed_view.strides[0] < 0 and weights.strides[0] < 0
    on_view = fit_quietly(make_fast(Estimator), reversed_view, sample_weight=weights)
    on_copy = fit_quietly(make_fast(Estimator), copy, sample_weight=weights.copy())
    assert_array_equal(on_view.labels_, on_copy.labels_)
    assert_array_equal(on_view.predict(reversed_view), on_copy.predict(copy))


def test_prior_may_be_a_view_with_negative_strides(digits):
    # prior[::-1] is a numpy view that torch cannot wrap without a copy.
    X, _ = digits
    prior = np.array([0.2, 0.8])[::-1]
    estimator = fit_quietly(
        EntropyClustering(n_clusters=2, prior=prior, max_iter=2, random_state=0), X
    )
    assert estimator.labels_.shape == (X.shape[0],)


@pytest.mark.slow
@each_paper_estimator
def test_n_init_keeps_the_training_with_the_lowest_loss(Estimator, digits):
    # The first of several initializations is the single one of n_init=1.
    X, _ = digits
    single = fit_quietly(make_fast(Estimator), X)
    best_of_three = fit_quietly(make_fast(Estimator, n_init=3), X)
    assert best_of_three.loss_curve_[-1] <= single.loss_curve_[-1]


@each_paper_estimator
def test_stops_early_once_the_loss_stops_improving_after_the_warmup(Estimator, digits):
    X, _ = digits
    # lr=0.01: the warm-up of MARGIN_WARMUP_EPOCHS epochs of digits' 8 batches
    estimator = make_fast(
        Estimator, max_iter=100, tol=10.0, n_iter_no_change=2, lr=0.01
    )
    estimator.fit(X)
    # The rule waits for the margin's warm-up (its loss rises by design);
    # the first epoch after it sets the best loss, with tol=10 no later epoch
    # improves on it, and training stops after more than 2 of those.
    assert estimator.converged_
    assert estimator.n_iter_ == MARGIN_WARMUP_EPOCHS + 4


def test_warns_when_max_iter_is_reached(digits):
    X, _ = digits
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        estimator = make_fast(MaxMarginEntropyClustering, max_iter=2).fit(X)
    assert not estimator.converged_


def test_verbose_shows_a_progress_bar_with_the_loss(digits, capsys):
    X, _ = digits
    fit_quietly(make_fast(MaxMarginEntropyClustering, max_iter=2, verbose=1), X)
    assert "loss=" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@each_paper_estimator
def test_trains_on_cuda_and_stores_numpy(Estimator, digits):
    X, _ = digits
    on_gpu = fit_quietly(make_fast(Estimator, device="cuda"), X)
    assert isinstance(on_gpu.coef_, np.ndarray)
    on_cpu = fit_quietly(make_fast(Estimator, device="cpu"), X)
    assert adjusted_rand_score(on_cpu.labels_, on_gpu.labels_) > 0.9


# --- errors ------------------------------------------------------------------


def _with_nan(X):
    X = X.copy()
    X[0, 0] = np.nan
    return X


def _with_inf(X):
    X = X.copy()
    X[0, 0] = np.inf
    return X


@each_paper_estimator
@pytest.mark.parametrize(
    "params, transform_X, message",
    [
        ({}, _with_nan, "NaN"),
        ({}, _with_inf, "infinity"),
        ({}, lambda X: X[:, 0], "Expected 2D array"),
        ({}, lambda X: X[:5], "n_samples=5 should be >= n_clusters=10"),
        ({"n_clusters": 0}, None, "n_clusters"),
        ({"prior": np.full(5, 0.2)}, None, "prior must have one entry per cluster"),
        ({"prior": np.r_[-0.1, np.full(9, 1.1 / 9)]}, None, "positive entries"),
        ({"prior": np.full(10, 0.2)}, None, "prior must sum to 1"),
        ({"fairness_weight": -1.0}, None, "fairness_weight"),
    ],
    ids=[
        "nan",
        "inf",
        "1d",
        "too-few-samples",
        "n_clusters",
        "prior-length",
        "prior-negative",
        "prior-sum",
        "fairness-weight",
    ],
)
def test_invalid_input_raises_value_error(
    Estimator, digits, params, transform_X, message
):
    X, _ = digits
    if transform_X is not None:
        X = transform_X(X)
    with pytest.raises(ValueError, match=message):
        make_fast(Estimator, **params).fit(X)


def test_partial_fit_rejects_a_different_number_of_features(digits):
    X, _ = digits
    estimator = make_fast(EntropyClustering).partial_fit(X)
    with pytest.raises(ValueError, match="features"):
        estimator.partial_fit(X[:, :10])


# --- acceptance: defaults beat k-means on standardized digits ---------------


@pytest.fixture(scope="module")
def kmeans_accuracy_on_digits(digits):
    """Mean accuracy of KMeans(n_init=10) on digits over random_state 0-4."""
    X, y = digits
    return np.mean(
        [
            clustering_accuracy(
                y, KMeans(10, n_init=10, random_state=seed).fit_predict(X)
            )
            for seed in range(5)
        ]
    )


@pytest.mark.slow
@each_paper_estimator
def test_defaults_beat_kmeans_on_digits(Estimator, digits, kmeans_accuracy_on_digits):
    """Each of two seeds beats the mean of K-means over five.

    (The defaults lead by 15 to 20 points on standardized digits, README.)
    """
    X, y = digits
    for seed in range(2):
        labels = Estimator(n_clusters=10, random_state=seed).fit_predict(X)
        assert clustering_accuracy(y, labels) >= kmeans_accuracy_on_digits
