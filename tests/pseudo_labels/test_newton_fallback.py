"""Tests of the library's last-resort pseudo-label solver, ``_newton_fallback``.

The public solvers of :mod:`skentropy.pseudo_labels` call it where their duals
have kinks and are judged in ``tests/pseudo_labels/test_api.py``; here it is run
alone on such problems and judged by the library's KKT rule
(:func:`skentropy.pseudo_labels.kkt_residual`) and by the objective that the
independent reference solver (``skentropy._reference_solvers``) reaches. The
two solve their Newton systems by different eliminations; both are checked
against a dense solve of the full system with ``numpy.linalg.solve``, so that
a bug in either elimination cannot pass by agreeing with the other. The
library must not depend on the reference solvers that judge it.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

from skentropy._reference_solvers import _NewtonSystem, structured_newton
from skentropy.pseudo_labels import (
    collision_ce_objective,
    kkt_residual,
    reverse_ce_objective,
)
from skentropy.pseudo_labels._newton_fallback import (
    _newton_direction,
    _RowBlocks,
    newton_fallback,
)

OBJECTIVES = {"reverse": reverse_ce_objective, "collision": collision_ce_objective}
TOL = 1e-6


def make_problem(kind, n_samples, n_classes, seed):
    """σ (float64 tensor) of a kind whose dual has kinks, uniform w and u."""
    rng = np.random.default_rng(seed)
    if kind == "one_hot":
        probs = np.eye(n_classes)[rng.integers(n_classes, size=n_samples)]
    elif kind == "exact_zeros":
        logits = rng.standard_normal((n_samples, n_classes))
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        drop = rng.random(probs.shape) < 0.5
        drop[np.arange(n_samples), probs.argmax(axis=1)] = False
        probs[drop] = 0.0
    elif kind == "peaked":
        logits = 30.0 * rng.standard_normal((n_samples, n_classes))
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    else:
        raise ValueError(kind)
    probs = torch.as_tensor(probs / probs.sum(axis=1, keepdims=True))
    weights = torch.full((n_samples,), 1.0 / n_samples, dtype=torch.float64)
    prior = torch.full((n_classes,), 1.0 / n_classes, dtype=torch.float64)
    return probs, weights, prior


@pytest.mark.parametrize("fairness_weight", [1.0, 100.0, 1e4])
@pytest.mark.parametrize(
    "kind, n_samples, n_classes",
    [
        ("one_hot", 40, 20),
        ("one_hot", 7, 200),
        ("exact_zeros", 8, 200),
        ("peaked", 100, 30),
    ],
)
@pytest.mark.parametrize("loss", ["reverse", "collision"])
def test_fallback_reaches_the_tolerance(
    loss, kind, n_samples, n_classes, fairness_weight
):
    probs, weights, prior = make_problem(kind, n_samples, n_classes, seed=n_classes)
    labels, n_iter, residual = newton_fallback(
        probs, weights, prior, fairness_weight, loss, tol=TOL
    )
    assert bool(torch.isfinite(labels).all()) and bool((labels >= 0).all())
    torch.testing.assert_close(
        labels.sum(dim=1), torch.ones(n_samples, dtype=torch.float64)
    )
    assert n_iter < 200
    assert residual <= TOL
    assert kkt_residual(
        probs, labels, loss=loss, fairness_weight=fairness_weight
    ) == pytest.approx(residual)
    # not worse than the independent reference method solved tighter
    reference, _ = structured_newton(
        probs, weights, prior, fairness_weight, loss=loss, tol=1e-7, max_iter=500
    )
    value = OBJECTIVES[loss](probs, labels, fairness_weight=fairness_weight)
    best = OBJECTIVES[loss](probs, reference, fairness_weight=fairness_weight)
    assert value <= best + 1e-6 * max(1.0, abs(best))


@pytest.mark.parametrize("loss", ["reverse", "collision"])
def test_fallback_from_a_start_and_with_zero_weights(loss):
    probs, weights, prior = make_problem("exact_zeros", 60, 10, seed=1)
    weights = weights.clone()
    weights[:10] = 0.0
    weights /= weights.sum()
    start = torch.full_like(probs, 0.1)
    labels, _, residual = newton_fallback(
        probs, weights, prior, 100.0, loss, tol=TOL, init=start
    )
    assert residual <= TOL
    assert kkt_residual(
        probs, labels, loss=loss, fairness_weight=100.0, sample_weight=weights
    ) == pytest.approx(residual)
    # rows of zero weight keep the (mixed) starting point
    torch.testing.assert_close(labels[:10], start[:10])


def dense_newton_step(diagonal, rank_one, weights, curvature, rhs):
    """d of the Newton equations, assembled in full and solved densely.

    H d + Bᵀν = r, B d = 0 with H = blockdiag(diag(e_i) + v_i v_iᵀ)
    + Σ_k c_k a_k a_kᵀ (a_k holds w_i at the entries (i, k)) and B the row sums.
    """
    n_samples, n_classes = diagonal.shape
    size = n_samples * n_classes
    hessian = np.zeros((size, size))
    for i in range(n_samples):
        block = slice(i * n_classes, (i + 1) * n_classes)
        hessian[block, block] = np.diag(diagonal[i]) + np.outer(
            rank_one[i], rank_one[i]
        )
    columns = np.kron(weights[:, None], np.eye(n_classes))
    hessian += columns @ np.diag(curvature) @ columns.T
    row_sums = np.kron(np.eye(n_samples), np.ones((1, n_classes)))
    system = np.block([[hessian, row_sums.T], [row_sums, np.zeros((n_samples,) * 2)]])
    solution = np.linalg.solve(
        system, np.concatenate([rhs.ravel(), np.zeros(n_samples)])
    )
    return solution[:size].reshape(n_samples, n_classes)


@pytest.mark.parametrize("spread", [1.0, 1e3])
@pytest.mark.parametrize("loss", ["reverse", "collision"])
def test_newton_steps_match_a_dense_solve(loss, spread):
    # the row blocks near a boundary optimum mix entries of sizes 1/spread
    # and spread; one class has no fairness curvature (u_k = 0)
    rng = np.random.default_rng(3)
    n_samples, n_classes = 7, 5
    diagonal = spread ** rng.uniform(-1.0, 1.0, size=(n_samples, n_classes))
    if loss == "reverse":
        rank_one = np.zeros((n_samples, n_classes))
    else:
        rank_one = rng.uniform(0.0, 2.0, size=(n_samples, n_classes))
    weights = rng.uniform(0.5, 1.5, size=n_samples)
    weights /= weights.sum()
    curvature = rng.uniform(0.5, 50.0, size=n_classes)
    curvature[0] = 0.0
    gradient = rng.standard_normal((n_samples, n_classes))
    expected = dense_newton_step(diagonal, rank_one, weights, curvature, -gradient)
    tensors = [
        torch.as_tensor(array) for array in (diagonal, rank_one, weights, curvature)
    ]
    blocks = _RowBlocks(tensors[0], None if loss == "reverse" else tensors[1])
    library = _newton_direction(blocks, torch.as_tensor(gradient), *tensors[2:])
    reference = _NewtonSystem(*tensors).solve(torch.as_tensor(-gradient))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(library.numpy(), expected, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(reference.numpy(), expected, rtol=0, atol=1e-9 * scale)


@pytest.mark.slow
def test_library_does_not_import_the_reference_solvers():
    # the reference solvers judge the library, so no library module may use
    # them; import every module (optional dependencies may be missing)
    script = """
import importlib, pkgutil, sys
import skentropy
for module in pkgutil.walk_packages(skentropy.__path__, "skentropy."):
    if module.name == "skentropy._reference_solvers":
        continue
    try:
        importlib.import_module(module.name)
    except ImportError:
        pass
print("skentropy._reference_solvers" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert result.stdout.strip() == "False"
