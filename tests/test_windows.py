"""Several window lengths from the same buckets (issue 10, part 1).

* ``ModelWindow.totals_over`` equals an independent count of the events whose bucket lies in each
  window (numpy on the raw times), for random streams and lengths (hypothesis);
* its running totals (moved as buckets enter and leave, issue 12) equal a plain sum of the held
  buckets after any sequence of batches, labels, clock moves (forward, by jumps, backwards) and reads;
* the engine's short windows carry only tested statistics, corrected with the main window (one
  family per signal at alpha / families; a feature's distribution statistics count as one hypothesis);
* an abrupt input shift is found by the 5-minute window within minutes, long before the main one;
* the alert evaluator keeps one alert per statistic whatever the windows: the most severe window
  speaks, and the alert's window is that window.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.rules import Rule
from monitor.alerts.state import AlertEvaluator
from monitor.drift import DriftEngine
from monitor.drift.signals import DISTRIBUTION_STATISTICS
from monitor.snapshot import SignalValue, Snapshot
from monitor.stats import window as window_module
from monitor.stats.bins import FeatureSpec
from monitor.stats.columns import EventColumns
from monitor.stats.layout import EVENTS, Layout
from monitor.stats.multiple_testing import adjust_p_values
from monitor.stats.sketch import SketchSpec
from monitor.stats.window import ModelWindow
from tests.stats_fixtures import StreamSpec, make_batch

LAYOUT = Layout((FeatureSpec.numeric("x", [0.0, 1.0]),), FeatureSpec.categorical("output", ["a"]),
                FeatureSpec.numeric("confidence", [0.5]), ())


# the same with x sketched (a batch adds sparse sketch cells) and two protected slices of "lang"
SKETCHED = Layout((FeatureSpec.numeric("x", [0.0, 1.0], SketchSpec.from_values(np.array([-2.0, 0.01, 3.0]))),
                   FeatureSpec.categorical("lang", ["es", "ja"])),
                  FeatureSpec.categorical("output", ["a"]), FeatureSpec.numeric("confidence", [0.5]),
                  (("lang", "es"), ("lang", "ja")))


def columns(times: list[float], xs: list[float]) -> EventColumns:
    n = len(times)
    langs = ["es", "ja", "en"]
    return EventColumns(times, [{"x": x, "lang": langs[i % 3]} for i, x in enumerate(xs)], ["a"] * n, [0.9] * n,
                        [None] * n, [{}] * n, [None] * n)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1199.99), st.floats(-2, 3)), max_size=200),
    st.lists(st.integers(1, 20), min_size=1, max_size=4),
    st.floats(0, 1199.99),
)
def test_totals_over_equal_an_independent_count_per_window(events, lengths, now):
    w = ModelWindow(LAYOUT, 60.0, 20, 1e9, future_buckets=0)
    times = [t for t, _ in events]
    w.observe(columns(times, [x for _, x in events]), arrival=None)
    cur = int(np.floor(now / 60.0))
    t = np.array(times, dtype=np.float64)
    x = np.array([x for _, x in events], dtype=np.float64)
    b = np.floor(t / 60.0).astype(np.int64)
    # the ring keeps the newest 20 buckets it saw: events of older buckets are gone for good
    kept = b > (b.max() - 20) if b.size else np.zeros(0, dtype=bool)
    for n, total in zip(lengths, w.totals_over(now, lengths), strict=True):
        inside = kept & (b > cur - n) & (b <= cur)
        assert int(total.scalars[0][EVENTS]) == int(inside.sum())
        xs = x[inside]
        # bins of edges [0, 1]: below 0, [0, 1] (the last edge closes its bin), above 1, missing
        want = [int(np.sum(xs < 0.0)), int(np.sum((xs >= 0.0) & (xs <= 1.0))), int(np.sum(xs > 1.0)), 0]
        assert total.hist[0][LAYOUT.block(0)].tolist() == want
        assert (total.start, total.end) == ((cur - n + 1) * 60.0, (cur + 1) * 60.0)


def plain_sums(w: ModelWindow, now: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The window's counts summed from its held buckets, without its running totals."""
    cur = int(np.floor(now / w.bucket_seconds))
    s = w.layout.n_slices
    slots = np.flatnonzero((w.slot_bucket > cur - n) & (w.slot_bucket <= cur))
    rows = (slots[:, None] * s + np.arange(s)).ravel()
    sketch = np.zeros((s, w.layout.sketch_size), dtype=np.int64)
    for slot in slots.tolist():
        sketch += w.slot_sketch(slot)
    hist, scalars = (a[rows].reshape(slots.size, s, a.shape[1]).sum(axis=0) for a in (w.hist, w.scalars))
    return hist, sketch, scalars


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from(["batch", "labels", "read", "jump"]),
    st.lists(st.tuples(st.floats(-700, 700), st.floats(-2, 3)), max_size=30),
    st.floats(-50, 400),
), min_size=1, max_size=40), st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True),
    st.sampled_from([LAYOUT, SKETCHED]), st.sampled_from([window_module.SPARSE_FACTOR, 10**12]),
    st.sampled_from([None, (12,)]))
