"""Mini-batches of X: which rows an epoch's batches hold, how they are read.

The training loop of the shallow trainer reads X only through these: an
epoch's batches (:func:`epoch_batches`), read as tensors without copying X
(:class:`BatchReader`), on one torch thread (:func:`one_thread`). X may be a
read-only memory map: only mini-batches are ever copied.
"""

import contextlib
import itertools
import threading

import numpy as np
import torch

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
# Contiguous mini-batches need rows in random order: the analysis of variance
# of _looks_randomly_ordered tests it on this many batches of each epoch, and
# its F statistic (expectation 1 in a random order) must stay below this.
_ORDER_TEST_BATCHES = 16
_ORDER_TEST_RATIO = 1.5


def n_batches(n_samples, batch_size):
    """The number of mini-batches of an epoch, ceil(n_samples / batch_size)."""
    return -(-n_samples // batch_size)


def batch_bounds(n_samples, batch_size):
    """(start, stop) of consecutive batches of at most ``batch_size`` rows."""
    return [
        (start, min(start + batch_size, n_samples))
        for start in range(0, n_samples, batch_size)
    ]


def shuffled_batches(n_samples, batch_size, generator):
    """Row indices of one epoch's mini-batches: a random partition of the rows.

    The ``ceil(n_samples / batch_size)`` batches differ in size by at most one
    row (no small last batch). Indices are sorted within a batch, which keeps
    reads from a memory map local.
    """
    permutation = torch.randperm(n_samples, generator=generator).numpy()
    for rows in np.array_split(permutation, n_batches(n_samples, batch_size)):
        yield np.sort(rows)


def epoch_batches(X, batch_size, generator, *, contiguous=True):
    """One epoch's mini-batches of X: slices or row indices, in a random order.

    The ``ceil(n_samples / batch_size)`` batches differ in size by at most one
    row. With ``contiguous``, they are consecutive rows of X from a random
    offset (the batch that passes the end of X wraps to its start), visited
    in a random order: slices cost no copy and are read sequentially, where
    gathering random rows copies every batch (on the CPU, a quarter of the
    time of the forward and backward pass of a linear head). Contiguous
    batches are samples of the data only if its rows are in random order:
    rows sorted by class would make single-class batches, which the
    per-batch fairness term then spreads over all clusters. So they are
    used only if X has at least ``_ORDER_TEST_BATCHES`` batches (fewer are
    quick to gather, and too few for the test) and
    :func:`_looks_randomly_ordered` finds no sign of order in the first of
    them. Otherwise, and without ``contiguous``, the batches are a random
    partition of the rows (:func:`shuffled_batches`).
    """
    n_samples = X.shape[0]
    n_epoch_batches = n_batches(n_samples, batch_size)
    if contiguous and n_epoch_batches >= _ORDER_TEST_BATCHES:
        offset = int(torch.randint(n_samples, (), generator=generator))
        order = torch.randperm(n_epoch_batches, generator=generator).tolist()
        bounds = _equal_batch_bounds(n_samples, n_epoch_batches)
        batches = [_rotated_rows(*bounds[batch], offset, n_samples) for batch in order]
        if _looks_randomly_ordered(X, batches[:_ORDER_TEST_BATCHES]):
            return batches
    return list(shuffled_batches(n_samples, batch_size, generator))


def _equal_batch_bounds(n_samples, n_batches):
    """(start, stop) of n_batches consecutive batches, sizes differing by ≤ 1."""
    size, n_larger = divmod(n_samples, n_batches)
    starts = [batch * size + min(batch, n_larger) for batch in range(n_batches + 1)]
    return list(itertools.pairwise(starts))


def _n_rows(rows, n_samples):
    """Number of rows of a slice or an index array."""
    return len(range(n_samples)[rows]) if isinstance(rows, slice) else len(rows)


def _rotated_rows(start, stop, offset, n_samples):
    """Rows start..stop−1 shifted by ``offset`` modulo n_samples.

    A slice, or the indices of the rows at the end and the start of X for the
    batch that wraps around.
    """
    if start + offset >= n_samples:
        offset -= n_samples
    start, stop = start + offset, stop + offset
    if stop <= n_samples:
        return slice(start, stop)
    return np.r_[start:n_samples, : stop - n_samples]


def _looks_randomly_ordered(X, batches):
    """Whether the means of these batches of X vary as in a random row order.

    A one-way analysis of variance, pooled over the features, with halves of
    batches: each batch b is split into halves of means h₁, h₂ and n₁, n₂
    rows. In a random order of the rows, both the spread of the batch means
    m_b around their mean m, Σ_b n_b ‖m_b − m‖² / (B − 1), and the spread
    within batches, mean_b ‖h₁ − h₂‖² n₁n₂ / n_b, estimate tr Σ (Σ the
    covariance of the rows); with rows sorted or grouped (by class, source,
    time) the first exceeds the second. Their ratio, an F statistic, must
    not exceed ``_ORDER_TEST_RATIO``. Only means are taken, summed in
    float64, never squares of X, so this stays exact for features far from
    zero, and it reads each batch once. Batches of single rows are always
    fine.
    """
    sizes = np.array([_n_rows(rows, X.shape[0]) for rows in batches])
    if sizes.min() < 2:
        return True
    half_sizes = np.stack([sizes // 2, sizes - sizes // 2], axis=1)
    half_means = np.array(
        [
            [half.mean(axis=0, dtype=np.float64) for half in np.split(X[rows], [size])]
            for rows, size in zip(batches, half_sizes[:, 0], strict=True)
        ]
    )
    means = np.einsum("bh,bhf->bf", half_sizes / sizes[:, None], half_means)
    mean = sizes @ means / sizes.sum()
    between = sizes @ np.square(means - mean).sum(axis=1) / (len(batches) - 1)
    spread = np.square(half_means[:, 0] - half_means[:, 1]).sum(axis=1)
    within = np.mean(spread * half_sizes.prod(axis=1) / sizes)
    return between <= _ORDER_TEST_RATIO * within


def to_tensor(array, like):
    """(A chunk of) an array as a tensor of ``like``'s dtype and device.

    A view of the array, without a copy, where it can be one (see
    :func:`_can_view`), otherwise a copy: callers must not modify the tensor
    in place.
    """
    if _can_view(array, like):
        return torch.from_numpy(array)
    return torch.tensor(array, dtype=like.dtype, device=like.device)


def _can_view(array, like):
    """Whether a CPU tensor of ``like``'s dtype can view the array's memory.

    Only for a writable numpy array of that dtype with nonnegative strides:
    torch would warn on read-only arrays, such as memory maps, which are
    therefore copied.
    """
    return (
        like.device.type == "cpu"
        and isinstance(array, np.ndarray)
        and array.dtype == _NUMPY_DTYPES.get(like.dtype)
        and array.flags.writeable
        and min(array.strides, default=0) >= 0
    )


class BatchReader:
    """Reads mini-batches of X as tensors of ``like``'s dtype and device.

    A slice of an in-memory X of the right dtype is a view, without a copy.
    Other batches (gathered rows, read-only arrays such as memory maps,
    another dtype, a GPU) are copied into one buffer reused for every batch,
    which saves the allocation and its page faults; a batch is thus valid
    until the next one is read.
    """

    def __init__(self, X, batch_size, like):
        self.X = X
        self.device = like.device
        self.view = torch.from_numpy(X) if _can_view(X, like) else None
        n_rows = min(X.shape[0], batch_size)
        self.buffer = torch.empty((n_rows, X.shape[1]), dtype=like.dtype)

    def __call__(self, rows):
        if self.view is not None and isinstance(rows, slice):
            return self.view[rows]
        out = self.buffer[: _n_rows(rows, self.X.shape[0])]
        if self.view is not None:
            torch.index_select(self.view, 0, torch.from_numpy(rows), out=out)
        else:
            out.numpy()[...] = self.X[rows]
        return out.to(self.device)


class _OneThread:
    """Context manager: torch's operations on one CPU thread (intra-op).

    The operations of a mini-batch step are small (a 250 × 2048 by 2048 × 10
    product takes 0.3 ms): a second thread gains little on an idle machine,
    and on a busy one every parallel region waits for a descheduled thread;
    on 2 shared cores, 2 threads made an epoch 3 to 20 times slower. The
    setting is global to the process, so concurrent fits (threads of a Dask
    worker) share one count: the first saves the setting, the last restores
    it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._n_users = 0
        self._saved = None

    @contextlib.contextmanager
    def __call__(self):
        with self._lock:
            if not self._n_users:
                self._saved = torch.get_num_threads()
                torch.set_num_threads(1)
            self._n_users += 1
        try:
            yield
        finally:
            with self._lock:
                self._n_users -= 1
                if not self._n_users:
                    torch.set_num_threads(self._saved)


one_thread = _OneThread()
