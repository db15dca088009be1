"""Adjusted p-values across the tests of one evaluation (Benjamini-Hochberg or Bonferroni).

Compare the adjusted p-value with the significance level ``alpha``: BH controls the false discovery
rate, Bonferroni the family-wise error rate.

Examples
--------
>>> [round(p, 3) for p in adjust_p_values([0.01, 0.04, 0.03], "bh")]
[0.03, 0.04, 0.04]
>>> adjust_p_values([0.01, 0.5], "bonferroni")
[0.02, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Correction = Literal["bh", "bonferroni"]


def adjust_p_values(p_values: Sequence[float], method: Correction = "bh") -> list[float]:
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    if method == "bonferroni":
        return [float(x) for x in np.minimum(p * m, 1.0)]
    if method != "bh":
        raise ValueError(f"unknown correction {method!r}")
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return [float(x) for x in out]
