"""Hostile but realistic inputs, over every public estimator.

Each case asserts its expected outcome: a specific error whose message names
the problem, a specific warning, or the correct result (the same clustering
as the clean input, or the blobs found) — never only "does not crash". The
interrupt cases check that a fit is atomic: whatever raises inside ``fit`` or
``partial_fit`` (a KeyboardInterrupt at a random mini-batch included), the
estimator is left exactly as it was, unfitted or with its previous model bit
for bit.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import adjusted_rand_score
from torch import nn

from skentropy import SeCuClustering
from skentropy._estimators import _secu_steps
from skentropy._estimators._training import TrainingLoss

from helpers import (
    ESTIMATORS,
    SOFTMAX_ESTIMATORS,
    each_estimator,
    each_softmax_estimator,
    fit_quietly,
    make_fast,
)

X, Y = make_blobs(300, n_features=4, centers=3, random_state=0)
X.setflags(write=False)


def make(Estimator, **params):
    """A quick instance for the three blobs."""
    return make_fast(Estimator, **{"n_clusters": 3, "max_iter": 5, **params})


def snapshot(estimator, X=X):
    """What must not change when a fit fails: attributes and predictions."""
    names = set(vars(estimator))
    if not hasattr(estimator, "n_iter_"):
        return names, None
    return names, estimator.predict_proba(X)


def assert_unchanged(estimator, before, X=X):
    names, probs = before
    assert set(vars(estimator)) == names
    if probs is None:
        with pytest.raises(NotFittedError):
            estimator.predict(X)
    else:
        np.testing.assert_array_equal(estimator.predict_proba(X), probs)


# -- Bad input: a ValueError (or TypeError) that names the problem ------------


def _with_entry(value):
    bad = X.copy()
    bad[7, 2] = value
    return bad


BAD_X = {
    "nan": (_with_entry(np.nan), ValueError, "contains NaN"),
    "inf": (_with_entry(np.inf), ValueError, "infinity"),
    "huge": (X * 1e300, ValueError, "so large that squared distances"),
    "tiny": (X * 1e-300, ValueError, "so small that squared distances"),
    "one row": (X[:1], ValueError, "n_samples=1 should be >= n_clusters=3"),
    "fewer rows than clusters": (X[:2], ValueError, "n_samples=2 should be >="),
    "no rows": (X[:0], ValueError, "0 sample"),
    "no features": (X[:, :0], ValueError, "0 feature"),
    "words": (np.full((300, 4), "a"), ValueError, "could not convert string"),
    "complex": (X + 1j, ValueError, "Complex data not supported"),
    "sparse": (sp.csr_matrix(X), TypeError, "Sparse data was passed"),
    "3-D": (X.reshape(300, 2, 2), ValueError, "dim 3"),
    "1-D": (X[:, 0], ValueError, "Expected 2D array"),
}


@each_estimator
@pytest.mark.parametrize("case", BAD_X, ids=str)
def test_bad_X_is_refused_by_name(Estimator, case):
    bad, error, message = BAD_X[case]
    estimator = make(Estimator)
    with pytest.raises(error, match=message):
        estimator.fit(bad)
    with pytest.raises(NotFittedError):  # and nothing of it was kept
        estimator.predict(X)


BAD_WEIGHTS = {
    "negative": (-np.ones(300), "Negative values"),
    "nan": (np.full(300, np.nan), "contains NaN"),
    "inf": (np.full(300, np.inf), "infinity"),
    "all zero": (np.zeros(300), "at least one non-zero"),
    "wrong length": (np.ones(299), r"sample_weight.shape == \(299,\)"),
    "2-D": (np.ones((300, 1)), "1D array"),
}


@each_estimator
@pytest.mark.parametrize("case", BAD_WEIGHTS, ids=str)
def test_bad_sample_weight_is_refused_by_name(Estimator, case):
    weight, message = BAD_WEIGHTS[case]
    with pytest.raises(ValueError, match=message):
        make(Estimator).fit(X, sample_weight=weight)


@each_estimator
@pytest.mark.parametrize(
    "value", [0, 2.5, "3", None], ids=["zero", "float", "string", "None"]
)
def test_bad_n_clusters_is_refused_by_name(Estimator, value):
    with pytest.raises(ValueError, match="'n_clusters' parameter"):
        make(Estimator, n_clusters=value).fit(X)


@each_softmax_estimator
@pytest.mark.parametrize(
    "prior, message",
    [
        ([0.5, 0.5], "prior"),
        ([0.5, 0.6, -0.1], "prior"),
        ([0.2, 0.2, 0.2], "prior"),
        ("equal", "'prior' parameter"),
    ],
    ids=["wrong length", "negative", "not summing to one", "unknown string"],
)
def test_bad_prior_is_refused_by_name(Estimator, prior, message):
    with pytest.raises(ValueError, match=message):
        make(Estimator, prior=prior).fit(X)


@each_estimator
def test_predict_checks_its_input_against_the_fit(Estimator):
    estimator = make(Estimator)
    with pytest.raises(NotFittedError):
        estimator.predict(X)
    fit_quietly(estimator, X)
    with pytest.raises(ValueError, match="X has 3 features"):
        estimator.predict(X[:, :3])
    with pytest.raises(ValueError, match="contains NaN"):
        estimator.predict(_with_entry(np.nan))


@each_estimator
def test_dataframe_columns_are_checked_by_name(Estimator):
    frame = pd.DataFrame(X, columns=list("abcd"))
    estimator = fit_quietly(make(Estimator), frame)
    np.testing.assert_array_equal(estimator.feature_names_in_, list("abcd"))
    with pytest.raises(ValueError, match="same order"):
        estimator.predict(frame[list("dcba")])


# -- Odd but valid input: the right result -------------------------------------


def _same_clustering(a, b):
    assert adjusted_rand_score(a, b) == 1.0


VARIANTS = {
    "Fortran order": lambda: np.asfortranarray(X),
    "negative strides": lambda: X[::-1][::-1],
    "object dtype": lambda: X.astype(object),
    "numbers as strings": lambda: X.astype(str),
    "DataFrame": lambda: pd.DataFrame(X, columns=list("abcd")),
    "list of lists": lambda: X.tolist(),
}


@each_estimator
@pytest.mark.parametrize("case", VARIANTS, ids=str)
def test_other_containers_give_the_same_clustering(Estimator, case):
    reference = fit_quietly(make(Estimator), X)
    estimator = fit_quietly(make(Estimator), VARIANTS[case]())
    np.testing.assert_allclose(
        estimator.predict_proba(X), reference.predict_proba(X), rtol=1e-10, atol=0
    )


@each_estimator
def test_read_only_memmap_gives_the_same_clustering(Estimator, tmp_path):
    np.save(tmp_path / "X.npy", X)
    X_map = np.load(tmp_path / "X.npy", mmap_mode="r")
    reference = fit_quietly(make(Estimator), X)
    estimator = fit_quietly(make(Estimator), X_map)
    np.testing.assert_array_equal(
        estimator.predict_proba(X_map), reference.predict_proba(X)
    )
    del X_map


@each_estimator
@pytest.mark.parametrize(
    "data, agreement",
    [
        pytest.param(lambda: X * 1e150, 1.0, id="1e150"),
        pytest.param(lambda: X * 1e-150, 1.0, id="1e-150"),
        pytest.param(lambda: X.astype(np.float16), 0.95, id="float16"),
        pytest.param(lambda: np.round(X * 10).astype(np.int8), 0.95, id="int8"),
    ],
)
def test_scales_and_dtypes_give_the_same_clustering(Estimator, data, agreement):
    X_case = data()
    reference = fit_quietly(make(Estimator), X).labels_
    labels = fit_quietly(make(Estimator), X_case).labels_
    assert adjusted_rand_score(reference, labels) >= agreement


@each_estimator
def test_duplicate_rows_share_their_cluster(Estimator):
    X_dup = np.repeat(X[::10], 10, axis=0)  # 30 distinct rows, 10 times each
    labels = fit_quietly(make(Estimator), X_dup).labels_.reshape(30, 10)
    assert np.all(labels == labels[:, :1])


@each_estimator
@pytest.mark.parametrize(
    "degenerate", [np.zeros((300, 4)), np.ones((300, 4))], ids=["zeros", "constant"]
)
def test_rows_all_equal_warn_of_one_cluster(Estimator, degenerate):
    with pytest.warns(ConvergenceWarning, match="2 of n_clusters=3 clusters hold no"):
        make(Estimator).fit(degenerate)


@each_estimator
@pytest.mark.parametrize("magnitude", [1e-300, 1e-5, 1e19, 1e308])
def test_equal_weights_of_any_magnitude_change_nothing(Estimator, magnitude):
    reference = fit_quietly(make(Estimator), X)
    weighted = fit_quietly(make(Estimator), X, sample_weight=np.full(300, magnitude))
    np.testing.assert_array_equal(weighted.labels_, reference.labels_)
    np.testing.assert_allclose(
        weighted.predict_proba(X), reference.predict_proba(X), rtol=1e-6, atol=1e-9
    )


@each_estimator
def test_pickle_and_clone(Estimator):
    estimator = fit_quietly(make(Estimator), X)
    restored = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(restored.predict_proba(X), estimator.predict_proba(X))
    with pytest.raises(NotFittedError):
        clone(estimator).predict(X)


# -- Atomic fits: a failed fit leaves the estimator as it was -----------------


@each_estimator
def test_failed_first_fit_leaves_it_unfitted(Estimator):
    estimator = make(Estimator)
    with pytest.raises(ValueError, match="n_samples=2"):
        estimator.fit(X[:2])
    assert not hasattr(estimator, "n_features_in_")
    with pytest.raises(NotFittedError):
        estimator.predict(X)


@each_estimator
def test_failed_refit_keeps_the_fitted_model(Estimator):
    estimator = fit_quietly(make(Estimator), X)
    before = snapshot(estimator)
    with pytest.raises(ValueError, match="n_samples=2"):
        estimator.fit(X[:2, :3])
    assert estimator.n_features_in_ == 4
    assert_unchanged(estimator, before)


@each_estimator
def test_failed_numpy_refit_keeps_the_feature_names(Estimator):
    frame = pd.DataFrame(X, columns=list("abcd"))
    estimator = fit_quietly(make(Estimator), frame)
    with pytest.raises(ValueError, match="n_samples=2"):
        estimator.fit(X[:2])
    np.testing.assert_array_equal(estimator.feature_names_in_, list("abcd"))
    with pytest.raises(ValueError, match="same order"):
        estimator.predict(frame[list("dcba")])


@each_estimator
def test_set_params_after_fit_keeps_predicting_with_the_fitted_model(Estimator):
    estimator = fit_quietly(make(Estimator), X)
    probs = estimator.predict_proba(X)
    estimator.set_params(n_clusters=5)
    np.testing.assert_array_equal(estimator.predict_proba(X), probs)
    assert np.isfinite(estimator.score(X))
    with pytest.raises(ValueError, match="n_clusters=5 from a model fitted with"):
        estimator.partial_fit(X)


def _interrupt_at(monkeypatch, Estimator, at):
    """Raise KeyboardInterrupt in the ``at``-th mini-batch of the training.

    Patches a function that the training calls once per mini-batch (and
    head): the completion of each head's loss of the softmax estimators
    (whether the heads' batch losses were computed one by one or stacked),
    SeCu's dual step. Returns the list of its calls so far.
    """
    if Estimator is SeCuClustering:
        owner, name = _secu_steps, "dual_step"
    else:
        owner, name = TrainingLoss, "_whole"
    original = getattr(owner, name)
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(None)
        if len(calls) == at:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)
    return calls


class TinyNet(nn.Module):
    """A small feature network for the 4 features of the blobs."""

    def __init__(self, input_shape=(4,)):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(input_shape[0], 6), nn.ReLU())

    def forward(self, X):
        return self.layers(X)


FITS = ["first fit", "refit", "warm start", "first partial_fit", "partial_fit"]
CASES = [
    pytest.param(Estimator, how, id=f"{Estimator.__name__}-{how}")
    for Estimator in ESTIMATORS
    for how in FITS
    if how != "warm start" or "warm_start" in Estimator().get_params()
]


def check_interrupt(Estimator, how, monkeypatch, seed, X=X, **params):
    """Interrupt one kind of fit at a random mini-batch; nothing may change."""
    estimator = make(Estimator, batch_size=50, **params)
    if how in ("refit", "warm start", "partial_fit"):
        fit_quietly(estimator, X)
    if how == "warm start":
        estimator.set_params(warm_start=True)
    before = snapshot(estimator, X)
    # A random one among the first mini-batches of the call (6 per epoch).
    at = int(np.random.default_rng(seed).integers(1, 7 if "partial" in how else 20))
    calls = _interrupt_at(monkeypatch, Estimator, at)
    with pytest.raises(KeyboardInterrupt):
        if "partial_fit" in how:
            estimator.partial_fit(X)
        else:
            fit_quietly(estimator, X)
    assert len(calls) == at
    monkeypatch.undo()
    assert_unchanged(estimator, before, X)
    # The estimator still works: the same call now succeeds.
    if "partial_fit" in how:
        estimator.partial_fit(X)
    else:
        fit_quietly(estimator, X)
    assert estimator.predict_proba(X).shape == (len(X), 3)


@pytest.mark.parametrize("Estimator, how", CASES)
def test_interrupt_leaves_the_estimator_as_it_was(
    Estimator, how, monkeypatch, global_random_seed
):
    check_interrupt(Estimator, how, monkeypatch, global_random_seed)


@pytest.mark.slow  # 30 trainings of a network (make check keeps the shallow ones)
@pytest.mark.parametrize(
    "Estimator, how", [case for case in CASES if case.values[0] in SOFTMAX_ESTIMATORS]
)
def test_interrupt_leaves_a_deep_estimator_as_it_was(
    Estimator, how, monkeypatch, global_random_seed
):
    pytest.importorskip("skorch")
    check_interrupt(
        Estimator,
        how,
        monkeypatch,
        global_random_seed,
        X=X.astype(np.float32),
        module=TinyNet,
        lr=1e-2,
    )
