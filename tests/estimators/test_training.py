"""The training loop of the estimators: its mini-batches are contiguous slices
of X, read without a copy, when the rows are in random order, and a random
partition of the rows when they are sorted, so that the order of the rows never
changes the clustering; it trains on one torch thread and restores the
caller's setting; σ is averaged over the views of each row; the margin's
warm-up and the default patience of the stopping rule count optimizer steps;
``lr="auto"`` scales Adam's step to the number of features."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from skentropy import (
    CollisionCEClustering,
    EntropyClustering,
    MaxMarginEntropyClustering,
)
from skentropy._estimators import _shallow
from skentropy._estimators._training import (
    Run,
    TrainingPolicy,
    learning_rate,
    step_pace,
)

from helpers import each_paper_estimator, fit_quietly, make_fast


@pytest.fixture(scope="module")
def blobs():
    """4,000 rows in 5 blobs: 16 batches of 250, enough for contiguous ones."""
    X, y = make_blobs(n_samples=4000, centers=5, n_features=8, random_state=0)
    return X.astype(np.float32), y


def fit_labels(Estimator, X):
    return fit_quietly(make_fast(Estimator, n_clusters=5), X).labels_


@pytest.mark.slow
@each_paper_estimator
def test_rows_sorted_by_cluster_cluster_as_well_as_shuffled_rows(Estimator, blobs):
    # Contiguous batches of rows sorted by cluster would hold one cluster
    # each, and the fairness term would split it (ARI 0.3 to 0.7 here).
    X, y = blobs
    order = np.argsort(y, kind="stable")
    assert adjusted_rand_score(y, fit_labels(Estimator, X)) > 0.95
    assert adjusted_rand_score(y[order], fit_labels(Estimator, X[order])) > 0.95


@pytest.mark.parametrize("sort", [False, True], ids=["shuffled", "sorted"])
def test_batches_copied_from_a_read_only_array_give_the_same_labels(blobs, sort):
    # A writable array gives views of its slices or gathers rows with torch,
    # a read-only one is copied batch by batch with numpy: same batches.
    X, y = blobs
    if sort:
        X = X[np.argsort(y, kind="stable")]
    read_only = X.copy()
    read_only.setflags(write=False)
    assert_array_equal(
        fit_labels(EntropyClustering, X), fit_labels(EntropyClustering, read_only)
    )


# catch_warnings in fit_labels is not thread-safe
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_restores_the_torch_thread_setting(blobs):
    X, _ = blobs
    n_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fit_labels(EntropyClustering, X)
        assert torch.get_num_threads() == 2
        with ThreadPoolExecutor(max_workers=3) as pool:
            labels = list(pool.map(fit_labels, [EntropyClustering] * 3, [X] * 3))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(n_threads)
    # concurrent fits of the same seed agree
    assert_array_equal(labels[0], labels[1])
    assert_array_equal(labels[0], labels[2])


class _TwiceTheSample:
    """Views that are the sample itself, twice; records the rows of each batch."""

    n_views = 2

    def __init__(self, n_samples):
        self.n_samples = n_samples
        self.rows = []

    def __call__(self, batch, rows, generator):
        self.rows.append(np.arange(self.n_samples)[rows])
        return torch.cat([batch, batch])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_trainer_averages_sigma_over_the_views_of_each_row(blobs, monkeypatch):
    # The place where views plug in: they get each batch with the indices of
    # its rows in X, and σ is averaged over them (log-mean-exp); two copies
    # of the sample train as the sample itself.
    from skentropy._estimators._shallow import ShallowTrainer

    X, _ = blobs
    X = X.astype(np.float64)
    single = EntropyClustering(n_clusters=5, max_iter=2, random_state=0).fit(X)
    views = _TwiceTheSample(len(X))
    monkeypatch.setattr(ShallowTrainer, "views", views)
    twice = EntropyClustering(n_clusters=5, max_iter=2, random_state=0).fit(X)
    n_batches = len(views.rows) // 2
    for epoch in range(2):
        epoch_rows = views.rows[epoch * n_batches : (epoch + 1) * n_batches]
        assert_array_equal(np.sort(np.concatenate(epoch_rows)), np.arange(len(X)))
    np.testing.assert_allclose(twice.loss_curve_, single.loss_curve_, rtol=1e-9)
    assert_array_equal(twice.labels_, single.labels_)


@pytest.mark.parametrize(
    "Estimator",
    [
        EntropyClustering,
        pytest.param(CollisionCEClustering, marks=pytest.mark.slow),
        MaxMarginEntropyClustering,
    ],
)
@pytest.mark.parametrize(
    "prior, semi_supervised",
    [
        (None, True),
        pytest.param("auto", True, marks=pytest.mark.slow),
        pytest.param(None, False, marks=pytest.mark.slow),
    ],
)
def test_stacked_heads_train_as_heads_one_by_one(
    Estimator, prior, semi_supervised, blobs, monkeypatch
):
    # The trainer computes all heads' logits of a batch in one product, and
    # the self-labeling estimators solve all heads' pseudo-labels of a batch
    # at once; both must train the heads as one product and one loss call
    # per head do (prior="auto": each head with its own estimated prior), with
    # and without labels.
    X, y = blobs
    X = X.astype(np.float64)
    labels = np.where(np.arange(len(y)) % 20 == 0, y, -1)
    params = dict(
        n_clusters=5,
        n_heads=3,
        max_iter=12,  # past the margin warm-up, where the priors move
        random_state=0,
        prior=prior,
        semi_supervised=semi_supervised,
    )
    stacked = fit_quietly(Estimator(**params), X, labels)
    monkeypatch.setattr(Estimator, "_stacked_loss", False)
    monkeypatch.setattr(
        _shallow,
        "stacked_logits",
        lambda heads, features: torch.stack([head(features) for head in heads], 1),
    )
    one_by_one = fit_quietly(Estimator(**params), X, labels)
    np.testing.assert_allclose(stacked.loss_curve_, one_by_one.loss_curve_, rtol=1e-7)
    np.testing.assert_allclose(stacked.coef_, one_by_one.coef_, rtol=1e-6, atol=1e-9)
    assert_array_equal(stacked.labels_, one_by_one.labels_)


def _policy(steps_per_epoch, n_iter_no_change="auto", pace=1.0):
    run = Run(
        epochs=100,
        new=True,
        incremental=False,
        epochs_before=0,
        steps_per_epoch=steps_per_epoch,
        description="",
    )
    return TrainingPolicy(run, tol=10.0, n_iter_no_change=n_iter_no_change, pace=pace)


@pytest.mark.parametrize(
    "steps_per_epoch, warmup, patience",
    [(1, 10, 10), (8, 10, 10), (9, 9, 10), (20, 4, 8), (40, 2, 4), (79, 2, 3)]
    + [(80, 2, 2), (4000, 2, 2)],
)
def test_warmup_and_patience_last_80_and_160_steps(steps_per_epoch, warmup, patience):
    """Between 2 and 10 epochs each: 10 for digits' 8 batches, 2 and 4 for 40."""
    policy = _policy(steps_per_epoch)
    assert (policy.warmup_epochs, policy.patience) == (warmup, patience)
    scales, stopped = [], False
    while not stopped:
        scales.append(policy.begin_epoch())
        stopped = policy.end_epoch(1.0)  # no epoch improves by tol=10
    np.testing.assert_allclose(scales[: warmup + 1], np.arange(warmup + 1) / warmup)
    assert all(scale == 1.0 for scale in scales[warmup:])
    # after the warm-up: one epoch sets the best loss, then patience + 1 misses
    assert len(scales) == warmup + 1 + patience + 1


