"""Per-label scalar contributions: a label change retracts its old label and adds its new one.

Examples
--------
>>> from monitor.records import LabelChange
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

from monitor.records import LabelChange
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
    source_index,
)


def label_contributions(
    changes: Sequence[LabelChange],
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[Mapping[str, str]], list[Mapping[str, Any]]]:
    """``(served_at, scalars (n, N_SCALARS), slices, input_features)``: one row per old/new label."""
    entries = [(ch, ch.old, -1) for ch in changes if ch.old is not None]
    entries += [(ch, ch.new, 1) for ch in changes]
    n = len(entries)
    scal = np.zeros((n, N_SCALARS), dtype=np.int64)
    if n == 0:
        return np.zeros(0), scal, [], []
    sign = np.fromiter((e[2] for e in entries), dtype=np.int64, count=n)
    wc = np.fromiter(
        (-1 if e[1].was_correct is None else int(e[1].was_correct) for e in entries), dtype=np.int64, count=n
    )
    score = np.fromiter((np.nan if e[1].score is None else e[1].score for e in entries), dtype=np.float64, count=n)
    src = np.fromiter((source_index(e[1].source) for e in entries), dtype=np.int64, count=n)
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
    t = np.fromiter((e[0].served_at for e in entries), dtype=np.float64, count=n)
    return t, scal, [e[0].slice for e in entries], [e[0].input_features for e in entries]
