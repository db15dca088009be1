"""The ``dead_letter`` table: records that could not be stored as events, kept once per source
``(topic, partition, offset)`` with a ``published_at`` set once they reached the dead-letter topic.

Functions of a caller's connection (``Repository`` opens the transactions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from monitor.records import DeadLetterRecord
from monitor.store.sql import insert
from monitor.store.tables import dead_letter
from monitor.store.times import to_datetime, to_epoch


def write_dead_letters(conn: Connection, records: Sequence[DeadLetterRecord]) -> list[DeadLetterRecord]:
    """Insert ``records``, ignoring the sources already stored; returns those that were new."""
    by_source = {(r.topic, r.partition, r.offset): r for r in records}
    rows = [
        {
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "key": r.key,
            "value": r.value,
            "value_size": r.value_size,
            "stage": r.stage,
            "error_class": r.error_class,
            "reason": r.reason,
            "received_at": to_datetime(r.received_at),
        }
        for r in by_source.values()
    ]
    stmt = (
        insert(conn, dead_letter)
        .on_conflict_do_nothing(index_elements=["topic", "partition", "offset"])
        .returning(dead_letter.c.topic, dead_letter.c.partition, dead_letter.c.offset)
    )
    new = {(r[0], r[1], r[2]) for r in conn.execute(stmt, rows)}
    return [r for key, r in by_source.items() if key in new]


def mark_published(conn: Connection, records: Sequence[DeadLetterRecord], published_at: float) -> None:
    """Record that these dead letters reached the dead-letter topic."""
    if not records:
        return
    stmt = (
        update(dead_letter)
        .where(dead_letter.c.topic == bindparam("b_topic"))
        .where(dead_letter.c.partition == bindparam("b_partition"))
        .where(dead_letter.c.offset == bindparam("b_offset"))
        .values(published_at=bindparam("b_at"))
    )
    at = to_datetime(published_at)
    params = [{"b_topic": r.topic, "b_partition": r.partition, "b_offset": r.offset, "b_at": at} for r in records]
    conn.execute(stmt, params)


def unpublished_dead_letters(conn: Connection, limit: int) -> list[DeadLetterRecord]:
    """Dead letters stored but not yet on the dead-letter topic, oldest first, at most ``limit``."""
    query = (
        select(dead_letter).where(dead_letter.c.published_at.is_(None)).order_by(dead_letter.c.id)
        .limit(limit)
    )
    return [_dead_letter_record(r) for r in conn.execute(query)]


def all_dead_letters(conn: Connection) -> list[DeadLetterRecord]:
    """Every stored dead letter, in arrival order."""
    rows = conn.execute(select(dead_letter).order_by(dead_letter.c.id))
    return [_dead_letter_record(r) for r in rows]


def _dead_letter_record(r: Any) -> DeadLetterRecord:
    return DeadLetterRecord(
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
        key=r.key,
        value=r.value,
        value_size=r.value_size,
        stage=r.stage,
        error_class=r.error_class,
        reason=r.reason,
        received_at=to_epoch(r.received_at) or 0.0,
    )
