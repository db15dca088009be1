"""Turn one model's window totals into :class:`SignalValue` rows, slice by slice (the distribution
statistics of every slice and window as one :class:`~monitor.snapshot.DistributionTable`).

Conventions (so that "above the threshold" is always bad):
``missing_rate_delta``, ``p99_shift`` (relative: ``|p99 - p99_ref| / |p99_ref|``),
``mean_confidence_delta`` and ``coverage_delta`` are absolute differences; ``accuracy_gap`` is
``bar - accuracy`` and ``score_gap`` is ``bar - mean score`` (positive: below the bar); whether the
gap is more than chance is their p-value's to say (below), so a rule reads "at least 2 points below
the bar, significantly" rather than asking the confidence bound itself to clear the threshold.
Without a configured bar, a slice's bar is the reference's labelled accuracy (and mean score), and
``accuracy_gap``'s p-value is the two-sample test of the window against the reference's counts, so
the reference's own sampling error counts (a small reference's estimate above the truth does not
read as a permanent gap).
Protected slices are compared with the reference's counts for the same slice when the reference
has at least ``min_samples`` rows of it, otherwise with the reference aggregate.

p-values (what the multiple-testing correction and the rules' significance check read): the
distribution statistics of one feature (``psi``, ``js``, ``ks``, ``wasserstein``, ``chi2``,
``unseen_rate``) share the chi-square homogeneity test of the same bins; ``accuracy_gap`` has the
exact one-sided binomial test of "accuracy >= bar" (a configured bar) or the one-sided pooled
two-proportion z-test of "accuracy >= the reference's" (a bar from the reference); ``score_gap``
the one-sided normal test of "mean score >= bar". A builder for a short window (``tested_only``)
emits only those statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import bdtr, ndtr

from monitor.records import QualityBar
from monitor.snapshot import (
    AGGREGATE,
    TESTED_STATISTICS,
    DistributionTable,
    QuantileTable,
    Segment,
    Signal,
    SignalValue,
)
from monitor.stats.block_statistics import BlockGeometry, BlockStatistics, block_statistics
from monitor.stats.jensen_shannon import jensen_shannon
from monitor.stats.layout import (
    CONF_N,
    CONF_SUM,
    CORRECT_N,
    CORRECT_SUM,
    EVENTS,
    FIXED_POINT,
    LABELLED,
    SCORE_N,
    SCORE_SQ,
    SCORE_SUM,
    SOURCE_BASE,
    SOURCES,
    Layout,
)
from monitor.stats.mean_bound import mean_interval
from monitor.stats.profile import ReferenceProfile, SliceCounts
from monitor.stats.psi import psi
from monitor.stats.sketch import segment_quantiles
from monitor.stats.wilson import wilson_interval

DISTRIBUTION_STATISTICS = frozenset(TESTED_STATISTICS)
"""Statistics of one feature's binned distribution: one hypothesis (their shared chi-square test)."""

Test = tuple[int, int, tuple[object, ...], float]
"""A hypothesis of a list of values: ``(first, end, key, p_value)`` (see ``SignalBuilder.tests``)."""

QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True)
class SliceView:
    """What one slice of one model's window holds, plus what to compare it with."""

    model_id: str
    slice: str
    hist: NDArray[np.int64]
    sketch: NDArray[np.int64]
    scalars: NDArray[np.int64]
    reference: SliceCounts
    reference_slice: SliceCounts | None
    """The reference counts for exactly this slice (None if the reference had none)."""
    aggregate_scalars: NDArray[np.int64]
    """Scalars of the model's aggregate window (coverage baseline when the reference has none)."""


