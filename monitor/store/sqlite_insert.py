"""SQLite path for inference rows: one multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING``.

The embedded default (and ``slicewatch replay``) writes its rows through SQLite. SQLAlchemy's
``executemany`` with ``RETURNING`` rebuilt a parameter dict and ran every type's processor per row
and column: 14 us of Python per row, more than SQLite's own insert. Here each row is one tuple in
the column order of :data:`COLUMNS`, stored exactly as the SQLAlchemy types store them (the same
bind processors for times and JSON), except that the features are encoded once, key-sorted, and
that one encoding gives both ``input_features`` and ``input_hash`` (as ``pg_copy`` does).

Request ids are distinct within a call (the caller drops repeats); an id already stored is skipped
by ``ON CONFLICT (request_id) DO NOTHING`` and is not returned, so a redelivered batch inserts
nothing twice. ``benchmarks/README.md`` has the costs.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Connection

from monitor.events import InferenceEvent
from monitor.records import Origin
from monitor.store.tables import inference_log

COLUMNS = (
    "request_id", "model_id", "input_hash", "input_features", "output", "confidence", "served_at", "slice",
    "lineage", "latency_ms", "tokens_in", "tokens_out", "topic", "partition", "offset", "ingested_at",
    "subject_ref",
)
# SQLite before 3.32 allows 999 host parameters per statement, later versions 32,766
MAX_PARAMETERS = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
ROWS_PER_STATEMENT = MAX_PARAMETERS // len(COLUMNS)

_sorted = msgspec.json.Encoder(order="sorted")
_sha256 = hashlib.sha256
_ROW = "(" + ",".join("?" * len(COLUMNS)) + ")"
_HEAD = "INSERT INTO inference_log (" + ",".join(f'"{c}"' for c in COLUMNS) + ") VALUES "
_TAIL = " ON CONFLICT (request_id) DO NOTHING RETURNING request_id"


def _processor(conn: Connection, column: str) -> Callable[[Any], Any]:
    process = inference_log.c[column].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    assert process is not None, column
    return process


def insert_inferences(
    conn: Connection, items: Sequence[tuple[InferenceEvent, Origin | None]], now: datetime
) -> set[str]:
    """Insert the ``(event, origin)`` rows (request ids distinct); return the request ids that were new."""
    when, doc = _processor(conn, "served_at"), _processor(conn, "slice")
    stamp = when(now)
    rows: list[Any] = []
    for ev, origin in items:
        features = _sorted.encode(ev.input_features)
        served = ev.served_at if ev.served_at.tzinfo is UTC else ev.served_at.astimezone(UTC)
        rows += (
            ev.request_id, ev.model_id, _sha256(features).hexdigest(), features.decode(), ev.output, ev.confidence,
            when(served), doc(ev.slice), doc(None if ev.lineage is None else msgspec.to_builtins(ev.lineage)),
            ev.latency_ms, ev.tokens_in, ev.tokens_out,
            *((None, None, None) if origin is None else (origin.topic, origin.partition, origin.offset)),
            stamp, ev.subject_ref,
        )
    new: set[str] = set()
    width = len(COLUMNS)
    for start in range(0, len(items), ROWS_PER_STATEMENT):
        n = min(ROWS_PER_STATEMENT, len(items) - start)
        sql = _HEAD + ",".join([_ROW] * n) + _TAIL
        params = tuple(rows[start * width : (start + n) * width])
        new.update(r[0] for r in conn.exec_driver_sql(sql, params))
    return new
