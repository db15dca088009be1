"""Chi-square test of homogeneity on the 2 x K table (reference counts, current counts).

All-zero columns are dropped; no continuity correction. Equals
``scipy.stats.chi2_contingency([reference, current], correction=False)`` on the kept columns.
With fewer than two kept columns there is nothing to test: statistic 0, p-value 1.

Examples
--------
>>> stat, p = chi_square([10, 10], [10, 10])
>>> stat, p
(0.0, 1.0)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import chdtrc


def chi_square(reference: ArrayLike, current: ArrayLike) -> tuple[float, float]:
    """Return ``(statistic, p_value)``."""
    table = np.vstack([np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)])
    if table.shape[0] != 2:
        raise ValueError("count vectors must have the same bins")
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    rows = table.sum(axis=1)
    if np.any(rows <= 0):
        raise ValueError("counts must have a positive total")
    expected = np.outer(rows, table.sum(axis=0)) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, float(chdtrc(table.shape[1] - 1, stat))
