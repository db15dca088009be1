"""Wilson score interval for a binomial proportion (e.g. accuracy from ``was_correct``).

``confidence`` is two-sided; with ``z`` the standard normal quantile of ``1 - (1 - confidence) / 2``,
the bounds are ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``. Same as
``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="wilson")``.

Examples
--------
>>> lo, hi = wilson_interval(90, 100, 0.95)
>>> round(lo, 4), round(hi, 4)
(0.8256, 0.9448)
"""

from __future__ import annotations

import math
from statistics import NormalDist


def z_value(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def wilson_interval(successes: int, trials: int, confidence: float = 0.99) -> tuple[float, float]:
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError("successes must be in [0, trials]")
    z = z_value(confidence)
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    centre = p + z2 / (2.0 * trials)
    half = z * math.sqrt(p * (1.0 - p) / trials + z2 / (4.0 * trials * trials))
    return max(0.0, (centre - half) / denom), min(1.0, (centre + half) / denom)
