"""Population stability index on two count vectors over the same bins.

Smoothing: proportions are ``(c_i / N + eps) / (1 + K * eps)`` with ``eps = PSI_EPSILON`` (1e-4), so an
empty bin on one side gives a large but finite term, identical distributions give exactly 0 and the
smoothed vectors still sum to 1.

Examples
--------
>>> round(psi([50, 50], [50, 50]), 12)
0.0
>>> psi([90, 10], [10, 90]) > 1.0
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

PSI_EPSILON = 1e-4


def smoothed_proportions(counts: ArrayLike, epsilon: float = PSI_EPSILON) -> NDArray[np.float64]:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        raise ValueError("counts must have a positive total")
    return (c / total + epsilon) / (1.0 + epsilon * c.size)


def psi(reference: ArrayLike, current: ArrayLike, epsilon: float = PSI_EPSILON) -> float:
    """``sum((q - p) * ln(q / p))`` on smoothed proportions ``p`` (reference) and ``q`` (current)."""
    p = smoothed_proportions(reference, epsilon)
    q = smoothed_proportions(current, epsilon)
    if p.shape != q.shape:
        raise ValueError("count vectors must have the same bins")
    return float(np.sum((q - p) * np.log(q / p)))
