"""Tests of the baseline estimators MI-GD, SeLa and MI-ADM.

Their pseudo-label solvers are tested in ``tests/pseudo_labels/test_sinkhorn.py``
(SeLa) and ``tests/pseudo_labels/test_forward_kl.py`` (MI-ADM).
"""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from skentropy import MIADMClustering, MIGDClustering, SeLaClustering
from skentropy.metrics import clustering_accuracy

from helpers import BASELINE_ESTIMATORS as BASELINES


@pytest.fixture(scope="module")
def blobs():
    centers = [[0, 4], [4, -2], [-4, -2]]
    return make_blobs(n_samples=300, centers=centers, random_state=0)


# ---- estimators --------------------------------------------------------------


@pytest.mark.parametrize("Estimator", BASELINES)
def test_blobs_are_clustered(Estimator, blobs, global_random_seed):
    X, y = blobs
    clustering = Estimator(n_clusters=3, random_state=global_random_seed).fit(X)
    assert adjusted_rand_score(y, clustering.labels_) > 0.9
    assert_array_equal(clustering.predict(X), clustering.labels_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("Estimator", BASELINES)
def test_clone_and_pickle_round_trip(Estimator, blobs):
    X, _ = blobs
    clustering = Estimator(n_clusters=3, max_iter=5, random_state=0)
    assert clone(clustering).get_params() == clustering.get_params()
    clustering.fit(X)
    restored = pickle.loads(pickle.dumps(clustering))
    assert_array_equal(restored.predict(X), clustering.predict(X))
    assert not hasattr(clone(clustering), "labels_")


@pytest.mark.parametrize(
    "Estimator, params",
    [
        (SeLaClustering, {"sinkhorn_power": 0.0}),
        (SeLaClustering, {"em_tol": 0.0}),
        (SeLaClustering, {"em_max_iter": 0}),
        (MIADMClustering, {"em_tol": -1.0}),
        (MIADMClustering, {"em_max_iter": 0}),
        (MIGDClustering, {"weight_decay": -1.0}),
        (MIGDClustering, {"fairness_weight": -1.0}),
    ],
)
def test_bad_parameters_raise(Estimator, params, blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match=next(iter(params))):
        Estimator(n_clusters=3, **params).fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_migd_weight_decay_shrinks_the_bias_too(blobs):
    X, _ = blobs
    # shifted data need a large bias; weight decay on all parameters shrinks it
    X = X + 20.0
    free = MIGDClustering(n_clusters=3, weight_decay=0.0, random_state=0).fit(X)
    decayed = MIGDClustering(n_clusters=3, weight_decay=1.0, random_state=0).fit(X)
    assert np.abs(decayed.intercept_).sum() < np.abs(free.intercept_).sum()
    assert np.abs(decayed.coef_).sum() < np.abs(free.coef_).sum()


def test_sela_full_schedule_clusters_blobs_and_checks_heads():
    X, y = make_blobs(
        n_samples=300, centers=[[0, 4], [4, -2], [-4, -2]], random_state=0
    )
    model = SeLaClustering(3, schedule="full", max_iter=30, random_state=0).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.9
    with pytest.raises(ValueError, match="n_heads=1"):
        SeLaClustering(3, schedule="full", n_heads=2).fit(X)


def test_sela_full_schedule_learns_given_labels():
    # with weak supervision the labeled rows add their cross-entropy to the
    # loss of the epoch's Sinkhorn labels, as with schedule="batch"
    X, y = make_blobs(
        n_samples=300, centers=[[0, 4], [4, -2], [-4, -2]], random_state=0
    )
    given = np.full(300, -1)
    given[:30] = y[:30]
    model = SeLaClustering(
        3, schedule="full", semi_supervised=True, max_iter=30, random_state=0
    ).fit(X, given)
    assert (model.labels_ == y).mean() > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("Estimator", BASELINES)
def test_weak_supervision_improves_accuracy_on_unlabeled_digits(Estimator):
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    gains = []
    for seed in range(3):
        labeled = np.random.default_rng(seed).random(len(y)) < 0.1
        partial = np.where(labeled, y, -1)
        scores = []
        for semi_supervised in (False, True):
            # 10 epochs: gains of 0.14 to 0.6 per seed (measured on this data)
            model = Estimator(
                10, semi_supervised=semi_supervised, max_iter=10, random_state=seed
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X, partial)
            scores.append(clustering_accuracy(y[~labeled], model.labels_[~labeled]))
        gains.append(scores[1] - scores[0])
    assert np.mean(gains) >= 0.02
