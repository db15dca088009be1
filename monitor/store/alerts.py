"""Alert persistence: ``drift_alert`` (one row per alert fingerprint) and ``drift_event`` (the outbox).

``drift_alert`` holds the state machine's state so a restart neither re-fires an alert that is
already firing nor forgets a resolution. ``drift_event`` stores every drift event once (keyed by
its stable ``event_id``) with a ``published`` flag: the Kafka publisher sends unpublished rows and
marks them only after the broker acknowledged, so a broker outage delays events but never loses them.
``slice_outcomes`` and ``slice_accuracy`` read ``inference_log`` for the rollback decision and the
rollback target's evidence (PostgreSQL and SQLite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from monitor.alerts.state import AlertState, Transition
from monitor.errors import StoreError
from monitor.snapshot import AGGREGATE, LineageChange
from monitor.store.base import JSONType, metadata
from monitor.store.failures import STORE_FAILURES, store_error
from monitor.store.tables import inference_log

T = TypeVar("T")
TZ = DateTime(timezone=True)

drift_alert = Table(
    "drift_alert",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("alertname", String(128), nullable=False),
    Column("model_id", String(512), nullable=False),
    Column("slice", String(512), nullable=False),
    Column("signal", String(32), nullable=False),
    Column("feature", String(512), nullable=False),
    Column("statistic", String(128), nullable=False),
    Column("labels", JSONType, nullable=False),
    Column("state", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("actions", JSONType, nullable=False),
    Column("rollback_target", String(512)),
    Column("suspected_causes", JSONType, nullable=False),
    Column("active_since", TZ, nullable=False),
    Column("fired_at", TZ),
    Column("resolved_at", TZ),
    Column("last_evaluated_at", TZ, nullable=False),
    Column("last_value", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("sample_count", Integer, nullable=False),
    Column("window_start", TZ, nullable=False),
    Column("window_end", TZ, nullable=False),
    Column("reference_id", String(512)),
    Column("reference_hash", String(128)),
    Column("breach_count", Integer, nullable=False),
    Column("clear_count", Integer, nullable=False),
    Index("ix_drift_alert_state", "state"),
)

drift_event = Table(
    "drift_event",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("model_id", String(512), nullable=False),
    Column("state", String(16), nullable=False),
    Column("payload", JSONType, nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("published", Boolean, nullable=False, default=False),
    Column("published_at", TZ),
    Index("ix_drift_event_published_created_at", "published", "created_at"),
)


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def _ts(dt: datetime | None) -> float | None:
    if dt is None:
        return None
    if dt.tzinfo is None:  # SQLite hands back naive UTC
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _insert_of(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported database dialect {dialect}")


def _row(s: AlertState) -> dict[str, Any]:
    return {
        "fingerprint": s.fingerprint,
        "alertname": s.alertname,
        "model_id": s.model_id,
        "slice": s.slice,
        "signal": s.signal,
        "feature": s.feature,
        "statistic": s.statistic,
        "labels": s.labels,
        "state": s.state,
        "severity": s.severity,
        "action": s.action,
        "actions": list(s.actions),
        "rollback_target": s.rollback_target,
        "suspected_causes": [
            {"field": c.field, "from": c.from_value, "to": c.to_value, "first_seen": c.first_seen}
            for c in s.suspected_causes
        ],
        "active_since": _dt(s.active_since),
        "fired_at": _dt(s.fired_at),
        "resolved_at": _dt(s.resolved_at),
        "last_evaluated_at": _dt(s.last_evaluated_at),
        "last_value": s.value,
        "threshold": s.threshold,
        "sample_count": s.sample_count,
        "window_start": _dt(s.window_start),
        "window_end": _dt(s.window_end),
        "reference_id": s.reference_id,
        "reference_hash": s.reference_hash,
        "breach_count": s.breach_count,
        "clear_count": s.clear_count,
    }


def save_alert_states(engine: Engine, states: Iterable[AlertState], transitions: Iterable[Transition] = ()) -> int:
    """Upsert the evaluator's current states, plus the alerts that went back to inactive.

    Call after every evaluation with ``evaluator.states.values()`` and its transitions (the
    pipeline does, with the evaluation's incidents and drift events in the same transaction: see
    :mod:`monitor.store.evaluation`); returns the number of rows written.
    """
    return upsert(engine, drift_alert, "fingerprint", alert_state_rows(states, transitions), "saving alert states")


def alert_state_rows(states: Iterable[AlertState], transitions: Iterable[Transition] = ()) -> list[dict[str, Any]]:
    """The ``drift_alert`` rows of :func:`save_alert_states`."""
    rows = {s.fingerprint: _row(s) for s in states}
    for t in transitions:
        if t.to_state == "inactive":
            rows.setdefault(t.fingerprint, _row(t.alert))
    return list(rows.values())


def upsert(engine: Engine, table: Table, key: str, rows: list[dict[str, Any]], what: str) -> int:
    """Insert ``rows`` into ``table``, replacing every other column of a row whose ``key`` exists,
    in one transaction; returns the number of rows written. ``what`` names the operation in errors."""
    if not rows:
        return 0
    return in_transaction(engine, what, lambda conn: upsert_rows(conn, table, key, rows))


def in_transaction(engine: Engine, what: str, work: Callable[[Connection], T]) -> T:
    """``work`` in one transaction of ``engine``; a database error, or a value that could not be
    bound, becomes the :class:`StoreError` (:class:`StoreUnavailable` when the database is
    unreachable) naming ``what`` (see :mod:`monitor.store.failures`)."""
    try:
        with engine.begin() as conn:
            return work(conn)
    except STORE_FAILURES as e:
        raise store_error(what, e) from e


def upsert_rows(conn: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> int:
    """:func:`upsert` in the caller's transaction."""
    if rows:
        conn.execute(_upsert_statement(conn.dialect.name, table, key), rows)
    return len(rows)


