"""Build a :class:`ReferenceProfile` from reference rows, from ``inference_log`` rows, or from a
model's first events.

Reference rows (a polars DataFrame) carry the input features either as one ``input_features``
struct/dict column or as plain columns, plus optional ``output``, ``confidence``, ``slice``,
``tokens_in``, ``was_correct``, ``score`` and ``label_source``. Feature kinds come from the values:
booleans -> boolean, numbers -> numeric, anything else -> categorical (stringified).
Nothing here touches the file system: ``monitor.reference.load_reference_file`` reads the files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from monitor.records import Label, LabelChange
from monitor.snapshot import AGGREGATE, slice_label
from monitor.stats.bins import MAX_VOCABULARY, FeatureKind, FeatureSpec, stringify
from monitor.stats.columns import TOKENS_IN, EventColumns, feature_columns, records_from_rows, slice_membership
from monitor.stats.contributions import label_contributions
from monitor.stats.errors import ProfileError
from monitor.stats.layout import N_SCALARS, Layout
from monitor.stats.profile import ReferenceProfile, SliceCounts
from monitor.stats.sketch import SketchSpec

RESERVED = {
    "request_id",
    "model_id",
    "served_at",
    "input_features",
    "output",
    "confidence",
    "slice",
    "lineage",
    "tokens_in",
    "tokens_out",
    "latency_ms",
    "was_correct",
    "score",
    "label_source",
    "judge_model",
    "rubric_version",
    "failure_cluster",
    "label_observed_at",
}


def _kind_of(values: Sequence[Any]) -> FeatureKind | None:
    types = {type(v) for v in values if v is not None}
    if not types:
        return None
    if types == {bool}:
        return "boolean"
    if types <= {int, float}:
        return "numeric"
    return "categorical"


def _kinds(features: Sequence[Mapping[str, Any]], names: Sequence[str] | None) -> dict[str, FeatureKind]:
    try:
        df = pl.from_dicts(features, infer_schema_length=None)
        kinds: dict[str, FeatureKind] = {}
        for name, dtype in df.schema.items():
            if dtype == pl.Boolean:
                kinds[name] = "boolean"
            elif dtype.is_numeric():
                kinds[name] = "numeric"
            elif dtype != pl.Null:
                kinds[name] = "categorical"
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        keys = dict.fromkeys(k for d in features for k in d)
        kinds = {}
        for k in keys:
            kind = _kind_of([d.get(k) for d in features])
            if kind is not None:
                kinds[k] = kind
    if names is not None:
        kinds = {k: kinds.get(k, "numeric") for k in names}
    return dict(sorted(kinds.items()))


def _top(values: pl.Series, k: int) -> tuple[list[str], list[str]]:
    vc = values.drop_nulls().value_counts()
    if vc.height == 0:
        return [], []
    vc = vc.sort(["count", vc.columns[0]], descending=[True, False])
    names = [str(x) for x in vc.get_column(vc.columns[0]).to_list()]
    return names[:k], names[k : k + MAX_VOCABULARY]


def _numeric_spec(name: str, x: np.ndarray, bins: int, sketch_accuracy: float | None) -> FeatureSpec:
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        finite = np.zeros(1)
    edges = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1))
    sketch = SketchSpec.from_values(finite, sketch_accuracy) if sketch_accuracy else None
    return FeatureSpec.numeric(name, edges, sketch)


def build_profile_from_records(
    model_id: str,
    rec: EventColumns,
    labels: Sequence[LabelChange] = (),
    *,
    features: Sequence[str] | None = None,
    numeric_bins: int = 10,
    top_k_categories: int = 20,
    protected_slices: Mapping[str, Sequence[str]] | None = None,
    sketch_accuracy: float = 0.01,
    labelled: bool | None = None,
    source: str = "auto",
    created_at: float = 0.0,
    max_features: int | None = 64,
) -> ReferenceProfile:
    """The core builder: every other entry point turns its input into :class:`EventColumns` first.

    Without an explicit ``features`` list, the ``max_features`` features present in the most rows
    are profiled (ties by name): the profile decides which features get metric series, so feature
    names invented by the traffic must not grow them without bound."""
    if len(rec) == 0:
        raise ProfileError("cannot build a reference profile from zero rows")
    names = None if features is None else [f for f in features if f != TOKENS_IN]
    if names is None and max_features is not None:
        presence = Counter(k for d in rec.features for k in d if k != TOKENS_IN)
        if len(presence) > max_features:
            names = sorted(sorted(presence, key=lambda k: (-presence[k], k))[:max_features])
    kinds = _kinds(rec.features, names)
    kinds.pop(TOKENS_IN, None)
    probe = feature_columns(rec.features, [FeatureSpec(n, k) for n, k in kinds.items()])
    specs: list[FeatureSpec] = []
    for name, kind in kinds.items():
        col = probe[name]
        if kind == "numeric":
            specs.append(_numeric_spec(name, col, numeric_bins, sketch_accuracy))
        elif kind == "categorical":
            strings = [v if v is None or isinstance(v, str) else stringify(v) for v in col]
            cats, voc = _top(pl.Series(strings, dtype=pl.String), top_k_categories)
            specs.append(FeatureSpec.categorical(name, cats, voc))
        else:
            specs.append(FeatureSpec.boolean(name))
    tokens = pl.Series(TOKENS_IN, rec.tokens_in, dtype=pl.Float64, strict=False)
    if tokens.null_count() < len(tokens) and (features is None or TOKENS_IN in features):
        specs.append(_numeric_spec(TOKENS_IN, tokens.to_numpy(), numeric_bins, sketch_accuracy))
    cats, voc = _top(pl.Series(rec.outputs, dtype=pl.String), top_k_categories)
    output = FeatureSpec.categorical("output", cats, voc)
    conf = pl.Series(rec.confidence, dtype=pl.Float64, strict=False).to_numpy()
    confidence = (
        _numeric_spec("confidence", conf, numeric_bins, None)
        if np.isfinite(conf).any()
        else FeatureSpec.numeric("confidence", np.linspace(0.0, 1.0, numeric_bins + 1))
    )
    pairs = [(k, str(v)) for k, vs in (protected_slices or {}).items() for v in vs]
    layout = Layout(tuple(specs), output, confidence, tuple(pairs))
    hist, sketch, scal = layout.bin_records(rec)
    members = [np.arange(len(rec)), *slice_membership(rec.slices, rec.features, pairs)]
    lt, lscal, lslices, lfeats = label_contributions(labels)
    lmembers = [np.arange(len(lt)), *slice_membership(lslices, lfeats, pairs)]
    counts: dict[str, SliceCounts] = {}
    for j, rows in enumerate(members):
        if j > 0 and rows.size == 0:
            continue
        label = AGGREGATE if j == 0 else slice_label(*pairs[j - 1])
        flat = np.bincount(hist[rows].ravel(), minlength=layout.hist_size)
        sk = sketch[rows]
        skflat = np.bincount(sk[sk >= 0], minlength=layout.sketch_size)
        scalars = scal[rows].sum(axis=0) + lscal[lmembers[j]].sum(axis=0)
        feats = {f.name: flat[layout.block(i)].tolist() for i, f in enumerate(specs)}
        sketches = {}
        for k, i in enumerate(layout.sketched):
            part = skflat[layout.sketch_block(k)]
            sketches[specs[i].name] = {int(x): int(part[x]) for x in np.flatnonzero(part)}
        nf = len(specs)
        counts[label] = SliceCounts(
            feats,
            sketches,
            flat[layout.block(nf)].tolist(),
            flat[layout.block(nf + 1)].tolist(),
            [int(x) for x in scalars.reshape(N_SCALARS)],
        )
    return ReferenceProfile(
        model_id,
        tuple(specs),
        output,
        confidence,
        counts,
        labelled=bool(labels) if labelled is None else labelled,
        source=source,
        created_at=created_at,
    )


def _labels_from_frame(frame: pl.DataFrame, model_id: str, rec: EventColumns) -> list[LabelChange]:
    cols = {c: frame.get_column(c).to_list() for c in ("was_correct", "score", "label_source") if c in frame.columns}
    if "was_correct" not in cols and "score" not in cols:
        return []
    n = frame.height
    wc = cols.get("was_correct", [None] * n)
    sc = cols.get("score", [None] * n)
    src = cols.get("label_source", [None] * n)
    out = []
    for i in range(n):
        if wc[i] is None and sc[i] is None:
            continue
        lab = Label(None if wc[i] is None else bool(wc[i]), sc[i], src[i], 0.0)
        out.append(LabelChange("", model_id, 0.0, dict(rec.slices[i]), dict(rec.features[i]), None, lab))
    return out


def build_profile(frame: pl.DataFrame, model_id: str, **kwargs: Any) -> ReferenceProfile:
    """From reference rows (training or validation data); ``kwargs`` as for the records builder."""
    n = frame.height
    if "input_features" in frame.columns:
        features = [d or {} for d in frame.get_column("input_features").to_list()]
    else:
        cols = [c for c in frame.columns if c not in RESERVED]
        features = frame.select(cols).to_dicts() if cols else [{} for _ in range(n)]

    def col(name: str, default: Any = None) -> list[Any]:
        return frame.get_column(name).to_list() if name in frame.columns else [default] * n

    rec = EventColumns(
        served_at=[0.0] * n,
        features=features,
        outputs=[str(x) if x is not None else "" for x in col("output", "")],
        confidence=col("confidence"),
        tokens_in=col("tokens_in"),
        slices=[d or {} for d in col("slice")],
        lineage=[None] * n,
    )
    labels = _labels_from_frame(frame, model_id, rec)
    kwargs.setdefault("source", "file")
    kwargs.setdefault("labelled", "was_correct" in frame.columns or "score" in frame.columns)
    return build_profile_from_records(model_id, rec, labels, **kwargs)


def build_profile_from_log(
    rows: Sequence[Mapping[str, Any]] | pl.DataFrame, model_id: str, **kwargs: Any
) -> ReferenceProfile:
    """From a time range of the model's own ``inference_log`` rows (as the store returns them)."""
    by_model, labels = records_from_rows(rows)
    rec = by_model.get(model_id)
    if rec is None:
        raise ProfileError("no inference_log rows for this model in the requested range")
    kwargs.setdefault("source", "log")
    kwargs.setdefault("labelled", True)
    return build_profile_from_records(model_id, rec, [lc for lc in labels if lc.model_id == model_id], **kwargs)
