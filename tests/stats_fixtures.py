"""Seeded synthetic inference streams for the statistics tests (events built column-wise with numpy)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import polars as pl

from monitor.events import InferenceEvent, Lineage, PromotionEvent
from monitor.records import Label, LabelChange
from monitor.stats.event_frame import epoch_seconds

LANGS = np.array(["en", "es", "ja", "de", "fr"])
DOMAINS = np.array(["general", "regulatory", "medical"])


@dataclass
class StreamSpec:
    """How one synthetic model behaves; ``*_shift`` are applied to events with ``served_at >= onset``."""

    model_id: str = "m1"
    n_numeric: int = 3
    n_categorical: int = 1
    n_boolean: int = 1
    accuracy: float = 0.9
    label_share: float = 1.0
    onset: float = float("inf")
    input_shift: float = 0.0
    output_shift: float = 0.0
    accuracy_drop: float = 0.0
    slice_accuracy_drop: dict[tuple[str, str], float] = field(default_factory=dict)
    lang_p: tuple[float, ...] = (0.80, 0.05, 0.05, 0.05, 0.05)
    embedding_model: str = "e1"
    embedding_after_onset: str | None = None
    new_category_share: float = 0.0  # after onset, this share of c0 values is a value the reference never saw
    failure_clusters: tuple[str, ...] = ()  # failures name one of these clusters, uniformly
    cluster_spike: tuple[str, float] | None = None  # after onset, this share of failures is this cluster


def make_batch(
    rng: np.random.Generator, spec: StreamSpec, n: int, t0: float, t1: float
) -> tuple[list[InferenceEvent], list[LabelChange]]:
    """``n`` events with ``served_at`` uniform in ``[t0, t1)`` (sorted) and their first labels."""
    t = np.sort(rng.uniform(t0, t1, n))
    after = t >= spec.onset
    cols: dict[str, list] = {}
    for i in range(spec.n_numeric):
        x = rng.normal(0.0, 1.0, n) * (1 + i) + np.where(after, spec.input_shift * (1 + i), 0.0)
        cols[f"x{i}"] = x.tolist()
    for i in range(spec.n_categorical):
        p = np.array([0.5, 0.3, 0.15, 0.05])
        values = rng.choice(np.array(["a", "b", "c", "d"]), n, p=p)
        if spec.new_category_share > 0:
            values = np.where(after & (rng.random(n) < spec.new_category_share), "new", values)
        cols[f"c{i}"] = values.tolist()
    for i in range(spec.n_boolean):
        cols[f"b{i}"] = (rng.random(n) < 0.3).tolist()
    lang = rng.choice(LANGS, n, p=np.asarray(spec.lang_p)).tolist()
    domain = rng.choice(DOMAINS, n, p=[0.9, 0.05, 0.05]).tolist()
    p_yes = np.where(after, 0.5 + spec.output_shift, 0.5)
    output = np.where(rng.random(n) < p_yes, "yes", "no").tolist()
    conf = np.clip(rng.beta(8, 2, n) - np.where(after, spec.output_shift, 0.0), 0, 1).tolist()
    tokens = np.maximum(1, rng.lognormal(5, 1, n)).astype(int).tolist()
    acc = np.full(n, spec.accuracy) - np.where(after, spec.accuracy_drop, 0.0)
    lang_arr = np.asarray(lang)
    dom_arr = np.asarray(domain)
    for (key, value), drop in spec.slice_accuracy_drop.items():
        col = lang_arr if key == "language" else dom_arr
        acc = acc - np.where(after & (col == value), drop, 0.0)
    correct = (rng.random(n) < acc).tolist()
    labelled = (rng.random(n) < spec.label_share).tolist()
    clusters: list[str | None] = [None] * n
    if spec.failure_clusters:
        picked = rng.choice(np.asarray(spec.failure_clusters), n)
        if spec.cluster_spike is not None:
            name, share = spec.cluster_spike
            picked = np.where(after & (rng.random(n) < share), name, picked)
        clusters = picked.tolist()
    names = list(cols)
    ts = t.tolist()
    after_l = after.tolist()
    rows = zip(*(cols[k] for k in names), strict=True)
    emb_before = Lineage(embedding_model=spec.embedding_model)
    emb_after = Lineage(embedding_model=spec.embedding_after_onset or spec.embedding_model)
    prefix = f"{spec.model_id}-{t0:.3f}-"
    events, labels = [], []
    for j, row in enumerate(rows):
        feats = dict(zip(names, row, strict=True))
        rid = prefix + str(j)
        sl = {"language": lang[j], "domain": domain[j]}
        ev = InferenceEvent(
            schema_version=1, request_id=rid, model_id=spec.model_id,
            served_at=datetime.fromtimestamp(ts[j], tz=UTC), input_features=feats, output=output[j],
            confidence=conf[j], slice=sl, lineage=emb_after if after_l[j] else emb_before, tokens_in=tokens[j],
        )
        events.append(ev)
        if labelled[j]:
            labels.append(LabelChange(rid, spec.model_id, ts[j], sl, feats, None,
                                      Label(correct[j], None, "human", ts[j] + 1.0,
                                            failure_cluster=None if correct[j] else clusters[j])))
    return events, labels


def to_rows(events: list[InferenceEvent], labels: list[LabelChange]) -> list[dict]:
    """What the store would return for these events (current label joined in)."""
    by_id = {lc.request_id: lc.new for lc in labels}
    rows = []
    for e in events:
        lab = by_id.get(e.request_id)
        rows.append({
            "request_id": e.request_id, "model_id": e.model_id, "served_at": e.served_at.timestamp(),
            "input_features": dict(e.input_features), "output": e.output, "confidence": e.confidence,
            "slice": dict(e.slice), "lineage": {"embedding_model": e.lineage.embedding_model} if e.lineage else None,
            "tokens_in": e.tokens_in, "tokens_out": None, "latency_ms": None,
            "was_correct": lab.was_correct if lab else None, "score": lab.score if lab else None,
            "label_source": lab.source if lab else None, "judge_model": None, "rubric_version": None,
        })
    return rows


def promotion(model_id: str, promoted_at: float, rollback_target: str | None) -> PromotionEvent:
    """A promotion event at epoch ``promoted_at`` (as the store hands them on)."""
    return PromotionEvent(schema_version=1, model_id=model_id, rollback_target=rollback_target,
                          promoted_at=datetime.fromtimestamp(promoted_at, UTC))


def frame_of(events: list[InferenceEvent]) -> pl.DataFrame:
    """The events' JSON lines read by polars, ``served_at`` as epoch seconds: what a columnar decode gives."""
    lines = []
    for e in events:
        d = {"model_id": e.model_id, "served_at": e.served_at.isoformat(), "output": e.output,
             "confidence": e.confidence, "tokens_in": e.tokens_in, "input_features": dict(e.input_features),
             "slice": dict(e.slice)}
        if e.lineage is not None:
            d["lineage"] = {"embedding_model": e.lineage.embedding_model}
        lines.append(json.dumps(d))
    df = pl.read_ndjson(io.BytesIO("\n".join(lines).encode()), infer_schema_length=None)
    return df.with_columns(epoch_seconds(df["served_at"].str.to_datetime(time_zone="UTC")))