@cache
def _upsert_statement(dialect: str, table: Table, key: str) -> Any:
    """The dialect's ``INSERT … ON CONFLICT (key) DO UPDATE`` of every other column, built once:
    building it cost SQLAlchemy about as much as running it on SQLite."""
    stmt = _insert_of(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c[key]],
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name != key},
    )


def load_alert_states(
    engine: Engine, now: float, resolved_resend_s: float, model_ids: Iterable[str] | None = None
) -> list[AlertState]:
    """Pending and firing alerts, and those resolved within ``resolved_resend_s`` before ``now``;
    only of ``model_ids`` when given (the models a replica was just assigned)."""
    c = drift_alert.c
    cutoff = _dt(now - resolved_resend_s)
    query = select(drift_alert).where(
        or_(c.state.in_(("pending", "firing")), and_(c.state == "resolved", c.resolved_at >= cutoff))
    )
    if model_ids is not None:
        query = query.where(c.model_id.in_(list(model_ids)))
    try:
        with engine.connect() as conn:
            rows = conn.execute(query.order_by(c.fingerprint)).mappings().all()
    except STORE_FAILURES as e:
        raise store_error("loading alert states", e) from e
    return [
        AlertState(
            fingerprint=r["fingerprint"],
            alertname=r["alertname"],
            model_id=r["model_id"],
            slice=r["slice"],
            signal=r["signal"],
            feature=r["feature"],
            statistic=r["statistic"],
            state=r["state"],
            severity=r["severity"],
            active_since=_ts(r["active_since"]) or 0.0,
            last_evaluated_at=_ts(r["last_evaluated_at"]) or 0.0,
            value=r["last_value"],
            threshold=r["threshold"],
            sample_count=r["sample_count"],
            window_start=_ts(r["window_start"]) or 0.0,
            window_end=_ts(r["window_end"]) or 0.0,
            action=r["action"],
            actions=tuple(r["actions"] or ()),
            rollback_target=r["rollback_target"],
            suspected_causes=tuple(
                LineageChange(r["model_id"], d["field"], d.get("from"), d["to"], float(d["first_seen"]))
                for d in r["suspected_causes"] or ()
            ),
            fired_at=_ts(r["fired_at"]),
            resolved_at=_ts(r["resolved_at"]),
            reference_id=r["reference_id"],
            reference_hash=r["reference_hash"],
            breach_count=r["breach_count"],
            clear_count=r["clear_count"],
        )
        for r in rows
    ]


def add_drift_events(engine: Engine, events: Iterable[dict[str, Any]], fingerprints: Sequence[str], now: float) -> int:
    """Store drift events in the outbox (unpublished); an ``event_id`` already stored is ignored.

    ``fingerprints[i]`` is the alert fingerprint (or incident id) of ``events[i]``. Returns the
    number of new rows. The batch's order is the publication order: the i-th event is created i
    microseconds after ``now`` (an incident opened and escalated in one evaluation is published
    opened first; evaluations are seconds apart, so batches never interleave).
    """
    events = list(events)
    if not events:
        return 0
    return in_transaction(engine, "storing drift events",
                          lambda conn: insert_drift_events(conn, events, fingerprints, now))


