"""The fast column builders give exactly what the straightforward per-event code gave.

The oracles below are the previous implementations (kept verbatim as reference): one list
comprehension per field, ``np.array`` per numeric column, a generator per categorical/boolean
column, one ``SketchSpec.index`` / ``FeatureSpec.bin`` call per feature, and the old ADWIN feed.
Hypothesis drives them with mixed value types, missing features, None, booleans, numbers as
strings, and slice keys found in ``slice`` or only in ``input_features``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.detect.adwin import CorrectnessDrop
from monitor.drift import DriftEngine
from monitor.events import InferenceEvent, Lineage
from monitor.records import Label, LabelChange
from monitor.snapshot import AGGREGATE, slice_label
from monitor.stats.bins import FeatureSpec, numeric_array, numeric_bins, numeric_matrix, stringify
from monitor.stats.columns import EventColumns, feature_columns, records_from_events, slice_membership, slice_value
from monitor.stats.contributions import label_contributions
from monitor.stats.layout import (
    CONF_N,
    CONF_SUM,
    CORRECT_N,
    CORRECT_SUM,
    EVENTS,
    FIXED_POINT,
    LABELLED,
    N_SCALARS,
    SCORE_N,
    SCORE_SQ,
    SCORE_SUM,
    SOURCE_BASE,
    Layout,
    source_index,
)
from monitor.stats.sketch import SketchSpec, sketch_indices
from monitor.stats.window import ModelWindow

# ---- oracles: the previous implementations ---------------------------------------------------


def old_numeric_array(values: list[Any]) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([float(v) if isinstance(v, int | float) else np.nan for v in values], dtype=np.float64)


def old_bin(spec: FeatureSpec, column: Any) -> np.ndarray:
    missing = spec.missing_index
    if spec.kind == "numeric":
        x = column if isinstance(column, np.ndarray) else old_numeric_array(list(column))
        e = np.asarray(spec.edges)
        idx = np.searchsorted(e, x, side="right").astype(np.int64)
        idx[x == e[-1]] = e.size - 1 if e.size > 1 else 0
        idx[~np.isfinite(x)] = missing
        return idx
    if spec.kind == "categorical":
        m = {c: i for i, c in enumerate(spec.categories)}
        for v in spec.vocabulary:
            m.setdefault(v, len(spec.categories))
        unseen = len(spec.categories) + 1
        return np.fromiter(
            (missing if v is None else m.get(v if v.__class__ is str else stringify(v), unseen) for v in column),
            dtype=np.int64,
            count=len(column),
        )
    return np.fromiter(
        (1 if v is True else 0 if v is False else missing for v in column), dtype=np.int64, count=len(column)
    )


def old_feature_columns(features, specs, tokens_in=None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in specs:
        if s.name == "tokens_in" and tokens_in is not None:
            values = list(tokens_in)
        else:
            values = [d.get(s.name) for d in features]
        out[s.name] = old_numeric_array(values) if s.kind == "numeric" else values
    return out


def old_bin_records(layout: Layout, rec: EventColumns):
    n = len(rec)
    cols = old_feature_columns(rec.features, layout.features, rec.tokens_in)
    hist = np.empty((n, len(layout.blocks)), dtype=np.int64)
    sketch = np.empty((n, len(layout.sketched)), dtype=np.int64)
    k = 0
    for j, spec in enumerate(layout.features):
        col = cols[spec.name]
        hist[:, j] = old_bin(spec, col) + layout.offsets[j]
        if spec.sketch is not None:
            idx = spec.sketch.index(col)
            sketch[:, k] = np.where(idx >= 0, idx + layout.sketch_offsets[k], -1)
            k += 1
    nf = len(layout.features)
    hist[:, nf] = old_bin(layout.output, rec.outputs) + layout.offsets[nf]
    c = old_numeric_array(rec.confidence)
    hist[:, nf + 1] = old_bin(layout.confidence, c) + layout.offsets[nf + 1]
    scal = np.zeros((n, N_SCALARS), dtype=np.int64)
    scal[:, EVENTS] = 1
    ok = np.isfinite(c)
    scal[:, CONF_N] = ok
    scal[ok, CONF_SUM] = np.rint(c[ok] * FIXED_POINT).astype(np.int64)
    return hist, sketch, scal


_ABSENT = object()


def old_slice_membership(slices, features, protected):
    codes = {}
    for key in dict.fromkeys(k for k, _ in protected):
        lookup: dict[Any, int] = {v: i for i, (k, v) in enumerate(protected, start=1) if k == key}
        lookup[_ABSENT] = -1
        get = lookup.get
        code = np.array([get(s.get(key, _ABSENT), 0) for s in slices], dtype=np.int64)
        absent = np.flatnonzero(code < 0)
        if absent.size:
            code[absent] = [get(slice_value(features[int(i)].get(key)), 0) for i in absent]
        codes[key] = code
    return [np.flatnonzero(codes[k] == i) for i, (k, _) in enumerate(protected, start=1)]


def old_records_from_events(events) -> dict[str, EventColumns]:
    by_model: dict[str, list[InferenceEvent]] = {}
    for e in events:
        by_model.setdefault(e.model_id, []).append(e)
    return {
        m: EventColumns(
            [e.served_at.timestamp() for e in evs],
            [e.input_features for e in evs],
            [e.output for e in evs],
            [e.confidence for e in evs],
            [e.tokens_in for e in evs],
            [e.slice for e in evs],
            [e.lineage for e in evs],
        )
        for m, evs in by_model.items()
    }


def old_label_contributions(changes):
    olds = [ch for ch in changes if ch.old is not None]
    chs = [*changes, *olds]
    labels = [ch.new for ch in changes] + [ch.old for ch in olds]
    n = len(chs)
    scal = np.zeros((n, N_SCALARS), dtype=np.int64)
    if n == 0:
        return np.zeros(0), scal, [], []
    sign = np.ones(n, dtype=np.int64)
    sign[len(changes) :] = -1
    wc = np.array([-1 if lb.was_correct is None else int(lb.was_correct) for lb in labels], dtype=np.int64)
    score = np.array([np.nan if lb.score is None else lb.score for lb in labels], dtype=np.float64)
    src = np.array([source_index(lb.source) for lb in labels], dtype=np.int64)
    has_wc = wc >= 0
    has_score = np.isfinite(score)
    s = np.where(has_score, score, 0.0)
    scal[:, LABELLED] = sign
    scal[:, CORRECT_N] = sign * has_wc
    scal[:, CORRECT_SUM] = sign * (wc == 1)
    scal[:, SCORE_N] = sign * has_score
    scal[:, SCORE_SUM] = sign * np.rint(s * FIXED_POINT).astype(np.int64)
    scal[:, SCORE_SQ] = sign * np.rint(s * s * FIXED_POINT).astype(np.int64)
    scal[np.arange(n), SOURCE_BASE + src] = sign
    t = np.array([ch.served_at for ch in chs], dtype=np.float64)
    return t, scal, [ch.slice for ch in chs], [ch.input_features for ch in chs]


def old_adwin_feeds(labels, pairs) -> dict[str, tuple[list[bool], list[float]]]:
    """What the old ``_feed_adwin`` passed to each detector's ``update_many``."""
    scored = [lc for lc in labels if lc.new.was_correct is not None]
    if not scored:
        return {}
    scored.sort(key=lambda lc: lc.served_at)
    members = [np.arange(len(scored))] + (
        old_slice_membership([lc.slice for lc in scored], [lc.input_features for lc in scored], pairs) if pairs else []
    )
    out = {}
    for rows, label in zip(members, [AGGREGATE] + [slice_label(k, v) for k, v in pairs], strict=True):
        if rows.size:
            out[label] = ([bool(scored[i].new.was_correct) for i in rows], [scored[i].served_at for i in rows])
    return out


