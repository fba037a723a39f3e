"""Discriminative entropy clustering for scikit-learn, with a torch backend.

Estimators
----------
EntropyClustering
    Self-labeling with the reverse cross-entropy H(σ, y) and strong fairness.
CollisionCEClustering
    Self-labeling with the collision cross-entropy −ln σ·y.
MaxMarginEntropyClustering
    Decisiveness, fairness and margin maximization, without pseudo-labels.

Modules
-------
losses
    The loss terms, one torch function each.
pseudo_labels
    Solvers for the soft pseudo-labels of the self-labeling losses.
metrics
    Hungarian clustering accuracy and its scorer.
"""

from skentropy import losses, metrics, pseudo_labels
from skentropy._estimators import (
    CollisionCEClustering,
    EntropyClustering,
    MaxMarginEntropyClustering,
)

__all__ = [
    "CollisionCEClustering",
    "EntropyClustering",
    "MaxMarginEntropyClustering",
    "losses",
    "metrics",
    "pseudo_labels",
]
