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


def _row(label: Label, sign: int) -> list[int]:
    row = [0] * N_SCALARS
    row[LABELLED] = sign
    if label.was_correct is not None:
        row[CORRECT_N] = sign
        row[CORRECT_SUM] = sign * int(bool(label.was_correct))
    if label.score is not None:
        s = float(label.score)
        row[SCORE_N] = sign
        row[SCORE_SUM] = sign * round(s * FIXED_POINT)
        row[SCORE_SQ] = sign * round(s * s * FIXED_POINT)
    row[SOURCE_BASE + source_index(label.source)] = sign
    return row


def label_contributions(
    changes: Sequence[LabelChange],
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[Mapping[str, str]], list[Mapping[str, Any]]]:
    """``(served_at, scalars (n, N_SCALARS), slices, input_features)``: one row per old/new label."""
    t: list[float] = []
    rows: list[list[int]] = []
    slices: list[Mapping[str, str]] = []
    feats: list[Mapping[str, Any]] = []
    for ch in changes:
        for label, sign in ((ch.old, -1), (ch.new, 1)):
            if label is None:
                continue
            t.append(ch.served_at)
            rows.append(_row(label, sign))
            slices.append(ch.slice)
            feats.append(ch.input_features)
    scal = np.asarray(rows, dtype=np.int64).reshape(len(rows), N_SCALARS)
    return np.asarray(t, dtype=np.float64), scal, slices, feats
