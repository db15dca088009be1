"""PostgreSQL fast path for inference rows: COPY the decoded events as JSON lines into a session
temp table, then one statement: the request ids go into ``inference_request`` (``ON CONFLICT
(request_id) DO NOTHING RETURNING``), and the rows of the ids it accepted into the partitioned
``inference_log`` (whose key must hold ``served_at``, so it cannot see a request id twice itself).

Why: a multi-row ``INSERT ... VALUES`` spends most of its time in Python (building per-column
parameters, the driver parsing a huge statement). Here Python only re-encodes each validated event
(compact JSON, unknown fields gone) and PostgreSQL, in its own process, extracts the columns.
It runs on the caller's connection, inside the batch transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec
import psycopg
from sqlalchemy import Connection

from monitor.errors import StoreError, StoreUnavailable
from monitor.events import InferenceEvent
from monitor.records import Origin

STAGE = "_slicewatch_inference_stage"

_CREATE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} "
    "(input_hash text, topic text, partition integer, \"offset\" bigint, v jsonb) ON COMMIT DELETE ROWS"
)
_INSERT = f"""
WITH fresh AS (
    INSERT INTO inference_request (request_id)
    SELECT v->>'request_id' FROM {STAGE}
    ON CONFLICT (request_id) DO NOTHING
    RETURNING request_id
)
INSERT INTO inference_log (request_id, model_id, input_hash, input_features, output, confidence,
    served_at, slice, lineage, latency_ms, tokens_in, tokens_out, topic, partition, "offset", ingested_at,
    subject_ref)
SELECT v->>'request_id', v->>'model_id', input_hash, v->'input_features', v->>'output',
    (v->>'confidence')::float8, (v->>'served_at')::timestamptz, COALESCE(v->'slice', '{{}}'::jsonb),
    v->'lineage', (v->>'latency_ms')::float8, (v->>'tokens_in')::bigint, (v->>'tokens_out')::bigint,
    topic, partition, "offset", %(now)s, v->>'subject_ref'
FROM {STAGE} JOIN fresh ON fresh.request_id = {STAGE}.v->>'request_id'
RETURNING request_id
"""

_encoder = msgspec.json.Encoder()


def _field(value: str | int | None) -> bytes:
    return b"\\N" if value is None else str(value).encode()


def copy_inferences(
    conn: Connection, items: Sequence[tuple[InferenceEvent, Origin | None, str]], now: datetime
) -> set[str]:
    """Insert ``(event, origin, input_hash)`` rows; return the request ids that were new."""
    lines = []
    for ev, origin, digest in items:
        # COPY text format: backslash is the escape character; msgspec output has no raw tab/newline.
        doc = _encoder.encode(ev).replace(b"\\", b"\\\\")
        if origin is None:
            lines.append(b"%s\t\\N\t\\N\t\\N\t%s\n" % (digest.encode(), doc))
        else:
            lines.append(b"%s\t%s\t%d\t%d\t%s\n" % (
                digest.encode(), origin.topic.encode(), origin.partition, origin.offset, doc
            ))
    raw = conn.connection.driver_connection
    assert raw is not None
    # psycopg raises directly here (not through SQLAlchemy): translate like the repository does.
    try:
        with raw.cursor() as cur:
            cur.execute(_CREATE)
            cur.execute(f"TRUNCATE {STAGE}")
            with cur.copy(f'COPY {STAGE} (input_hash, topic, partition, "offset", v) FROM STDIN') as copy:
                copy.write(b"".join(lines))
            cur.execute(_INSERT, {"now": now})
            return {r[0] for r in cur.fetchall()}
    except psycopg.OperationalError as e:
        raise StoreUnavailable(f"inference copy failed: database unavailable ({type(e).__name__})") from e
    except psycopg.Error as e:
        raise StoreError(f"inference copy failed ({type(e).__name__})") from e
