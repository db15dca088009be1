"""Idempotent batch writes of decoded events, the label join, and reads for the statistics rebuild.

One :meth:`Repository.write` call is one transaction. Inference rows are inserted with
``ON CONFLICT (request_id) DO NOTHING ... RETURNING request_id``, so a redelivered batch changes
nothing and only rows that were really new flow on to the statistics.

Label rule (documented in the README): for one ``request_id`` the label with the latest
``observed_at`` wins; on a tie the first one stored is kept. A label whose prediction is not in
``inference_log`` yet waits in ``pending_label`` (same rule) and is applied, then deleted, in the
transaction that inserts the prediction. On PostgreSQL the label steps take a transaction-scoped
advisory lock so two consumers cannot each miss the other's half of a join.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from sqlalchemy import (
    ARRAY,
    Connection,
    Engine,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, SQLAlchemyError

from monitor.errors import StoreError, StoreUnavailable
from monitor.events import SCHEMA_VERSION, FeedbackEvent, InferenceEvent, PromotionEvent
from monitor.records import BatchOutcome, DeadLetterRecord, Label, LabelChange, Origin, Promotion, WriteResult
from monitor.store.pg_copy import copy_inferences
from monitor.store.tables import dead_letter, inference_log, model_version, pending_label
from monitor.store.times import to_datetime, to_epoch
from monitor.store.window_state import Positions, after_positions, log_label_changes

LABEL_LOCK_KEY = 0x51C3_7A7C  # pg_advisory_xact_lock key serialising the label join
CHUNK = 5000  # ids per IN (...) list; below SQLite's and PostgreSQL's bind-parameter limits

T = TypeVar("T")


def input_hash(features: dict[str, Any]) -> str:
    """SHA-256 of the canonical (key-sorted) JSON of the input features."""
    return hashlib.sha256(msgspec.json.encode(features, order="sorted")).hexdigest()


def _in(column: Any, ids: Sequence[str], dialect: str) -> Any:
    """``column IN ids``; on PostgreSQL ``= ANY(array)``, one parameter instead of thousands."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(String), unique=True))
    return column.in_(list(ids))


def _on_partitions(column: Any, partitions: Sequence[int]) -> Any:
    """Rows of these Kafka partitions, or written without one (replay)."""
    return or_(column.is_(None), column.in_(list(partitions))) if partitions else column.is_(None)


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _label_of(ev: FeedbackEvent) -> Label:
    return Label(
        was_correct=ev.was_correct,
        score=ev.score,
        source=ev.source,
        observed_at=ev.observed_at.timestamp(),
        judge_model=ev.judge_model,
        rubric_version=ev.rubric_version,
        failure_cluster=ev.failure_cluster,
    )


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


_SET_LABEL = (
    update(inference_log)
    .where(inference_log.c.request_id == bindparam("b_rid"))
    .values(
        was_correct=bindparam("b_was_correct"),
        score=bindparam("b_score"),
        label_source=bindparam("b_source"),
        judge_model=bindparam("b_judge_model"),
        rubric_version=bindparam("b_rubric_version"),
        failure_cluster=bindparam("b_failure_cluster"),
        label_observed_at=bindparam("b_observed_at"),
    )
)

_SET_PENDING = (
    update(pending_label)
    .where(pending_label.c.request_id == bindparam("b_rid"))
    .values(
        was_correct=bindparam("b_was_correct"),
        score=bindparam("b_score"),
        label_source=bindparam("b_source"),
        judge_model=bindparam("b_judge_model"),
        rubric_version=bindparam("b_rubric_version"),
        failure_cluster=bindparam("b_failure_cluster"),
        observed_at=bindparam("b_observed_at"),
        received_at=bindparam("b_received_at"),
    )
)


