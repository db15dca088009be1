"""Jensen-Shannon distance (base 2, so it lies in [0, 1]) between two count vectors.

Same definition as ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` on the normalised counts:
the square root of the mean Kullback-Leibler divergence of each side from their midpoint.

Examples
--------
>>> jensen_shannon([1, 0], [0, 1])
1.0
>>> jensen_shannon([3, 1], [3, 1])
0.0
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.stats.counts import count_pair


def _rel_entr(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.zeros_like(a)
    pos = a > 0
    out[pos] = a[pos] * np.log(a[pos] / b[pos])
    return out


def jensen_shannon(reference: ArrayLike, current: ArrayLike, base: float = 2.0) -> float:
    p, q = count_pair(reference, current)
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2.0
    js = float(np.sum(_rel_entr(p, m)) + np.sum(_rel_entr(q, m))) / 2.0
    js /= math.log(base)
    return math.sqrt(max(js, 0.0))
