"""The fast column builders give exactly what the definitions say, one value or event at a time.

The oracles below are written from the definitions in plain Python (one value, one event, one
label at a time), not copied from the production code: numbers to floats, bin = count of edges at
or below the value, slice membership from ``slice`` else the stringified input feature, +1/-1
label rows, the ADWIN feed in served_at order. Hypothesis drives them with mixed value types,
missing features, None, booleans, numbers as strings, and slice keys found in ``slice`` or only in
``input_features``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
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
from monitor.stats import bins as bins_module
from monitor.stats.bins import FeatureSpec, numeric_array, numeric_bins, numeric_matrix, numeric_rows, stringify
from monitor.stats.columns import EventColumns, feature_columns, records_from_events, slice_membership
from monitor.stats.contributions import label_contributions
from monitor.stats.delay_histogram import DelayHistogram
from monitor.stats.label_columns import LabelColumns
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
    SOURCES,
    Layout,
    source_index,
)
from monitor.stats.sketch import SketchSpec, sketch_indices
from monitor.stats.window import ModelWindow

# ---- oracles: the definitions, one value or one event at a time, in plain Python ----------------
# Written from the docstrings, not from the production code: numbers become floats (booleans 0/1),
# anything else NaN; a bin index counts the edges at or below the value; a slice member is an
# event whose slice (else its input feature, stringified) holds the value; a label adds +1 rows,
# the label it replaced -1 rows.

def is_number(v: Any) -> bool:
    return isinstance(v, bool | int | float)


def is_numeric_text(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


def oracle_numeric(values: list[Any]) -> np.ndarray:
    """A column of floats. The documented quirk kept from numpy: when *every* value is None, a
    number or a numeric string, the strings are parsed too; otherwise only numbers count."""
    whole = all(v is None or is_number(v) or is_numeric_text(v) for v in values)
    out = []
    for v in values:
        if v is None:
            out.append(math.nan)
        elif is_number(v):
            out.append(float(v))  # OverflowError for an int beyond float range, as numpy
        elif whole:
            out.append(float(v))
        else:
            out.append(math.nan)
    return np.array(out, dtype=np.float64)


def oracle_bin(spec: FeatureSpec, value: Any) -> int:
    """The bin of one value (``value`` already a float for numeric specs)."""
    if spec.kind == "numeric":
        x = float(value)
        if not math.isfinite(x):
            return spec.missing_index
        edges = [float(e) for e in spec.edges]
        if x == edges[-1]:
            return len(edges) - 1 if len(edges) > 1 else 0
        return sum(1 for e in edges if e <= x)
    if spec.kind == "categorical":
        if value is None:
            return spec.missing_index
        key = value if type(value) is str else stringify(value)
        if key in spec.categories:
            return list(spec.categories).index(key)
        return len(spec.categories) if key in spec.vocabulary else len(spec.categories) + 1
    return 1 if value is True else 0 if value is False else spec.missing_index


def oracle_bins(spec: FeatureSpec, column: Any) -> np.ndarray:
    return np.array([oracle_bin(spec, v) for v in column], dtype=np.int64)


def raw_value(rec: EventColumns, i: int, name: str) -> Any:
    return rec.tokens_in[i] if name == "tokens_in" else rec.features[i].get(name)


def oracle_feature_columns(rec: EventColumns, specs) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in specs:
        values = [raw_value(rec, i, s.name) for i in range(len(rec))]
        out[s.name] = oracle_numeric(values) if s.kind == "numeric" else values
    return out


def oracle_bin_records(layout: Layout, rec: EventColumns):
    """One event at a time: its histogram cells, sketch cells and scalar counters."""
    cols = oracle_feature_columns(rec, layout.features)
    conf = oracle_numeric(list(rec.confidence))
    hist, sketch, scal = [], [], []
    for i in range(len(rec)):
        h, k = [], []
        for j, spec in enumerate(layout.features):
            v = cols[spec.name][i]
            h.append(oracle_bin(spec, v) + layout.offsets[j])
            if spec.sketch is not None:
                cell = int(spec.sketch.index(np.array([v], dtype=np.float64))[0])
                k.append(cell + layout.sketch_offsets[len(k)] if cell >= 0 else -1)
        nf = len(layout.features)
        h.append(oracle_bin(layout.output, rec.outputs[i]) + layout.offsets[nf])
        h.append(oracle_bin(layout.confidence, conf[i]) + layout.offsets[nf + 1])
        row = [0] * N_SCALARS
        row[EVENTS] = 1
        if math.isfinite(conf[i]):
            row[CONF_N] = 1
            row[CONF_SUM] = round(conf[i] * FIXED_POINT)
        hist.append(h)
        sketch.append(k)
        scal.append(row)
    n = len(rec)
    return (np.array(hist, dtype=np.int64).reshape(n, len(layout.blocks)),
            np.array(sketch, dtype=np.int64).reshape(n, len(layout.sketched)),
            np.array(scal, dtype=np.int64).reshape(n, N_SCALARS))


def oracle_member(slice_: dict[str, Any], features: dict[str, Any], key: str, value: str) -> bool:
    """The event's slice value for ``key``: from ``slice`` when the key is there, else the input
    feature's, stringified (True -> "true", 3.0 -> "3")."""
    got = slice_[key] if key in slice_ else stringify(features.get(key))
    return got == value


