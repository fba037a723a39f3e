"""Robustness: solver and loss properties on random problems, estimators on
degenerate data, persistence across dtypes, reproducibility across processes.

The property tests draw their problems with hypothesis under the profile of
``HYPOTHESIS_PROFILE`` (see conftest.py): "ci" keeps the examples few and
their size N·K at most 20,000; "nightly" draws many more, up to 200,000 entries.
"""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skentropy import losses
from skentropy.pseudo_labels import (
    collision_ce_labels,
    collision_ce_objective,
    kkt_residual,
    reverse_ce_labels,
    reverse_ce_objective,
)

from helpers import ESTIMATORS, each_estimator, fit_quietly

NIGHTLY = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"
MAX_ENTRIES = 200_000 if NIGHTLY else 20_000  # cap on N·K of a problem
MAX_SAMPLES, MAX_CLASSES = 10_000, 1000

SOLVERS = {"reverse": reverse_ce_labels, "collision": collision_ce_labels}
OBJECTIVES = {"reverse": reverse_ce_objective, "collision": collision_ce_objective}
# method="em" runs with a loose tolerance, as in the estimators (em_tol=1e-2).
METHOD_TOL = {"auto": 1e-6, "em": 1e-2}
WARM_START_MIX = 1e-2  # the solvers' warm start (1 − ε)σ + ε/K

CENTERS = [[0, 4], [4, -2], [-4, -2]]


# --------------------------------------------------------------------------
# Random pseudo-label problems
# --------------------------------------------------------------------------


@st.composite
def sizes(draw):
    """(N, K) with N ≤ 10⁴, K ≤ 1000 and N·K ≤ MAX_ENTRIES; either drawn first."""
    if draw(st.booleans()):
        n_classes = draw(st.integers(1, MAX_CLASSES))
        limit = min(MAX_SAMPLES, MAX_ENTRIES // n_classes)
        return draw(st.integers(1, limit)), n_classes
    n_samples = draw(st.integers(1, MAX_SAMPLES))
    limit = min(MAX_CLASSES, MAX_ENTRIES // n_samples)
    return n_samples, draw(st.integers(1, limit))


fairness_weights = st.one_of(
    st.just(0.0),
    st.sampled_from([1.0, 100.0, 1e6]),
    st.floats(-8, 6).map(lambda exponent: 10.0**exponent),
    st.floats(0.0, 1e6),
)


@st.composite
def problems(draw):
    """Predictions σ (rows on the simplex), a prior, λ and sample weights.

    σ is the softmax of scaled normal logits (scale 0 gives uniform rows,
    large scales near one-hot rows), with a share of its rows replaced by
    exact one-hots (all of them at class 0, a collapsed batch, or at random
    classes) and a share of its other entries set to exact zeros.
    """
    n_samples, n_classes = draw(sizes())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.0, 1.0, 5.0, 50.0]))
    logits = scale * rng.standard_normal((n_samples, n_classes))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    zeros = rng.random(probs.shape) < draw(st.sampled_from([0.0, 0.5, 0.95]))
    zeros[np.arange(n_samples), probs.argmax(axis=1)] = False
    probs[zeros] = 0.0
    one_hot = rng.random(n_samples) < draw(st.sampled_from([0.0, 0.2, 1.0]))
    hot_class = (
        np.zeros(n_samples, dtype=int)
        if draw(st.booleans())
        else rng.integers(n_classes, size=n_samples)
    )
    probs[one_hot] = np.eye(n_classes)[hot_class[one_hot]]
    probs /= probs.sum(axis=1, keepdims=True)

    prior = None
    if draw(st.booleans()):
        prior = rng.uniform(0.1, 1.0, n_classes)
        prior /= prior.sum()
    sample_weight = None
    if draw(st.booleans()):
        sample_weight = rng.uniform(0.0, 2.0, n_samples)
        sample_weight[0] = 1.0  # a positive sum
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return {
        "probs": probs.astype(dtype),
        "prior": prior,
        "fairness_weight": draw(fairness_weights),
        "sample_weight": sample_weight,
    }


