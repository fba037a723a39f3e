"""Tests of the library's last-resort pseudo-label solver, ``_newton_fallback``.

The public solvers of :mod:`skentropy.pseudo_labels` call it where their duals
have kinks and are judged in ``tests/test_pseudo_labels.py``; here it is run
alone on such problems and judged by the library's KKT rule
(:func:`skentropy.pseudo_labels.kkt_residual`) and by the objective that the
independent reference solver (``skentropy._reference_solvers``) reaches. The
library must not depend on the reference solvers that judge it.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

from skentropy._reference_solvers import structured_newton
from skentropy.pseudo_labels import (
    collision_ce_objective,
    kkt_residual,
    reverse_ce_objective,
)
from skentropy.pseudo_labels._newton_fallback import newton_fallback

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