def oracle_slice_membership(slices, features, protected) -> list[np.ndarray]:
    return [
        np.array([i for i in range(len(slices)) if oracle_member(slices[i], features[i], k, v)], dtype=np.int64)
        for k, v in protected
    ]


def oracle_records_from_events(events) -> dict[str, EventColumns]:
    out: dict[str, EventColumns] = {}
    for e in events:
        rec = out.setdefault(e.model_id, EventColumns())
        rec.served_at.append(e.served_at.timestamp())
        rec.features.append(e.input_features)
        rec.outputs.append(e.output)
        rec.confidence.append(e.confidence)
        rec.tokens_in.append(e.tokens_in)
        rec.slices.append(e.slice)
        rec.lineage.append(e.lineage)
    return out


def oracle_label_row(label: Label, sign: int) -> list[int]:
    row = [0] * N_SCALARS
    row[LABELLED] = sign
    if label.was_correct is not None:
        row[CORRECT_N] = sign
        row[CORRECT_SUM] = sign * int(label.was_correct)
    if label.score is not None:
        row[SCORE_N] = sign
        row[SCORE_SUM] = sign * round(label.score * FIXED_POINT)
        row[SCORE_SQ] = sign * round(label.score * label.score * FIXED_POINT)
    row[SOURCE_BASE + source_index(label.source)] = sign
    return row


def oracle_label_contributions(changes):
    """Every new label adds a +1 row; after them, every replaced label a -1 row (same order)."""
    rows = [(ch, oracle_label_row(ch.new, 1)) for ch in changes]
    rows += [(ch, oracle_label_row(ch.old, -1)) for ch in changes if ch.old is not None]
    t = np.array([ch.served_at for ch, _ in rows], dtype=np.float64)
    scal = np.array([r for _, r in rows], dtype=np.int64).reshape(len(rows), N_SCALARS)
    return t, scal, [ch.slice for ch, _ in rows], [ch.input_features for ch, _ in rows]


def oracle_adwin_feeds(labels, pairs) -> dict[str, tuple[list[bool], list[float]]]:
    """What each detector must be fed: the scored labels in served_at order (stable), per slice."""
    scored = sorted((lc for lc in labels if lc.new.was_correct is not None), key=lambda lc: lc.served_at)
    out = {}
    groups = [(AGGREGATE, scored)] + [
        (slice_label(k, v), [lc for lc in scored if oracle_member(lc.slice, lc.input_features, k, v)])
        for k, v in pairs
    ]
    for label, members in groups:
        if members:
            out[label] = ([bool(lc.new.was_correct) for lc in members], [lc.served_at for lc in members])
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


