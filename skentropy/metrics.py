"""Metrics for comparing a clustering with ground-truth classes.

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

__all__ = ["clustering_accuracy", "clustering_accuracy_scorer"]


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