def warm_start(probs):
    """The solvers' warm start (1 − ε)σ + ε/K, in float64."""
    probs = probs.astype(np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    return (1.0 - WARM_START_MIX) * probs + WARM_START_MIX / probs.shape[1]


# Found by hypothesis. Two classes that no row predicts (σ_ik = 0 in every
# row) tie at the top multiplier of the reverse dual, whose Newton method then
# circled the kink while EM crept (1000 iterations, residual 6e-6).
TIED_ZERO_CLASSES = np.array(
    [
        [
            0.0,
            0.0,
            3.0022668e-02,
            2.0633689e-03,
            8.3868312e-05,
            0.0,
            8.2868463e-01,
            1.3910711e-01,
            3.6194910e-05,
            2.1825356e-06,
        ],
        [
            2.3084156e-04,
            0.0,
            0.0,
            1.7443645e-03,
            1.0263041e-05,
            0.0,
            0.0,
            1.0712732e-03,
            4.0792625e-02,
            9.5615065e-01,
        ],
    ],
    dtype=np.float32,
)
# Found by hypothesis. float32 labels of entries below float32's smallest
# normal number (σ_71 = 7e-45) keep few bits; rounded down they looked as if
# they should grow (dual violation 3e-4): the solvers round them up.
SUBNORMAL_LABELS = np.array(
    [
        [6.6618659e-12, 1.6779468e-17, 1.0],
        [2.6664848e-06, 3.2820814e-20, 9.9999732e-01],
        [1.0, 1.7766448e-08, 2.5223372e-44],
        [4.2105580e-29, 3.7015598e-15, 1.0],
        [0.0, 1.0, 4.9703636e-23],
        [9.2764579e-10, 1.1218431e-05, 9.9998879e-01],
        [1.9978061e-14, 1.0, 3.7240462e-26],
        [1.0, 7.0064923e-45, 9.1320217e-23],
        [1.0, 2.6475574e-18, 1.7239045e-36],
        [1.5977595e-25, 1.9016633e-15, 1.0],
        [3.1593952e-19, 7.6031640e-02, 9.2396837e-01],
        [9.9990606e-01, 8.2586709e-08, 9.3857045e-05],
        [6.0045592e-32, 1.4509908e-20, 1.0],
        [2.6412624e-01, 0.0, 7.3587376e-01],
        [1.0, 5.5036146e-13, 3.2905430e-24],
    ],
    dtype=np.float32,
)


@pytest.mark.parametrize("method", ["auto", "em"])
@pytest.mark.parametrize("loss", ["reverse", "collision"])
@given(problem=problems())
@example(
    problem={
        "probs": TIED_ZERO_CLASSES,
        "prior": None,
        "fairness_weight": 1.0,
        "sample_weight": None,
    }
)
@example(
    problem={
        "probs": SUBNORMAL_LABELS,
        "prior": None,
        "fairness_weight": 1.0,
        "sample_weight": None,
    }
)
# Found by the nightly profile: σ = (0.5, 0.5) and a tiny λ. The collision
# M-step computed its denominators A + 1 − σ_k/x through x, and they lost all
# their digits once A is below the resolution of 1 + A (one-hot labels with
# ȳ_k = 0, an infinite objective): it now solves for the gap A + 1 − σ_max/x.
@example(
    problem={
        "probs": np.array([[0.5, 0.5]], dtype=np.float32),
        "prior": None,
        "fairness_weight": 1.6386193376631502e-299,
        "sample_weight": None,
    }
)
def test_pseudo_labels_are_optimal_on_random_problems(problem, loss, method):
    probs = problem["probs"]
    tol = METHOD_TOL[method]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        labels = SOLVERS[loss](probs, method=method, tol=tol, **problem_kwargs(problem))
    unconverged = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not unconverged, unconverged[0].message
    assert labels.shape == probs.shape and labels.dtype == probs.dtype
    assert np.isfinite(labels).all()
    assert (labels >= 0).all()
    assert_allclose(labels.astype(np.float64).sum(axis=1), 1.0, rtol=0, atol=1e-6)

    # objective never worse than the warm start, in float64
    kwargs = problem_kwargs(problem)
    value = OBJECTIVES[loss](probs, labels, **kwargs)
    start = OBJECTIVES[loss](probs, warm_start(probs), **kwargs)
    single = probs.dtype == np.float32
    slack = (1e-5 if single else 1e-9) * max(1.0, abs(start))
    assert np.isfinite(value)
    assert value <= start + slack

    # KKT residual within the tolerance; float32 labels are the float64
    # solution rounded to 24 bits, which moves the relative residual by a few
    # units of float32 roundoff (more with the large gradients of large λ).
    residual = kkt_residual(probs, labels, loss=loss, **kwargs)
    assert residual <= tol + (1e-4 if single else 0.0)


def problem_kwargs(problem):
    return {
        "prior": problem["prior"],
        "fairness_weight": problem["fairness_weight"],
        "sample_weight": problem["sample_weight"],
    }


# --------------------------------------------------------------------------
# Loss terms on random inputs
# --------------------------------------------------------------------------


@st.composite
def loss_inputs(draw):
    """log σ (with −inf entries), pseudo-labels y, weights; torch, float32/64."""
    problem = draw(problems())
    probs = problem["probs"]
    dtype = torch.float32 if probs.dtype == np.float32 else torch.float64
    log_probs = torch.log(torch.as_tensor(probs, dtype=dtype))
    loss = draw(st.sampled_from(["reverse", "collision"]))
    labels = SOLVERS[loss](probs, **problem_kwargs(problem))
    weight = problem["sample_weight"]
    return (
        log_probs,
        torch.as_tensor(labels, dtype=dtype),
        None if weight is None else torch.as_tensor(weight, dtype=dtype),
        problem["prior"],
    )


@given(inputs=loss_inputs())
def test_losses_and_gradients_never_nan(inputs):
    log_probs, targets, weight, prior = inputs
    log_probs = log_probs.clone().requires_grad_(True)
    targets = targets.clone().requires_grad_(True)
    terms = {
        # finite for every input: entropies, divergences from the prior,
        # the reverse cross-entropy with its floor on ln y
        "decisiveness": losses.decisiveness(log_probs, weight),
        "fairness": losses.fairness(log_probs, prior, weight),
        "strong_fairness": losses.strong_fairness(targets, prior, weight),
        "mutual_information": losses.mutual_information(log_probs, weight),
        "reverse_cross_entropy": losses.reverse_cross_entropy(
            log_probs, targets, weight
        ),
        "margin": losses.margin(log_probs.detach().clamp(min=-1e3)),
        # +inf where y puts mass on σ = 0, by definition: never NaN
        "cross_entropy": losses.cross_entropy(targets, log_probs, weight),
        "collision_cross_entropy": losses.collision_cross_entropy(
            log_probs, targets, weight
        ),
    }
    finite = {
        "decisiveness",
        "fairness",
        "strong_fairness",
        "mutual_information",
        "reverse_cross_entropy",
        "margin",
    }
    for name, value in terms.items():
        assert value.shape == () and value.dtype == log_probs.dtype, name
        assert not torch.isnan(value), name
        if name in finite:
            assert torch.isfinite(value), name
        if not value.requires_grad:
            continue
        log_probs.grad = targets.grad = None
        value.backward()
        for tensor in (log_probs, targets):
            if tensor.grad is not None:
                assert not torch.isnan(tensor.grad).any(), name


# --------------------------------------------------------------------------
# Estimators on degenerate data
# --------------------------------------------------------------------------


def blobs(n_samples=300, random_state=0):
    return make_blobs(n_samples=n_samples, centers=CENTERS, random_state=random_state)


def assert_sensible_fit(estimator, X, n_clusters):
    """Valid labels, finite probabilities on the simplex, predict agrees."""
    labels = estimator.labels_
    assert labels.shape == (X.shape[0],)
    assert np.issubdtype(labels.dtype, np.integer)
    assert ((labels >= 0) & (labels < n_clusters)).all()
    probs = estimator.predict_proba(X)
    assert probs.shape == (X.shape[0], n_clusters)
    assert np.isfinite(probs).all()
    assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-5)
    assert_array_equal(estimator.predict(X), labels)