class ReferenceRows:
    """A model's reference counts laid out like its window's histogram rows, one row per reference
    slice, built once per (profile, layout) and kept: the reference side of every comparison costs
    nothing per evaluation. Also the layout's :class:`BlockGeometry`."""

    def __init__(self, layout: Layout, profile: ReferenceProfile) -> None:
        self.layout, self.profile = layout, profile
        blocks = layout.blocks
        nf = len(layout.features)
        self.geometry = BlockGeometry.of(
            [b.size for b in blocks],
            [b.kind == "numeric" for b in layout.features] + [False, True],
            [b.points() if b.kind == "numeric" else None for b in layout.features]
            + [None, layout.confidence.points()],
            [-1 if b.unseen_index is None else b.unseen_index for b in layout.features]
            + [-1 if layout.output.unseen_index is None else layout.output.unseen_index, -1],
        )
        self._nf = nf
        self._rows: dict[int, tuple[SliceCounts, NDArray[np.float64]]] = {}
        sketches = [layout.features[j].sketch for j in layout.sketched]
        self.sketch_starts = np.asarray(layout.sketch_offsets, dtype=np.int64)
        self.sketch_sizes = np.array([sk.size for sk in sketches if sk is not None], dtype=np.int64)
        self.sketch_points = (np.concatenate([sk.representatives() for sk in sketches if sk is not None])
                              if sketches else np.zeros(0))
        self._p99: dict[int, tuple[SliceCounts, list[float]]] = {}
        self.block_names = (*(f.name for f in layout.features), "output", "confidence")
        inputs: list[Signal] = ["input"] * nf
        self.block_signals: tuple[Signal, ...] = (*inputs, "output", "output")
        self._shown: dict[tuple[int, str], tuple[SliceCounts, NDArray[np.bool_]]] = {}

    def shown(self, counts: SliceCounts, slice_label: str) -> NDArray[np.bool_]:
        """Which blocks a view compared with ``counts`` shows: every block but an input feature
        the reference lacks and the view's own slice key (given samples in the window)."""
        held = self._shown.get((id(counts), slice_label))
        if held is not None and held[0] is counts:
            return held[1]
        key = slice_label.partition("=")[0] if slice_label != AGGREGATE else None
        out = np.array([f.name in counts.features and f.name != key for f in self.layout.features] + [True, True])
        self._shown[(id(counts), slice_label)] = (counts, out)
        return out

    def reference_p99(self, counts: SliceCounts) -> list[float]:
        """The reference's p99 of every sketched feature (NaN: no counts), computed once."""
        held = self._p99.get(id(counts))
        if held is not None and held[0] is counts:
            return held[1]
        out = []
        for j in self.layout.sketched:
            spec = self.layout.features[j]
            assert spec.sketch is not None
            out.append(spec.sketch.quantile(counts.sketch_counts(spec.name, spec.sketch.size), 0.99))
        self._p99[id(counts)] = (counts, out)
        return out

    def fits(self, layout: Layout, profile: ReferenceProfile) -> bool:
        return layout is self.layout and profile is self.profile

    def row(self, counts: SliceCounts) -> NDArray[np.float64]:
        """``counts`` as one flat row (a feature the reference lacks: zeros, never compared)."""
        held = self._rows.get(id(counts))
        if held is not None and held[0] is counts:
            return held[1]
        lay = self.layout
        parts = [counts.feature_counts(f.name) if f.name in counts.features else np.zeros(f.size, np.int64)
                 for f in lay.features]
        out = np.concatenate([*parts, np.asarray(counts.output), np.asarray(counts.confidence)]).astype(np.float64)
        if out.size != self.geometry.width:
            raise ValueError("reference counts do not fit the window's layout")
        out.setflags(write=False)
        self._rows[id(counts)] = (counts, out)
        return out


