"""Mergeable quantile sketch with relative accuracy (DDSketch-style logarithmic buckets).

A value ``x != 0`` goes to key ``ceil(log_gamma |x|)`` with ``gamma = (1 + a) / (1 - a)``; each key's
representative ``2 gamma^k / (gamma + 1)`` is within relative error ``a`` of every value in it. Keys live
in a fixed range ``[k_lo, k_hi]`` chosen from the reference (one decade of margin either side, at
most ``max_keys`` keys): values outside are clamped into the end keys, so memory is fixed and two
sketches with the same spec merge by adding their count arrays. Zero has its own bucket; negative
values use a mirrored store when the reference had any.

Examples
--------
>>> import numpy as np
>>> spec = SketchSpec.from_values(np.arange(1.0, 1001.0), relative_accuracy=0.01)
>>> counts = spec.counts(np.arange(1.0, 1001.0))
>>> abs(spec.quantile(counts, 0.5) - 500) <= 0.01 * 500
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

MAX_KEYS = 1024


@dataclass(frozen=True, slots=True)
class SketchSpec:
    relative_accuracy: float
    k_lo: int
    k_hi: int
    negative: bool

    @property
    def gamma(self) -> float:
        a = self.relative_accuracy
        return (1.0 + a) / (1.0 - a)

    @property
    def keys(self) -> int:
        return self.k_hi - self.k_lo + 1

    @property
    def size(self) -> int:
        """Number of counters: the positive store, the zero bucket and (optionally) the negative store."""
        return self.keys * (2 if self.negative else 1) + 1

    @property
    def zero_index(self) -> int:
        return self.keys if self.negative else 0

    @classmethod
    def from_values(
        cls, values: NDArray[np.float64], relative_accuracy: float = 0.01, max_keys: int = MAX_KEYS
    ) -> SketchSpec:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError("relative_accuracy must be in (0, 1)")
        x = np.asarray(values, dtype=np.float64)
        x = np.abs(x[np.isfinite(x) & (x != 0)])
        log_gamma = math.log((1.0 + relative_accuracy) / (1.0 - relative_accuracy))
        margin = math.ceil(math.log(10.0) / log_gamma)
        if x.size == 0:
            lo, hi = -margin, margin
        else:
            lo = math.ceil(math.log(float(x.min())) / log_gamma) - margin
            hi = math.ceil(math.log(float(x.max())) / log_gamma) + margin
        lo = max(lo, hi - max_keys + 1)
        negative = bool(np.any(np.asarray(values, dtype=np.float64) < 0))
        return cls(relative_accuracy, int(lo), int(hi), negative)

    def index(self, values: NDArray[np.float64]) -> NDArray[np.int64]:
        """Counter index of each finite value (ascending in value); NaN gets -1. Vectorised."""
        x = np.asarray(values, dtype=np.float64)
        out = np.full(x.shape, -1, dtype=np.int64)
        finite = np.isfinite(x)
        ax = np.abs(np.where(finite, x, 1.0))
        with np.errstate(divide="ignore"):
            k = np.ceil(np.log(np.where(ax > 0, ax, 1.0)) / math.log(self.gamma))
        k = np.clip(k, self.k_lo, self.k_hi).astype(np.int64)
        zero = self.zero_index
        pos = finite & (x > 0)
        out[pos] = zero + 1 + (k[pos] - self.k_lo)
        out[finite & (x == 0)] = zero
        neg = finite & (x < 0)
        # without a negative store, negative values are clamped into the zero bucket
        out[neg] = (self.k_hi - k[neg]) if self.negative else zero
        return out

    def counts(self, values: NDArray[np.float64]) -> NDArray[np.int64]:
        idx = self.index(values)
        return np.bincount(idx[idx >= 0], minlength=self.size).astype(np.int64)

    def representatives(self) -> NDArray[np.float64]:
        return _representatives(self)

    def quantile(self, counts: NDArray[np.int64], q: float) -> float:
        """The value of rank ``floor(q * (n - 1))`` (numpy's ``method="lower"``), within the accuracy."""
        return self.quantiles(counts, (q,))[0]

    def quantiles(self, counts: NDArray[np.int64], qs: tuple[float, ...]) -> list[float]:
        cum = np.cumsum(np.asarray(counts))
        n = int(cum[-1]) if cum.size else 0
        if n == 0:
            return [float("nan")] * len(qs)
        ranks = [math.floor(q * (n - 1)) for q in qs]
        idx = np.searchsorted(cum, ranks, side="right")
        return [float(x) for x in _representatives(self)[idx]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "relative_accuracy": self.relative_accuracy,
            "k_lo": self.k_lo,
            "k_hi": self.k_hi,
            "negative": self.negative,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SketchSpec:
        return cls(float(d["relative_accuracy"]), int(d["k_lo"]), int(d["k_hi"]), bool(d["negative"]))


def sketch_indices(specs: Sequence[SketchSpec], x: NDArray[np.float64]) -> NDArray[np.int64]:
    """``specs[j].index(x[j])`` for every row of ``x``: the same element-wise operations, with each
    spec's constants broadcast along its row, so a batch costs one pass instead of one per feature."""
    return SketchIndexer(specs).indices(x)


class SketchIndexer:
    """:func:`sketch_indices` for a fixed sequence of sketch specs, their constants made once."""

    def __init__(self, specs: Sequence[SketchSpec]) -> None:
        def per_row(values: list[Any]) -> NDArray[Any]:
            return np.array(values)[:, None]

        self.k_lo = per_row([s.k_lo for s in specs])
        self.k_hi = per_row([s.k_hi for s in specs])
        self.zero = per_row([s.zero_index for s in specs])
        self.negative = per_row([s.negative for s in specs])
        self.log_gamma = per_row([math.log(s.gamma) for s in specs])
        self.positive_base = self.zero + 1 - self.k_lo

    def indices(self, x: NDArray[np.float64]) -> NDArray[np.int64]:
        finite = np.isfinite(x)
        ax = np.abs(np.where(finite, x, 1.0))
        with np.errstate(divide="ignore"):
            k = np.ceil(np.log(np.where(ax > 0, ax, 1.0)) / self.log_gamma)
        k = np.clip(k, self.k_lo, self.k_hi).astype(np.int64)
        # without a negative store, negative values are clamped into the zero bucket (as in ``index``)
        out = np.where(x > 0, self.positive_base + k, np.where((x < 0) & self.negative, self.k_hi - k, self.zero))
        out[~finite] = -1
        return out


@lru_cache(maxsize=4096)
def _representatives(spec: SketchSpec) -> NDArray[np.float64]:
    keys = np.arange(spec.k_lo, spec.k_hi + 1, dtype=np.float64)
    pos = 2.0 * np.power(spec.gamma, keys) / (spec.gamma + 1.0)
    parts = [-pos[::-1]] if spec.negative else []
    parts += [np.zeros(1), pos]
    out = np.concatenate(parts)
    out.setflags(write=False)
    return out


def segment_quantiles(
    counts: NDArray[np.int64], starts: NDArray[np.int64], sizes: NDArray[np.int64], qs: Sequence[float]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """:meth:`SketchSpec.quantiles` of every sketch of every row at once: ``counts`` is ``(rows,
    width)``, the sketches side by side (``starts``, ``sizes``). Returns the totals ``(rows,
    sketches)`` and the column of each quantile's counter ``(rows, sketches, len(qs))`` (read the
    value from the concatenated representatives; meaningless where the total is 0).

    >>> spec = SketchSpec(0.01, -5, 5, False)
    >>> c = spec.counts(np.array([1.0, 2.0, 3.0, 50.0]))
    >>> n, col = segment_quantiles(c[None, :], np.array([0]), np.array([spec.size]), (0.5, 0.99))
    >>> [float(spec.representatives()[i]) for i in col[0, 0]] == spec.quantiles(c, (0.5, 0.99))
    True
    """
    c = np.asarray(counts, dtype=np.int64)
    rows, k = c.shape[0], len(sizes)
    if k == 0:
        return np.zeros((rows, 0), np.int64), np.zeros((rows, 0, len(qs)), np.int64)
    cum = np.cumsum(c, axis=1)  # non-decreasing along the whole row, across the sketches
    base = np.where(starts > 0, cum[:, np.maximum(starts - 1, 0)], 0)
    n = np.add.reduceat(c, starts, axis=1)
    ranks = np.floor(np.asarray(qs, dtype=np.float64)[None, None, :] * (n[:, :, None] - 1)).astype(np.int64)
    # searchsorted(local cumulative counts, rank, side="right") within a sketch is the first counter
    # whose row-wide cumulative count exceeds base + rank: it lies inside that sketch (rank < n)
    targets = base[:, :, None] + ranks
    idx = np.stack([np.searchsorted(cum[r], targets[r].ravel(), side="right") for r in range(rows)])
    return n, idx.reshape(rows, k, len(qs))
