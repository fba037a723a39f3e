"""Input handling of the pseudo-label functions: weights, array-likes, errors.

Every public function of :mod:`skentropy.pseudo_labels` takes sample weights
of any finite magnitude (normalized without overflow or underflow), array-likes
as float64, and names in its errors the argument the caller passed. SeLa's and
MI-ADM's solvers (``_sinkhorn``, ``_forward_kl``) take weights of any
magnitude too.
"""

import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from skentropy import SeLaClustering
from skentropy.pseudo_labels import (
    collision_ce_labels,
    collision_ce_objective,
    kkt_residual,
    reverse_ce_labels,
    reverse_ce_objective,
)
from skentropy.pseudo_labels._forward_kl import forward_kl_labels
from skentropy.pseudo_labels._sinkhorn import sinkhorn_labels

N_SAMPLES, N_CLASSES = 200, 4


def _solver(function):
    return lambda probs, labels, **kwargs: function(probs, **kwargs)


def _evaluator(function, **fixed):
    return lambda probs, labels, **kwargs: function(probs, labels, **fixed, **kwargs)


# Every public function of skentropy.pseudo_labels, called as f(probs, labels)
PUBLIC_FUNCTIONS = {
    "reverse_ce_labels": _solver(reverse_ce_labels),
    "reverse_ce_labels_em": _solver(
        lambda probs, **kwargs: reverse_ce_labels(probs, method="em", **kwargs)
    ),
    "collision_ce_labels": _solver(collision_ce_labels),
    "collision_ce_labels_em": _solver(
        lambda probs, **kwargs: collision_ce_labels(
            probs, method="em", tol=1e-4, **kwargs
        )
    ),
    "reverse_ce_objective": _evaluator(reverse_ce_objective),
    "collision_ce_objective": _evaluator(collision_ce_objective),
    "kkt_residual_reverse": _evaluator(kkt_residual, loss="reverse"),
    "kkt_residual_collision": _evaluator(kkt_residual, loss="collision"),
}
SOLVERS = [name for name in PUBLIC_FUNCTIONS if "_labels" in name]
EVALUATORS = [name for name in PUBLIC_FUNCTIONS if name not in SOLVERS]
# 1e308: the sum of 200 of them overflows float64
MAGNITUDES = [1e-300, 1.0, 1e300, 1e308]


