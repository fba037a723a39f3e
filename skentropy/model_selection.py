"""Label-free model selection: how many clusters, and which ``gamma``.

Without labels, a clusterer's own loss cannot compare settings: the loss of
the softmax estimators contains γ‖v‖² and λ, so their ``score`` prefers a
small ``gamma`` whatever the data, and losses of different ``n_clusters`` or
estimators are not on one scale. What can be compared is whether a setting
finds the *same* clusters on new data. :func:`unsupervised_scorer` measures
this by cross-validated stability (Lange et al., 2004): the model fitted on
the training fold labels the held-out fold, a clone fitted on the held-out
fold labels it too, and :func:`~skentropy.metrics.stability_score` says how
well the two clusterings agree, adjusted for chance so that every number of
clusters has the same scale (0 for independent labelings, 1 for identical
ones).

:func:`select_n_clusters` runs this for a list of candidate numbers of
clusters on random halves of the data, comparing every pair of fits, and
:func:`~skentropy.plotting.plot_n_clusters_selection` draws its scores. Both
that function and :func:`~skentropy.metrics.stability_score` live in their
own modules and are re-exported here.

Examples
--------
>>> from sklearn.datasets import make_blobs
>>> from sklearn.model_selection import GridSearchCV
>>> from skentropy import MaxMarginEntropyClustering
>>> from skentropy.model_selection import unsupervised_scorer
>>> centers = [[0, 0], [10, 0], [5, 9]]
>>> X, _ = make_blobs(n_samples=200, centers=centers, random_state=0)
>>> search = GridSearchCV(
...     MaxMarginEntropyClustering(max_iter=30, random_state=0),
...     {"n_clusters": [2, 3, 4, 5]},
...     scoring=unsupervised_scorer,
...     cv=2,
... ).fit(X)
>>> search.best_params_
{'n_clusters': 3}
"""

import itertools
import numbers

import numpy as np
from sklearn.base import clone
from sklearn.utils import (
    Bunch,
    _safe_indexing,
    check_array,
    check_random_state,
    indexable,
)
from sklearn.utils.parallel import Parallel, delayed

from skentropy._chunks import row_chunks
from skentropy.metrics import stability_score
from skentropy.plotting import plot_n_clusters_selection

__all__ = [
    "gaussian_reference",
    "plot_n_clusters_selection",
    "select_n_clusters",
    "stability_score",
    "unsupervised_scorer",
]


def _final_step(estimator):
    """The estimator that clusters: the last step of (nested) pipelines."""
    while hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator


def _requested_n_clusters(estimator):
    """``n_clusters`` of the clustering step, or None if it has none."""
    n_clusters = _final_step(estimator).get_params(deep=False).get("n_clusters")
    if isinstance(n_clusters, numbers.Integral):
        return int(n_clusters)
    return None


def _reseeded_clone(estimator, index=1):
    """A clone whose integer ``random_state`` parameters get derived seeds.

    Every ``random_state`` of the estimator (and of its steps) that is an
    integer r becomes the ``index``-th draw of ``RandomState(r).randint(2**31
    - 1)`` (``index=0`` keeps r): deterministic, and different from r and
    from the other draws, so that the fits compared do not share their
    initialization. ``None`` and RandomState instances are left as they are
    (their fits differ anyway).
    """
    estimator = clone(estimator)
    if index == 0:
        return estimator
    seeds = {
        name: int(
            check_random_state(value).randint(np.iinfo(np.int32).max, size=index)[-1]
        )
        for name, value in estimator.get_params().items()
        if (name == "random_state" or name.endswith("__random_state"))
        and isinstance(value, numbers.Integral)
    }
    return estimator.set_params(**seeds)


def _n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _check_fold_size(n_samples, n_clusters):
    if n_clusters is not None and n_samples < n_clusters:
        raise ValueError(
            f"The held-out fold has {n_samples} samples, fewer than "
            f"n_clusters={n_clusters}: a clustering of it cannot be fitted. Use "
            "fewer folds (e.g. cv=2) or fewer clusters."
        )


