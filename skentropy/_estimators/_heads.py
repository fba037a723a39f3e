"""Heads: the last layer of every estimator, mapping features to cluster logits.

A head is a small :class:`torch.nn.Module` with

- ``forward(features) -> logits`` of shape (n_samples, n_clusters), turned into
  soft cluster memberships σ by a softmax in the estimator;
- ``standardize(center, scale)``, fixing the affine map z = (f − center) / scale
  through which the head sees its features (identity until called): the
  shallow estimators pass the mean and the root-mean-square distance to the
  mean of X, so that the head, its initialization and the margin term γ‖v‖²
  act on data of one scale, whatever the units of X (see
  :func:`input_standardization`);
- ``reset_parameters(prototypes, generator=None, sample=None, prior=None)``,
  setting the initial parameters from one point per cluster (the estimators
  pass k-means++ seeds of the data, in the units of the features), calibrated
  on ``sample`` rows of the data so that the mean prediction there is the
  ``prior``, and drawing any random fixed parameters from the estimator's
  :class:`torch.Generator` ``generator``;
- ``margin_weight``, the weights v that the margin term γ‖v‖² regularizes, in
  the unit of :attr:`LinearHead.margin_weight`
  (never a bias; ``None`` for a head without weights);
- ``fitted_attributes``, the names of the estimator's public fitted numpy
  attributes showing the head (e.g. ``coef_``), and ``fitted_values()``, their
  values, in the units of the features f (the estimator stores every head's
  whole ``state_dict`` as numpy arrays, so that it pickles without torch
  devices).
"""

import math

import numpy as np
import torch
from torch import nn

from skentropy._chunks import CHUNK_SIZE, row_chunks

# The margin term acts on the weights of the standardized rows z scaled to
# this mean squared norm (see LinearHead.margin_weight): the papers' values of
# γ were set on fixed features of about this scale, and measured in it the
# range of γ that helps does not move with the dimension of X
# (benchmarks/gamma_units.py).
MARGIN_REFERENCE_SQUARED_NORM = 100.0


def input_standardization(X, sample_weight, chunk_size=CHUNK_SIZE):
    """Center and scale of the standardization z = (x − center) / scale of X.

    ``center`` is the weighted mean x̄ of the rows and ``scale`` the
    root-mean-square distance to it, s = (Σ_i w_i ‖x_i − x̄‖² / Σ_i w_i)^½,
    so that the rows of z have mean zero and mean squared norm one. This
    maps X and c·X + t (c > 0) to the same z, keeps the geometry of X
    (distances and angles between rows only scale by 1/s, unlike a
    per-feature standardization), and does not depend on the number of
    features. Two passes over X in chunks, summed in float64, so that memory
    maps stay on disk and features far from zero keep their precision.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The training data.

    sample_weight : ndarray of shape (n_samples,)
        Nonnegative weights of the rows, not all zero.

    chunk_size : int, default=32768
        Entries read at once (at least one row), so that the float64 copies
        of a chunk stay small next to X.

    Returns
    -------
    center : ndarray of shape (n_features,)
        The weighted mean of the rows, float64.

    scale : float
        The root-mean-square distance of the rows to ``center``; 1.0 when all
        rows of positive weight are equal.
    """
    chunks = row_chunks(X, chunk_size)
    total = float(np.sum(sample_weight, dtype=np.float64))
    center = (
        sum(
            sample_weight[rows].astype(np.float64) @ np.asarray(X[rows], np.float64)
            for rows in chunks
        )
        / total
    )
    squared = sum(
        sample_weight[rows].astype(np.float64)
        @ np.square(np.asarray(X[rows], np.float64) - center).sum(axis=1)
        for rows in chunks
    )
    scale = float(np.sqrt(squared / total))
    return center, (scale if scale > 0 else 1.0)


