"""10^6 stationary events, 20 features, 4 protected slices, a 10-minute main window and 2- and
5-minute short ones: no signal breaches its rule, and the state size stays flat once the window is
full. A breach is what the rules call one (``Rule.verdict``): enough samples, past the threshold of
``monitor.alerts.rules.DEFAULT_RULES`` (plus ADWIN) and, where the statistic has a p-value,
significant after the correction. The adjusted p-values are also checked for the false-discovery
share across all evaluations (each evaluation is one Benjamini-Hochberg family per model)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.drift import DriftEngine
from monitor.records import QualityBar
from tests.stats_fixtures import StreamSpec, make_batch

THRESHOLDS = {
    ("input", "psi"): 0.2,
    ("input", "p99_shift"): 0.5,
    ("output", "psi"): 0.2,
    ("output", "mean_confidence_delta"): 0.05,
    ("quality", "accuracy_gap"): 0.0,
    ("quality", "adwin_drift"): 0.5,
    ("quality", "bar_evidence"): 3.0,
    ("label_coverage", "coverage_delta"): 0.2,
    ("cohort", "psi"): 0.2,
}
SLICES = {"language": ["es", "ja"], "domain": ["regulatory", "medical"]}


@pytest.mark.slow
def test_stationary_million_events_no_alarm_and_flat_state():
    bar = QualityBar(0.88)
    eng = DriftEngine(
        bucket_seconds=60, window_buckets=10, allowed_lateness_s=120, min_samples=200, alpha=0.01,
        protected_slices=SLICES, auto_reference_events=20_000,
        short_windows=(2, 5),
        quality_bars={"*": {"all": bar, **{f"{k}={v}": bar for k, vs in SLICES.items() for v in vs}}},
    )
    spec = StreamSpec(n_numeric=14, n_categorical=4, n_boolean=2, lang_p=(0.85, 0.05, 0.05, 0.025, 0.025),
                      label_share=0.3)
    rng = np.random.default_rng(2024)
    batch, span = 5000, 30.0
    sizes = []
    crossings = []
    checked = 0
    tests = discoveries = 0
    for i in range(1_000_000 // batch):
        events, labels = make_batch(rng, spec, batch, i * span, (i + 1) * span)
        now = (i + 1) * span
        eng.observe(events, labels, now)
        sizes.append(eng.state_size)
        if (i + 1) % 10 == 0:
            snap = eng.evaluate(now)
            for v in snap.values:
                if not v.sufficient:
                    continue
                limit = THRESHOLDS.get((v.signal, v.statistic))
                if limit is not None:
                    checked += 1
                    significant = v.p_value_adjusted is None or v.p_value_adjusted < eng.alpha
                    if v.value > limit and significant:
                        crossings.append(v)
                if v.p_value_adjusted is not None:
                    tests += 1
                    discoveries += v.p_value_adjusted < eng.alpha
    assert checked > 3000
    assert crossings == [], crossings[:5]
    # chi-square has no default alert rule; its BH-adjusted p-values keep false discoveries rare
    assert tests > 500 and discoveries <= eng.alpha * tests, (discoveries, tests)
    full = 40 + 2 * 10  # reference built after 4 batches; window of 10 minutes = 20 batches
    assert len(set(sizes[full:])) == 1, "state size must be flat once the window is full"
    assert eng.late_events_total == 0