def unsupervised_scorer(estimator, X, y=None):
    """Cross-validated stability of a fitted clusterer on held-out data.

    A scorer with the signature ``scorer(estimator, X, y)``, for
    ``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_val_score` and the like, that needs
    no labels: ``GridSearchCV(estimator, grid, scoring=unsupervised_scorer,
    cv=2).fit(X)``. The estimator it receives was fitted on the training
    fold; X is the held-out fold. The score is the
    :func:`~skentropy.metrics.stability_score` of

    1. ``estimator.predict(X)``: the training fold's clusters carried over to
       the held-out fold, and
    2. ``clone(estimator).fit(X).predict(X)``: the clusters of the held-out
       fold itself, found by a fresh copy with the same parameters but
       another seed (an integer ``random_state`` r becomes
       ``RandomState(r).randint(2**31 - 1)``, in every step of a pipeline)

    with ``n_clusters`` the number requested from the clustering step. This
    is the stability index of Lange et al. (2004): a setting that finds
    structure of the data gives the same clusters on both folds, one that
    finds noise or optimizer randomness does not. The score is between about
    0 (chance) and 1, higher is better, and it does not depend on the loss of
    the estimator, so it compares ``n_clusters``, ``gamma``,
    ``fairness_weight``, any other parameter and different estimators.

    Parameters
    ----------
    estimator : estimator instance
        A clusterer, or a :class:`~sklearn.pipeline.Pipeline` ending in one,
        fitted on the training fold, with ``predict``. For a pipeline the
        whole pipeline is cloned and fitted on the held-out fold.

    X : array-like of shape (n_samples, n_features)
        The held-out fold. It must have at least ``n_clusters`` samples, and
        should have many more: the clone is fitted on it alone.

    y : Ignored
        Not used; the clone is fitted on X without labels.

    Returns
    -------
    score : float
        The chance-adjusted agreement of the two clusterings of X, at most
        1.0. Higher is better.

    Raises
    ------
    ValueError
        If X has fewer samples than ``n_clusters``.

    See Also
    --------
    skentropy.metrics.stability_score : The agreement of two labelings that it
        computes.
    select_n_clusters : Stability for a list of numbers of clusters, over
        every pair of fits on random halves, against a Gaussian reference.

    Notes
    -----
    **Cost.** One extra fit per split, on the held-out fold, on top of the
    fit on the training fold that the search does anyway. With ``cv=2``
    (halves, as Lange et al. use) that fit is on half of the data; with more
    folds on a smaller share, which makes the clone's clustering noisier.
    The score of one split is a noisy estimate; repeat the splits
    (``cv=RepeatedKFold(n_splits=2, n_repeats=3)``) and compare means.

    **Determinism.** The clone's seed is derived from the estimator's: with
    an integer ``random_state`` the score is a deterministic function of the
    folds. With ``random_state=None`` it is random, as the fits are. The
    scorer keeps no state, so it works with ``n_jobs`` and pickles. The seed
    differs from the estimator's because two fits from the same seed share
    their initialization, and can then settle an ambiguous clustering the
    same way: on four blobs at the corners of a square, with one head per
    fit (``n_heads=1``), the two ways of making three clusters scored 0.90
    to 0.98 with one seed for both fits, about as high as the four true
    clusters, and 0.18 to 0.95 with two seeds (see :ref:`model-selection`).

    **When it fails.** Stability rewards clusterings that are reproducible,
    not ones that match a labeling: a coarse clustering that merges classes
    the same way every time scores well, and a setting whose classes are
    genuinely ambiguous in the features scores low at every number of
    clusters. Clusterings that leave clusters empty score lower (each empty
    cluster counts as not found again), so a ``gamma`` so large that it
    empties clusters is not preferred. The clone is fitted without ``y``, so
    semi-supervised settings are scored as if unlabeled.

    References
    ----------
    Lange, T., Roth, V., Braun, M. L. and Buhmann, J. M. (2004),
    "Stability-based validation of clustering solutions", *Neural
    Computation* 16(6), 1299–1323.

    Tibshirani, R. and Walther, G. (2005), "Cluster validation by prediction
    strength", *Journal of Computational and Graphical Statistics* 14(3),
    511–528.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.model_selection import cross_val_score
    >>> from skentropy import EntropyClustering
    >>> from skentropy.model_selection import unsupervised_scorer
    >>> centers = [[0, 0], [10, 0], [5, 9]]
    >>> X, _ = make_blobs(n_samples=200, centers=centers, random_state=0)
    >>> model = EntropyClustering(n_clusters=3, max_iter=30, random_state=0)
    >>> scores = cross_val_score(model, X, scoring=unsupervised_scorer, cv=2)
    >>> bool(scores.min() > 0.9)
    True
    """
    n_clusters = _requested_n_clusters(estimator)
    _check_fold_size(_n_rows(X), n_clusters)
    labels_carried = estimator.predict(X)
    labels_refitted = _reseeded_clone(estimator).fit(X).predict(X)
    return stability_score(labels_carried, labels_refitted, n_clusters=n_clusters)


