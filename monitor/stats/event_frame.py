"""One model's inference events as polars columns, read by the statistics without a Python object per event.

:class:`EventFrame` is the columnar twin of :class:`~monitor.stats.columns.EventColumns`: the same
events, as a polars ``DataFrame`` in the event contract's shape (what ``pl.read_ndjson`` gives for
inference events, with ``served_at`` already converted to float epoch seconds):

- ``served_at`` (Float64, epoch seconds), ``output`` (String), ``confidence`` (Float64, null = none),
  ``tokens_in`` (numeric, null = none);
- ``input_features`` (Struct: one field per feature), ``slice`` (Struct, optional) and ``lineage``
  (Struct, optional).

Binning (:meth:`~monitor.stats.layout.Layout.bin_records`) and slice membership read whole columns:
numeric features are cast to Float64 (booleans 0/1, numeric strings parsed, anything else missing),
string and integer categories are looked up in one ``replace_strict``, booleans become
``"true"``/``"false"``. Columns of other types (floats used as categories, nested values) take the
per-value path of :class:`~monitor.stats.bins.FeatureSpec` on their Python values, so every event
gets the bin the object path gives it (the tests compare both on mixed inputs).

>>> import polars as pl
>>> f = EventFrame(pl.DataFrame({"served_at": [60.0, 61.0], "output": ["a", "b"], "confidence": [0.9, None],
...                               "tokens_in": [3, None], "input_features": [{"lang": "es"}, {"lang": "en"}]}))
>>> len(f), f.feature("lang").to_list()
(2, ['es', 'en'])
>>> [m.tolist() for m in f.membership([("lang", "es"), ("lang", "de")])]
[[0], []]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from monitor.events import LINEAGE_FIELDS, Lineage
from monitor.stats.bins import FeatureSpec, stringify
from monitor.stats.columns import TOKENS_IN, EventColumns

_STRINGABLE = (pl.String, pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


def _struct_field(frame: pl.DataFrame, struct: str, name: str) -> pl.Series | None:
    if struct not in frame.columns:
        return None
    col = frame[struct]
    if not isinstance(col.dtype, pl.Struct) or name not in [f.name for f in col.dtype.fields]:
        return None
    return col.struct.field(name)


def as_strings(values: pl.Series) -> tuple[pl.Series | None, list[Any] | None]:
    """:func:`~monitor.stats.bins.stringify` of a column: as a String column where polars gives
    the same text (strings, integers, booleans), else the Python values (the caller stringifies)."""
    dtype = values.dtype
    if dtype == pl.Boolean:
        return values.replace_strict({True: "true", False: "false"}, return_dtype=pl.String), None
    if dtype == pl.Null:
        return pl.Series(values.name, [None] * len(values), dtype=pl.String), None
    if any(dtype == t for t in _STRINGABLE):
        return values.cast(pl.String), None
    return None, values.to_list()


class EventFrame:
    """One model's events as columns (see the module docstring)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self._served: NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return self.frame.height

    @property
    def served_at(self) -> NDArray[np.float64]:
        if self._served is None:
            self._served = self.frame["served_at"].cast(pl.Float64).to_numpy()
        return self._served

    def take(self, idx: Sequence[int]) -> EventFrame:
        return EventFrame(self.frame[list(idx)])

    def feature(self, name: str) -> pl.Series | None:
        """The input feature's column (None: no event has it)."""
        return _struct_field(self.frame, "input_features", name)

    def _optional(self, name: str) -> pl.Series:
        if name in self.frame.columns:
            return self.frame[name]
        return pl.Series(name, [None] * len(self), dtype=pl.Float64)

    def numeric(self, names: Sequence[str]) -> NDArray[np.float64]:
        """``(len(names) + 1, n)`` floats (NaN = missing): the numeric features in order
        (``tokens_in`` from the event field), then the confidence."""
        n = len(self)
        out = np.full((len(names) + 1, n), np.nan)
        for i, name in enumerate([*names, "\0confidence"]):
            if name == "\0confidence":
                col: pl.Series | None = self._optional("confidence")
            elif name == TOKENS_IN:
                col = self._optional(TOKENS_IN)
            else:
                col = self.feature(name)
            if col is None:
                continue
            if col.dtype in (pl.String, pl.Boolean) or col.dtype.is_numeric():
                out[i] = col.cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()
            # any other type (lists, structs): missing, as in numeric_array
        return out

    def bins(self, spec: FeatureSpec, column: str | None = None) -> NDArray[np.int64]:
        """Bin index of every event for a categorical or boolean ``spec`` (see :meth:`FeatureSpec.bin`),
        read from the input feature of its name, or from the event's top-level ``column``."""
        if column is not None:
            col: pl.Series | None = self._optional(column)
        else:
            col = self._optional(TOKENS_IN) if spec.name == TOKENS_IN else self.feature(spec.name)
        n = len(self)
        if col is None:
            return np.full(n, spec.missing_index, dtype=np.int64)
        if spec.kind == "boolean":
            if col.dtype == pl.Boolean:
                return col.cast(pl.Int64).fill_null(spec.missing_index).to_numpy().astype(np.int64)
            return spec.bin(col.to_list())
        text, values = as_strings(col)
        if text is None:
            return spec.bin(values or [])
        mapping: dict[str, int] = dict(spec._map)
        unseen = len(spec.categories) + 1
        known = pl.Series([k for k in mapping if k is not None], dtype=pl.String)  # the None key: missing
        codes = pl.Series([v for k, v in mapping.items() if k is not None], dtype=pl.Int64)
        looked = text.replace_strict(known, codes, default=unseen, return_dtype=pl.Int64)
        return looked.fill_null(spec.missing_index).to_numpy().astype(np.int64)

    def membership(self, protected: Sequence[tuple[str, str]]) -> list[NDArray[np.int64]]:
        """Row indices of each protected (key, value) pair: the ``slice`` field, else the input
        feature stringified (see :func:`~monitor.stats.columns.slice_membership`)."""
        n = len(self)
        values: dict[str, NDArray[Any]] = {}
        for key in dict.fromkeys(k for k, _ in protected):
            own = _struct_field(self.frame, "slice", key)
            feat = self.feature(key)
            text = None
            if feat is not None:
                text, raw = as_strings(feat)
                if text is None:
                    text = pl.Series(key, [stringify(v) for v in raw or []], dtype=pl.String)
            col: pl.Series | None = text
            if own is not None:
                col = own.cast(pl.String) if text is None else own.cast(pl.String).fill_null(text)
            values[key] = col.to_numpy() if col is not None else np.full(n, None, dtype=object)
        return [np.flatnonzero(values[k] == v) for k, v in protected]

    def distinct_lineage(self) -> list[Lineage]:
        """The distinct lineages of the batch (few: one per deployment), without a per-event object."""
        if "lineage" not in self.frame.columns or not isinstance(self.frame["lineage"].dtype, pl.Struct):
            return []
        rows = self.frame.select(pl.col("lineage")).unique(maintain_order=True)["lineage"].to_list()
        return [_lineage(r) for r in rows if r is not None]

    def to_columns(self) -> EventColumns:
        """The same events as :class:`EventColumns` (Python objects: only for the rare slow paths,
        e.g. a model's first events buffered for its automatic reference, a lineage change)."""
        f = self.frame
        n = len(self)

        def listed(name: str) -> list[Any]:
            return f[name].to_list() if name in f.columns else [None] * n

        def dicts(name: str) -> list[Mapping[str, Any]]:
            return [{k: v for k, v in (d or {}).items() if v is not None} for d in listed(name)]

        lineage = listed("lineage")
        return EventColumns(
            served_at=[float(t) for t in self.served_at.tolist()], features=dicts("input_features"),
            outputs=[str(o) for o in listed("output")], confidence=listed("confidence"), tokens_in=listed(TOKENS_IN),
            slices=dicts("slice"), lineage=[None if d is None else _lineage(d) for d in lineage],
        )


