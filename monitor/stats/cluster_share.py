"""Is one failure cluster's share of the labelled failures rising? (issue 10, item 6)

A stream's failures (first labels with ``was_correct = false`` that name a ``failure_cluster``) are
counted per cluster in the recent minutes (a ring of one-minute buckets by the label's time) and in
everything before them (the history, which the ring's expired buckets join). For each cluster seen
recently, the share among recent failures is compared with its share in the history by Fisher's
exact test, one-sided ("greater"): ``p = P(X >= k)`` for ``X`` hypergeometric with the two periods'
totals. A cluster's own rise is what the incident runbook starts from ("a spike in a
failure_cluster"), also when the overall failure rate has not moved yet.

The vocabulary is bounded: the first ``max_clusters`` names seen get their own counters, later
ones pool as ``"other"``, and names are cut at ``MAX_NAME`` characters. State:
``(recent_buckets + 1) x (max_clusters + 1)`` counters.

Examples
--------
>>> c = ClusterShares(recent_buckets=2, bucket_seconds=60.0, max_clusters=4)
>>> c.update(["refusal"] * 90 + ["timeout"] * 10, [0.0] * 100)      # minute 0
>>> c.update(["refusal"] * 10 + ["timeout"] * 30, [600.0] * 40)     # minute 10: timeouts spike
>>> rows = {r.name: r for r in c.shares(now=610.0)}
>>> r = rows["timeout"]
>>> (r.recent, r.recent_total, r.history, r.history_total), round(r.delta, 2), r.p_value < 1e-10
((30, 40, 10, 100), 0.65, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import hypergeom

OTHER = "other"
MAX_NAME = 64  # characters of a cluster name kept (names become metric label values)
EMPTY = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class ClusterShare:
    name: str
    recent: int  # failures of this cluster in the recent buckets
    recent_total: int
    history: int
    history_total: int
    delta: float  # recent share - history share
    p_value: float  # Fisher's exact, one-sided: the recent share is greater


class ClusterShares:
    """Failure-cluster counts of one stream: the recent buckets and the history before them."""

    def __init__(self, recent_buckets: int = 15, bucket_seconds: float = 60.0, max_clusters: int = 20) -> None:
        if recent_buckets < 1 or bucket_seconds <= 0 or max_clusters < 1:
            raise ValueError("recent_buckets >= 1, bucket_seconds > 0 and max_clusters >= 1 required")
        self.bucket_seconds = float(bucket_seconds)
        self.max_clusters = int(max_clusters)
        self.names: list[str] = []
        self.recent = np.zeros((recent_buckets, max_clusters + 1), dtype=np.int64)
        self.slot_bucket = np.full(recent_buckets, EMPTY, dtype=np.int64)
        self.history = np.zeros(max_clusters + 1, dtype=np.int64)

    @property
    def recent_seconds(self) -> float:
        return self.recent.shape[0] * self.bucket_seconds

    def _index(self, name: str) -> int:
        name = name[:MAX_NAME]
        try:
            return self.names.index(name)
        except ValueError:
            if len(self.names) < self.max_clusters:
                self.names.append(name)
                return len(self.names) - 1
            return self.max_clusters

    def _expire(self, slot: int) -> None:
        if self.slot_bucket[slot] != EMPTY:
            self.history += self.recent[slot]
            self.recent[slot] = 0
            self.slot_bucket[slot] = EMPTY

    def update(self, clusters: Sequence[str], times: Sequence[float]) -> None:
        """Count failures: their cluster names and label times."""
        ring = self.recent.shape[0]
        for name, t in zip(clusters, times, strict=True):
            b = math.floor(t / self.bucket_seconds)
            slot = b % ring
            held = int(self.slot_bucket[slot])
            i = self._index(name)
            if held == b:
                self.recent[slot, i] += 1
            elif held == EMPTY or held < b:
                self._expire(slot)
                self.slot_bucket[slot] = b
                self.recent[slot, i] += 1
            else:  # older than the ring holds: history
                self.history[i] += 1

    def roll(self, now: float) -> None:
        """Move buckets that left the recent period at ``now`` into the history."""
        cur = math.floor(now / self.bucket_seconds)
        ring = self.recent.shape[0]
        for slot in np.flatnonzero((self.slot_bucket != EMPTY) & (self.slot_bucket <= cur - ring)):
            self._expire(int(slot))

    def shares(self, now: float) -> list[ClusterShare]:
        """Every cluster with recent failures, tested against its history share (after :meth:`roll`)."""
        self.roll(now)
        cur = math.floor(now / self.bucket_seconds)
        live = (self.slot_bucket != EMPTY) & (self.slot_bucket <= cur)
        recent: NDArray[np.int64] = self.recent[live].sum(axis=0)
        n, total = int(recent.sum()), int(self.history.sum())
        if n == 0 or total == 0:
            return []
        idx = np.flatnonzero(recent)
        k, h = recent[idx], self.history[idx]
        # Fisher's exact test, one-sided: P(X >= k), X ~ Hypergeom(population n + total, successes k + h, draws n)
        p = hypergeom.sf(k - 1, n + total, k + h, n)
        names = [*self.names, OTHER]
        return [
            ClusterShare(names[i], int(ki), n, int(hi), total, ki / n - hi / total, float(min(1.0, max(0.0, pi))))
            for i, ki, hi, pi in zip(idx.tolist(), k.tolist(), h.tolist(), p.tolist(), strict=True)
        ]