def gaussian_reference(X, *, random_state=None):
    """Data without clusters, with the mean and covariance of X.

    Draws as many rows as X has from the normal distribution whose mean and
    covariance are those of the rows of X: the null reference of Dudoit and
    Fridlyand (2002), one Gaussian "cluster" with the spread of the data.
    :func:`select_n_clusters` subtracts the stability of every candidate on
    it from the stability on X, which removes what any K gets on structureless
    data of the same shape (a few clusters split a Gaussian along its longest
    axes the same way every time, many clusters do not).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Dense numeric data; memmaps are read in blocks of rows.

    random_state : int, RandomState instance or None, default=None
        Seed of the draw.

    Returns
    -------
    reference : ndarray of shape (n_samples, n_features)
        The draw, float32 if X is float32 and float64 otherwise.

    Raises
    ------
    ValueError
        If X is sparse, not numeric, not 2-D, has fewer than 2 rows or holds
        NaN or infinity.

    References
    ----------
    Dudoit, S. and Fridlyand, J. (2002), "A prediction-based resampling
    method for estimating the number of clusters in a dataset", *Genome
    Biology* 3(7), research0036.

    Examples
    --------
    >>> import numpy as np
    >>> from skentropy.model_selection import gaussian_reference
    >>> X = np.random.default_rng(0).normal(size=(5000, 2)) @ [[3, 0], [1, 1]]
    >>> reference = gaussian_reference(X, random_state=0)
    >>> reference.shape
    (5000, 2)
    >>> np.round(np.cov(reference.T), 0)
    array([[10.,  1.],
           [ 1.,  1.]])
    """
    try:
        X = check_array(
            X, dtype=[np.float64, np.float32], ensure_min_samples=2, copy=False
        )
    except (TypeError, ValueError) as error:
        raise ValueError(
            "The Gaussian reference needs dense numeric data with at least 2 "
            f"rows and finite values ({error}). Pass reference=None to "
            "select_n_clusters to score X alone."
        ) from error
    n_samples, n_features = X.shape
    chunks = row_chunks(X)
    mean = sum(X[rows].sum(axis=0, dtype=np.float64) for rows in chunks) / n_samples
    covariance = np.zeros((n_features, n_features))
    for rows in chunks:
        centered = X[rows].astype(np.float64) - mean
        covariance += centered.T @ centered
    covariance /= n_samples - 1
    variances, axes = np.linalg.eigh(covariance)
    factor = axes * np.sqrt(np.clip(variances, 0.0, None))
    rng = check_random_state(random_state)
    reference = rng.standard_normal((n_samples, n_features)) @ factor.T + mean
    return reference.astype(X.dtype, copy=False)


def _check_candidates(candidates):
    candidates = np.asarray(candidates)
    if candidates.ndim != 1 or candidates.size == 0:
        raise ValueError(
            "candidates must be a non-empty 1-D list of numbers of clusters, got "
            f"an array of shape {candidates.shape}."
        )
    if not np.issubdtype(candidates.dtype, np.integer):
        raise ValueError(f"candidates must be integers, got {candidates.tolist()}.")
    if candidates.min() < 2:
        raise ValueError(
            "Every candidate number of clusters must be at least 2 (one cluster "
            f"is always perfectly stable), got {candidates.tolist()}."
        )
    if np.unique(candidates).size != candidates.size:
        raise ValueError(f"candidates must be distinct, got {candidates.tolist()}.")
    return np.sort(candidates)


def _n_clusters_param(estimator, param_name):
    """The name under which ``set_params`` sets the number of clusters."""
    if param_name is None:
        param_name = "n_clusters"
        step = estimator
        while hasattr(step, "steps"):
            name, step = step.steps[-1]
            param_name = f"{name}__{param_name}"
    if param_name not in estimator.get_params():
        raise ValueError(
            f"{type(estimator).__name__} has no parameter {param_name!r}; pass "
            "param_name, the name of its number-of-clusters parameter."
        )
    return param_name


def _fit_and_predict(estimator, X, rows):
    """Fit on X[rows]; the labels it predicts for every row of X."""
    return estimator.fit(_safe_indexing(X, rows)).predict(X)


