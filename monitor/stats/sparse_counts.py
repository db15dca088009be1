"""Counts at a few cells of a long flat vector: one bucket's quantile-sketch counts.

A sketched feature has ~1,600 log-spaced counters (1% relative accuracy), so a model with 20
numeric features and 5 protected slice values has ~140,000 sketch counters per bucket, and a ring
of 70 buckets held them densely in 78 MB whether or not an event touched them. A bucket of a few
hundred events touches a few thousand. :class:`SparseCounts` keeps only what was added: each batch
as its (cells, counts), appended, and every :data:`MERGE_AFTER` batches merged into one sorted set
of unique cells (one ``bincount``), so an add costs no sort and memory stays bounded by the dense
vector's size plus a few batches.

>>> c = SparseCounts(14)
>>> c.add(np.array([5, 9]), np.array([1, 2]))
>>> c.add(np.array([2, 9, 12]), np.array([4, 1, 1]))
>>> total = np.zeros(14, dtype=np.int64)
>>> c.add_into(total, 1)
>>> total.tolist() == c.dense().tolist() == [0, 0, 4, 0, 0, 1, 0, 0, 0, 3, 0, 0, 1, 0]
True
>>> c.merge(); c.cells.tolist(), c.counts.tolist()
([2, 5, 9, 12], [4, 1, 3, 1])
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

MERGE_AFTER = 16
"""Batches appended before they are merged into the sorted unique cells."""

_NONE = np.zeros(0, dtype=np.int64)
_NONE.setflags(write=False)


class SparseCounts:
    """Counts of a flat vector of ``size`` cells: sorted unique :attr:`cells` with their
    :attr:`counts` (int32 where they fit), plus the batches added since the last merge."""

    __slots__ = ("_pending", "cells", "counts", "size")

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.cells: NDArray[np.signedinteger[Any]] = _NONE
        self.counts: NDArray[np.signedinteger[Any]] = _NONE
        self._pending: list[tuple[NDArray[np.signedinteger[Any]], NDArray[np.signedinteger[Any]]]] = []

    def __len__(self) -> int:
        """Cells held, a cell of two unmerged batches twice."""
        return int(self.cells.size) + sum(c.size for c, _ in self._pending)

    def add(self, cells: NDArray[np.int64], counts: NDArray[np.int64]) -> None:
        """Add ``counts`` at ``cells`` (unique; the arrays may be kept: do not change them after)."""
        if cells.size == 0:
            return
        if self.size < 2**31 and counts.size and int(counts.max()) < 2**31:  # held as int32: half the bytes
            cells, counts = cells.astype(np.int32), counts.astype(np.int32)
        self._pending.append((cells, counts))
        if len(self._pending) >= MERGE_AFTER:
            self.merge()

    def merge(self) -> None:
        """Fold the batches added since the last merge into the sorted unique cells."""
        if self._pending:
            self.cells, self.counts = self._merged()
            self._pending = []

    def _merged(self) -> tuple[NDArray[np.signedinteger[Any]], NDArray[np.signedinteger[Any]]]:
        """The sorted unique cells and their counts of everything held (changes nothing)."""
        parts = [(self.cells, self.counts), *self._pending]
        cells = np.concatenate([c for c, _ in parts])
        counts = np.concatenate([k for _, k in parts])
        if cells.size * 8 < self.size:  # few cells: sort them
            uniq, inv = np.unique(cells, return_inverse=True)
            summed = np.zeros(uniq.size, dtype=np.int64)
            np.add.at(summed, inv, counts)
        else:  # many: count into the dense vector (exact: counts stay far below 2**53)
            dense = np.rint(np.bincount(cells, weights=counts, minlength=self.size)).astype(np.int64)
            uniq = np.flatnonzero(dense)
            summed = dense[uniq]
        # held as int32 (half the bytes): a cell index is below ``size``, and a bucket's count in one
        # cell stays far below 2**31 (int64 where it would not)
        small = self.size < 2**31 and (summed.size == 0 or int(summed.max()) < 2**31)
        return uniq.astype(np.int32 if self.size < 2**31 else np.int64), summed.astype(np.int32 if small else np.int64)

    def add_into(self, target: NDArray[np.int64], sign: int) -> None:
        """``target`` (flat, :attr:`size` long) += ``sign`` x these counts."""
        for cells, counts in ((self.cells, self.counts), *self._pending):
            if cells.size:
                target[cells] += counts if sign > 0 else -counts

    def dense(self) -> NDArray[np.int64]:
        out = np.zeros(self.size, dtype=np.int64)
        self.add_into(out, 1)
        return out

    def __getstate__(self) -> dict[str, Any]:
        cells, counts = self._merged() if self._pending else (self.cells, self.counts)
        return {"size": self.size, "cells": cells, "counts": counts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size, self.cells, self.counts = state["size"], state["cells"], state["counts"]
        self._pending = []
