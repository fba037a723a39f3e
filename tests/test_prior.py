"""Estimated cluster proportions, ``prior="auto"`` (skentropy._prior)."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from skentropy import (
    CollisionCEClustering,
    EntropyClustering,
    MaxMarginEntropyClustering,
)
from skentropy._prior import (
    AUTO_EXPONENT,
    AUTO_FLOOR,
    PriorEstimate,
    auto_target,
    project_to_floor,
)

BLOB_SIZES = (1000, 400, 150, 60)


def _generic_minimizer(objective, n_clusters, floor):
    """argmin of ``objective`` over the capped simplex, by scipy's SLSQP."""
    result = minimize(
        objective,
        np.full(n_clusters, 1.0 / n_clusters),
        method="SLSQP",
        bounds=[(floor, 1.0)] * n_clusters,
        constraints=[{"type": "eq", "fun": lambda u: u.sum() - 1.0}],
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert result.success, result.message
    return result.x


def _kl(p, q):
    return float(np.sum(p * np.log(p / q)))


def _random_shares(rng, n_clusters):
    shares = rng.dirichlet(np.full(n_clusters, 0.5)) + 1e-3
    return shares / shares.sum()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("direction", ["I", "M"])
def test_project_to_floor_is_the_kl_projection_on_the_capped_simplex(seed, direction):
    rng = np.random.default_rng(seed)
    n_clusters = int(rng.integers(2, 12))
    m = _random_shares(rng, n_clusters)
    floor = rng.uniform(0.2, 0.9) / n_clusters
    if direction == "I":  # KL(u‖m), the form of the strong fairness

        def objective(u):
            return _kl(u, m)
    else:  # KL(m‖u), the form of the fairness of MaxMargin

        def objective(u):
            return _kl(m, np.clip(u, 1e-300, None))

    expected = _generic_minimizer(objective, n_clusters, floor)
    u = project_to_floor(torch.as_tensor(m), floor).numpy()
    assert u.sum() == pytest.approx(1.0, abs=1e-12)
    assert u.min() >= floor - 1e-15
    np.testing.assert_allclose(u, expected, atol=1e-5)
    assert objective(u) <= objective(expected) + 1e-10


def test_project_to_floor_keeps_shares_above_the_floor():
    m = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    torch.testing.assert_close(project_to_floor(m, 0.1), m)


@pytest.mark.parametrize("seed", range(5))
def test_auto_target_minimizes_its_objective(seed):
    rng = np.random.default_rng(seed)
    n_clusters = int(rng.integers(2, 12))
    m = _random_shares(rng, n_clusters)
    beta = 1 / AUTO_EXPONENT - 1
    uniform = np.full(n_clusters, 1.0 / n_clusters)
    expected = _generic_minimizer(
        lambda u: _kl(u, m) + beta * _kl(u, uniform),
        n_clusters,
        AUTO_FLOOR / n_clusters,
    )
    u = auto_target(torch.as_tensor(m)).numpy()
    np.testing.assert_allclose(u, expected, atol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_auto_target_asks_small_clusters_for_more(seed):
    """u_k / m_k decreases with m_k: no cluster is pushed further down."""
    m = _random_shares(np.random.default_rng(seed), 10)
    u = auto_target(torch.as_tensor(m)).numpy()
    ratio = (u / m)[np.argsort(m)]
    assert np.all(np.diff(ratio) <= 1e-12)
    assert u.min() >= AUTO_FLOOR / 10 - 1e-15
    assert u[np.argmin(m)] >= m.min() and u[np.argmax(m)] <= m.max()


def test_model_that_follows_its_targets_drifts_back_to_equal_shares():
    """A fixed point of m ← auto_target(m) is uniform, however unequal the start."""
    m = torch.tensor([0.97, 0.01, 0.01, 0.005, 0.005], dtype=torch.float64)
    for _ in range(200):
        m = auto_target(m)
    torch.testing.assert_close(m, torch.full((5,), 0.2, dtype=torch.float64))


def test_estimate_moves_towards_the_mean_prediction_at_its_rate():
    estimate = PriorEstimate(2, 4, rate=0.25)
    batch = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    estimate.update(1, batch)
    torch.testing.assert_close(
        estimate.estimate(1), torch.tensor([0.4375, 0.1875, 0.1875, 0.1875]).double()
    )
    torch.testing.assert_close(estimate.estimate(0), torch.full((4,), 0.25).double())


@pytest.fixture(scope="module")
def long_tailed_blobs():
    X, y = make_blobs(
        n_samples=list(BLOB_SIZES),
        n_features=16,
        cluster_std=2.0,
        center_box=(-6, 6),
        random_state=0,
    )
    return X, y


@pytest.mark.slow
@pytest.mark.parametrize("Estimator", [EntropyClustering, MaxMarginEntropyClustering])
def test_auto_prior_finds_the_sizes_of_long_tailed_blobs(Estimator, long_tailed_blobs):
    X, y = long_tailed_blobs
    kmeans = KMeans(4, n_init=10, random_state=0).fit(X)
    model = Estimator(n_clusters=4, prior="auto", random_state=0).fit(X)
    assert adjusted_rand_score(y, model.labels_) >= (
        adjusted_rand_score(y, kmeans.labels_) - 0.02
    )
    shares = np.array(BLOB_SIZES) / sum(BLOB_SIZES)
    # each cluster's estimated share next to the share of its blob
    blob_of_cluster = [np.bincount(y[model.labels_ == k]).argmax() for k in range(4)]
    np.testing.assert_allclose(model.prior_, shares[blob_of_cluster], atol=0.05)
    assert model.prior_.sum() == pytest.approx(1.0)


def test_uniform_prior_splits_the_largest_blob(long_tailed_blobs):
    """What ``prior="auto"`` is for: equal targets split the large blob."""
    X, y = long_tailed_blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MaxMarginEntropyClustering(n_clusters=4, random_state=0).fit(X)
    assert adjusted_rand_score(y, model.labels_) < 0.9
    assert not hasattr(model, "prior_")


def test_auto_prior_attribute_follows_the_fit(long_tailed_blobs):
    X, _ = long_tailed_blobs
    model = EntropyClustering(n_clusters=4, prior="auto", max_iter=12, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
        assert model.prior_.shape == (4,)
        assert np.isfinite(model.score(X))
        restored = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(restored.predict(X), model.predict(X))
        assert clone(model).prior == "auto"
        model.set_params(prior=None).fit(X)
    assert not hasattr(model, "prior_")


def test_partial_fit_continues_the_estimate(long_tailed_blobs):
    X, _ = long_tailed_blobs
    model = CollisionCEClustering(n_clusters=4, prior="auto", random_state=0)
    for _ in range(12):  # past the 10 epochs of the margin's warm-up
        model.partial_fit(X)
    first = model._prior_means.copy()
    model.partial_fit(X)
    assert not np.allclose(model._prior_means, first)
    assert np.abs(model._prior_means - first).max() < 0.1  # continued, not reset


def test_unknown_prior_string_is_refused(long_tailed_blobs):
    X, _ = long_tailed_blobs
    with pytest.raises(ValueError, match="prior"):
        EntropyClustering(n_clusters=4, prior="estimated").fit(X)


@pytest.mark.slow
def test_empty_cluster_warning_names_the_estimated_prior():
    """Two blobs asked for four clusters: the warning names prior='auto'."""
    X, _ = make_blobs(n_samples=[300, 300], n_features=2, random_state=0)
    model = MaxMarginEntropyClustering(
        n_clusters=4, prior="auto", fairness_weight=0.1, random_state=0
    )
    with pytest.warns(ConvergenceWarning, match="prior='auto'"):
        model.fit(X)
    assert len(np.unique(model.labels_)) < 4


@pytest.mark.slow
@pytest.mark.parametrize("factor", [1e-3, 1e3])
def test_auto_prior_is_scale_free(factor, long_tailed_blobs):
    """X and c·X give the same clustering and the same estimated shares."""
    X, _ = long_tailed_blobs
    model = MaxMarginEntropyClustering(n_clusters=4, prior="auto", random_state=0)
    reference = clone(model).fit(X)
    scaled = clone(model).fit(X * factor)
    assert adjusted_rand_score(reference.labels_, scaled.labels_) == 1.0
    np.testing.assert_allclose(scaled.prior_, reference.prior_, atol=1e-4)
