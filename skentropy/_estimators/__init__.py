"""The estimators: a shared base split by concern, and thin estimator modules.

- ``_params``: parameters, their constraints and the checks of parameters
  and inputs;
- ``_base``: the public API (``fit``, ``partial_fit``, ``predict``, ...) and
  the one training flow ``_fit``, with the hooks an estimator declares;
- ``_training``: what a trainer is (data, loss, result); ``_shallow``: the
  trainer on fixed features; deep mode's trainer is in ``skentropy._deep``;
- ``_batching``: mini-batches, reading X, torch threads; ``_seeding``: the
  k-means++ start of new heads; ``_heads``: linear and Norm-FC heads;
  ``_views``: the views of each sample that σ is averaged over;
- ``_docstrings``: the docstring texts the estimators share;
- the estimators: ``_self_labeling`` (EntropyClustering,
  CollisionCEClustering), ``_max_margin`` (MaxMarginEntropyClustering),
  ``_baselines`` (MIGDClustering, SeLaClustering, MIADMClustering) and
  ``_secu`` (SeCuClustering, on its own model).
"""

from skentropy._estimators._baselines import (
    MIADMClustering,
    MIGDClustering,
    SeLaClustering,
)
from skentropy._estimators._max_margin import MaxMarginEntropyClustering
from skentropy._estimators._secu import SeCuClustering
from skentropy._estimators._self_labeling import (
    CollisionCEClustering,
    EntropyClustering,
)

__all__ = [
    "CollisionCEClustering",
    "EntropyClustering",
    "MIADMClustering",
    "MIGDClustering",
    "MaxMarginEntropyClustering",
    "SeCuClustering",
    "SeLaClustering",
]