def fair_bias(logits, prior=None, max_iter=100, tol=1e-4):
    """Bias shift that makes the mean prediction on ``logits`` equal to u.

    Iterates b ← b − (ln σ̄ − ln u), with σ̄ the mean over the rows of
    σ(logits + b): the one-sided Sinkhorn (iterative proportional fitting)
    update, whose fixed point is the bias with σ̄ = u; it stops once
    max_k |ln σ̄_k − ln u_k| ≤ ``tol``. A new head starts from it so that
    every cluster holds its share u_k of the data: a cluster seeded on an
    outlier (k-means++ favours far points) would otherwise start with
    almost no mass and die in the first epoch (measured on standardized
    MNIST-5k features: 1 of 10 clusters empty in 5 of 8 seeds without it,
    none with it).

    Parameters
    ----------
    logits : torch.Tensor of shape (n_samples, n_clusters)
        Logits of the head on sample rows of the data, without the shift.

    prior : torch.Tensor of shape (n_clusters,), default=None
        Target proportions u; ``None`` means uniform.

    max_iter : int, default=100
        Maximum number of updates.

    tol : float, default=1e-4
        Tolerance on max_k |ln σ̄_k − ln u_k|.

    Returns
    -------
    shift : torch.Tensor of shape (n_clusters,)
        Added to the head's bias.
    """
    logits = logits.to(torch.float64)
    n_samples, n_clusters = logits.shape
    log_prior = (
        torch.full((n_clusters,), -math.log(n_clusters), dtype=logits.dtype)
        if prior is None
        else torch.as_tensor(prior, dtype=logits.dtype).log()
    )
    shift = torch.zeros(n_clusters, dtype=logits.dtype)
    for _ in range(max_iter):
        log_probs = torch.log_softmax(logits + shift, dim=1)
        gap = torch.logsumexp(log_probs, dim=0) - math.log(n_samples) - log_prior
        if float(gap.abs().max()) <= tol:
            break
        shift -= gap
    return shift


def initial_temperature(squared_distances, entropy_fraction=0.9, n_steps=60):
    """Temperature T of a soft nearest-prototype start of given decisiveness.

    For the squared distances D_ik of sample rows to K prototypes, the soft
    assignment σ_ik ∝ exp(−D_ik / (2T)) has a mean entropy that grows with T
    from (about) 0, the hard nearest-prototype assignment, to ln K, the
    uniform one. This returns the T at which the mean entropy is
    ``entropy_fraction`` · ln K, found by bisection on ln T. The start is then
    as decisive on any data: on unit-norm rows in 64 dimensions as on
    standardized features in 1280. (A T set by the prototypes alone, e.g.
    their mean squared distance, starts nearly uniform in low dimensions,
    where the distances to the prototypes differ little relative to their
    spread, and a cluster can die before the model becomes decisive.)

    Parameters
    ----------
    squared_distances : torch.Tensor of shape (n_samples, n_clusters)
        Squared distances of sample rows to the prototypes.

    entropy_fraction : float, default=0.5
        Target mean entropy as a fraction of ln K, in (0, 1).

    n_steps : int, default=60
        Bisection steps (each halves the bracket of ln T).

    Returns
    -------
    temperature : float
        Positive; 1.0 when all distances are equal or K = 1.
    """
    distances = squared_distances.to(torch.float64)
    n_clusters = distances.shape[1]
    spread = float(distances.mean())
    if n_clusters < 2 or spread <= 0:
        return 1.0
    target = entropy_fraction * math.log(n_clusters)

    def mean_entropy(log_temperature):
        log_probs = torch.log_softmax(-distances / (2 * math.exp(log_temperature)), 1)
        return float(-(log_probs.exp() * log_probs).sum(dim=1).mean())

    low, high = math.log(spread) - 30.0, math.log(spread) + 30.0
    for _ in range(n_steps):
        middle = (low + high) / 2
        if mean_entropy(middle) < target:
            low = middle
        else:
            high = middle
    return math.exp((low + high) / 2)


class _LinearMap(torch.autograd.Function):
    """The affine map x ↦ x Wᵀ + b of a mini-batch, with fast matrix products.

    For a batch X (n × d) and K ≪ d outputs, the CPU's matrix product
    computes the logits as (W Xᵀ)ᵀ 1.6 times faster than as X Wᵀ, which
    :func:`torch.nn.functional.linear` does; the weight gradient is Gᵀ X, in
    the orientation that autograd also uses (X.T @ G is several times slower).
    """

    @staticmethod
    def forward(ctx, features, weight, bias):
        ctx.save_for_backward(features, weight)
        return torch.addmm(bias[:, None], weight, features.T).T

    @staticmethod
    def backward(ctx, grad):
        features, weight = ctx.saved_tensors
        grad_features = grad @ weight if ctx.needs_input_grad[0] else None
        return grad_features, grad.T @ features, grad.sum(dim=0)