@contextmanager
def converter(polars_from: int) -> Iterator[None]:
    """Lists convert by polars from ``polars_from`` values on (0: always polars; huge: always numpy)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bins_module, "POLARS_FROM", polars_from)
        yield


CONVERTERS = st.sampled_from([0, 10**9])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.booleans(), NUMBERS), max_size=30), CONVERTERS)
def test_numeric_array_equals_numpy_on_numbers(values, polars_from):
    with converter(polars_from):
        assert same_floats(numeric_array(values), oracle_numeric(values))


@settings(max_examples=200, deadline=None)
@given(st.lists(ANY_VALUE, max_size=30), CONVERTERS)
def test_numeric_array_equals_numpy_on_mixed_values(values, polars_from):
    with converter(polars_from):
        assert same_floats(numeric_array(values), oracle_numeric(values))


def test_numeric_array_raises_like_numpy_on_an_int_beyond_float_range():
    with pytest.raises(OverflowError):
        oracle_numeric([10**400, 1.0])
    with pytest.raises(OverflowError):
        numeric_array([10**400, 1.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.booleans(), NUMBERS, st.just("x")), min_size=7, max_size=7),
                max_size=4), CONVERTERS)
def test_numeric_matrix_and_rows_equal_stacked_columns(columns, polars_from):
    with converter(polars_from):
        got = numeric_matrix(columns, 7)
        rows = numeric_rows([{f"f{j}": c[i] for j, c in enumerate(columns)} for i in range(7)],
                            [f"f{j}" for j in range(len(columns))])
    want = np.stack([oracle_numeric(c) for c in columns]) if columns else np.empty((0, 7))
    assert same_floats(got, want)
    assert same_floats(rows, want)


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY_VALUE, max_size=30))
def test_categorical_and_boolean_bins_equal_the_per_value_code(values):
    for spec in layout().blocks:
        if spec.kind != "numeric":
            assert np.array_equal(spec.bin(values), oracle_bins(spec, values))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(NUMBERS, min_size=9, max_size=9), min_size=1, max_size=4))
def test_numeric_bins_and_sketch_indices_equal_one_call_per_feature(rows):
    x = np.array(rows, dtype=np.float64)
    specs = [s for s in layout().features if s.kind == "numeric"][: len(rows)]
    x = x[: len(specs)]
    got = numeric_bins(specs, x)
    for j, s in enumerate(specs):
        assert np.array_equal(got[j], oracle_bins(s, x[j]))
    sketched = [s.sketch for s in specs if s.sketch is not None]
    xs = x[[j for j, s in enumerate(specs) if s.sketch is not None]]
    if sketched:
        got = sketch_indices(sketched, xs)
        for j, sk in enumerate(sketched):
            assert np.array_equal(got[j], sk.index(xs[j].copy()))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_records_and_bin_records_equal_the_per_event_code(evs):
    got, want = records_from_events(evs), oracle_records_from_events(evs)
    assert list(got) == list(want)
    lay = layout()
    for m, rec in got.items():
        assert rec == want[m]
        if len(rec) == 0:
            continue
        for a, b in zip(lay.bin_records(rec), oracle_bin_records(lay, want[m]), strict=True):
            assert a.shape == b.shape and np.array_equal(a, b)
        for a, b in zip(
            slice_membership(rec.slices, rec.features, lay.slices),
            oracle_slice_membership(rec.slices, rec.features, lay.slices),
            strict=True,
        ):
            assert np.array_equal(a, b)
        cols = feature_columns(rec.features, lay.features, rec.tokens_in)
        old = oracle_feature_columns(rec, lay.features)
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
    failure_cluster=st.sampled_from([None, "", "timeout", "refusal"]),
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
    ot, oscal, oslices, ofeats = oracle_label_contributions(changes)
    for given_as in (changes, LabelColumns.of(changes)):  # objects, and columns (their own path without retractions)
        t, scal, slices, feats = label_contributions(given_as)
        assert np.array_equal(t, ot) and np.array_equal(scal, oscal) and slices == oslices and feats == ofeats
    firsts = [c for c in changes if c.old is None]
    assert np.array_equal(label_contributions(LabelColumns.of(firsts))[1], oracle_label_contributions(firsts)[1])
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


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label_changes())
def test_tallies_delays_and_clusters_equal_the_per_label_code(changes):
    """What the engine keeps of a batch of labels, against the same counted one label at a time."""
    pairs = [("language", "es"), ("domain", "regulatory")]
    eng = DriftEngine(protected_slices={"language": ["es"], "domain": ["regulatory"]}, auto_reference_events=None)
    member = slice_membership([c.slice for c in changes], [c.input_features for c in changes], pairs)
    eng._feed_labels("m1", LabelColumns.of(changes), member)
    groups = {AGGREGATE: changes} | {
        slice_label(k, v): [c for c in changes if oracle_member(c.slice, c.input_features, k, v)] for k, v in pairs}
    for label, members in groups.items():
        scored = [c for c in members if c.old is None and c.new.was_correct is not None]
        tally = eng._tallies.get(("m1", label))
        if not scored:
            assert tally is None
            continue
        assert tally is not None and (tally.correct, tally.total) == (
            sum(bool(c.new.was_correct) for c in scored), len(scored))
        assert tally.first_served == min(c.served_at for c in scored)
        failures = [c.new.failure_cluster for c in members
                    if c.old is None and c.new.was_correct is False and c.new.failure_cluster]
        assert (("m1", label) in eng._clusters) == bool(failures)
    delays: dict[str, list[float]] = {}
    for c in changes:
        if c.old is None:
            source = c.new.source if c.new.source in SOURCES else "unknown"
            delays.setdefault(source, []).append(c.new.observed_at - c.served_at)
    assert sorted(s for _, s in eng._delays) == sorted(delays)
    for source, ds in delays.items():
        want = DelayHistogram()
        want.update(ds)
        assert eng._delays[("m1", source)].counts.tolist() == want.counts.tolist()


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
        eng._feed_adwin("m1", LabelColumns.of(changes), member)
    feeds = oracle_adwin_feeds(changes, pairs)
    assert sorted(label for (_, label) in eng._adwin) == sorted(feeds)
    for label, feed in feeds.items():
        det = eng._adwin[("m1", label)]
        assert det.fed == [feed]  # same values, same order, same types
        assert [type(t) for t in det.fed[0][1]] == [type(t) for t in feed[1]]
