"""The scrape-time collector on a fresh registry, the HTTP server, and `promtool check metrics`."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

from prometheus_client import CollectorRegistry

from monitor.metrics.collector import MonitorCollector
from monitor.metrics.server import MetricsServer
from monitor.snapshot import SignalValue, Snapshot
from tests.metrics_fixtures import NOW, full_registry, sample_alert, sample_snapshot


def fresh(max_models: int = 10) -> tuple[CollectorRegistry, MonitorCollector]:
    registry = CollectorRegistry()
    collector = MonitorCollector(max_models=max_models)
    registry.register(collector)
    return registry, collector


def test_values_come_from_the_latest_snapshot() -> None:
    registry, collector = fresh()
    snap = sample_snapshot()
    collector.update(snap, [sample_alert("firing")])
    get = registry.get_sample_value
    for v in snap.values:
        if v.signal == "quality":
            labels = {"model_id": v.model_id, "slice": v.slice, "statistic": v.statistic, "window": "main"}
            assert get("slicewatch_quality", labels) == v.value
        else:
            labels = {
                "model_id": v.model_id,
                "slice": v.slice,
                "signal": v.signal,
                "feature": v.feature,
                "statistic": v.statistic,
                "window": "main",
            }
            assert get("slicewatch_drift_statistic", labels) == v.value
            assert get("slicewatch_drift_p_value", labels) == v.p_value
            assert get("slicewatch_drift_p_value_adjusted", labels) == v.p_value_adjusted
    assert get("slicewatch_quality_bar",
               {"model_id": "m1", "slice": "domain=tax", "statistic": "accuracy", "window": "main"}) == 0.88
    # window samples: the largest count over the signal's features
    assert get("slicewatch_window_samples", {"model_id": "m1", "slice": "all", "signal": "input"}) == 900
    assert get("slicewatch_label_coverage_ratio", {"model_id": "m1", "slice": "all", "source": "all"}) == 0.6
    assert get("slicewatch_label_coverage_ratio", {"model_id": "m1", "slice": "all", "source": "judge"}) == 0.4
    assert get("slicewatch_late_events_total") == 7
    assert get("slicewatch_last_evaluation_timestamp_seconds") == NOW
    assert get("slicewatch_window_seconds") == 3600
    alert_labels = {
        "alertname": "SlicewatchSliceRegression",
        "model_id": "m1",
        "slice": "domain=tax",
        "signal": "slice",
        "feature": "was_correct",
        "statistic": "accuracy_gap",
        "severity": "critical",
        "action": "rollback",
    }
    assert get("slicewatch_alert_state", alert_labels) == 1.0
    collector.update(snap, [sample_alert("pending")])
    assert get("slicewatch_alert_state", alert_labels) == 0.5
    collector.update(snap, [sample_alert("resolved")])
    assert get("slicewatch_alert_state", alert_labels) == 0.0
    collector.update(snap, [])
    assert get("slicewatch_alert_state", alert_labels) is None


def test_model_cap_keeps_the_most_active_and_alerting_models() -> None:
    registry, collector = fresh(max_models=2)

    def snap(samples: dict[str, int]) -> Snapshot:
        values = tuple(SignalValue(m, "all", "input", "x", "psi", 0.1, n) for m, n in samples.items())
        return Snapshot(0, 0, 0, values)

    def exported() -> set[str]:
        return {
            s.labels["model_id"]
            for f in registry.collect() if f.name == "slicewatch_drift_statistic" for s in f.samples
        }

    # 5,000 junk ids with one event each, first in line; then a real model with 300 events
    junk = {f"junk-{i:04d}": 1 for i in range(5000)}
    collector.update(snap(junk), [])
    assert len(exported()) == 2 and registry.get_sample_value("slicewatch_models_overflow") == 4998
    collector.update(snap({**junk, "real": 300}), [])
    assert "real" in exported() and len(exported()) == 2
    # the junk goes idle, two real models are active: both exported, nothing left out
    collector.update(snap({"real": 300, "real-2": 50}), [])
    assert exported() == {"real", "real-2"} and registry.get_sample_value("slicewatch_models_overflow") == 0
    # a model with a firing alert is exported even when less active than the others
    collector.update(snap({"real": 300, "real-2": 50, "quiet": 1}), [sample_alert("firing", model_id="quiet")])
    assert exported() == {"real", "quiet"} and collector.exported_models == {"real", "quiet"}
    assert registry.get_sample_value("slicewatch_models_overflow") == 1


def test_every_family_has_help_text() -> None:
    registry, _, _ = full_registry()
    for family in registry.collect():
        assert family.documentation.strip(), family.name
        # ours are slicewatch_*; client_python's default collectors keep their conventional names
        assert family.name.startswith(("slicewatch_", "process_", "python_")), family.name


def test_scrape_passes_promtool_check_metrics() -> None:
    registry, _, consumer = full_registry()
    consumer.consumed.labels("inference-events").inc(10)
    consumer.dead_lettered.labels("inference-events", "decode").inc()
    consumer.lag.labels("inference-events", "0").set(12)
    consumer.batch_duration.observe(0.02)
    server = MetricsServer(registry, host="127.0.0.1", port=0).start()
    try:
        with urllib.request.urlopen(server.url, timeout=5) as response:
            body = response.read()
    finally:
        server.close()
    text = body.decode()
    assert "slicewatch_drift_statistic{" in text and "slicewatch_events_consumed_total{" in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/system-deps.sh"
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_short_windows_are_labelled_by_their_length_beside_the_main_one() -> None:
    """The same statistic over the main window and a 5-minute one: two series, told apart by
    ``window``; a value without a window length is the main window's."""
    registry, collector = fresh()
    main = SignalValue("m1", "all", "input", "x", "psi", 0.05, 900, window_s=3600.0)
    short = SignalValue("m1", "all", "input", "x", "psi", 0.4, 300, window_s=300.0, p_value=1e-9)
    collector.update(Snapshot(NOW, NOW - 3600, NOW, (main, short)), [])
    get = registry.get_sample_value
    labels = {"model_id": "m1", "slice": "all", "signal": "input", "feature": "x", "statistic": "psi"}
    assert get("slicewatch_drift_statistic", {**labels, "window": "main"}) == 0.05
    assert get("slicewatch_drift_statistic", {**labels, "window": "5m"}) == 0.4
    assert get("slicewatch_drift_p_value", {**labels, "window": "5m"}) == 1e-9
    assert get("slicewatch_drift_p_value", {**labels, "window": "main"}) is None


