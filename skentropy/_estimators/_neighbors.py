"""The k nearest neighbours of every row of X, for neighbour views.

:func:`nearest_neighbors` finds, for each row x_i of X, the k rows nearest
to it in Euclidean distance, itself excluded. The softmax estimators see X
through z = (x − x̄)/s with one scale s for all features
(:func:`~skentropy._estimators._heads.input_standardization`), so the
Euclidean neighbours of X are those of z: the neighbours are mined in the
geometry that the heads work in. (Cosine neighbours are those of the rows
scaled to unit norm, e.g. by :func:`sklearn.preprocessing.normalize`.)

Three ways to find them (``algorithm``):

- ``"exact"``: blocks of rows of X against blocks of all of X in torch,
  keeping a running top-k per row, so that no n × n matrix is ever held:
  memory O(n·k) for the result plus one block of distances; time O(n² d).
  Memory maps are read block by block, never copied whole;
- ``"tree"``: :class:`sklearn.neighbors.NearestNeighbors` (a k-d tree or a
  ball tree on few features), exact, time about O(n log n) on few
  features; it holds a copy of X;
- ``"hnsw"``: an approximate HNSW graph index of faiss
  (``faiss.IndexHNSWFlat``, optional, ``pip install faiss-cpu``), time about
  O(n log n) on many features; it holds a float32 copy of X and the graph.

``"auto"`` is exact up to ``EXACT_MAX_SAMPLES`` rows (50,000: 10,000 rows
of 1,280 features take about 4 s on one CPU core, 50,000 rows about 90 s,
comparable to the fit itself), and beyond that a tree on at most
``TREE_MAX_FEATURES`` features, else HNSW when faiss is importable, else
exact with a warning about its time.
"""

import math
import warnings

import numpy as np
import torch

from skentropy._torch_utils import torch_dtype

EXACT_MAX_SAMPLES = 50_000
TREE_MAX_FEATURES = 15
ALGORITHMS = ("auto", "exact", "tree", "hnsw")
# Entries of one block of squared distances of the exact search: 2¹² × 2¹²
# (128 MiB in float64, 64 MiB in float32) at most.
_BLOCK_ROWS = 4096


def nearest_neighbors(
    X, n_neighbors, *, candidates=None, algorithm="auto", device="cpu"
):
    """The ``n_neighbors`` nearest rows of each row of X, itself excluded.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float32 or float64 rows, e.g. a read-only memory map.

    n_neighbors : int
        The number k of neighbours of each row, at least 1 and fewer than the
        number of candidates.

    candidates : ndarray of shape (n_samples,) of bool, default=None
        The rows that may be neighbours (e.g. those of positive weight);
        ``None`` means all. Every row, candidate or not, gets k neighbours
        among the candidates other than itself.

    algorithm : {"auto", "exact", "tree", "hnsw"}, default="auto"
        How to find them; see the module's description.

    device : str or torch.device, default="cpu"
        Where the exact search computes its distances.

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), int64
        Row i lists the indices in X of the neighbours of row i, nearest
        first.

    distances : ndarray of shape (n_samples, n_neighbors)
        Their Euclidean distances to row i, in X's dtype.
    """
    n_samples, n_features = X.shape
    if candidates is None:
        candidates = np.ones(n_samples, dtype=bool)
    check_n_neighbors(n_neighbors, int(np.count_nonzero(candidates)))
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}.")
    if algorithm == "auto":
        algorithm = _auto_algorithm(n_samples, n_features)
    if algorithm == "exact":
        return _exact_neighbors(X, n_neighbors, candidates, torch.device(device))
    return _indexed_neighbors(X, n_neighbors, candidates, algorithm)


def check_n_neighbors(n_neighbors, n_candidates):
    """Raise a ValueError unless 1 ≤ ``n_neighbors`` < ``n_candidates``.

    ``n_candidates`` is the number of samples that may be neighbours: those
    of positive weight in the data of ``fit``, or in the chunk of
    ``partial_fit``, which mines neighbours within its chunk.
    """
    if n_neighbors < 1:
        raise ValueError(
            f"n_neighbors={n_neighbors} must be at least 1 (or None: no "
            "neighbour views)."
        )
    if n_neighbors >= n_candidates:
        raise ValueError(
            f"n_neighbors={n_neighbors} must be smaller than the number of "
            f"samples, {n_candidates} (of positive weight; for partial_fit, "
            "in the chunk, within which neighbours are mined): each sample "
            "needs n_neighbors neighbours other than itself."
        )


def _auto_algorithm(n_samples, n_features):
    """The algorithm of ``"auto"`` for X of this shape (see the module)."""
    if n_samples <= EXACT_MAX_SAMPLES:
        return "exact"
    if n_features <= TREE_MAX_FEATURES:
        return "tree"
    if _faiss() is not None:
        return "hnsw"
    warnings.warn(
        f"Exact nearest neighbours of {n_samples} samples of {n_features} "
        "features: the time grows as n_samples² (about 90 s for 50,000 samples "
        "of 1,280 features on one CPU core). Install faiss-cpu for an "
        "approximate index that scales.",
        UserWarning,
        stacklevel=4,
    )
    return "exact"


