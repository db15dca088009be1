"""Cumulative test for a slow shift of a numeric distribution: a CUSUM of rank scores (an e-detector).

A window test sees a ramp only once enough of the window has moved; a cumulative test adds up the
small evidence of every bucket since the shift began, so a slow ramp is found long before a window
is full (issue 10, item 4). This is the cumulative variant, not a trend fit across windows.

Each value gets its *mid-rank score* under the reference, ``u = F(bin - 1) + p(bin) / 2`` (``F`` the
reference's cumulative bin probabilities, see :func:`rank_scores`), which is uniform-like on
``(0, 1)`` with mean exactly ``1/2`` and variance ``(1 - sum p^3) / 12`` when the current
distribution equals the reference. ``X``, a bucket's standardized score sum ``(sum u - n/2) / sd``,
moves by about ``0.98 n s`` when a normal feature moves by ``s`` standard deviations, whatever the
feature's scale or shape (no parametric assumption).

For each shift size ``d`` in ``deltas`` and each side (up, down) the detector keeps::

    L <- max(L, 0) + d * (+-X) - n * (d^2 / 2 + d * margin)

the logarithm of the CUSUM e-detector of Shin, Ramdas and Rinaldo (2022, *E-detectors: a
nonparametric framework for sequential change detection*): ``exp(d X - n d^2 / 2)`` is an e-value
of a bucket when the score is sub-Gaussian with its variance as proxy (the uniform distribution is
strictly sub-Gaussian; the mid-ranks of near-equal quantile bins are close to it, and the tests
check the false-alarm rate by simulation). An e-detector that crosses ``c`` has an average run
length of at least ``c`` buckets under no change, and ``K`` of them together at least ``c / K``
(their Shiryaev-Roberts sums minus ``K t`` form a supermartingale), so :attr:`log10_evidence`
subtracts ``log10 K``: a value ``v`` means "no change would cross this more often than once in
``10^v`` buckets".

``margin`` (per stream) covers the reference's own error: its mean score is known only to about
``1/sqrt(n_ref)`` standard deviations, and a detector tuned below that would eventually fire on a
healthy stream. A shift smaller than ``margin + d/2`` never accumulates evidence, so the smallest
``d`` is also the materiality of the test: with ``deltas = (0.1, 0.2, 0.4)`` shifts below
``0.05 sd`` plus the margin are ignored.

State: ``2 * len(deltas)`` numbers and start buckets per stream, whatever the stream's length.

Examples
--------
>>> import numpy as np
>>> u, sd = rank_scores(np.array([25, 25, 25, 25]))
>>> u.tolist(), round(sd, 4)
([0.125, 0.375, 0.625, 0.875], 0.2795)
>>> c = RankCusum(margin=np.zeros(1))
>>> c.update(np.array([0.0]), np.array([400]), bucket=0)   # a bucket right on the reference
>>> float(c.log10_evidence[0]) < 0
True
>>> for b in range(1, 4):  # then +0.3 sd per event, 400 a bucket: 0.4 * 120 - 400 * 0.08 = 16 a bucket
...     c.update(np.array([0.3 * 400]), np.array([400]), bucket=b)
>>> round(float(c.log10_evidence[0]), 1), int(c.start_bucket[0])
(20.1, 1)
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

DELTAS = (0.1, 0.2, 0.4)
"""Shift sizes (standard deviations of the rank score) the detectors are tuned for."""

NO_BUCKET = -(2**62)


def rank_scores(counts: NDArray[np.int64]) -> tuple[NDArray[np.float64], float]:
    """Mid-rank score of each bin under the reference ``counts``, and the score's standard deviation
    ``sqrt((1 - sum p^3) / 12)`` (0 when one bin holds everything)."""
    total = float(counts.sum())
    if total <= 0:
        return np.full(counts.size, 0.5), 0.0
    p = counts / total
    u = np.cumsum(p) - p / 2
    return u, math.sqrt(max(0.0, (1.0 - float(np.sum(p**3))) / 12.0))


class RankCusum:
    """Two-sided CUSUM e-detectors over ``k`` streams at once, fed one bucket at a time.

    ``update(x, n, bucket)``: ``x`` the streams' standardized score sums of the bucket, ``n`` their
    counts. Read-only properties: :attr:`log10_evidence` (per stream, the best of its detectors
    less ``log10`` of all detectors held) and :attr:`start_bucket` (where that detector last
    restarted from zero: the estimated onset)."""

    def __init__(self, margin: NDArray[np.float64], deltas: tuple[float, ...] = DELTAS) -> None:
        if not deltas or any(d <= 0 for d in deltas):
            raise ValueError("deltas must be positive")
        self.margin = np.asarray(margin, dtype=np.float64)
        self.deltas = np.asarray(deltas, dtype=np.float64)
        k = self.margin.size
        self.log_stat = np.zeros((k, 2, self.deltas.size))
        self.start = np.full((k, 2, self.deltas.size), NO_BUCKET, dtype=np.int64)
        self.samples = np.zeros((k, 2, self.deltas.size), dtype=np.int64)

    @property
    def streams(self) -> int:
        return int(self.margin.size)

    @property
    def detectors(self) -> int:
        return int(self.log_stat.size)

    def update(self, x: NDArray[np.float64], n: NDArray[np.int64], bucket: int) -> None:
        x = np.asarray(x, dtype=np.float64)
        n = np.asarray(n, dtype=np.int64)
        d = self.deltas[None, None, :]
        signed = np.stack([x, -x], axis=1)[:, :, None]  # (k, side, 1)
        step = d * signed - n[:, None, None] * (d * d / 2 + d * self.margin[:, None, None])
        restart = self.log_stat <= 0
        has = (n > 0)[:, None, None]
        self.start = np.where(restart & has, bucket, self.start)
        self.samples = np.where(restart & has, 0, self.samples) + np.where(has, n[:, None, None], 0)
        self.log_stat = np.where(has, np.maximum(self.log_stat, 0.0) + step, self.log_stat)

    def _best(self) -> NDArray[np.int64]:
        flat = self.log_stat.reshape(self.streams, -1)
        return np.argmax(flat, axis=1)

    @property
    def log10_evidence(self) -> NDArray[np.float64]:
        flat = self.log_stat.reshape(self.streams, -1)
        best = flat[np.arange(self.streams), self._best()]
        return best / math.log(10.0) - math.log10(self.detectors)

    @property
    def start_bucket(self) -> NDArray[np.int64]:
        return self.start.reshape(self.streams, -1)[np.arange(self.streams), self._best()]

    @property
    def sample_count(self) -> NDArray[np.int64]:
        """Events counted by each stream's best detector since its restart."""
        return self.samples.reshape(self.streams, -1)[np.arange(self.streams), self._best()]
