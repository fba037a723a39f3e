"""SeLa's balanced hard labels (``skentropy.pseudo_labels._sinkhorn``, eq. 5).

Checked against the marginals they must match and against POT.
"""

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from skentropy.pseudo_labels._sinkhorn import (
    balanced_rounding,
    log_sinkhorn,
    sinkhorn_labels,
)

from helpers import random_log_probs

# ---- SeLa: Sinkhorn-Knopp ----------------------------------------------------


def test_log_sinkhorn_matches_the_marginals():
    log_probs = random_log_probs(200, 7, seed=0)
    rows = torch.rand(
        200, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    rows /= rows.sum()
    columns = torch.softmax(torch.linspace(0, 1, 7, dtype=torch.float64), dim=0)
    kernel = 25.0 * log_probs
    f, g, _, converged = log_sinkhorn(
        kernel, rows.log(), columns.log(), tol=1e-10, max_iter=100_000
    )
    assert converged
    plan = torch.exp(kernel + f[:, None] + g)
    assert torch.allclose(plan.sum(dim=1), rows, rtol=0, atol=1e-10)
    assert torch.allclose(plan.sum(dim=0), columns, rtol=0, atol=1e-10)


def test_log_sinkhorn_agrees_with_pot():
    ot = pytest.importorskip("ot")
    log_probs = random_log_probs(40, 5, seed=2)
    rows = torch.full((40,), 1 / 40, dtype=torch.float64)
    columns = torch.full((5,), 1 / 5, dtype=torch.float64)
    power = 5.0
    f, g, _, _ = log_sinkhorn(
        power * log_probs, rows.log(), columns.log(), tol=1e-12, max_iter=100_000
    )
    plan = torch.exp(power * log_probs + f[:, None] + g).numpy()
    expected = ot.sinkhorn(
        rows.numpy(),
        columns.numpy(),
        -log_probs.numpy(),
        reg=1 / power,
        method="sinkhorn_log",
        stopThr=1e-13,
        numItermax=100_000,
    )
    np.testing.assert_allclose(plan, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "n_samples, n_classes", [(250, 10), (1000, 10), (250, 7), (1000, 1000)]
)
def test_sinkhorn_labels_are_balanced(n_samples, n_classes):
    # every cluster's count within 1% of N/K plus one sample, even with
    # predictions that all favour one cluster
    log_probs = random_log_probs(n_samples, n_classes, seed=3)
    log_probs[:, 0] += 5.0
    log_probs = torch.log_softmax(log_probs, dim=1)
    labels = sinkhorn_labels(log_probs, max_iter=50)
    counts = torch.bincount(labels, minlength=n_classes).double()
    slack = 0.01 * n_samples / n_classes + 1
    assert float((counts - n_samples / n_classes).abs().max()) <= slack


def test_sinkhorn_labels_follow_the_prior():
    log_probs = random_log_probs(1000, 3, seed=4)
    prior = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    labels = sinkhorn_labels(log_probs, prior=prior, tol=1e-6, max_iter=10_000)
    counts = torch.bincount(labels, minlength=3)
    assert counts.tolist() == [600, 300, 100]


def test_balanced_rounding_fills_capacities_and_keeps_free_argmaxes():
    scores = random_log_probs(300, 4, seed=7)
    scores[:, 0] += 3.0  # most rows prefer cluster 0, which takes half
    capacities = torch.tensor([150, 100, 40, 10])
    labels = balanced_rounding(scores, capacities)
    assert torch.bincount(labels, minlength=4).tolist() == capacities.tolist()
    # where the argmax assignment fits the capacities, it is kept
    argmax = scores.argmax(dim=1)
    fitting = torch.bincount(argmax, minlength=4)
    assert_array_equal(balanced_rounding(scores, fitting).numpy(), argmax.numpy())
    # the overfull cluster keeps, of the rows that prefer it, those scoring best
    column = scores[:, 0]
    kept = labels == 0
    assert int((argmax == 0).sum()) > 150
    assert float(column[kept].min()) >= float(column[~kept & (argmax == 0)].max())


def test_sinkhorn_integer_weights_count_as_repeated_rows():
    # row 0 of weight 5 fills cluster 0 with its weight, as its 5 copies do;
    # counting rows (3 and 3) gave the clusters weights 7 and 3
    logits = torch.tensor(
        [[3.0, 0.0], [1.0, 0.0], [0.9, 0.0], [0.8, 0.0], [0.7, 0.0], [0.6, 0.0]],
        dtype=torch.float64,
    )
    log_probs = torch.log_softmax(logits, dim=1)
    weight = torch.tensor([5, 1, 1, 1, 1, 1])
    labels = sinkhorn_labels(
        log_probs, sample_weight=weight.double(), tol=1e-10, max_iter=10_000
    )
    repeated = sinkhorn_labels(
        log_probs.repeat_interleave(weight, dim=0), tol=1e-10, max_iter=10_000
    )
    assert_array_equal(labels.repeat_interleave(weight).numpy(), repeated.numpy())
    shares = torch.bincount(labels, weights=weight.double(), minlength=2) / 10
    assert shares.tolist() == [0.5, 0.5]


@pytest.mark.parametrize("seed", range(5))
def test_sinkhorn_weighted_rows_against_repeated_rows(seed):
    # integer weights 1 to 4: each cluster's weight misses round(W u_k) by
    # less than the largest weight (a row whose copies the repeated rows
    # would split goes whole to one cluster), and the labels are those of
    # the repeated rows on nearly every copy
    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(
        2.0 * torch.randn(60, 4, generator=generator, dtype=torch.float64), dim=1
    )
    weight = torch.randint(1, 5, (60,), generator=generator)
    prior = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    labels = sinkhorn_labels(
        log_probs,
        prior=prior,
        sample_weight=weight.double(),
        tol=1e-10,
        max_iter=10_000,
    )
    repeated = sinkhorn_labels(
        log_probs.repeat_interleave(weight, dim=0),
        prior=prior,
        tol=1e-10,
        max_iter=10_000,
    )
    totals = torch.bincount(labels, weights=weight.double(), minlength=4)
    sizes = torch.bincount(repeated, minlength=4).double()  # round(W u_k)
    assert float((totals - sizes).abs().max()) < int(weight.max())
    agree = (labels.repeat_interleave(weight) == repeated).double().mean()
    assert float(agree) >= 0.95


def test_balanced_rounding_with_weights_fills_capacities_in_weight():
    scores = random_log_probs(300, 4, seed=8)
    scores[:, 0] += 3.0
    weight = torch.randint(1, 4, (300,), generator=torch.Generator().manual_seed(9))
    total = int(weight.sum())
    capacities = torch.tensor([total // 2, total // 4, total // 8])
    capacities = torch.cat([capacities, torch.tensor([total - capacities.sum()])])
    labels = balanced_rounding(scores, capacities, weight.double())
    totals = torch.bincount(labels, weights=weight.double(), minlength=4)
    assert float((totals - capacities).abs().max()) < 3
    # unit weights: exactly the capacities, as without weights
    unit = balanced_rounding(
        scores, torch.tensor([150, 100, 40, 10]), torch.ones(300, dtype=torch.float64)
    )
    assert_array_equal(
        unit.numpy(),
        balanced_rounding(scores, torch.tensor([150, 100, 40, 10])).numpy(),
    )


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sinkhorn_is_stable_with_many_clusters_and_extreme_predictions(dtype):
    n_samples, n_classes = 1000, 2000
    logits = 1000.0 * torch.randn(
        n_samples, n_classes, generator=torch.Generator().manual_seed(5)
    )
    log_probs = torch.log_softmax(logits, dim=1).to(dtype)
    log_probs[:, :10] = -torch.inf  # σ = 0 exactly (underflow)
    assert bool(torch.isinf(log_probs).any())
    kernel = 25.0 * log_probs.double().clamp_min(-745.0)
    f, g, _, _ = log_sinkhorn(
        kernel,
        torch.full((n_samples,), -np.log(n_samples), dtype=torch.float64),
        torch.full((n_classes,), -np.log(n_classes), dtype=torch.float64),
        max_iter=20,
    )
    assert bool(torch.isfinite(f).all() and torch.isfinite(g).all())
    labels = sinkhorn_labels(log_probs, max_iter=20)
    assert labels.shape == (n_samples,)
    assert int(labels.min()) >= 0 and int(labels.max()) < n_classes


def test_sinkhorn_ignores_zero_weight_rows():
    log_probs = random_log_probs(100, 4, seed=6)
    weight = torch.ones(100, dtype=torch.float64)
    weight[50:] = 0.0
    labels = sinkhorn_labels(log_probs, sample_weight=weight, tol=1e-8, max_iter=10_000)
    alone = sinkhorn_labels(log_probs[:50], tol=1e-8, max_iter=10_000)
    assert_array_equal(labels[:50].numpy(), alone.numpy())
