"""Neighbour views: views of each training sample drawn from its k nearest neighbours.

With ``n_neighbors=k``, σ_i in training is the mean of σ over sample i and
two of its k nearest neighbours, drawn anew for each mini-batch. These tests
check the mining (exact against brute force, memory O(n·k) on a memory map),
that both trainers train on such views, where ``partial_fit`` and dask mine
(within the chunk), determinism and the errors for a bad ``n_neighbors``.
"""

import pickle
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import NearestNeighbors

from skentropy import (
    EntropyClustering,
    MaxMarginEntropyClustering,
)
from skentropy._estimators import _neighbors, _training, _views
from skentropy._estimators._neighbors import nearest_neighbors

from helpers import SmallNet, by_name, each_softmax_estimator, make_images

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def brute_force_neighbors(X, n_neighbors, candidates=None):
    """Indices of the k nearest candidates of each row, itself excluded."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    squared = np.square(X[:, None, :] - X[None, :, :]).sum(axis=2)
    np.fill_diagonal(squared, np.inf)
    if candidates is not None:
        squared[:, ~candidates] = np.inf
    return np.argsort(squared, axis=1, kind="stable")[:, :n_neighbors]


def blobs(n_samples=600, n_features=8, seed=0):
    """Three Gaussian blobs, in random order."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(3, n_features))
    y = rng.integers(3, size=n_samples)
    return centers[y] + rng.normal(size=(n_samples, n_features)), y


