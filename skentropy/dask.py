"""Dask arrays: stream blocks to ``partial_fit``, predict block by block.

Every skentropy estimator trains one epoch per ``partial_fit`` call and copies
only mini-batches, so a chunked :class:`dask.array.Array` larger than memory
can be streamed through it block by block, and prediction is embarrassingly
parallel over blocks. dask-ml's wrappers do this too:
``dask_ml.wrappers.Incremental(estimator)`` trains (one ``partial_fit`` per
block; several passes by calling its ``partial_fit`` again) and predicts with
``predict`` and ``transform``. Its ``predict_proba`` however assumes a
classifier (it sizes the output from ``estimator.classes_``, which a
clusterer does not have) and fails with ``AttributeError: 'EntropyClustering'
object has no attribute 'classes_'`` (dask-ml 2025.1.0). The functions here
need dask only, not dask-ml (whose last release predates the installed
scikit-learn):

- :func:`partial_fit_blocks` feeds the blocks of X (and of y, sample_weight)
  to ``estimator.partial_fit``, one block in memory at a time, for
  ``n_passes`` passes in shuffled block order;
- :func:`predict` and :func:`predict_proba` map ``estimator.predict`` and
  ``estimator.predict_proba`` over the blocks (:meth:`dask.array.Array.map_blocks`),
  lazily: the result is a dask array.

With a :class:`distributed.Client` active, the blocks are computed, and the
predictions made, on its workers. Grid search needs no helper: run
:class:`~sklearn.model_selection.GridSearchCV` inside
``joblib.parallel_backend("dask")``.

Install the optional dependencies with ``pip install "skentropy[dask]"``.

Examples
--------
>>> import dask.array as da
>>> from sklearn.datasets import make_blobs
>>> from sklearn.metrics import adjusted_rand_score
>>> from skentropy import EntropyClustering
>>> from skentropy.dask import partial_fit_blocks, predict
>>> centers = [[0, 4], [4, -2], [-4, -2]]
>>> X, y = make_blobs(n_samples=600, centers=centers, random_state=0)
>>> X_dask = da.from_array(X, chunks=(150, -1))  # 4 blocks of 150 rows
>>> clustering = EntropyClustering(n_clusters=3, random_state=0)
>>> clustering = partial_fit_blocks(clustering, X_dask, n_passes=3, random_state=0)
>>> clustering.n_iter_  # one epoch per block and pass
12
>>> labels = predict(clustering, X_dask)  # lazy
>>> adjusted_rand_score(y, labels.compute()) > 0.9
True
"""

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

try:
    import dask
    import dask.array as da
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "skentropy.dask needs dask; install it with: pip install 'skentropy[dask]' "
        "(dask[array], distributed and dask-ml)."
    ) from error

__all__ = ["partial_fit_blocks", "predict", "predict_proba"]


def partial_fit_blocks(
    estimator,
    X,
    y=None,
    *,
    sample_weight=None,
    n_passes=1,
    shuffle_blocks=True,
    random_state=None,
):
    """Train an estimator on a dask array, one ``partial_fit`` per block.

    Each pass calls ``estimator.partial_fit`` once on every block of rows of
    X, in a random order if ``shuffle_blocks``; only the block being trained
    on is in memory (computed on the cluster's workers when a
    :class:`distributed.Client` is active). Each call makes one epoch over its
    block in mini-batches, so ``n_passes`` passes make ``n_passes`` times the
    number of blocks epochs (``n_iter_``). Blocks should be large enough to
    represent every cluster, and the rows should be in random order (shuffle
    once when writing the data).

    Parameters
    ----------
    estimator : estimator instance
        An estimator with ``partial_fit``, e.g.
        :class:`~skentropy.EntropyClustering`. A fitted one continues its
        training.

    X : dask.array.Array of shape (n_samples, n_features)
        Training data. Blocks of columns are merged (``rechunk``), so that a
        block is a set of whole rows.

    y : dask.array.Array or array-like of shape (n_samples,), default=None
        Passed blockwise to ``partial_fit`` (used by the estimators with
        ``semi_supervised=True`` only).

    sample_weight : dask.array.Array or array-like of shape (n_samples,), \
            default=None
        Weights of the samples, passed blockwise to ``partial_fit``.

    n_passes : int, default=1
        Number of passes over the blocks.

    shuffle_blocks : bool, default=True
        Visit the blocks in a new random order in each pass.

    random_state : int, RandomState instance or None, default=None
        Determines the order of the blocks.

    Returns
    -------
    estimator : estimator instance
        The estimator, trained in place.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from skentropy import EntropyClustering
    >>> from skentropy.dask import partial_fit_blocks
    >>> X = da.from_array(np.random.default_rng(0).normal(size=(40, 2)),
    ...                   chunks=(10, -1))
    >>> clustering = partial_fit_blocks(EntropyClustering(n_clusters=2), X,
    ...                                 n_passes=2, random_state=0)
    >>> clustering.n_iter_  # one epoch per block and pass
    8
    """
    X = _row_blocks(X, "X")
    rows = X.chunks[0]
    y = _aligned_vector(y, rows, "y")
    sample_weight = _aligned_vector(sample_weight, rows, "sample_weight")
    if not (isinstance(n_passes, int | np.integer) and n_passes >= 1):
        raise ValueError(f"n_passes must be a positive integer, got {n_passes!r}.")
    random_state = check_random_state(random_state)
    for _ in range(n_passes):
        order = np.arange(X.numblocks[0])
        if shuffle_blocks:
            random_state.shuffle(order)
        for index in order:
            X_block, y_block, weight_block = dask.compute(
                X.blocks[index],
                None if y is None else y.blocks[index],
                None if sample_weight is None else sample_weight.blocks[index],
            )
            estimator.partial_fit(X_block, y_block, sample_weight=weight_block)
    return estimator


