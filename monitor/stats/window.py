"""Event-time windowed counts of one model: a ring of ``window_buckets`` buckets per slice.

Each bucket (``bucket_seconds`` of ``served_at``) holds, per slice (index 0 = the aggregate, then
the protected (key, value) pairs of the layout), the histogram counts, quantile-sketch counts and
scalar sums of its events. Memory is bounded: ``(window_buckets + future_buckets) x slices x (bins +
sketch + scalars)`` counters at most; a bucket's sketch counts are kept sparse (only the cells its
events touched, see :mod:`monitor.stats.sparse_counts`), since a sketch has ~1,600 counters per
feature and a bucket touches few of them.
The ring holds ``window_buckets + future_buckets`` slots, so buckets ahead of the clock (events
stamped up to ``future_buckets`` buckets ahead) never evict a bucket of the window. An event is
late when, at its arrival (the ingest clock, passed in), its bucket has already left the window or
it was served more than ``allowed_lateness_s`` before it arrived; late events are counted in
:attr:`late_events` and not added. The verdict depends on the event and its arrival only, never on
other events: one event stamped far ahead cannot make on-time events late, a backlog read an hour
late still counts while its buckets are in the window, and a rebuild from the stored rows
(arrival = ``ingested_at``, rows in ``served_at`` order) holds exactly the counts the live run
held. Labels are credited to the bucket of their
prediction's ``served_at`` if that bucket is still held.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.records import LabelChange
from monitor.stats.columns import EventColumns, slice_membership
from monitor.stats.contributions import label_contributions
from monitor.stats.event_frame import EventFrame
from monitor.stats.label_columns import LabelColumns
from monitor.stats.layout import EVENTS, N_SCALARS, Layout
from monitor.stats.sparse_counts import SparseCounts

EMPTY = np.iinfo(np.int64).min


def window_bounds(now: float, bucket_seconds: float, window_buckets: int) -> tuple[float, float]:
    """``[start, end)`` of the window at ``now``: the ``window_buckets`` buckets ending with the one
    that holds ``now``.

    >>> window_bounds(125.0, 60.0, 2)
    (60.0, 180.0)
    """
    cur = math.floor(now / bucket_seconds)
    return (cur - window_buckets + 1) * bucket_seconds, (cur + 1) * bucket_seconds


@dataclass(frozen=True)
class WindowTotals:
    """Counts summed over the buckets of the current window, per slice (axis 0)."""

    hist: NDArray[np.int64]
    sketch: NDArray[np.int64]
    scalars: NDArray[np.int64]
    start: float
    end: float


SPARSE_FACTOR = 8
"""A batch's sketch counts are added as sparse cells while cells x this < the dense delta's size."""


@dataclass
class _Running:
    """Running sums of one window length, per slice, for the window ending with bucket ``cur``."""

    cur: int
    hist: NDArray[np.int64]
    sketch: NDArray[np.int64]
    scalars: NDArray[np.int64]

    @classmethod
    def empty(cls, layout: Layout, cur: int, sketch: bool = True) -> _Running:
        """``sketch`` False: no sketch sums (an empty ``(slices, 0)`` array)."""
        s = layout.n_slices
        return cls(cur, np.zeros((s, layout.hist_size), np.int64),
                   np.zeros((s, layout.sketch_size if sketch else 0), np.int64), np.zeros((s, N_SCALARS), np.int64))

    def add_slot(self, window: ModelWindow, slot: int, sign: int) -> None:
        """Add (``sign`` 1) or subtract (-1) one slot's counts (its rows of every slice)."""
        s = window.layout.n_slices
        rows = slice(slot * s, (slot + 1) * s)
        if sign > 0:
            self.hist += window.hist[rows]
            self.scalars += window.scalars[rows]
        else:
            self.hist -= window.hist[rows]
            self.scalars -= window.scalars[rows]
        if self.sketch.shape[1]:
            window.sketch_cells[slot].add_into(self.sketch.reshape(-1), sign)


