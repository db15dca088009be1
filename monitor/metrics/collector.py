"""The scrape-time collector: metric families built from the latest snapshot and alert states.

``update(snapshot, alerts)`` is called by the composition root after each evaluation and swaps
in an immutable view; ``collect()`` reads only that view (never the database), so a scrape costs
no I/O. Label values stay bounded: slices come from the declared list, features from the
profile, and at most ``max_models`` model ids are exported per evaluation: models with a pending or
firing alert first, then the most active (window samples), ties by name. An idle model loses its
series to an active one at the next evaluation; the number left out is the gauge
``slicewatch_models_overflow``. Nothing is remembered per left-out id, so junk ids cost no memory.

``slicewatch_alert_state`` is 1 for a firing alert, 0.5 pending, 0 resolved (kept while the
resolution is re-sent); alerts not in any of these states have no series.

The statistics carry a ``window`` label: ``"main"`` for the configured window (``window_buckets``),
``"5m"``, ``"15m"`` for the shorter ones (``short_window_buckets``, tested statistics only), and
``"since_first"`` for the sequential quality evidence (counted since the model's first prediction),
``"since_restart"`` for the rank CUSUM of slow drift (counted since its detector last restarted):
a fixed, configured set, so the label multiplies the series by at most 3 + the number of short
windows. ``slicewatch_label_delay_seconds{model_id,source,quantile}``: the label delay quantiles
(0.5, 0.9, 0.99) of the model's first labels per label source (a fixed set of five).

Examples
--------
>>> from prometheus_client import CollectorRegistry
>>> from monitor.snapshot import Snapshot, SignalValue
>>> registry = CollectorRegistry()
>>> c = MonitorCollector(max_models=10); registry.register(c)
>>> c.update(Snapshot(100.0, 40.0, 100.0, (SignalValue("m", "all", "input", "x", "psi", 0.25, 300),)), ())
>>> registry.get_sample_value("slicewatch_drift_statistic",
...     {"model_id": "m", "slice": "all", "signal": "input", "feature": "x", "statistic": "psi", "window": "main"})
0.25
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor.alerts.incidents import Incident, routing
from monitor.alerts.rules import Rule
from monitor.alerts.state import CUMULATIVE_STATISTICS, AlertState
from monitor.snapshot import SignalValue, Snapshot

STATE_VALUE = {"firing": 1.0, "pending": 0.5, "resolved": 0.0}
RESTARTING_STATISTICS = frozenset({"rank_cusum"})
"""Statistics over the events since their detector last restarted (a length that changes every bucket)."""
DRIFT_LABELS = ["model_id", "slice", "signal", "feature", "statistic", "window"]
QUALITY_LABELS = ["model_id", "slice", "statistic", "window"]
DELAY_QUANTILE = {"delay_p50": "0.5", "delay_p90": "0.9", "delay_p99": "0.99"}
QUALITY_FEATURES = frozenset({"was_correct", "score"})
INCIDENT_LABELS = ["model_id", "incident_id", "action", "routing"]
ALERT_LABELS = ["alertname", "model_id", "slice", "signal", "feature", "statistic", "severity", "action"]


@dataclass(frozen=True, slots=True)
class _View:
    evaluated_at: float | None = None
    values: Sequence[SignalValue] = ()
    alerts: tuple[AlertState, ...] = ()
    late_events_total: int = 0
    overflow: int = 0
    unreferenced_events_total: int = 0
    window_seconds: float | None = None
    incidents: tuple[Incident, ...] = ()
    push_up: bool | None = None
    promoted: tuple[tuple[str, float], ...] = ()


def window_label(window_s: float | None, main_s: float | None) -> str:
    """``"main"`` for the configured window (dashboards select it), else its length: ``"5m"``.

    >>> window_label(3600.0, 3600.0), window_label(300.0, 3600.0), window_label(90.0, 3600.0)
    ('main', '5m', '90s')
    """
    if window_s is None or window_s == main_s:
        return "main"
    return f"{int(window_s // 60)}m" if window_s % 60 == 0 else f"{int(window_s)}s"


def _families() -> dict[str, Metric]:
    return {
        "drift": GaugeMetricFamily(
            "slicewatch_drift_statistic",
            "Drift statistic of the current window against the reference profile (PSI, JS, KS, ...).",
            labels=DRIFT_LABELS,
        ),
        "p": GaugeMetricFamily(
            "slicewatch_drift_p_value",
            "Raw p-value of a drift statistic that has one.",
            labels=DRIFT_LABELS,
        ),
        "p_adj": GaugeMetricFamily(
            "slicewatch_drift_p_value_adjusted",
            "p-value after the multiple-testing correction across features and slices.",
            labels=DRIFT_LABELS,
        ),
        "quality": GaugeMetricFamily(
            "slicewatch_quality",
            "Quality in the current window (accuracy, Wilson bounds, gaps to the release bar, score).",
            labels=QUALITY_LABELS,
        ),
        "bar": GaugeMetricFamily(
            "slicewatch_quality_bar",
            "Release-gate bar the quality statistic is compared with.",
            labels=QUALITY_LABELS,
        ),
        "samples": GaugeMetricFamily(
            "slicewatch_window_samples",
            "Events in the current window behind a signal (largest count over its features).",
            labels=["model_id", "slice", "signal"],
        ),
        "delay": GaugeMetricFamily(
            "slicewatch_label_delay_seconds",
            "Label delay (observed_at - served_at) quantiles of the model's first labels, per label source.",
            labels=["model_id", "source", "quantile"],
        ),
        "coverage": GaugeMetricFamily(
            "slicewatch_label_coverage_ratio",
            "Share of predictions in the window that have a label, per label source.",
            labels=["model_id", "slice", "source"],
        ),
        "alert": GaugeMetricFamily(
            "slicewatch_alert_state",
            "Alert state: 1 firing, 0.5 pending, 0 resolved (while the resolution is re-sent).",
            labels=ALERT_LABELS,
        ),
        "incident": GaugeMetricFamily(
            "slicewatch_incident_state",
            "Incident state: 1 open, 0 resolved (while the resolution is re-sent). routing=page for a rollback "
            "or a protected-slice regression, else ticket. Labels stay fixed for the incident's life.",
            labels=INCIDENT_LABELS,
        ),
        "push_up": GaugeMetricFamily(
            "slicewatch_alertmanager_push_up",
            "1 when the last direct push of incidents to Alertmanager succeeded, 0 when it failed "
            "(absent: no push configured or none yet). Prometheus' incident rules page while it is not 1.",
        ),
        "late": CounterMetricFamily(
            "slicewatch_late_events",
            "Events that arrived later than the allowed lateness and were not counted in a window.",
        ),
        "unreferenced": CounterMetricFamily(
            "slicewatch_unreferenced_events",
            "Events of models without a reference profile dropped because stats.max_buffered_models was reached.",
        ),
        "overflow": GaugeMetricFamily(
            "slicewatch_models_overflow",
            "Model ids left out of the metrics at the last evaluation because max_models was reached.",
        ),
        "last_eval": GaugeMetricFamily(
            "slicewatch_last_evaluation_timestamp_seconds",
            "Unix time of the last completed evaluation.",
        ),
        "window": GaugeMetricFamily(
            "slicewatch_window_seconds",
            "Length of the evaluation window.",
        ),
        "promoted": GaugeMetricFamily(
            "slicewatch_model_promoted_timestamp_seconds",
            "Unix time of the model version's last promotion (for dashboard annotations).",
            labels=["model_id"],
        ),
    }


class MonitorCollector(Collector):
    """Custom collector; register it in the (injected) registry once, then ``update`` per evaluation."""

    def __init__(self, max_models: int = 200) -> None:
        if max_models < 1:
            raise ValueError("max_models must be >= 1")
        self.max_models = max_models
        self._exported: frozenset[str] = frozenset()
        self._view = _View()

    @property
    def exported_models(self) -> frozenset[str]:
        return self._exported

    def _choose(self, snapshot: Snapshot, states: Sequence[AlertState]) -> frozenset[str]:
        """The ``max_models`` model ids to export (more than that are known): alerting first, then
        by window samples, then name."""
        activity: dict[str, int] = dict.fromkeys(snapshot.models, 0)
        for v in snapshot.values:
            activity[v.model_id] = max(activity.get(v.model_id, 0), v.sample_count)
        alerting = {a.model_id for a in states if a.state in ("pending", "firing")}
        for a in states:
            activity.setdefault(a.model_id, 0)
        if len(activity) <= self.max_models:
            return frozenset(activity)
        ranked = sorted(activity, key=lambda m: (m not in alerting, -activity[m], m))
        return frozenset(ranked[: self.max_models])

    def update(self, snapshot: Snapshot, alerts: Iterable[AlertState] | Mapping[str, AlertState], *,
               incidents: Iterable[Incident] = (), push_up: bool | None = None,
               promoted: Mapping[str, float] | None = None) -> None:
        """Swap in the view of ``snapshot``, the evaluator's alert states and the incidents (open and
        recently resolved) after an evaluation; ``push_up``: the last Alertmanager push's outcome;
        ``promoted``: each model's last promotion time (exported for the exported models only)."""
        states = tuple(alerts.values() if isinstance(alerts, Mapping) else alerts)
        seen = {*snapshot.models, *snapshot.value_models(), *(a.model_id for a in states)}
        # the usual case, every model fits: no ranking, and the values are kept as they are
        keep = frozenset(seen) if len(seen) <= self.max_models else self._choose(snapshot, states)
        self._exported = keep
        self._view = _View(
            evaluated_at=snapshot.evaluated_at,
            values=snapshot.values if len(keep) == len(seen) else tuple(
                v for v in snapshot.values if v.model_id in keep),
            alerts=tuple(a for a in states if a.model_id in keep and a.state in STATE_VALUE),
            late_events_total=snapshot.late_events_total,
            overflow=len(seen - keep),
            unreferenced_events_total=snapshot.unreferenced_events_total,
            window_seconds=snapshot.window_end - snapshot.window_start,
            incidents=tuple(i for i in incidents if i.model_id in keep),
            push_up=push_up,
            promoted=tuple(sorted((m, t) for m, t in (promoted or {}).items() if m in keep)),
        )

    def describe(self) -> Iterator[Metric]:
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        view = self._view
        f = _families()
        samples: dict[tuple[str, str, str], int] = {}
        for v in view.values:
            if v.statistic in DELAY_QUANTILE:
                source = v.feature.split(":", 1)[1] if ":" in v.feature else "all"
                f["delay"].add_metric([v.model_id, source, DELAY_QUANTILE[v.statistic]], v.value)  # type: ignore[attr-defined]
                continue
            # cumulative statistics (since the model's first prediction) have a label of their own:
            # their length changes at every evaluation and must not become a label value
            cumulative = v.statistic in CUMULATIVE_STATISTICS
            window = (
                "since_first" if cumulative
                else "since_restart" if v.statistic in RESTARTING_STATISTICS
                else window_label(v.window_s, view.window_seconds)
            )
            if window == "main":
                key = (v.model_id, v.slice, v.signal)
                samples[key] = max(samples.get(key, 0), v.sample_count)
            labels = [v.model_id, v.slice, v.signal, v.feature, v.statistic, window]
            # quality statistics of the correctness and score streams have their own family (no
            # feature label); per-feature quality values (failure clusters) go with the drift ones
            if v.signal == "quality" and v.feature in QUALITY_FEATURES:
                quality = [v.model_id, v.slice, v.statistic, window]
                f["quality"].add_metric(quality, v.value)  # type: ignore[attr-defined]
                if v.baseline is not None:
                    f["bar"].add_metric(quality, v.baseline)  # type: ignore[attr-defined]
            else:
                f["drift"].add_metric(labels, v.value)  # type: ignore[attr-defined]
                if v.p_value is not None:
                    f["p"].add_metric(labels, v.p_value)  # type: ignore[attr-defined]
                if v.p_value_adjusted is not None:
                    f["p_adj"].add_metric(labels, v.p_value_adjusted)  # type: ignore[attr-defined]
            if v.signal == "label_coverage" and v.statistic == "coverage":
                source = v.feature.split(":", 1)[1] if ":" in v.feature else "all"
                f["coverage"].add_metric([v.model_id, v.slice, source], v.value)  # type: ignore[attr-defined]
        for (model_id, sl, signal), n in sorted(samples.items()):
            f["samples"].add_metric([model_id, sl, signal], n)  # type: ignore[attr-defined]
        for a in view.alerts:
            f["alert"].add_metric(  # type: ignore[attr-defined]
                [a.alertname, a.model_id, a.slice, a.signal, a.feature, a.statistic, a.severity, a.action],
                STATE_VALUE[a.state],
            )
        for inc in view.incidents:
            f["incident"].add_metric(  # type: ignore[attr-defined]
                [inc.model_id, inc.incident_id, inc.action, routing(inc)],
                1.0 if inc.state == "open" else 0.0,
            )
        if view.push_up is not None:
            f["push_up"].add_metric([], 1.0 if view.push_up else 0.0)  # type: ignore[attr-defined]
        f["late"].add_metric([], view.late_events_total)  # type: ignore[attr-defined]
        f["overflow"].add_metric([], view.overflow)  # type: ignore[attr-defined]
        f["unreferenced"].add_metric([], view.unreferenced_events_total)  # type: ignore[attr-defined]
        if view.evaluated_at is not None:
            f["last_eval"].add_metric([], view.evaluated_at)  # type: ignore[attr-defined]
        if view.window_seconds is not None:
            f["window"].add_metric([], view.window_seconds)  # type: ignore[attr-defined]
        for model_id, at in view.promoted:
            f["promoted"].add_metric([model_id], at)  # type: ignore[attr-defined]
        yield from f.values()


class RuleThresholds(Collector):
    """``slicewatch_alert_threshold{rule,severity}``: every alert rule's warning, critical and clear
    thresholds, so dashboards draw the lines the alerts use (static: the rules are fixed at start).

    >>> from prometheus_client import CollectorRegistry
    >>> from monitor.alerts.rules import DEFAULT_RULES
    >>> r = CollectorRegistry(); r.register(RuleThresholds(DEFAULT_RULES))
    >>> r.get_sample_value("slicewatch_alert_threshold", {"rule": "input.psi", "severity": "critical"})
    0.3
    """

    def __init__(self, rules: Mapping[str, Rule]) -> None:
        self.rules = dict(rules)

    def collect(self) -> Iterator[Metric]:
        g = GaugeMetricFamily("slicewatch_alert_threshold",
                              "Threshold of an alert rule: warning and critical fire, clear resolves (hysteresis).",
                              labels=["rule", "severity"])
        for name, rule in sorted(self.rules.items()):
            g.add_metric([name, "warning"], rule.warning)
            g.add_metric([name, "critical"], rule.critical)
            g.add_metric([name, "clear"], rule.clear_threshold)
        yield g
