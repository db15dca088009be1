"""The demo's live terminal view (rich): models, protected slices, signals against thresholds,
alerts with their actions, and the latest drift events. Rendering only: it reads a snapshot, the
alert states and the drift events it is given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from monitor.alerts.drift_event import incidents_of
from monitor.alerts.state import AlertState
from monitor.snapshot import SignalValue, Snapshot

# (signal, statistic) shown per model and slice, with the rule name that gives its threshold.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("quality", "accuracy", "accuracy"),
    ("quality", "accuracy_gap", "quality.accuracy_gap"),
    ("input", "psi", "input.psi"),
    ("input", "p99_shift", "input.p99_shift"),
    ("output", "psi", "output.psi"),
    ("label_coverage", "coverage", "coverage"),
)


def _worst(values: Sequence[SignalValue]) -> SignalValue | None:
    return max(values, key=lambda v: v.value) if values else None


def _cell(v: SignalValue | None, threshold: float | None) -> Text:
    if v is None:
        return Text("-", style="dim")
    label = f"{v.value:.3f}"
    if v.signal == "input":
        label += f" ({v.feature})"
    if not v.sufficient:
        return Text(label + " n<min", style="dim")
    if threshold is not None and v.value >= threshold:
        return Text(label, style="bold red")
    return Text(label, style="green" if threshold is not None else "")


def _widest(snapshot: Snapshot | None) -> int:
    """The longest model id of the snapshot: model columns are never narrower."""
    return max((len(m) for m in (snapshot.models if snapshot is not None else ())), default=5)


def render(
    snapshot: Snapshot | None,
    alerts: Mapping[str, AlertState],
    drift_events: Sequence[dict[str, Any]],
    thresholds: Mapping[str, float],
    header: str,
) -> Group:
    """One frame of the live view."""
    signals = Table(title="signals (current window; red = over the warning threshold)", expand=True)
    signals.add_column("model", no_wrap=True, min_width=_widest(snapshot))  # v41 and v42 stay apart
    signals.add_column("slice", overflow="fold")
    signals.add_column("n", justify="right")
    for signal, stat, _ in COLUMNS:
        signals.add_column(f"{signal.replace('label_coverage', 'label')} {stat}", justify="right")
    if snapshot is not None:
        index: dict[tuple[str, str], list[SignalValue]] = {}
        for v in snapshot.values:
            index.setdefault((v.model_id, v.slice), []).append(v)
        for (model_id, slice_), values in sorted(index.items()):
            n = max((v.sample_count for v in values if v.signal == "input"), default=0)
            cells = []
            for signal, stat, rule in COLUMNS:
                matching = [
                    v for v in values
                    if v.signal == signal and v.statistic == stat
                    and (signal != "label_coverage" or v.feature == "labels")
                    and (signal != "quality" or v.feature == "was_correct")
                ]
                cells.append(_cell(_worst(matching), thresholds.get(rule)))
            signals.add_row(model_id, slice_, str(n), *cells)
    active = Table(title="alerts", expand=True)
    for col in ("state", "severity", "model", "slice", "signal", "feature/statistic", "value", "action",
                "rollback target"):
        key = col in ("model", "rollback target")
        active.add_column(col, no_wrap=key, overflow="fold", min_width=_widest(snapshot) if key else None)
    for a in sorted(alerts.values(), key=lambda a: (a.state != "firing", a.model_id, a.slice)):
        style = {"firing": "bold red", "pending": "yellow", "resolved": "green"}.get(a.state, "")
        active.add_row(
            Text(a.state, style=style), a.severity, a.model_id, a.slice, a.signal,
            f"{a.feature}/{a.statistic}", f"{a.value:.3f}", ",".join(a.actions) or a.action,
            a.rollback_target or "",
        )
    log = Table(title="incidents (latest)", expand=True)
    for col in ("state", "model", "signal", "slice", "statistic", "action", "rollback target", "members",
                "suspected causes"):
        key = col in ("model", "rollback target")
        log.add_column(col, no_wrap=key, overflow="fold", min_width=_widest(snapshot) if key else None)
    for e in incidents_of(drift_events)[-8:]:
        causes = ", ".join(f"{c['field']}: {c['from']}->{c['to']}" for c in e.get("suspected_causes", []))
        log.add_row(e["state"], e["model_id"], e["signal"], e["slice"], f"{e['feature']}/{e['statistic']}",
                    ",".join(e.get("actions") or [e["action"]]), e.get("rollback_target") or "",
                    str(len(e["members"])), causes)
    return Group(Panel(Text(header)), signals, active, log)
