"""Idempotent batch writes of decoded events: one :func:`write_batch` call in one transaction.

Inference rows are inserted with ``ON CONFLICT (request_id) DO NOTHING ... RETURNING request_id``
(on PostgreSQL through ``COPY``, see ``pg_copy``; on SQLite one multi-row statement, see
``sqlite_insert``), so a redelivered batch
changes nothing and only rows that were really new flow on to the statistics. Promotions and dead
letters are likewise inserted once; labels go through the label join (``label_join``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Connection

from monitor.events import FeedbackEvent, InferenceEvent, PromotionEvent
from monitor.records import BatchOutcome, DeadLetterRecord, Origin, WriteResult
from monitor.store.dead_letters import write_dead_letters
from monitor.store.label_join import join_labels
from monitor.store.pg_copy import CopyRows, copy_inferences
from monitor.store.sql import insert
from monitor.store.sqlite_insert import insert_inferences
from monitor.store.tables import model_version
from monitor.store.times import to_datetime


def input_hash(features: dict[str, Any]) -> str:
    """SHA-256 of the canonical (key-sorted) JSON of the input features."""
    return hashlib.sha256(msgspec.json.encode(features, order="sorted")).hexdigest()


def write_batch(
    conn: Connection,
    inferences: Sequence[InferenceEvent | tuple[InferenceEvent, Origin | None]],
    feedback: Sequence[FeedbackEvent],
    promotions: Sequence[PromotionEvent],
    dead_letters: Sequence[DeadLetterRecord],
    ingested_at: float,
) -> BatchOutcome:
    """Write one batch in the caller's transaction; the outcome holds what was new."""
    out = BatchOutcome(result=WriteResult())
    now = to_datetime(ingested_at)
    new_inferences = _write_inferences(conn, inferences, now, out)
    join_labels(conn, new_inferences, feedback, now, ingested_at, out)
    if promotions:
        _write_promotions(conn, promotions, now, out)
    if dead_letters:
        out.new_dead_letters = write_dead_letters(conn, dead_letters)
    out.result.duplicates = out.duplicate_inferences + out.stale_labels + out.duplicate_promotions
    return out


def _write_inferences(
    conn: Connection,
    items: Sequence[InferenceEvent | tuple[InferenceEvent, Origin | None]],
    now: datetime,
    out: BatchOutcome,
) -> dict[str, InferenceEvent]:
    batch: dict[str, InferenceEvent] = {}
    unique: list[tuple[InferenceEvent, Origin | None]] = []
    made = items.rows if isinstance(items, CopyRows) else None  # COPY rows made ahead
    rows: list[str] = []
    for k, item in enumerate(items):
        ev, origin = item if isinstance(item, tuple) else (item, None)
        if ev.request_id in batch:
            out.duplicate_inferences += 1
            continue
        batch[ev.request_id] = ev
        unique.append((ev, origin))
        if made is not None:
            rows.append(made[k])
    if not unique:
        return {}
    if conn.dialect.name == "postgresql":
        new_ids = copy_inferences(conn, unique, now, rows if made is not None else None)
    else:
        new_ids = insert_inferences(conn, unique, now)
    out.duplicate_inferences += len(unique) - len(new_ids)
    out.result.existing_inferences = [
        (ev, origin.partition, origin.offset)
        for ev, origin in unique
        if origin is not None and ev.request_id not in new_ids
    ]
    new = {rid: ev for rid, ev in batch.items() if rid in new_ids}
    out.result.new_inferences = list(new.values())
    where = {ev.request_id: origin for ev, origin in unique}
    out.result.new_origins = [
        None if (o := where[rid]) is None else (o.partition, o.offset) for rid in new
    ]
    return new


def _write_promotions(conn: Connection, events: Sequence[PromotionEvent], now: datetime, out: BatchOutcome) -> None:
    for ev in events:
        stmt = (
            insert(conn, model_version)
            .values(
                model_id=ev.model_id,
                promoted_at=ev.promoted_at.astimezone(UTC),
                rollback_target=ev.rollback_target,
                alias=ev.alias,
                traffic_fraction=ev.traffic_fraction,
                ingested_at=now,
            )
            .on_conflict_do_nothing(index_elements=["model_id", "promoted_at"])
            .returning(model_version.c.model_id)
        )
        if conn.execute(stmt).first() is not None:
            out.result.promotions.append(
ev)
        else:
            out.duplicate_promotions += 1
