"""A registry holding every metric the monitor exports, filled from a sample snapshot and alerts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.alerts.state import AlertState
from monitor.ingest.metrics import ConsumerMetrics
from monitor.metrics.collector import MonitorCollector
from monitor.snapshot import LineageChange, SignalValue, Snapshot

NOW = 1_763_800_000.0


def sample_snapshot(now: float = NOW) -> Snapshot:
    v = SignalValue
    values = (
        v("m1", "all", "input", "age", "psi", 0.31, 900, p_value=0.001, p_value_adjusted=0.004, reference_id="r1"),
        v("m1", "all", "input", "age", "ks", 0.12, 900, p_value=0.02, p_value_adjusted=0.05),
        v("m1", "domain=tax", "input", "age", "psi", 0.05, 300),
        v("m1", "all", "output", "confidence", "mean_confidence_delta", -0.02, 900),
        v("m1", "all", "quality", "was_correct", "accuracy", 0.91, 700, baseline=0.9),
        v("m1", "all", "quality", "was_correct", "accuracy_wilson_lower", 0.89, 700),
        v("m1", "domain=tax", "quality", "was_correct", "accuracy", 0.78, 250, baseline=0.88),
        v("m1", "domain=tax", "quality", "was_correct", "accuracy_gap", 0.06, 250),
        v("m1", "all", "label_coverage", "labels", "coverage", 0.6, 900),
        v("m1", "all", "label_coverage", "labels:judge", "coverage", 0.4, 900),
        v("m1", "all", "cohort", "age", "js", 0.01, 900),
        v("m2", "all", "input", "age", "psi", 0.01, 50, sufficient=False),
    )
    return Snapshot(
        now,
        now - 3600,
        now,
        values,
        (LineageChange("m1", "dataset_version", "v1", "v2", now - 60),),
        late_events_total=7,
        models=("m1", "m2"),
    )


def sample_alert(state: str = "firing", now: float = NOW, model_id: str = "m1") -> AlertState:
    return AlertState(
        fingerprint="f" * 64,
        alertname="SlicewatchSliceRegression",
        model_id=model_id,
        slice="domain=tax",
        signal="slice",
        feature="was_correct",
        statistic="accuracy_gap",
        state=state,  # type: ignore[arg-type]
        severity="critical",
        active_since=now - 60,
        last_evaluated_at=now,
        value=0.06,
        threshold=0.05,
        sample_count=250,
        window_start=now - 3600,
        window_end=now,
        action="rollback",
        actions=("rollback",),
        rollback_target="m0",
        fired_at=now - 30,
    )


def full_registry() -> tuple[CollectorRegistry, MonitorCollector, ConsumerMetrics]:
    """ConsumerMetrics (helper A's) + our collector, filled so every family has samples."""
    from monitor.app import metrics_registry
    from monitor.config import Settings

    registry = metrics_registry(Settings())  # build info, thresholds, process metrics: as `run` serves
    consumer = ConsumerMetrics(registry)
    collector = MonitorCollector(max_models=10)
    registry.register(collector)
    collector.update(sample_snapshot(), [sample_alert()], promoted={"intent-clf@v42": 1_700_000_000.0})
    return registry, collector, consumer


def exported_metric_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name and family name the registry exposes (with and without suffixes)."""
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        for s in family.samples:
            names.add(s.name)
    return names
