"""Dask: chunked training, blockwise prediction and grid search on a cluster.

Runs against a local :class:`distributed.Client` with two worker processes on
this machine (no network). dask-ml's ``Incremental`` and ``ParallelPostFit``
are tested where they work with a clusterer; ``skentropy.dask`` provides the
same on plain dask arrays, including ``predict_proba``, which dask-ml sizes
from a classifier's ``classes_``.
"""

import importlib
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV

from skentropy import EntropyClustering, MaxMarginEntropyClustering, SeCuClustering

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")
joblib = pytest.importorskip("joblib")
skentropy_dask = importlib.import_module("skentropy.dask")

pytestmark = pytest.mark.dask

CENTERS = [[0, 4], [4, -2], [-4, -2]]
CHUNK = 150


@pytest.fixture(scope="module")
def client():
    """A local cluster: two worker processes of one thread each, no dashboard.

    Two, as joblib runs the tasks of a backend with a single core in the
    calling process.
    """
    with distributed.Client(
        processes=True,
        n_workers=2,
        threads_per_worker=1,
        dashboard_address=None,
    ) as client:
        yield client


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=600, centers=CENTERS, random_state=0)
    return X, y, da.from_array(X, chunks=(CHUNK, -1))


@pytest.mark.slow
def test_incremental_trains_one_epoch_per_block_and_pass(client, blobs):
    X, y, X_dask = blobs
    incremental = dask_ml_wrappers.Incremental(
        EntropyClustering(n_clusters=3, random_state=0), random_state=0
    )
    incremental.fit(X_dask)
    for _ in range(2):  # more passes
        incremental.partial_fit(X_dask)
    estimator = incremental.estimator_
    assert estimator.n_iter_ == 3 * X_dask.numblocks[0]
    labels = incremental.predict(X_dask)
    assert isinstance(labels, da.Array)
    labels = labels.compute()
    assert_array_equal(labels, estimator.predict(X))
    assert adjusted_rand_score(y, labels) > 0.95


@pytest.mark.slow
def test_parallel_post_fit_predicts_and_transforms_blockwise(client, blobs):
    X, _, X_dask = blobs
    wrapper = dask_ml_wrappers.ParallelPostFit(
        MaxMarginEntropyClustering(n_clusters=3, random_state=0)
    ).fit(X)
    estimator = wrapper.estimator  # fitted in place
    assert_array_equal(wrapper.predict(X_dask).compute(), estimator.predict(X))
    assert_allclose(wrapper.transform(X_dask).compute(), estimator.transform(X))


@pytest.mark.parametrize(
    "Estimator", [EntropyClustering, SeCuClustering], ids=lambda E: E.__name__
)
def test_partial_fit_blocks_and_blockwise_prediction(client, blobs, Estimator):
    X, y, X_dask = blobs
    weight = np.ones(X.shape[0])
    estimator = Estimator(n_clusters=3, random_state=0)
    returned = skentropy_dask.partial_fit_blocks(
        estimator, X_dask, sample_weight=weight, n_passes=3, random_state=0
    )
    assert returned is estimator
    assert estimator.n_iter_ == 3 * X_dask.numblocks[0]

    labels = skentropy_dask.predict(estimator, X_dask)
    probs = skentropy_dask.predict_proba(estimator, X_dask)
    assert isinstance(labels, da.Array) and isinstance(probs, da.Array)
    assert probs.chunks == (X_dask.chunks[0], (3,))
    labels, probs = labels.compute(), probs.compute()
    assert_array_equal(labels, estimator.predict(X))
    assert_allclose(probs, estimator.predict_proba(X))
    assert adjusted_rand_score(y, labels) > 0.95


@pytest.mark.slow
def test_grid_search_runs_on_the_cluster_through_joblib(client, blobs):
    X, y, _ = blobs
    search = GridSearchCV(
        MaxMarginEntropyClustering(n_clusters=3, max_iter=10, random_state=0),
        {"gamma": [1e-3, 1e-2]},
        scoring="adjusted_rand_score",
        cv=2,
    )
    with (
        distributed.get_task_stream(client) as tasks,
        joblib.parallel_backend("dask"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    # the fits ran as tasks on the cluster's workers
    assert any("_fit_and_score" in str(task["key"]) for task in tasks.data)
    assert search.best_params_["gamma"] in (1e-3, 1e-2)
    assert search.best_score_ > 0.9


def test_partial_fit_blocks_aligns_y_and_merges_column_blocks(blobs):
    X, y, _ = blobs
    X_dask = da.from_array(X, chunks=(CHUNK, 1))  # a block per column too
    estimator = EntropyClustering(n_clusters=3, semi_supervised=True, random_state=0)
    given = np.where(np.arange(X.shape[0]) % 10 == 0, y, -1)
    skentropy_dask.partial_fit_blocks(estimator, X_dask, given, shuffle_blocks=False)
    assert estimator.n_iter_ == X.shape[0] // CHUNK
    assert skentropy_dask.predict(estimator, X_dask).chunks == (X_dask.chunks[0],)


def test_helpers_reject_invalid_input(blobs):
    X, y, X_dask = blobs
    estimator = EntropyClustering(n_clusters=3)
    with pytest.raises(TypeError, match="dask.array.Array"):
        skentropy_dask.partial_fit_blocks(estimator, X)
    with pytest.raises(ValueError, match="y must have shape"):
        skentropy_dask.partial_fit_blocks(estimator, X_dask, y[:10])
    with pytest.raises(ValueError, match="n_passes"):
        skentropy_dask.partial_fit_blocks(estimator, X_dask, n_passes=0)
    with pytest.raises(ValueError, match="2-D"):
        skentropy_dask.predict(estimator, X_dask[:, 0])
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        skentropy_dask.predict(estimator, X_dask[X_dask[:, 0] > 0])


def test_missing_dask_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    monkeypatch.delitem(sys.modules, "skentropy.dask")
    with pytest.raises(ImportError, match=r"pip install 'skentropy\[dask\]'"):
        importlib.import_module("skentropy.dask")
