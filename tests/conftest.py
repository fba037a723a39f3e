"""Shared fixtures and settings: a global random seed, the standardized digits
data, and the hypothesis profiles."""

import os

import pytest
import torch
from hypothesis import settings
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

# Hypothesis profiles, chosen with the HYPOTHESIS_PROFILE environment variable:
# "ci" (default) runs few examples, always the same ones; "nightly" many
# random ones (tests/estimators/test_robustness.py also draws larger problems then).
# Tests that set their own max_examples keep it.
settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True)
settings.register_profile("nightly", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    """Run torch on one thread during the tests.

    The tests fit small models, whose tensor operations gain nothing from
    intra-op threads; on a busy machine each parallel region waits for a
    descheduled thread, which made fits tens of times slower.
    """
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _global_random_seeds():
    """Seeds from SKENTROPY_TESTS_GLOBAL_RANDOM_SEED: "42" (default) or "0-4"."""
    value = os.environ.get("SKENTROPY_TESTS_GLOBAL_RANDOM_SEED", "42")
    first, _, last = value.partition("-")
    return list(range(int(first), int(last or first) + 1))


@pytest.fixture(params=_global_random_seeds())
def global_random_seed(request):
    """Seed for tests that must pass for any seed, as scikit-learn's fixture.

    One fixed seed by default; set SKENTROPY_TESTS_GLOBAL_RANDOM_SEED to a
    seed or an inclusive range such as "0-9" to run such tests more widely.
    """
    return request.param


@pytest.fixture(scope="session")
def digits():
    """``load_digits`` with standardized features, as read-only arrays.

    Returns
    -------
    X : ndarray of shape (1797, 64), float64
    y : ndarray of shape (1797,)
    """
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    for array in (X, y):
        array.setflags(write=False)
    return X, y