class SignalBuilder:
    """Signal values of one model's window; ``window_s`` is stamped on every value, and with
    ``tested_only`` (the short windows) only the statistics that carry a p-value are emitted."""

    def __init__(
        self,
        layout: Layout,
        profile: ReferenceProfile,
        min_samples: int,
        alpha: float,
        *,
        window_s: float | None = None,
        tested_only: bool = False,
    ):
        self.layout = layout
        self.profile = profile
        self.min_samples = min_samples
        self.alpha = alpha
        self.window_s = window_s
        self.tested_only = tested_only
        self.out: list[SignalValue | Segment] = []
        self.tests: list[Test] = []
        """The hypotheses of :attr:`out`, in order: ``(first, end, key, p_value)``, the values
        ``out[first:end]`` sharing one test (a feature's distribution statistics share its chi-square
        test) and its key ``(window_s, slice, signal, feature, test)``, for the p-value correction."""

    def _emit(
        self,
        v: SliceView,
        signal: Signal,
        feature: str,
        statistic: str,
        value: float,
        n: int,
        p_value: float | None = None,
        baseline: float | None = None,
    ) -> None:
        if p_value is None:
            if self.tested_only:
                return
        else:
            test = "distribution" if statistic in DISTRIBUTION_STATISTICS else statistic
            at = len(self.out)
            self.tests.append((at, at + 1, (self.window_s, v.slice, signal, feature, test), p_value))
        self.out.append(SignalValue(  # positional: thousands per evaluation
            v.model_id, v.slice, signal, feature, statistic, float(value), int(n), n >= self.min_samples,
            p_value, None, baseline, self.profile.id, self.profile.content_hash, self.window_s,
        ))

    def _distributions(self, table: DistributionTable, row: int, blocks: range) -> None:
        """The statistics of ``blocks`` of one view: a segment of the evaluation's table."""
        self.out.append(Segment(table, row, blocks.start, blocks.stop))

    def window_signals(
        self,
        views: Sequence[SliceView],
        bars: Sequence[tuple[QualityBar, tuple[int, int] | None]],
        adwins: Sequence[tuple[bool, float, int] | None],
        references: ReferenceRows,
        stats: tuple[DistributionTable, int],
    ) -> None:
        """Signal values of every slice of one window, each slice's in order. ``stats``: the
        distribution statistics of all slices and blocks, made at once with other windows' rows
        (:func:`distribution_table`), and the row of ``views[0]`` in it."""
        if not views:
            return
        table, row0 = stats
        quantiles = None
        if not self.tested_only and self.layout.sketched:
            quantiles = self._quantile_table(views, references)
        nf = len(self.layout.features)
        for i, (v, (bar, bar_counts), adwin) in enumerate(zip(views, bars, adwins, strict=True)):
            # per slice, in this order: inputs, their quantiles, output and confidence, quality, coverage
            self._distributions(table, row0 + i, range(nf))
            if quantiles is not None:
                self.out.append(Segment(quantiles, i, 0, len(quantiles.features)))
            self._distributions(table, row0 + i, range(nf, nf + 2))
            self._rest(v, bar, adwin, bar_counts)

    def _quantile_table(self, views: Sequence[SliceView], references: ReferenceRows) -> QuantileTable:
        """p50/p95/p99 of each sketched feature of every view, with the p99 of the view's reference
        (its ``p99_shift``): one row per view."""
        lay = self.layout
        n, cols = segment_quantiles(np.stack([v.sketch for v in views]), references.sketch_starts,
                                    references.sketch_sizes, tuple(q for _, q in QUANTILES))
        return QuantileTable(
            views[0].model_id, self.profile.id, self.profile.content_hash, self.min_samples, self.window_s,
            tuple(v.slice for v in views), tuple(lay.features[j].name for j in lay.sketched), n,
            references.sketch_points[cols],
            np.array([references.reference_p99(v.reference) for v in views], dtype=np.float64).reshape(n.shape),
        )

    def _rest(
        self, v: SliceView, bar: QualityBar, adwin: tuple[bool, float, int] | None, bar_counts: tuple[int, int] | None
    ) -> None:
        """Mean confidence, quality and label coverage of one slice. ``bar_counts``: (correct,
        labelled) of the reference when the accuracy bar is its accuracy."""
        ref = v.reference
        s = v.scalars
        if s[CONF_N] > 0 and not self.tested_only:
            mean_conf = s[CONF_SUM] / FIXED_POINT / s[CONF_N]
            self._emit(v, "output", "confidence", "mean_confidence", mean_conf, s[CONF_N])
            ref_conf = ref.mean_confidence
            if ref_conf is not None:
                self._emit(
                    v,
                    "output",
                    "confidence",
                    "mean_confidence_delta",
                    abs(mean_conf - ref_conf),
                    s[CONF_N],
                    baseline=ref_conf,
                )
        self._quality(v, bar, adwin, bar_counts)
        if not self.tested_only:
            self._coverage(v)

    def _quality(
        self,
        v: SliceView,
        bar: QualityBar,
        adwin: tuple[bool, float, int] | None,
        bar_counts: tuple[int, int] | None,
    ) -> None:
        s = v.scalars
        conf = 1.0 - self.alpha
        acc_bar, score_bar = bar.accuracy, bar.score
        n = int(s[CORRECT_N])
        if n > 0:
            lo, hi = wilson_interval(int(s[CORRECT_SUM]), n, conf)
            self._emit(v, "quality", "was_correct", "accuracy", s[CORRECT_SUM] / n, n, baseline=acc_bar)
            self._emit(v, "quality", "was_correct", "accuracy_wilson_lower", lo, n)
            self._emit(v, "quality", "was_correct", "accuracy_wilson_upper", hi, n)
            if acc_bar is not None:
                correct = int(s[CORRECT_SUM])
                if bar_counts is not None:
                    p = _below_reference_p(correct, n, *bar_counts)
                else:
                    p = float(bdtr(correct, n, acc_bar)) if acc_bar > 0 else 1.0
                acc = correct / n
                self._emit(v, "quality", "was_correct", "accuracy_gap", acc_bar - acc, n, p_value=p, baseline=acc_bar)
        if adwin is not None:
            drop, estimate, seen = adwin
            self._emit(v, "quality", "was_correct", "adwin_drift", 1.0 if drop else 0.0, seen)
            self._emit(v, "quality", "was_correct", "adwin_estimate", estimate, seen)
        m = int(s[SCORE_N])
        if m > 0:
            mean, lo, hi = mean_interval(m, s[SCORE_SUM] / FIXED_POINT, s[SCORE_SQ] / FIXED_POINT, conf)
            self._emit(v, "quality", "score", "mean_score", mean, m, baseline=score_bar)
            if np.isfinite(lo):
                self._emit(v, "quality", "score", "score_lower", lo, m)
                self._emit(v, "quality", "score", "score_upper", hi, m)
            if score_bar is not None and np.isfinite(hi):
                self._emit(v, "quality", "score", "score_gap", score_bar - mean, m,
                           p_value=_below_bar_p(m, s[SCORE_SUM] / FIXED_POINT, s[SCORE_SQ] / FIXED_POINT, score_bar),
                           baseline=score_bar)

    def _coverage(self, v: SliceView) -> None:
        s = v.scalars
        n = int(s[EVENTS])
        if n == 0:
            return
        ref = v.reference_slice if self.profile.labelled else None
        agg = v.aggregate_scalars
        for feature, k in [("labels", LABELLED)] + [
            (f"labels:{src}", SOURCE_BASE + i) for i, src in enumerate(SOURCES)
        ]:
            if feature != "labels" and s[k] == 0 and (ref is None or ref.scalars[k] == 0):
                continue
            cov = s[k] / n
            self._emit(v, "label_coverage", feature, "coverage", cov, n)
            if ref is not None and ref.n > 0:
                base = ref.scalars[k] / ref.n
            elif v.slice != "all" and agg[EVENTS] > 0:
                base = agg[k] / agg[EVENTS]
            else:
                continue
            self._emit(v, "label_coverage", feature, "coverage_delta", abs(cov - base), n, baseline=base)