def insert_drift_events(
    conn: Connection, events: Sequence[dict[str, Any]], fingerprints: Sequence[str], now: float
) -> int:
    """:func:`add_drift_events` in the caller's transaction."""
    rows = [
        {
            "event_id": e["event_id"],
            "fingerprint": fp,
            "model_id": e["model_id"],
            "state": e["state"],
            "payload": e,
            "created_at": datetime.fromtimestamp(now, tz=UTC) + timedelta(microseconds=i),
            "published": False,
        }
        for i, (e, fp) in enumerate(zip(events, fingerprints, strict=True))
    ]
    if not rows:
        return 0
    return len(conn.execute(_new_events_statement(conn.dialect.name), rows).all())


@cache
def _new_events_statement(dialect: str) -> Any:
    return (
        _insert_of(dialect, drift_event)
        .on_conflict_do_nothing(index_elements=[drift_event.c.event_id])
        .returning(drift_event.c.event_id)
    )


def unpublished_events(engine: Engine, limit: int = 500) -> list[tuple[str, str, dict[str, Any]]]:
    """Oldest unpublished events first: ``(event_id, model_id, payload)``."""
    c = drift_event.c
    query = (
        select(c.event_id, c.model_id, c.payload)
        .where(c.published.is_(False))
        .order_by(c.created_at, c.event_id)
        .limit(limit)
    )
    try:
        with engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(query)]
    except STORE_FAILURES as e:
        raise store_error("reading the drift event outbox", e) from e


def mark_published(engine: Engine, event_ids: Sequence[str], now: float) -> None:
    if not event_ids:
        return
    c = drift_event.c
    stmt = update(drift_event).where(c.event_id.in_(list(event_ids))).values(published=True, published_at=_dt(now))
    try:
        with engine.begin() as conn:
            conn.execute(stmt)
    except STORE_FAILURES as e:
        raise store_error("marking drift events published", e) from e


def slice_outcomes(engine: Engine, model_id: str, slice: str, since: float, until: float) -> tuple[int, int]:
    """``(correct, labelled)``: the labelled predictions of ``model_id`` served in ``[since, until]``
    and how many of them were correct (see :func:`slices_outcomes`)."""
    return slices_outcomes(engine, model_id, [slice], since, until)[slice]


def slices_outcomes(
    engine: Engine, model_id: str, slices: Sequence[str], since: float, until: float
) -> dict[str, tuple[int, int]]:
    """``slice -> (correct, labelled)`` of ``model_id``'s labelled predictions served in
    ``[since, until]``, every slice in one scan of the rows (one query, one sum per slice).

    A slice is ``"all"`` or ``"key=value"``; the key is looked up in the row's ``slice`` JSON
    first, then in ``input_features``.
    """
    try:
        with engine.connect() as conn:
            return outcomes_at(conn, model_id, slices, since, until)
    except STORE_FAILURES as e:
        raise store_error("reading slice outcomes", e) from e


def outcomes_at(
    conn: Connection, model_id: str, slices: Sequence[str], since: float, until: float
) -> dict[str, tuple[int, int]]:
    """:func:`slices_outcomes` on the caller's connection."""
    c = inference_log.c
    correct = c.was_correct.is_(True)
    columns = []
    for member in slice_members(slices):
        counted = true() if member is None else member
        right = correct if member is None else and_(member, correct)
        columns.append(func.coalesce(func.sum(case((right, 1), else_=0)), 0))
        columns.append(func.coalesce(func.sum(case((counted, 1), else_=0)), 0))
    query = select(*columns).where(
        c.model_id == model_id, c.served_at >= _dt(since), c.served_at <= _dt(until), c.was_correct.is_not(None)
    )
    row = conn.execute(query).one()
    return {label: (int(row[2 * i]), int(row[2 * i + 1])) for i, label in enumerate(slices)}


def slice_members(slices: Sequence[str]) -> list[Any]:
    """Per slice, whether an ``inference_log`` row belongs to it (None: ``"all"``, every row): the
    key's value in the row's ``slice`` JSON, else in its ``input_features``, as text."""
    c = inference_log.c
    out: list[Any] = []
    for label in slices:
        if label == AGGREGATE:
            out.append(None)
            continue
        key, sep, value = label.partition("=")
        if not sep:
            raise ValueError("slice must be 'all' or 'key=value'")
        slice_value = cast(c.slice[key].as_string(), String)
        feature_value = cast(c.input_features[key].as_string(), String)
        out.append(func.coalesce(slice_value, feature_value) == value)
    return out


def slice_accuracy(engine: Engine, model_id: str, slice: str, since: float, until: float) -> float | None:
    """Share of labelled predictions of ``model_id`` served in ``[since, until]`` that were correct
    (see :func:`slice_outcomes`); ``None`` when no labelled row matches."""
    correct, total = slice_outcomes(engine, model_id, slice, since, until)
    return correct / total if total else None
