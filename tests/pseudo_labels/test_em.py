"""The papers' EM (``skentropy.pseudo_labels._em``): its M-step, and stacks of problems.

The estimators solve the pseudo-labels of all their heads on a mini-batch at
once: ``method="em"`` with ``check_input=False`` takes σ of shape
(n_heads, n_samples, n_clusters). Each problem of the stack must get the
labels it gets alone, whichever path it takes (plain EM, SQUAREM, the snaps
of exact zeros) and whenever it stops.
"""

import numpy as np
import pytest
import torch

from skentropy.pseudo_labels import collision_ce_labels, reverse_ce_labels
from skentropy.pseudo_labels._em import collision_ce_m_step, fairness_coefficients

SOLVERS = {"reverse": reverse_ce_labels, "collision": collision_ce_labels}
# one problem per sharpness: they converge after different numbers of steps
SHARPNESS = (0.5, 2.0, 8.0, 30.0)


def stacked_problems(kind, n_samples=80, n_classes=6, seed=0):
    """σ of shape (4, n_samples, n_classes), priors (4, n_classes), weights."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(
        len(SHARPNESS), n_samples, n_classes, generator=generator, dtype=torch.float64
    )
    probs = torch.softmax(logits * torch.tensor(SHARPNESS)[:, None, None], dim=-1)
    if kind == "zeros":  # exact zeros: the reverse EM snaps entries there
        probs[:, : n_samples // 4, 0] = 0.0
        probs /= probs.sum(dim=-1, keepdim=True)
    priors = torch.distributions.Dirichlet(torch.full((n_classes,), 5.0)).sample(
        (len(SHARPNESS),)
    )
    weights = torch.rand(n_samples, generator=generator, dtype=torch.float64)
    weights[:5] = 0.0
    return probs, priors.to(torch.float64), weights


@pytest.mark.parametrize("loss", ["reverse", "collision"])
@pytest.mark.parametrize("kind", ["soft", "zeros"])
@pytest.mark.parametrize("tol", [5e-2, pytest.param(1e-5, marks=pytest.mark.slow)])
def test_a_stack_is_solved_as_its_problems_alone(loss, kind, tol):
    torch.manual_seed(0)
    probs, priors, weights = stacked_problems(kind)
    options = dict(
        fairness_weight=100.0,
        tol=tol,
        max_iter=1000,
        sample_weight=weights,
        method="em",
        check_input=False,
        return_n_iter=True,
    )
    stacked, n_iter = SOLVERS[loss](probs, prior=priors, **options)
    alone = [
        SOLVERS[loss](probs[index], prior=priors[index], **options)
        for index in range(len(SHARPNESS))
    ]
    for index, (labels, _) in enumerate(alone):
        np.testing.assert_allclose(stacked[index], labels, rtol=1e-9, atol=1e-12)
    counts = [count for _, count in alone]
    assert n_iter == max(counts)
    assert len(set(counts)) > 1  # the problems stopped at different steps


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["reverse", "collision"])
def test_a_stack_shares_one_prior(loss):
    probs, _, weights = stacked_problems("soft")
    prior = torch.tensor([0.3, 0.2, 0.2, 0.1, 0.1, 0.1], dtype=torch.float64)
    options = dict(tol=1e-5, sample_weight=weights, method="em", check_input=False)
    stacked = SOLVERS[loss](probs, prior=prior, **options)
    for index in range(len(SHARPNESS)):
        alone = SOLVERS[loss](probs[index], prior=prior, **options)
        np.testing.assert_allclose(stacked[index], alone, rtol=1e-9, atol=1e-12)


def test_a_stack_warns_with_its_largest_residual():
    probs, priors, weights = stacked_problems("soft")
    with pytest.warns(RuntimeWarning, match="stopped after 1 iterations"):
        reverse_ce_labels(
            probs,
            prior=priors,
            tol=1e-12,
            max_iter=1,
            sample_weight=weights,
            method="em",
            check_input=False,
        )


def m_step_problems(seed=0, n_samples=60, n_classes=5):
    """σ and E-step coefficients a, with some a_ik = 0 and a tiny and a large λ."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n_samples, n_classes, generator=generator, dtype=torch.float64)
    probs = torch.softmax(4.0 * logits, dim=-1)
    labels = torch.softmax(
        torch.randn(n_samples, n_classes, generator=generator, dtype=torch.float64),
        dim=-1,
    )
    labels[: n_samples // 3, 0] = 0.0  # a_k = 0: the case K_o of supplement C
    labels /= labels.sum(dim=-1, keepdim=True)
    return [
        (probs, labels, fairness_coefficients(labels, weights, prior, weight))
        for weight in (1e-12, 1.0, 100.0)
        for weights in [torch.full((n_samples,), 1.0 / n_samples, dtype=torch.float64)]
        for prior in [torch.full((n_classes,), 1.0 / n_classes, dtype=torch.float64)]
    ]


@pytest.mark.parametrize("start", ["labels", "one-hot", "uniform"])
def test_collision_m_step_reaches_the_same_root_from_any_start(start):
    # the start only places Newton's first iterate: near the root (the labels
    # whose E-step gave a), or far from it on either side
    for probs, labels, coef in m_step_problems():
        previous = {
            "labels": labels,
            "one-hot": torch.nn.functional.one_hot(
                probs.argmin(dim=-1), probs.shape[1]
            ).to(probs.dtype),
            "uniform": torch.full_like(probs, 1.0 / probs.shape[1]),
        }[start]
        cold = collision_ce_m_step(probs, coef)
        warm = collision_ce_m_step(probs, coef, previous=previous)
        np.testing.assert_allclose(warm, cold, rtol=1e-10, atol=1e-14)


def test_collision_m_step_root_is_sigma_dot_its_labels():
    # the identity behind the start x = σ·y: the M-step's y is stationary,
    # y_k (A + 1 − σ_k / x) = a_k on a_k > 0, with x = σ·y itself
    for probs, labels, coef in m_step_problems(seed=1):
        y = collision_ce_m_step(probs, coef, previous=labels)
        x = (probs * y).sum(dim=-1, keepdim=True)
        total = coef.sum(dim=-1, keepdim=True)
        stationary = y * (total + 1.0 - probs / x)
        positive = coef > 0
        np.testing.assert_allclose(
            stationary[positive], coef[positive], rtol=1e-8, atol=1e-12
        )


def test_collision_m_step_without_zero_coefficients_is_the_general_one():
    # rows whose a_k are all positive take a shortcut (no class of K_o to
    # give mass to): the same labels, bit for bit, as the general path that
    # they take next to a row with some a_k = 0
    for probs, labels, coef in m_step_problems(seed=2):
        rows = (coef > 0).all(dim=-1)
        assert rows.sum() > 10 and not rows.all()
        mixed = torch.cat([probs[rows], probs[~rows][:1]])
        mixed_coef = torch.cat([coef[rows], coef[~rows][:1]])
        previous = torch.cat([labels[rows], labels[~rows][:1]])
        alone = collision_ce_m_step(probs[rows], coef[rows], previous=labels[rows])
        general = collision_ce_m_step(mixed, mixed_coef, previous=previous)
        assert torch.equal(alone, general[:-1])
