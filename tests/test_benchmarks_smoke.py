"""Smoke test of the detection benchmark's in-process part (Slicewatch + river) on a tiny stream:
a 10-minute window instead of 1 hour, 5 events/s, 30 minutes of stream, a 1 sd shift at 15 minutes."""

from __future__ import annotations

import numpy as np

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
