"""What one evaluation persists, in one transaction: the alert states (``drift_alert``), the incidents
it changed (``drift_incident``) and its drift events (the ``drift_event`` outbox).

One transaction, so a restart or a takeover never finds an evaluation half saved: an incident
without the alert states that opened it, or states whose drift events never reached the outbox. A
failed write raises :class:`~monitor.errors.StoreError` and writes nothing; the pipeline keeps the
incidents, the drift events and the alerts gone back to inactive, and writes them with the next
evaluation's (the current alert states are all written every time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from monitor.alerts.incidents import Incident
from monitor.alerts.state import AlertState, Transition
from monitor.store.alerts import alert_state_rows, drift_alert, in_transaction, insert_drift_events, upsert_rows
from monitor.store.incidents import drift_incident, incident_rows


def save_evaluation(
    engine: Engine,
    states: Iterable[AlertState],
    transitions: Iterable[Transition],
    incidents: Iterable[Incident],
    events: Sequence[dict[str, Any]],
    fingerprints: Sequence[str],
    now: float,
) -> int:
    """Upsert ``states`` (and the alerts ``transitions`` made inactive) and ``incidents``, and add
    ``events`` to the outbox (``fingerprints[i]`` is the alert or incident of ``events[i]``; an
    ``event_id`` already stored is ignored), all in one transaction. Returns the new drift events."""
    alerts, changed = alert_state_rows(states, transitions), incident_rows(incidents)
    if not alerts and not changed and not events:
        return 0

    def save(conn: Connection) -> int:
        upsert_rows(conn, drift_alert, "fingerprint", alerts)
        upsert_rows(conn, drift_incident, "incident_id", changed)
        return insert_drift_events(conn, events, fingerprints, now)

    return in_transaction(engine, "saving an evaluation's alerts", save)
