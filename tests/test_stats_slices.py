"""Protected slices keyed by an input feature: the key feature is not compared within its own slice."""

from __future__ import annotations

import numpy as np

from monitor.drift.engine import DriftEngine
from tests.stats_fixtures import StreamSpec, make_batch


def test_slice_on_an_input_feature_reports_no_drift_of_that_feature() -> None:
    rng = np.random.default_rng(3)
    spec = StreamSpec(n_numeric=2, n_categorical=1, n_boolean=0)
    # c0 == "d" carries 5% of traffic: the 1,000-event auto reference holds ~50 such rows, fewer
    # than min_samples, so the slice is compared with the reference aggregate.
    engine = DriftEngine(auto_reference_events=1000, min_samples=200, protected_slices={"c0": ["d"]})
    t = 1_800_000_000.0
    for _ in range(8):
        events, labels = make_batch(rng, spec, 1000, t, t + 60)
        engine.observe(events, labels, t + 60)
        t += 60
    snap = engine.evaluate(t)
    in_slice = [v for v in snap.values if v.slice == "c0=d" and v.signal == "input"]
    assert in_slice, "the slice must still be evaluated"
    assert {v.feature for v in in_slice} >= {"x0", "x1"}
    assert not [v for v in in_slice if v.feature == "c0"]
    # the aggregate still compares c0 with its reference, and on stationary data it has not moved
    agg = {v.statistic: v.value for v in snap.values if v.slice == "all" and v.feature == "c0"}
    assert agg["psi"] < 0.05