@pytest.fixture(scope="module")
def problem():
    """σ whose float32 rounding leaves the float64 simplex tolerance, and y."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(N_CLASSES, 0.7), N_SAMPLES)
    probs /= probs.sum(axis=1, keepdims=True)
    assert np.abs(probs.sum(axis=1) - 1.0).max() <= 3e-16
    single = probs.astype(np.float32).astype(np.float64)
    assert np.abs(single.sum(axis=1) - 1.0).max() > 1e-8
    labels = rng.dirichlet(np.ones(N_CLASSES), N_SAMPLES)
    return probs, labels


def _call(name, probs, labels, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return PUBLIC_FUNCTIONS[name](probs, labels, **kwargs)


def _assert_same(result, expected):
    if isinstance(expected, float):
        assert np.isfinite(result)
        np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(result, expected, rtol=1e-8, atol=1e-10)


# ---- sample weights of any magnitude -----------------------------------------


@pytest.mark.parametrize("magnitude", MAGNITUDES)
@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_equal_weights_of_any_magnitude_give_the_unweighted_answer(
    name, magnitude, problem
):
    probs, labels = problem
    expected = _call(name, probs, labels)
    weights = np.full(N_SAMPLES, magnitude)
    _assert_same(_call(name, probs, labels, sample_weight=weights), expected)


@pytest.mark.parametrize("scale", [1e-300, 1e300])
@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_scaling_the_weights_changes_nothing(name, scale, problem):
    probs, labels = problem
    weights = np.random.default_rng(1).uniform(0.5, 1.5, N_SAMPLES)
    expected = _call(name, probs, labels, sample_weight=weights)
    scaled = _call(name, probs, labels, sample_weight=weights * scale)
    if name in SOLVERS:
        # the weights differ by rounding and the collision optimum need not
        # be unique: compare the objective values
        evaluate = reverse_ce_objective if "reverse" in name else collision_ce_objective
        expected = evaluate(probs, expected, sample_weight=weights)
        scaled = evaluate(probs, scaled, sample_weight=weights)
        np.testing.assert_allclose(scaled, expected, rtol=1e-6)
    else:
        _assert_same(scaled, expected)


@pytest.mark.parametrize("magnitude", [1e-300, 1.0, 1e19, 1e300, 1e308])
def test_sinkhorn_labels_with_equal_weights_of_any_magnitude(magnitude, problem):
    log_probs = torch.log(torch.as_tensor(problem[0]))
    expected = sinkhorn_labels(log_probs)
    weights = torch.full((N_SAMPLES,), magnitude, dtype=torch.float64)
    labels = sinkhorn_labels(log_probs, sample_weight=weights)
    assert torch.equal(labels, expected)


@pytest.mark.parametrize("magnitude", [1e-300, 1.0, 1e19, 1e300, 1e308])
def test_forward_kl_labels_with_equal_weights_of_any_magnitude(magnitude, problem):
    log_probs = torch.log(torch.as_tensor(problem[0]))
    expected, _, converged = forward_kl_labels(log_probs)
    assert converged
    weights = torch.full((N_SAMPLES,), magnitude, dtype=torch.float64)
    labels, _, converged = forward_kl_labels(log_probs, sample_weight=weights)
    assert converged
    torch.testing.assert_close(labels, expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    "magnitude",
    [
        1e-300,
        pytest.param(1.0, marks=pytest.mark.slow),
        pytest.param(1e19, marks=pytest.mark.slow),
        1e300,
    ],
)
def test_sela_fits_with_equal_weights_of_any_magnitude(magnitude):
    X, _ = make_blobs(300, n_features=4, centers=3, random_state=0)
    params = {"n_clusters": 3, "max_iter": 20, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = SeLaClustering(**params).fit(X).labels_
        weights = np.full(X.shape[0], magnitude)
        labels = SeLaClustering(**params).fit(X, sample_weight=weights).labels_
    np.testing.assert_array_equal(labels, expected)


# ---- array-likes -------------------------------------------------------------


@pytest.mark.parametrize("container", [list, tuple])
@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_sequences_are_read_as_float64(name, container, problem):
    probs, labels = problem
    expected = _call(name, probs, labels)

    def as_sequence(array):
        return container(container(row) for row in array.tolist())

    result = _call(name, as_sequence(probs), as_sequence(labels))
    _assert_same(result, expected)
    if name in SOLVERS:
        assert isinstance(result, np.ndarray) and result.dtype == np.float64


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_sequences_of_prior_and_weights_are_read_as_float64(name, problem):
    probs, labels = problem
    prior = np.array([0.1, 0.2, 0.3, 0.4]) + np.array([1, 1, 1, -3]) * 1e-9
    weights = np.full(N_SAMPLES, 1e300)  # inf in float32
    expected = _call(name, probs, labels, prior=prior, sample_weight=weights)
    result = _call(
        name, probs, labels, prior=prior.tolist(), sample_weight=weights.tolist()
    )
    _assert_same(result, expected)


@pytest.mark.parametrize("to_input", [np.asarray, torch.as_tensor])
@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_integer_arrays_are_read_as_float64(name, to_input):
    probs = np.eye(N_CLASSES, dtype=np.int64)[np.arange(20) % N_CLASSES]
    labels = np.full((20, N_CLASSES), 1.0 / N_CLASSES)
    labels[:, 0] += 0.1
    labels[:, 1] -= 0.1
    int_labels = probs if name in EVALUATORS else labels
    expected = _call(name, probs.astype(np.float64), int_labels.astype(np.float64))
    result = _call(name, to_input(probs), to_input(int_labels))
    if name in SOLVERS:
        assert result.dtype in (np.float64, torch.float64)
        result = np.asarray(result)
    _assert_same(result, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("to_input", [np.asarray, torch.as_tensor])
@pytest.mark.parametrize("name", SOLVERS)
def test_float_arrays_keep_their_dtype(name, to_input, dtype, problem):
    probs = to_input(problem[0].astype(dtype))
    labels = _call(name, probs, None)
    assert type(labels) is type(probs) and labels.dtype == probs.dtype


# ---- errors name the argument passed -----------------------------------------

BAD_ROWS = {
    "shape": (lambda y: y[:3], "shape"),
    "ndim": (lambda y: y[0], "2-D"),
    "nan": (lambda y: np.where(y == y.max(), np.nan, y), "NaN"),
    "negative": (lambda y: y - y.min(axis=1, keepdims=True) - 0.1, "negative"),
    "simplex": (lambda y: 2.0 * y, "sum to one"),
    "non-numeric": (lambda y: np.full(y.shape, "a"), "numeric"),
}


@pytest.mark.parametrize("bad", BAD_ROWS)
@pytest.mark.parametrize("name", EVALUATORS)
def test_errors_of_evaluators_name_labels(name, bad, problem):
    probs, labels = problem
    spoil, what = BAD_ROWS[bad]
    with pytest.raises(ValueError, match=what) as error:
        _call(name, probs, spoil(labels))
    assert "labels" in str(error.value)
    assert re.search(r"\binit\b", str(error.value)) is None


@pytest.mark.parametrize("bad", BAD_ROWS)
@pytest.mark.parametrize("name", SOLVERS)
def test_errors_of_solvers_name_init(name, bad, problem):
    probs, labels = problem
    spoil, what = BAD_ROWS[bad]
    with pytest.raises(ValueError, match=rf"\binit\b.*{what}|{what}.*\binit\b"):
        _call(name, probs, None, init=spoil(labels))


@pytest.mark.parametrize("bad", [bad for bad in BAD_ROWS if bad != "shape"])
@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_errors_name_probs(name, bad, problem):
    probs, labels = problem
    spoil, what = BAD_ROWS[bad]
    with pytest.raises(ValueError, match=what) as error:
        _call(name, spoil(probs), labels)
    assert "probs" in str(error.value)


@pytest.mark.parametrize(
    "weights, what",
    [
        (np.ones(3), "shape"),
        (np.full(N_SAMPLES, np.inf), "finite"),
        (-np.ones(N_SAMPLES), "non-negative"),
        (np.zeros(N_SAMPLES), "positive sum"),
        (np.full(N_SAMPLES, "a"), "numeric"),
    ],
)
@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_errors_name_sample_weight(name, weights, what, problem):
    probs, labels = problem
    with pytest.raises(ValueError, match=f"sample_weight.*{what}"):
        _call(name, probs, labels, sample_weight=weights)
