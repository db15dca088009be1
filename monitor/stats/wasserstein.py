"""First Wasserstein distance between two binned distributions placed on bin representative points.

Each bin is represented by one point (``points`` ascending, e.g. bin midpoints, with the under/overflow
bins at the outer edges); the distance is the integral of ``|F_p - F_q|`` between consecutive points.
Equals ``scipy.stats.wasserstein_distance(points, points, p, q)``. Units are the feature's own.

Examples
--------
>>> wasserstein_binned([0.0, 1.0], [1, 0], [0, 1])
1.0
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def wasserstein_binned(points: ArrayLike, reference: ArrayLike, current: ArrayLike) -> float:
    x = np.asarray(points, dtype=np.float64)
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current, dtype=np.float64)
    if not (x.shape == p.shape == q.shape):
        raise ValueError("points and count vectors must have the same length")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("counts must have a positive total")
    if np.any(np.diff(x) < 0):
        raise ValueError("points must be ascending")
    gap = np.abs(np.cumsum(p) / p.sum() - np.cumsum(q) / q.sum())[:-1]
    return float(np.sum(gap * np.diff(x)))
