"""One batch of label changes as columns, read from the objects once.

The label statistics (the window's scalar sums, ADWIN, the outcome tallies, the label delays, the
failure clusters) each read a few fields of every :class:`~monitor.records.LabelChange`. Read once
into arrays, each of them is a few array operations instead of its own pass over the objects.

>>> from monitor.records import Label, LabelChange
>>> cols = LabelColumns.of([
...     LabelChange("r1", "m", 60.0, {}, {}, None, Label(True, 0.5, "human", 61.0)),
...     LabelChange("r2", "m", 62.0, {}, {}, None, Label(None, None, "robot", 90.0)),
... ])
>>> cols.correct.tolist(), cols.source.tolist(), cols.delay.tolist(), cols.first.tolist()
([1, -1], [0, 4], [1.0, 28.0], [True, True])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.records import LabelChange
from monitor.stats.layout import SOURCES, source_index

_SOURCE: dict[str | None, int] = {s: i for i, s in enumerate(SOURCES)}
_UNKNOWN = SOURCES.index("unknown")


def source_indices(sources: Sequence[Any]) -> NDArray[np.int64]:
    """Index of each label source in :data:`~monitor.stats.layout.SOURCES` (others pool as unknown)."""
    try:
        return np.array([_SOURCE.get(s, _UNKNOWN) for s in sources], dtype=np.int64)
    except TypeError:  # an unhashable source: compare by equality as source_index does
        return np.array([source_index(s) for s in sources], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class LabelColumns:
    """The fields of each change's new label that the statistics read, one entry per change."""

    changes: Sequence[LabelChange]
    served_at: NDArray[np.float64]
    correct: NDArray[np.int64]
    """``was_correct``: 1, 0, or -1 when the label has no verdict."""
    score: NDArray[np.float64]
    """NaN when the label has no score."""
    source: NDArray[np.int64]
    """Index in :data:`~monitor.stats.layout.SOURCES`."""
    first: NDArray[np.bool_]
    """The change is a prediction's first label (no old label to retract)."""
    delay: NDArray[np.float64]
    """``observed_at - served_at``."""
    slices: list[Mapping[str, str]]
    features: list[Mapping[str, Any]]

    @classmethod
    def of(cls, changes: Sequence[LabelChange]) -> LabelColumns:
        news = [ch.new for ch in changes]
        served = np.array([ch.served_at for ch in changes], dtype=np.float64)
        return cls(
            changes,
            served,
            np.array([-1 if lb.was_correct is None else int(lb.was_correct) for lb in news], dtype=np.int64),
            np.array([np.nan if lb.score is None else lb.score for lb in news], dtype=np.float64),
            source_indices([lb.source for lb in news]),
            np.array([ch.old is None for ch in changes], dtype=bool),
            np.array([lb.observed_at for lb in news], dtype=np.float64) - served,
            [ch.slice for ch in changes],
            [ch.input_features for ch in changes],
        )

    def __len__(self) -> int:
        return len(self.changes)

    @property
    def retracts(self) -> bool:
        """Some change replaces an old label (a correction): its old label is taken back."""
        return not bool(self.first.all())