class ViewsSpy:
    """Records the batches, their rows and the views of NeighborViews calls."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = _views.NeighborViews.__call__

        def spy(views, batch, rows, generator):
            output = original(views, batch, rows, generator)
            if isinstance(rows, torch.Tensor):
                rows = rows.cpu().numpy()
            rows = np.arange(views.neighbors.shape[0])[rows]
            self.calls.append(
                (
                    views,
                    batch.detach().cpu().numpy().copy(),
                    rows,
                    output.detach().cpu().numpy().copy(),
                )
            )
            return output

        monkeypatch.setattr(_views.NeighborViews, "__call__", spy)


class MiningSpy:
    """Records the shape of the X that each call of the mining receives."""

    def __init__(self, monkeypatch):
        self.shapes = []

        def spy(X, n_neighbors, **kwargs):
            self.shapes.append(X.shape)
            return nearest_neighbors(X, n_neighbors, **kwargs)

        monkeypatch.setattr(_training, "nearest_neighbors", spy)


def flip(batch, generator=None):
    """A fixed augmentation: the images mirrored."""
    return batch.flip(-1)


# -- mining ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ["exact", "tree"])
def test_mining_is_exact(dtype, algorithm, monkeypatch, global_random_seed):
    # Blocks of 64 rows, so that the running top-k crosses many blocks.
    monkeypatch.setattr(_neighbors, "_BLOCK_ROWS", 64)
    rng = np.random.default_rng(global_random_seed)
    X = (rng.normal(size=(300, 5)) * 100 + 1e3).astype(dtype)
    candidates = rng.random(300) < 0.8
    for mask in (None, candidates):
        indices, distances = nearest_neighbors(
            X, 7, candidates=mask, algorithm=algorithm
        )
        expected = brute_force_neighbors(X, 7, mask)
        assert_array_equal(indices, expected)
        assert distances.dtype == dtype
        true_distances = np.linalg.norm(
            X[:, None].astype(np.float64) - X[expected].astype(np.float64), axis=2
        )
        assert_allclose(distances, true_distances, rtol=1e-4)
    # as scikit-learn's brute force finds them (its float32 rounding aside)
    _, found = NearestNeighbors(n_neighbors=8, algorithm="brute").fit(X).kneighbors(X)
    indices, _ = nearest_neighbors(X, 7, algorithm=algorithm)
    assert np.mean(indices == found[:, 1:]) > 0.99


def test_hnsw_finds_most_neighbors():
    pytest.importorskip("faiss")
    X = blobs(1000, 16)[0]
    indices, _ = nearest_neighbors(X, 10, algorithm="hnsw")
    expected = brute_force_neighbors(X, 10)
    recall = np.mean(
        [len(np.intersect1d(a, b)) / 10 for a, b in zip(indices, expected, strict=True)]
    )
    assert recall > 0.9
    assert not np.any(indices == np.arange(len(X))[:, None])


@pytest.mark.slow
def test_mining_memory_is_n_times_k(tmp_path):
    # A memory map of 6 MB: the mining reads it block by block (torch copies
    # of blocks, one block of distances), so numpy holds the result, O(n·k),
    # and no copy of X nor any n × n matrix.
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.normal(size=(12_000, 128)).astype(np.float32))
    X_map = np.load(tmp_path / "X.npy", mmap_mode="r")
    nearest_neighbors(X_map[:100], 5)  # imports, outside the traced memory
    tracemalloc.start()
    try:
        indices, distances = nearest_neighbors(X_map, 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result = indices.nbytes + distances.nbytes  # 12,000 × 5 × 12 bytes
    assert peak < result + 0.05 * X_map.nbytes
    assert indices.shape == (12_000, 5)


def test_fit_with_neighbors_on_a_memmap_copies_no_x(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.normal(size=(8_000, 128)))  # 8 MB
    X_map = np.load(tmp_path / "X.npy", mmap_mode="r")
    estimator = EntropyClustering(
        n_clusters=5, n_neighbors=5, n_heads=1, max_iter=1, random_state=0
    )
    estimator.fit(X_map[:1000])  # imports, outside the traced memory
    tracemalloc.start()
    try:
        estimator.fit(X_map)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    neighbors = 8_000 * 5 * (8 + 8)  # indices and distances
    assert peak < neighbors + 0.2 * X_map.nbytes


# -- both trainers train on neighbour views ---------------------------------


@each_softmax_estimator
def test_shallow_trainer_uses_neighbor_views(Estimator, monkeypatch):
    X, _ = blobs()
    spy = ViewsSpy(monkeypatch)
    model = Estimator(3, n_neighbors=4, max_iter=2, random_state=0).fit(X)
    expected = brute_force_neighbors(X, 4)
    assert spy.calls
    for views, batch, rows, output in spy.calls:
        assert views.n_views == 3
        n = len(rows)
        assert output.shape == (3 * n, X.shape[1])
        assert_array_equal(output[:n], batch)
        assert_array_equal(batch, X[rows])
        # the other views of sample i are two distinct of its 4 nearest
        # neighbours
        drawn = [np.flatnonzero((X == view).all(axis=1)) for view in output[n:]]
        assert all(
            np.isin(found, expected[row]).any()
            for found, row in zip(drawn, np.tile(rows, 2), strict=True)
        )
        assert not any(
            np.array_equal(a, b) for a, b in zip(drawn[:n], drawn[n:], strict=True)
        )
    plain = Estimator(3, max_iter=2, random_state=0).fit(X)
    assert not np.allclose(model.predict_proba(X), plain.predict_proba(X))


def test_deep_trainer_uses_neighbor_and_augmented_views(monkeypatch):
    pytest.importorskip("skorch")
    X, _ = make_images(n_per_class=20)
    spy = ViewsSpy(monkeypatch)
    model = EntropyClustering(
        3,
        module=SmallNet,
        augment=flip,
        n_augmentations=2,
        n_neighbors=3,
        batch_size=30,
        max_iter=2,
        random_state=0,
    ).fit(X)
    expected = brute_force_neighbors(X, 3)
    assert len(spy.calls) == 2 * 2  # two epochs of two batches
    for views, batch, rows, output in spy.calls:
        n = len(rows)
        assert views.n_views == 6  # (the sample, 2 neighbours) × 2 augmentations
        assert output.shape == (6 * n, *X.shape[1:])
        assert_array_equal(output[:n], batch[..., ::-1])
        assert_array_equal(batch, X[rows])
        neighbours = output[n : 3 * n, ..., ::-1]
        assert_array_equal(output[3 * n :], output[: 3 * n])  # flip is fixed
        for row, view in zip(np.tile(rows, 2), neighbours, strict=True):
            assert any(np.array_equal(view, X[j]) for j in expected[row])
    # the fitted net holds no neighbour views, hence no reference to X
    assert not isinstance(model.net_.views, _views.NeighborViews)
    assert X.tobytes() not in pickle.dumps(model)
    assert X[:4].tobytes() in pickle.dumps(X)  # as it would be found


def test_deep_trainer_without_augmentation():
    pytest.importorskip("skorch")
    X, y = make_images(n_per_class=20)
    params = dict(module=SmallNet, batch_size=30, max_iter=2, random_state=0)
    model = EntropyClustering(3, n_neighbors=3, **params).fit(X)
    again = EntropyClustering(3, n_neighbors=3, **params).fit(X)
    plain = EntropyClustering(3, **params).fit(X)
    assert_array_equal(model.predict_proba(X), again.predict_proba(X))
    assert not np.allclose(model.predict_proba(X), plain.predict_proba(X))


# -- once per fit; within the chunk for partial_fit and dask ----------------


def test_neighbors_mined_once_per_fit(monkeypatch):
    X, _ = blobs()
    spy = MiningSpy(monkeypatch)
    EntropyClustering(3, n_neighbors=5, n_init=2, max_iter=2, random_state=0).fit(X)
    assert spy.shapes == [X.shape]
    EntropyClustering(3, max_iter=2, random_state=0).fit(X)
    assert spy.shapes == [X.shape]  # none without n_neighbors


def test_partial_fit_mines_within_the_chunk(monkeypatch):
    X, _ = blobs()
    mining, views = MiningSpy(monkeypatch), ViewsSpy(monkeypatch)
    model = EntropyClustering(3, n_neighbors=5, random_state=0)
    for start in range(0, 600, 200):
        model.partial_fit(X[start : start + 200])
    assert mining.shapes == [(200, 8)] * 3
    # the views of the last chunk are neighbours within it
    chunk = X[400:]
    expected = brute_force_neighbors(chunk, 5)
    _, batch, rows, output = views.calls[-1]
    n = len(rows)
    for row, view in zip(np.tile(rows, 2), output[n:], strict=True):
        assert any(np.array_equal(view, chunk[j]) for j in expected[row])
    # a chunk with no more rows than n_neighbors has too few neighbours
    with pytest.raises(ValueError, match="partial_fit, in the chunk"):
        model.partial_fit(X[:5])


def test_dask_blocks_mine_within_the_block(monkeypatch):
    da = pytest.importorskip("dask.array")
    from skentropy.dask import partial_fit_blocks

    X, _ = blobs()
    spy = MiningSpy(monkeypatch)
    model = EntropyClustering(3, n_neighbors=5, random_state=0)
    partial_fit_blocks(model, da.from_array(X, chunks=(300, 8)), n_passes=2)
    assert spy.shapes == [(300, 8)] * 4
    assert model.n_iter_ == 4


# -- determinism and errors --------------------------------------------------


@pytest.mark.parametrize(
    "Estimator", [EntropyClustering, MaxMarginEntropyClustering], ids=by_name
)
def test_deterministic_under_random_state(Estimator, monkeypatch):
    X, _ = blobs()
    spy = ViewsSpy(monkeypatch)
    first = Estimator(3, n_neighbors=5, max_iter=3, random_state=1).fit(X)
    drawn_first = [output for *_, output in spy.calls]
    spy.calls.clear()
    second = Estimator(3, n_neighbors=5, max_iter=3, random_state=1).fit(X)
    drawn_second = [output for *_, output in spy.calls]
    assert_array_equal(first.labels_, second.labels_)
    assert_array_equal(first.coef_, second.coef_)
    assert len(drawn_first) == len(drawn_second)
    for a, b in zip(drawn_first, drawn_second, strict=True):
        assert_array_equal(a, b)
    spy.calls.clear()
    Estimator(3, n_neighbors=5, max_iter=3, random_state=2).fit(X)
    assert not all(
        a.shape == b.shape and np.array_equal(a, b)
        for a, (*_, b) in zip(drawn_first, spy.calls, strict=False)
    )


@each_softmax_estimator
def test_bad_n_neighbors(Estimator):
    X, _ = blobs(n_samples=30)
    with pytest.raises(ValueError, match="n_neighbors"):
        Estimator(3, n_neighbors=0).fit(X)
    with pytest.raises(ValueError, match="n_neighbors=30 must be smaller than the"):
        Estimator(3, n_neighbors=30).fit(X)
    with pytest.raises(ValueError, match="n_neighbors=50 must be smaller than the"):
        Estimator(3, n_neighbors=50).fit(X)
    # only samples of positive weight are neighbours
    weight = np.r_[np.ones(10), np.zeros(20)]
    with pytest.raises(ValueError, match="n_neighbors=10 .* positive weight"):
        Estimator(3, n_neighbors=10).fit(X, sample_weight=weight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        Estimator(3, n_neighbors=29, max_iter=1).fit(X)
        Estimator(3, n_neighbors=1, max_iter=1).fit(X)  # one neighbour drawn