def select_n_clusters(
    estimator,
    X,
    candidates,
    *,
    n_repeats=3,
    reference="gaussian",
    param_name=None,
    random_state=None,
    n_jobs=None,
):
    """Choose the number of clusters without labels, by stability over random halves.

    For every candidate number of clusters K, X is split ``n_repeats`` times
    at random into two halves, as in Lange et al. (2004), and a copy of the
    estimator with K clusters is fitted on each of the ``2 * n_repeats``
    halves, every copy with its own seed (the first with the estimator's
    ``random_state``, the others with seeds derived from it as
    :func:`unsupervised_scorer` derives its clone's). Each fitted copy then
    labels all of X: its own half, and the rest as new data. Every pair of
    copies is scored by the :func:`~skentropy.metrics.stability_score` of
    their two labelings of X. With ``reference="gaussian"`` (the default)
    the same fits, on the same halves with the same seeds, are repeated on a
    draw of :func:`gaussian_reference`, data without clusters with the mean
    and covariance of X, and the score of a pair is its stability on X minus
    its stability on the reference, as in Dudoit and Fridlyand (2002). The
    chosen K has the largest mean score over the pairs.

    The reference removes the advantage that few clusters have on any data:
    splitting a cloud into a few parts along its longest axes is reproducible
    even without clusters. On the Gaussian references of the five benchmark
    sets the stability of ``EntropyClustering`` fell from 0.22–0.38 at K = 5
    or 6 to 0.13–0.23 at K = 13 to 16
    (see :ref:`model-selection`).

    Comparing every pair of fits, not only the two fits of one split, gives
    ``n_repeats * (2 * n_repeats - 1)`` scores for the same ``2 * n_repeats``
    fits (15 instead of 6 for three splits), an average over more
    comparisons of the same fits: on the benchmark sets the curves of
    mean score against K of two different sets of splits were closer
    together (mean absolute difference 0.036 against 0.047, correlation 0.84
    against 0.69; see :ref:`model-selection`).

    Parameters
    ----------
    estimator : estimator instance
        A clusterer with ``predict`` and a number-of-clusters parameter, or a
        :class:`~sklearn.pipeline.Pipeline` ending in one. It is cloned, not
        fitted.

    X : array-like of shape (n_samples, n_features)
        Data, without labels.

    candidates : array-like of int
        Distinct numbers of clusters to compare, each at least 2.

    n_repeats : int, default=3
        Number of random splits into halves; ``2 * n_repeats`` fits per
        candidate (twice that with a reference).

    reference : {"gaussian"} or None, default="gaussian"
        ``"gaussian"`` subtracts the stability of the same fits on
        :func:`gaussian_reference` data (drawn with the seed
        ``random_state``); ``None`` scores the stability on X alone, at half
        the cost.

    param_name : str, default=None
        Name of the number-of-clusters parameter in ``estimator.set_params``.
        ``None`` means ``n_clusters`` of the last step, e.g.
        ``"entropyclustering__n_clusters"`` in a pipeline.

    random_state : int, RandomState instance or None, default=None
        Seed of the splits into halves. The estimator's own ``random_state``
        seeds its fits; with integers for both the result is deterministic.

    n_jobs : int, default=None
        Number of fits run in parallel by joblib. ``None`` means 1 unless in
        a :obj:`joblib.parallel_backend` context; -1 means all processors.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        With the fields

        n_clusters : int
            The chosen number of clusters, the candidate of largest
            ``mean_score`` (the smallest one in a tie).
        candidates : ndarray of shape (n_candidates,)
            The candidates, in increasing order.
        stability : ndarray of shape (n_candidates, n_pairs)
            The stability score on X of every pair of fits of every
            candidate, ``n_pairs = n_repeats * (2 * n_repeats - 1)``; column
            p is the pair ``pairs[p]``.
        reference_stability : ndarray of shape (n_candidates, n_pairs) or None
            The same on the reference; ``None`` without one.
        scores : ndarray of shape (n_candidates, n_pairs)
            ``stability - reference_stability``, or ``stability`` without a
            reference.
        mean_score, std_score : ndarray of shape (n_candidates,)
            Their mean and standard deviation over the pairs. The pairs
            share fits, so ``std_score`` shows the spread of one comparison,
            not the uncertainty of the mean.
        param_name : str
            The parameter that was set.
        halves : list of ndarray
            The sorted row indices of the half each fit was trained on
            (``n_samples // 2`` rows, or the rest): fits ``2 * r`` and
            ``2 * r + 1`` are the two halves of split r.
        pairs : list of (int, int)
            The fits (indices into ``halves``) compared in each column of
            ``scores``.

    Raises
    ------
    ValueError
        If a candidate is below 2, the candidates are not distinct integers,
        a half of X has fewer samples than the largest candidate,
        ``n_repeats`` is not a positive integer, ``reference`` is not
        ``"gaussian"`` or None, the estimator has no parameter
        ``param_name``, or the reference is asked for and X is not dense
        numeric data.

    See Also
    --------
    unsupervised_scorer : The score of one split, for ``GridSearchCV``.
    skentropy.plotting.plot_n_clusters_selection : Plot the scores against the
        candidates.

    Notes
    -----
    Cost: ``2 * n_repeats`` fits on half of X per candidate, and one
    ``predict`` of X per fit; twice that with the reference, which also
    holds a draw as large as X in memory. In a pipeline the reference is
    drawn in the pipeline's input space and goes through all of its steps.
    The score of a pair of fits from the same split compares each fit's
    labels of its own half with the other's labels of that half as new data,
    as :func:`unsupervised_scorer` does; two fits from different splits share
    about half of their training rows, as the subsamples of Ben-Hur et al.
    (2002) do. Stability favours numbers of clusters whose clusters are found
    the same way every time, which need not be the number of classes of a
    labeling: see the Notes of :func:`unsupervised_scorer`. With a
    ``random_state=None`` estimator the
    scores are random as its fits are.

    References
    ----------
    Lange, T., Roth, V., Braun, M. L. and Buhmann, J. M. (2004),
    "Stability-based validation of clustering solutions", *Neural
    Computation* 16(6), 1299–1323.

    Ben-Hur, A., Elisseeff, A. and Guyon, I. (2002), "A stability based
    method for discovering structure in clustered data", *Pacific Symposium
    on Biocomputing* 7, 6–17.

    Dudoit, S. and Fridlyand, J. (2002), "A prediction-based resampling
    method for estimating the number of clusters in a dataset", *Genome
    Biology* 3(7), research0036.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skentropy import MaxMarginEntropyClustering
    >>> from skentropy.model_selection import select_n_clusters
    >>> centers = [[0, 0], [0, 8], [8, 0], [8, 8]]
    >>> X, _ = make_blobs(n_samples=200, centers=centers, random_state=0)
    >>> model = MaxMarginEntropyClustering(max_iter=20, random_state=0)
    >>> result = select_n_clusters(model, X, [3, 4, 5], n_repeats=2, random_state=0)
    >>> result.n_clusters
    4
    >>> result.scores.shape
    (3, 6)
    """
    candidates = _check_candidates(candidates)
    param_name = _n_clusters_param(estimator, param_name)
    if not isinstance(n_repeats, numbers.Integral) or n_repeats < 1:
        raise ValueError(f"n_repeats must be a positive integer, got {n_repeats!r}.")
    if reference not in ("gaussian", None):
        raise ValueError(f'reference must be "gaussian" or None, got {reference!r}.')
    (X,) = indexable(X)
    n_samples = _n_rows(X)
    _check_fold_size(n_samples // 2, int(candidates.max()))
    rng = check_random_state(random_state)
    halves = []
    for _ in range(n_repeats):
        permutation = rng.permutation(n_samples)
        halves += [
            np.sort(permutation[: n_samples // 2]),
            np.sort(permutation[n_samples // 2 :]),
        ]
    pairs = list(itertools.combinations(range(len(halves)), 2))
    datasets = [X]
    if reference == "gaussian":
        datasets.append(gaussian_reference(X, random_state=rng))

    def fit_on(data, k, fit_index):
        model = clone(estimator).set_params(**{param_name: int(k)})
        model = _reseeded_clone(model, index=fit_index)
        return delayed(_fit_and_predict)(model, data, halves[fit_index])

    labels = Parallel(n_jobs=n_jobs)(
        fit_on(data, k, fit_index)
        for data in datasets
        for k in candidates
        for fit_index in range(len(halves))
    )
    # labels[((d * n_candidates) + i) * n_fits + f]: the labels of dataset d
    # by fit f of candidate i.
    labels = np.reshape(
        np.asarray(labels), (len(datasets), candidates.size, len(halves), -1)
    )
    stability = np.array(
        [
            [
                [
                    stability_score(on_data[i, f], on_data[i, g], n_clusters=int(k))
                    for f, g in pairs
                ]
                for i, k in enumerate(candidates)
            ]
            for on_data in labels
        ]
    )
    scores = stability[0] - stability[1] if reference else stability[0]
    mean_score = scores.mean(axis=1)
    return Bunch(
        n_clusters=int(candidates[np.argmax(mean_score)]),
        candidates=candidates,
        stability=stability[0],
        reference_stability=stability[1] if reference else None,
        scores=scores,
        mean_score=mean_score,
        std_score=scores.std(axis=1),
        param_name=param_name,
        halves=halves,
        pairs=pairs,
    )
