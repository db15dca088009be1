"""Kolmogorov-Smirnov statistic on binned data: the largest gap between the two cumulative shares.

Bins must be ordered (numeric bins, under/overflow included). On the same binned data this equals
``scipy.stats.ks_2samp`` of the bin indices repeated by their counts.

Examples
--------
>>> ks_binned([1, 1, 0], [0, 1, 1])
0.5
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from monitor.stats.counts import count_pair


def ks_binned(reference: ArrayLike, current: ArrayLike) -> float:
    p, q = count_pair(reference, current)
    return float(np.max(np.abs(np.cumsum(p) / p.sum() - np.cumsum(q) / q.sum())))
