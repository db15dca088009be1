"""The plain-data output of one evaluation: what alerting, metrics, the demo view and replay read.

The statistics engine (``monitor.stats``) produces a :class:`Snapshot` from its windowed state at
``evaluate(now)``; nothing here does I/O. Times are float seconds since the Unix epoch (UTC).

``slice`` is ``"all"`` for the aggregate of a model, or ``"key=value"`` for a protected slice
(``"domain=regulatory"``); only declared slice values ever appear, so the value is safe as a
Prometheus label.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Literal, overload

import numpy as np
from numpy.typing import NDArray

AGGREGATE = "all"
_MODEL_ID = attrgetter("model_id")

Signal = Literal["input", "output", "quality", "label_coverage", "cohort"]


def slice_label(key: str, value: str) -> str:
    return f"{key}={value}"


@dataclass(slots=True)
class SignalValue:
    """One statistic of one signal for one (model, slice, feature) in the current window.

    ``feature`` names the input feature for input drift, ``"output"``/``"confidence"`` for output
    drift, ``"was_correct"``/``"score"`` for quality, ``"labels"`` (or ``"labels:<source>"``) for label
    coverage, and the feature compared between cohorts for cohort balance.
    ``p_value`` is the raw p-value where the statistic has one; ``p_value_adjusted`` is after the
    Benjamini-Hochberg (or Bonferroni) correction across the features x slices tested in this
    evaluation. ``sufficient`` is False when ``sample_count`` is below the minimum for a verdict.
    ``baseline`` is the reference value the statistic is compared with where that is meaningful
    (the release-gate bar for quality, the reference p99 for a tail shift). ``window_s`` is the
    length of the event-time window the value is over (None: the snapshot's main window); the
    shorter windows carry only statistics with a p-value, tested and corrected with the rest.

    Treat it as immutable once the evaluation that made it returned (:func:`dataclasses.replace`
    for a changed copy). It is not a frozen dataclass because an evaluation makes thousands and a
    frozen one costs six times as much to construct; the engine sets ``p_value_adjusted`` on the
    values it has just made, before anyone else sees them.
    """

    model_id: str
    slice: str
    signal: Signal
    feature: str
    statistic: str
    value: float
    sample_count: int
    sufficient: bool = True
    p_value: float | None = None
    p_value_adjusted: float | None = None
    baseline: float | None = None
    reference_id: str | None = None
    reference_hash: str | None = None
    window_s: float | None = None


MISSING_STATISTICS = ("missing_rate", "missing_rate_delta")
"""A distribution cell's statistics of its missing bin (main window only; no p-value)."""
TESTED_STATISTICS = ("psi", "js", "ks", "wasserstein", "chi2", "unseen_rate")
"""A distribution cell's statistics of its value bins, in the order a cell emits them (numeric
blocks ``ks`` and ``wasserstein``, the others ``chi2``; ``unseen_rate`` where the block has an
unseen-category bin); they share the cell's chi-square p-value."""
CELL_ORDER = {name: i for i, name in enumerate(MISSING_STATISTICS + TESTED_STATISTICS)}


@dataclass(frozen=True, slots=True, eq=False)
class DistributionTable:
    """The distribution statistics of one model's evaluation as columns: one row per (window,
    slice) view, one column per histogram block (input features, then ``output`` and
    ``confidence``). Each shown cell stands for the :class:`SignalValue` s of its statistics
    (:meth:`cell`, in the signal builder's order); an evaluation has about 1,500 of them per model,
    made only when read, while the alert rules and the p-value correction read the arrays.

    ``p_adjusted`` is filled by the engine's p-value correction before anyone else sees the table
    (as it sets :attr:`SignalValue.p_value_adjusted`); treat the table as immutable after that."""

    model_id: str
    reference_id: str | None
    reference_hash: str | None
    min_samples: int
    slices: tuple[str, ...]
    """Per row: the slice label."""
    windows: tuple[float | None, ...]
    """Per row: the window length in seconds (``SignalValue.window_s``)."""
    full: NDArray[np.bool_]
    """Per row: a main-window row, which also carries the missing-bin statistics."""
    features: tuple[str, ...]
    """Per block: the ``feature`` of its values."""
    signals: tuple[Signal, ...]
    """Per block: ``input`` or ``output``."""
    numeric: NDArray[np.bool_]
    unseen: NDArray[np.bool_]
    shown: NDArray[np.bool_]
    """Per cell: has values (samples in the window; an input the reference has and that is not the
    row's own slice key)."""
    tested: NDArray[np.bool_]
    """Per cell: shown, and both sides have present counts (the tested statistics exist)."""
    total: NDArray[np.int64]
    present: NDArray[np.int64]
    columns: dict[str, NDArray[np.float64]]
    """Per cell, by statistic: the values of :data:`TESTED_STATISTICS`, ``missing_rate``,
    ``ref_missing_rate`` and ``p_value`` (NaN where undefined)."""
    p_adjusted: NDArray[np.float64]

    def emitted(self, statistic: str) -> NDArray[np.bool_]:
        """The cells that have a value of ``statistic``."""
        if statistic in MISSING_STATISTICS:
            return self.shown & self.full[:, None]
        if statistic in ("ks", "wasserstein"):
            return self.tested & self.numeric
        if statistic == "chi2":
            return self.tested & ~self.numeric
        if statistic == "unseen_rate":
            return self.tested & self.unseen
        if statistic in ("psi", "js"):
            return self.tested
        raise KeyError(statistic)

    def values_of(self, statistic: str) -> NDArray[np.float64]:
        """``statistic`` of every cell (meaningful where :meth:`emitted`)."""
        if statistic == "missing_rate_delta":
            return np.abs(self.columns["missing_rate"] - self.columns["ref_missing_rate"])
        return self.columns[statistic]

    def counts_of(self, statistic: str) -> NDArray[np.int64]:
        """The sample count of ``statistic`` in every cell: all events for the missing-bin
        statistics, the present ones for the others."""
        return self.total if statistic in MISSING_STATISTICS else self.present

    def value(self, row: int, block: int, statistic: str) -> SignalValue:
        """The :class:`SignalValue` of one statistic of one cell."""
        signal, feature = self.signals[block], self.features[block]
        ref = self.reference_id, self.reference_hash, self.windows[row]
        if statistic in MISSING_STATISTICS:
            n = int(self.total[row, block])
            b = float(self.columns["ref_missing_rate"][row, block])
            x = float(self.columns["missing_rate"][row, block])
            value = x if statistic == "missing_rate" else abs(x - b)
            return SignalValue(self.model_id, self.slices[row], signal, feature, statistic, value, n,
                               n >= self.min_samples, None, None, b, *ref)
        n = int(self.present[row, block])
        return SignalValue(self.model_id, self.slices[row], signal, feature, statistic,
                           float(self.columns[statistic][row, block]), n, n >= self.min_samples,
                           float(self.columns["p_value"][row, block]), float(self.p_adjusted[row, block]), None,
                           *ref)

    def cell(self, row: int, block: int) -> list[SignalValue]:
        """Every value of one cell, in the builder's order (none if the cell is not shown)."""
        if not self.shown[row, block]:
            return []
        names: list[str] = list(MISSING_STATISTICS) if self.full[row] else []
        if self.tested[row, block]:
            names += ["psi", "js"]
            names += ["ks", "wasserstein"] if self.numeric[block] else ["chi2"]
            if self.unseen[block]:
                names.append("unseen_rate")
        return [self.value(row, block, name) for name in names]


QUANTILE_STATISTICS = ("p50", "p95", "p99", "p99_shift")
"""A quantile cell's statistics, in the order it emits them (``p99_shift`` where the reference has a
p99)."""


@dataclass(frozen=True, slots=True, eq=False)
class QuantileTable:
    """The quantiles of one model's main window as columns: one row per slice view, one column per
    sketched input feature. Each cell with samples stands for its ``p50``, ``p95`` and ``p99`` and,
    where the reference has a p99, its ``p99_shift`` (:meth:`cell`); about 300 values a model and
    evaluation at 13 sketched features and 5 slice values, made only when read, while the alert
    rules read the arrays."""

    model_id: str
    reference_id: str | None
    reference_hash: str | None
    min_samples: int
    window_s: float | None
    slices: tuple[str, ...]
    """Per row: the slice label."""
    features: tuple[str, ...]
    """Per column: the feature."""
    counts: NDArray[np.int64]
    """Per cell: the samples in the feature's sketch."""
    quantiles: NDArray[np.float64]
    """Per cell: p50, p95 and p99 (``(rows, features, 3)``; meaningless where the count is 0)."""
    reference_p99: NDArray[np.float64]
    """Per cell: the p99 of the row's reference (NaN or infinite: none)."""

    def emitted(self, statistic: str) -> NDArray[np.bool_]:
        """The cells that have a value of ``statistic``."""
        if statistic == "p99_shift":
            return (self.counts > 0) & np.isfinite(self.reference_p99)
        if statistic in QUANTILE_STATISTICS:
            return self.counts > 0
        raise KeyError(statistic)

    def values_of(self, statistic: str) -> NDArray[np.float64]:
        """``statistic`` of every cell (meaningful where :meth:`emitted`)."""
        if statistic == "p99_shift":
            ref = self.reference_p99
            with np.errstate(invalid="ignore"):
                return np.abs(self.quantiles[:, :, 2] - ref) / np.maximum(np.abs(ref), 1e-12)
        return self.quantiles[:, :, QUANTILE_STATISTICS.index(statistic)]

    def counts_of(self, statistic: str) -> NDArray[np.int64]:
        return self.counts

    def value(self, row: int, col: int, statistic: str) -> SignalValue:
        """The :class:`SignalValue` of one statistic of one cell."""
        n = int(self.counts[row, col])
        baseline = None
        if statistic == "p99_shift":
            ref = float(self.reference_p99[row, col])
            x = abs(float(self.quantiles[row, col, 2]) - ref) / max(abs(ref), 1e-12)
            baseline = ref
        else:
            x = float(self.quantiles[row, col, QUANTILE_STATISTICS.index(statistic)])
        return SignalValue(self.model_id, self.slices[row], "input", self.features[col], statistic, x, n,
                           n >= self.min_samples, None, None, baseline, self.reference_id, self.reference_hash,
                           self.window_s)

    def cell(self, row: int, col: int) -> list[SignalValue]:
        """Every value of one cell, in the builder's order (none without samples)."""
        if self.counts[row, col] == 0:
            return []
        names = QUANTILE_STATISTICS if math.isfinite(self.reference_p99[row, col]) else QUANTILE_STATISTICS[:3]
        return [self.value(row, col, name) for name in names]


@dataclass(frozen=True, slots=True)
class Segment:
    """Blocks ``start:stop`` of one row of a :class:`DistributionTable` (columns of a
    :class:`QuantileTable`), standing for their values at this place of a :class:`ValueSet`."""

    table: DistributionTable | QuantileTable
    row: int
    start: int
    stop: int

    def values(self) -> list[SignalValue]:
        return [v for b in range(self.start, self.stop) for v in self.table.cell(self.row, b)]


_Parts = tuple[list[tuple[int, SignalValue]], list[DistributionTable], list[QuantileTable], set[str]]


class ValueSet(Sequence[SignalValue]):
    """An evaluation's values: plain :class:`SignalValue` s and :class:`Segment` s of distribution
    and quantile tables, in order. As a sequence it is the values, the segments' made on first use (a replay
    that nobody scrapes never makes them); :attr:`scalars` and :attr:`tables` are what the alert
    rules and the p-value correction read."""

    __slots__ = ("_parts", "_values", "items")

    def __init__(self, items: Iterable[SignalValue | Segment] = ()) -> None:
        self.items: tuple[SignalValue | Segment, ...] = tuple(items)
        self._values: tuple[SignalValue, ...] | None = None
        self._parts: _Parts | None = None

    @classmethod
    def of(cls, values: Sequence[SignalValue]) -> ValueSet:
        return values if isinstance(values, ValueSet) else cls(values)

    def _split(self) -> _Parts:
        if self._parts is None:
            scalars: list[tuple[int, SignalValue]] = []
            tables: dict[int, DistributionTable] = {}
            quantiles: dict[int, QuantileTable] = {}
            models: set[str] = set()
            for i, x in enumerate(self.items):
                if isinstance(x, Segment):
                    t = x.table
                    held = tables if isinstance(t, DistributionTable) else quantiles
                    if id(t) not in held:
                        held[id(t)] = t  # type: ignore[assignment]
                        models.add(t.model_id)
                else:
                    scalars.append((i, x))
                    models.add(x.model_id)
            self._parts = scalars, list(tables.values()), list(quantiles.values()), models
        return self._parts

    @property
    def scalars(self) -> list[tuple[int, SignalValue]]:
        """The plain values with their place in :attr:`items`."""
        return self._split()[0]

    @property
    def tables(self) -> list[DistributionTable]:
        """The distribution tables, each once, in order."""
        return self._split()[1]

    @property
    def quantile_tables(self) -> list[QuantileTable]:
        """The quantile tables, each once, in order."""
        return self._split()[2]

    def models(self) -> set[str]:
        return set(self._split()[3])

    def _all(self) -> tuple[SignalValue, ...]:
        if self._values is None:
            out: list[SignalValue] = []
            for x in self.items:
                if isinstance(x, Segment):
                    out.extend(x.values())
                else:
                    out.append(x)
            self._values = tuple(out)
        return self._values

    def __iter__(self) -> Iterator[SignalValue]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, i: int) -> SignalValue: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[SignalValue]: ...
    def __getitem__(self, i: int | slice) -> SignalValue | Sequence[SignalValue]:
        return self._all()[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ValueSet | tuple | list):
            return self._all() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ValueSet({len(self.items)} items)"


@dataclass(frozen=True, slots=True)
class LineageChange:
    """A lineage value (or the label source's judge_model/rubric_version) that changed in the window."""

    model_id: str
    field: str
    from_value: str | None
    to_value: str
    first_seen: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one evaluation found, for every model the engine holds state for."""

    evaluated_at: float
    window_start: float
    window_end: float
    values: Sequence[SignalValue] = ()
    """The values (the engine's: a :class:`ValueSet`)."""
    lineage_changes: tuple[LineageChange, ...] = ()
    late_events_total: int = 0
    models: tuple[str, ...] = field(default=())
    unreferenced_events_total: int = 0  # events of models without a profile, dropped (buffer cap)

    def for_model(self, model_id: str) -> tuple[SignalValue, ...]:
        return tuple(v for v in self.values if v.model_id == model_id)

    def value_models(self) -> set[str]:
        """The model ids of :attr:`values` (one pass; a cohort member may have values without being
        one of :attr:`models`)."""
        if isinstance(self.values, ValueSet):
            return self.values.models()
        return set(map(_MODEL_ID, self.values))
