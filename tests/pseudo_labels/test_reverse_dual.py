"""Tests of the dual Newton solver of the reverse pseudo-label problem.

``skentropy.pseudo_labels._reverse_dual`` is a private module: the public
:func:`skentropy.pseudo_labels.reverse_ce_labels` calls it after SQUAREM-EM
and is judged by ``tests/pseudo_labels/test_api.py``. Here its pieces are checked
against their definitions: each row solution against the KKT conditions of
its row problem, the label Jacobian and the dual gradient against finite
differences, and the whole method on the problems it exists for (large N or λ).
"""

import math

import numpy as np
import pytest
import torch

from skentropy.pseudo_labels import kkt_residual
from skentropy.pseudo_labels._reverse_dual import _ReverseDual, solve_reverse_dual


def make_problem(n_samples, n_classes, seed, zeros=False, fairness_weight=100.0):
    rng = np.random.default_rng(seed)
    logits = 3.0 * rng.standard_normal((n_samples, n_classes))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    if zeros:
        drop = rng.random((n_samples, n_classes)) < 0.5
        drop[np.arange(n_samples), probs.argmax(axis=1)] = False
        probs[drop] = 0.0
    probs /= probs.sum(axis=1, keepdims=True)
    weights = torch.full((n_samples,), 1.0 / n_samples, dtype=torch.float64)
    prior = torch.full((n_classes,), 1.0 / n_classes, dtype=torch.float64)
    return _ReverseDual(torch.tensor(probs), weights, prior, fairness_weight)


def random_beta(problem, seed, spread=1.0):
    generator = torch.Generator().manual_seed(seed)
    theta = math.log(problem.fairness_weight) + spread * torch.randn(
        int(problem.fair.sum()), generator=generator, dtype=torch.float64
    )
    return theta, problem.beta(theta)


@pytest.mark.parametrize("zeros", [False, True])
def test_row_solutions_solve_their_row_problems(zeros):
    # min over the simplex of −Σ_k σ_k ln y_k − β·y: the gradient −σ_k/y_k − β_k
    # equals −c on the support of y and is at least −c off it
    problem = make_problem(50, 8, 0, zeros=zeros)
    _, beta = random_beta(problem, 1, spread=2.0)
    rows = problem.solve_rows(beta)
    y = problem.dense(rows)
    torch.testing.assert_close(y.sum(dim=1), torch.ones(50, dtype=torch.float64))
    assert bool((y >= 0).all())
    level = rows.anchor + rows.offset
    grad = torch.where(problem.positive, -problem.probs / y, 0.0) - beta
    support = y > 0
    torch.testing.assert_close(
        torch.where(support, grad, -level).expand_as(y),
        (-level).expand_as(y),
        rtol=1e-9,
        atol=1e-9,
    )
    assert bool((torch.where(support, 0.0, grad + level) >= -1e-9).all())
    if zeros:
        assert bool(rows.active.any()), "no row puts mass on a σ = 0 class"


@pytest.mark.parametrize("zeros", [False, True])
def test_label_jacobian_matches_finite_differences(zeros):
    problem = make_problem(40, 6, 2, zeros=zeros, fairness_weight=10.0)
    _, beta = random_beta(problem, 3)
    rows = problem.solve_rows(beta)
    jacobian = problem.label_jacobian(rows)
    step = 1e-6
    for k in range(6):
        shift = torch.zeros_like(beta)
        shift[k] = step
        plus = problem.weights @ problem.dense(problem.solve_rows(beta + shift))
        minus = problem.weights @ problem.dense(problem.solve_rows(beta - shift))
        torch.testing.assert_close(
            jacobian[:, k], (plus - minus) / (2 * step), rtol=1e-4, atol=1e-7
        )
    torch.testing.assert_close(jacobian, jacobian.T)
    assert float(torch.linalg.eigvalsh(jacobian).min()) >= -1e-12


def test_dual_gradient_matches_finite_differences():
    # ∂D/∂θ_k = λu_k − β_k ȳ_k
    problem = make_problem(30, 5, 4, fairness_weight=3.0)
    theta, beta = random_beta(problem, 5)
    y_bar = problem.weights @ problem.dense(problem.solve_rows(beta))
    gradient = problem.target - beta * y_bar
    step = 1e-6
    for k in range(5):
        shift = torch.zeros_like(theta)
        shift[k] = step
        values = [
            problem.dual_value(t, problem.solve_rows(problem.beta(t)))
            for t in (theta + shift, theta - shift)
        ]
        assert (values[0] - values[1]) / (2 * step) == pytest.approx(
            float(gradient[k]), rel=1e-5, abs=1e-8
        )


@pytest.mark.parametrize("fairness_weight", [1.0, 100.0, 1e4])
@pytest.mark.parametrize(
    "n_samples, n_classes",
    [
        (250, 2),
        (250, 20),
        (10_000, 20),
        pytest.param(10_000, 200, marks=pytest.mark.slow),
    ],
)
def test_converges_where_it_is_used(n_samples, n_classes, fairness_weight):
    problem = make_problem(n_samples, n_classes, 6, fairness_weight=fairness_weight)
    y, n_iter, converged = solve_reverse_dual(
        problem.probs, problem.weights, problem.prior, fairness_weight
    )
    assert converged
    assert n_iter <= 10
    residual = kkt_residual(problem.probs, y, fairness_weight=fairness_weight)
    assert residual <= 1e-6