def degenerate_data():
    X, _ = blobs()
    rng = np.random.RandomState(0)
    unbalanced = np.vstack([rng.randn(995, 2), rng.randn(5, 2) + [20, 0]])
    return {
        "constant-features": (np.full((100, 4), 3.0), 3),
        "zero-features": (np.zeros((100, 4)), 3),
        "one-constant-feature": (np.column_stack([X, np.ones(len(X))]), 3),
        "duplicated-rows": (np.repeat(X[:20], 15, axis=0), 3),
        "single-distinct-point": (np.tile([[1.0, -2.0, 3.0]], (50, 1)), 2),
        "heavily-unbalanced": (unbalanced, 2),
        "n-clusters-equals-n-samples": (X[:12], 12),
        "duplicates-n-clusters-equals-n-samples": (np.ones((5, 2)), 5),
        "one-sample-one-cluster": (X[:1], 1),
        "one-cluster": (X, 1),
    }


@pytest.mark.parametrize("case", list(degenerate_data()))
@each_estimator
def test_degenerate_data_gives_a_sensible_fit(Estimator, case):
    X, n_clusters = degenerate_data()[case]
    estimator = Estimator(n_clusters=n_clusters, max_iter=5, random_state=0)
    fit_quietly(estimator, X)
    assert_sensible_fit(estimator, X, n_clusters)


