"""Detectors: ADWIN correctness drops on seeded streams, lineage tracking, pickle round-trips."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.detect import CorrectnessDrop, LineageTracker


def stream(seed: int, before: float, after: float, n: int = 4000, change: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.where(np.arange(n) < change, before, after)
    return rng.random(n) < p


@pytest.mark.parametrize("seed", range(5))
def test_adwin_flags_a_drop_after_the_change_only(seed):
    d = CorrectnessDrop()
    x = stream(seed, 0.9, 0.7)
    d.update_many(x[:2000].tolist(), list(map(float, range(2000))))
    assert d.last_drop_at is None
    d.update_many(x[2000:].tolist(), list(map(float, range(2000, 4000))))
    assert d.last_drop_at is not None and 2000 <= d.last_drop_at < 2600
    assert d.estimate == pytest.approx(0.7, abs=0.06)


@pytest.mark.parametrize("seed", range(3))
def test_adwin_does_not_call_an_increase_a_drop(seed):
    d = CorrectnessDrop()
    x = stream(seed, 0.6, 0.95)
    for i, c in enumerate(x):
        d.update(bool(c), float(i))
    assert d.last_drop_at is None
    assert d.n_seen == x.size


def test_update_many_equals_update():
    x = stream(11, 0.9, 0.6)
    a, b = CorrectnessDrop(), CorrectnessDrop()
    for i, c in enumerate(x):
        a.update(bool(c), float(i))
    b.update_many(x.tolist(), [float(i) for i in range(x.size)])
    assert (a.last_drop_at, a.estimate, a.n_seen) == (b.last_drop_at, b.estimate, b.n_seen)


def _state(d: CorrectnessDrop) -> tuple:
    a = d._adwin
    return (d.last_drop_at, d.estimate, d.n_seen, d._sum, d._width, a.drift_detected, a.width, a.total,
            a.n_detections, a.variance)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.floats(0.0, 1.0)), min_size=1, max_size=8),
       st.lists(st.integers(1, 300), min_size=1, max_size=20), st.integers(0, 2**16), st.booleans())
def test_update_many_through_the_window_equals_the_public_api(segments, splits, seed, round_trip):
    """The fast path (river's window object driven directly) against ``ADWIN.update``: the same
    detections, drops and window after every batch, on streams whose accuracy jumps (drifts)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.random(n) < p for n, p in segments]).tolist()
    t = [float(i) for i in range(len(x))]
    fast, public = CorrectnessDrop(), CorrectnessDrop()
    start = 0
    for k, size in enumerate(splits * (len(x) // max(1, sum(splits)) + 1)):
        if start >= len(x):
            break
        fast.update_many(x[start : start + size], t[start : start + size])
        public._update_public(x[start : start + size], t[start : start + size])
        assert _state(fast) == _state(public)
        if round_trip and k == 1:
            fast = pickle.loads(pickle.dumps(fast))
        start += size
    one = CorrectnessDrop()
    for c, s in zip(x, t, strict=True):
        one.update(c, s)
    assert _state(one) == _state(fast)


def test_update_many_without_the_window_object_uses_the_public_api(monkeypatch):
    """A river whose ADWIN has no ``_helper`` (another version) takes the public path."""
    x = stream(4, 0.9, 0.6)
    a, b = CorrectnessDrop(), CorrectnessDrop()
    called = []
    monkeypatch.setattr(b, "_update_public", lambda c, s: called.append(len(c)) or a._update_public(c, s))
    monkeypatch.delattr(type(b._adwin), "_helper", raising=False)
    b._adwin.__dict__.pop("_helper")
    b.update_many(x.tolist(), [float(i) for i in range(x.size)])
    assert called == [x.size] and a.last_drop_at is not None


def test_pickle_round_trip_of_detectors():
    d = CorrectnessDrop()
    x = stream(3, 0.9, 0.7)
    d.update_many(x[:3000].tolist(), [float(i) for i in range(3000)])
    clone = pickle.loads(pickle.dumps(d))
    d.update_many(x[3000:].tolist(), [float(i) for i in range(3000, 4000)])
    clone.update_many(x[3000:].tolist(), [float(i) for i in range(3000, 4000)])
    assert (clone.last_drop_at, clone.estimate) == (d.last_drop_at, d.estimate)
    t = LineageTracker(60.0)
    t.update("m", "dataset_version", ["v1", "v2"], [1.0, 2.0])
    assert pickle.loads(pickle.dumps(t)).changes(10.0) == t.changes(10.0)


def test_lineage_tracker_changes_lookback_and_bound():
    t = LineageTracker(lookback_s=100.0, max_changes=3)
    t.update("m", "prompt_template_sha", [None, "a", None, "a"], [1.0, 2.0, 3.0, 4.0])
    assert t.changes(10.0) == []  # the first value is not a change
    t.update("m", "prompt_template_sha", ["b", "c", "c", "d", "e"], [10.0, 20.0, 21.0, 30.0, 40.0])
    got = [(c.from_value, c.to_value, c.first_seen) for c in t.changes(50.0)]
    assert got == [("b", "c", 20.0), ("c", "d", 30.0), ("d", "e", 40.0)]  # bounded to the last 3
    assert [c.to_value for c in t.changes(125.0)] == ["d", "e"]
    assert t.last_value("m", "prompt_template_sha") == "e"
    t.drop_models(["m"])
    assert t.changes(50.0) == [] and t.last_value("m", "prompt_template_sha") is None


def test_invalid_arguments():
    with pytest.raises(ValueError):
        CorrectnessDrop(delta=0.0)
    with pytest.raises(ValueError):
        LineageTracker(lookback_s=0.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.floats(0.0, 1.0)), min_size=2, max_size=6),
       st.integers(0, 2**16))
def test_the_mean_before_an_update_is_river_window_mean(segments, seed):
    """A drop is judged against the mean of river's window before the update: the values since it
    last started afresh (the update after a detection starts a new window). After every update
    our running sum and width are river's window's."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.random(n) < p for n, p in segments]).tolist()
    d, batched = CorrectnessDrop(), CorrectnessDrop()
    for i, c in enumerate(x):
        d.update(c, float(i))
        a = d._adwin
        assert d._width == a.width and d._sum == pytest.approx(a.total, abs=1e-9)
    batched.update_many(x, [float(i) for i in range(len(x))])
    assert (batched._width, batched.last_drop_at) == (d._width, d.last_drop_at)
    assert batched._sum == pytest.approx(d._sum, abs=1e-9)
