"""The checks of parameters and inputs (``skentropy._estimators._params``)."""

import numpy as np
import pytest
from sklearn.utils import check_random_state

from skentropy import EntropyClustering
from skentropy._estimators._params import (
    check_magnitude,
    check_n_samples,
    check_partial_labels,
    persistent_random_state,
    relative_sample_weight,
)

X = np.arange(12.0).reshape(6, 2)


@pytest.mark.parametrize("scale", [1e-300, 1.0, 1e300])
def test_relative_weights_are_the_weights_over_their_largest(scale):
    weights = np.array([0.5, 1.0, 2.0, 0.0, 4.0, 0.25]) * scale
    result = relative_sample_weight(weights, X, np.float64)
    np.testing.assert_allclose(result, weights / weights.max(), rtol=1e-12)
    assert result.max() == 1.0


def test_integer_weights_are_kept_unless_their_total_is_inexact():
    weights = np.array([1, 2, 3, 0, 1, 1])
    np.testing.assert_array_equal(
        relative_sample_weight(weights, X, np.float64), weights
    )
    huge = np.full(6, 2.0**52)  # integers, but a total above 2**53
    np.testing.assert_array_equal(relative_sample_weight(huge, X, np.float64), 1.0)


def test_relative_weights_come_in_the_dtype_asked_for():
    weights = np.full(6, 1e300)  # beyond float32 before the division
    result = relative_sample_weight(weights, X, np.float32)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, 1.0)
    assert relative_sample_weight(None, X, np.float32).dtype == np.float32


@pytest.mark.parametrize(
    "weights, message",
    [
        (-np.ones(6), "Negative values"),
        (np.zeros(6), "non-zero"),
        (np.full(6, np.inf), "infinity"),
        (np.ones(5), r"shape == \(5,\)"),
    ],
)
def test_bad_weights_are_refused(weights, message):
    with pytest.raises(ValueError, match=message):
        relative_sample_weight(weights, X, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_magnitude_bounds_follow_the_dtype(dtype):
    finfo = np.finfo(dtype)
    n_features = 4
    largest = np.sqrt(finfo.max / (4 * n_features))
    check_magnitude(np.full((2, n_features), 0.5 * largest, dtype=dtype))
    with pytest.raises(ValueError, match="so large"):
        check_magnitude(np.full((2, n_features), 2 * largest, dtype=dtype))
    smallest = np.sqrt(finfo.smallest_normal)
    check_magnitude(np.full((2, n_features), 2 * smallest, dtype=dtype))
    with pytest.raises(ValueError, match="so small"):
        check_magnitude(np.full((2, n_features), 0.5 * smallest, dtype=dtype))
    check_magnitude(np.zeros((2, n_features), dtype=dtype))  # all zero: a fit


def test_n_samples_at_least_n_clusters():
    check_n_samples(X, 6)
    with pytest.raises(ValueError, match="n_samples=6 should be >= n_clusters=7"):
        check_n_samples(X, 7)


def test_partial_labels():
    assert check_partial_labels([0, 1], 2, 3, semi_supervised=False) is None
    assert check_partial_labels(None, 2, 3, semi_supervised=True) is None
    assert check_partial_labels([-1, -1], 2, 3, semi_supervised=True) is None
    labels = check_partial_labels([2.0, -1.0], 2, 3, semi_supervised=True)
    assert labels.dtype == np.int64 and labels.tolist() == [2, -1]
    with pytest.raises(ValueError, match="outside -1..2: \\[3\\]"):
        check_partial_labels([3, -1], 2, 3, semi_supervised=True)
    with pytest.raises(ValueError, match="non-integer labels"):
        check_partial_labels([0.5, -1], 2, 3, semi_supervised=True)


def test_partial_fit_draws_from_one_random_state():
    estimator = EntropyClustering(random_state=0)
    first = persistent_random_state(estimator)
    assert persistent_random_state(estimator) is first
    draws = first.randint(1000, size=3)
    np.testing.assert_array_equal(draws, check_random_state(0).randint(1000, size=3))