def _faiss():
    """The faiss module, or None when it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


@torch.no_grad()
def _exact_neighbors(X, n_neighbors, candidates, device):
    """Exact search: blocks of rows against blocks of X, with a running top-k.

    For a block of query rows Q and a block of rows C of X, the squared
    distances are ‖q‖² + ‖c‖² − 2 q·c on rows centered at the mean of X
    (centering keeps the cancellation of this form small); the k smallest
    of those and of the best k so far are kept. Every block of rows is read
    from X once per block of queries, so that memory holds two blocks, one
    block of distances and the result.
    """
    n_samples = X.shape[0]
    dtype = torch_dtype(X.dtype)
    bounds = [
        (start, min(start + _BLOCK_ROWS, n_samples))
        for start in range(0, n_samples, _BLOCK_ROWS)
    ]
    center = torch.as_tensor(
        sum(X[start:stop].sum(axis=0, dtype=np.float64) for start, stop in bounds)
        / n_samples,
        dtype=dtype,
        device=device,
    )

    def block(start, stop):
        rows = torch.tensor(X[start:stop], dtype=dtype, device=device) - center
        return rows, (rows * rows).sum(dim=1)

    excluded = torch.as_tensor(~candidates, device=device)
    indices = np.empty((n_samples, n_neighbors), dtype=np.int64)
    distances = np.empty((n_samples, n_neighbors), dtype=X.dtype)
    for query_start, query_stop in bounds:
        queries, query_norms = block(query_start, query_stop)
        n_queries = query_stop - query_start
        shape = (n_queries, n_neighbors)
        best = torch.full(shape, math.inf, dtype=dtype, device=device)
        best_index = torch.zeros(shape, dtype=torch.int64, device=device)
        for start, stop in bounds:
            rows, norms = block(start, stop)
            squared = torch.addmm(
                query_norms[:, None] + norms[None, :], queries, rows.T, alpha=-2
            )
            squared[:, excluded[start:stop]] = math.inf
            if start == query_start:  # a row is not its own neighbour
                squared.fill_diagonal_(math.inf)
            index = torch.arange(start, stop, device=device).expand(n_queries, -1)
            best, order = torch.topk(
                torch.cat([best, squared], dim=1), n_neighbors, largest=False
            )
            best_index = torch.gather(torch.cat([best_index, index], dim=1), 1, order)
        indices[query_start:query_stop] = best_index.cpu().numpy()
        distances[query_start:query_stop] = best.clamp(min=0).sqrt().cpu().numpy()
    return indices, distances


def _indexed_neighbors(X, n_neighbors, candidates, algorithm):
    """Search through an index of the candidate rows: a tree or HNSW.

    Each row asks the index for k + 1 rows, which include it when it is a
    candidate; then the row itself (or, if the index missed it, the last
    row) is dropped.
    """
    pool = np.flatnonzero(candidates)
    if algorithm == "tree":
        from sklearn.neighbors import NearestNeighbors

        index = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(X[pool])
        distances, found = index.kneighbors(X)
    else:
        distances, found = _hnsw_search(X, pool, n_neighbors + 1)
    found = pool[found]
    is_self = found == np.arange(X.shape[0])[:, None]
    dropped = np.where(is_self.any(axis=1), is_self.argmax(axis=1), n_neighbors)
    keep = np.arange(n_neighbors + 1) != dropped[:, None]
    shape = (X.shape[0], n_neighbors)
    return (
        found[keep].reshape(shape).astype(np.int64),
        distances[keep].reshape(shape).astype(X.dtype),
    )


def _hnsw_search(X, pool, n_neighbors, batch_rows=65_536):
    """(distances, positions in ``pool``) of the nearest rows by faiss HNSW.

    32 links per node, efConstruction 80 and efSearch max(64, 2k): recall of
    the true k nearest above 0.95 on image features in our tests. Queries run
    in batches so that their copies stay small.
    """
    faiss = _faiss()
    if faiss is None:
        raise ImportError(
            "algorithm='hnsw' needs faiss: pip install faiss-cpu (or the "
            "'neighbors' extra of skentropy)."
        )
    index = faiss.IndexHNSWFlat(X.shape[1], 32)
    index.hnsw.efConstruction = 80
    for start in range(0, len(pool), batch_rows):
        index.add(np.ascontiguousarray(X[pool[start : start + batch_rows]], np.float32))
    index.hnsw.efSearch = max(64, 2 * n_neighbors)
    distances, found = [], []
    for start in range(0, X.shape[0], batch_rows):
        queries = np.ascontiguousarray(X[start : start + batch_rows], np.float32)
        squared, positions = index.search(queries, n_neighbors)
        distances.append(np.sqrt(np.maximum(squared, 0)))
        found.append(positions)
    distances, found = np.concatenate(distances), np.concatenate(found)
    missing = found < 0  # fewer results than asked: repeat the nearest
    found[missing] = np.broadcast_to(found[:, :1], found.shape)[missing]
    distances[missing] = np.broadcast_to(distances[:, :1], found.shape)[missing]
    return distances, found