@pytest.mark.parametrize("scale", [1e-8, 1e8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@each_estimator
def test_huge_and_tiny_feature_scales(Estimator, scale, dtype):
    X, y = blobs()
    X = (X * scale).astype(dtype)
    estimator = fit_quietly(Estimator(n_clusters=3, max_iter=10, random_state=0), X)
    assert_sensible_fit(estimator, X, 3)
    # γ, lr and the weight decay act on the scale of X: standardizing, as
    # the estimators' docs advise, recovers the blobs at any scale
    pipeline = make_pipeline(
        StandardScaler(), Estimator(n_clusters=3, max_iter=10, random_state=0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = pipeline.fit_predict(X)
    assert adjusted_rand_score(y, labels) > 0.9


@each_estimator
def test_values_whose_squares_overflow_raise_a_clear_error(Estimator):
    X, _ = blobs(n_samples=60)
    for huge in (X * 1e200, (X * 1e30).astype(np.float32)):
        with pytest.raises(ValueError, match="squared distances between its rows"):
            Estimator(n_clusters=3, max_iter=2).fit(huge)
    estimator = fit_quietly(Estimator(n_clusters=3, max_iter=2, random_state=0), X)
    with pytest.raises(ValueError, match="Scale X down"):
        estimator.predict(X * 1e200)


@each_estimator
def test_int_and_bool_input(Estimator):
    X, y = blobs()
    for data in (np.round(X).astype(np.int64), X.astype(np.int8), X > 0):
        estimator = fit_quietly(
            Estimator(n_clusters=3, max_iter=10, random_state=0), data
        )
        assert_sensible_fit(estimator, data, 3)
        if data.dtype == np.int64:  # rounding keeps the blobs apart
            assert adjusted_rand_score(y, estimator.labels_) > 0.9


@each_estimator
def test_sparse_input_raises_a_clear_error(Estimator):
    X, _ = blobs(n_samples=60)
    for sparse in (sp.csr_matrix(X), sp.csr_array(X), sp.coo_matrix(X)):
        with pytest.raises(TypeError, match="dense data is required"):
            Estimator(n_clusters=3).fit(sparse)
    estimator = fit_quietly(Estimator(n_clusters=3, max_iter=2, random_state=0), X)
    with pytest.raises(TypeError, match="dense data is required"):
        estimator.predict(sp.csr_matrix(X))


@each_estimator
def test_invalid_sample_weight_raises_a_clear_error(Estimator):
    X, _ = blobs(n_samples=60)
    estimator = Estimator(n_clusters=3, max_iter=2)
    for weight, message in (
        (-np.ones(60), "Negative values"),
        (np.zeros(60), "at least one non-zero"),
        (np.full(60, np.nan), "NaN"),
        (np.ones(59), "sample_weight"),
    ):
        with pytest.raises(ValueError, match=message):
            estimator.fit(X, sample_weight=weight)


@each_estimator
def test_pandas_input_with_feature_names(Estimator):
    pd = pytest.importorskip("pandas")
    X, _ = blobs()
    frame = pd.DataFrame(
        {
            "x": X[:, 0],
            "y": X[:, 1],
            "count": pd.array(np.round(X[:, 0]).astype(int), dtype="Int64"),
            "positive": pd.array(X[:, 1] > 0, dtype="boolean"),
        }
    )
    estimator = fit_quietly(Estimator(n_clusters=3, max_iter=5, random_state=0), frame)
    assert_array_equal(estimator.feature_names_in_, frame.columns)
    assert_sensible_fit(estimator, frame, 3)
    with pytest.warns(UserWarning, match="feature names"):
        estimator.predict(frame.to_numpy(dtype=np.float64))
    with pytest.raises(ValueError, match="feature names"):
        estimator.predict(frame[["y", "x", "count", "positive"]])
    missing = frame.astype({"count": "Int64"})
    missing.loc[0, "count"] = pd.NA
    with pytest.raises(ValueError, match="NaN"):
        Estimator(n_clusters=3).fit(missing)


# --------------------------------------------------------------------------
# Persistence and reproducibility
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fit_dtype", [np.float32, np.float64])
@each_estimator
def test_pickle_round_trip_across_float32_and_float64(Estimator, fit_dtype):
    X, _ = blobs()
    estimator = fit_quietly(
        Estimator(n_clusters=3, max_iter=5, random_state=0, device="cpu"),
        X.astype(fit_dtype),
    )
    restored = pickle.loads(pickle.dumps(estimator))
    for dtype in (np.float32, np.float64):
        data = X.astype(dtype)
        assert_array_equal(restored.predict(data), estimator.predict(data))
        assert_array_equal(restored.predict_proba(data), estimator.predict_proba(data))
    # the model computes in the dtype it was fitted in, whatever the input's
    assert_array_equal(
        restored.predict(X.astype(np.float32)), restored.predict(X.astype(np.float64))
    )
    assert restored.predict_proba(X).dtype == fit_dtype
    # training continues after unpickling (in the dtype of the new data)
    for dtype in (np.float32, np.float64):
        restored.partial_fit(X.astype(dtype))
        assert_sensible_fit(restored, X.astype(dtype), 3)


REPRODUCE = """
import hashlib
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

import skentropy

warnings.simplefilter("ignore")
X, _ = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)[:600]
for name in {names}:
    estimator = getattr(skentropy, name)(
        n_clusters=10, max_iter=3, random_state=0, device="cpu"
    )
    labels = estimator.fit_predict(X)
    print(name, hashlib.sha256(labels.astype(np.int64).tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_same_seed_gives_identical_labels_across_processes():
    script = REPRODUCE.format(names=[Estimator.__name__ for Estimator in ESTIMATORS])
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        outputs.append(stdout.splitlines())
    assert len(outputs[0]) == len(ESTIMATORS)
    assert outputs[0] == outputs[1]
