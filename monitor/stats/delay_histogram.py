"""Label delay (``observed_at - served_at``) as a fixed log-spaced histogram: constant memory,
mergeable, quantiles within one bin (about 17% relative) of the exact ones.

Bins: ``[0, 1 s)``, then 96 log-spaced bins from 1 s to 30 days, then ``>= 30 days``. A negative
delay (a label stamped before its prediction) counts in the first bin.

Examples
--------
>>> h = DelayHistogram()
>>> h.update([30.0] * 50 + [3600.0] * 50)
>>> h.count, round(h.quantile(0.5)), round(h.quantile(0.99))
(100, 34, 4052)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

MAX_S = 30 * 86400.0
EDGES = np.concatenate([[0.0], np.geomspace(1.0, MAX_S, 97)])
"""Bin i holds delays in ``[EDGES[i], EDGES[i + 1])``; the last bin everything from 30 days on."""


class DelayHistogram:
    """Counts of label delays per bin (``update``), with :meth:`quantile` and :attr:`count`."""

    def __init__(self) -> None:
        self.counts: NDArray[np.int64] = np.zeros(EDGES.size, dtype=np.int64)

    def update(self, delays: Sequence[float] | NDArray[np.float64]) -> None:
        d = np.asarray(delays, dtype=np.float64)
        if d.size == 0:
            return
        idx = np.clip(np.searchsorted(EDGES, d, side="right") - 1, 0, EDGES.size - 1)
        self.counts += np.bincount(idx, minlength=EDGES.size)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float:
        """The upper edge of the bin holding the ``q`` quantile (NaN when empty): never below the
        exact quantile, at most one bin above it."""
        if not 0.0 <= q <= 1.0:
            raise ValueError("q must be in [0, 1]")
        n = self.count
        if n == 0:
            return float("nan")
        i = int(np.searchsorted(np.cumsum(self.counts), max(1.0, q * n), side="left"))
        return float(EDGES[i + 1]) if i + 1 < EDGES.size else MAX_S
