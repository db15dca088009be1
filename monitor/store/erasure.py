"""Erasure: delete what we hold of a request or of a person, and keep a receipt that holds neither.

``erase(engine, request_ids=...)`` or ``erase(engine, subject_ref=...)`` deletes, in one
transaction: the ``inference_log`` rows (for a subject: every row whose ``subject_ref`` is it), their
``inference_request`` keys (PostgreSQL), the ``pending_label`` and ``label_change`` rows of those
request ids, and the raw key and value of every ``dead_letter`` whose value holds one of the ids or
the subject reference as a JSON string (the dead letter's reason, size and source stay: they carry no content).

What remains after an erasure holds no per-person data: the window counters, sketches and
checkpoints are aggregates (bucket counts, sketch centroids), reference profiles likewise, and
alerts and incidents name models, slices and features, never requests. The Kafka topics keep the
raw events until their own retention; an erased event redelivered from the topic (an offset reset)
would be stored again, so erase again after such a reset.

The receipt (``erasure_receipt``) records when, how many rows of each kind, and a salted SHA-256 of
the request: whoever holds the request ids or the subject reference can recompute it
(:func:`request_digest`), nobody can read them from it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import msgspec
from sqlalchemy import Connection, Engine, delete, insert, select, text, update

from monitor.store.label_join import LABEL_LOCK_KEY
from monitor.store.sql import chunks, in_ids
from monitor.store.tables import (
    dead_letter,
    erasure_receipt,
    inference_log,
    inference_request,
    label_change,
    pending_label,
)
from monitor.store.times import to_datetime, to_epoch

Kind = Literal["request_ids", "subject"]


@dataclass(frozen=True)
class ErasureReceipt:
    """What one erasure removed: counts per table, no identifiers."""

    id: int
    erased_at: float
    kind: Kind
    salt: str
    request_sha256: str
    inference_rows: int
    pending_labels: int
    label_changes: int
    dead_letters: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "erased_at": to_datetime(self.erased_at).isoformat()}


def request_digest(kind: Kind, values: Sequence[str], salt: str) -> str:
    """SHA-256 of the salt, the kind and the sorted, distinct values, one per line.

    >>> a = request_digest("request_ids", ["r2", "r1", "r1"], "00")
    >>> a == request_digest("request_ids", ["r1", "r2"], "00") != request_digest("request_ids", ["r1", "r2"], "01")
    True
    """
    body = "\n".join([salt, kind, *sorted(set(values))])
    return hashlib.sha256(body.encode()).hexdigest()


def erase(
    engine: Engine,
    now: float,
    *,
    request_ids: Sequence[str] = (),
    subject_ref: str | None = None,
    salt: str | None = None,
) -> ErasureReceipt:
    """Erase the rows of ``request_ids``, or of the person ``subject_ref``, in one transaction."""
    if (subject_ref is None) == (not request_ids):
        raise ValueError("erase needs request ids or a subject reference, not both")
    kind: Kind = "subject" if subject_ref is not None else "request_ids"
    salt = salt or secrets.token_hex(16)
    with engine.begin() as conn:
        dialect = conn.dialect.name
        if dialect == "postgresql":  # no label join can add a waiting label for these ids meanwhile
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LABEL_LOCK_KEY})
        ids = sorted(set(request_ids))
        if subject_ref is not None:
            ids = sorted(set(conn.execute(
                select(inference_log.c.request_id).where(inference_log.c.subject_ref == subject_ref)
            ).scalars()))
        counts = {"inference_rows": 0, "pending_labels": 0, "label_changes": 0}
        for chunk in chunks(ids):
            counts["inference_rows"] += _delete(conn, inference_log, inference_log.c.request_id, chunk)
            if dialect == "postgresql":
                _delete(conn, inference_request, inference_request.c.request_id, chunk)
            counts["pending_labels"] += _delete(conn, pending_label, pending_label.c.request_id, chunk)
            counts["label_changes"] += _delete(conn, label_change, label_change.c.request_id, chunk)
        needles = list(ids) if subject_ref is None else [*ids, subject_ref]
        letters = _blank_dead_letters(conn, needles)
        values = list(request_ids) if subject_ref is None else [subject_ref]
        row = {
            "erased_at": to_datetime(now),
            "kind": kind,
            "salt": salt,
            "request_sha256": request_digest(kind, values, salt),
            **counts,
            "dead_letters": letters,
        }
        receipt_id = conn.execute(insert(erasure_receipt).values(**row).returning(erasure_receipt.c.id)).scalar_one()
    return ErasureReceipt(id=int(receipt_id), erased_at=now, kind=kind, salt=salt,
                          request_sha256=str(row["request_sha256"]), dead_letters=letters, **counts)


def receipts(engine: Engine) -> list[ErasureReceipt]:
    """Every erasure receipt, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(erasure_receipt).order_by(erasure_receipt.c.id))
        return [
            ErasureReceipt(
                id=int(r.id), erased_at=to_epoch(r.erased_at) or 0.0, kind=r.kind, salt=r.salt,
                request_sha256=r.request_sha256, inference_rows=int(r.inference_rows),
                pending_labels=int(r.pending_labels), label_changes=int(r.label_changes),
                dead_letters=int(r.dead_letters),
            )
            for r in rows
        ]


def _delete(conn: Connection, table: Any, column: Any, ids: Sequence[str]) -> int:
    return int(conn.execute(delete(table).where(in_ids(column, ids, conn.dialect.name))).rowcount or 0)


def _needle_pattern(needles: Sequence[str]) -> re.Pattern[bytes]:
    """The ids as JSON strings in a raw record, quoted (so ``u1`` does not match ``u10``): as UTF-8
    and as JSON escapes them."""
    forms = {form for n in needles for form in (b'"%s"' % n.encode(), msgspec.json.encode(n))}
    return re.compile(b"|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def _blank_dead_letters(conn: Connection, needles: Sequence[str], batch: int = 1000) -> int:
    """Null the key and value of dead letters whose raw bytes hold a needle; the count blanked."""
    if not needles:
        return 0
    pattern = _needle_pattern(needles)
    c = dead_letter.c
    hit: list[int] = []
    last = -1
    while True:
        rows = conn.execute(
            select(c.id, c.key, c.value).where(c.id > last, c.value.is_not(None)).order_by(c.id).limit(batch)
        ).all()
        if not rows:
            break
        last = rows[-1].id
        hit.extend(r.id for r in rows if pattern.search(r.value) or (r.key and pattern.search(r.key)))
    for chunk in chunks(hit):
        conn.execute(update(dead_letter).where(c.id.in_(list(chunk))).values(key=None, value=None))
    return len(hit)
