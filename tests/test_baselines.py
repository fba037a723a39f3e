"""Tests of the baseline estimators MI-GD, SeLa and MI-ADM and their solvers.

The solvers live in private modules: ``skentropy.pseudo_labels._sinkhorn``
(SeLa's balanced hard labels, eq. 5) is checked against the marginals it must match and
against POT; ``skentropy.pseudo_labels._forward_kl`` (MI-ADM's pseudo-labels, eq. 6)
against the KKT rule of docs/developer/pseudo_label_solvers.rst and cvxpy.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from skentropy import MIADMClustering, MIGDClustering, SeLaClustering
from skentropy.metrics import clustering_accuracy
from skentropy.pseudo_labels._forward_kl import (
    forward_kl_kkt_residual,
    forward_kl_labels,
    forward_kl_objective,
)
from skentropy.pseudo_labels._sinkhorn import (
    balanced_rounding,
    log_sinkhorn,
    sinkhorn_labels,
)

BASELINES = (MIGDClustering, SeLaClustering, MIADMClustering)


def random_log_probs(n_samples, n_classes, seed, scale=3.0, one_hot_rows=0):
    """ln σ of random softmax rows; the first ``one_hot_rows`` rows one-hot."""
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(
        n_samples, n_classes, generator=generator, dtype=torch.float64
    )
    log_probs = torch.log_softmax(logits, dim=1)
    if one_hot_rows:
        classes = torch.randint(n_classes, (one_hot_rows,), generator=generator)
        one_hot = torch.nn.functional.one_hot(classes, n_classes).to(torch.float64)
        log_probs[:one_hot_rows] = torch.log(one_hot)
    return log_probs


@pytest.fixture(scope="module")
def blobs():
    centers = [[0, 4], [4, -2], [-4, -2]]
    return make_blobs(n_samples=300, centers=centers, random_state=0)


# ---- estimators --------------------------------------------------------------


@pytest.mark.parametrize("Estimator", BASELINES)
def test_blobs_are_clustered(Estimator, blobs, global_random_seed):
    X, y = blobs
    clustering = Estimator(n_clusters=3, random_state=global_random_seed).fit(X)
    assert adjusted_rand_score(y, clustering.labels_) > 0.9
    assert_array_equal(clustering.predict(X), clustering.labels_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("Estimator", BASELINES)
def test_clone_and_pickle_round_trip(Estimator, blobs):
    X, _ = blobs
    clustering = Estimator(n_clusters=3, max_iter=5, random_state=0)
    assert clone(clustering).get_params() == clustering.get_params()
    clustering.fit(X)
    restored = pickle.loads(pickle.dumps(clustering))
    assert_array_equal(restored.predict(X), clustering.predict(X))
    assert not hasattr(clone(clustering), "labels_")


@pytest.mark.parametrize(
    "Estimator, params",
    [
        (SeLaClustering, {"sinkhorn_power": 0.0}),
        (SeLaClustering, {"em_tol": 0.0}),
        (SeLaClustering, {"em_max_iter": 0}),
        (MIADMClustering, {"em_tol": -1.0}),
        (MIADMClustering, {"em_max_iter": 0}),
        (MIGDClustering, {"weight_decay": -1.0}),
        (MIGDClustering, {"fairness_weight": -1.0}),
    ],
)
def test_bad_parameters_raise(Estimator, params, blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match=next(iter(params))):
        Estimator(n_clusters=3, **params).fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_migd_weight_decay_shrinks_the_bias_too(blobs):
    X, _ = blobs
    # shifted data need a large bias; weight decay on all parameters shrinks it
    X = X + 20.0
    free = MIGDClustering(n_clusters=3, weight_decay=0.0, random_state=0).fit(X)
    decayed = MIGDClustering(n_clusters=3, weight_decay=1.0, random_state=0).fit(X)
    assert np.abs(decayed.intercept_).sum() < np.abs(free.intercept_).sum()
    assert np.abs(decayed.coef_).sum() < np.abs(free.coef_).sum()


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


def test_sela_full_schedule_clusters_blobs_and_checks_heads():
    X, y = make_blobs(
        n_samples=300, centers=[[0, 4], [4, -2], [-4, -2]], random_state=0
    )
    model = SeLaClustering(3, schedule="full", max_iter=30, random_state=0).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.9
    with pytest.raises(ValueError, match="n_heads=1"):
        SeLaClustering(3, schedule="full", n_heads=2).fit(X)


def test_sela_full_schedule_learns_given_labels():
    # with weak supervision the labeled rows add their cross-entropy to the
    # loss of the epoch's Sinkhorn labels, as with schedule="batch"
    X, y = make_blobs(
        n_samples=300, centers=[[0, 4], [4, -2], [-4, -2]], random_state=0
    )
    given = np.full(300, -1)
    given[:30] = y[:30]
    model = SeLaClustering(
        3, schedule="full", semi_supervised=True, max_iter=30, random_state=0
    ).fit(X, given)
    assert (model.labels_ == y).mean() > 0.9


@pytest.mark.parametrize("Estimator", BASELINES)
def test_weak_supervision_improves_accuracy_on_unlabeled_digits(Estimator):
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    gains = []
    for seed in range(3):
        labeled = np.random.default_rng(seed).random(len(y)) < 0.1
        partial = np.where(labeled, y, -1)
        scores = []
        for semi_supervised in (False, True):
            model = Estimator(
                10, semi_supervised=semi_supervised, max_iter=20, random_state=seed
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X, partial)
            scores.append(clustering_accuracy(y[~labeled], model.labels_[~labeled]))
        gains.append(scores[1] - scores[0])
    assert np.mean(gains) >= 0.02
