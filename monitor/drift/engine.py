"""The drift engine: windowed state per model, reference profiles, and ``evaluate(now) -> Snapshot``.

Pure: no I/O, no logging, no clock. ``observe`` takes what the store hands over after a durable
write (new inferences and label changes) and the current time; ``evaluate`` reads the state.

Lifecycle of a model: without a reference profile its first ``auto_reference_events`` events (and
their labels) are buffered; the profile is then built from them (available once from
:meth:`new_references` so the caller can persist it) and the buffer is replayed into the window.
:meth:`set_reference` replaces a model's profile and resets its window (call :meth:`rebuild` after).

Cohorts: each group in ``cohorts`` (e.g. ``[["m-v1", "m-v2-canary"]]``) is compared on the bins of
its first member that has a profile (the base); values are reported under each other member's id
with ``signal="cohort"`` and the base's profile as ``reference_id``.

p-values (chi-square) are adjusted per model across all its features x slices in one evaluation.
ADWIN state is order-dependent and not part of :meth:`rebuild`'s equivalence (a rebuilt detector
has only seen the window).

Examples
--------
>>> eng = DriftEngine(auto_reference_events=10)
>>> tuple(eng.evaluate(0.0).values)
()
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import polars as pl
from numpy.typing import NDArray

from monitor.detect.adwin import CorrectnessDrop
from monitor.detect.lineage import LineageTracker
from monitor.drift import checkpoint
from monitor.drift.canary import canary_values
from monitor.drift.evidence import OutcomeTally, bar_evidence, reference_bar, target_evidence
from monitor.drift.signals import (
    DISTRIBUTION_STATISTICS,
    ReferenceRows,
    SignalBuilder,
    SliceView,
    Test,
    cohort_signals,
    configured_bar,
    distribution_table,
    resolve_bar,
)
from monitor.drift.trend import TrendTracker
from monitor.events import LINEAGE_FIELDS, InferenceEvent, Lineage
from monitor.records import LabelChange, QualityBar
from monitor.snapshot import (
    AGGREGATE,
    DistributionTable,
    LineageChange,
    Segment,
    SignalValue,
    Snapshot,
    ValueSet,
    slice_label,
)
from monitor.stats.cluster_share import ClusterShares
from monitor.stats.columns import EventColumns, records_from_events, records_from_rows, slice_membership
from monitor.stats.delay_histogram import DelayHistogram
from monitor.stats.event_frame import EventFrame, split_by_model
from monitor.stats.label_columns import LabelColumns
from monitor.stats.layout import CORRECT_N, CORRECT_SUM, EVENTS, SOURCES, Layout
from monitor.stats.multiple_testing import Correction, adjust_p_values
from monitor.stats.profile import ReferenceProfile
from monitor.stats.profile_builder import build_profile_from_records
from monitor.stats.window import ModelWindow, WindowTotals, window_bounds

Bars = dict[str, dict[str, QualityBar]]


class DriftEngine:
    def __init__(
        self,
        bucket_seconds: float = 60.0,
        window_buckets: int = 60,
        allowed_lateness_s: float = 3600.0,
        numeric_bins: int = 10,
        top_k_categories: int = 20,
        min_samples: int = 200,
        alpha: float = 0.01,
        correction: Correction = "bh",
        features: list[str] | None = None,
        protected_slices: Mapping[str, Sequence[str]] | None = None,
        quality_bars: Bars | None = None,
        auto_reference_events: int | None = 5000,
        cohorts: Sequence[Sequence[str]] = (),
        *,
        sketch_accuracy: float = 0.01,
        adwin_delta: float = 0.002,
        lineage_lookback_s: float = 3600.0,
        max_features: int | None = 64,
        max_buffered_models: int = 100,
        max_future_s: float = 600.0,
        short_windows: Sequence[int] = (),
        trend_settle_s: float = 60.0,
    ):
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if correction not in ("bh", "bonferroni"):
            raise ValueError("correction must be 'bh' or 'bonferroni'")
        if numeric_bins < 2 or top_k_categories < 1 or min_samples < 1:
            raise ValueError("numeric_bins >= 2, top_k_categories >= 1 and min_samples >= 1 required")
        if auto_reference_events is not None and auto_reference_events < 1:
            raise ValueError("auto_reference_events must be >= 1 or None")
        self.bucket_seconds = float(bucket_seconds)
        self.window_buckets = int(window_buckets)
        self.short_windows = tuple(sorted({int(n) for n in short_windows if int(n) != self.window_buckets}))
        if any(not 1 <= n < self.window_buckets for n in self.short_windows):
            raise ValueError(f"short windows must be 1..{self.window_buckets - 1} buckets")
        self.allowed_lateness_s = float(allowed_lateness_s)
        self.trend_settle_s = float(trend_settle_s)
        self.numeric_bins = numeric_bins
        self.top_k_categories = top_k_categories
        self.min_samples = min_samples
        self.alpha = alpha
        self.correction: Correction = correction
        self.features = list(features) if features is not None else None
        self.protected_slices = {k: [str(v) for v in vs] for k, vs in (protected_slices or {}).items()}
        self.quality_bars: Bars = {m: dict(s) for m, s in (quality_bars or {}).items()}
        self.auto_reference_events = auto_reference_events
        self.cohorts = [list(g) for g in cohorts if len(g) >= 2]
        self.sketch_accuracy = sketch_accuracy
        self.adwin_delta = adwin_delta
        self.max_features = max_features
        self.max_future_s = float(max_future_s)
        self.max_buffered_models = max_buffered_models
        if max_buffered_models < 1:
            raise ValueError("max_buffered_models must be >= 1")
        if bucket_seconds <= 0 or window_buckets < 1 or allowed_lateness_s < 0:
            raise ValueError("bucket_seconds > 0, window_buckets >= 1 and allowed_lateness_s >= 0 required")
        self._pairs = [(k, v) for k, vs in self.protected_slices.items() for v in vs]
        self._profiles: dict[str, ReferenceProfile] = {}
        self._windows: dict[str, ModelWindow] = {}
        self._cohort_windows: dict[str, ModelWindow] = {}  # member id -> window on its base's layout
        self._buffers: dict[str, tuple[EventColumns, list[LabelChange]]] = {}
        self._adwin: dict[tuple[str, str], CorrectnessDrop] = {}
        self._references: dict[str, ReferenceRows] = {}  # reference rows per model, rebuilt when its profile changes
        # per model: the window-derived values of its last evaluation and what they were computed from
        self._evaluated: dict[str, tuple[tuple[object, ...], list[SignalValue | Segment]]] = {}
        self._tallies: dict[tuple[str, str], OutcomeTally] = {}
        self._delays: dict[tuple[str, str], DelayHistogram] = {}  # (model, label source)
        self._trends: dict[str, TrendTracker] = {}  # rank CUSUMs, made at the first evaluation
        # each model's last rank CUSUM values, with what they were made from (see _trend_values)
        self._trend_held: dict[str, tuple[tuple[object, ...], list[SignalValue]]] = {}
        self._clusters: dict[tuple[str, str], ClusterShares] = {}  # (model, slice) -> failure clusters
        self._canaries: dict[str, str] = {}  # canary model -> its rollback target (both serving)
        self.cluster_recent_buckets = max(self.short_windows, default=15)
        self._targets: dict[str, tuple[str, dict[str, tuple[int, int]]]] = {}  # model -> rollback target's outcomes
        self._new: list[ReferenceProfile] = []
        self._lineage = LineageTracker(lineage_lookback_s)
        self._late_dropped_models = 0
        self.future_events_total = 0
        self.unreferenced_events_total = 0

    # ---- references -------------------------------------------------------------------------
    def reference(self, model_id: str) -> ReferenceProfile | None:
        return self._profiles.get(model_id)

    def window_totals(self, model_id: str, now: float) -> WindowTotals | None:
        """The model's window summed at ``now`` (None: no window yet, e.g. still buffering for an
        automatic reference). Read-only; what a takeover check compares with a recompute."""
        window = self._windows.get(model_id)
        return None if window is None else window.totals(now)

    def new_references(self) -> list[ReferenceProfile]:
        out, self._new = self._new, []
        return out

    def set_reference(self, model_id: str, profile: ReferenceProfile) -> None:
        if profile.model_id != model_id:
            raise ValueError("profile belongs to another model")
        self._profiles[model_id] = profile
        self._windows[model_id] = self._new_window(profile, self._pairs)
        self._trends.pop(model_id, None)
        self._trend_held.pop(model_id, None)
        for group in self.cohorts:
            if model_id in group:
                self._reset_cohort(group)
        buffered = self._buffers.pop(model_id, None)
        if buffered is not None:
            self._observe_model(model_id, buffered[0], buffered[1], None)

    @property
    def slice_labels(self) -> list[str]:
        """``"all"`` and every declared protected slice, as signal values name them."""
        return [AGGREGATE] + [slice_label(k, v) for k, v in self._pairs]

    def set_target_outcomes(self, model_id: str, target_id: str, outcomes: Mapping[str, tuple[int, int]]) -> None:
        """The rollback target's labelled ``(correct, total)`` per slice label, read by the caller from
        ``inference_log``; the model's quality is then also tested against them (``target_evidence``)."""
        self._targets[model_id] = (target_id, {k: (int(c), int(n)) for k, (c, n) in outcomes.items() if n > 0})

    def set_canary(self, model_id: str, target_id: str | None) -> None:
        """``model_id`` serves beside ``target_id`` (a promotion with ``traffic_fraction < 1``): the
        arms are compared at each evaluation (:mod:`monitor.drift.canary`); None ends the canary."""
        if target_id is None:
            self._canaries.pop(model_id, None)
        else:
            self._canaries[model_id] = target_id

    def _layout(self, profile: ReferenceProfile, pairs: Sequence[tuple[str, str]]) -> Layout:
        feats = (
            profile.features
            if self.features is None
            else tuple(f for f in profile.features if f.name in set(self.features))
        )
        return Layout(feats, profile.output, profile.confidence, tuple(pairs))

    def _new_window(self, profile: ReferenceProfile, pairs: Sequence[tuple[str, str]]) -> ModelWindow:
        return ModelWindow(
            self._layout(profile, pairs), self.bucket_seconds, self.window_buckets, self.allowed_lateness_s,
            future_buckets=math.ceil(self.max_future_s / self.bucket_seconds),
            sketch_windows=(self.window_buckets,),  # quantiles are of the main window only
        )

    def _cohort_base(self, group: Sequence[str]) -> str | None:
        return next((m for m in group if m in self._profiles), None)

    def _reset_cohort(self, group: Sequence[str]) -> None:
        base = self._cohort_base(group)
        for m in group:
            self._cohort_windows.pop(m, None)
            if base is not None and m != base:
                self._cohort_windows[m] = self._new_window(self._profiles[base], ())

    # ---- observe ----------------------------------------------------------------------------
    def observe(self, inferences: Sequence[InferenceEvent], labels: Sequence[LabelChange], now: float) -> None:
        """Add new inferences and label changes (as handed over by the store after a write)."""
        self._observe_records(records_from_events(inferences), labels, now, arrival=now)

    def observe_frame(self, frame: pl.DataFrame, labels: Sequence[LabelChange], now: float) -> None:
        """:meth:`observe` for a batch held as columns (one row per inference event, a ``model_id``
        column, the rest as :class:`~monitor.stats.event_frame.EventFrame` describes): binned and
        sketched from the columns, no Python object per event."""
        self._observe_records(split_by_model(frame), labels, now, arrival=now)

    def _observe_records(
        self,
        by_model: Mapping[str, EventColumns | EventFrame],
        labels: Sequence[LabelChange],
        now: float,
        arrival: float | None,
    ) -> None:
        labels_by_model = _by_model(labels)
        limit = now + self.max_future_s
        for model_id in dict.fromkeys([*by_model, *labels_by_model]):
            rec: EventColumns | EventFrame = by_model.get(model_id, EventColumns())
            if len(rec) and max(rec.served_at) > limit:
                keep = [i for i, t in enumerate(rec.served_at) if t <= limit]
                self.future_events_total += len(rec) - len(keep)
                rec = rec.take(keep)
            self._track_lineage(model_id, rec, labels_by_model.get(model_id, []))
            self._observe_model(model_id, rec, labels_by_model.get(model_id, []), arrival)

    def _observe_model(
        self, model_id: str, rec: EventColumns | EventFrame, labels: list[LabelChange], arrival: float | None
    ) -> None:
        window = self._windows.get(model_id)
        if window is None:
            self._buffer(model_id, rec.to_columns() if isinstance(rec, EventFrame) else rec, labels)
            return
        window.observe(rec, arrival)
        member = self._cohort_windows.get(model_id)
        if member is not None:
            member.observe(rec, arrival)
        if not labels:
            return
        cols = LabelColumns.of(labels)  # read once, for the window and every label statistic
        # slice membership of the labels, computed once for the window and the ADWIN detectors
        lmember = slice_membership(cols.slices, cols.features, self._pairs) if self._pairs else []
        window.observe_labels(cols, lmember if window.layout.slices == tuple(self._pairs) else None)
        self._feed_labels(model_id, cols, lmember)

    def _buffer(self, model_id: str, rec: EventColumns, labels: list[LabelChange]) -> None:
        n = self.auto_reference_events
        if n is None:
            self.unreferenced_events_total += len(rec)
            return
        if model_id not in self._buffers and len(self._buffers) >= self.max_buffered_models:
            # full: the smallest buffer (a junk or barely used model id) makes room, or the newcomer
            # itself is not buffered when it is smaller still; its events are counted, not kept
            smallest = min(self._buffers, key=lambda m: (len(self._buffers[m][0]), m))
            if len(self._buffers[smallest][0]) > len(rec):
                self.unreferenced_events_total += len(rec)
                return
            self.unreferenced_events_total += len(self._buffers.pop(smallest)[0])
        buf_rec, buf_labels = self._buffers.setdefault(model_id, (EventColumns(), []))
        buf_rec.extend(rec)
        buf_labels.extend(labels[: max(0, 2 * n - len(buf_labels))])
        if len(buf_rec) < n:
            return
        order = sorted(range(len(buf_rec)), key=buf_rec.served_at.__getitem__)
        first = buf_rec.take(order[:n])
        profile = build_profile_from_records(
            model_id,
            first,
            [],
            features=self.features,
            numeric_bins=self.numeric_bins,
            top_k_categories=self.top_k_categories,
            protected_slices=self.protected_slices,
            sketch_accuracy=self.sketch_accuracy,
            labelled=False,
            source="auto",
            created_at=max(first.served_at),
            max_features=self.max_features,
        )
        self._new.append(profile)
        self.set_reference(model_id, profile)

    def _feed_labels(self, model_id: str, labels: LabelColumns, lmember: list[NDArray[np.int64]]) -> None:
        """A batch of label changes to every label statistic: the ADWIN detectors, the outcome
        tallies and failure clusters (labels with a correctness verdict) and the label delays (every
        first label, a score-only one too)."""
        self._feed_adwin(model_id, labels, lmember)
        self._tally(model_id, labels, lmember)
        self._track_clusters(model_id, labels, lmember)
        self._track_delays(model_id, labels)

    def _feed_adwin(self, model_id: str, labels: LabelColumns, lmember: list[NDArray[np.int64]]) -> None:
        """Labels with ``was_correct`` in ``served_at`` order, to the aggregate's and each slice's
        detector; ``lmember`` is :func:`slice_membership` of ``labels`` (empty without protected slices)."""
        scored = np.flatnonzero(labels.correct >= 0)
        if scored.size == 0:
            return
        t = labels.served_at[scored]
        order = scored if bool(np.all(t[1:] >= t[:-1])) else scored[np.argsort(t, kind="stable")]
        correct = (labels.correct[order] == 1).tolist()
        times = labels.served_at[order].tolist()
        position = np.full(len(labels), -1, dtype=np.int64)  # label index -> index in the ordered lists
        position[order] = np.arange(order.size)
        for j, label in enumerate([AGGREGATE] + [slice_label(k, v) for k, v in self._pairs]):
            if j == 0:
                xs, ts = correct, times
            else:
                rows = position[lmember[j - 1]]
                rows = np.sort(rows[rows >= 0]).tolist()
                if not rows:
                    continue
                xs, ts = [correct[i] for i in rows], [times[i] for i in rows]
            det = self._adwin.get((model_id, label))
            if det is None:
                det = self._adwin[(model_id, label)] = CorrectnessDrop(self.adwin_delta)
            det.update_many(xs, ts)

    def _track_clusters(self, model_id: str, cols: LabelColumns, lmember: list[NDArray[np.int64]]) -> None:
        """First labels that are failures with a ``failure_cluster``, per slice, by the label's time
        (see :mod:`monitor.stats.cluster_share`)."""
        labels = cols.changes
        rows = [i for i in np.flatnonzero(cols.first & (cols.correct == 0)).tolist() if labels[i].new.failure_cluster]
        if not rows:
            return
        picked = np.zeros(len(labels), dtype=bool)
        picked[rows] = True
        groups = [(AGGREGATE, np.asarray(rows, dtype=np.int64))] + [
            (slice_label(k, v), m[picked[m]]) for (k, v), m in zip(self._pairs, lmember, strict=False)
        ]
        for label, idx in groups:
            if idx.size:
                shares = self._clusters.get((model_id, label))
                if shares is None:
                    shares = self._clusters[(model_id, label)] = ClusterShares(
                        self.cluster_recent_buckets, self.bucket_seconds)
                chosen = [labels[i] for i in idx.tolist()]
                shares.update([str(lc.new.failure_cluster) for lc in chosen], [lc.new.observed_at for lc in chosen])

    def _cluster_values(self, model_id: str, labels: list[str], now: float) -> list[SignalValue]:
        """``failure_cluster_share`` of every cluster with recent failures, per slice."""
        out: list[SignalValue] = []
        for label in labels:
            shares = self._clusters.get((model_id, label))
            if shares is None:
                continue
            for c in shares.shares(now):
                out.append(SignalValue(
                    model_id, label, "quality", f"failure_cluster:{c.name}", "failure_cluster_share", c.delta,
                    c.recent_total, True, p_value=c.p_value, baseline=c.history / c.history_total,
                    window_s=shares.recent_seconds,
                ))
        return out

    def _track_delays(self, model_id: str, labels: LabelColumns) -> None:
        """Label delay of each first label, per label source (a fixed set: unknown ones pool)."""
        source = labels.source[labels.first]
        delay = labels.delay[labels.first]
        for i in np.unique(source).tolist():
            self._delays.setdefault((model_id, SOURCES[i]), DelayHistogram()).update(delay[source == i])

    def _tally(self, model_id: str, labels: LabelColumns, lmember: list[NDArray[np.int64]]) -> None:
        """First labels with a correctness verdict, counted per slice (see :mod:`monitor.drift.evidence`)."""
        first = labels.first & (labels.correct >= 0)
        if not first.any():
            return
        ok = labels.correct == 1
        served = labels.served_at
        groups = [(AGGREGATE, np.flatnonzero(first))] + [
            (slice_label(k, v), rows[first[rows]]) for (k, v), rows in zip(self._pairs, lmember, strict=False)
        ]
        for label, rows in groups:
            if rows.size:
                tally = self._tallies.setdefault((model_id, label), OutcomeTally())
                tally.add(int(ok[rows].sum()), int(rows.size), float(served[rows].min()))

    def _track_lineage(self, model_id: str, rec: EventColumns | EventFrame, labels: list[LabelChange]) -> None:
        if len(rec):
            distinct = (rec.distinct_lineage() if isinstance(rec, EventFrame)
                        else [d for d in set(rec.lineage) if d is not None])
            order: list[int] | None = None
            for f in LINEAGE_FIELDS:
                seen = {_get(d, f) for d in distinct} - {None}
                if not seen or seen == {self._lineage.last_value(model_id, f)}:
                    continue
                if isinstance(rec, EventFrame):  # a lineage change: the rare per-event path
                    rec = rec.to_columns()
                if order is None:
                    order = sorted(range(len(rec)), key=rec.served_at.__getitem__)
                values = [_get(rec.lineage[i], f) for i in order]
                self._lineage.update(model_id, f, values, [rec.served_at[i] for i in order])
        if labels and any(lc.new.judge_model is not None or lc.new.rubric_version is not None for lc in labels):
            ordered = sorted(labels, key=lambda lc: lc.new.observed_at)
            times = [lc.new.observed_at for lc in ordered]
            self._lineage.update(model_id, "judge_model", [lc.new.judge_model for lc in ordered], times)
            self._lineage.update(model_id, "rubric_version", [lc.new.rubric_version for lc in ordered], times)

    # ---- restart / partitions -----------------------------------------------------------------
    def rebuild(self, rows: Sequence[Mapping[str, Any]] | pl.DataFrame, now: float) -> None:
        """Replace the state of the models in ``rows`` (the store's window rows) by replaying them."""
        by_model, labels = records_from_rows(rows)
        self.reset_models(list(dict.fromkeys([*by_model, *(lc.model_id for lc in labels)])))
        self._observe_records(by_model, labels, now, arrival=None)

    def replay(self, rows: Sequence[Mapping[str, Any]], now: float) -> None:
        """Add stored rows (a chunk of a rebuild, in ``served_at`` order) to the current state. A row
        that carries ``ingested_at`` is judged against it exactly as it was live (see
        :mod:`monitor.stats.window`); late rows are counted, not added."""
        on_time = [r for r in rows if r.get("ingested_at") is None or self._on_time(r["served_at"], r["ingested_at"])]
        self._late_dropped_models += len(rows) - len(on_time)
        by_model, labels = records_from_rows(on_time)
        self._observe_records(by_model, labels, now, arrival=None)

    def _on_time(self, served_at: float, arrival: float) -> bool:
        now = math.floor(arrival / self.bucket_seconds)
        b = math.floor(served_at / self.bucket_seconds)
        horizon = math.ceil(self.max_future_s / self.bucket_seconds)
        return now - self.window_buckets < b <= now + horizon and served_at >= arrival - self.allowed_lateness_s

    def reset_models(self, model_ids: Sequence[str]) -> None:
        """Empty the window state of the models (their reference profiles are kept)."""
        for m in model_ids:
            self._buffers.pop(m, None)
            for key in [k for k in self._adwin if k[0] == m]:
                del self._adwin[key]
            self._trends.pop(m, None)
            self._trend_held.pop(m, None)
            if m in self._profiles:
                self._windows[m] = self._new_window(self._profiles[m], self._pairs)
            if m in self._cohort_windows:
                group = next(g for g in self.cohorts if m in g)
                base = self._cohort_base(group)
                assert base is not None
                self._cohort_windows[m] = self._new_window(self._profiles[base], ())
        self._lineage.drop_models(model_ids)

    def checkpoint(self, model_id: str) -> bytes | None:
        """The model's window state as bytes (None: no window yet); see :mod:`monitor.drift.checkpoint`."""
        window = self._windows.get(model_id)
        if window is None:
            return None
        last, changes = self._lineage.state_of(model_id)
        adwin = {label: det for (m, label), det in self._adwin.items() if m == model_id}
        tallies = {label: t for (m, label), t in self._tallies.items() if m == model_id}
        delays = {source: h for (m, source), h in self._delays.items() if m == model_id}
        clusters = {label: c for (m, label), c in self._clusters.items() if m == model_id}
        return checkpoint.dumps(
            checkpoint.ModelState(window, self._cohort_windows.get(model_id), adwin, last, changes, tallies, delays,
                                  self._trends.get(model_id), clusters)
        )

    def restore(self, model_id: str, data: bytes) -> bool:
        """Replace the model's state by a checkpoint's; False (state untouched) when the checkpoint
        does not fit the engine as configured now (another profile, layout, bucket size or window)."""
        try:
            state = checkpoint.loads(data)
        except checkpoint.CheckpointError:
            return False
        profile = self._profiles.get(model_id)
        if profile is None or state.window is None or not self._fits(state.window, self._layout(profile, self._pairs)):
            return False
        cohort = self._cohort_windows.get(model_id)
        if (cohort is None) != (state.cohort_window is None):
            return False
        if cohort is not None and not self._fits(state.cohort_window, cohort.layout):  # type: ignore[arg-type]
            return False
        self._windows[model_id] = state.window
        if cohort is not None:
            self._cohort_windows[model_id] = state.cohort_window  # type: ignore[assignment]
        self._buffers.pop(model_id, None)
        for key in [k for k in self._adwin if k[0] == model_id]:
            del self._adwin[key]
        self._adwin.update({(model_id, label): det for label, det in state.adwin.items()})
        for key in [k for k in self._tallies if k[0] == model_id]:
            del self._tallies[key]
        self._tallies.update({(model_id, label): t for label, t in state.tallies.items()})
        for key in [k for k in self._delays if k[0] == model_id]:
            del self._delays[key]
        self._delays.update({(model_id, source): h for source, h in state.delays.items()})
        for key in [k for k in self._clusters if k[0] == model_id]:
            del self._clusters[key]
        self._clusters.update({(model_id, label): c for label, c in state.clusters.items()})
        self._trends.pop(model_id, None)
        self._trend_held.pop(model_id, None)
        if state.trend is not None and state.trend.layout == state.window.layout:
            self._trends[model_id] = state.trend
        self._lineage.load_state(model_id, state.lineage_last, state.lineage_changes)
        return True

    def _fits(self, window: ModelWindow, layout: Layout) -> bool:
        return (
            window.layout == layout
            and window.bucket_seconds == self.bucket_seconds
            and window.window_buckets == self.window_buckets
            and window.allowed_lateness_s == self.allowed_lateness_s
            and window.future_buckets == math.ceil(self.max_future_s / self.bucket_seconds)
            and window.sketch_windows == frozenset((self.window_buckets,))
        )

    def drop_models(self, model_ids: Sequence[str]) -> None:
        """Forget the models (partition revoked); their reference profiles are kept."""
        for m in model_ids:
            w = self._windows.pop(m, None)
            if w is not None:
                self._late_dropped_models += w.late_events
            self._cohort_windows.pop(m, None)
            self._trends.pop(m, None)
            self._trend_held.pop(m, None)
            self._references.pop(m, None)
            self._evaluated.pop(m, None)
            self._buffers.pop(m, None)
            for key in [k for k in self._adwin if k[0] == m]:
                del self._adwin[key]
            for key in [k for k in self._tallies if k[0] == m]:
                del self._tallies[key]
            for key in [k for k in self._delays if k[0] == m]:
                del self._delays[key]
            for key in [k for k in self._clusters if k[0] == m]:
                del self._clusters[key]
        self._lineage.drop_models(model_ids)

    # ---- read ---------------------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        """Counters held by all windows plus buffered events (bounded by ``auto_reference_events``)."""
        return (
            sum(w.state_size for w in self._windows.values())
            + sum(w.state_size for w in self._cohort_windows.values())
            + sum(len(r) for r, _ in self._buffers.values())
        )

    @property
    def late_events_total(self) -> int:
        return self._late_dropped_models + sum(w.late_events for w in self._windows.values())

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted({*self._windows, *self._buffers}))

    def evaluate(self, now: float) -> Snapshot:
        start, end = window_bounds(now, self.bucket_seconds, self.window_buckets)
        values: list[SignalValue | Segment] = []
        for model_id in sorted(self._windows):
            values.extend(self._evaluate_model(model_id, now, start, end))
        for group in self.cohorts:
            base = self._cohort_base(group)
            if base is None or base not in self._windows:
                continue
            base_hist = self._windows[base].totals(now).hist[0]
            for m in group:
                w = self._cohort_windows.get(m)
                if w is not None:
                    values.extend(
                        cohort_signals(
                            m,
                            self._profiles[base],
                            w.layout,
                            base_hist,
                            w.totals(now).hist[0],
                            self.min_samples,
                        )
                    )
        values.extend(self._canary_values(now))
        changes: tuple[LineageChange, ...] = tuple(self._lineage.changes(now))
        return Snapshot(
            now, start, end, ValueSet(values), changes, self.late_events_total, self.models,
            self.unreferenced_events_total,
        )

    def _canary_values(self, now: float) -> list[SignalValue]:
        """Each canary against its target on their main windows (one ``cohort`` family per canary)."""
        out: list[SignalValue] = []
        main_s = self.window_buckets * self.bucket_seconds
        for m, target in sorted(self._canaries.items()):
            wm, wt = self._windows.get(m), self._windows.get(target)
            if wm is None or wt is None or wm.layout != wt.layout:
                continue  # a canary with a reference of its own has other bins: not compared
            tt, tm = wt.totals(now), wm.totals(now)
            vals = canary_values(m, wm.layout, tt.hist, tt.scalars[:, EVENTS], tm.hist, tm.scalars[:, EVENTS],
                                 self.min_samples, main_s)
            out.extend(_adjusted(vals, self.correction, main_s))
        return out

    def _evaluate_model(
        self, model_id: str, now: float, start: float, end: float
    ) -> list[SignalValue | Segment]:
        window = self._windows[model_id]
        profile = self._profiles[model_id]
        out = self._window_values(model_id, window, profile, now, start, end)
        if window.event_count(now) > 0:  # a version that left the window (rolled back) no longer speaks
            out.extend(self._evidence(model_id, profile, self._labels(window), now))
        out.extend(self._trend_values(model_id, window, profile, now))
        out.extend(self._delay_values(model_id))
        return out

    @staticmethod
    def _labels(window: ModelWindow) -> list[str]:
        return [AGGREGATE] + [slice_label(k, v) for k, v in window.layout.slices]

    def _window_values(
        self, model_id: str, window: ModelWindow, profile: ReferenceProfile, now: float, start: float, end: float
    ) -> list[SignalValue | Segment]:
        """Every window length's signal values and the failure-cluster shares, corrected together.
        They depend on the window's counts, its ADWIN detectors and cluster shares (all changed only
        with a batch handed to the window: its ``version``), the reference and the current bucket;
        a model with none of these changed since its last evaluation gets the same values again
        without computing them (an idle model costs nothing)."""
        key = (window, window.version, profile, math.floor(now / self.bucket_seconds))
        held = self._evaluated.get(model_id)
        if held is not None:
            (w, version, p, bucket), values = held
            if w is window and p is profile and version == window.version and bucket == key[3]:
                return list(values)
        lengths = (*self.short_windows, self.window_buckets)
        labels = self._labels(window)
        out: list[SignalValue | Segment] = []
        tests: list[Test] = []
        all_totals = window.totals_over(now, lengths, views=True)  # read before this returns
        references = self._references.get(model_id)
        if references is None or not references.fits(window.layout, profile):
            references = self._references[model_id] = ReferenceRows(window.layout, profile)
        bars = [resolve_bar(self.quality_bars, model_id, label, profile.slices.get(label), profile.labelled)
                for label in labels]
        windows = []
        for n_buckets, t in zip(lengths, all_totals, strict=True):
            main = n_buckets == self.window_buckets
            builder = SignalBuilder(window.layout, profile, self.min_samples, self.alpha,
                                    window_s=n_buckets * self.bucket_seconds, tested_only=not main)
            views: list[SliceView] = []
            view_bars, adwins = [], []
            events = t.scalars[:, EVENTS].tolist()
            for s, label in enumerate(labels):
                if events[s] == 0:
                    continue
                own = profile.slices.get(label)
                ref = own if own is not None and (s == 0 or own.n >= self.min_samples) else profile.aggregate
                views.append(SliceView(model_id, label, t.hist[s], t.sketch[s], t.scalars[s], ref, own, t.scalars[0]))
                view_bars.append(bars[s])
                det = self._adwin.get((model_id, label)) if main else None
                adwins.append((det.drop_within(start, end), det.estimate, det.n_seen) if det is not None else None)
            windows.append((builder, views, view_bars, adwins))
        # the distribution statistics of every window's slices in one call (rows are independent)
        every = [(v, b.window_s, not b.tested_only) for b, views, _, _ in windows for v in views]
        table = distribution_table(every, references, self.min_samples) if every else None
        row0 = 0
        for builder, views, view_bars, adwins in windows:
            if table is not None:
                builder.window_signals(views, view_bars, adwins, references, (table, row0))
            row0 += len(views)
            at = len(out)
            tests.extend([(at + first, at + end, key, p) for first, end, key, p in builder.tests])
            out.extend(builder.out)
        built = len(out)
        out.extend(self._cluster_values(model_id, labels, now))
        out = _adjusted(out, self.correction, self.window_buckets * self.bucket_seconds, tests, built,
                        () if table is None else (table,))
        self._evaluated[model_id] = (key, out)
        return list(out)

    def _trend_values(
        self, model_id: str, window: ModelWindow, profile: ReferenceProfile, now: float
    ) -> list[SignalValue]:
        """``rank_cusum`` of every numeric feature and the confidence per slice (:mod:`monitor.drift.trend`)."""
        tracker = self._trends.get(model_id)
        if tracker is None:
            tracker = TrendTracker(window.layout, profile, self.min_samples, self.trend_settle_s)
            self._trends[model_id] = tracker
        read = tracker.feed(window, now)
        # the values change only with a bucket read, or when the clock enters a new bucket
        key = (tracker, math.floor(now / self.bucket_seconds), profile.id, profile.content_hash)
        held = self._trend_held.get(model_id)
        if read == 0 and held is not None and held[0][0] is tracker and held[0][1:] == key[1:]:
            return list(held[1])
        values = tracker.values(model_id, now, self.bucket_seconds, profile.id, profile.content_hash)
        self._trend_held[model_id] = (key, values)
        return list(values)

    def _delay_values(self, model_id: str) -> list[SignalValue]:
        """Label delay quantiles of the model's first labels per source, since its first one."""
        out = []
        for (m, source), h in sorted(self._delays.items()):
            if m != model_id or h.count == 0:
                continue
            for name, q in DELAY_QUANTILES:
                out.append(SignalValue(model_id, AGGREGATE, "label_coverage", f"labels:{source}", name,
                                       h.quantile(q), h.count, True))
        return out

    def _evidence(self, model_id: str, profile: ReferenceProfile, labels: list[str], now: float) -> list[SignalValue]:
        """``bar_evidence`` of every (model, slice) with a bar and counted labels."""
        out: list[SignalValue] = []
        for label in labels:
            tally = self._tallies.get((model_id, label))
            if tally is None or tally.total == 0:
                continue
            bar = configured_bar(self.quality_bars, model_id, label).accuracy
            own = profile.slices.get(label)
            if bar is None and own is not None and profile.labelled:
                bar = reference_bar(int(own.scalars[CORRECT_SUM]), int(own.scalars[CORRECT_N]), self.alpha)
            if bar is None:
                continue
            out.extend(bar_evidence(model_id, label, tally, bar, self.alpha, now, profile.id, profile.content_hash))
        target_id, outcomes = self._targets.get(model_id, ("", {}))
        with_accuracy = {v.slice for v in out}
        for label in labels:
            tally = self._tallies.get((model_id, label))
            if tally is None or tally.total == 0 or label not in outcomes:
                continue
            correct, total = outcomes[label]
            evidence, accuracy = target_evidence(model_id, label, tally, target_id, correct, total, self.alpha, now)
            out.extend([evidence] if label in with_accuracy else [evidence, accuracy])
        return out


