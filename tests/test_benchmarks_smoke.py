"""Smoke test of the detection benchmark's in-process part (Slicewatch + river) on a tiny stream:
a 10-minute window instead of 1 hour, 5 events/s, 30 minutes of stream, a 1 sd shift at 15 minutes."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.detection import SCENARIOS, Planned, Row, relevant, run_stream, without_adwin_rule
from monitor.config import Settings

RATE = 5.0
ONSET, END = 900.0, 1800.0


def small_settings() -> Settings:
    return Settings.model_validate(
        {"stats": {"window_buckets": 10, "protected_slices": {"domain": ["regulatory"]}}}
    )


def test_abrupt_shift_detected_after_onset_with_consistent_delays():
    abrupt = SCENARIOS[0]
    r = run_stream(Planned(abrupt, 0, ONSET, END), RATE, None, small_settings())
    assert len(r.times) == int(END * RATE)
    assert np.all(np.diff(r.times) >= 0) and r.times[0] >= 0 and r.times[-1] < END
    hits = [f[0] for f in r.slicewatch if relevant("input", f[1], f[2], f[3])]
    assert hits, "Slicewatch never fired on a 1 sd shift"
    assert min(f[0] for f in r.slicewatch) >= ONSET, "Slicewatch fired before the change"
    row = Row()
    row.add(r, hits)
    assert row.detected == 1 and row.early == 0
    delay_s, delay_ev = row.delays_s[0], row.delays_ev[0]
    # hold of 3 evaluations every 15 s: at least 30 s; a 1 sd shift fills a 10-minute window's PSI well before its end
    assert 30.0 <= delay_s <= 600.0
    assert abs(delay_ev - delay_s * RATE) <= 15 * RATE  # events served between onset and the firing
    adwin = Row()
    adwin.add(r, r.river["x0"]["ADWIN"])
    assert adwin.detected == 1 and adwin.delays_ev[0] < delay_ev


def test_stationary_stream_has_no_slicewatch_alarm():
    r = run_stream(Planned(None, 1000, None, END), RATE, None, small_settings())
    assert len(r.times) == int(END * RATE)
    assert r.slicewatch == [] and r.slicewatch_window == []
    assert set(r.river) == {"x0", "confidence", "correct", "slice_correct"}


def test_window_only_variant_drops_exactly_the_adwin_rule():
    base = small_settings()
    window_only = without_adwin_rule(base)
    assert set(base.alerts.rules) - set(window_only.alerts.rules) == {"quality.adwin_drift"}
    assert all(window_only.alerts.rules[k] == base.alerts.rules[k] for k in window_only.alerts.rules)


def test_replay_benchmark_stream_has_its_shape_and_replays(tmp_path):
    """``benchmarks/replay.py`` on 40 minutes: 18 input features, 5 protected slice values, half
    labelled, the promotion at half time; the replay reads every event and evaluates at 15 s."""
    import json

    from benchmarks.replay import PROTECTED, run_slicewatch, write_stream

    inf, fb, pr, events = write_stream(tmp_path, hours=40 / 60, rate_per_min=60)
    lines = inf.read_text().splitlines()
    first = json.loads(lines[0])
    assert len(first["input_features"]) == 18 and sum(len(v) for v in PROTECTED.values()) == 5
    n_feedback = len(fb.read_text().splitlines())
    assert events == len(lines) + n_feedback and abs(n_feedback - len(lines) / 2) < len(lines) * 0.1
    took, summary = run_slicewatch((inf, fb, pr), tmp_path / "drift.jsonl")
    assert took > 0 and summary.events_in["inference"] == len(lines) and summary.events_in["feedback"] == n_feedback
    assert summary.evaluations >= 40 * 4


def test_replay_split_times_every_part_of_an_interval(tmp_path, monkeypatch):
    """``benchmarks.replay --split``: every part it names runs during a replay and is timed."""
    from benchmarks.replay import SPLIT, install_split, run_slicewatch, write_stream

    acc = install_split(monkeypatch.setattr)
    inf, fb, pr, _ = write_stream(tmp_path, hours=1.0, rate_per_min=200)  # 6,000 before the promotion
    _, summary = run_slicewatch((inf, fb, pr), tmp_path / "drift.jsonl")
    assert set(acc) == {label for label, *_ in SPLIT}
    for label in ("store write", "  inference rows", "observe", "pipeline.evaluate", "  engine.evaluate",
                  "    distribution statistics", "  alert evaluator", "  metrics view"):
        assert acc[label][1] > 0 and acc[label][0] > 0, label
    assert acc["pipeline.evaluate"][1] == summary.evaluations
    assert acc["  engine.evaluate"][0] <= acc["pipeline.evaluate"][0]  # a part within its whole


def test_stats_benchmark_fleet_and_evaluate_timers_run():
    from benchmarks.stats import FIVE_SLICES, time_evaluate, time_fleet, time_per_block

    changed, unchanged = time_evaluate(10, FIVE_SLICES, 2)
    assert changed > 0 and unchanged > 0
    assert time_per_block(10, FIVE_SLICES, 2) > 0
    busy, tenth = time_fleet(5, 10, FIVE_SLICES, 2)
    assert busy > 0 and tenth > 0
    busy, tenth = time_fleet(5, 10, FIVE_SLICES, 2, short_windows=(5, 15))
    assert busy > 0 and tenth > 0


def test_model_state_benchmark_prints_memory_and_checkpoint_per_model(monkeypatch, capsys):
    import re

    from benchmarks import model_state

    monkeypatch.setattr("sys.argv", ["model_state", "--models", "2", "--rate", "40", "--minutes", "3"])
    model_state.main()
    out = capsys.readouterr().out
    assert re.search(r"resident memory growth: -?[\d.]+ MiB = -?[\d.]+ MiB per model", out)
    pickled, packed = (float(x) for x in re.search(r"([\d.]+) MB pickled .* ([\d.]+) MB after zlib-1", out).groups())
    assert 0 < packed < pickled  # a checkpoint was made for each model and compresses
    assert re.search(r"observe: \d+ us CPU per model batch of 10", out)


@pytest.mark.integration
def test_sizing_workloads_are_written_through_the_monitor_and_measured(tmp_path, pg_server):
    """``benchmarks/sizing.py`` on 600 events: every event lands (PostgreSQL partitions and SQLite),
    and the sizes it reports are the database's own (no row is counted twice or missed)."""
    from benchmarks.sizing import llm_events, measure_pg, measure_sqlite

    pg = measure_pg(pg_server, "llm40", 600)
    assert pg["events"] == 600 and pg["wire"] > 600 * 1000  # 40 features and 300 characters of output
    assert pg["log_table"] > pg["wire"] * 0.5 and pg["log_indexes"] > 0 and pg["inference_request_table"] > 0
    lite = measure_sqlite("demo", 600)
    assert lite["events"] == 600 and lite["file"] > 600 * 300
    first, labels = next(llm_events(10))
    assert len(first) == 10 and len(first[0]["input_features"]) == 40 and len(labels) == 5


def test_the_observe_floor_counts_what_the_window_counts():
    """``benchmarks.floors``' numpy floor is the engine's counting with the glue removed: on one
    batch it must add the same histogram and sketch counts per (slot, slice) as ``observe_frame``."""
    from benchmarks.floors import arrays_of, numpy_floor
    from benchmarks.stats import SLICES, make_stream, new_engine
    from tests.stats_fixtures import frame_of

    stream = make_stream(20, 1)
    eng = new_engine(SLICES, stream)
    window = next(iter(eng._windows.values()))
    frame = frame_of(stream[4][0])
    hist, sketch = numpy_floor(arrays_of(eng, frame))
    before_hist = window.hist.copy()
    slots = range(window.ring)
    before_sketch = [window.slot_sketch(s) for s in slots]
    eng.observe_frame(frame, [], 30.0 * 5)
    s = window.layout.n_slices
    assert hist.sum() > 0 and sketch.sum() > 0 and np.array_equal(window.hist - before_hist, hist)
    for slot in slots:
        assert np.array_equal(window.slot_sketch(slot) - before_sketch[slot], sketch[slot * s:(slot + 1) * s])