def test_running_totals_equal_a_plain_sum_after_any_sequence(steps, lengths, layout, sparse_factor, sketch_windows):
    """(``sparse_factor`` 10**12: every batch's sketch counts take the dense path; ``sketch_windows``
    (12,): only the whole window's totals keep sketch counts, as the engine's windows.)"""
    real = window_module.SPARSE_FACTOR
    window_module.SPARSE_FACTOR = sparse_factor
    try:
        running_totals_after(steps, lengths, layout, sketch_windows)
    finally:
        window_module.SPARSE_FACTOR = real


def running_totals_after(steps, lengths, layout, sketch_windows=None):
    from monitor.records import Label, LabelChange

    w = ModelWindow(layout, 60.0, 12, 1e9, future_buckets=3, sketch_windows=sketch_windows)
    clock = 10_000.0
    for op, events, move in steps:
        clock += move * (20 if op == "jump" else 1)
        if op == "batch" and events:
            w.observe(columns([clock + dt for dt, _ in events], [x for _, x in events]), arrival=clock)
        elif op == "labels" and events:
            w.observe_labels([LabelChange(f"r{i}", "m", clock + dt, {}, {"x": x}, None,
                                          Label(x > 0.5, None, "human", clock))
                              for i, (dt, x) in enumerate(events)])
        got = w.totals_over(clock, lengths)
        for n, t in zip(lengths, got, strict=True):
            hist, sketch, scalars = plain_sums(w, clock, n)
            assert t.hist.tolist() == hist.tolist() and t.scalars.tolist() == scalars.tolist()
            if sketch_windows is not None and n not in sketch_windows:
                assert t.sketch.shape == (layout.n_slices, 0)
                continue
            assert t.sketch.tolist() == sketch.tolist()
            if layout.sketched:  # each finite x in one sketch cell of its slices (the dense histogram's count)
                assert sketch.sum(axis=1).tolist() == hist[:, layout.block(0)][:, :-1].sum(axis=1).tolist()


def engine(**kw) -> DriftEngine:
    args = dict(bucket_seconds=60, window_buckets=30, allowed_lateness_s=120, min_samples=200,
                auto_reference_events=6000, short_windows=(5,))
    args.update(kw)
    return DriftEngine(**args)


