"""Metrics for comparing a clustering with ground-truth classes or with another.

Clusterers only recover labels up to a permutation, so plain accuracy is
meaningless. :func:`clustering_accuracy` matches clusters to classes one-to-one
(Hungarian algorithm) before counting, as the entropy-clustering papers report.
The label-permutation invariant scores of scikit-learn (ARI, NMI, ...) can be
used alongside it.

:data:`clustering_accuracy_scorer` is the ready scorer for model selection. It
calls the estimator's ``predict`` on the evaluation data and compares the result
with the labels passed to ``fit``. Scikit-learn's permutation-invariant scores
work the same way by name (``scoring="adjusted_rand_score"``,
``"normalized_mutual_info_score"``, ...).

:func:`stability_score` compares two clusterings of the same samples, adjusted
for chance: the agreement that the label-free model selection of
:mod:`skentropy.model_selection` measures.

Examples
--------
>>> from sklearn.cluster import KMeans
>>> from sklearn.datasets import make_blobs
>>> from sklearn.model_selection import GridSearchCV
>>> from skentropy.metrics import clustering_accuracy_scorer
>>> X, y = make_blobs(n_samples=150, centers=3, random_state=0)
>>> search = GridSearchCV(
...     KMeans(n_init=3, random_state=0),
...     {"n_clusters": [2, 3, 4]},
...     scoring=clustering_accuracy_scorer,
... ).fit(X, y)
>>> search.best_params_
{'n_clusters': 3}
>>> search.set_params(scoring="adjusted_rand_score").fit(X, y).best_params_
{'n_clusters': 3}
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import make_scorer
from sklearn.metrics.cluster import contingency_matrix
from sklearn.utils import check_random_state

__all__ = ["clustering_accuracy", "clustering_accuracy_scorer", "stability_score"]


def _check_labels(labels_true, labels_pred, names=("labels_true", "labels_pred")):
    """Return both label arrays as 1-D numpy arrays of the same non-zero length.

    ``names`` are the argument names that the error messages use.
    """
    labels_true = np.asarray(labels_true)
    labels_pred = np.asarray(labels_pred)
    for name, labels in zip(names, (labels_true, labels_pred), strict=True):
        if labels.ndim != 1:
            raise ValueError(
                f"{name} must be 1-D, got an array of shape {labels.shape}."
            )
    if labels_true.shape[0] != labels_pred.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same length, got "
            f"{labels_true.shape[0]} and {labels_pred.shape[0]}."
        )
    if labels_true.shape[0] == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty.")
    return labels_true, labels_pred


def clustering_accuracy(labels_true, labels_pred):
    """Accuracy of a clustering under the best one-to-one cluster-to-class map.

    Each cluster is matched to at most one class and each class to at most one
    cluster so that the number of correctly labeled samples is largest; the
    matching is found exactly with the Hungarian algorithm
    (:func:`scipy.optimize.linear_sum_assignment`) on the contingency matrix.
    The score is that number divided by the number of samples.

    The numbers of clusters and classes may differ: samples of clusters left
    unmatched (more clusters than classes) and of classes left unmatched (fewer
    clusters than classes) count as errors.

    Parameters
    ----------
    labels_true : array-like of shape (n_samples,)
        Ground-truth class labels.

    labels_pred : array-like of shape (n_samples,)
        Cluster labels to evaluate.

    Returns
    -------
    accuracy : float
        Score between 0.0 and 1.0; 1.0 means the clustering equals the classes
        up to a renaming of the clusters. Higher is better.

    Raises
    ------
    ValueError
        If an input is not 1-D, the inputs differ in length, or they are empty.

    See Also
    --------
    sklearn.metrics.adjusted_rand_score : Permutation-invariant pair counting
        score, adjusted for chance.
    sklearn.metrics.normalized_mutual_info_score : Permutation-invariant
        information-theoretic score.

    Notes
    -----
    With a contingency matrix :math:`C` (classes by clusters), the score is
    :math:`\\max_\\pi \\sum_k C_{\\pi(k), k} / n` over injective maps
    :math:`\\pi` between clusters and classes. Unlike ARI and NMI it is not
    adjusted for chance, and it is symmetric in its two arguments.

    Examples
    --------
    >>> from skentropy.metrics import clustering_accuracy
    >>> clustering_accuracy([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    >>> clustering_accuracy([0, 0, 1, 1], [0, 0, 0, 1])
    0.75
    >>> round(clustering_accuracy([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1]), 3)
    0.667
    """
    labels_true, labels_pred = _check_labels(labels_true, labels_pred)
    contingency = contingency_matrix(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(contingency, maximize=True)
    return float(contingency[rows, cols].sum() / labels_true.shape[0])


#: Scorer for :func:`clustering_accuracy`: calls the estimator's ``predict``
#: and compares with the labels passed to ``fit``; use it as ``scoring=``.
clustering_accuracy_scorer = make_scorer(clustering_accuracy)


def _check_no_nan(labels, name):
    """Raise if ``labels`` holds NaN, which would make each one its own cluster."""
    if labels.dtype.kind in "fc" or labels.dtype == object:
        if np.any(np.asarray(labels != labels, dtype=bool)):  # NaN ≠ NaN
            raise ValueError(
                f"{name} contains NaN; every sample needs a cluster label."
            )


def _matched_jaccard(contingency):
    """Mean over the K requested clusters of the Jaccard index of matched pairs.

    ``contingency`` is K × K. Clusters are matched one to one (Hungarian) so
    that the sum of |A ∩ B| / |A ∪ B| is largest; a cluster that is empty in
    either labeling contributes 0.
    """
    sizes_a = contingency.sum(axis=1, keepdims=True)
    sizes_b = contingency.sum(axis=0, keepdims=True)
    union = sizes_a + sizes_b - contingency
    jaccard = np.divide(
        contingency, union, out=np.zeros(contingency.shape), where=union > 0
    )
    rows, cols = linear_sum_assignment(jaccard, maximize=True)
    return jaccard[rows, cols].sum() / contingency.shape[0]


def _contingency(codes_a, codes_b, n_clusters):
    counts = np.bincount(codes_a * n_clusters + codes_b, minlength=n_clusters**2)
    return counts.reshape(n_clusters, n_clusters)


def stability_score(
    labels_a, labels_b, *, n_clusters=None, n_permutations=20, random_state=0
):
    """Agreement of two clusterings of the same samples, adjusted for chance.

    The clusters of the two labelings are matched one to one (Hungarian
    algorithm) so that the sum of their Jaccard indices (the size of A ∩ B
    over that of A ∪ B, for matched clusters A and B) is largest, and that
    sum is divided by ``n_clusters``: the raw score s is the mean, over the
    requested clusters, of how well each one is found again. A requested
    cluster that is empty in either labeling counts as 0, so clusterings
    that leave clusters empty score lower. As in Lange et al. (2004), s is
    then normalized by its value for random labelings, so that
    scores of different numbers of clusters are comparable:

        score = (s − s₀) / (1 − s₀),

    where s₀ is the mean raw score after randomly permuting ``labels_b``
    (``n_permutations`` times; the cluster sizes are kept).

    Parameters
    ----------
    labels_a : array-like of shape (n_samples,)
        Cluster labels of one clustering; any hashable values but NaN.

    labels_b : array-like of shape (n_samples,)
        Cluster labels of the other clustering of the same samples.

    n_clusters : int, default=None
        Number of clusters requested from both clusterings, at least the
        number of distinct labels in each. ``None`` uses the larger of these
        two numbers, so that empty clusters go unnoticed.

    n_permutations : int, default=20
        Number of random permutations of ``labels_b`` that estimate s₀.

    random_state : int, RandomState instance or None, default=0
        Seed of the permutations. The default makes the score a deterministic
        function of the labels.

    Returns
    -------
    score : float
        At most 1.0: 1.0 when the labelings are equal up to a renaming of the
        clusters and use all ``n_clusters`` clusters, about 0.0 for
        independent labelings (negative values are chance fluctuations), and
        exactly 0.0 when s₀ = 1 (both labelings put every sample in one
        cluster and ``n_clusters`` is 1). Higher is better.

    Raises
    ------
    ValueError
        If the labelings are not 1-D, differ in length or are empty, if one
        of them contains NaN, or if one of them has more distinct labels
        than ``n_clusters``.

    See Also
    --------
    skentropy.model_selection.unsupervised_scorer : The cross-validated
        stability of an estimator, computed with this function.
    sklearn.metrics.adjusted_rand_score : Pair-counting agreement adjusted
        for chance; it does not see empty clusters.

    Notes
    -----
    The match of the clusters of one labeling to those of the other is the
    one-to-one map that Lange et al. (2004) minimize their disagreement over;
    scoring each matched pair by its Jaccard index, as Hennig (2007) scores
    the stability of each cluster, makes the score a mean over clusters
    rather than over samples, so a small cluster that is not found again
    weighs as much as a large one. Lange et al. normalize by uniformly random
    labelings; the permutations used here keep the two labelings' cluster
    sizes, as the adjusted Rand index does.

    References
    ----------
    Lange, T., Roth, V., Braun, M. L. and Buhmann, J. M. (2004),
    "Stability-based validation of clustering solutions", *Neural
    Computation* 16(6), 1299–1323.

    Hennig, C. (2007), "Cluster-wise assessment of cluster stability",
    *Computational Statistics & Data Analysis* 52(1), 258–271.

    Examples
    --------
    >>> from skentropy.metrics import stability_score
    >>> stability_score([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1])
    1.0

    Five of a hundred samples move to the other cluster:

    >>> labels = [0] * 50 + [1] * 50
    >>> round(stability_score(labels, [0] * 45 + [1] * 55), 2)
    0.85

    The same labelings, but three clusters were requested and one is empty:

    >>> round(stability_score(labels, [0] * 45 + [1] * 55, n_clusters=3), 2)
    0.47
    """
    labels_a, labels_b = _check_labels(
        labels_a, labels_b, names=("labels_a", "labels_b")
    )
    _check_no_nan(labels_a, "labels_a")
    _check_no_nan(labels_b, "labels_b")
    _, codes_a = np.unique(labels_a, return_inverse=True)
    _, codes_b = np.unique(labels_b, return_inverse=True)
    n_found = max(codes_a.max(), codes_b.max()) + 1
    if n_clusters is None:
        n_clusters = int(n_found)
    elif n_clusters < n_found:
        raise ValueError(
            f"n_clusters={n_clusters} is smaller than the {n_found} distinct "
            "labels of one of the labelings."
        )
    rng = check_random_state(random_state)
    raw = _matched_jaccard(_contingency(codes_a, codes_b, n_clusters))
    chance = np.mean(
        [
            _matched_jaccard(
                _contingency(codes_a, rng.permutation(codes_b), n_clusters)
            )
            for _ in range(n_permutations)
        ]
    )
    if chance >= 1.0:
        return 0.0
    return float((raw - chance) / (1.0 - chance))