def predict(estimator, X):
    """Lazy ``estimator.predict`` over the blocks of rows of a dask array.

    Parameters
    ----------
    estimator : fitted estimator instance
        A fitted clusterer, e.g. :class:`~skentropy.EntropyClustering`.

    X : dask.array.Array of shape (n_samples, n_features)
        New data.

    Returns
    -------
    labels : dask.array.Array of shape (n_samples,)
        Cluster of each sample, chunked as the rows of X.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from skentropy import EntropyClustering
    >>> from skentropy.dask import predict
    >>> X = np.random.default_rng(0).normal(size=(40, 2))
    >>> clustering = EntropyClustering(n_clusters=2, max_iter=5,
    ...                                random_state=0).fit(X)
    >>> labels = predict(clustering, da.from_array(X, chunks=(10, -1)))
    >>> bool((labels.compute() == clustering.predict(X)).all())
    True
    """
    X = _row_blocks(X, "X")
    meta = _probe(estimator, "predict", X)
    return X.map_blocks(
        _apply,
        estimator=estimator,
        method="predict",
        drop_axis=1,
        dtype=meta.dtype,
        meta=meta[:0],
    )


def predict_proba(estimator, X):
    """Lazy ``estimator.predict_proba`` over the blocks of rows of a dask array.

    Parameters
    ----------
    estimator : fitted estimator instance
        A fitted clusterer with ``predict_proba``.

    X : dask.array.Array of shape (n_samples, n_features)
        New data.

    Returns
    -------
    probs : dask.array.Array of shape (n_samples, n_clusters)
        Soft cluster memberships, chunked as the rows of X, with one block of
        columns.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from skentropy import EntropyClustering
    >>> from skentropy.dask import predict_proba
    >>> X = np.random.default_rng(0).normal(size=(40, 2))
    >>> clustering = EntropyClustering(n_clusters=2, max_iter=5,
    ...                                random_state=0).fit(X)
    >>> probs = predict_proba(clustering, da.from_array(X, chunks=(10, -1)))
    >>> probs.shape
    (40, 2)
    >>> bool(np.allclose(probs.compute().sum(axis=1), 1.0))
    True
    """
    X = _row_blocks(X, "X")
    meta = _probe(estimator, "predict_proba", X)
    return X.map_blocks(
        _apply,
        estimator=estimator,
        method="predict_proba",
        chunks=(X.chunks[0], (meta.shape[1],)),
        dtype=meta.dtype,
        meta=meta[:0],
    )


def _apply(block, estimator, method):
    return getattr(estimator, method)(block)


def _probe(estimator, method, X):
    """The output of ``method`` on one row of zeros: its dtype and shape."""
    check_is_fitted(estimator)
    return getattr(estimator, method)(np.zeros((1, X.shape[1]), dtype=X.dtype))


def _row_blocks(X, name):
    """X as a 2-D dask array whose blocks hold whole rows."""
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{name} must be a dask.array.Array, got {type(X).__name__}; fit a "
            "numpy array or memory map with the estimator's fit or partial_fit."
        )
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got {X.ndim} dimension(s)."
        )
    if any(np.isnan(size) for size in X.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first."
        )
    return X if X.numblocks[1] == 1 else X.rechunk({1: -1})


def _aligned_vector(values, rows, name):
    """A 1-D dask array chunked as the given rows, or None."""
    if values is None:
        return None
    values = da.asarray(values)
    if values.ndim != 1 or values.shape[0] != sum(rows):
        raise ValueError(
            f"{name} must have shape ({sum(rows)},) to match X, got {values.shape}."
        )
    return values.rechunk((rows,))
