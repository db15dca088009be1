"""Mean with a normal-approximation confidence interval, from mergeable sums (n, sum, sum of squares).

Used for the mean label ``score``; the sample variance uses ``n - 1``.

Examples
--------
>>> m, lo, hi = mean_interval(4, 2.0, 1.1, 0.95)
>>> round(m, 3), round(lo, 3) < m < round(hi, 3)
(0.5, True)
"""

from __future__ import annotations

import math

from monitor.stats.wilson import z_value


def mean_interval(n: int, total: float, total_sq: float, confidence: float = 0.99) -> tuple[float, float, float]:
    """Return ``(mean, lower, upper)``; with fewer than two values the interval is unbounded."""
    if n <= 0:
        return float("nan"), float("-inf"), float("inf")
    mean = total / n
    if n < 2:
        return mean, float("-inf"), float("inf")
    var = max(0.0, (total_sq - n * mean * mean) / (n - 1))
    half = z_value(confidence) * math.sqrt(var / n)
    return mean, mean - half, mean + half