T = TypeVar("T", SignalValue, SignalValue | Segment)
Cells = tuple[DistributionTable, NDArray[np.bool_], NDArray[np.float64]]
"""A table, a mask of its cells, and their p-values in mask order."""

DELAY_QUANTILES = (("delay_p50", 0.5), ("delay_p90", 0.9), ("delay_p99", 0.99))


def _adjusted(
    out: list[T],
    correction: Correction,
    main_s: float,
    tests: Sequence[Test] = (),
    known: int = 0,
    tables: Sequence[DistributionTable] = (),
) -> list[T]:
    """``p_value_adjusted`` on every tested value. The hypotheses of the model's evaluation
    (windows x slices x features x tests, each counted once) form one family per signal (input,
    output, quality); each family is corrected at ``alpha / G`` (G: the families with a test), i.e.
    its adjusted p-values are multiplied by G. The false discovery rate over all of them stays at
    most ``alpha``, and a signal with few hypotheses (quality: slices x windows) is not drowned by
    one with many (input: features x slices x windows x ...).

    Looks over time: evaluations repeat every few seconds, and a window ``k`` times shorter than the
    main one renews its data ``k`` times as often, so it gets ``k`` times the looks at fresh data per
    hour. Its raw p-values enter the correction multiplied by ``k`` (5 min of 60: 12), so each
    window's false alarms per hour stay at the main window's.

    ``tests`` names the hypotheses of ``out[:known]`` as the signal builder recorded them (no key
    is made per value); the values from ``known`` on are keyed here. A hypothesis met twice keeps
    its first p-value. The tested cells of ``tables`` (one hypothesis each: a feature's
    distribution statistics share its chi-square test) join their signal's family as arrays, and
    their adjusted p-values go to the table's ``p_adjusted``."""
    keyed = list(tests)
    for i in range(known, len(out)):
        v = out[i]
        if isinstance(v, SignalValue) and v.p_value is not None:
            test = "distribution" if v.statistic in DISTRIBUTION_STATISTICS else v.statistic
            keyed.append((i, i + 1, (v.window_s, v.slice, v.signal, v.feature, test), v.p_value))
    families: dict[object, dict[tuple[object, ...], float]] = {}  # signal -> hypothesis -> p
    for _, _, key, p in keyed:
        family = families.get(key[2])
        if family is None:
            family = families[key[2]] = {}
        if key not in family:
            window_s = key[0]
            looks = main_s / window_s if window_s else 1.0  # type: ignore[operator]
            family[key] = min(1.0, p * max(1.0, looks))
    cells: dict[str, list[Cells]] = {}  # signal -> the tested cells of each table
    for table in tables:
        row_looks = np.array([main_s / w if w else 1.0 for w in table.windows])
        p_looked = np.minimum(1.0, table.columns["p_value"] * np.maximum(1.0, row_looks)[:, None])
        for name in ("input", "output"):
            mask = table.tested & np.array([s == name for s in table.signals])
            if mask.any():
                cells.setdefault(name, []).append((table, mask, p_looked[mask]))
                families.setdefault(name, {})
    g = len(families)
    adjusted: dict[tuple[object, ...], float] = {}
    for signal, family in families.items():
        ks = list(family)
        parts: list[Cells] = cells.get(str(signal), [])
        ps = np.concatenate([np.array([family[k] for k in ks], dtype=np.float64), *(part[2] for part in parts)])
        adj = np.minimum(1.0, np.array(adjust_p_values(ps.tolist(), correction), dtype=np.float64) * g)
        for k, q in zip(ks, adj[: len(ks)].tolist(), strict=True):
            adjusted[k] = q
        at = len(ks)
        for part_table, part_mask, part_p in parts:
            part_table.p_adjusted[part_mask] = adj[at : at + part_p.size]
            at += part_p.size
    for first, end, key, _ in keyed:  # values this evaluation has just made (see SignalValue)
        q = adjusted[key]
        for i in range(first, end):
            out[i].p_value_adjusted = q  # type: ignore[union-attr]
    return out


def _by_model(labels: Sequence[LabelChange]) -> dict[str, list[LabelChange]]:
    ids = [lc.model_id for lc in labels]
    if ids and ids.count(ids[0]) == len(ids):  # the usual batch: one model
        return {ids[0]: list(labels)}
    out: dict[str, list[LabelChange]] = {}
    for m, lc in zip(ids, labels, strict=True):
        out.setdefault(m, []).append(lc)
    return out


def _get(lineage: Lineage | None, field: str) -> str | None:
    return None if lineage is None else getattr(lineage, field, None)