def test_an_integer_patience_counts_epochs():
    policy = _policy(40, n_iter_no_change=7)
    assert (policy.warmup_epochs, policy.patience) == (2, 7)


@pytest.mark.parametrize(
    "pace, steps_per_epoch, warmup, patience",
    [(4.0, 8, 3, 5), (4.0, 16, 2, 3), (2.0, 8, 5, 10), (0.5, 8, 10, 10)]
    + [(0.5, 40, 4, 8), (1e-3, 40, 10, 10)],
)
def test_warmup_and_patience_last_as_far_as_80_and_160_steps_at_pace_one(
    pace, steps_per_epoch, warmup, patience
):
    """80 / pace and 160 / pace steps (digits' 8 batches of 0.04-steps: 20
    and 40 steps, 3 and 5 epochs), each between 2 and 10 epochs."""
    policy = _policy(steps_per_epoch, pace=pace)
    assert (policy.warmup_epochs, policy.patience) == (warmup, patience)


@pytest.mark.parametrize(
    "lr, optimizer, pace", [(0.01, "adam", 1.0), (0.04, "adam", 4.0), (0.1, "sgd", 1.0)]
)
def test_step_pace_is_adams_step_over_its_reference(lr, optimizer, pace):
    assert step_pace(lr, optimizer) == pytest.approx(pace)


@pytest.mark.parametrize(
    "batch_size, lr, warmup, patience",
    [(250, 0.01, 5, 10), (50, 0.01, 2, 2), (250, "auto", 2, 3)],
)
def test_fit_sets_the_policy_from_the_batches_of_its_data(
    batch_size, lr, warmup, patience, blobs
):
    """4,000 rows: 16 batches of 250 (80 steps are 5 epochs, 160 are 10),
    80 batches of 50 (2 epochs each); "auto" steps by 0.04 on these 8
    features, pace 4: 20 and 40 steps, 2 and 3 epochs."""
    X, _ = blobs
    estimator = EntropyClustering(
        n_clusters=5,
        batch_size=batch_size,
        lr=lr,
        tol=10.0,
        random_state=0,
        max_iter=50,
    ).fit(X)
    assert estimator.converged_
    assert estimator.n_iter_ == warmup + 1 + patience + 1


@pytest.mark.parametrize(
    "lr, optimizer, n_features, expected",
    [
        ("auto", "adam", 1280, 0.01),  # the reference: the benchmarks' files
        ("auto", "adam", 128, 0.01 * np.sqrt(10.0)),  # 0.0316
        ("auto", "adam", 80, 0.04),  # the cap is reached at 80 features
        ("auto", "adam", 64, 0.04),  # digits: capped, not 0.0447
        ("auto", "adam", 5120, 0.005),
        ("auto", "sgd", 64, 0.01),  # SGD's step already follows the gradient
        ("auto", "adam", None, 0.01),  # deep mode: the network's own features
        (0.3, "adam", 64, 0.3),  # a number is taken as it is
    ],
)
def test_auto_learning_rate_scales_adam_with_the_root_of_features_up_to_0_04(
    lr, optimizer, n_features, expected
):
    assert learning_rate(lr, optimizer, n_features) == pytest.approx(expected)


@pytest.mark.parametrize("lr, expected", [("auto", 0.04), (0.02, 0.02)])
def test_fit_builds_its_optimizer_with_the_resolved_learning_rate(
    lr, expected, blobs, monkeypatch
):
    X, _ = blobs  # 8 features
    rates = []
    make = _shallow._make_optimizer

    def recording(*args, **kwargs):
        optimizer = make(*args, **kwargs)
        rates.append(optimizer.lr)
        return optimizer

    monkeypatch.setattr(_shallow, "_make_optimizer", recording)
    fit_quietly(EntropyClustering(n_clusters=5, lr=lr, max_iter=1, random_state=0), X)
    assert rates == [pytest.approx(expected)]
