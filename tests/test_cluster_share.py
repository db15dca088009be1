"""Failure-cluster shares (issue 10, item 6).

* ``ClusterShares`` equals an independent count of the failures in the recent buckets and before
  them, and its p-value equals scipy's one-sided Fisher exact test on the same 2 x 2 table (hypothesis);
* the vocabulary stays bounded whatever the names;
* in the engine, one cluster's spike among a model's failures fires ``quality.failure_cluster_share``
  within minutes while the accuracy has not moved, and a stationary mix of clusters stays quiet.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact

from monitor.alerts.rules import DEFAULT_RULES
from monitor.alerts.state import AlertEvaluator
from monitor.drift import DriftEngine
from monitor.stats.cluster_share import OTHER, ClusterShares
from tests.stats_fixtures import StreamSpec, make_batch

NAMES = ["refusal", "timeout", "hallucination", "format", "policy"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(NAMES), st.floats(0, 1799.0)), min_size=1, max_size=150),
    st.integers(1, 6),
    st.floats(0, 1800.0),
)
def test_counts_and_p_values_equal_an_independent_count_and_scipy(failures, ring, now):
    c = ClusterShares(recent_buckets=ring, bucket_seconds=60.0, max_clusters=3)
    failures = [(n, t) for n, t in failures if t <= now]  # labels are not from the future
    c.update([n for n, _ in failures], [t for _, t in failures])
    cur = math.floor(now / 60.0)
    known: list[str] = []
    for n, _ in failures:
        if n not in known and len(known) < 3:
            known.append(n)

    def name_of(n: str) -> str:
        return n if n in known else OTHER

    recent = [name_of(n) for n, t in failures if math.floor(t / 60.0) > cur - ring]
    history = [name_of(n) for n, t in failures if math.floor(t / 60.0) <= cur - ring]
    got = {r.name: r for r in c.shares(now)}
    if not recent or not history:
        assert got == {}
        return
    assert set(got) == set(recent)
    for name, r in got.items():
        k, h = recent.count(name), history.count(name)
        assert (r.recent, r.recent_total, r.history, r.history_total) == (k, len(recent), h, len(history))
        assert math.isclose(r.delta, k / len(recent) - h / len(history), abs_tol=1e-12)
        _, want = fisher_exact([[k, len(recent) - k], [h, len(history) - h]], alternative="greater")
        assert math.isclose(r.p_value, want, rel_tol=1e-9, abs_tol=1e-15)


def test_the_vocabulary_is_bounded_whatever_the_names():
    c = ClusterShares(recent_buckets=5, max_clusters=20)
    c.update([f"cluster-{i}" * 20 for i in range(5_000)], [float(i % 600) for i in range(5_000)])
    names = {r.name for r in c.shares(600.0)}
    assert len(names) <= 21 and OTHER in names
    assert max(len(n) for n in names) <= 64
    assert c.recent.size + c.history.size == 6 * 21


def _engine() -> DriftEngine:
    return DriftEngine(bucket_seconds=60, window_buckets=60, allowed_lateness_s=600, min_samples=200,
                       auto_reference_events=4000, short_windows=(5, 15))


def _fired(spec: StreamSpec, minutes: int, per_minute: int = 400):
    eng, ev = _engine(), AlertEvaluator(dict(DEFAULT_RULES))
    rng = np.random.default_rng(11)
    out = []
    for q in range(minutes * 4):
        start, end = 15.0 * q, 15.0 * (q + 1)
        events, labels = make_batch(rng, spec, per_minute // 4, start, end)
        eng.observe(events, labels, end)
        snap = eng.evaluate(end)
        out += [(end, t.alert, snap) for t in ev.evaluate(snap, {}, end) if t.to_state == "firing"]
    return out


def test_a_spike_of_one_cluster_fires_within_minutes_while_accuracy_holds():
    onset = 120 * 60.0
    spec = StreamSpec(n_numeric=1, onset=onset, failure_clusters=tuple(NAMES), cluster_spike=("timeout", 0.5))
    fired = _fired(spec, 150)
    assert not [a for t, a, _ in fired if t < onset], "an alert before the onset"
    spikes = [(t, a, snap) for t, a, snap in fired if a.statistic == "failure_cluster_share"]
    assert spikes, "the spike was never found"
    t, alert, _ = spikes[0]
    assert alert.feature == "failure_cluster:timeout" and alert.slice == "all"
    assert t - onset <= 10 * 60, f"found {(t - onset) / 60:.1f} min after the onset"
    # the accuracy itself never moved: no accuracy alert at all
    assert not [a for _, a, _ in fired if a.statistic in ("accuracy_gap", "bar_evidence", "adwin_drift")]


def test_a_stationary_mix_of_clusters_stays_quiet():
    spec = StreamSpec(n_numeric=1, failure_clusters=tuple(NAMES))
    assert [a for _, a, _ in _fired(spec, 300) if a.statistic == "failure_cluster_share"] == []
