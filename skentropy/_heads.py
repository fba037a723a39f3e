"""Heads: the last layer of every estimator, mapping features to cluster logits.

A head is a small :class:`torch.nn.Module` with

- ``forward(features) -> logits`` of shape (n_samples, n_clusters), turned into
  soft cluster memberships σ by a softmax in the estimator;
- ``reset_parameters(prototypes, generator=None)``, setting the initial
  parameters from one point per cluster (the estimators pass k-means++ seeds
  of the data) and drawing any random fixed parameters from the estimator's
  :class:`torch.Generator` ``generator``;
- ``margin_weight``, the weights v that the margin term γ‖v‖² regularizes
  (never a bias);
- ``fitted_attributes``, a map from the head's ``state_dict`` keys to the
  names of the estimator's public fitted numpy attributes showing them (the
  estimator stores every head's whole ``state_dict`` as numpy arrays, so that
  it pickles without torch devices).
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

    def reset_parameters(self, prototypes, generator=None):
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

        generator : torch.Generator, default=None
            Unused: the linear head has no random parameters.
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


class NormFCHead(nn.Module):
    """Norm-FC head: cosines to fixed random unit prototypes over a temperature.

    The normalized fully connected layer of Han et al. (twostage supplement
    eq. 2), logits_k = (g / ‖g‖)·p_k / τ, with unit prototypes p_k drawn at
    random once and then fixed. On fixed features f nothing before the
    normalization would train, so the head first projects the features,
    g = f Wᵀ + b, with a trainable square matrix W and bias b; W takes the
    place of the classifier weights v: the margin term γ‖v‖² applies to W,
    not to b. Unlike for the linear head, γ‖W‖² does not set a margin: the
    logits are invariant to a common scaling of W and b and bounded by 1/τ
    (τ sets the sharpness), and the gradient of the loss grows as W shrinks.
    The term shrinks W relative to b, which pulls the projected features
    towards the single direction of b, and it changes the effective step
    size of the projection, as weight decay does on normalized layers.

    Parameters
    ----------
    n_features : int
        Dimension d of the features f, and of the projected features g.

    n_clusters : int
        Number of clusters K.

    temperature : float, default=0.1
        Temperature τ dividing the cosines; the paper uses 0.1.

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (n_features, n_features)
        The projection W.

    bias : torch.nn.Parameter of shape (n_features,)
        The bias b of the projection.

    prototypes : torch.Tensor of shape (n_clusters, n_features)
        The fixed unit prototypes p_k (a buffer, not trained).

    temperature : torch.Tensor of shape ()
        The temperature τ (a buffer, stored with the fitted head).

    References
    ----------
    Han, S. et al., "Mitigating Embedding and Class Assignment Mismatch in
    Unsupervised Image Classification", ECCV 2020, supplement eq. (2).
    """

    fitted_attributes = {
        "weight": "projection_coef_",
        "bias": "projection_intercept_",
        "prototypes": "prototypes_",
    }

    def __init__(self, n_features, n_clusters, temperature=0.1):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_features, n_features))
        self.bias = nn.Parameter(torch.empty(n_features))
        self.register_buffer("prototypes", torch.empty(n_clusters, n_features))
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def reset_parameters(self, prototypes, generator=None):
        """Draw the unit prototypes p_k; map the seed points onto them.

        The p_k are normalized standard normal vectors drawn from
        ``generator``. The projection is the least-norm affine map with
        W c_k + b = p_k for the seed points c_k (exact when the seeds are
        affinely independent, e.g. K ≤ d + 1 distinct k-means++ seeds), so
        that every seed starts at the center of its own cluster.

        Parameters
        ----------
        prototypes : ndarray of shape (n_clusters, n_features)
            One point per cluster c_k, e.g. k-means++ seeds (the head's own
            prototypes p_k are random unit vectors, not these points).

        generator : torch.Generator, default=None
            CPU generator of the random prototypes p_k; ``None`` uses torch's
            global generator.
        """
        n_clusters, n_features = self.prototypes.shape
        directions = torch.randn(
            n_clusters, n_features, generator=generator, dtype=torch.float64
        )
        unit_prototypes = nn.functional.normalize(directions, dim=1)
        seeds = torch.as_tensor(prototypes, dtype=torch.float64).cpu()
        # [c_k 1] [W b]ᵀ = p_k for all k, least-norm solution.
        design = torch.cat([seeds, torch.ones(n_clusters, 1, dtype=seeds.dtype)], 1)
        solution = torch.linalg.pinv(design) @ unit_prototypes
        with torch.no_grad():
            self.prototypes.copy_(unit_prototypes)
            self.weight.copy_(solution[:-1].T)
            self.bias.copy_(solution[-1])

    def forward(self, features):
        """Logits cos(f Wᵀ + b, p_k) / τ of shape (n_samples, n_clusters)."""
        projected = nn.functional.linear(features, self.weight, self.bias)
        unit = nn.functional.normalize(projected, dim=1)
        return unit @ self.prototypes.T / self.temperature

    @property
    def margin_weight(self):
        """The projection W, on which the margin term γ‖W‖² acts (not on b)."""
        return self.weight


HEADS = {"linear": LinearHead, "normfc": NormFCHead}


def make_head(head, n_features, n_clusters, temperature):
    """A new head of kind ``head`` ("linear" or "normfc") with unset parameters."""
    if head == "normfc":
        return NormFCHead(n_features, n_clusters, temperature)
    return LinearHead(n_features, n_clusters)