def feed(eng: DriftEngine, spec: StreamSpec, minutes: int, per_minute: int, seed: int = 0):
    """Evaluate every 15 s of event time (the default cadence): 4 batches a minute."""
    rng = np.random.default_rng(seed)
    for q in range(minutes * 4):
        start, end = 15.0 * q, 15.0 * (q + 1)
        ev, lab = make_batch(rng, spec, per_minute // 4, start, end)
        eng.observe(ev, lab, end)
        yield end, eng.evaluate(end - 1e-6)


def breach(v: SignalValue, limit: float, alpha: float) -> bool:
    """The rules' verdict: enough samples, past the threshold, significant after correction."""
    return v.sufficient and v.value > limit and (v.p_value_adjusted is None or v.p_value_adjusted < alpha)


def test_short_windows_carry_only_tested_statistics_in_one_family():
    eng = engine()
    snap = list(feed(eng, StreamSpec(), 40, 400))[-1][1]
    short = [v for v in snap.values if v.window_s == 300.0]
    main = [v for v in snap.values if v.window_s == 1800.0]
    assert short and main
    assert all(v.p_value is not None and v.p_value_adjusted is not None for v in short)
    assert {v.statistic for v in short} <= DISTRIBUTION_STATISTICS | {"accuracy_gap", "score_gap"}
    assert any(v.p_value is None for v in main)  # the main window keeps its untested statistics
    # the correction: per model, one family per signal over windows x slices x features x tests (each
    # test once), each family at alpha / G: its adjusted p-values times G, the number of families
    # (a short window's p-values enter weighted by its extra looks per hour: main length / its length)
    families: dict[str, dict[tuple, float]] = {}
    for v in snap.values:
        if v.p_value is not None:
            test = "distribution" if v.statistic in DISTRIBUTION_STATISTICS else v.statistic
            looks = max(1.0, 1800.0 / v.window_s)  # a 5 min window of a 30 min main one: 6x the looks
            families.setdefault(v.signal, {}).setdefault((v.window_s, v.slice, v.signal, v.feature, test),
                                                         min(1.0, v.p_value * looks))
    assert set(families) >= {"input", "output"}
    want = {}
    for tests in families.values():
        keys = list(tests)
        for k, p in zip(keys, adjust_p_values([tests[k] for k in keys], "bh"), strict=True):
            want[k] = min(1.0, p * len(families))
    for v in snap.values:
        if v.p_value is not None:
            test = "distribution" if v.statistic in DISTRIBUTION_STATISTICS else v.statistic
            assert v.p_value_adjusted == want[(v.window_s, v.slice, v.signal, v.feature, test)]


def test_abrupt_input_shift_is_found_by_the_short_window_within_minutes():
    onset = 40 * 60.0
    first: dict[float, float] = {}
    eng = engine()
    for end, snap in feed(eng, StreamSpec(input_shift=1.0, onset=onset), 60, 400):
        for v in snap.values:
            if (v.signal, v.feature, v.statistic, v.slice) == ("input", "x0", "psi", "all") and breach(v, 0.2, 0.01):
                first.setdefault(v.window_s or 0.0, end)
    assert min(first.values()) >= onset, "crossed before the onset"
    assert first[300.0] - onset <= 3 * 60, f"5-minute window took {first[300.0] - onset:.0f} s"
    assert first.get(1800.0, float("inf")) - onset > first[300.0] - onset + 60  # the main window is slower


def snapshot(*values: SignalValue) -> Snapshot:
    return Snapshot(1000.0, 1000.0 - 3600, 1000.0, values, models=("m",))


def test_one_alert_per_statistic_whatever_the_windows():
    rule = Rule("input.psi", warning=0.2, critical=0.3, min_samples=100, hold_evaluations=1, clear_evaluations=1)
    ev = AlertEvaluator({"input.psi": rule})
    quiet_main = SignalValue("m", "all", "input", "x", "psi", 0.05, 5000, p_value=0.5, p_value_adjusted=0.5,
                             window_s=3600.0)
    loud_short = SignalValue("m", "all", "input", "x", "psi", 0.45, 400, p_value=1e-9, p_value_adjusted=1e-8,
                             window_s=300.0)
    few = SignalValue("m", "all", "input", "x", "psi", 0.9, 50, sufficient=False, p_value=1e-9,
                      p_value_adjusted=1e-8, window_s=60.0)
    fired = ev.evaluate(snapshot(quiet_main, loud_short, few), {}, 1000.0)
    assert len(fired) == 1 and fired[0].to_state == "firing"
    alert = fired[0].alert
    assert (alert.severity, alert.value, alert.sample_count) == ("critical", 0.45, 400)
    assert (alert.window_start, alert.window_end) == (700.0, 1000.0)  # the 5-minute window
    # a window without enough samples gives no verdict: it neither fires nor clears
    assert ev.evaluate(snapshot(few), {}, 1015.0) == []
    # the short window alone significant but below the threshold: every window clear -> resolved
    calm = SignalValue("m", "all", "input", "x", "psi", 0.1, 400, p_value=1e-9, p_value_adjusted=1e-8, window_s=300.0)
    resolved = ev.evaluate(snapshot(quiet_main, calm), {}, 1030.0)
    assert [t.to_state for t in resolved] == ["resolved"]


@pytest.mark.parametrize("sparse_factor", [window_module.SPARSE_FACTOR, 10**12])
def test_one_batch_adds_a_sketch_cell_twice_when_two_buckets_hold_it(monkeypatch, sparse_factor):
    """Equal values of one slice in two buckets of one batch: the running total counts both."""
    monkeypatch.setattr(window_module, "SPARSE_FACTOR", sparse_factor)
    w = ModelWindow(SKETCHED, 60.0, 12, 1e9, future_buckets=3)
    w.totals_over(10_000.0, [5])  # a running total exists before the batch
    w.observe(columns([9_950.0, 9_890.0, 9_891.0], [0.5, 0.5, 0.5]), arrival=10_000.0)
    (t,) = w.totals_over(10_000.0, [5])
    _, sketch, _ = plain_sums(w, 10_000.0, 5)
    assert t.sketch.tolist() == sketch.tolist()
    assert sorted(c for c in t.sketch[0].tolist() if c) == [3]  # the aggregate: one cell, three events


def test_totals_over_views_are_read_only_and_follow_the_window_copies_do_not():
    w = ModelWindow(LAYOUT, 60.0, 10, 1e9, future_buckets=0)
    w.observe(columns([30.0, 40.0], [0.5, 2.0]), arrival=50.0)
    copy, view = w.totals_over(50.0, (5,))[0], w.totals_over(50.0, (5,), views=True)[0]
    assert copy.hist.tolist() == view.hist.tolist() and copy.scalars.tolist() == view.scalars.tolist()
    with pytest.raises(ValueError):
        view.hist[0, 0] = 1
    w.observe(columns([45.0], [0.5]), arrival=50.0)
    assert int(view.scalars[0, EVENTS]) == 3 and int(copy.scalars[0, EVENTS]) == 2
