"""The estimators: a shared base split by concern, and thin estimator modules.

- ``_params``: parameters, their constraints and the checks of parameters
  and inputs;
- ``_base``: the public API (``fit``, ``partial_fit``, ``predict``, ...) and
  the one training flow ``_fit``, with the hooks an estimator declares;
- ``_training``: what a trainer is (data, loss, result); ``_shallow``: the
  trainer on fixed features, ``_optim`` its optimizer (torch's Adam and SGD
  steps without ``torch._dynamo``); deep mode's trainer is in
  ``skentropy._deep``;
- ``_batching``: mini-batches, reading X, torch threads; ``_seeding``: the
  k-means++ start of new heads; ``_heads``: linear and Norm-FC heads;
  ``_views``: the views of each sample that σ is averaged over;
  ``_neighbors``: the k nearest neighbours of each row, for neighbour views;
- ``_docstrings``: the docstring texts the estimators share;
- the estimators: ``_self_labeling`` (EntropyClustering,
  CollisionCEClustering), ``_max_margin`` (MaxMarginEntropyClustering),
  the baselines ``_migd`` (MIGDClustering), ``_sela`` (SeLaClustering)
  and ``_miadm`` (MIADMClustering), each with its loss; ``_secu``
  (SeCuClustering, on its own model) with its training steps in
  ``_secu_steps``.

Where a change goes:

- a new loss: its terms in ``skentropy.losses`` (one function per term); a
  module-level function ``loss(log_probs, prior, sample_weight, *, ...)``
  composing them, and a class on ``_BaseEntropyClustering`` whose
  ``_mini_batch_loss`` binds its parameters to it (``functools.partial``),
  with its ``__init__``, constraints and a docstring filled by
  ``fill_doc``; then ``skentropy/__init__.py``, ``docs/api.rst`` and the
  estimator lists of the tests. Both trainers train it unchanged.
- targets solved once per epoch rather than per batch: ``_epoch_targets``
  (as SeLa's ``schedule="full"``).
- a new head: ``_heads`` (``HEADS``, ``make_head``); a new kind of views:
  ``_views`` and the trainers' choice of views.
- a parameter shared by the estimators: ``_params`` (constraint, ``__init__``)
  and its one description in ``_docstrings``.
- what ``fit`` stores: ``_BaseEntropyClustering._set_fitted`` only.
"""

from skentropy._estimators._max_margin import MaxMarginEntropyClustering
from skentropy._estimators._miadm import MIADMClustering
from skentropy._estimators._migd import MIGDClustering
from skentropy._estimators._secu import SeCuClustering
from skentropy._estimators._sela import SeLaClustering
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