def _lineage(d: Mapping[str, Any]) -> Lineage:
    return Lineage(**{k: d.get(k) for k in LINEAGE_FIELDS})


def epoch_seconds(times: pl.Series) -> pl.Series:
    """Datetimes as float epoch seconds, equal to ``datetime.timestamp()`` bit for bit: microseconds
    divided in numpy (IEEE division, correctly rounded); polars' own division of a column multiplies
    by the reciprocal, which is off in the last bit.

    >>> from datetime import UTC, datetime
    >>> t = [datetime(2026, 9, 21, 14, 14, tzinfo=UTC), datetime(2026, 9, 21, 14, 14, 1, 643217, tzinfo=UTC)]
    >>> epoch_seconds(pl.Series(t)).to_list() == [x.timestamp() for x in t]
    True
    """
    return pl.Series(times.name, times.dt.epoch("us").cast(pl.Int64).to_numpy() / 1_000_000, dtype=pl.Float64)


def split_by_model(frame: pl.DataFrame) -> dict[str, EventFrame]:
    """A batch of many models' events (a ``model_id`` column) as one :class:`EventFrame` per model."""
    if frame.height == 0:
        return {}
    ids = frame["model_id"]
    if ids.n_unique() == 1:
        return {str(ids[0]): EventFrame(frame)}
    parts = frame.partition_by("model_id", as_dict=True, maintain_order=True)
    return {str(k[0]): EventFrame(g) for k, g in parts.items()}
