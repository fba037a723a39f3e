"""SeCuClustering: size bounds, the centre update of Theorem 1, the duals."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

import skentropy._estimators._secu_steps as secu_module
from skentropy import SeCuClustering
from skentropy._estimators._secu_steps import (
    centre_sums,
    closed_form_centres,
    cluster_log_probs,
    constrained_assignment,
    dual_step,
)
from skentropy.metrics import clustering_accuracy

N_SAMPLES = [100, 300, 600]  # natural cluster sizes 1:3:6
LOWER_RATIO, UPPER_RATIO = 0.8, 1.2


def skewed_blobs(random_state):
    """Three 10-d Gaussian blobs of 100, 300 and 600 points on three axes."""
    centers = 4.0 * np.eye(10)[:3]
    return make_blobs(
        n_samples=N_SAMPLES, centers=centers, n_features=10, random_state=random_state
    )


def unit_rows(generator, n_rows, n_features):
    return torch.nn.functional.normalize(
        torch.randn(n_rows, n_features, generator=generator, dtype=torch.float64),
        dim=1,
    )


# --- acceptance: the size bounds hold on skewed data ----------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_size_bounds_hold_on_skewed_blobs(seed):
    X, y = skewed_blobs(seed)
    n_samples, n_clusters = X.shape[0], 3
    lower = LOWER_RATIO * n_samples / n_clusters - 0.01 * n_samples
    upper = UPPER_RATIO * n_samples / n_clusters + 0.01 * n_samples
    natural = np.bincount(y)
    assert natural.min() < lower and natural.max() > upper  # the bounds must act

    secu = SeCuClustering(
        n_clusters,
        lower_ratio=LOWER_RATIO,
        upper_ratio=UPPER_RATIO,
        batch_size=64,
        random_state=seed,
    ).fit(X)

    for labels in (secu.labels_, secu.predict(X)):
        sizes = np.bincount(labels, minlength=n_clusters)
        assert sizes.min() >= lower, sizes
        assert sizes.max() <= upper, sizes


def test_without_bounds_the_natural_clusters_are_found():
    X, y = skewed_blobs(0)
    secu = SeCuClustering(3, lower_ratio=0.0, random_state=0).fit(X)
    assert_array_equal(secu.lower_dual_, 0.0)
    assert adjusted_rand_score(y, secu.labels_) > 0.9


# --- Theorem 1: the closed-form centre update -----------------------------


def test_closed_form_centres_is_eq_4():
    generator = torch.Generator().manual_seed(0)
    features = unit_rows(generator, 40, 5)
    centres = unit_rows(generator, 3, 5)
    weight = torch.rand(40, generator=generator, dtype=torch.float64)
    temperature = 0.5
    log_probs = cluster_log_probs(features, centres, temperature)
    labels = log_probs.argmax(dim=1)

    new = closed_form_centres(
        centre_sums(features, labels, log_probs, weight, 3), centres
    )

    # eq. (4): Π(Σ_{y_i=j} (1 − p_ij) x_i / Σ_{y_i=j} (1 − p_ij)), rows weighted.
    X, W = features.numpy(), centres.numpy()
    p = np.exp(X @ W.T / temperature)
    p /= p.sum(axis=1, keepdims=True)
    for j in range(3):
        rows = labels.numpy() == j
        factor = weight.numpy()[rows] * (1 - p[rows, j])
        mean = factor @ X[rows] / factor.sum()
        assert_allclose(new[j].numpy(), mean / np.linalg.norm(mean), rtol=1e-12)


def _secu_centre_loss(features, centres, labels, temperature):
    """Eq. (1): the loss of the centres, negatives w̃ held fixed (stop-gradient)."""
    distances = torch.cdist(features, centres) ** 2 / (2 * temperature)
    positive = torch.nn.functional.one_hot(labels, centres.shape[0]).bool()
    distances = torch.where(positive, distances, distances.detach())
    own = distances.gather(1, labels[:, None])[:, 0]
    return (torch.logsumexp(-distances, dim=1) + own).sum()


def test_closed_form_is_a_projected_gradient_step_of_size_one():
    # Supplement §1.3: with ∇L normalized by Σ_{y_i=j} (1 − p_ij), eq. (4) is
    # w_j ← Π(w_j − τ ∇_{w_j} L / Σ (1 − p_ij)) on the loss of eq. (1).
    generator = torch.Generator().manual_seed(1)
    features = unit_rows(generator, 60, 4)
    centres = unit_rows(generator, 3, 4).requires_grad_()
    temperature = 0.3
    log_probs = cluster_log_probs(features, centres.detach(), temperature)
    labels = log_probs.argmax(dim=1)

    _secu_centre_loss(features, centres, labels, temperature).backward()
    one_minus_p = -torch.expm1(log_probs.gather(1, labels[:, None]))[:, 0]
    normalizer = torch.zeros(3, dtype=torch.float64).index_add_(0, labels, one_minus_p)
    step = centres.detach() - temperature * centres.grad / normalizer[:, None]

    expected = torch.nn.functional.normalize(step, dim=1)
    sums = centre_sums(features, labels, log_probs, torch.ones(60).double(), 3)
    assert_allclose(closed_form_centres(sums, centres.detach()), expected, rtol=1e-10)


def test_fixed_point_of_theorem_1_is_stationary_on_the_sphere():
    # At a fixed point of eq. (4), the gradient of eq. (1) in the cosine form
    # (negatives fixed) has no component tangent to the unit sphere, and
    # points into the sphere (a minimum, not a maximum). At τ = 1 the
    # iteration converges here; at τ = 0.5 it ends in a 2-cycle.
    generator = torch.Generator().manual_seed(2)
    features = unit_rows(generator, 80, 4)
    centres = unit_rows(generator, 3, 4)
    temperature = 1.0
    labels = cluster_log_probs(features, centres, temperature).argmax(dim=1)
    weight = torch.ones(80, dtype=torch.float64)
    for _ in range(500):
        log_probs = cluster_log_probs(features, centres, temperature)
        centres = closed_form_centres(
            centre_sums(features, labels, log_probs, weight, 3), centres
        )

    centres.requires_grad_()
    logits = features @ centres.T / temperature
    positive = torch.nn.functional.one_hot(labels, 3).bool()
    logits = torch.where(positive, logits, logits.detach())
    torch.nn.functional.cross_entropy(logits, labels, reduction="sum").backward()
    grad, w = centres.grad, centres.detach()
    tangent = grad - (grad * w).sum(dim=1, keepdim=True) * w
    assert tangent.norm(dim=1).max() < 1e-10 * grad.norm(dim=1).max()
    assert ((grad * w).sum(dim=1) < 0).all()


def test_partial_fit_updates_centres_by_theorem_1():
    # Without bounds or dual steps the labels are argmax p of the old centres.
    X, _ = skewed_blobs(0)
    secu = SeCuClustering(3, lower_ratio=0.0, dual_lr=0.0, random_state=0)
    old = secu.partial_fit(X).cluster_centers_
    new = secu.partial_fit(X).cluster_centers_

    features = X / np.linalg.norm(X, axis=1, keepdims=True)
    logits = features @ old.T / secu.temperature
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = p.argmax(axis=1)
    for j in range(3):
        rows = labels == j
        mean = (1 - p[rows, j]) @ features[rows]
        assert_allclose(new[j], mean / np.linalg.norm(mean), rtol=1e-10)


# --- the dual variables ------------------------------------------------------


def test_dual_step_penalizes_a_too_large_cluster():
    zeros = torch.zeros(3, dtype=torch.float64)
    # Cluster 0 takes 60% of the batch, cluster 2 only 5%; bounds 0.8/3, 1.2/3.
    fractions = torch.tensor([0.6, 0.35, 0.05], dtype=torch.float64)
    lower_dual, upper_dual = dual_step(
        zeros, zeros, fractions, LOWER_RATIO / 3, UPPER_RATIO / 3, step=1.0
    )
    assert upper_dual[0] > 0 and lower_dual[0] == 0  # too large: penalized
    assert lower_dual[2] > 0 and upper_dual[2] == 0  # too small: favoured
    assert lower_dual[1] == 0 and upper_dual[1] == 0  # within the bounds
    assert_allclose(upper_dual[0], 0.6 - 0.4)
    assert_allclose(lower_dual[2], 0.8 / 3 - 0.05)

    # Once the cluster is within its bounds the duals shrink back towards zero.
    lower_dual, upper_dual = dual_step(
        lower_dual, upper_dual, torch.full((3,), 1 / 3).double(), 0.8 / 3, 0.4, 1.0
    )
    assert upper_dual[0] < 0.2 and lower_dual[2] < 0.8 / 3 - 0.05

    # The penalty moves points out of the too-large cluster.
    log_probs = torch.log_softmax(
        torch.randn(200, 3, generator=torch.Generator().manual_seed(0)).double()
        + torch.tensor([2.0, 0.0, 0.0]).double(),
        dim=1,
    )
    before = constrained_assignment(log_probs, zeros, zeros)
    penalty = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    after = constrained_assignment(log_probs, zeros, penalty)
    assert (after == 0).sum() < (before == 0).sum()


def test_fitted_duals_shift_the_skewed_clusters():
    X, y = skewed_blobs(0)
    secu = SeCuClustering(
        3,
        lower_ratio=LOWER_RATIO,
        upper_ratio=UPPER_RATIO,
        batch_size=64,
        random_state=0,
    ).fit(X)
    assert (secu.lower_dual_ >= 0).all() and (secu.upper_dual_ >= 0).all()
    assert (secu.lower_dual_ + secu.upper_dual_).max() > 0  # a bound is active
    # predict is argmax of ln p + ρ − ρ', not of p alone, on the training data.
    unshifted = secu.predict_proba(X).argmax(axis=1)
    assert (
        np.bincount(unshifted, minlength=3).min()
        < np.bincount(secu.labels_, minlength=3).min()
    )


# --- scikit-learn API (its estimator checks: test_sklearn_checks.py) ----------


def test_clone_pickle_and_determinism():
    X, _ = skewed_blobs(0)
    secu = SeCuClustering(3, upper_ratio=1.2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = clone(secu).fit(X)
        second = clone(secu).fit(X)
    assert_array_equal(first.labels_, second.labels_)
    assert_array_equal(first.cluster_centers_, second.cluster_centers_)
    assert_array_equal(first.fit_predict(X), first.labels_)

    restored = pickle.loads(pickle.dumps(first))
    assert_array_equal(restored.predict(X), first.predict(X))
    assert_allclose(restored.predict_proba(X), first.predict_proba(X))
    assert restored.score(X) == first.score(X)
    assert clone(first).get_params() == secu.get_params()


def test_float32_and_unit_norm_centres():
    X, _ = skewed_blobs(0)
    secu = SeCuClustering(3, random_state=0).fit(X.astype(np.float32))
    assert secu.cluster_centers_.dtype == np.float32
    assert_allclose(np.linalg.norm(secu.cluster_centers_, axis=1), 1.0, rtol=1e-5)
    probs = secu.predict_proba(X.astype(np.float32))
    assert probs.dtype == np.float32
    assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert secu.score(X) <= 0.0


@pytest.mark.parametrize(
    "params, name",
    [
        ({"lower_ratio": 1.5}, "lower_ratio"),
        ({"lower_ratio": -0.1}, "lower_ratio"),
        ({"upper_ratio": 0.9}, "upper_ratio"),
        ({"upper_ratio": -1.0}, "upper_ratio"),
        ({"lower_ratio": 1.2, "upper_ratio": 1.1}, "lower_ratio"),
        ({"dual_lr": -1.0}, "dual_lr"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_bad_parameters_raise(params, name):
    X, _ = skewed_blobs(0)
    with pytest.raises(ValueError, match=name):
        SeCuClustering(3, **params).fit(X)


def test_weak_supervision_improves_accuracy_on_unlabeled_rows():
    # 10% labels on standardized digits: accuracy on the unlabeled rows rises
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    gains = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        labeled = rng.random(len(y)) < 0.1
        partial = np.where(labeled, y, -1)
        scores = []
        for semi_supervised in (False, True):
            model = SeCuClustering(
                10, semi_supervised=semi_supervised, random_state=seed
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X, partial)
            scores.append(clustering_accuracy(y[~labeled], model.labels_[~labeled]))
        gains.append(scores[1] - scores[0])
    assert np.mean(gains) >= 0.02


def test_weak_supervision_keeps_given_clusters_and_checks_labels():
    X, _ = make_blobs(n_samples=200, centers=3, random_state=0)
    given = np.full(200, -1)
    given[:10] = 2
    model = SeCuClustering(3, semi_supervised=True, max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, given)
    with pytest.raises(ValueError, match="outside -1..2"):
        model.fit(X, np.full(200, 3))
    # without semi_supervised, y is ignored, even if invalid
    plain = SeCuClustering(3, max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain.fit(X, np.full(200, 7))


# --- degenerate fits warn, as those of the softmax estimators ---------------


def blobs():
    X, _ = make_blobs(300, n_features=4, centers=3, random_state=0)
    return X


@pytest.mark.parametrize(
    "X",
    [np.zeros((300, 4)), np.tile(blobs()[:1], (300, 1))],
    ids=["all-zero", "identical-rows"],
)
def test_degenerate_fit_warns_at_the_caller(X):
    with pytest.warns(ConvergenceWarning) as record:
        secu = SeCuClustering(3, random_state=0).fit(X)
    assert_array_equal(secu.labels_, 0)
    assert_allclose(secu.predict_proba(X), 1 / 3)
    messages = [str(warning.message) for warning in record]
    assert any("2 of n_clusters=3 clusters hold no" in m for m in messages)
    assert any("nearly uniform" in m for m in messages)
    assert {warning.filename for warning in record} == {__file__}


def test_partial_fit_does_not_warn_on_a_degenerate_epoch():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SeCuClustering(3, random_state=0).partial_fit(np.zeros((300, 4)))


# --- weights of any magnitude -------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1e-300, 1.0, 1e300])
def test_equal_weights_of_any_magnitude_give_the_unweighted_clustering(scale, dtype):
    X = blobs().astype(dtype)
    unweighted = SeCuClustering(3, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fit on blobs is silent
        weighted = SeCuClustering(3, random_state=0).fit(
            X, sample_weight=np.full(300, scale)
        )
    assert_array_equal(weighted.labels_, unweighted.labels_)
    assert_allclose(weighted.cluster_centers_, unweighted.cluster_centers_)
    assert_allclose(weighted.loss_curve_, unweighted.loss_curve_)
    assert_allclose(
        weighted.score(X, sample_weight=np.full(300, scale)), unweighted.score(X)
    )


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_positive_weights_of_any_magnitude_work(scale):
    X = blobs()
    weight = np.random.default_rng(0).uniform(0.5, 2.0, 300)
    reference = SeCuClustering(3, random_state=0).fit(X, sample_weight=weight)
    scaled = SeCuClustering(3, random_state=0).fit(X, sample_weight=scale * weight)
    assert_array_equal(scaled.labels_, reference.labels_)
    assert_allclose(scaled.cluster_centers_, reference.cluster_centers_)
    assert np.isfinite(scaled.loss_curve_).all()
    # weights spanning the whole float64 range: still a finite model
    wild = 10.0 ** np.random.default_rng(1).uniform(-300, 300, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        secu = SeCuClustering(3, random_state=0).fit(X, sample_weight=wild)
    assert np.isfinite(secu.cluster_centers_).all()
    assert np.isfinite(secu.loss_curve_).all()


# --- set_params after fit ---------------------------------------------------


def test_partial_fit_with_another_n_clusters_raises():
    X = blobs()
    for secu in (
        SeCuClustering(3, random_state=0).fit(X),
        SeCuClustering(3, random_state=0).partial_fit(X),
    ):
        secu.set_params(n_clusters=5)
        with pytest.raises(
            ValueError,
            match="Training cannot continue with n_clusters=5 from a model "
            "fitted with n_clusters=3; fit a new model",
        ):
            secu.partial_fit(X)
        assert secu.cluster_centers_.shape == (3, 4)


def test_predictions_use_the_fitted_model_after_set_params():
    X = blobs()
    secu = SeCuClustering(3, upper_ratio=1.2, random_state=0).fit(X)
    labels, probs, score = secu.predict(X), secu.predict_proba(X), secu.score(X)
    secu.set_params(
        n_clusters=5, temperature=0.05, lower_ratio=0.0, upper_ratio=2.0, dual_lr=1.0
    )
    assert_array_equal(secu.predict(X), labels)
    assert secu.predict_proba(X).shape == (300, 3)
    assert_allclose(secu.predict_proba(X), probs)
    assert_allclose(secu.score(X), score)


# --- atomic fits ------------------------------------------------------------


def test_failed_first_fit_leaves_the_estimator_unfitted():
    secu = SeCuClustering(3, random_state=0)
    before = list(vars(secu).keys())
    with pytest.raises(ValueError, match="n_samples=2"):
        secu.fit(blobs()[:2])
    assert list(vars(secu).keys()) == before
    with pytest.raises(NotFittedError):
        secu.predict(blobs())


def test_failed_refit_keeps_the_fitted_model():
    X = blobs()
    secu = SeCuClustering(3, random_state=0).fit(X)
    probs = secu.predict_proba(X)
    with pytest.raises(ValueError, match="n_samples=2"):
        secu.fit(X[:2, :3])
    assert secu.n_features_in_ == 4
    assert_array_equal(secu.predict_proba(X), probs)


@pytest.mark.parametrize("call", ["first fit", "refit", "partial_fit"])
def test_interrupted_training_leaves_the_estimator_as_before(call, monkeypatch):
    X = blobs()
    secu = SeCuClustering(3, batch_size=32, random_state=0)
    if call == "refit":
        secu.fit(X)
    elif call == "partial_fit":
        secu.partial_fit(X)
    untouched = copy.deepcopy(secu)
    before = list(vars(secu).keys())
    probs = secu.predict_proba(X) if call != "first fit" else None

    n_calls = 0

    def interrupted_dual_step(*args, **kwargs):
        nonlocal n_calls
        n_calls += 1
        if n_calls == 3:
            raise KeyboardInterrupt
        return dual_step(*args, **kwargs)

    monkeypatch.setattr(secu_module, "dual_step", interrupted_dual_step)
    with pytest.raises(KeyboardInterrupt):
        if call == "partial_fit":
            secu.partial_fit(X)
        else:
            secu.fit(X)
    monkeypatch.undo()

    assert n_calls == 3
    assert list(vars(secu).keys()) == before
    if call == "first fit":
        with pytest.raises(NotFittedError):
            secu.predict_proba(X)
    else:
        assert_array_equal(secu.predict_proba(X), probs)
    # the random state of partial_fit is restored too: the next call draws
    # the mini-batches it would have drawn without the interrupted one
    assert_array_equal(
        secu.partial_fit(X).cluster_centers_,
        untouched.partial_fit(X).cluster_centers_,
    )
