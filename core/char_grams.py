"""Character n-grams of texts hashed into columns: what a word's spelling shares with another's, for a linear model.

A text is lower-cased and its runs of white space read as one space (as scikit-learn's ``char`` analyzer does), and
every run of :data:`SHORTEST` to :data:`LONGEST` characters is hashed (FNV-1a over its code points) into one of
``buckets`` columns, counted, each row scaled to unit length. The hashing runs in a compiled loop (Numba): 8-13 µs
a 1,000-character text against 162-180 for scikit-learn's ``HashingVectorizer(analyzer="char")`` with the same
n-grams, which builds each of them as a Python string.

>>> rows = char_gram_rows(["Ignore  ALL", "ignore all", "ab"], buckets=2**12)
>>> rows.shape, rows[0].nnz == rows[1].nnz > 0, rows[2].nnz
((3, 4096), True, 0)
>>> bool((rows[0] != rows[1]).nnz == 0), round(float(rows[0].multiply(rows[0]).sum()), 5)
(True, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import scipy.sparse as sparse

SHORTEST, LONGEST = 3, 5
"""The n-grams' lengths, in characters."""


def char_gram_rows(texts: Sequence[str], buckets: int) -> sparse.csr_matrix:
    """Each text's character n-grams counted in ``buckets`` hashed columns, each row of unit length (float32)."""
    encoded = [" ".join(text.lower().split()).encode("utf-32-le", "surrogatepass") for text in texts]
    starts = np.concatenate([[0], np.cumsum([len(text) // 4 for text in encoded])]).astype(np.int64)
    codes = np.frombuffer(b"".join(encoded), dtype=np.uint32).astype(np.int64)
    data, indices, indptr = _rows(codes, starts, buckets)
    return sparse.csr_matrix((data, indices, indptr), shape=(len(texts), buckets))


@numba.njit(cache=True)
def _rows(codes: np.ndarray, starts: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays of the texts whose code points are ``codes[starts[i]:starts[i + 1]]``: each n-gram's column is
    the FNV-1a hash of its code points modulo ``buckets``, each row's counts scaled to unit length."""
    counts = np.zeros(buckets, dtype=np.int32)
    size = (LONGEST - SHORTEST + 1) * len(codes)
    indices, data = np.empty(size, dtype=np.int64), np.empty(size, dtype=np.float32)
    indptr = np.zeros(len(starts), dtype=np.int64)
    found = 0
    for row in range(len(starts) - 1):
        first, end = found, starts[row + 1]
        for start in range(starts[row], end):
            state = 2166136261
            for length in range(min(LONGEST, end - start)):
                state = ((state ^ codes[start + length]) * 16777619) & 0xFFFFFFFF
                if length + 1 >= SHORTEST:
                    column = state % buckets
                    if counts[column] == 0:
                        indices[found] = column
                        found += 1
                    counts[column] += 1
        square = 0.0
        for k in range(first, found):
            square += counts[indices[k]] ** 2
        for k in range(first, found):
            data[k] = counts[indices[k]] / np.sqrt(square)
            counts[indices[k]] = 0
        indptr[row + 1] = found
    return data[:found], indices[:found], indptr
