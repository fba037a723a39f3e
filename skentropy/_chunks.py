"""Blocks of rows of a large array, so that float64 copies of a block stay small."""

CHUNK_SIZE = 2**15


def row_chunks(X, chunk_size=CHUNK_SIZE):
    """Slices of consecutive rows of X holding about ``chunk_size`` entries each.

    Every slice has at least one row; together they cover the rows of X in
    order. Reading X through them keeps memory maps on disk.
    """
    rows_per_chunk = max(1, chunk_size // max(1, X.shape[1]))
    return [
        slice(start, start + rows_per_chunk)
        for start in range(0, X.shape[0], rows_per_chunk)
    ]
