"""The ``dead_letter`` table: records that could not be stored as events, kept once per source
``(topic, partition, offset)`` with a ``published_at`` set once they reached the dead-letter topic.

Functions of a caller's connection (``Repository`` opens the transactions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from monitor.records import DeadLetterGroup, DeadLetterRecord, StoredDeadLetter
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


# ---- inspection and re-drive (``slicewatch dlq``) -------------------------------------------------


def dead_letter_groups(conn: Connection) -> list[DeadLetterGroup]:
    """The dead letters grouped by source topic, stage and error class, most numerous first."""
    c = dead_letter.c
    rows = conn.execute(
        select(
            c.topic, c.stage, c.error_class, func.count(), func.count(c.redriven_at),
            func.min(c.received_at), func.max(c.received_at), func.min(c.reason),
        ).group_by(c.topic, c.stage, c.error_class)
    ).all()
    groups = [
        DeadLetterGroup(r[0], r[1], r[2], int(r[3]), int(r[4]), to_epoch(r[5]) or 0.0, to_epoch(r[6]) or 0.0, r[7])
        for r in rows
    ]
    return sorted(groups, key=lambda g: (-g.count, g.topic, g.stage, g.error_class))


def dead_letters_where(
    conn: Connection,
    *,
    ids: Sequence[int] = (),
    error_class: str | None = None,
    stage: str | None = None,
    topic: str | None = None,
    include_redriven: bool = True,
    limit: int | None = None,
) -> list[StoredDeadLetter]:
    """Stored dead letters matching every filter given, in arrival order."""
    c = dead_letter.c
    query = select(dead_letter).order_by(c.id)
    if ids:
        query = query.where(c.id.in_(list(ids)))
    if error_class is not None:
        query = query.where(c.error_class == error_class)
    if stage is not None:
        query = query.where(c.stage == stage)
    if topic is not None:
        query = query.where(c.topic == topic)
    if not include_redriven:
        query = query.where(c.redriven_at.is_(None))
    if limit is not None:
        query = query.limit(limit)
    return [
        StoredDeadLetter(int(r.id), _dead_letter_record(r), to_epoch(r.published_at), to_epoch(r.redriven_at))
        for r in conn.execute(query)
    ]


def mark_redriven(conn: Connection, ids: Sequence[int], at: float) -> None:
    """Record that these dead letters were sent back to their source topics."""
    if ids:
        conn.execute(update(dead_letter).where(dead_letter.c.id.in_(list(ids))).values(redriven_at=to_datetime(at)))
