"""The label join: feedback events meet their predictions in ``inference_log``, or wait for them in
``pending_label``; and the upkeep of the waiting labels.

Label rule (documented in the README): for one ``request_id`` the label with the latest
``observed_at`` wins; on a tie the first one stored is kept. A label whose prediction is not in
``inference_log`` yet waits in ``pending_label`` (same rule) and is applied, then deleted, in the
transaction that inserts the prediction. On PostgreSQL the label steps take a transaction-scoped
advisory lock so two consumers cannot each miss the other's half of a join. Every label change is
appended to the label log (``window_state.log_label_changes``) under that lock.

Functions of a caller's connection (``Repository`` opens the transactions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import Connection, bindparam, delete, func, select, text, update

from monitor.events import SCHEMA_VERSION, FeedbackEvent, InferenceEvent
from monitor.records import BatchOutcome, DeadLetterRecord, Label, LabelChange
from monitor.store.dead_letters import write_dead_letters
from monitor.store.labels import label_from
from monitor.store.sql import chunks, ids_param, in_ids, in_ids_param
from monitor.store.tables import inference_log, pending_label
from monitor.store.times import to_datetime, to_epoch
from monitor.store.window_state import log_label_changes

LABEL_LOCK_KEY = 0x51C3_7A7C  # pg_advisory_xact_lock key serialising the label join

def _label_values() -> dict[str, Any]:
    """The label columns both tables share, bound to the same parameters."""
    return {name: bindparam(f"b_{param}") for name, param in (
        ("was_correct", "was_correct"), ("score", "score"), ("label_source", "source"),
        ("judge_model", "judge_model"), ("rubric_version", "rubric_version"), ("failure_cluster", "failure_cluster"),
    )}


_SET_LABEL = (
    update(inference_log)
    .where(inference_log.c.request_id == bindparam("b_rid"))
    .values(**_label_values(), label_observed_at=bindparam("b_observed_at"))
)

_SET_PENDING = (
    update(pending_label)
    .where(pending_label.c.request_id == bindparam("b_rid"))
    .values(**_label_values(), observed_at=bindparam("b_observed_at"), received_at=bindparam("b_received_at"))
)


class _Reads(NamedTuple):
    """The label join's statements by request ids, made once per dialect and binding (the ids bound
    as ``ids``, see :func:`~monitor.store.sql.in_ids_param`)."""

    pending: Any  # the waiting labels of the ids
    pending_observed: Any  # their request ids and ``observed_at`` only
    drop_pending: Any  # delete them
    predictions: Any  # the predictions' rows a label change reports, with their current label


def _reads(dialect: str, ids: Sequence[str]) -> tuple[_Reads, dict[str, Any]]:
    """The statements for ``ids`` and their parameters (see :func:`~monitor.store.sql.ids_param`)."""
    as_list, params = ids_param(ids, dialect)
    return _statements(dialect, as_list), params


@cache
def _statements(dialect: str, as_list: bool) -> _Reads:
    p, c = pending_label.c, inference_log.c
    return _Reads(
        select(pending_label).where(in_ids_param(p.request_id, dialect, as_list=as_list)),
        select(p.request_id, p.observed_at).where(in_ids_param(p.request_id, dialect, as_list=as_list)),
        delete(pending_label).where(in_ids_param(p.request_id, dialect, as_list=as_list)),
        select(
            c.request_id, c.model_id, c.served_at, c.slice, c.input_features,
            c.was_correct, c.score, c.label_source, c.judge_model, c.rubric_version,
            c.failure_cluster, c.label_observed_at,
        ).where(in_ids_param(c.request_id, dialect, as_list=as_list)),
    )


def join_labels(
    conn: Connection,
    new_inferences: dict[str, InferenceEvent],
    feedback: Sequence[FeedbackEvent],
    now: datetime,
    ingested_at: float,
    out: BatchOutcome,
) -> None:
    """The label steps of a batch write: apply the waiting labels of the predictions just inserted
    (``new_inferences``, by request id), then join ``feedback``; label changes go to
    ``out.result.label_changes`` and to the label log, stale labels to ``out.stale_labels``."""
    if not new_inferences and not feedback:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LABEL_LOCK_KEY})
    if new_inferences:
        _apply_pending(conn, new_inferences, out)
    if feedback:
        _write_feedback(conn, feedback, now, out)
    # under the label join's lock: the log's ids grow in commit order
    log_label_changes(conn, out.result.label_changes, ingested_at)


def _same_value(a: Label, b: Label) -> bool:
    return (a.was_correct, a.score, a.source, a.judge_model, a.rubric_version, a.failure_cluster) == (
        b.was_correct, b.score, b.source, b.judge_model, b.rubric_version, b.failure_cluster
    )


def _label_params(rid: str, label: Label) -> dict[str, Any]:
    return {
        "b_rid": rid,
        "b_was_correct": label.was_correct,
        "b_score": label.score,
        "b_source": label.source,
        "b_judge_model": label.judge_model,
        "b_rubric_version": label.rubric_version,
        "b_failure_cluster": label.failure_cluster,
        "b_observed_at": to_datetime(label.observed_at),
    }


def _apply_pending(conn: Connection, new: dict[str, InferenceEvent], out: BatchOutcome) -> None:
    dialect = conn.dialect.name
    found: list[Any] = []
    for chunk in chunks(list(new)):
        reads, ids = _reads(dialect, chunk)
        found.extend(conn.execute(reads.pending, ids))
    if not found:
        return
    params = []
    for row in found:
        label = label_from(row, source=row.label_source, observed_at=to_epoch(row.observed_at) or 0.0)
        params.append(_label_params(row.request_id, label))
        ev = new[row.request_id]
        out.result.label_changes.append(
            LabelChange(
                request_id=ev.request_id,
                model_id=ev.model_id,
                served_at=ev.served_at.timestamp(),
                slice=dict(ev.slice),
                input_features=dict(ev.input_features),
                old=None,
                new=label,
            )
        )
    conn.execute(_SET_LABEL, params)
    done = [row.request_id for row in found]
    for chunk in chunks(done):
        reads, ids = _reads(dialect, chunk)
        conn.execute(reads.drop_pending, ids)


def _write_feedback(conn: Connection, events: Sequence[FeedbackEvent], now: datetime, out: BatchOutcome) -> None:
    winners: dict[str, Label] = {}
    for ev in events:
        label = label_from(ev, source=ev.source, observed_at=ev.observed_at.timestamp())
        held = winners.get(ev.request_id)
        if held is None or label.observed_at > held.observed_at:
            if held is not None:
                out.stale_labels += 1
            winners[ev.request_id] = label
        else:
            out.stale_labels += 1
    ids = list(winners)
    rows: dict[str, Any] = {}
    for chunk in chunks(ids):
        reads, params = _reads(conn.dialect.name, chunk)
        rows.update({r.request_id: r for r in conn.execute(reads.predictions, params)})
    updates = []
    for rid, label in winners.items():
        row = rows.get(rid)
        if row is None:
            continue
        stored_at = to_epoch(row.label_observed_at)
        if stored_at is not None and label.observed_at <= stored_at:
            out.stale_labels += 1
            continue
        old = None
        if stored_at is not None:
            old = label_from(row, source=row.label_source, observed_at=stored_at)
        updates.append(_label_params(rid, label))
        if old is None or not _same_value(old, label):
            out.result.label_changes.append(
                LabelChange(
                    request_id=rid,
                    model_id=row.model_id,
                    served_at=to_epoch(row.served_at) or 0.0,
                    slice=dict(row.slice or {}),
                    input_features=dict(row.input_features or {}),
                    old=old,
                    new=label,
                )
            )
    if updates:
        conn.execute(_SET_LABEL, updates)
    waiting = [rid for rid in ids if rid not in rows]
    if waiting:
        _write_pending(conn, {rid: winners[rid] for rid in waiting}, now, out)


def _write_pending(conn: Connection, labels: dict[str, Label], now: datetime, out: BatchOutcome) -> None:
    held: dict[str, float] = {}
    for chunk in chunks(list(labels)):
        reads, params = _reads(conn.dialect.name, chunk)
        rows = conn.execute(reads.pending_observed, params)
        held.update({r.request_id: to_epoch(r.observed_at) or 0.0 for r in rows})
    inserts, updates = [], []
    for rid, label in labels.items():
        params = _label_params(rid, label) | {"b_received_at": now}
        if rid not in held:
            inserts.append(params)
        elif label.observed_at > held[rid]:
            updates.append(params)
        else:
            out.stale_labels += 1
    if inserts:
        conn.execute(
            pending_label.insert().values(
                request_id=bindparam("b_rid"),
                was_correct=bindparam("b_was_correct"),
                score=bindparam("b_score"),
                label_source=bindparam("b_source"),
                judge_model=bindparam("b_judge_model"),
                rubric_version=bindparam("b_rubric_version"),
                failure_cluster=bindparam("b_failure_cluster"),
                observed_at=bindparam("b_observed_at"),
                received_at=bindparam("b_received_at"),
            ),
            inserts,
        )
    if updates:
        conn.execute(_SET_PENDING, updates)
    out.result.pending_labels += len(inserts) + len(updates)


# ---- the waiting labels' upkeep -----------------------------------------------------------------


def expire_pending_labels(
    conn: Connection, received_before: float, now: float, topic: str, limit: int
) -> list[DeadLetterRecord]:
    """Move labels that waited since before ``received_before`` to the dead-letter table, oldest
    first, at most ``limit``; returns the new dead letters (see ``Repository.expire_pending_labels``)."""
    p = pending_label.c
    query = (
        select(pending_label)
        .where(p.received_at < to_datetime(received_before))
        .order_by(p.received_at, p.request_id)
        .limit(limit)
    )
    rows = conn.execute(query).all()
    if not rows:
        return []
    new = write_dead_letters(conn, [_expired_label(r, topic, now) for r in rows])
    for chunk in chunks([r.request_id for r in rows]):
        conn.execute(delete(pending_label).where(in_ids(p.request_id, chunk, conn.dialect.name)))
    return new


def pending_label_count(conn: Connection) -> int:
    """Labels waiting for their prediction."""
    return int(conn.execute(select(func.count()).select_from(pending_label)).scalar_one())


def _expired_label(r: Any, topic: str, now: float) -> DeadLetterRecord:
    value = msgspec.json.encode({
        "schema_version": SCHEMA_VERSION, "request_id": r.request_id,
        "observed_at": to_datetime(to_epoch(r.observed_at) or 0.0).isoformat().replace("+00:00", "Z"),
        "was_correct": r.was_correct, "score": r.score, "source": r.label_source,
        "judge_model": r.judge_model, "rubric_version": r.rubric_version, "failure_cluster": r.failure_cluster,
    })
    waited = now - (to_epoch(r.received_at) or now)
    offset = -(int.from_bytes(hashlib.sha256(r.request_id.encode()).digest()[:7], "big") + 1)
    return DeadLetterRecord(
        topic=topic, partition=-1, offset=offset, key=r.request_id.encode(), value=value, value_size=len(value),
        stage="label", error_class="unknown_request",
        reason=f"no prediction with this request_id arrived within {waited:.0f} s of the label",
        received_at=now,
    )
