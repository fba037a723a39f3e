"""The heads: Norm-FC (``head="normfc"``) and several heads at once (``n_heads``)."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import softmax

from skentropy import (
    CollisionCEClustering,
    EntropyClustering,
    MaxMarginEntropyClustering,
    losses,
)
from skentropy.metrics import clustering_accuracy

from helpers import each_paper_estimator, fit_quietly, make_fast


def normfc_logits(X, projection_coef, projection_intercept, prototypes, temperature):
    """Eq. (2) of the twostage supplement, in numpy: cos(Wx + b, p_k) / τ."""
    projected = X @ projection_coef.T + projection_intercept
    unit = projected / np.linalg.norm(projected, axis=1, keepdims=True)
    return unit @ prototypes.T / temperature


def linear_probs(X, coef, intercept):
    return softmax(X @ coef.T + intercept, axis=1)


def standardized(X, state, prefix=""):
    """X as a head sees it, z = (x − center) / scale, from its saved state."""
    return (X - state[prefix + "center"]) / state[prefix + "scale"]


# --- Norm-FC -----------------------------------------------------------------


@pytest.mark.slow
@each_paper_estimator
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_normfc_logits_are_cosines_to_unit_prototypes_over_temperature(
    Estimator, digits, temperature
):
    X, _ = digits
    estimator = fit_quietly(
        make_fast(Estimator, head="normfc", temperature=temperature), X
    )
    n_features = X.shape[1]
    assert estimator.projection_coef_.shape == (n_features, n_features)
    assert estimator.projection_intercept_.shape == (n_features,)
    assert estimator.prototypes_.shape == (10, n_features)
    assert_allclose(np.linalg.norm(estimator.prototypes_, axis=1), 1.0)
    logits = normfc_logits(
        X,
        estimator.projection_coef_,
        estimator.projection_intercept_,
        estimator.prototypes_,
        temperature,
    )
    assert np.abs(logits).max() <= 1.0 / temperature + 1e-9
    assert_allclose(estimator.predict_proba(X), softmax(logits, axis=1), atol=1e-10)
    assert_array_equal(estimator.predict(X), logits.argmax(axis=1))
    # The linear head's attributes belong to linear heads only.
    assert not hasattr(estimator, "coef_")
    assert not hasattr(estimator, "intercept_")


@each_paper_estimator
def test_normfc_prototypes_stay_fixed_during_training(Estimator, digits):
    X, _ = digits
    one_head = {"head": "normfc", "n_heads": 1}
    estimator = fit_quietly(make_fast(Estimator, max_iter=1, **one_head), X)
    prototypes = estimator.prototypes_.copy()
    projection = estimator.projection_coef_.copy()
    # More epochs (warm start), and more mini-batches (partial_fit).
    fit_quietly(estimator.set_params(warm_start=True, max_iter=5), X)
    estimator.partial_fit(X)
    assert_array_equal(estimator.prototypes_, prototypes)
    assert not np.allclose(estimator.projection_coef_, projection)
    # A longer training from the same seed starts from the same prototypes.
    longer = fit_quietly(make_fast(Estimator, max_iter=20, **one_head), X)
    assert_array_equal(longer.prototypes_, prototypes)


def test_normfc_margin_term_acts_on_the_projection(digits):
    # The logits do not change with a common scale of W and b, so γ‖W‖² cannot
    # zero W (the loss gradient grows as W shrinks), but it shrinks W.
    X, _ = digits
    params = {"n_clusters": 3, "head": "normfc", "optimizer": "sgd", "lr": 0.05}
    free, penalized = (
        fit_quietly(
            make_fast(MaxMarginEntropyClustering, gamma=gamma, max_iter=5, **params),
            X,
        )
        for gamma in (0.0, 1e4)
    )
    assert np.linalg.norm(penalized.projection_coef_) < 0.1 * np.linalg.norm(
        free.projection_coef_
    )
    # The score's margin term is γ‖W‖², the bias b of the projection left out.
    estimator = fit_quietly(
        make_fast(MaxMarginEntropyClustering, head="normfc", gamma=0.5), X
    )
    log_probs = torch.log(torch.as_tensor(estimator.predict_proba(X)))
    # W acts on z = (x − x̄)/s; the margin term on the W of 10·z (rows at mean
    # squared norm 100): projection_coef_ · s/10
    scale = np.sqrt(np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=1))) / 10
    expected = (
        losses.decisiveness(log_probs)
        + losses.fairness(log_probs)
        + 0.5 * losses.margin(torch.as_tensor(estimator.projection_coef_ * scale))
    )
    assert estimator.score(X) == pytest.approx(-expected.item(), rel=1e-6)


@pytest.mark.slow
@each_paper_estimator
def test_normfc_clusters_digits(Estimator, digits):
    X, y = digits
    estimator = fit_quietly(make_fast(Estimator, head="normfc", max_iter=30), X)
    assert clustering_accuracy(y, estimator.labels_) > 0.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normfc_trains_in_the_input_dtype(digits, dtype):
    X, _ = digits
    X = X.astype(dtype)
    estimator = fit_quietly(make_fast(EntropyClustering, head="normfc"), X)
    for attribute in ("projection_coef_", "projection_intercept_", "prototypes_"):
        assert getattr(estimator, attribute).dtype == dtype
    assert estimator.predict_proba(X).dtype == dtype


def test_normfc_is_deterministic(digits, global_random_seed):
    X, _ = digits
    first, second, other = (
        fit_quietly(
            make_fast(EntropyClustering, head="normfc", n_heads=2, random_state=state),
            X,
        )
        for state in (global_random_seed, global_random_seed, global_random_seed + 1)
    )
    assert_array_equal(first.prototypes_, second.prototypes_)
    assert_array_equal(first.projection_coef_, second.projection_coef_)
    assert_array_equal(first.labels_, second.labels_)
    assert_array_equal(first.head_losses_, second.head_losses_)
    assert not np.allclose(first.prototypes_, other.prototypes_)


@pytest.mark.parametrize("head", ["linear", "normfc"])
def test_pickle_round_trip_with_several_heads(digits, head):
    X, _ = digits
    estimator = fit_quietly(make_fast(EntropyClustering, head=head, n_heads=2), X)
    restored = pickle.loads(pickle.dumps(estimator))
    assert_array_equal(restored.predict(X), estimator.predict(X))
    assert_array_equal(restored.predict_proba(X), estimator.predict_proba(X))
    # Plain numpy state: it unpickles on a machine without a GPU.
    assert not any(
        isinstance(value, torch.Tensor | torch.nn.Module)
        for value in vars(estimator).values()
    )
    # Training continues from all the unpickled heads.
    restored.partial_fit(X)
    assert restored.head_losses_.shape == (2,)


def test_refit_with_another_head_replaces_the_fitted_attributes(digits):
    X, _ = digits
    estimator = fit_quietly(make_fast(MaxMarginEntropyClustering), X)
    assert hasattr(estimator, "coef_")
    fit_quietly(estimator.set_params(head="normfc"), X)
    assert hasattr(estimator, "prototypes_")
    assert not hasattr(estimator, "coef_")


# --- several heads -------------------------------------------------------------


@each_paper_estimator
@pytest.mark.parametrize("head", ["linear", "normfc"])
def test_n_heads_keeps_the_head_with_the_lowest_loss(Estimator, digits, head):
    X, _ = digits
    estimator = fit_quietly(make_fast(Estimator, head=head, n_heads=3), X)
    assert estimator.head_losses_.shape == (3,)
    assert estimator.best_head_ == np.argmin(estimator.head_losses_)
    assert estimator.loss_curve_[-1] == estimator.head_losses_.min()
    # The heads trained differently: they are different models.
    assert np.ptp(estimator.head_losses_) > 0
    # The public attributes and the predictions are those of the kept head,
    # and no other head predicts the same.
    probs = estimator.predict_proba(X)
    for index, state in enumerate(estimator._head_states):
        if head == "linear":
            head_probs = linear_probs(
                standardized(X, state), state["weight"], state["bias"]
            )
        else:
            head_probs = softmax(
                normfc_logits(
                    standardized(X, state, "projection."),
                    state["projection.weight"],
                    state["projection.bias"],
                    state["prototypes"],
                    estimator.temperature,
                ),
                axis=1,
            )
        if index == estimator.best_head_:
            assert_allclose(probs, head_probs, atol=1e-10)
            assert_array_equal(estimator.labels_, head_probs.argmax(axis=1))
        else:
            assert not np.allclose(probs, head_probs, atol=1e-3)
    if head == "linear":
        # coef_ and intercept_ act on X: v/s and b − v·x̄/s of the kept head
        best = estimator._head_states[estimator.best_head_]
        assert_allclose(estimator.coef_, best["weight"] / best["scale"])
        assert_allclose(
            estimator.intercept_,
            best["bias"] - estimator.coef_ @ best["center"],
            rtol=1e-7,
            atol=1e-10,
        )


def test_one_head_has_one_head_loss(digits):
    X, _ = digits
    estimator = fit_quietly(make_fast(EntropyClustering, n_heads=1), X)
    assert estimator.best_head_ == 0
    assert_array_equal(estimator.head_losses_, [estimator.loss_curve_[-1]])


def test_several_heads_have_their_own_normfc_prototypes(digits):
    X, _ = digits
    estimator = fit_quietly(make_fast(EntropyClustering, head="normfc", n_heads=2), X)
    first, second = (state["prototypes"] for state in estimator._head_states)
    assert not np.allclose(first, second)


def test_partial_fit_trains_all_heads(digits):
    X, _ = digits
    estimator = make_fast(CollisionCEClustering, n_heads=3)
    losses_per_call = []
    for _ in range(3):
        estimator.partial_fit(X)
        losses_per_call.append(estimator.head_losses_.copy())
        assert estimator.loss_curve_[-1] == estimator.head_losses_.min()
        assert estimator.best_head_ == np.argmin(estimator.head_losses_)
    # Every head keeps learning (none is frozen or dropped after a call).
    assert np.all(losses_per_call[-1] < losses_per_call[0])


@pytest.mark.parametrize(
    "params, message",
    [({"n_heads": 3}, "n_heads=3"), ({"head": "normfc"}, "head='normfc'")],
    ids=["n_heads", "head"],
)
def test_continuing_with_other_heads_raises(digits, params, message):
    X, _ = digits
    estimator = fit_quietly(make_fast(EntropyClustering, n_heads=2, warm_start=True), X)
    estimator.set_params(**params)
    with pytest.raises(ValueError, match=message):
        estimator.fit(X)
    with pytest.raises(ValueError, match=message):
        estimator.partial_fit(X)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"head": "cosine"}, "head"),
        ({"n_heads": 0}, "n_heads"),
        ({"temperature": 0.0}, "temperature"),
    ],
    ids=["head", "n_heads", "temperature"],
)
def test_invalid_head_parameters_raise(digits, params, message):
    X, _ = digits
    with pytest.raises(ValueError, match=message):
        make_fast(EntropyClustering, **params).fit(X)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_normfc_heads_train_on_cuda_and_store_numpy(digits):
    X, y = digits
    partial = np.where(np.arange(y.shape[0]) % 10 == 0, y, -1)
    params = {"head": "normfc", "n_heads": 2, "semi_supervised": True}
    on_gpu = fit_quietly(
        make_fast(EntropyClustering, device="cuda", **params), X, partial
    )
    assert isinstance(on_gpu.prototypes_, np.ndarray)
    on_cpu = fit_quietly(
        make_fast(EntropyClustering, device="cpu", **params), X, partial
    )
    assert_array_equal(on_gpu.prototypes_, on_cpu.prototypes_)
    assert clustering_accuracy(y, on_gpu.labels_) > 0.8
