"""Leading singular vectors of a small dense matrix through the eigenvectors of its smaller Gram matrix.

For the matrices the probes decompose (a few dozen rows by hundreds of columns) this takes a fraction of
``np.linalg.svd``'s time, which also computes every vector of the long side that is then thrown away.
"""

from __future__ import annotations

import numpy as np

from lamina._validation import check_choice


def leading_singular_vectors(m: np.ndarray, r: int, *, side: str = "left") -> np.ndarray:
    """The ``r`` leading left (rows-long) or right (columns-long) singular vectors of ``m``, as columns.

    Directions whose singular value is zero (below 1e-6 of the largest) are left out, so that fewer than ``r``
    columns come back when ``m`` has lower rank. Signs are arbitrary, as with any SVD.
    """
    check_choice("side", side, ("left", "right"))
    m = np.asarray(m, dtype=np.float64)
    if side == "right":
        m = m.T
    tall = m.shape[0] > m.shape[1]  # then the Gram matrix of the columns is the small one
    w, vecs = np.linalg.eigh(m.T @ m if tall else m @ m.T)
    w, vecs = w[::-1], vecs[:, ::-1]
    vecs = vecs[:, :min(int(r), int(np.sum(w > max(w[0], 0.0) * 1e-12)))]
    if not tall:
        return vecs
    u = m @ vecs  # left vectors from the right ones: m v / s
    return u / np.linalg.norm(u, axis=0, keepdims=True)
