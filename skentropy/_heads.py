"""Heads: the last layer of every estimator, mapping features to cluster logits.

A head is a small :class:`torch.nn.Module` with

- ``forward(features) -> logits`` of shape (n_samples, n_clusters), turned into
  soft cluster memberships σ by a softmax in the estimator;
- ``reset_parameters(prototypes)``, setting the initial parameters from one
  point per cluster (the estimators pass k-means++ seeds of the data);
- ``margin_weight``, the weights v that the margin term γ‖v‖² regularizes
  (never a bias);
- ``fitted_attributes``, a map from the head's ``state_dict`` keys to the
  names of the estimator's fitted numpy attributes holding them, so that a
  fitted estimator stores plain numpy arrays and pickles without torch devices.
"""

import torch
from torch import nn


class LinearHead(nn.Module):
    """Linear softmax head, logits = f vᵀ + b.

    The model σ(vᵀf + b) of the entropy clustering papers on fixed features f.
    The margin term γ‖v‖² applies to ``weight`` (v) only, not to ``bias`` (b):
    1/‖v‖ is the width of the soft margin between clusters
    (entropy-clustering-kmeans-svm §2.2).

    Parameters
    ----------
    n_features : int
        Dimension d of the features f.

    n_clusters : int
        Number of clusters K.

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (n_clusters, n_features)
        The classifier weights v.

    bias : torch.nn.Parameter of shape (n_clusters,)
        The bias b.
    """

    fitted_attributes = {"weight": "coef_", "bias": "intercept_"}

    def __init__(self, n_features, n_clusters):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_clusters, n_features))
        self.bias = nn.Parameter(torch.empty(n_clusters))

    def reset_parameters(self, prototypes):
        """Start as a soft nearest-prototype classifier.

        Sets v_k = c_k / T and b_k = −‖c_k‖² / (2T), so that
        σ_k(x) ∝ exp(−‖x − c_k‖² / (2T)): every prototype c_k starts with the
        region of the points nearest to it. The temperature T is the mean
        squared distance between two distinct prototypes, which makes σ soft
        at the start.

        Parameters
        ----------
        prototypes : ndarray of shape (n_clusters, n_features)
            One point per cluster, e.g. k-means++ seeds.
        """
        prototypes = torch.as_tensor(
            prototypes, dtype=self.weight.dtype, device=self.weight.device
        )
        squared_distances = torch.pdist(prototypes).square()
        # T = mean ‖c_j − c_k‖² over j < k; 1 when no two prototypes differ.
        temperature = squared_distances.mean() if squared_distances.any() else 1.0
        with torch.no_grad():
            self.weight.copy_(prototypes / temperature)
            self.bias.copy_(-prototypes.square().sum(dim=1) / (2 * temperature))

    def forward(self, features):
        """Logits f vᵀ + b of shape (n_samples, n_clusters)."""
        return nn.functional.linear(features, self.weight, self.bias)

    @property
    def margin_weight(self):
        """The weights v of the margin term γ‖v‖² (the bias is excluded)."""
        return self.weight
