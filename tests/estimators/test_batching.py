"""Mini-batches and the k-means++ start (``_batching`` and ``_seeding``)."""

import numpy as np
import pytest
import torch

from skentropy._estimators._batching import (
    batch_bounds,
    epoch_batches,
    n_batches,
    shuffled_batches,
)
from skentropy._estimators._seeding import class_means, init_rows, init_size


@pytest.mark.parametrize(
    "n_samples, batch_size", [(10, 3), (9, 3), (1, 250), (501, 250)]
)
def test_batches_partition_the_rows(n_samples, batch_size):
    expected = -(-n_samples // batch_size)
    assert n_batches(n_samples, batch_size) == expected
    bounds = batch_bounds(n_samples, batch_size)
    assert len(bounds) == expected
    assert [start for start, _ in bounds] == list(range(0, n_samples, batch_size))
    assert bounds[-1][1] == n_samples
    generator = torch.Generator().manual_seed(0)
    batches = list(shuffled_batches(n_samples, batch_size, generator))
    assert len(batches) == expected
    sizes = [len(rows) for rows in batches]
    assert max(sizes) - min(sizes) <= 1  # no small last batch
    np.testing.assert_array_equal(
        np.sort(np.concatenate(batches)), np.arange(n_samples)
    )


def _rows(batch, n_samples):
    """The row indices of a batch given as a slice or as an index array."""
    if isinstance(batch, slice):
        return np.arange(n_samples)[batch]
    return np.asarray(batch)


def test_epoch_batches_cover_every_row_once_in_either_layout():
    rng = np.random.default_rng(0)
    shuffled = rng.normal(size=(2000, 3))
    ordered = np.sort(shuffled, axis=0)  # rows sorted: not a random order
    for X in (shuffled, ordered):
        for contiguous in (True, False):
            generator = torch.Generator().manual_seed(1)
            batches = epoch_batches(X, 100, generator, contiguous=contiguous)
            rows = np.concatenate([_rows(batch, len(X)) for batch in batches])
            np.testing.assert_array_equal(np.sort(rows), np.arange(len(X)))


def test_init_subset_and_class_means():
    assert init_size(250, 10) >= 250
    assert init_size(1, 100) == 300  # at least three rows per cluster
    random_state = np.random.RandomState(0)
    rows = init_rows(100, 30, random_state)
    assert len(rows) == 30 and len(np.unique(rows)) == 30
    assert np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(init_rows(20, 30, random_state), np.arange(20))
    X = np.array([[0.0, 0.0], [2.0, 2.0], [10.0, 0.0], [5.0, 5.0]])
    labels = np.array([0, 0, 1, -1])
    weights = np.array([1.0, 3.0, 1.0, 1.0])
    means = class_means(X, labels, weights, 3)
    np.testing.assert_allclose(means[:2], [[1.5, 1.5], [10.0, 0.0]])
    assert np.isnan(means[2]).all()  # no row labeled 2
