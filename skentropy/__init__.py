"""Discriminative entropy clustering for scikit-learn, with a torch backend.

Estimators
----------
EntropyClustering
    Self-labeling with the reverse cross-entropy H(σ, y) and strong fairness.
CollisionCEClustering
    Self-labeling with the collision cross-entropy −ln σ·y.
MaxMarginEntropyClustering
    Decisiveness, fairness and margin maximization, without pseudo-labels.

Baselines of the papers
-----------------------
MIGDClustering
    Mutual information by gradient descent, weight decay on all parameters.
SeLaClustering
    Self-labeling with hard balanced pseudo-labels (Sinkhorn-Knopp).
MIADMClustering
    Forward cross-entropy H(y, σ) and KL(ȳ‖u) fairness, alternating.
SeCuClustering
    Cluster discrimination with size-bounded online hard assignment.

Deep mode
---------
VGG4
    The feature network of the papers' deep experiments (in ``nets``).
SelfAugmentation
    Random flip, rotation and colour jitter of image batches (in ``augment``).
FeatureExtractor
    Fixed features of images by a torch network, as a transformer (in
    ``feature_extraction``).

Modules
-------
nets
    Feature networks for deep mode.
augment
    Self-augmentation of image batches, in torch.
feature_extraction
    A transformer computing fixed features of images with a torch network.
losses
    The loss terms, one torch function each.
pseudo_labels
    Solvers for the soft pseudo-labels of the self-labeling losses.
metrics
    Hungarian clustering accuracy and its scorer; the stability score of two
    clusterings.
model_selection
    Label-free choice of the number of clusters and of parameters (stability).
plotting
    Soft decision regions of 2-D clusterings and the stability scores of the
    choice of K (needs matplotlib).
"""

from skentropy import (
    augment,
    feature_extraction,
    losses,
    metrics,
    model_selection,
    nets,
    plotting,
    pseudo_labels,
)
from skentropy._estimators import (
    CollisionCEClustering,
    EntropyClustering,
    MaxMarginEntropyClustering,
    MIADMClustering,
    MIGDClustering,
    SeCuClustering,
    SeLaClustering,
)
from skentropy.augment import SelfAugmentation
from skentropy.feature_extraction import FeatureExtractor
from skentropy.nets import VGG4

__all__ = [
    "CollisionCEClustering",
    "EntropyClustering",
    "FeatureExtractor",
    "MIADMClustering",
    "MIGDClustering",
    "MaxMarginEntropyClustering",
    "SeCuClustering",
    "SeLaClustering",
    "SelfAugmentation",
    "VGG4",
    "augment",
    "feature_extraction",
    "losses",
    "metrics",
    "model_selection",
    "nets",
    "plotting",
    "pseudo_labels",
]
