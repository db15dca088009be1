"""The ``drift_incident`` table: open and recently resolved incidents, restored on start and on
a takeover (PostgreSQL and SQLite). One row per incident; the incident (with its member alerts as
they were last seen) is a JSON document, written after every evaluation that changed it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, fields, replace
from typing import Any

from sqlalchemy import Column, DateTime, Engine, Index, String, Table, and_, or_, select

from monitor.alerts.incidents import Incident, Member
from monitor.alerts.state import AlertState
from monitor.snapshot import LineageChange
from monitor.store.alerts import _dt, upsert
from monitor.store.base import JSONType, metadata
from monitor.store.failures import STORE_FAILURES, store_error

TZ = DateTime(timezone=True)

drift_incident = Table(
    "drift_incident",
    metadata,
    Column("incident_id", String(64), primary_key=True),
    Column("model_id", String(512), nullable=False),
    Column("state", String(16), nullable=False),
    Column("opened_at", TZ, nullable=False),
    Column("resolved_at", TZ),
    Column("updated_at", TZ, nullable=False),
    Column("document", JSONType, nullable=False),
    Index("ix_drift_incident_state", "state"),
)


def _causes(changes: Iterable[LineageChange]) -> list[dict[str, Any]]:
    return [asdict(c) for c in changes]


def _alert_doc(a: AlertState) -> dict[str, Any]:
    doc = {f.name: getattr(a, f.name) for f in fields(AlertState)}
    doc["actions"] = list(a.actions)
    doc["suspected_causes"] = _causes(a.suspected_causes)
    return doc


def _alert(doc: dict[str, Any]) -> AlertState:
    d = dict(doc)
    d["actions"] = tuple(d["actions"])
    d["suspected_causes"] = tuple(LineageChange(**c) for c in d["suspected_causes"])
    return AlertState(**d)


def incident_document(inc: Incident) -> dict[str, Any]:
    """The incident as JSON-ready values (what the row's ``document`` holds)."""
    return {
        "incident_id": inc.incident_id, "model_id": inc.model_id, "state": inc.state, "opened_at": inc.opened_at,
        "onset": inc.onset, "severity": inc.severity, "action": inc.action, "actions": list(inc.actions),
        "rollback_target": inc.rollback_target, "suspected_causes": _causes(inc.suspected_causes),
        "causes": sorted(inc.causes), "updated_at": inc.updated_at, "resolved_at": inc.resolved_at,
        "events": inc.events, "members": [_alert_doc(m.alert) | {"seen_state": m.state} for m in inc.members],
    }


def incident_from_document(doc: dict[str, Any]) -> Incident:
    members = [
        Member.of(replace(_alert({k: v for k, v in m.items() if k != "seen_state"}), state=m["seen_state"]))
        for m in doc["members"]
    ]
    return Incident(
        incident_id=doc["incident_id"], model_id=doc["model_id"], state=doc["state"], opened_at=doc["opened_at"],
        onset=doc["onset"], severity=doc["severity"], members=tuple(members), action=doc["action"],
        actions=tuple(doc["actions"]), rollback_target=doc["rollback_target"],
        suspected_causes=tuple(LineageChange(**c) for c in doc["suspected_causes"]),
        causes=frozenset(doc["causes"]), updated_at=doc["updated_at"], resolved_at=doc["resolved_at"],
        events=doc["events"],
    )


def save_incidents(engine: Engine, incidents: Iterable[Incident]) -> int:
    """Upsert the incidents; returns the number of rows written."""
    return upsert(engine, drift_incident, "incident_id", incident_rows(incidents), "saving incidents")


def incident_rows(incidents: Iterable[Incident]) -> list[dict[str, Any]]:
    """The ``drift_incident`` rows of :func:`save_incidents`."""
    return [
        {"incident_id": i.incident_id, "model_id": i.model_id, "state": i.state, "opened_at": _dt(i.opened_at),
         "resolved_at": _dt(i.resolved_at), "updated_at": _dt(i.updated_at), "document": incident_document(i)}
        for i in incidents
    ]


def load_incidents(engine: Engine, now: float, resolved_keep_s: float,
                   model_ids: Iterable[str] | None = None) -> list[Incident]:
    """Open incidents and those resolved within ``resolved_keep_s`` before ``now`` (of ``model_ids``)."""
    c = drift_incident.c
    query = select(c.document).where(
        or_(c.state == "open", and_(c.state == "resolved", c.resolved_at >= _dt(now - resolved_keep_s)))
    )
    if model_ids is not None:
        query = query.where(c.model_id.in_(list(model_ids)))
    try:
        with engine.connect() as conn:
            docs = conn.execute(query.order_by(c.opened_at, c.incident_id)).scalars().all()
    except STORE_FAILURES as e:
        raise store_error("loading incidents", e) from e
    return [incident_from_document(d) for d in docs]
