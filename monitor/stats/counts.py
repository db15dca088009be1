"""Validation shared by the divergences: two count vectors over the same bins, each with a positive total.

Examples
--------
>>> p, q = count_pair([1, 3], [2, 2])
>>> p.tolist(), q.tolist()
([1.0, 3.0], [2.0, 2.0])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def count_pair(reference: ArrayLike, current: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Both vectors as float arrays; ``ValueError`` when the bins differ or a total is not positive."""
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError("count vectors must have the same bins")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("counts must have a positive total")
    return p, q
