"""Acceptance tests of the pseudo-label solvers of skentropy.pseudo_labels.

A solver result is judged as the design says: by the relative KKT residual of
:func:`~skentropy.pseudo_labels.kkt_residual` (the solvers' own stopping
rule), and on problems small enough by the objective reached by an independent
generic conic solver (cvxpy with CLARABEL) and by the baselines of
``skentropy._reference_solvers``. The optimum of the collision problem need not
be unique, so it is compared through objective values and ȳ (unique: the
fairness term is strictly convex in ȳ), labels only where they are unique.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from skentropy._reference_solvers import kkt_residual as reference_kkt_residual
from skentropy._reference_solvers import projected_gradient, structured_newton
from skentropy.pseudo_labels import (
    collision_ce_labels,
    collision_ce_objective,
    kkt_residual,
    reverse_ce_labels,
    reverse_ce_objective,
)

LOSSES = ["reverse", "collision"]
SOLVERS = {"reverse": reverse_ce_labels, "collision": collision_ce_labels}
OBJECTIVES = {"reverse": reverse_ce_objective, "collision": collision_ce_objective}
FAIRNESS_WEIGHTS = [0.0, 1.0, 100.0, 1e4]
TOL = 1e-6  # the solvers' default tolerance
# float32 labels are the float64 solution rounded; rounding moves the relative
# residual y_ik (G_ik − μ_i) / max(1, |μ_i|) by a few times 1e-7
FLOAT32_TOL = TOL + 1e-6
# Objective values are compared up to this relative slack (design: 1e-6).
REL_OBJECTIVE = 1e-6


def label_atol(fairness_weight, tol=TOL):
    """How far labels solved to KKT residual ``tol`` may be from the optimum.

    The residual is relative to max(1, |μ_i|) with μ_i of order 1 + λ, so
    the labels are accurate to about tol (1 + λ) where the optimum is unique.
    """
    return 10.0 * tol * (1.0 + fairness_weight)


# --------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------


def softmax_probs(rng, n_samples, n_classes, scale=3.0):
    """σ = softmax(scale · standard normal), float64 (the papers' Table 1)."""
    logits = scale * rng.standard_normal((n_samples, n_classes))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def make_probs(kind, rng, n_samples, n_classes):
    """Predictions σ of one of the kinds the solvers must handle."""
    if kind == "soft":
        return softmax_probs(rng, n_samples, n_classes)
    if kind == "near_uniform":
        return softmax_probs(rng, n_samples, n_classes, scale=1e-3)
    if kind == "one_hot":
        return np.eye(n_classes)[rng.integers(n_classes, size=n_samples)]
    if kind == "same_one_hot":
        return np.eye(n_classes)[np.zeros(n_samples, dtype=int)]
    if kind == "exact_zeros":
        # every row keeps its largest entry; about half of the others vanish
        probs = softmax_probs(rng, n_samples, n_classes, scale=1.0)
        drop = rng.random((n_samples, n_classes)) < 0.5
        drop[np.arange(n_samples), probs.argmax(axis=1)] = False
        probs[drop] = 0.0
        return probs / probs.sum(axis=1, keepdims=True)
    raise ValueError(kind)


KINDS = ["soft", "near_uniform", "one_hot", "same_one_hot", "exact_zeros"]


def increasing_prior(n_classes):
    prior = np.arange(1.0, n_classes + 1.0)
    return prior / prior.sum()


def tiny_entry_prior(n_classes):
    """A prior whose first entry is 1e-9."""
    prior = np.empty(n_classes)
    prior[0] = 1e-9
    prior[1:] = (1.0 - 1e-9) * increasing_prior(n_classes - 1)
    return prior


def residual(loss, probs, labels, **problem):
    return kkt_residual(probs, labels, loss=loss, **problem)


def objective(loss, probs, labels, **problem):
    return OBJECTIVES[loss](probs, labels, **problem)


def weighted_mean(labels, sample_weight=None):
    labels = np.asarray(labels, dtype=np.float64)
    return np.average(labels, axis=0, weights=sample_weight)


def assert_not_worse(value, reference, what):
    slack = REL_OBJECTIVE * max(1.0, abs(reference))
    assert value <= reference + slack, (
        f"objective {value!r} is worse than {what} {reference!r} by "
        f"{value - reference:.3g} > {slack:.3g}"
    )


def assert_same_objective(value, reference, what):
    slack = REL_OBJECTIVE * max(1.0, abs(reference))
    assert abs(value - reference) <= slack, (
        f"objective {value!r} differs from {what} {reference!r} by "
        f"{value - reference:.3g}, more than {slack:.3g}"
    )


def assert_solved(loss, probs, labels, tol=TOL, **problem):
    labels_array = np.asarray(labels)
    assert np.isfinite(labels_array).all()
    assert (labels_array >= 0).all()
    np.testing.assert_allclose(labels_array.sum(axis=1), 1.0, atol=1e-6)
    value = residual(loss, probs, labels, **problem)
    assert value <= tol, f"KKT residual {value:.3g} > tol={tol:g}"


# --------------------------------------------------------------------------
# KKT residual at most tol on every kind of problem
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fairness_weight", FAIRNESS_WEIGHTS)
@pytest.mark.parametrize(
    "n_samples, n_classes", [(1, 2), (1, 200), (50, 2), (40, 20), (8, 200)]
)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_kkt_residual_below_tol(
    loss, kind, n_samples, n_classes, fairness_weight, global_random_seed
):
    rng = np.random.default_rng(global_random_seed)
    probs = make_probs(kind, rng, n_samples, n_classes)
    labels = SOLVERS[loss](probs, fairness_weight=fairness_weight)
    assert_solved(loss, probs, labels, fairness_weight=fairness_weight)


@pytest.mark.parametrize("fairness_weight", [1.0, 100.0, 1e4])
@pytest.mark.parametrize("kind", ["soft", "one_hot", "exact_zeros"])
@pytest.mark.parametrize("loss", LOSSES)
def test_kkt_residual_below_tol_prior_with_tiny_entry(loss, kind, fairness_weight):
    rng = np.random.default_rng(1)
    probs = make_probs(kind, rng, 40, 5)
    problem = dict(prior=tiny_entry_prior(5), fairness_weight=fairness_weight)
    labels = SOLVERS[loss](probs, **problem)
    assert_solved(loss, probs, labels, **problem)


@pytest.mark.parametrize("fairness_weight", [1e-300, 1e-16])
@pytest.mark.parametrize("n_classes", [1, 2, 7])
@pytest.mark.parametrize("loss", LOSSES)
def test_kkt_residual_below_tol_vanishing_fairness_weight(
    loss, n_classes, fairness_weight
):
    probs = make_probs("soft", np.random.default_rng(24), 20, n_classes)
    labels = SOLVERS[loss](probs, fairness_weight=fairness_weight)
    assert_solved(loss, probs, labels, fairness_weight=fairness_weight)


@pytest.mark.parametrize("loss", LOSSES)
def test_kkt_residual_below_tol_weighted(loss):
    rng = np.random.default_rng(2)
    probs = make_probs("exact_zeros", rng, 60, 6)
    weights = rng.uniform(0.0, 3.0, size=60)
    weights[:5] = 0.0
    problem = dict(
        prior=increasing_prior(6), fairness_weight=100.0, sample_weight=weights
    )
    labels = SOLVERS[loss](probs, **problem)
    assert_solved(loss, probs, labels, **problem)


@pytest.mark.parametrize("tol", [1e-3, 1e-8])
@pytest.mark.parametrize("loss", LOSSES)
def test_kkt_residual_below_given_tol(loss, tol):
    probs = make_probs("soft", np.random.default_rng(3), 100, 10)
    labels = SOLVERS[loss](probs, tol=tol)
    assert_solved(loss, probs, labels, tol=tol, fairness_weight=100.0)


@pytest.mark.parametrize("n_classes", [2, 20])
@pytest.mark.parametrize("loss", LOSSES)
def test_kkt_residual_below_tol_large_batch(loss, n_classes):
    probs = make_probs("soft", np.random.default_rng(4), 10_000, n_classes)
    labels = SOLVERS[loss](probs)
    assert_solved(loss, probs, labels, fairness_weight=100.0)


@pytest.mark.slow
@pytest.mark.parametrize("loss", LOSSES)
def test_kkt_residual_below_tol_large_batch_many_classes(loss):
    probs = make_probs("soft", np.random.default_rng(5), 10_000, 200)
    labels = SOLVERS[loss](probs)
    assert_solved(loss, probs, labels, fairness_weight=100.0)


# --------------------------------------------------------------------------
# Objective reached, against a generic conic solver and the baselines
# --------------------------------------------------------------------------


def cvxpy_objective(loss, probs, prior, fairness_weight, sample_weight=None):
    """Objective at the optimum found by cvxpy + CLARABEL (high precision).

    DCP forms: reverse −Σ_i w_i Σ_k σ_ik log y_ik − λ Σ_k u_k log (wᵀY)_k,
    collision −Σ_i w_i log(σ_i·y_i) − λ Σ_k u_k log (wᵀY)_k, with Y ≥ 0 and
    rows summing to one; scaled by N so that the conic solver sees O(1)
    coefficients. The solution is clipped onto the simplex and evaluated by
    the library's objective, so the value returned is that of a feasible
    point: never below the true optimum.
    """
    cp = pytest.importorskip("cvxpy")
    n_samples, n_classes = probs.shape
    weights = (
        np.full(n_samples, 1.0 / n_samples)
        if sample_weight is None
        else sample_weight / sample_weight.sum()
    )
    y = cp.Variable((n_samples, n_classes), nonneg=True)
    if loss == "reverse":
        cross_entropy = -cp.sum(cp.multiply(weights[:, None] * probs, cp.log(y)))
    else:
        cross_entropy = -(weights @ cp.log(cp.sum(cp.multiply(probs, y), axis=1)))
    fairness = -fairness_weight * (prior @ cp.log(weights @ y))
    problem = cp.Problem(
        cp.Minimize(n_samples * (cross_entropy + fairness)), [cp.sum(y, axis=1) == 1]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "solution may be inaccurate"
        problem.solve(
            solver="CLARABEL",
            tol_gap_abs=1e-9,
            tol_gap_rel=1e-9,
            tol_feas=1e-9,
            max_iter=400,
        )
    assert problem.status in ("optimal", "optimal_inaccurate"), problem.status
    labels = np.clip(y.value, 1e-300, None)
    labels /= labels.sum(axis=1, keepdims=True)
    return objective(
        loss,
        probs,
        labels,
        prior=prior,
        fairness_weight=fairness_weight,
        sample_weight=sample_weight,
    )


# (kind, n_samples, n_classes, fairness_weight, prior, weighted); N·K ≤ 2000
CVXPY_CASES = [
    ("soft", 50, 4, 100.0, "uniform", False),
    ("soft", 100, 20, 100.0, "uniform", False),
    ("soft", 10, 200, 100.0, "uniform", False),
    ("near_uniform", 60, 3, 1.0, "increasing", False),
    ("one_hot", 40, 5, 1.0, "increasing", True),
    ("exact_zeros", 30, 10, 100.0, "increasing", True),
    ("soft", 30, 6, 1e4, "tiny", True),
]


@pytest.mark.parametrize("case", CVXPY_CASES, ids=lambda case: "-".join(map(str, case)))
@pytest.mark.parametrize("loss", LOSSES)
def test_objective_not_worse_than_cvxpy(loss, case):
    kind, n_samples, n_classes, fairness_weight, prior_kind, weighted = case
    rng = np.random.default_rng(6)
    probs = make_probs(kind, rng, n_samples, n_classes)
    prior = {
        "uniform": np.full(n_classes, 1.0 / n_classes),
        "increasing": increasing_prior(n_classes),
        "tiny": tiny_entry_prior(n_classes),
    }[prior_kind]
    weights = rng.uniform(0.2, 2.0, size=n_samples) if weighted else None
    problem = dict(prior=prior, fairness_weight=fairness_weight, sample_weight=weights)
    labels = SOLVERS[loss](probs, **problem)
    assert_solved(loss, probs, labels, **problem)
    reference = cvxpy_objective(loss, probs, prior, fairness_weight, weights)
    assert_not_worse(
        objective(loss, probs, labels, **problem), reference, "cvxpy + CLARABEL's"
    )


def baseline_problem(probs, prior, fairness_weight, sample_weight=None):
    n_samples = probs.shape[0]
    weights = np.ones(n_samples) if sample_weight is None else sample_weight
    return (
        torch.as_tensor(probs),
        torch.as_tensor(weights, dtype=torch.float64),
        torch.as_tensor(prior),
        fairness_weight,
    )


@pytest.mark.parametrize("fairness_weight", [1.0, 100.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_reverse_agrees_with_baselines(fairness_weight, weighted):
    # mild predictions, so that projected gradient converges in a few thousand
    # steps (the reverse cross-entropy is a log barrier: ill-conditioned where
    # some σ_ik is small)
    rng = np.random.default_rng(7)
    probs = softmax_probs(rng, 20, 3, scale=1.0)
    prior = increasing_prior(3)
    weights = rng.uniform(0.5, 2.0, size=20) if weighted else None
    problem = dict(prior=prior, fairness_weight=fairness_weight, sample_weight=weights)
    labels = reverse_ce_labels(probs, **problem)
    value = reverse_ce_objective(probs, labels, **problem)
    args = baseline_problem(probs, prior, fairness_weight, weights)
    # both stall on rounding somewhere below a residual of 1e-7
    for solver, tol in ((structured_newton, 1e-7), (projected_gradient, 1e-7)):
        reference, _ = solver(*args, loss="reverse", tol=tol, max_iter=5000)
        reference = reference.numpy()
        assert residual("reverse", probs, reference, **problem) <= tol
        assert_same_objective(
            value,
            reverse_ce_objective(probs, reference, **problem),
            solver.__name__ + "'s",
        )
        # σ > 0: the objective is strictly convex and the optimum unique
        np.testing.assert_allclose(labels, reference, atol=label_atol(fairness_weight))


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("kind", ["soft", "exact_zeros"])
def test_objective_agrees_with_structured_newton(loss, kind):
    rng = np.random.default_rng(8)
    probs = make_probs(kind, rng, 200, 12)
    prior = increasing_prior(12)
    problem = dict(prior=prior, fairness_weight=100.0)
    labels = SOLVERS[loss](probs, **problem)
    # structured Newton reaches 1e-7 reliably in float64 (see its Notes)
    reference, _ = structured_newton(
        *baseline_problem(probs, prior, 100.0), loss=loss, tol=1e-7
    )
    reference = reference.numpy()
    assert residual(loss, probs, reference, **problem) <= 1e-7
    assert_not_worse(
        objective(loss, probs, labels, **problem),
        objective(loss, probs, reference, **problem),
        "structured Newton's",
    )
    np.testing.assert_allclose(
        weighted_mean(labels), weighted_mean(reference), atol=label_atol(100.0)
    )


# --------------------------------------------------------------------------
# Closed forms and invariances
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["soft", "one_hot", "exact_zeros"])
def test_reverse_without_fairness_returns_predictions(kind):
    # λ = 0: min −Σ σ ln y over the simplex is y = σ (Gibbs' inequality)
    probs = make_probs(kind, np.random.default_rng(9), 30, 7)
    labels = reverse_ce_labels(probs, fairness_weight=0.0)
    np.testing.assert_allclose(labels, probs, atol=1e-6)


def test_collision_without_fairness_is_one_hot_at_argmax():
    # λ = 0: −ln σ·y is smallest at the vertex of the largest σ_k (collision
    # Example 2)
    probs = make_probs("soft", np.random.default_rng(10), 30, 7)
    labels = collision_ce_labels(probs, fairness_weight=0.0)
    np.testing.assert_allclose(labels, np.eye(7)[probs.argmax(axis=1)], atol=1e-6)


@pytest.mark.parametrize("fairness_weight", [0.0, 100.0])
@pytest.mark.parametrize("n_samples", [1, 7])
@pytest.mark.parametrize("loss", LOSSES)
def test_single_class_gives_ones(loss, n_samples, fairness_weight):
    probs = np.ones((n_samples, 1))
    labels = SOLVERS[loss](probs, fairness_weight=fairness_weight)
    np.testing.assert_allclose(labels, 1.0)
    assert residual(loss, probs, labels, fairness_weight=fairness_weight) <= TOL


@pytest.mark.parametrize("loss", LOSSES)
def test_large_fairness_weight_matches_prior(loss):
    # λ → ∞: the fairness term λ KL(u‖ȳ) dominates and ȳ → u (at rate 1/λ)
    probs = make_probs("soft", np.random.default_rng(11), 100, 5)
    prior = increasing_prior(5)
    labels = SOLVERS[loss](probs, prior=prior, fairness_weight=1e4)
    np.testing.assert_allclose(weighted_mean(labels), prior, atol=1e-3)


@pytest.mark.parametrize("tol", [1e-2, 1e-4])
@pytest.mark.parametrize("kind", ["soft", "exact_zeros", "peaked"])
@pytest.mark.parametrize("loss", LOSSES)
def test_em_method_meets_its_tolerance(loss, kind, tol):
    # method="em", the estimators' solver (em_tol=1e-2), stops on the same
    # certificate; the plain reverse EM reads it from its own update
    rng = np.random.default_rng(28)
    if kind == "peaked":
        probs = softmax_probs(rng, 250, 10, scale=10.0)
    else:
        probs = make_probs(kind, rng, 250, 10)
    weights = rng.uniform(0.5, 2.0, size=250)
    weights[:10] = 0.0
    problem = dict(
        prior=increasing_prior(10), fairness_weight=100.0, sample_weight=weights
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        labels = SOLVERS[loss](probs, method="em", tol=tol, **problem)
    assert_solved(loss, probs, labels, tol=tol, **problem)


@pytest.mark.parametrize("fairness_weight", [1e-8, 1e-20, 1e-299])
@pytest.mark.parametrize("tol", [1e-2, 1e-6])
def test_collision_em_with_a_tiny_fairness_weight(fairness_weight, tol):
    # the M-step's denominators A + 1 − σ_k/x for A = O(λ) far below the
    # resolution of 1 + A: rows tied at their largest σ (no cost to split)
    # and the others keep positive entries (ȳ_k = 0 made E₂ infinite)
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.6, 0.4], [0.3, 0.7]])
    problem = dict(prior=np.array([0.25, 0.75]), fairness_weight=fairness_weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        labels = collision_ce_labels(probs, method="em", tol=tol, **problem)
    assert_solved("collision", probs, labels, tol=tol, **problem)
    assert (labels > 0).all()


@pytest.mark.parametrize("fairness_weight", [1.0, 100.0, 1e4])
@pytest.mark.parametrize(
    "kind, n_samples, n_classes",
    [
        ("one_hot", 40, 20),
        ("one_hot", 2000, 200),
        ("exact_zeros", 8, 200),
        ("peaked", 250, 50),
    ],
)
def test_reverse_solver_passes_kinks_of_its_dual(
    kind, n_samples, n_classes, fairness_weight
):
    # σ_ik = 0 classes that tie at the top multiplier of a row, and peaked σ
    # whose tiny entries act alike, put kinks at the optimum of the reverse
    # dual: its Newton method circles them and EM creeps (before the Newton
    # fallback: 500 to 3,600 iterations, some not converged at max_iter=1000)
    rng = np.random.default_rng(27)
    if kind == "peaked":
        probs = softmax_probs(rng, n_samples, n_classes, scale=30.0)
    else:
        probs = make_probs(kind, rng, n_samples, n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        labels, n_iter = reverse_ce_labels(
            probs, fairness_weight=fairness_weight, return_n_iter=True
        )
    assert_solved("reverse", probs, labels, fairness_weight=fairness_weight)
    assert n_iter <= 300


@pytest.mark.parametrize("fairness_weight", [0.0, 100.0])
@pytest.mark.parametrize("loss", LOSSES)
def test_all_rows_one_hot_at_the_same_class(loss, fairness_weight):
    probs = make_probs("same_one_hot", None, 25, 4)
    labels = SOLVERS[loss](probs, fairness_weight=fairness_weight)
    assert_solved(loss, probs, labels, fairness_weight=fairness_weight)
    if fairness_weight == 0.0:
        np.testing.assert_allclose(labels, probs, atol=1e-6)
    else:
        # fairness moves mass into the empty classes; the rows are identical
        y_bar = weighted_mean(labels)
        assert (y_bar[1:] > 0.01).all()


def assert_same_solution(loss, probs, labels, expected, **problem):
    """Two solutions of one problem agree.

    Objective values and ȳ (unique) to solver accuracy; labels too for the
    reverse loss (strictly convex where σ > 0). The collision labels are
    unique here, but along an edge y_a + y_b = 1 of a row its curvature
    (σ_a − σ_b)² / (σ·y)² can be small, so a KKT residual of 1e-6 pins them
    down only to about 1e-3: compared loosely, to catch a wrong assignment.
    """
    fairness_weight = problem["fairness_weight"]
    weights = problem.get("sample_weight")
    assert_same_objective(
        objective(loss, probs, labels, **problem),
        objective(loss, probs, expected, **problem),
        "the reference solution's",
    )
    np.testing.assert_allclose(
        weighted_mean(labels, weights),
        weighted_mean(expected, weights),
        atol=label_atol(fairness_weight),
    )
    atol = label_atol(fairness_weight) if loss == "reverse" else 1e-2
    np.testing.assert_allclose(labels, expected, atol=atol)


@pytest.mark.parametrize("loss", LOSSES)
def test_permuting_rows_permutes_labels(loss):
    rng = np.random.default_rng(12)
    probs = make_probs("soft", rng, 60, 4)
    weights = rng.uniform(0.5, 2.0, size=60)
    order = rng.permutation(60)
    problem = dict(prior=increasing_prior(4), fairness_weight=100.0)
    labels = SOLVERS[loss](probs, sample_weight=weights, **problem)
    permuted = SOLVERS[loss](probs[order], sample_weight=weights[order], **problem)
    assert_same_solution(
        loss,
        probs[order],
        permuted,
        labels[order],
        sample_weight=weights[order],
        **problem,
    )


@pytest.mark.parametrize("loss", LOSSES)
def test_permuting_classes_permutes_labels(loss):
    rng = np.random.default_rng(13)
    probs = make_probs("soft", rng, 60, 4)
    prior = increasing_prior(4)
    order = rng.permutation(4)
    labels = SOLVERS[loss](probs, prior=prior)
    permuted = SOLVERS[loss](probs[:, order], prior=prior[order])
    assert_same_solution(
        loss,
        probs[:, order],
        permuted,
        labels[:, order],
        prior=prior[order],
        fairness_weight=100.0,
    )


def test_identical_rows_share_the_reverse_labels():
    # the reverse objective is strictly convex where σ > 0: equal rows of σ get
    # equal rows of y
    rng = np.random.default_rng(14)
    probs = np.repeat(make_probs("soft", rng, 5, 6), 4, axis=0)
    labels = reverse_ce_labels(probs)
    np.testing.assert_allclose(labels[::4], labels[3::4], atol=label_atol(100.0))


# --------------------------------------------------------------------------
# Types, weights and warm starts
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss", LOSSES)
def test_numpy_in_numpy_out(loss, dtype):
    probs = make_probs("soft", np.random.default_rng(15), 30, 5).astype(dtype)
    labels = SOLVERS[loss](probs)
    assert isinstance(labels, np.ndarray)
    assert labels.dtype == dtype
    assert labels.shape == probs.shape


def _devices():
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append(pytest.param("cuda", marks=pytest.mark.gpu))
    return devices


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss", LOSSES)
def test_torch_in_torch_out(loss, dtype, device):
    probs64 = make_probs("soft", np.random.default_rng(16), 30, 5)
    probs = torch.tensor(probs64, dtype=dtype, device=device)
    labels = SOLVERS[loss](probs)
    assert isinstance(labels, torch.Tensor)
    assert labels.dtype == dtype
    assert labels.device == probs.device
    assert labels.shape == probs.shape
    tol = TOL if dtype == torch.float64 else FLOAT32_TOL
    assert_solved(loss, probs.cpu(), labels.cpu(), tol=tol, fairness_weight=100.0)


@pytest.mark.parametrize("loss", LOSSES)
def test_float32_softmax_input(loss):
    # rows of a float32 softmax sum to one only up to rounding
    logits = torch.randn(200, 10, generator=torch.Generator().manual_seed(17)) * 3
    probs = torch.softmax(logits, dim=1)
    labels = SOLVERS[loss](probs)
    assert labels.dtype == torch.float32
    assert torch.isfinite(labels).all()
    np.testing.assert_allclose(labels.sum(dim=1), 1.0, atol=1e-5)
    assert residual(loss, probs, labels) <= FLOAT32_TOL


@pytest.mark.parametrize("loss", LOSSES)
def test_integer_sample_weight_equals_repeated_rows(loss):
    rng = np.random.default_rng(18)
    probs = make_probs("soft", rng, 30, 5)
    counts = rng.integers(1, 4, size=30)
    problem = dict(prior=increasing_prior(5), fairness_weight=100.0)
    labels = SOLVERS[loss](probs, sample_weight=counts, **problem)
    repeated_probs = np.repeat(probs, counts, axis=0)
    repeated = SOLVERS[loss](repeated_probs, **problem)
    assert_same_objective(
        objective(loss, probs, labels, sample_weight=counts, **problem),
        objective(loss, repeated_probs, repeated, **problem),
        "the repeated rows'",
    )
    np.testing.assert_allclose(
        weighted_mean(labels, counts), weighted_mean(repeated), atol=label_atol(100.0)
    )


@pytest.mark.parametrize("loss", LOSSES)
def test_zero_sample_weight_equals_dropped_rows(loss):
    rng = np.random.default_rng(19)
    probs = make_probs("soft", rng, 30, 5)
    weights = rng.uniform(0.5, 2.0, size=30)
    weights[::3] = 0.0
    kept = weights > 0
    problem = dict(fairness_weight=100.0)
    labels = SOLVERS[loss](probs, sample_weight=weights, **problem)
    dropped = SOLVERS[loss](probs[kept], sample_weight=weights[kept], **problem)
    assert np.isfinite(labels).all()
    assert_same_objective(
        objective(loss, probs, labels, sample_weight=weights, **problem),
        objective(loss, probs[kept], dropped, sample_weight=weights[kept], **problem),
        "the kept rows'",
    )


@pytest.mark.parametrize("init", ["uniform", "random", "one_hot", "solution"])
@pytest.mark.parametrize("loss", LOSSES)
def test_warm_start_reaches_the_same_optimum(loss, init):
    rng = np.random.default_rng(20)
    probs = make_probs("soft", rng, 80, 6)
    problem = dict(prior=increasing_prior(6), fairness_weight=100.0)
    labels = SOLVERS[loss](probs, **problem)
    start = {
        "uniform": np.full_like(probs, 1.0 / 6),
        "random": rng.dirichlet(np.ones(6), size=80),
        "one_hot": np.eye(6)[rng.integers(6, size=80)],
        "solution": labels,
    }[init]
    warm = SOLVERS[loss](probs, init=start, **problem)
    assert_solved(loss, probs, warm, **problem)
    assert_same_objective(
        objective(loss, probs, warm, **problem),
        objective(loss, probs, labels, **problem),
        "the cold start's",
    )


@pytest.mark.parametrize("loss", LOSSES)
def test_return_n_iter(loss):
    probs = make_probs("soft", np.random.default_rng(21), 30, 5)
    labels, n_iter = SOLVERS[loss](probs, return_n_iter=True)
    assert isinstance(n_iter, int)
    assert n_iter >= 0
    np.testing.assert_array_equal(labels, SOLVERS[loss](probs))


@pytest.mark.parametrize("loss", LOSSES)
def test_unconverged_solve_warns(loss):
    # max_iter=1 on a hard problem: either solved or a RuntimeWarning says not
    probs = make_probs("soft", np.random.default_rng(22), 200, 20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = SOLVERS[loss](probs, max_iter=1, tol=1e-12)
    if residual(loss, probs, labels, fairness_weight=100.0) > 1e-12:
        assert any(issubclass(w.category, RuntimeWarning) for w in caught)


def test_kkt_residual_detects_non_optimal_labels():
    probs = make_probs("soft", np.random.default_rng(23), 30, 5)
    for loss in LOSSES:
        assert residual(loss, probs, probs.copy(), fairness_weight=100.0) > 1e-3
        assert residual(loss, probs, np.full_like(probs, 0.2)) > 1e-3
    assert residual("reverse", probs, probs.copy(), fairness_weight=0.0) <= 1e-12


def test_kkt_residual_rejects_a_tiny_entry_that_should_be_large():
    # The example of the KKT rule in the docs page "Design of the pseudo-label
    # solvers" (docs/developer/pseudo_label_solvers.rst): the collision
    # objective is 2.996 here against an optimum of 0.799, yet the
    # complementarity y_ik (G_ik − μ_i) of every entry is at most 4e-12. The
    # dual feasibility G_ik ≥ μ_i fails by O(1) on the entries at 1e-12;
    # checked on exact zeros only it passed.
    probs = np.array([[0.9, 0.1], [0.1, 0.9]])
    labels = np.array([[1e-12, 1.0 - 1e-12], [1.0 - 1e-12, 1e-12]])
    problem = dict(fairness_weight=1.0)
    assert residual("collision", probs, labels, **problem) > 1.0
    assert objective("collision", probs, labels, **problem) > 2.99
    optimum = collision_ce_labels(probs, **problem)
    assert residual("collision", probs, optimum, **problem) <= TOL
    assert objective("collision", probs, optimum, **problem) < 0.8


def test_kkt_residual_rejects_one_row_at_the_wrong_vertex():
    # The same among 1000 optimal rows: one row one-hot at its smaller σ, with
    # 1e-12 left at its larger one. One-hot rows have no complementarity, so
    # only the dual violation of that entry (G_ik far below μ_i) can tell.
    probs = np.repeat([[0.9, 0.1], [0.1, 0.9]], 500, axis=0)
    problem = dict(fairness_weight=1.0)
    optimum = collision_ce_labels(probs, **problem)
    np.testing.assert_allclose(optimum, np.eye(2)[probs.argmax(axis=1)], atol=1e-9)
    wrong = optimum.copy()
    wrong[0] = [1e-12, 1.0 - 1e-12]
    assert objective("collision", probs, wrong, **problem) > objective(
        "collision", probs, optimum, **problem
    )
    assert residual("collision", probs, wrong, **problem) > 1.0


def test_kkt_residual_rejects_a_zero_class_entry_shrunk():
    # Reverse loss: all rows predict class 0 (σ = e_0), so fairness gives
    # class 1 its mass through σ = 0 entries, where G_ik = −λu_k/ȳ_k does not
    # depend on y_ik. Shrinking that entry of one row to 1e-12 leaves the
    # complementarity of the row near zero (the row becomes e_0) but makes
    # the point worse: G_i1 − μ_i = −(1/y_i0 − 1) < 0.
    probs = np.eye(2)[np.zeros(1000, dtype=int)]
    problem = dict(prior=increasing_prior(2), fairness_weight=1.0)
    optimum = reverse_ce_labels(probs, **problem)
    assert residual("reverse", probs, optimum, **problem) <= TOL
    assert optimum[0, 1] > 0.1
    shrunk = optimum.copy()
    shrunk[0] = [1.0 - 1e-12, 1e-12]
    assert objective("reverse", probs, shrunk, **problem) > objective(
        "reverse", probs, optimum, **problem
    )
    assert residual("reverse", probs, shrunk, **problem) > 0.1


@pytest.mark.parametrize("loss", LOSSES)
def test_kkt_residual_agrees_with_the_reference_implementation(loss):
    # the library's certificate against the independent one of the reference
    # solvers, on points with tiny entries, exact zeros, weights and a prior
    rng = np.random.default_rng(26)
    probs = make_probs("exact_zeros", rng, 30, 6)
    labels = rng.dirichlet(np.full(6, 0.3), size=30)
    labels[labels < 1e-3] = 1e-12
    labels[:3, 1] = 0.0
    labels /= labels.sum(axis=1, keepdims=True)
    weights = rng.uniform(0.0, 2.0, size=30)
    weights[:2] = 0.0
    prior = increasing_prior(6)
    for fairness_weight in (0.0, 1.0, 100.0):
        sigma, w, u, lam = baseline_problem(probs, prior, fairness_weight, weights)
        expected = reference_kkt_residual(
            loss, sigma, torch.as_tensor(labels), w, u, lam
        )
        value = residual(
            loss,
            probs,
            labels,
            prior=prior,
            fairness_weight=fairness_weight,
            sample_weight=weights,
        )
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-15)


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------

GOOD = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])

BAD_INPUTS = {
    "nan": (dict(probs=np.array([[np.nan, 1.0], [0.5, 0.5]])), r"NaN|infinit"),
    "inf": (dict(probs=np.array([[np.inf, 1.0], [0.5, 0.5]])), r"NaN|infinit"),
    "negative": (dict(probs=np.array([[-0.2, 1.2], [0.5, 0.5]])), r"negative"),
    "not_normalized": (dict(probs=np.array([[0.2, 0.7], [0.5, 0.5]])), r"sum to one"),
    "one_dimensional": (dict(probs=np.array([0.2, 0.8])), r"2-D|dimension"),
    "prior_length": (dict(prior=np.array([0.2, 0.3, 0.5])), r"prior.*shape"),
    "prior_negative": (dict(prior=np.array([-0.5, 1.5])), r"prior.*nonnegative"),
    "prior_not_normalized": (dict(prior=np.array([0.2, 0.3])), r"prior.*sum to 1"),
    "fairness_weight_negative": (dict(fairness_weight=-1.0), r"fairness_weight"),
    "fairness_weight_nan": (dict(fairness_weight=math.nan), r"fairness_weight"),
    "tol_zero": (dict(tol=0.0), r"tol"),
    "tol_negative": (dict(tol=-1e-6), r"tol"),
    "max_iter_zero": (dict(max_iter=0), r"max_iter"),
    "sample_weight_negative": (
        dict(sample_weight=np.array([1.0, -1.0, 1.0])),
        r"sample_weight",
    ),
    "sample_weight_length": (dict(sample_weight=np.ones(4)), r"sample_weight"),
    "init_shape": (dict(init=np.full((2, 2), 0.5)), r"init"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
@pytest.mark.parametrize("loss", LOSSES)
def test_invalid_input_raises(loss, name):
    kwargs, message = BAD_INPUTS[name]
    kwargs = {"probs": GOOD, **kwargs}
    probs = kwargs.pop("probs")
    with pytest.raises(ValueError, match=message):
        SOLVERS[loss](probs, **kwargs)


@pytest.mark.parametrize(
    "name",
    ["nan", "negative", "not_normalized", "prior_length", "fairness_weight_negative"],
)
def test_invalid_input_raises_in_objectives_and_residual(name):
    kwargs, message = BAD_INPUTS[name]
    kwargs = {"probs": GOOD, **kwargs}
    probs = kwargs.pop("probs")
    labels = np.full(np.shape(probs), 0.5) if np.ndim(probs) == 2 else GOOD
    for function in (reverse_ce_objective, collision_ce_objective, kkt_residual):
        with pytest.raises(ValueError, match=message):
            function(probs, labels, **kwargs)


def test_kkt_residual_rejects_unknown_loss():
    with pytest.raises(ValueError, match="loss"):
        kkt_residual(GOOD, GOOD, loss="forward")


# --------------------------------------------------------------------------
# Properties on random problems
# --------------------------------------------------------------------------


@st.composite
def random_problems(draw):
    n_samples = draw(st.integers(1, 60))
    n_classes = draw(st.integers(1, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(KINDS))
    rng = np.random.default_rng(seed)
    probs = make_probs(kind, rng, n_samples, n_classes)
    prior = draw(st.sampled_from(["uniform", "increasing", "tiny"]))
    prior = {
        "uniform": None,
        "increasing": increasing_prior(n_classes),
        "tiny": tiny_entry_prior(n_classes) if n_classes > 1 else None,
    }[prior]
    fairness_weight = draw(st.one_of(st.just(0.0), st.floats(0.0, 1e4)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return probs.astype(dtype), prior, fairness_weight


@settings(max_examples=25, deadline=None, derandomize=True)
@given(problem=random_problems(), loss=st.sampled_from(LOSSES))
# found by hypothesis: one class and a vanishing λ once gave NaN labels
@example(problem=(np.ones((1, 1), dtype=np.float32), None, 1e-177), loss="collision")
def test_solver_properties(problem, loss):
    probs, prior, fairness_weight = problem
    n_classes = probs.shape[1]
    kwargs = dict(prior=prior, fairness_weight=fairness_weight)
    labels = SOLVERS[loss](probs, **kwargs)
    assert labels.dtype == probs.dtype
    assert np.isfinite(labels).all()
    assert (labels >= 0).all()
    atol = 1e-6 if probs.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=atol)
    # never worse than the solvers' warm start, nor than σ for the reverse loss
    value = objective(loss, probs, labels, **kwargs)
    slack = REL_OBJECTIVE * max(1.0, abs(value))
    warm = 0.99 * probs.astype(np.float64) + 0.01 / n_classes
    warm /= warm.sum(axis=1, keepdims=True)
    assert value <= objective(loss, probs, warm, **kwargs) + slack
    if loss == "reverse":
        assert value <= objective(loss, probs, probs, **kwargs) + slack
    tol = TOL if probs.dtype == np.float64 else FLOAT32_TOL
    assert residual(loss, probs, labels, **kwargs) <= tol
