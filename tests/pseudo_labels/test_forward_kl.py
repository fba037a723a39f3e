"""MI-ADM's pseudo-labels (``skentropy.pseudo_labels._forward_kl``, eq. 6).

Checked against the KKT rule of docs/developer/pseudo_label_solvers.rst and
against cvxpy.
"""

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from skentropy.pseudo_labels._forward_kl import (
    forward_kl_kkt_residual,
    forward_kl_labels,
    forward_kl_objective,
)

from helpers import random_log_probs

# ---- MI-ADM: the y-subproblem of eq. 6 ---------------------------------------


@pytest.mark.parametrize("fairness_weight", [0.5, 1.0, 100.0])
@pytest.mark.parametrize(
    "n_samples, n_classes, one_hot_rows", [(50, 3, 0), (250, 10, 20), (500, 30, 50)]
)
def test_forward_labels_are_optimal(
    n_samples, n_classes, one_hot_rows, fairness_weight, global_random_seed
):
    log_probs = random_log_probs(
        n_samples, n_classes, global_random_seed, one_hot_rows=one_hot_rows
    )
    labels, _, converged = forward_kl_labels(
        log_probs, fairness_weight=fairness_weight, tol=1e-6
    )
    assert converged
    assert torch.allclose(labels.sum(dim=1), torch.ones(n_samples, dtype=torch.float64))
    assert bool((labels >= 0).all())
    residual = forward_kl_kkt_residual(
        labels, log_probs, fairness_weight=fairness_weight
    )
    assert residual <= 1e-6


def test_forward_labels_with_weights_and_prior_are_optimal(global_random_seed):
    log_probs = random_log_probs(200, 5, global_random_seed, one_hot_rows=10)
    generator = torch.Generator().manual_seed(global_random_seed)
    weight = torch.rand(200, generator=generator, dtype=torch.float64)
    weight[:20] = 0.0
    prior = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05], dtype=torch.float64)
    labels, _, converged = forward_kl_labels(
        log_probs, prior=prior, sample_weight=weight, tol=1e-6
    )
    assert converged
    residual = forward_kl_kkt_residual(
        labels, log_probs, prior=prior, sample_weight=weight
    )
    assert residual <= 1e-6


def test_forward_labels_reach_the_cvxpy_optimum():
    cp = pytest.importorskip("cvxpy")
    n_samples, n_classes, fairness_weight = 40, 4, 1.0
    log_probs = random_log_probs(n_samples, n_classes, seed=7, one_hot_rows=3)
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    costs = np.where(np.isfinite(log_probs.numpy()), -log_probs.numpy(), 0.0)
    allowed = np.isfinite(log_probs.numpy())
    y = cp.Variable((n_samples, n_classes), nonneg=True)
    y_bar = cp.sum(y, axis=0) / n_samples
    objective = cp.sum(cp.multiply(costs, y)) / n_samples + fairness_weight * cp.sum(
        cp.rel_entr(y_bar, prior)
    )
    constraints = [cp.sum(y, axis=1) == 1, y[~allowed] == 0]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve(solver=cp.CLARABEL)
    labels, _, _ = forward_kl_labels(
        log_probs, prior=torch.tensor(prior), fairness_weight=fairness_weight, tol=1e-8
    )
    ours = forward_kl_objective(
        labels, log_probs, prior=torch.tensor(prior), fairness_weight=fairness_weight
    )
    assert ours <= problem.value + 1e-6 * max(1.0, abs(problem.value))


def test_forward_labels_closed_forms():
    log_probs = random_log_probs(30, 4, seed=8)
    labels, n_iter, converged = forward_kl_labels(log_probs, fairness_weight=0.0)
    assert n_iter == 0 and converged
    assert_array_equal(labels.argmax(dim=1).numpy(), log_probs.argmax(dim=1).numpy())
    assert bool(
        (labels.sum(dim=1) == 1).all() and (labels.max(dim=1).values == 1).all()
    )
    single, _, _ = forward_kl_labels(torch.zeros(5, 1, dtype=torch.float64))
    assert bool((single == 1).all())


def test_forward_labels_keep_the_input_dtype():
    log_probs = random_log_probs(100, 6, seed=9).to(torch.float32)
    labels, _, converged = forward_kl_labels(log_probs, tol=1e-4)
    assert labels.dtype == torch.float32 and converged