class ModelWindow:
    def __init__(
        self,
        layout: Layout,
        bucket_seconds: float,
        window_buckets: int,
        allowed_lateness_s: float,
        future_buckets: int = 10,
        sketch_windows: Sequence[int] | None = None,
    ):
        if bucket_seconds <= 0 or window_buckets < 1 or allowed_lateness_s < 0 or future_buckets < 0:
            raise ValueError(
                "bucket_seconds > 0, window_buckets >= 1, allowed_lateness_s >= 0 and future_buckets >= 0 required"
            )
        self.layout = layout
        self.bucket_seconds = float(bucket_seconds)
        self.window_buckets = int(window_buckets)
        self.allowed_lateness_s = float(allowed_lateness_s)
        self.future_buckets = int(future_buckets)
        self.sketch_windows = None if sketch_windows is None else frozenset(int(n) for n in sketch_windows)
        """Window lengths whose totals hold the sketch counts (None: every length); the others' are
        empty ``(slices, 0)`` arrays and cost nothing to keep (the engine reads quantiles of the main
        window only)."""
        self.ring = self.window_buckets + self.future_buckets
        w, s = self.ring, layout.n_slices
        self.hist = np.zeros((w * s, layout.hist_size), dtype=np.int64)
        self.sketch_cells = [SparseCounts(s * layout.sketch_size) for _ in range(w)]
        """Per slot: its sketch counts, cell ``slice * sketch_size + column``."""
        self.scalars = np.zeros((w * s, N_SCALARS), dtype=np.int64)
        self.slot_bucket = np.full(w, EMPTY, dtype=np.int64)
        self.late_events = 0
        self.late_labels = 0
        self.version = 0
        """Counts every batch of events or label changes handed in (credited or not): a reader that
        saw the same version at the same bucket saw the same state (see the engine's evaluation cache)."""
        self._running: dict[int, _Running] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_running", None)  # derived: rebuilt from the buckets on the first read
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.version = int(state.get("version", 0))
        self.sketch_windows = state.get("sketch_windows")
        self._running = {}

    @property
    def state_size(self) -> int:
        """Number of counters the window can hold (fixed once constructed); the sketch counters are
        held sparsely, :attr:`sketch_cells_held` of them."""
        sketch = self.ring * self.layout.n_slices * self.layout.sketch_size
        return int(self.hist.size + sketch + self.scalars.size + self.slot_bucket.size)

    @property
    def sketch_cells_held(self) -> int:
        return sum(len(c) for c in self.sketch_cells)

    def slot_sketch(self, slot: int) -> NDArray[np.int64]:
        """One slot's sketch counts as a dense ``(slices, sketch_size)`` array (a copy)."""
        return self.sketch_cells[slot].dense().reshape(self.layout.n_slices, self.layout.sketch_size)

    def _buckets(self, t: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.floor(t / self.bucket_seconds).astype(np.int64)

    def _expand(
        self,
        rows: NDArray[np.int64],
        b: NDArray[np.int64],
        slices: Sequence[Mapping[str, str]],
        feats: Sequence[Mapping[str, Any]],
        member: list[NDArray[np.int64]] | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Rows repeated once per slice they belong to, and their (slot, slice) flat index."""
        parts = [rows]
        sidx = [np.zeros(rows.size, dtype=np.int64)]
        if self.layout.slices:
            if member is None:
                member = slice_membership(slices, feats, self.layout.slices)
            keep = np.zeros(b.size, dtype=bool)
            keep[rows] = True
            for j, m in enumerate(member, start=1):
                m = m[keep[m]]
                parts.append(m)
                sidx.append(np.full(m.size, j, dtype=np.int64))
        rexp = np.concatenate(parts)
        combo = (b[rexp] % self.ring) * self.layout.n_slices + np.concatenate(sidx)
        return rexp, combo

    def observe(self, rec: EventColumns | EventFrame, arrival: float | None = None) -> int:
        """Add a batch of this model's events that arrived at ``arrival``; returns how many were
        accepted. ``arrival=None``: rows already checked against their own arrival (a rebuild,
        which must pass them in ``served_at`` order)."""
        n = len(rec)
        if n == 0:
            return 0
        self.version += 1
        t = np.asarray(rec.served_at, dtype=np.float64)
        b = self._buckets(t)
        if arrival is None:
            ok = np.ones(n, dtype=bool)
        else:
            now = math.floor(arrival / self.bucket_seconds)
            ok = (b > now - self.window_buckets) & (b <= now + self.future_buckets)
            ok &= t >= arrival - self.allowed_lateness_s
        # a slot keeps its newest bucket: rows of a bucket a whole ring older than the newest one held
        # or in this batch (only a rebuild or a long backlog gives them) are outside every window
        if ok.any():
            top = max(int(self.slot_bucket.max()), int(b[ok].max()))
            ok &= b > top - self.ring
        rows = np.flatnonzero(ok)
        self.late_events += int(n - rows.size)
        if rows.size == 0:
            return 0
        for ub in np.unique(b[rows]):
            slot = int(ub % self.ring)
            if self.slot_bucket[slot] != ub:
                s = self.layout.n_slices
                for held in self.sketch_cells:  # a new bucket: the others' batches, merged, take less room
                    held.merge()
                self._leave(slot)
                self.hist[slot * s : (slot + 1) * s] = 0
                self.sketch_cells[slot] = SparseCounts(s * self.layout.sketch_size)
                self.scalars[slot * s : (slot + 1) * s] = 0
                self.slot_bucket[slot] = ub
        hist_idx, sketch_idx, scal = self.layout.bin_records(rec)
        if isinstance(rec, EventFrame):
            rexp, combo = self._expand(rows, b, (), (), rec.membership(self.layout.slices))
        else:
            rexp, combo = self._expand(rows, b, rec.slices, rec.features)
        ucombo, inv = np.unique(combo, return_inverse=True)
        u = ucombo.size
        h = self.layout.hist_size
        keys = (inv[:, None] * h + hist_idx[rexp]).ravel()
        dh = np.bincount(keys, minlength=u * h).reshape(u, h)
        self.hist[ucombo] += dh
        self._enter(ucombo, "hist", dh)
        if sketch_idx.shape[1]:
            k = self.layout.sketch_size
            sk = sketch_idx[rexp]
            keys = (inv[:, None] * k + sk)[sk >= 0]
            if keys.size * SPARSE_FACTOR < u * k:
                # a small batch touches a few of the rows' ~16,000 counters: sort its cells
                cells, counts = np.unique(keys, return_counts=True)
            else:  # a large batch: counting into a dense delta is cheaper than sorting its cells
                dk = np.bincount(keys, minlength=u * k)
                cells = np.flatnonzero(dk)
                counts = dk[cells]
            if cells.size:  # (none: no finite sketched value in the batch)
                self._add_sketch_cells(ucombo[cells // k], cells % k, counts)
        self._add_scalars(ucombo, inv, scal[rexp])
        return int(rows.size)

    def _add_sketch_cells(self, rows: NDArray[np.int64], cols: NDArray[np.int64], counts: NDArray[np.int64]) -> None:
        """``counts`` at (slot, slice) ``rows`` (ascending), sketch columns ``cols`` (ascending within
        a row), into each slot's sparse counts and the running totals."""
        k, s = self.layout.sketch_size, self.layout.n_slices
        first = int(rows[0]) // s
        if int(rows[-1]) // s == first:  # one bucket (the usual batch)
            self.sketch_cells[first].add((rows - first * s) * k + cols, counts)
        else:
            slot_of, flat = np.divmod(rows, s)
            flat = flat * k + cols  # ascending within each slot
            bounds = [0, *(np.flatnonzero(slot_of[1:] != slot_of[:-1]) + 1).tolist(), slot_of.size]
            for a, z in itertools.pairwise(bounds):
                self.sketch_cells[int(slot_of[a])].add(flat[a:z], counts[a:z])
        self._enter_cells(rows, cols, counts)

    def _add_scalars(self, ucombo: NDArray[np.int64], inv: NDArray[np.int64], scal: NDArray[np.int64]) -> None:
        u = ucombo.size
        ds = np.zeros((u, N_SCALARS), dtype=np.int64)
        for c in np.flatnonzero(scal.any(axis=0)):
            # float64 weights are exact here: per-batch sums stay far below 2**53
            ds[:, c] = np.rint(np.bincount(inv, weights=scal[:, c], minlength=u)).astype(np.int64)
        self.scalars[ucombo] += ds
        self._enter(ucombo, "scalars", ds)

    # ---- running totals: each window length's sum, moved as buckets enter and leave

    def _holding(self, rows: NDArray[np.int64]) -> Iterator[tuple[_Running, NDArray[np.bool_], NDArray[np.int64]]]:
        """Each running total whose window holds the bucket of some of the (slot, slice) ``rows``:
        the total, which rows it holds, and every row's slice index."""
        if not self._running:
            return
        s = self.layout.n_slices
        bucket = self.slot_bucket[rows // s]
        sidx = rows % s
        for n, run in self._running.items():
            inside = (bucket > run.cur - n) & (bucket <= run.cur)
            if inside.any():
                yield run, inside, sidx

    def _enter(self, combo: NDArray[np.int64], part: str, delta: NDArray[np.int64]) -> None:
        """Counts ``delta`` just added at (slot, slice) rows ``combo``: add them to every running
        total whose window holds their bucket."""
        for run, inside, sidx in self._holding(combo):
            target = getattr(run, part)
            if inside.all() and np.unique(sidx).size == sidx.size:  # one bucket: each slice once
                target[sidx] += delta
                continue
            for j in np.unique(sidx[inside]).tolist():  # a few slices: no np.add.at (slow)
                target[j] += delta[inside & (sidx == j)].sum(axis=0)

    def _enter_cells(self, rows: NDArray[np.int64], cols: NDArray[np.int64], counts: NDArray[np.int64]) -> None:
        """:meth:`_enter` of sketch counts given as cells: ``counts`` added at (slot, slice) rows
        ``rows``, sketch columns ``cols`` (one slice's cell may come from two buckets: ``np.add.at``)."""
        s = self.layout.n_slices
        one_slot = rows.size == 0 or rows[0] // s == rows[-1] // s  # (rows ascending) each cell once
        for run, inside, sidx in self._holding(rows):
            if not run.sketch.shape[1]:
                continue
            if inside.all() and one_slot:
                run.sketch[sidx, cols] += counts
            elif inside.all():
                np.add.at(run.sketch, (sidx, cols), counts)
            else:
                np.add.at(run.sketch, (sidx[inside], cols[inside]), counts[inside])

    def _leave(self, slot: int) -> None:
        """Slot ``slot`` is about to be emptied for a newer bucket: take its old bucket out of every
        running total that holds it (only a clock far behind the events gives that)."""
        old = int(self.slot_bucket[slot])
        if old == EMPTY:
            return
        for n, run in self._running.items():
            if run.cur - n < old <= run.cur:
                run.add_slot(self, slot, -1)

    def _running_totals(self, cur: int, n: int) -> _Running:
        """The sums of the ``n`` buckets ending with bucket ``cur``: moved from the last read (buckets
        that left are subtracted, buckets that entered added), or summed afresh when the clock moved
        by a whole window or more (or went back)."""
        run = self._running.get(n)
        if run is None or not 0 <= cur - run.cur < n:
            run = _Running.empty(self.layout, cur, self.sketch_windows is None or n in self.sketch_windows)
            for slot in np.flatnonzero((self.slot_bucket > cur - n) & (self.slot_bucket <= cur)).tolist():
                run.add_slot(self, slot, 1)
            self._running[n] = run
            return run
        for b in range(run.cur - n + 1, cur - n + 1):  # left the window
            slot = b % self.ring
            if self.slot_bucket[slot] == b:
                run.add_slot(self, slot, -1)
        for b in range(run.cur + 1, cur + 1):  # entered it (may already hold events stamped ahead)
            slot = b % self.ring
            if self.slot_bucket[slot] == b:
                run.add_slot(self, slot, 1)
        run.cur = cur
        return run

    def observe_labels(
        self, changes: Sequence[LabelChange] | LabelColumns, member: list[NDArray[np.int64]] | None = None
    ) -> int:
        """Retract old / add new labels in their predictions' buckets; returns how many were credited.

        ``member``: :func:`slice_membership` of ``changes`` on this layout's slices, if already known."""
        if not changes:
            return 0
        self.version += 1
        t, scal, slices, feats = label_contributions(changes)
        if member is not None and len(t) != len(changes):  # retractions add rows: recompute for all rows
            member = None
        b = self._buckets(t)
        ok = self.slot_bucket[b % self.ring] == b
        rows = np.flatnonzero(ok)
        self.late_labels += int(np.sum(~ok & (scal[:, 1] > 0)))
        if rows.size == 0:
            return 0
        rexp, combo = self._expand(rows, b, slices, feats, member)
        ucombo, inv = np.unique(combo, return_inverse=True)
        self._add_scalars(ucombo, inv, scal[rexp])
        return int(rows.size)

    def buckets_between(self, after: int | None, upto: int) -> list[tuple[int, NDArray[np.int64]]]:
        """The held buckets ``after < bucket <= upto`` (all held up to ``upto`` when ``after`` is None),
        oldest first, each with its histogram counts per slice ``(slices, hist_size)`` (a view)."""
        s = self.layout.n_slices
        held = self.slot_bucket != EMPTY
        pick = held & (self.slot_bucket <= upto)
        if after is not None:
            pick &= self.slot_bucket > after
        slots = np.flatnonzero(pick)
        slots = slots[np.argsort(self.slot_bucket[slots], kind="stable")]
        return [(int(self.slot_bucket[k]), self.hist[k * s : (k + 1) * s]) for k in slots]

    def event_count(self, now: float) -> int:
        """Events in the (main) window ending with the bucket that holds ``now``."""
        return int(self._running_totals(math.floor(now / self.bucket_seconds), self.window_buckets).scalars[0, EVENTS])

    def totals(self, now: float) -> WindowTotals:
        """Sum the buckets of the window ending with the bucket that holds ``now``."""
        return self.totals_over(now, (self.window_buckets,))[0]

    def totals_over(self, now: float, lengths: Sequence[int], *, views: bool = False) -> list[WindowTotals]:
        """The totals of several windows ending with the bucket that holds ``now``, ``lengths``
        buckets long (each at most :attr:`window_buckets`), from the same buckets (no copy of the
        data). Each length keeps running sums: a read subtracts the buckets that left the window
        since the last read and adds those that entered, and :meth:`observe` adds new counts to the
        sums whose window holds their bucket, so a read costs the buckets that moved, not the window.

        A length not in :attr:`sketch_windows` gives an empty ``(slices, 0)`` sketch.

        The totals are copies; with ``views``, read-only views of the running sums, which change
        with the window's next read or batch: for a caller that is done with them before (the
        engine's evaluation: a sketched window's sums are megabytes).

        >>> from monitor.stats.bins import FeatureSpec
        >>> lay = Layout((FeatureSpec.numeric("x", [0.0]),), FeatureSpec.categorical("output", ["a"]),
        ...              FeatureSpec.numeric("confidence", [0.5]), ())
        >>> w = ModelWindow(lay, 60.0, 10, 1e9)
        >>> for minute in range(10):
        ...     _ = w.observe(EventColumns([minute * 60.0] * (minute + 1), [{"x": 1.0}] * (minute + 1),
        ...                   ["a"] * (minute + 1), [0.9] * (minute + 1), [None] * (minute + 1),
        ...                   [{}] * (minute + 1), [None] * (minute + 1)), arrival=599.0)
        >>> [int(t.scalars[0][0]) for t in w.totals_over(599.0, (1, 5, 10))]  # 10, 10+9+8+7+6, all
        [10, 40, 55]
        """
        if any(not 1 <= n <= self.window_buckets for n in lengths):
            raise ValueError(f"window lengths must be within 1..{self.window_buckets} buckets")
        cur = math.floor(now / self.bucket_seconds)
        runs = [self._running_totals(cur, n) for n in lengths]
        take = _read_only if views else np.copy
        hist = [take(r.hist) for r in runs]
        sketch = [take(r.sketch) for r in runs]
        scalars = [take(r.scalars) for r in runs]
        return [
            WindowTotals(hist[i], sketch[i], scalars[i], *window_bounds(now, self.bucket_seconds, n))
            for i, n in enumerate(lengths)
        ]


def _read_only(a: NDArray[np.int64]) -> NDArray[np.int64]:
    out = a.view()
    out.flags.writeable = False
    return out
