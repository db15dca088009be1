"""Turn a batch of events (or rows read back from ``inference_log``) into per-model columns.

This is the only place with a Python loop per event: it gathers each model's fields into lists once,
then everything downstream works on whole columns (polars / numpy). On CPython 3.11 a list
comprehension per field measured as fast as ``map``/``itemgetter`` chains (and faster than
transposing rows), so the loops stay plain; the cost is reading the values, not the loop. (Numeric
features are read event-major in one comprehension by ``bins.numeric_rows``, touching each dict once.)

Slice values: a protected key is looked up in the event's ``slice`` first, then in its
``input_features``, stringified by :func:`slice_value` (``True`` -> ``"true"``, ``3.0`` -> ``"3"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from monitor.events import LINEAGE_FIELDS, InferenceEvent, Lineage
from monitor.records import Label, LabelChange
from monitor.stats.bins import FeatureSpec, numeric_array, stringify

TOKENS_IN = "tokens_in"


slice_value = stringify


@dataclass
class EventColumns:
    """One model's events as parallel lists (``served_at`` as float epoch seconds)."""

    served_at: list[float] = field(default_factory=list)
    features: list[Mapping[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    confidence: list[float | None] = field(default_factory=list)
    tokens_in: list[float | None] = field(default_factory=list)
    slices: list[Mapping[str, str]] = field(default_factory=list)
    lineage: list[Lineage | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.served_at)

    def extend(self, other: EventColumns) -> None:
        for name in ("served_at", "features", "outputs", "confidence", "tokens_in", "slices", "lineage"):
            getattr(self, name).extend(getattr(other, name))

    def take(self, idx: Sequence[int]) -> EventColumns:
        return EventColumns(
            *(
                [getattr(self, n)[i] for i in idx]
                for n in ("served_at", "features", "outputs", "confidence", "tokens_in", "slices", "lineage")
            )
        )


def _lineage(lin: Any) -> Lineage | None:
    """Rows carry lineage as a dict; use the (hashable) event struct so batches dedupe cheaply."""
    if lin is None or isinstance(lin, Lineage):
        return lin
    return Lineage(**{f: lin.get(f) for f in LINEAGE_FIELDS})


def records_from_events(events: Iterable[InferenceEvent]) -> dict[str, EventColumns]:
    evs = events if isinstance(events, list) else list(events)
    ids = [e.model_id for e in evs]
    if ids and ids.count(ids[0]) == len(ids):  # the usual batch: one model (Kafka key = model_id)
        by_model = {ids[0]: evs}
    else:
        by_model = {}
        for m, e in zip(ids, evs, strict=True):
            by_model.setdefault(m, []).append(e)
    out = {}
    for model_id, group in by_model.items():
        out[model_id] = EventColumns(
            served_at=[e.served_at.timestamp() for e in group],
            features=[e.input_features for e in group],
            outputs=[e.output for e in group],
            confidence=[e.confidence for e in group],
            tokens_in=[e.tokens_in for e in group],
            slices=[e.slice for e in group],
            lineage=[e.lineage for e in group],  # converted lazily by the lineage tracker
        )
    return out


def _epoch(v: Any) -> float:
    return float(v.timestamp()) if hasattr(v, "timestamp") else float(v)


def records_from_rows(
    rows: Sequence[Mapping[str, Any]] | pl.DataFrame,
) -> tuple[dict[str, EventColumns], list[LabelChange]]:
    """Rows as the store returns them for the window; labelled rows also become first-time labels."""
    dicts = rows.to_dicts() if isinstance(rows, pl.DataFrame) else list(rows)
    dicts.sort(key=lambda r: _epoch(r["served_at"]))
    out: dict[str, EventColumns] = {}
    labels: list[LabelChange] = []
    for r in dicts:
        rec = out.setdefault(str(r["model_id"]), EventColumns())
        t = _epoch(r["served_at"])
        feats = r.get("input_features") or {}
        sl = r.get("slice") or {}
        rec.served_at.append(t)
        rec.features.append(feats)
        rec.outputs.append(str(r.get("output", "")))
        rec.confidence.append(r.get("confidence"))
        rec.tokens_in.append(r.get("tokens_in"))
        rec.slices.append(sl)
        rec.lineage.append(_lineage(r.get("lineage")))
        if r.get("was_correct") is not None or r.get("score") is not None:
            lab = Label(
                was_correct=r.get("was_correct"),
                score=r.get("score"),
                source=r.get("label_source"),
                observed_at=_epoch(r["label_observed_at"]) if r.get("label_observed_at") is not None else t,
                judge_model=r.get("judge_model"),
                rubric_version=r.get("rubric_version"),
                failure_cluster=r.get("failure_cluster"),
            )
            labels.append(LabelChange(str(r.get("request_id", "")), str(r["model_id"]), t, sl, feats, None, lab))
    return out, labels


def raw_feature_columns(
    features: Sequence[Mapping[str, Any]], specs: Sequence[FeatureSpec], tokens_in: Sequence[Any] | None = None
) -> dict[str, list[Any]]:
    """One list of raw values per spec (None = absent); ``tokens_in`` (the event field) is used for a
    tracked feature named ``tokens_in``."""
    out: dict[str, list[Any]] = {}
    for s in specs:
        if s.name == TOKENS_IN and tokens_in is not None:
            out[s.name] = list(tokens_in)
        else:
            name = s.name
            out[name] = [d.get(name) for d in features]
    return out


def feature_columns(
    features: Sequence[Mapping[str, Any]], specs: Sequence[FeatureSpec], tokens_in: Sequence[Any] | None = None
) -> dict[str, Any]:
    """One column per spec: float arrays (NaN = missing) for numeric features, lists of raw values
    otherwise. ``tokens_in`` (the event field) is used for a tracked feature named ``tokens_in``."""
    raw = raw_feature_columns(features, specs, tokens_in)
    return {s.name: numeric_array(raw[s.name]) if s.kind == "numeric" else raw[s.name] for s in specs}


_ABSENT = object()


def slice_membership(
    slices: Sequence[Mapping[str, str]],
    features: Sequence[Mapping[str, Any]],
    protected: Sequence[tuple[str, str]],
) -> list[NDArray[np.int64]]:
    """Row indices of each protected (key, value) pair, in the order given."""
    codes: dict[str, NDArray[np.int64]] = {}
    for key in dict.fromkeys(k for k, _ in protected):
        lookup: dict[Any, int] = {v: i for i, (k, v) in enumerate(protected, start=1) if k == key}
        lookup[_ABSENT] = -1
        get = lookup.get
        code = np.array([get(s.get(key, _ABSENT), 0) for s in slices], dtype=np.int64)
        absent = np.flatnonzero(code < 0)
        if absent.size:  # not in the event's slice: look in its input features
            code[absent] = [get(slice_value(features[i].get(key)), 0) for i in absent.tolist()]
        codes[key] = code
    return [np.flatnonzero(codes[k] == i) for i, (k, _) in enumerate(protected, start=1)]