# ---- strategies ----------------------------------------------------------------------------------


class OddStr(str):
    """A str subclass whose str() differs from its value: categorical lookup must stringify it."""

    def __str__(self) -> str:
        return "odd"


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e6, 1e6),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0.0, -0.0, 1.0, 2.0, 3.0]),
)
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.sampled_from(["a", "b", "c", "zz", "1.5", "nan", "3", "es", "true", "", OddStr("a")]),
    st.text(max_size=3),
)
NAMES = ["x0", "x1", "x2", "c0", "b0", "language"]


@st.composite
def feature_dict(draw, mixed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in NAMES:
        if draw(st.integers(0, 9)) == 0:
            continue  # missing feature
        if not mixed and name.startswith("x"):
            out[name] = draw(st.one_of(st.none(), NUMBERS, st.booleans()))
        elif not mixed and name == "c0":
            out[name] = draw(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "zz"])))
        elif not mixed and name == "b0":
            out[name] = draw(st.one_of(st.none(), st.booleans()))
        else:
            out[name] = draw(ANY_VALUE)
    return out


@st.composite
def slice_dict(draw) -> dict[str, Any]:
    out = {}
    for key in ("language", "domain"):
        if draw(st.booleans()):
            out[key] = draw(st.sampled_from(["es", "ja", "en", "regulatory", "medical", "general"]))
    return out


