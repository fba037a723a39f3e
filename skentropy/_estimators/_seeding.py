"""Initialization: the k-means++ seeds that new heads (and SeCu's centres) start from.

Every new model starts from K seed points of the data, so that every cluster
starts with some points: k-means++ seeds of a random subset of at most
:func:`init_size` rows, and with weak supervision the mean of the labeled
rows of a class for its cluster (seeded k-means, Basu et al. 2002).
"""

import numpy as np
from sklearn.cluster import kmeans_plusplus
from threadpoolctl import threadpool_limits

from skentropy._torch_utils import torch_generator

# The seeds of a head are drawn from at most this many mini-batches of rows
# (MiniBatchKMeans' init_size is also 3 batches).
_INIT_SIZE_BATCHES = 3


def init_size(batch_size, n_clusters):
    """How many rows (at most) the k-means++ seeds are drawn from."""
    return max(_INIT_SIZE_BATCHES * batch_size, 3 * n_clusters)


def init_rows(n_samples, size, random_state):
    """Sorted indices of a random subset of ``size`` rows, or all rows."""
    if n_samples > size:
        return np.sort(random_state.choice(n_samples, size, replace=False))
    return np.arange(n_samples)


def seed_prototypes(X, sample_weight, n_clusters, size, random_state):
    """k-means++ seeds of a random subset of at most ``size`` rows of X.

    Returns the seeds, of shape (n_clusters, n_features), and the rows of X
    they were drawn from (of positive weight).
    """
    if X.shape[0] > size:
        rows = init_rows(X.shape[0], size, random_state)
        X, sample_weight = X[rows], sample_weight[rows]
    # A few thousand rows at most: one BLAS thread is as fast on an idle
    # machine and does not stall on a busy one.
    with threadpool_limits(limits=1, user_api="blas"):
        prototypes, _ = kmeans_plusplus(
            X, n_clusters, sample_weight=sample_weight, random_state=random_state
        )
    return prototypes, np.asarray(X)[sample_weight > 0]


def class_means(X, labels, sample_weight, n_clusters):
    """Weighted mean of the rows labeled k, for each k (NaN rows: no label k)."""
    labeled = np.flatnonzero((labels >= 0) & (sample_weight > 0))
    sums = np.zeros((n_clusters, X.shape[1]))
    totals = np.zeros(n_clusters)
    np.add.at(sums, labels[labeled], X[labeled] * sample_weight[labeled, None])
    np.add.at(totals, labels[labeled], sample_weight[labeled])
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / totals[:, None]


def match_seeds_to_prior(seeds, sample, prior):
    """The seeds reordered so that larger cells go to clusters of larger u_k.

    Cluster k is meant to hold the share u_k of the data (``prior``), but
    k-means++ draws its seeds in a random order: the seed whose nearest-seed
    cell holds the most rows of ``sample`` becomes the cluster of the largest
    u_k, and so on down (ties keep the seeds' order).

    Parameters
    ----------
    seeds : ndarray of shape (n_clusters, n_features)
        One point per cluster.

    sample : ndarray of shape (n_samples, n_features)
        Rows of the data.

    prior : array-like of shape (n_clusters,)
        Target cluster proportions u.

    Returns
    -------
    seeds : ndarray of shape (n_clusters, n_features)
        The same points, reordered.
    """
    distances = (
        np.square(sample).sum(axis=1)[:, None]
        - 2 * sample @ seeds.T
        + np.square(seeds).sum(axis=1)[None, :]
    )
    sizes = np.bincount(distances.argmin(axis=1), minlength=seeds.shape[0])
    by_size = np.argsort(-sizes, kind="stable")
    by_prior = np.argsort(-np.asarray(prior), kind="stable")
    reordered = np.empty_like(seeds)
    reordered[by_prior] = seeds[by_size]
    return reordered


def seed_heads(
    heads, X, labels, sample_weight, n_clusters, size, random_state, prior=None
):
    """Seed each head on its own k-means++ seeds of (a subset of) X.

    Each head draws its own seeds (:func:`seed_prototypes`); with weak
    supervision (``labels``, −1 = unlabeled) a cluster with labeled rows is
    seeded at their weighted mean instead, so that cluster k starts at class
    k. The heads then set their parameters from the seeds and the rows they
    were drawn from, with mean predictions ``prior`` on them
    (``reset_parameters``, see :mod:`skentropy._estimators._heads`), drawing
    any random fixed parameter (Norm-FC prototypes) from one torch generator,
    which is
    returned: seeded from ``random_state``, it goes on to shuffle the
    mini-batches.
    """
    seeds, samples = zip(
        *(
            seed_prototypes(X, sample_weight, n_clusters, size, random_state)
            for _ in heads
        ),
        strict=True,
    )
    generator = torch_generator(random_state)
    if labels is not None:
        means = class_means(X, labels, sample_weight, n_clusters)
        labeled = ~np.isnan(means[:, 0])
        for head_seeds in seeds:
            head_seeds[labeled] = means[labeled]
    elif prior is not None:
        seeds = [
            match_seeds_to_prior(head_seeds, sample, prior)
            for head_seeds, sample in zip(seeds, samples, strict=True)
        ]
    for head, head_seeds, sample in zip(heads, seeds, samples, strict=True):
        head.reset_parameters(
            head_seeds, generator=generator, sample=sample, prior=prior
        )
    return generator
