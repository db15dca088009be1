"""Events as columns (issue 12): ``DriftEngine.observe_frame`` holds exactly what ``observe`` holds.

The oracle is the object path (``observe`` on ``InferenceEvent`` objects, itself checked one event
at a time in ``test_stats_columns.py``): the same events, decoded from the same JSON lines by
``pl.read_ndjson`` into columns, must leave every window counter, sketch counter and scalar of
every model and slice equal, and give the same snapshot. Hypothesis draws feature values of every
JSON type per feature (strings, integers, floats, booleans, null, absent), slice keys found in
``slice`` or only in ``input_features``, several models per batch, and lineage changes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.drift import DriftEngine
from monitor.events import InferenceEvent, Lineage
from monitor.stats.event_frame import EventFrame, split_by_model
from tests.stats_fixtures import StreamSpec, frame_of, make_batch

T0 = 1_790_000_040.0
KINDS = {
    "num": st.floats(-50, 50, allow_nan=False),
    "int": st.integers(-5, 500),
    "cat": st.sampled_from(["a", "b", "c", "zz", ""]),
    "flag": st.booleans(),
    "small_int": st.integers(0, 3),
}


@st.composite
def batches(draw):
    kinds = draw(st.dictionaries(st.sampled_from(["f1", "f2", "f3", "language", "domain"]),
                                 st.sampled_from(sorted(KINDS)), min_size=1, max_size=5))
    n = draw(st.integers(1, 60))
    events = []
    for i in range(n):
        feats = {}
        for name, kind in kinds.items():
            if draw(st.integers(0, 9)) == 0:
                continue  # absent
            feats[name] = None if draw(st.integers(0, 9)) == 0 else draw(KINDS[kind])
        sl = {}
        if draw(st.booleans()):
            sl["language"] = draw(st.sampled_from(["es", "en", "ja"]))
        events.append(InferenceEvent(
            schema_version=1, request_id=f"r{i}", model_id=draw(st.sampled_from(["m1", "m2"])),
            served_at=datetime.fromtimestamp(T0 + draw(st.floats(0, 3000)), tz=UTC), input_features=feats,
            output=draw(st.sampled_from(["yes", "no", "maybe"])),
            confidence=draw(st.none() | st.floats(0, 1)), slice=sl,
            lineage=Lineage(embedding_model=draw(st.sampled_from(["e1", "e2"]))),
            tokens_in=draw(st.none() | st.integers(1, 900)),
        ))
    return events


def engine() -> DriftEngine:
    return DriftEngine(bucket_seconds=60, window_buckets=60, allowed_lateness_s=1e9, auto_reference_events=40,
                       protected_slices={"language": ["es", "ja"], "domain": ["regulatory", "a"]})


def state(eng: DriftEngine, now: float) -> dict:
    out = {}
    for m in eng.models:
        t = eng.window_totals(m, now)
        if t is not None:
            out[m] = (t.hist.tolist(), t.sketch.tolist(), t.scalars.tolist())
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches(), batches())
def test_frames_leave_the_same_window_state_as_event_objects(first, second):
    now = T0 + 3600
    a, b = engine(), engine()
    for events in (first, second):  # the first batch builds the automatic references (object path in both)
        a.observe(events, [], now)
        b.observe_frame(frame_of(events), [], now)
    assert state(a, now) == state(b, now)
    sa, sb = a.evaluate(now), b.evaluate(now)
    assert [(v.model_id, v.slice, v.feature, v.statistic, v.value) for v in sa.values] == \
        [(v.model_id, v.slice, v.feature, v.statistic, v.value) for v in sb.values]
    assert sa.lineage_changes == sb.lineage_changes


def test_a_realistic_stream_with_labels_gives_the_same_snapshot() -> None:
    rng = np.random.default_rng(3)
    spec = StreamSpec(n_numeric=12, n_categorical=4, n_boolean=4, input_shift=0.5, onset=T0 + 1800)
    a, b = engine(), engine()
    for i in range(8):
        events, labels = make_batch(rng, spec, 500, T0 + 450 * i, T0 + 450 * (i + 1))
        now = T0 + 450 * (i + 1)
        a.observe(events, labels, now)
        b.observe_frame(frame_of(events), labels, now)
    now = T0 + 3600
    assert state(a, now) == state(b, now) and state(a, now)
    sa, sb = a.evaluate(now), b.evaluate(now)
    assert len(sa.values) > 100
    assert [(v.slice, v.feature, v.statistic, v.value, v.p_value) for v in sa.values] == \
        [(v.slice, v.feature, v.statistic, v.value, v.p_value) for v in sb.values]


def test_split_by_model_and_the_slow_path_round_trip() -> None:
    rng = np.random.default_rng(4)
    events, _ = make_batch(rng, StreamSpec(n_numeric=2, n_categorical=1, n_boolean=1), 50, T0, T0 + 60)
    frame = frame_of(events)
    parts = split_by_model(frame)
    assert list(parts) == [events[0].model_id] and len(parts[events[0].model_id]) == 50
    cols = EventFrame(frame).to_columns()
    assert cols.served_at == [e.served_at.timestamp() for e in events]
    assert cols.features == [dict(e.input_features) for e in events]
    assert cols.outputs == [e.output for e in events]
    assert split_by_model(frame.clear()) == {}