class _StandardizedAffine(nn.Module):
    """An affine map z Wᵀ + b of the standardized features z = (f − center)/scale.

    Holds the trainable ``weight`` W and ``bias`` b, which act on z, and the
    fixed buffers ``center`` and ``scale``. :meth:`affine_on_features` folds
    the standardization into the map, W/s and b − (W/s)·center, so that a
    batch of features is never standardized itself: the cost per batch is
    that of the plain affine map.
    """

    def __init__(self, n_features, n_outputs, weight_shape):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(weight_shape))
        self.bias = nn.Parameter(torch.empty(n_outputs))
        self.register_buffer("center", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("margin_unit", torch.ones(()))

    def standardize(self, center, scale):
        """Set the standardization z = (f − center) / scale of the features.

        Also sets the unit of the margin term (see :attr:`margin_weight`).

        Parameters
        ----------
        center : array-like of shape (n_features,)
            Subtracted from the features.

        scale : float
            Positive; divides the centered features.
        """
        with torch.no_grad():
            self.center.copy_(torch.as_tensor(center, dtype=self.center.dtype))
            self.scale.fill_(float(scale))
            self.margin_unit.fill_(1.0 / math.sqrt(MARGIN_REFERENCE_SQUARED_NORM))

    @property
    def margin_weight(self):
        """The weights on which the margin term γ‖·‖² acts (the bias excluded).

        On standardized features, W/10: the weights of the same map acting
        on 10·z, the rows centered and scaled to a mean squared norm of
        ``MARGIN_REFERENCE_SQUARED_NORM`` = 100, so γ‖W/10‖² = (γ/100)‖W‖².
        A value of γ then means the same whatever the scale, the dimension
        and the preparation of X, and the papers' values for fixed features
        (0.001 to 0.02, set on ResNet-50 features whose mean squared
        distance to their mean is of the order of a hundred or more) fall
        where the margin helps on every input measured (see the user
        guide's "Choosing gamma"). Without standardization (deep mode, the
        network's own features) W itself, as in the papers.
        """
        return self.weight * self.margin_unit

    def _standardized(self, points):
        """Points given in the units of the features, as float64 z on the CPU."""
        points = torch.as_tensor(points, dtype=torch.float64).cpu()
        center = self.center.detach().to("cpu", torch.float64)
        return (points - center) / float(self.scale)

    def affine_on_features(self):
        """Weight and bias of the same affine map on the features f, not z."""
        weight = self.weight / self.scale
        return weight, self.bias - weight @ self.center

    def _set(self, weight, bias):
        with torch.no_grad():
            self.weight.copy_(weight)
            self.bias.copy_(bias)

    def _fitted_affine(self):
        weight, bias = self.affine_on_features()
        return weight.detach().cpu().numpy(), bias.detach().cpu().numpy()


class LinearHead(_StandardizedAffine):
    """Linear softmax head, logits = z vᵀ + b on the standardized features z.

    The model σ(vᵀz + b) of the entropy clustering papers on fixed features,
    with z = (f − center) / scale (identity until :meth:`standardize` is
    called). The margin term γ‖v‖² applies to ``weight`` (v) only, not to
    ``bias`` (b): 1/‖v‖ is the width of the soft margin between clusters
    (entropy-clustering-kmeans-svm §2.2), here in the units of z.

    Parameters
    ----------
    n_features : int
        Dimension d of the features f.

    n_clusters : int
        Number of clusters K.

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (n_clusters, n_features)
        The classifier weights v, on z.

    bias : torch.nn.Parameter of shape (n_clusters,)
        The bias b.

    center : torch.Tensor of shape (n_features,)
        Subtracted from the features (a buffer).

    scale : torch.Tensor of shape ()
        Divides the centered features (a buffer).
    """

    fitted_attributes = ("coef_", "intercept_")

    def __init__(self, n_features, n_clusters):
        super().__init__(n_features, n_clusters, (n_clusters, n_features))

    def reset_parameters(self, prototypes, generator=None, sample=None, prior=None):
        """Start as a fair soft nearest-prototype classifier.

        With c_k the prototypes in the units of z, sets v_k = c_k / T and
        b_k = −‖c_k‖² / (2T) + β_k, so that σ_k ∝ exp(−‖z − c_k‖² / (2T) + β_k):
        every prototype starts with the region of the points nearest to it.
        The temperature T sets how decisive σ is at the start (see
        :func:`initial_temperature`), and the shift β makes the mean
        prediction on ``sample`` equal to the prior u (see :func:`fair_bias`),
        so that no cluster starts without points.

        Parameters
        ----------
        prototypes : ndarray of shape (n_clusters, n_features)
            One point per cluster, e.g. k-means++ seeds, in the units of the
            features f.

        generator : torch.Generator, default=None
            Unused: the linear head has no random parameters.

        sample : ndarray of shape (n_samples, n_features), default=None
            Rows of the data, in the units of the features f, on which T and
            β are calibrated. ``None``: T is the mean squared distance
            between two distinct prototypes, and β = 0.

        prior : array-like of shape (n_clusters,), default=None
            Target cluster proportions u of β; ``None`` means uniform.
        """
        prototypes = self._standardized(prototypes)
        weight = prototypes
        bias = -prototypes.square().sum(dim=1) / 2
        if sample is None:
            squared_distances = torch.pdist(prototypes).square()
            # T = mean ‖c_j − c_k‖² over j < k; 1 when no two prototypes differ.
            temperature = squared_distances.mean() if squared_distances.any() else 1.0
            weight, bias = weight / temperature, bias / temperature
        else:
            sample = self._standardized(sample)
            temperature = initial_temperature(torch.cdist(sample, prototypes).square())
            weight, bias = weight / temperature, bias / temperature
            bias = bias + fair_bias(sample @ weight.T + bias, prior)
        self._set(weight, bias)

    def forward(self, features):
        """Logits z vᵀ + b of shape (n_samples, n_clusters)."""
        return _LinearMap.apply(features, *self.affine_on_features())

    def fitted_values(self):
        """``coef_`` and ``intercept_``: the logits are f coef_ᵀ + intercept_."""
        return dict(zip(self.fitted_attributes, self._fitted_affine(), strict=True))


class NormFCHead(nn.Module):
    """Norm-FC head: cosines to fixed random unit prototypes over a temperature.

    The normalized fully connected layer of Han et al. (twostage supplement
    eq. 2), logits_k = (g / ‖g‖)·p_k / τ, with unit prototypes p_k drawn at
    random once and then fixed, of the features g that the head receives.

    In deep mode (``projection=False``) g = f_w(x) are the features of the
    trained network, as in the paper: the head has no trainable parameter,
    the network learns to place its features near the prototypes, and the
    margin term has nothing to act on.

    On fixed features f nothing before the normalization would train, so the
    head first projects the standardized features z = (f − center) / scale,
    g = z Wᵀ + b, with a trainable square matrix W and bias b (a d × d
    projection, which the paper does not have); W takes the place of the
    classifier weights v: the margin term γ‖v‖² applies to W, not to b.
    Unlike for the linear head, γ‖W‖² does not set a margin: the logits are
    invariant to a common scaling of W and b and bounded by 1/τ (τ sets the
    sharpness), and the gradient of the loss grows as W shrinks. The term
    shrinks W relative to b, which pulls the projected features towards the
    single direction of b, and it changes the effective step size of the
    projection, as weight decay does on normalized layers.

    Parameters
    ----------
    n_features : int
        Dimension d of the features f, and of the projected features g.

    n_clusters : int
        Number of clusters K.

    temperature : float, default=0.1
        Temperature τ dividing the cosines; the paper uses 0.1.

    projection : bool, default=True
        Whether the head projects the features first (on fixed features).

    Attributes
    ----------
    projection : _StandardizedAffine or None
        The projection g = z Wᵀ + b: its ``weight`` W and ``bias`` b act on
        z, its buffers ``center`` and ``scale`` standardize the features.
        ``None`` without a projection.

    prototypes : torch.Tensor of shape (n_clusters, n_features)
        The fixed unit prototypes p_k (a buffer, not trained).

    temperature : torch.Tensor of shape ()
        The temperature τ (a buffer, stored with the fitted head).

    References
    ----------
    Han, S. et al., "Mitigating Embedding and Class Assignment Mismatch in
    Unsupervised Image Classification", ECCV 2020, supplement eq. (2).
    """

    fitted_attributes = ("projection_coef_", "projection_intercept_", "prototypes_")

    def __init__(self, n_features, n_clusters, temperature=0.1, projection=True):
        super().__init__()
        self.projection = (
            _StandardizedAffine(n_features, n_features, (n_features, n_features))
            if projection
            else None
        )
        self.register_buffer("prototypes", torch.empty(n_clusters, n_features))
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def standardize(self, center, scale):
        """Set the standardization of the features in front of the projection.

        Parameters
        ----------
        center : array-like of shape (n_features,)
            Subtracted from the features.

        scale : float
            Positive; divides the centered features.
        """
        self.projection.standardize(center, scale)

    def reset_parameters(self, prototypes, generator=None, sample=None, prior=None):
        """Draw the unit prototypes p_k; map the seed points onto them.

        The p_k are normalized standard normal vectors drawn from
        ``generator``. The projection, if any, is the least-norm affine map
        with W c_k + b = p_k for the seed points c_k in the units of z (exact
        when the seeds are affinely independent, e.g. K ≤ d + 1 distinct
        k-means++ seeds), so that every seed starts at the center of its own
        cluster.

        Parameters
        ----------
        prototypes : ndarray of shape (n_clusters, n_features)
            One point per cluster c_k, e.g. k-means++ seeds, in the units of
            the features f (the head's own prototypes p_k are random unit
            vectors, not these points); unused without a projection.

        generator : torch.Generator, default=None
            CPU generator of the random prototypes p_k; ``None`` uses torch's
            global generator.

        sample : ndarray of shape (n_samples, n_features), default=None
            Unused: the logits are cosines over the fixed temperature τ.

        prior : array-like of shape (n_clusters,), default=None
            Unused: the logits have no bias to balance the clusters with.
        """
        n_clusters, n_features = self.prototypes.shape
        directions = torch.randn(
            n_clusters, n_features, generator=generator, dtype=torch.float64
        )
        unit_prototypes = nn.functional.normalize(directions, dim=1)
        with torch.no_grad():
            self.prototypes.copy_(unit_prototypes)
        if self.projection is None:
            return
        seeds = self.projection._standardized(prototypes)
        # [c_k 1] [W b]ᵀ = p_k for all k, least-norm solution.
        design = torch.cat([seeds, torch.ones(n_clusters, 1, dtype=seeds.dtype)], 1)
        solution = torch.linalg.pinv(design) @ unit_prototypes
        self.projection._set(solution[:-1].T, solution[-1])

    def forward(self, features):
        """Logits cos(g, p_k) / τ of shape (n_samples, n_clusters)."""
        if self.projection is not None:
            weight, bias = self.projection.affine_on_features()
            features = nn.functional.linear(features, weight, bias)
        unit = nn.functional.normalize(features, dim=1)
        return unit @ self.prototypes.T / self.temperature

    @property
    def margin_weight(self):
        """The projection W, on which the margin term γ‖W‖² acts (not on b).

        In the unit of the linear head (W/10, see
        :attr:`LinearHead.margin_weight`); ``None`` without a projection:
        the head has no weights.
        """
        return None if self.projection is None else self.projection.margin_weight

    def fitted_values(self):
        """The projection f ↦ f Wᵀ + b on the features (if any), the prototypes."""
        values = {"prototypes_": self.prototypes.detach().cpu().numpy()}
        if self.projection is not None:
            weight, bias = self.projection._fitted_affine()
            values.update(projection_coef_=weight, projection_intercept_=bias)
        return values


HEADS = {"linear": LinearHead, "normfc": NormFCHead}


def stacked_logits(heads, features):
    """The logits of every head on a batch, of shape (n_samples, n_heads, n_clusters).

    Linear heads share one matrix product with their weights stacked, of
    shape (n_heads · n_clusters, n_features), and one in the backward pass:
    the features are read once, and on one CPU thread the product of five
    heads of 10 clusters on 250 × 1280 features costs 3.3 times that of one
    head, not 5 (benchmarks/README.md). Other heads run one after the other.
    """
    if all(isinstance(head, LinearHead) for head in heads):
        weights, biases = zip(
            *(head.affine_on_features() for head in heads), strict=True
        )
        logits = _LinearMap.apply(features, torch.cat(weights), torch.cat(biases))
        return logits.unflatten(-1, (len(heads), -1))
    return torch.stack([head(features) for head in heads], dim=1)


def make_head(head, n_features, n_clusters, temperature, *, fixed_features=True):
    """A new head of kind ``head`` ("linear" or "normfc") with unset parameters.

    ``fixed_features=False`` (deep mode, the network trains) gives the
    Norm-FC head without its projection.
    """
    if head == "normfc":
        return NormFCHead(
            n_features, n_clusters, temperature, projection=fixed_features
        )
    return LinearHead(n_features, n_clusters)
