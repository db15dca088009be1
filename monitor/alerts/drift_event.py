"""Drift events: v1 (``schemas/drift-event.v1.schema.json``) from an alert transition, v2
(``schemas/drift-event.v2.schema.json``) from an incident transition (:func:`build_incident_event`).

``event_id`` hashes (fingerprint, state, onset), so a transition re-built after a restart or
re-published after a broker outage carries the same id and consumers can deduplicate.

Examples
--------
>>> from monitor.alerts.state import AlertState
>>> a = AlertState("f" * 64, "SlicewatchSliceRegression", "m2", "domain=tax", "slice", "was_correct",
...     "accuracy_gap", "firing", "critical", 100.0, 130.0, 0.09, 0.05, 400, 0.0, 130.0,
...     action="rollback", actions=("rollback",), rollback_target="m1", fired_at=130.0)
>>> e = build_drift_event(a)
>>> e["action"], e["rollback_target"], e["state"], e["event_id"] == build_drift_event(a)["event_id"]
('rollback', 'm1', 'firing', True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from monitor.alerts.incidents import IncidentTransition
from monitor.alerts.state import AlertState

SCHEMA_VERSION = 1


def event_id(fingerprint: str, state: str, onset: float) -> str:
    return hashlib.sha256(f"{fingerprint}|{state}|{onset!r}".encode()).hexdigest()[:32]


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, as the schema's ``date-time`` wants."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_drift_event(alert: AlertState) -> dict[str, Any]:
    """The event for a firing or resolved alert (the state is the alert's own)."""
    if alert.state not in ("firing", "resolved"):
        raise ValueError(f"drift events are only built for firing or resolved alerts, not {alert.state}")
    return {
        "event_id": event_id(alert.fingerprint, alert.state, alert.active_since),
        "schema_version": SCHEMA_VERSION,
        "state": alert.state,
        "fired_at": iso(alert.fired_at if alert.fired_at is not None else alert.active_since),
        "resolved_at": iso(alert.resolved_at),
        "model_id": alert.model_id,
        "signal": alert.signal,
        "slice": alert.slice,
        "feature": alert.feature,
        "statistic": alert.statistic,
        "value": alert.value,
        "threshold": alert.threshold,
        "severity": alert.severity,
        "action": alert.action,
        "actions": list(alert.actions or (alert.action,)),
        "rollback_target": alert.rollback_target,
        "window": {
            "start": iso(alert.window_start),
            "end": iso(alert.window_end),
            "sample_count": alert.sample_count,
        },
        "reference": {"id": alert.reference_id, "hash": alert.reference_hash},
        "suspected_causes": [
            {"field": c.field, "from": c.from_value, "to": c.to_value, "first_seen": iso(c.first_seen)}
            for c in alert.suspected_causes
        ],
    }


INCIDENT_SCHEMA_VERSION = 2


def build_incident_event(t: IncidentTransition) -> dict[str, Any]:
    """The v2 event (``schemas/drift-event.v2.schema.json``) of one incident transition: the v1
    fields describe the primary member (so a v1 reader still finds model, signal, slice, action and
    target where it looked), plus ``incident_id``, ``kind``, ``onset`` and every member."""
    inc = t.incident
    primary = inc.primary
    members = sorted(inc.members, key=lambda m: m is not primary)
    event = build_drift_event(replace(
        primary.alert, state="resolved" if inc.state == "resolved" else "firing", severity=inc.severity,
        action=inc.action, actions=inc.actions, rollback_target=inc.rollback_target,
        suspected_causes=inc.suspected_causes, fired_at=inc.opened_at, resolved_at=inc.resolved_at,
        value=primary.value, threshold=primary.threshold,
    ))
    event.update({
        "event_id": t.event_id,
        "schema_version": INCIDENT_SCHEMA_VERSION,
        "incident_id": inc.incident_id,
        "kind": t.kind,
        "onset": iso(inc.onset),
        "members": [
            {"signal": m.signal, "slice": m.slice, "feature": m.feature, "statistic": m.statistic,
             "severity": m.severity, "state": m.state, "value": m.value, "threshold": m.threshold,
             "fired_at": iso(m.fired_at)}
            for m in members
        ],
    })
    return event


def incidents_of(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The incidents v2 drift events describe, each as of its latest event (with ``kind`` the last
    transition and ``events`` how many it had), in the order they opened. v1 events have no
    incident: each is its own, with one member (what a summary shows either way).

    >>> e = {"incident_id": "i1", "kind": "opened", "members": [{}], "fired_at": "t"}
    >>> [(i["incident_id"], i["kind"], i["events"]) for i in incidents_of([e, {**e, "kind": "resolved"}])]
    [('i1', 'resolved', 2)]
    """
    latest: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for e in events:
        key = str(e.get("incident_id") or e.get("event_id"))
        counts[key] = counts.get(key, 0) + 1
        members = e.get("members") or [e]
        latest[key] = {**e, "members": members, "kind": e.get("kind") or e.get("state"), "events": counts[key]}
    return list(latest.values())