@st.composite
def events(draw, min_size: int = 0) -> list[InferenceEvent]:
    mixed = draw(st.booleans())
    n = draw(st.integers(min_size, 25))
    models = draw(st.sampled_from([["m1"], ["m1", "m2"]]))
    out = []
    for i in range(n):
        out.append(
            InferenceEvent(
                schema_version=1,
                request_id=f"r{i}",
                model_id=draw(st.sampled_from(models)),
                served_at=datetime.fromtimestamp(draw(st.floats(0, 1e5)), tz=UTC),
                input_features=draw(feature_dict(mixed)),
                output=draw(st.sampled_from(["yes", "no", "maybe"])),
                confidence=draw(st.one_of(st.none(), st.floats(0, 1))),
                slice=draw(slice_dict()),
                lineage=draw(st.sampled_from([None, Lineage(embedding_model="e1")])),
                tokens_in=draw(st.one_of(st.none(), st.integers(0, 10**6))),
            )
        )
    return out


def layout() -> Layout:
    sk_pos = SketchSpec.from_values(np.array([0.5, 1.0, 200.0]), 0.01)
    sk_neg = SketchSpec.from_values(np.array([-3.0, 1.0, 50.0]), 0.02)
    return Layout(
        (
            FeatureSpec.numeric("x0", [-1.0, 0.0, 1.0, 2.5], sk_pos),
            FeatureSpec.categorical("c0", ["a", "b"], ["zz", "3", "true"]),
            FeatureSpec.numeric("x1", [0.0, 1.0], sk_neg),
            FeatureSpec.boolean("b0"),
            FeatureSpec.numeric("x2", [1.0]),  # a single edge
            FeatureSpec.categorical("language", ["es", "ja"]),
            FeatureSpec.numeric("tokens_in", [10.0, 100.0, 1000.0], sk_pos),
        ),
        FeatureSpec.categorical("output", ["yes"], ["no"]),
        FeatureSpec.numeric("confidence", np.linspace(0.0, 1.0, 11)),
        (("language", "es"), ("language", "ja"), ("domain", "regulatory")),
    )


def same_floats(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True) and bool(
        np.all(np.signbit(a) == np.signbit(b))
    )


# ---- tests ----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.booleans(), NUMBERS), max_size=30))
def test_numeric_array_equals_numpy_on_numbers(values):
    assert same_floats(numeric_array(values), old_numeric_array(values))


@settings(max_examples=200, deadline=None)
@given(st.lists(ANY_VALUE, max_size=30))
def test_numeric_array_equals_numpy_on_mixed_values(values):
    assert same_floats(numeric_array(values), old_numeric_array(values))


def test_numeric_array_raises_like_numpy_on_an_int_beyond_float_range():
    with pytest.raises(OverflowError):
        old_numeric_array([10**400, 1.0])
    with pytest.raises(OverflowError):
        numeric_array([10**400, 1.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.booleans(), NUMBERS, st.just("x")), min_size=7, max_size=7),
                max_size=4))
def test_numeric_matrix_equals_stacked_columns(columns):
    got = numeric_matrix(columns, 7)
    want = np.stack([old_numeric_array(c) for c in columns]) if columns else np.empty((0, 7))
    assert same_floats(got, want)


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY_VALUE, max_size=30))
def test_categorical_and_boolean_bins_equal_the_per_value_code(values):
    for spec in layout().blocks:
        if spec.kind != "numeric":
            assert np.array_equal(spec.bin(values), old_bin(spec, values))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(NUMBERS, min_size=9, max_size=9), min_size=1, max_size=4))