def test_no_two_samples_share_a_label_set_with_failure_clusters_incidents_and_cusums() -> None:
    """Per-feature quality values (two failure clusters of one slice) must not collide in the
    quality family (it has no feature label); every exported sample has a distinct label set."""
    from monitor.alerts.incidents import IncidentTracker
    from monitor.alerts.state import AlertState, Transition

    registry, collector = fresh()
    values = (
        SignalValue("m1", "all", "quality", "failure_cluster:timeout", "failure_cluster_share", 0.4, 60,
                    p_value=1e-6, window_s=900.0),
        SignalValue("m1", "all", "quality", "failure_cluster:refusal", "failure_cluster_share", -0.1, 60,
                    p_value=0.9, window_s=900.0),
        SignalValue("m1", "all", "quality", "was_correct", "accuracy", 0.9, 600, window_s=3600.0),
        SignalValue("m1", "all", "input", "x", "rank_cusum", 7.5, 4000, window_s=1234.0),
        SignalValue("m1", "all", "input", "y", "rank_cusum", -1.0, 4000, window_s=60.0),
    )
    a = AlertState("fp", "A", "m1", "all", "input", "x", "rank_cusum", "firing", "critical", NOW, NOW, 7.5, 7.0,
                   4000, NOW - 1234, NOW, action="retrain", actions=("retrain",), fired_at=NOW)
    (t,) = IncidentTracker().update([Transition("fp", "pending", "firing", NOW, a)], NOW)
    collector.update(Snapshot(NOW, NOW - 3600, NOW, values), [a], incidents=[t.incident], push_up=False)
    seen: set[tuple] = set()
    for family in registry.collect():
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in seen, key
            seen.add(key)
    get = registry.get_sample_value
    cluster = {"model_id": "m1", "slice": "all", "signal": "quality", "statistic": "failure_cluster_share",
               "window": "15m"}
    assert get("slicewatch_drift_statistic", {**cluster, "feature": "failure_cluster:timeout"}) == 0.4
    assert get("slicewatch_drift_statistic", {**cluster, "feature": "failure_cluster:refusal"}) == -0.1
    cusum = {"model_id": "m1", "slice": "all", "signal": "input", "statistic": "rank_cusum", "window": "since_restart"}
    assert get("slicewatch_drift_statistic", {**cusum, "feature": "x"}) == 7.5
    assert get("slicewatch_incident_state", {"model_id": "m1", "incident_id": t.incident.incident_id,
                                             "action": "retrain", "routing": "ticket"}) == 1.0
    assert get("slicewatch_alertmanager_push_up", {}) == 0.0


def test_last_promotion_per_exported_model_only() -> None:
    """``slicewatch_model_promoted_timestamp_seconds{model_id}`` for dashboard annotations, bounded
    like every per-model series: a model left out by ``max_models`` has none."""
    registry = CollectorRegistry()
    c = MonitorCollector(max_models=1)
    registry.register(c)
    values = (SignalValue("busy", "all", "input", "x", "psi", 0.1, 900),
              SignalValue("idle", "all", "input", "x", "psi", 0.1, 5))
    c.update(Snapshot(100.0, 40.0, 100.0, values), (), promoted={"busy": 50.0, "idle": 60.0})
    name = "slicewatch_model_promoted_timestamp_seconds"
    assert registry.get_sample_value(name, {"model_id": "busy"}) == 50.0
    assert registry.get_sample_value(name, {"model_id": "idle"}) is None