def views_statistics(views: Sequence[SliceView], references: ReferenceRows) -> BlockStatistics:
    """:func:`block_statistics` of each view's histogram against its reference's, one row per view
    (rows are independent, so the views of several windows can share one call)."""
    cur = np.stack([v.hist for v in views])
    ref = np.stack([references.row(v.reference) for v in views])
    return block_statistics(ref, cur, references.geometry)


def distribution_table(
    rows: Sequence[tuple[SliceView, float | None, bool]], references: ReferenceRows, min_samples: int
) -> DistributionTable:
    """The distribution statistics of every view of ``rows`` ``(view, window_s, main window)`` of
    one model, in one :func:`block_statistics` call (rows are independent, so several windows'
    views share it): what the builder emits for each (view, block) as a table."""
    views = [v for v, _, _ in rows]
    st = views_statistics(views, references)
    shown = np.stack([references.shown(v.reference, v.slice) for v in views]) & (st.total > 0)
    tested = shown & st.tested
    first = views[0]
    profile = references.profile
    return DistributionTable(
        first.model_id, profile.id, profile.content_hash, min_samples,
        tuple(v.slice for v in views), tuple(w for _, w, _ in rows), np.array([f for _, _, f in rows], dtype=bool),
        references.block_names, references.block_signals, references.geometry.numeric,
        references.geometry.unseen >= 0, shown, tested, st.total.astype(np.int64), st.present.astype(np.int64),
        {"missing_rate": st.missing_rate, "ref_missing_rate": st.ref_missing_rate, "psi": st.psi, "js": st.js,
         "ks": st.ks, "wasserstein": st.wasserstein, "chi2": st.chi2, "unseen_rate": st.unseen_rate,
         "p_value": st.p_value},
        np.full(st.total.shape, np.nan),
    )


