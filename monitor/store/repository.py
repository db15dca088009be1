"""The store edge of ingestion: idempotent batch writes, the label join, dead letters and the reads
of the statistics rebuild, behind one :class:`Repository`.

One :meth:`Repository.write` call is one transaction; a redelivered batch changes nothing and only
rows that were really new flow on to the statistics. The work is done by functions of a connection
in the modules beside this one; the facade opens the transactions and turns driver errors into
:class:`~monitor.errors.StoreUnavailable` (retry) or :class:`~monitor.errors.StoreError`:

* ``writes`` - the batch write (inference rows, promotions) and :func:`input_hash`;
* ``label_join`` - the label rule, the join of feedback with predictions, the waiting labels;
* ``dead_letters`` - the ``dead_letter`` table;
* ``reads`` - window rows and models, promotions, counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from monitor.errors import StoreError
from monitor.events import FeedbackEvent, InferenceEvent, PromotionEvent
from monitor.records import BatchOutcome, DeadLetterRecord, Origin
from monitor.store import dead_letters as dead_letter_rows
from monitor.store import label_join, reads
from monitor.store.failures import STORE_FAILURES, store_error
from monitor.store.pg_copy import CopyRows, copy_row
from monitor.store.window_state import Positions
from monitor.store.writes import input_hash, write_batch

__all__ = ["Repository", "input_hash"]


class Repository:
    """The store edge used by the consumer and by the statistics rebuild.

    Examples:
        >>> from monitor.store.engine import make_engine
        >>> from monitor.store.base import metadata
        >>> from monitor.store.tables import dead_letter, inference_log, model_version, pending_label
        >>> engine = make_engine("sqlite://")
        >>> metadata.create_all(engine, tables=[inference_log, pending_label, model_version, dead_letter])
        >>> Repository(engine).counts()["inference_log"]
        0
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    # ------------------------------------------------------------------ writes

    def prepare(
        self, inferences: Sequence[tuple[InferenceEvent, Origin | None]]
    ) -> Sequence[tuple[InferenceEvent, Origin | None]]:
        """The inference items as :meth:`write` takes them, with the per-row work that needs no
        database done ahead: on PostgreSQL each row's ``COPY`` text (``pg_copy.CopyRows``). No I/O:
        the consumer calls it on its own thread while the batch before is written, so the writer's
        turn (the one serial part of ingestion) holds only the database's work."""
        if self._engine.dialect.name != "postgresql":
            return list(inferences)
        return CopyRows(inferences, [copy_row(ev, origin) for ev, origin in inferences])

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
                return write_batch(conn, inferences, feedback, promotions, dead_letters, ingested_at)
        except StoreError:
            raise
        except STORE_FAILURES as e:
            raise store_error("batch write", e) from e

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
        with self._guard("expire pending labels"), self._engine.begin() as conn:
            return label_join.expire_pending_labels(conn, received_before, now, topic, limit)

    def pending_label_count(self) -> int:
        """Labels waiting for their prediction."""
        with self._guard("count pending labels"), self._engine.connect() as conn:
            return label_join.pending_label_count(conn)

    def mark_published(self, records: Sequence[DeadLetterRecord], published_at: float) -> None:
        """Record that these dead letters reached the dead-letter topic."""
        if not records:
            return
        with self._guard("mark published"), self._engine.begin() as conn:
            dead_letter_rows.mark_published(conn, records, published_at)

    def unpublished_dead_letters(self, limit: int = 1000) -> list[DeadLetterRecord]:
        """Dead letters stored but not yet on the dead-letter topic (a crash between the two)."""
        with self._guard("read dead letters"), self._engine.connect() as conn:
            return dead_letter_rows.unpublished_dead_letters(conn, limit)

    # ------------------------------------------------------------------- reads

    def load_rows(self, model_ids: Sequence[str] | None, since: float, until: float) -> list[dict[str, Any]]:
        """Rows served in ``[since, until)`` for the statistics rebuild; times as epoch floats."""
        return [row for chunk in self.iter_window_rows(model_ids, None, since, until) for row in chunk]

    def window_models(self, partitions: Sequence[int] | None, since: float, until: float) -> list[str]:
        """Model ids with rows served in ``[since, until)`` on ``partitions`` (None: any)."""
        with self._guard("list window models"), self._engine.connect() as conn:
            return reads.window_models(conn, partitions, since, until)

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
        query = reads.window_rows_query(model_ids, partitions, since, until, after)
        if query is None:
            return
        with self._guard("load rows"), self._connection(conn) as c:
            yield from reads.window_rows(c, query, chunk_rows)

    def promotions(self, model_ids: Sequence[str] | None = None) -> list[PromotionEvent]:
        """Every stored promotion, oldest first."""
        with self._guard("load promotions"), self._engine.connect() as conn:
            return reads.promotions(conn, model_ids)

    def dead_letters(self) -> list[DeadLetterRecord]:
        """Every stored dead letter, in arrival order."""
        with self._guard("read dead letters"), self._engine.connect() as conn:
            return dead_letter_rows.all_dead_letters(conn)

    def counts(self) -> dict[str, int]:
        """Row counts per table (tests, ``slicewatch status``)."""
        with self._guard("count rows"), self._engine.connect() as conn:
            return reads.counts(conn)

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
        if isinstance(ev, STORE_FAILURES):
            raise store_error(self._what, ev) from ev
