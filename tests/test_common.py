"""scikit-learn's estimator checks on fast instances of every estimator."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skentropy import (
    CollisionCEClustering,
    EntropyClustering,
    MaxMarginEntropyClustering,
)

# Fewer epochs than the default keep the checks fast.
ESTIMATORS = [
    Estimator(max_iter=20, random_state=0)
    for Estimator in (
        EntropyClustering,
        CollisionCEClustering,
        MaxMarginEntropyClustering,
    )
]


def expected_failed_checks(estimator):
    """The checks that every estimator is known to fail, each with its reason."""
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "Integer weights equal repeated samples in distribution only, as for "
            "KMeans and SGDClassifier: the k-means++ seeding draws samples with "
            "probabilities proportional to their weights, so weighted and "
            "repeated data get different (equally likely) seeds, and their "
            "mini-batches differ."
        ),
    }


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