def _below_bar_p(n: int, total: float, total_sq: float, bar: float) -> float:
    """One-sided normal test of "mean >= bar" from the sums (1.0 when the variance is unknown)."""
    if n < 2:
        return 1.0
    mean = total / n
    var = max(0.0, (total_sq - n * mean * mean) / (n - 1))
    if var == 0.0:
        return 0.0 if mean < bar else 1.0
    return float(ndtr((mean - bar) / math.sqrt(var / n)))


def configured_bar(quality_bars: Mapping[str, Mapping[str, QualityBar]], model_id: str, slice_label: str) -> QualityBar:
    """Configured bar for (model, slice), else the ``"*"`` model's; an empty bar when neither."""
    for key in (model_id, "*"):
        bar = quality_bars.get(key, {}).get(slice_label)
        if bar is not None:
            return bar
    return QualityBar()


def _below_reference_p(correct: int, n: int, ref_correct: int, ref_n: int) -> float:
    """One-sided pooled two-proportion z-test of "accuracy >= the reference's" (1.0 when undefined)."""
    if n == 0 or ref_n == 0:
        return 1.0
    pooled = (correct + ref_correct) / (n + ref_n)
    var = pooled * (1 - pooled) * (1 / n + 1 / ref_n)
    diff = correct / n - ref_correct / ref_n
    if var <= 0:
        return 0.0 if diff < 0 else 1.0
    return float(ndtr(diff / math.sqrt(var)))


def resolve_bar(
    quality_bars: Mapping[str, Mapping[str, QualityBar]],
    model_id: str,
    slice_label: str,
    reference: SliceCounts | None,
    labelled: bool,
) -> tuple[QualityBar, tuple[int, int] | None]:
    """Configured bar for (model, slice), else the ``"*"`` model's, else the reference's labelled
    baseline; with the reference's (correct, labelled) counts when the accuracy bar is the reference's."""
    bar = configured_bar(quality_bars, model_id, slice_label)
    if bar != QualityBar():
        return bar, None
    if reference is not None and labelled:
        counts = (int(reference.scalars[CORRECT_SUM]), int(reference.scalars[CORRECT_N]))
        return QualityBar(reference.accuracy, reference.mean_score), counts if counts[1] > 0 else None
    return QualityBar(), None


def cohort_signals(
    model_id: str,
    base: ReferenceProfile,
    layout: Layout,
    base_hist: NDArray[np.int64],
    member_hist: NDArray[np.int64],
    min_samples: int,
) -> list[SignalValue]:
    """Input distributions of a cohort member vs the group's base model, on the base's bins."""
    out = []
    for j, spec in enumerate(layout.features):
        a = base_hist[layout.block(j)][:-1]
        b = member_hist[layout.block(j)][:-1]
        if a.sum() == 0 or b.sum() == 0:
            continue
        n = int(min(a.sum(), b.sum()))
        for stat, value in (("psi", psi(a, b)), ("js", jensen_shannon(a, b))):
            out.append(
                SignalValue(
                    model_id,
                    "all",
                    "cohort",
                    spec.name,
                    stat,
                    value,
                    n,
                    n >= min_samples,
                    reference_id=base.id,
                    reference_hash=base.content_hash,
                )
            )
    return out
