"""scikit-learn's estimator checks on fast instances of every estimator."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skentropy import MaxMarginEntropyClustering, SeCuClustering

from helpers import BASELINE_ESTIMATORS, PAPER_ESTIMATORS

# Few epochs (8, against 200 by default) keep the checks fast. The estimators of the
# papers run with the linear head and with the Norm-FC head (one of them with
# several heads); the baselines and SeCuClustering with their defaults.
CHECKED_INSTANCES = [
    *(
        Estimator(max_iter=8, random_state=0, **params)
        for params in ({}, {"head": "normfc"})
        for Estimator in PAPER_ESTIMATORS
    ),
    MaxMarginEntropyClustering(max_iter=8, random_state=0, head="normfc", n_heads=2),
    *(Estimator(max_iter=8, random_state=0) for Estimator in BASELINE_ESTIMATORS),
    SeCuClustering(max_iter=8, random_state=0),
]


def expected_failed_checks(estimator):
    """The checks that an estimator is known to fail, each with its reason."""
    if isinstance(estimator, SeCuClustering):
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "Integer weights equal repeated samples in distribution only, as "
                "for KMeans: the k-means++ seeding draws samples with "
                "probabilities proportional to their weights, and the "
                "mini-batches (so the online dual steps) of weighted and "
                "repeated data differ."
            ),
        }
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "Integer weights equal repeated samples in distribution only, as for "
            "KMeans and SGDClassifier: the k-means++ seeding draws samples with "
            "probabilities proportional to their weights, so weighted and "
            "repeated data get different (equally likely) seeds, and their "
            "mini-batches differ."
        ),
        "check_do_not_raise_errors_in_init_or_set_params": (
            "The smoke test passes every name of the signature, including "
            "'kwargs', the **kwargs that take the module__* parameters of the "
            "feature network (as skorch's NeuralNet takes them); a keyword "
            "argument that does not start with module__ raises a TypeError, as "
            "it would for any Python function."
        ),
    }


@pytest.mark.slow  # some 400 checks: make test runs them, make check does not
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(
    CHECKED_INSTANCES, expected_failed_checks=expected_failed_checks
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
