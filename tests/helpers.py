"""What the tests share: the estimator registry, small fitting helpers, and a
tiny network with its images for deep mode.

Import from any test directory with ``from helpers import ...`` (pyproject.toml
puts ``tests/`` on pytest's ``pythonpath``). Lists of estimators are derived
here, from the one registry ``ESTIMATORS``; a test that needs another subset
writes it inline or derives it from these.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import ClusterMixin
from sklearn.exceptions import ConvergenceWarning
from torch import nn

import skentropy
from skentropy import (
    CollisionCEClustering,
    EntropyClustering,
    MaxMarginEntropyClustering,
    SeCuClustering,
)

# Every public estimator: the clustering classes that skentropy exports.
ESTIMATORS = [
    obj
    for obj in map(vars(skentropy).get, skentropy.__all__)
    if isinstance(obj, type) and issubclass(obj, ClusterMixin)
]
# The estimators that train a softmax head (SeCuClustering has its own base).
SOFTMAX_ESTIMATORS = tuple(
    Estimator for Estimator in ESTIMATORS if Estimator is not SeCuClustering
)
# The three losses of the papers, as opposed to the baselines they compare with.
PAPER_ESTIMATORS = (
    EntropyClustering,
    CollisionCEClustering,
    MaxMarginEntropyClustering,
)
# The baselines the papers compare with: MIGD, SeLa, MI-ADM.
BASELINE_ESTIMATORS = tuple(
    Estimator for Estimator in SOFTMAX_ESTIMATORS if Estimator not in PAPER_ESTIMATORS
)


def by_name(Estimator):
    """The test id of an estimator class: its name."""
    return Estimator.__name__


each_estimator = pytest.mark.parametrize("Estimator", ESTIMATORS, ids=by_name)
each_softmax_estimator = pytest.mark.parametrize(
    "Estimator", SOFTMAX_ESTIMATORS, ids=by_name
)
each_paper_estimator = pytest.mark.parametrize(
    "Estimator", PAPER_ESTIMATORS, ids=by_name
)


def make_fast(Estimator, **params):
    """A quick-to-fit instance for 10 clusters: few epochs, a fixed seed.

    ``params`` override these defaults (``n_clusters=10, max_iter=10,
    random_state=0``) and add any other parameter.
    """
    return Estimator(**{"n_clusters": 10, "max_iter": 10, "random_state": 0, **params})


def fit_quietly(estimator, *args, **kwargs):
    """Fit, ignoring the ConvergenceWarning of deliberately short trainings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(*args, **kwargs)


def best_params_by_split_scores(search):
    """The candidate of a fitted search with the best mean of its split scores.

    Computed from the ``split<i>_test_score`` columns of ``cv_results_``,
    independently of ``best_params_``, which it should equal.
    """
    results = search.cv_results_
    splits = [results[f"split{i}_test_score"] for i in range(search.n_splits_)]
    return results["params"][int(np.argmax(np.mean(splits, axis=0)))]


# --- deep mode: a small feature network and images it separates -------------


class SmallNet(nn.Module):
    """A tiny convolutional feature network for 8×8 images."""

    def __init__(self, input_shape=(1, 8, 8), width=4):
        super().__init__()
        self.input_shape = input_shape
        self.width = width
        self.layers = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )

    def forward(self, X):
        return self.layers(X)


def make_images(n_per_class=60, channels=1, seed=0):
    """Three classes of noisy 8×8 images: bright top, bright bottom, dark."""
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=0.3, size=(3 * n_per_class, channels, 8, 8))
    X[:n_per_class, :, :4] += 2.0
    X[n_per_class : 2 * n_per_class, :, 4:] += 2.0
    y = np.repeat(np.arange(3), n_per_class)
    return X.astype(np.float32), y


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
