"""Per-label scalar contributions: a label change retracts its old label and adds its new one.

Examples
--------
>>> from monitor.records import Label, LabelChange
>>> ch = LabelChange("r1", "m", 60.0, {}, {}, None, Label(True, 0.5, "human", 61.0))
>>> t, scal, slices, feats = label_contributions([ch])
>>> int(scal[0, CORRECT_SUM]), int(scal[0, SCORE_SUM])
(1, 500000000)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.records import Label, LabelChange
from monitor.stats.label_columns import LabelColumns, source_indices
from monitor.stats.layout import (
    CORRECT_N,
    CORRECT_SUM,
    FIXED_POINT,
    LABELLED,
    N_SCALARS,
    SCORE_N,
    SCORE_SQ,
    SCORE_SUM,
    SOURCE_BASE,
)


def label_contributions(
    changes: Sequence[LabelChange] | LabelColumns,
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[Mapping[str, str]], list[Mapping[str, Any]]]:
    """``(served_at, scalars (n, N_SCALARS), slices, input_features)``: one row per old/new label."""
    if isinstance(changes, LabelColumns):
        if not changes.retracts:  # first labels only (the usual batch): straight from the columns
            return changes.served_at, _scalars(changes.correct, changes.score, changes.source,
                                               np.ones(len(changes), dtype=np.int64)), changes.slices, changes.features
        changes = changes.changes
    olds = [ch for ch in changes if ch.old is not None]
    chs = [*changes, *olds]
    labels: list[Label] = [ch.new for ch in changes] + [ch.old for ch in olds]  # type: ignore[misc]
    n = len(chs)
    if n == 0:
        return np.zeros(0), np.zeros((0, N_SCALARS), dtype=np.int64), [], []
    sign = np.ones(n, dtype=np.int64)
    sign[len(changes) :] = -1
    wc = np.array([-1 if lb.was_correct is None else int(lb.was_correct) for lb in labels], dtype=np.int64)
    score = np.array([np.nan if lb.score is None else lb.score for lb in labels], dtype=np.float64)
    scal = _scalars(wc, score, source_indices([lb.source for lb in labels]), sign)
    t = np.array([ch.served_at for ch in chs], dtype=np.float64)
    return t, scal, [ch.slice for ch in chs], [ch.input_features for ch in chs]


def _scalars(
    wc: NDArray[np.int64], score: NDArray[np.float64], src: NDArray[np.int64], sign: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Each label's scalar row: ``wc`` 1/0/-1 (none), ``score`` NaN = none, ``sign`` -1 = retracted."""
    n = wc.size
    scal = np.zeros((n, N_SCALARS), dtype=np.int64)
    has_wc = wc >= 0
    has_score = np.isfinite(score)
    s = np.where(has_score, score, 0.0)
    scal[:, LABELLED] = sign
    scal[:, CORRECT_N] = sign * has_wc
    scal[:, CORRECT_SUM] = sign * (wc == 1)
    scal[:, SCORE_N] = sign * has_score
    scal[:, SCORE_SUM] = sign * np.rint(s * FIXED_POINT).astype(np.int64)
    scal[:, SCORE_SQ] = sign * np.rint(s * s * FIXED_POINT).astype(np.int64)
    scal[np.arange(n), SOURCE_BASE + src] = sign
    return scal
