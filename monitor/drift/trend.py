"""Slow drift of every numeric input feature and of the confidence, per (model, slice): the rank
CUSUM of :mod:`monitor.stats.rank_cusum` fed with the window's settled buckets (signal ``input`` or
``output``, statistic ``rank_cusum``).

A bucket is read once, when it has *settled*: ``settle_s`` after its end (events of a bucket that
arrive later still count in the windows, not here). The tracker reads the buckets from the window
itself, so it holds no copy of the data; its state is the detectors (``2 x 3`` numbers per feature
and slice) and the last bucket read. After a rebuild from ``inference_log`` (a restart without a
checkpoint, a takeover) it starts from the oldest bucket the window holds.

The reference of each slice is the slice's own when it has ``min_samples`` events, else the
aggregate's (as the window tests do). Values are ``log10`` of the model's e-detector less
``log10`` of its number of detectors: ``v`` means no change would reach it more often than once
in ``10^v`` buckets of this model.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from monitor.snapshot import AGGREGATE, SignalValue, slice_label
from monitor.stats.layout import Layout
from monitor.stats.profile import ReferenceProfile, SliceCounts
from monitor.stats.rank_cusum import RankCusum, rank_scores
from monitor.stats.window import ModelWindow

MARGIN_Z = 3.0
"""The reference's error allowance, in standard errors of its mean score (``MARGIN_Z / sqrt(n_ref)``)."""


def _counts(ref: SliceCounts, name: str, output_block: bool) -> NDArray[np.int64]:
    return np.asarray(ref.confidence if output_block else ref.features[name], dtype=np.int64)


class TrendTracker:
    """The rank CUSUMs of one model: every numeric feature (and the confidence) in every slice."""

    def __init__(self, layout: Layout, profile: ReferenceProfile, min_samples: int, settle_s: float) -> None:
        self.layout = layout
        self.settle_s = float(settle_s)
        nf = len(layout.features)
        known = profile.aggregate.features
        blocks = [j for j, f in enumerate(layout.features) if f.kind == "numeric" and f.name in known]
        if layout.confidence.kind == "numeric":
            blocks.append(nf + 1)
        self.blocks = blocks
        self.labels = [AGGREGATE] + [slice_label(k, v) for k, v in layout.slices]
        s, b = len(self.labels), len(blocks)
        self.scores = np.zeros((s, layout.hist_size))
        self.mask = np.zeros((s, layout.hist_size))
        self.sd = np.ones((s, b))
        margin = np.full((s, b), np.inf)
        for i, label in enumerate(self.labels):
            own = profile.slices.get(label)
            ref = own if own is not None and (i == 0 or own.n >= min_samples) else profile.aggregate
            for k, j in enumerate(blocks):
                spec = layout.blocks[j]
                counts = _counts(ref, spec.name, j == nf + 1)[: spec.value_bins]
                u, sd = rank_scores(counts)
                if sd <= 0 or counts.sum() < min_samples:
                    continue  # no reference spread to rank against: the stream never speaks
                blk = layout.block(j)
                self.scores[i, blk.start : blk.start + spec.value_bins] = u
                self.mask[i, blk.start : blk.start + spec.value_bins] = 1.0
                self.sd[i, k] = sd
                margin[i, k] = MARGIN_Z / math.sqrt(float(counts.sum()))
        self.usable = np.isfinite(margin).ravel()
        self.cusum = RankCusum(np.where(np.isfinite(margin), margin, 0.0).ravel())
        self.last_bucket: int | None = None

    def feed(self, window: ModelWindow, now: float) -> int:
        """Read the window's buckets that settled since the last call; returns how many."""
        settled = math.floor((now - self.settle_s) / window.bucket_seconds) - 1
        read = 0
        for bucket, hist in window.buckets_between(self.last_bucket, settled):
            sums = np.add.reduceat(hist * self.scores, self.layout.offsets, axis=1)[:, self.blocks]
            n = np.add.reduceat(hist * self.mask, self.layout.offsets, axis=1)[:, self.blocks]
            x = (sums - n / 2) / self.sd
            n_flat = np.where(self.usable, n.ravel(), 0).astype(np.int64)
            self.cusum.update(np.where(self.usable, x.ravel(), 0.0), n_flat, bucket)
            read += 1
        self.last_bucket = max(settled, self.last_bucket if self.last_bucket is not None else settled)
        return read

    def values(self, model_id: str, now: float, bucket_seconds: float,
               reference_id: str | None, reference_hash: str | None) -> list[SignalValue]:
        """One ``rank_cusum`` value per (slice, numeric feature) whose detectors have counted events."""
        ev, start, count = self.cusum.log10_evidence, self.cusum.start_bucket, self.cusum.sample_count
        end = (math.floor(now / bucket_seconds) + 1) * bucket_seconds
        nf = len(self.layout.features)
        out: list[SignalValue] = []
        b = len(self.blocks)
        for i, label in enumerate(self.labels):
            for k, j in enumerate(self.blocks):
                f = i * b + k
                if not self.usable[f] or count[f] == 0:
                    continue
                out.append(SignalValue(
                    model_id, label, "output" if j == nf + 1 else "input", self.layout.blocks[j].name,
                    "rank_cusum", float(ev[f]), int(count[f]), True, reference_id=reference_id,
                    reference_hash=reference_hash, window_s=end - float(start[f]) * bucket_seconds,
                ))
        return out