def test_numeric_bins_and_sketch_indices_equal_one_call_per_feature(rows):
    x = np.array(rows, dtype=np.float64)
    specs = [s for s in layout().features if s.kind == "numeric"][: len(rows)]
    x = x[: len(specs)]
    got = numeric_bins(specs, x)
    for j, s in enumerate(specs):
        assert np.array_equal(got[j], old_bin(s, x[j].copy()))
    sketched = [s.sketch for s in specs if s.sketch is not None]
    xs = x[[j for j, s in enumerate(specs) if s.sketch is not None]]
    if sketched:
        got = sketch_indices(sketched, xs)
        for j, sk in enumerate(sketched):
            assert np.array_equal(got[j], sk.index(xs[j].copy()))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_records_and_bin_records_equal_the_per_event_code(evs):
    got, want = records_from_events(evs), old_records_from_events(evs)
    assert list(got) == list(want)
    lay = layout()
    for m, rec in got.items():
        assert rec == want[m]
        if len(rec) == 0:
            continue
        for a, b in zip(lay.bin_records(rec), old_bin_records(lay, want[m]), strict=True):
            assert a.shape == b.shape and np.array_equal(a, b)
        for a, b in zip(
            slice_membership(rec.slices, rec.features, lay.slices),
            old_slice_membership(rec.slices, rec.features, lay.slices),
            strict=True,
        ):
            assert np.array_equal(a, b)
        cols = feature_columns(rec.features, lay.features, rec.tokens_in)
        old = old_feature_columns(rec.features, lay.features, rec.tokens_in)
        for s in lay.features:
            if s.kind == "numeric":
                assert same_floats(cols[s.name], old[s.name])
            else:
                assert cols[s.name] == old[s.name]


LABELS = st.builds(
    Label,
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.floats(0, 1)),
    st.sampled_from([None, "human", "judge", "user", "system", "bogus"]),
    st.floats(0, 1e5),
    judge_model=st.sampled_from([None, "j1", "j2"]),
)


@st.composite
def label_changes(draw) -> list[LabelChange]:
    out = []
    for e in draw(events(min_size=1)):
        if draw(st.integers(0, 3)) == 0:
            continue
        old = draw(LABELS) if draw(st.integers(0, 4)) == 0 else None
        t = e.served_at.timestamp()
        out.append(LabelChange(e.request_id, e.model_id, t, e.slice, e.input_features, old, draw(LABELS)))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label_changes())
def test_label_contributions_equal_the_per_label_code(changes):
    t, scal, slices, feats = label_contributions(changes)
    ot, oscal, oslices, ofeats = old_label_contributions(changes)
    assert np.array_equal(t, ot) and np.array_equal(scal, oscal) and slices == oslices and feats == ofeats
    lay = layout()
    # a window given the labels' slice membership counts exactly what one computing it itself does
    member = slice_membership([c.slice for c in changes], [c.input_features for c in changes], lay.slices)
    a, b = ModelWindow(lay, 1000.0, 101, 1e6), ModelWindow(lay, 1000.0, 101, 1e6)
    for w in (a, b):
        w.observe(EventColumns([c.served_at for c in changes], [c.input_features for c in changes],
                          ["yes"] * len(changes), [None] * len(changes), [None] * len(changes),
                          [c.slice for c in changes], [None] * len(changes)))
    assert a.observe_labels(changes, member) == b.observe_labels(changes)
    assert np.array_equal(a.scalars, b.scalars) and a.late_labels == b.late_labels


class RecordingDrop(CorrectnessDrop):
    fed: list[tuple[list[bool], list[float]]]

    def update_many(self, correct, served_at) -> None:
        self.fed = [*getattr(self, "fed", []), (list(correct), list(served_at))]
        super().update_many(correct, served_at)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label_changes(), st.booleans())
def test_adwin_detectors_are_fed_as_before(changes, in_order):
    if in_order:  # the usual case (labels joined in served_at order) takes a shortcut
        changes = sorted(changes, key=lambda c: c.served_at)
    pairs = [("language", "es"), ("language", "ja"), ("domain", "regulatory")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("monitor.drift.engine.CorrectnessDrop", RecordingDrop)
        eng = DriftEngine(protected_slices={"language": ["es", "ja"], "domain": ["regulatory"]},
                          auto_reference_events=None)
        member = slice_membership([c.slice for c in changes], [c.input_features for c in changes], pairs)
        eng._feed_adwin("m1", changes, member)
    feeds = old_adwin_feeds(changes, pairs)
    assert sorted(label for (_, label) in eng._adwin) == sorted(feeds)
    for label, feed in feeds.items():
        det = eng._adwin[("m1", label)]
        assert det.fed == [feed]  # same values, same order, same types
        assert [type(t) for t in det.fed[0][1]] == [type(t) for t in feed[1]]