class Repository:
    """The store edge used by the consumer and by the statistics rebuild.

    Examples:
        >>> from monitor.store.engine import make_engine
        >>> from monitor.store.base import metadata
        >>> engine = make_engine("sqlite://")
        >>> metadata.create_all(engine, tables=[inference_log, pending_label, model_version, dead_letter])
        >>> Repository(engine).counts()["inference_log"]
        0
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    @property
    def engine(self) -> Engine:
        return self._engine

    def _insert(self, table: Table) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        if self._dialect == "sqlite":
            return sqlite.insert(table)
        raise StoreError(f"unsupported database dialect {self._dialect!r}")

    # ------------------------------------------------------------------ writes

    def write(
        self,
        inferences: Sequence[InferenceEvent | tuple[InferenceEvent, Origin | None]] = (),
        feedback: Sequence[FeedbackEvent] = (),
        promotions: Sequence[PromotionEvent] = (),
        dead_letters: Sequence[DeadLetterRecord] = (),
        ingested_at: float = 0.0,
    ) -> BatchOutcome:
        """Write one batch in one transaction. Raises StoreUnavailable (retry) or StoreError."""
        try:
            with self._engine.begin() as conn:
                return self._write(conn, inferences, feedback, promotions, dead_letters, ingested_at)
        except StoreError:
            raise
        except (OperationalError, DisconnectionError) as e:
            raise StoreUnavailable(f"batch write failed: database unavailable ({_cls(e)})") from e
        except DBAPIError as e:
            if e.connection_invalidated:
                raise StoreUnavailable(f"batch write failed: connection lost ({_cls(e)})") from e
            raise StoreError(f"batch write failed ({_cls(e)})") from e
        except SQLAlchemyError as e:
            raise StoreError(f"batch write failed ({_cls(e)})") from e

    def _write(
        self,
        conn: Connection,
        inferences: Sequence[InferenceEvent | tuple[InferenceEvent, Origin | None]],
        feedback: Sequence[FeedbackEvent],
        promotions: Sequence[PromotionEvent],
        dead_letters: Sequence[DeadLetterRecord],
        ingested_at: float,
    ) -> BatchOutcome:
        out = BatchOutcome(result=WriteResult())
        now = to_datetime(ingested_at)
        new_inferences = self._write_inferences(conn, inferences, now, out)
        if new_inferences or feedback:
            if self._dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LABEL_LOCK_KEY})
            if new_inferences:
                self._apply_pending(conn, new_inferences, out)
            if feedback:
                self._write_feedback(conn, feedback, now, out)
            # under the label join's lock: the log's ids grow in commit order
            log_label_changes(conn, out.result.label_changes, ingested_at)
        if promotions:
            self._write_promotions(conn, promotions, now, out)
        if dead_letters:
            self._write_dead_letters(conn, dead_letters, out)
        out.result.duplicates = out.duplicate_inferences + out.stale_labels + out.duplicate_promotions
        return out

    def _write_inferences(
        self,
        conn: Connection,
        items: Sequence[InferenceEvent | tuple[InferenceEvent, Origin | None]],
        now: datetime,
        out: BatchOutcome,
    ) -> dict[str, InferenceEvent]:
        batch: dict[str, InferenceEvent] = {}
        unique: list[tuple[InferenceEvent, Origin | None]] = []
        for item in items:
            ev, origin = item if isinstance(item, tuple) else (item, None)
            if ev.request_id in batch:
                out.duplicate_inferences += 1
                continue
            batch[ev.request_id] = ev
            unique.append((ev, origin))
        if not unique:
            return {}
        if self._dialect == "postgresql":
            new_ids = copy_inferences(
                conn, [(ev, origin, input_hash(ev.input_features)) for ev, origin in unique], now
            )
        else:
            stmt = (
                self._insert(inference_log)
                .on_conflict_do_nothing(index_elements=["request_id"])
                .returning(inference_log.c.request_id)
            )
            new_ids = {r[0] for r in conn.execute(stmt, [_inference_row(ev, o, now) for ev, o in unique])}
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

    def _apply_pending(self, conn: Connection, new: dict[str, InferenceEvent], out: BatchOutcome) -> None:
        ids = list(new)
        found: list[Any] = []
        for chunk in _chunks(ids):
            query = select(pending_label).where(_in(pending_label.c.request_id, chunk, self._dialect))
            found.extend(conn.execute(query))
        if not found:
            return
        params = []
        for row in found:
            label = Label(
                was_correct=row.was_correct,
                score=row.score,
                source=row.label_source,
                observed_at=to_epoch(row.observed_at) or 0.0,
                judge_model=row.judge_model,
                rubric_version=row.rubric_version,
                failure_cluster=row.failure_cluster,
            )
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
        for chunk in _chunks(done):
            conn.execute(pending_label.delete().where(_in(pending_label.c.request_id, chunk, self._dialect)))

    def _write_feedback(
        self, conn: Connection, events: Sequence[FeedbackEvent], now: datetime, out: BatchOutcome
    ) -> None:
        winners: dict[str, Label] = {}
        for ev in events:
            label = _label_of(ev)
            held = winners.get(ev.request_id)
            if held is None or label.observed_at > held.observed_at:
                if held is not None:
                    out.stale_labels += 1
                winners[ev.request_id] = label
            else:
                out.stale_labels += 1
        ids = list(winners)
        cols = inference_log.c
        rows: dict[str, Any] = {}
        for chunk in _chunks(ids):
            query = select(
                cols.request_id, cols.model_id, cols.served_at, cols.slice, cols.input_features,
                cols.was_correct, cols.score, cols.label_source, cols.judge_model, cols.rubric_version,
                cols.failure_cluster, cols.label_observed_at,
            ).where(_in(cols.request_id, chunk, self._dialect))
            rows.update({r.request_id: r for r in conn.execute(query)})
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
                old = Label(
                    was_correct=row.was_correct,
                    score=row.score,
                    source=row.label_source,
                    observed_at=stored_at,
                    judge_model=row.judge_model,
                    rubric_version=row.rubric_version,
                    failure_cluster=row.failure_cluster,
                )
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
            self._write_pending(conn, {rid: winners[rid] for rid in waiting}, now, out)

    def _write_pending(
        self, conn: Connection, labels: dict[str, Label], now: datetime, out: BatchOutcome
    ) -> None:
        held: dict[str, float] = {}
        for chunk in _chunks(list(labels)):
            query = select(pending_label.c.request_id, pending_label.c.observed_at).where(
                _in(pending_label.c.request_id, chunk, self._dialect)
            )
            held.update({r.request_id: to_epoch(r.observed_at) or 0.0 for r in conn.execute(query)})
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

    def _write_promotions(
        self, conn: Connection, events: Sequence[PromotionEvent], now: datetime, out: BatchOutcome
    ) -> None:
        for ev in events:
            stmt = (
                self._insert(model_version)
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
                    Promotion(
                        model_id=ev.model_id,
                        promoted_at=ev.promoted_at.timestamp(),
                        rollback_target=ev.rollback_target,
                        alias=ev.alias,
                        traffic_fraction=ev.traffic_fraction,
                    )
                )
            else:
                out.duplicate_promotions += 1

    def _write_dead_letters(
        self, conn: Connection, records: Sequence[DeadLetterRecord], out: BatchOutcome
    ) -> None:
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
            self._insert(dead_letter)
            .on_conflict_do_nothing(index_elements=["topic", "partition", "offset"])
            .returning(dead_letter.c.topic, dead_letter.c.partition, dead_letter.c.offset)
        )
        new = {(r[0], r[1], r[2]) for r in conn.execute(stmt, rows)}
        out.new_dead_letters = [r for key, r in by_source.items() if key in new]

    def expire_pending_labels(
        self, received_before: float, now: float, topic: str, limit: int = 10_000
    ) -> list[DeadLetterRecord]:
        """Move labels that waited since before ``received_before`` for a prediction that never came
        to the dead-letter table (stage ``label``, error class ``unknown_request``), oldest first, at
        most ``limit`` per call, in one transaction; returns the new dead letters (to publish).

        The original record's bytes and offset are not kept for a waiting label: the dead letter's
        value is the label re-encoded as a feedback event, its partition -1 and its offset a stable
        negative number derived from the request id (so a retry inserts nothing twice).
        """
        p = pending_label.c
        query = (
            select(pending_label)
            .where(p.received_at < to_datetime(received_before))
            .order_by(p.received_at, p.request_id)
            .limit(limit)
        )
        with self._guard("expire pending labels"), self._engine.begin() as conn:
            rows = conn.execute(query).all()
            if not rows:
                return []
            records = [_expired_label(r, topic, now) for r in rows]
            out = BatchOutcome(result=WriteResult())
            self._write_dead_letters(conn, records, out)
            for chunk in _chunks([r.request_id for r in rows]):
                conn.execute(delete(pending_label).where(_in(p.request_id, chunk, self._dialect)))
            return out.new_dead_letters

    def pending_label_count(self) -> int:
        """Labels waiting for their prediction."""
        with self._guard("count pending labels"), self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(pending_label)).scalar_one())

    def mark_published(self, records: Sequence[DeadLetterRecord], published_at: float) -> None:
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
        params = [{"b_topic": r.topic, "b_partition": r.partition, "b_offset": r.offset, "b_at": at}
                  for r in records]
        with self._guard("mark published"), self._engine.begin() as conn:
            conn.execute(stmt, params)

    def unpublished_dead_letters(self, limit: int = 1000) -> list[DeadLetterRecord]:
        """Dead letters stored but not yet on the dead-letter topic (a crash between the two)."""
        query = (
            select(dead_letter).where(dead_letter.c.published_at.is_(None)).order_by(dead_letter.c.id)
            .limit(limit)
        )
        with self._guard("read dead letters"), self._engine.connect() as conn:
            return [_dead_letter_record(r) for r in conn.execute(query)]

    # ------------------------------------------------------------------- reads

    def load_rows(self, model_ids: Sequence[str] | None, since: float, until: float) -> list[dict[str, Any]]:
        """Rows served in ``[since, until)`` for the statistics rebuild; times as epoch floats."""
        return [row for chunk in self.iter_window_rows(model_ids, None, since, until) for row in chunk]

    def window_models(self, partitions: Sequence[int] | None, since: float, until: float) -> list[str]:
        """Model ids with rows served in ``[since, until)`` on ``partitions`` (None: any)."""
        c = inference_log.c
        query = select(c.model_id).distinct().where(c.served_at >= to_datetime(since), c.served_at < to_datetime(until))
        if partitions is not None:
            query = query.where(_on_partitions(c.partition, partitions))
        with self._guard("list window models"), self._engine.connect() as conn:
            return sorted(r.model_id for r in conn.execute(query))

    def iter_window_rows(
        self,
        model_ids: Sequence[str] | None,
        partitions: Sequence[int] | None,
        since: float,
        until: float,
        chunk_rows: int = 20_000,
        *,
        after: Positions | None = None,
        conn: Connection | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Rows served in ``[since, until)`` in ``served_at`` order, ``chunk_rows`` at a time (a
        server-side cursor on PostgreSQL), for the statistics rebuild; times as epoch floats.

        ``partition`` is the Kafka partition the row was consumed from (None when written without
        one, e.g. by replay): a replica rebuilds only the models of the partitions it owns. ``after``:
        only the rows a checkpoint with these positions does not hold. ``conn``: read in the caller's
        transaction (a snapshot shared with other reads)."""
        c = inference_log.c
        query = select(
            c.request_id, c.model_id, c.served_at, c.input_features, c.output, c.confidence, c.slice,
            c.lineage, c.latency_ms, c.tokens_in, c.tokens_out, c.was_correct, c.score, c.label_source,
            c.judge_model, c.rubric_version, c.failure_cluster, c.label_observed_at, c.partition, c.ingested_at,
        ).where(c.served_at >= to_datetime(since), c.served_at < to_datetime(until))
        if model_ids is not None:
            if not model_ids:
                return
            query = query.where(c.model_id.in_(list(model_ids)))
        if partitions is not None:
            query = query.where(_on_partitions(c.partition, partitions))
        if after is not None:
            query = query.where(after_positions(after))
        query = query.order_by(c.served_at, c.request_id)
        with self._guard("load rows"), self._connection(conn) as c_:
            result = c_.execute(query.execution_options(yield_per=chunk_rows))
            for part in result.partitions():
                rows = [dict(r._mapping) for r in part]
                for row in rows:
                    row["served_at"] = to_epoch(row["served_at"])
                    row["label_observed_at"] = to_epoch(row["label_observed_at"])
                    row["ingested_at"] = to_epoch(row["ingested_at"])
                    row["slice"] = row["slice"] or {}
                    row["lineage"] = row["lineage"] or {}
                yield rows

    def promotions(self, model_ids: Sequence[str] | None = None) -> list[Promotion]:
        """Every stored promotion, oldest first."""
        query = select(model_version).order_by(model_version.c.promoted_at, model_version.c.model_id)
        if model_ids is not None:
            query = query.where(model_version.c.model_id.in_(list(model_ids)))
        with self._guard("load promotions"), self._engine.connect() as conn:
            return [
                Promotion(
                    model_id=r.model_id,
                    promoted_at=to_epoch(r.promoted_at) or 0.0,
                    rollback_target=r.rollback_target,
                    alias=r.alias,
                    traffic_fraction=r.traffic_fraction,
                )
                for r in conn.execute(query)
            ]

    def dead_letters(self) -> list[DeadLetterRecord]:
        """Every stored dead letter, in arrival order."""
        with self._guard("read dead letters"), self._engine.connect() as conn:
            rows = conn.execute(select(dead_letter).order_by(dead_letter.c.id))
            return [_dead_letter_record(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Row counts per table (tests, ``slicewatch status``)."""
        tables = (inference_log, pending_label, model_version, dead_letter)
        with self._guard("count rows"), self._engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables}

    @contextmanager
    def _connection(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self._engine.connect() as own:
                yield own

    def _guard(self, what: str) -> _Guard:
        return _Guard(what)


class _Guard:
    """Context manager turning driver errors into StoreUnavailable / StoreError, without row data."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: Any, ev: BaseException | None, tb: Any) -> None:
        if ev is None or not isinstance(ev, SQLAlchemyError):
            return
        if isinstance(ev, OperationalError | DisconnectionError) or (
            isinstance(ev, DBAPIError) and ev.connection_invalidated
        ):
            raise StoreUnavailable(f"{self._what} failed: database unavailable ({_cls(ev)})") from ev
        raise StoreError(f"{self._what} failed ({_cls(ev)})") from ev


def _cls(e: SQLAlchemyError) -> str:
    orig = getattr(e, "orig", None)
    return type(orig if orig is not None else e).__name__


def _inference_row(ev: InferenceEvent, origin: Origin | None, now: datetime) -> dict[str, Any]:
    return {
        "request_id": ev.request_id,
        "model_id": ev.model_id,
        "input_hash": input_hash(ev.input_features),
        "input_features": ev.input_features,
        "output": ev.output,
        "confidence": ev.confidence,
        "served_at": ev.served_at.astimezone(UTC),
        "slice": ev.slice,
        "lineage": msgspec.to_builtins(ev.lineage) if ev.lineage is not None else None,
        "latency_ms": ev.latency_ms,
        "tokens_in": ev.tokens_in,
        "tokens_out": ev.tokens_out,
        "topic": origin.topic if origin else None,
        "partition": origin.partition if origin else None,
        "offset": origin.offset if origin else None,
        "ingested_at": now,
    }


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
