"""The consumer's database side: the write of a batch (run on a daemon thread while the next batch is
polled) and the other store calls of the consuming thread, each bounded in time.

A batch is written in one transaction; when the database rejects it (not: is unavailable), its
events are written one by one so the records it rejects become dead letters and the rest is stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter as PromCounter

from monitor.errors import StoreError, StoreUnavailable
from monitor.events import FeedbackEvent, InferenceEvent, PromotionEvent
from monitor.ingest.batch import Batch, inferences_of
from monitor.ingest.deadletter import dead_letter_record
from monitor.records import BatchOutcome, DeadLetterRecord, Origin, WriteResult

log = logging.getLogger(__name__)
T = TypeVar("T")


class BatchStore(Protocol):
    """What the consumer needs from the database (``monitor.store.repository.Repository``): one
    durable, idempotent transaction per batch, and the upkeep of dead letters and waiting labels."""

    def prepare(
        self, inferences: Sequence[tuple[InferenceEvent, Origin | None]]
    ) -> Sequence[tuple[InferenceEvent, Origin | None]]: ...
    def write(
        self,
        inferences: Sequence[tuple[InferenceEvent, Origin | None]],
        feedback: Sequence[FeedbackEvent],
        promotions: Sequence[PromotionEvent],
        dead_letters: Sequence[DeadLetterRecord],
        ingested_at: float,
    ) -> BatchOutcome: ...
    def expire_pending_labels(self, received_before: float, now: float, topic: str) -> list[DeadLetterRecord]: ...
    def pending_label_count(self) -> int: ...
    def mark_published(self, records: Sequence[DeadLetterRecord], published_at: float) -> None: ...
    def unpublished_dead_letters(self, limit: int = 1000) -> list[DeadLetterRecord]: ...


def submit(fn: Callable[[], T]) -> Future[T]:
    """Run ``fn`` on a daemon thread. Not a ThreadPoolExecutor: its threads are joined at interpreter
    exit, so a write stuck on a hung database would keep a SIGTERMed process alive forever."""
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as e:
            future.set_exception(e)

    threading.Thread(target=run, name="slicewatch-writer", daemon=True).start()
    return future


class StoreCalls:
    """Database calls from the consuming thread, each bounded by ``timeout_s``: a server frozen
    mid-call (no statement timeout can fire, a pooled connection's pre-ping waits forever) must not
    stop polling or SIGTERM. A call runs on a daemon thread; while one of a kind is still stuck, the
    next of that kind is not started."""

    def __init__(self, timeout_s: float, stalls: PromCounter) -> None:
        self.timeout_s = timeout_s
        self._stalls = stalls
        self._running: dict[str, Future[Any]] = {}

    def __call__(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``; raises :class:`StoreError` when it does not end within ``timeout_s``."""
        running = self._running.get(what)
        if running is not None and not running.done():
            raise StoreError(f"{what}: the previous call has not returned (database hung?)")
        future = self._running[what] = submit(fn)
        wait_futures([future], timeout=self.timeout_s)
        if not future.done():
            self._stalls.inc()
            raise StoreError(f"{what}: no answer within {self.timeout_s:.0f} s (database hung?)")
        return future.result()


def write_batch(store: BatchStore, batch: Batch, now: float, dead_letter_value_cap_bytes: int) -> BatchOutcome:
    """Write ``batch`` in one transaction; if the database rejects it, event by event (see
    :func:`_write_one_by_one`). Raises :class:`StoreUnavailable` (the caller retries the batch)."""
    inferences = batch.inferences if batch.inferences is not None else inferences_of(batch)
    feedback = [i.event for i in batch.items if i.kind == "feedback"]
    promotions = [i.event for i in batch.items if i.kind == "promotion"]
    try:
        return store.write(
            inferences,
            feedback,  # type: ignore[arg-type]
            promotions,  # type: ignore[arg-type]
            batch.dead_letters,
            now,
        )
    except StoreUnavailable:
        raise
    except StoreError as e:
        log.error("batch rejected by the database (%s); writing its events one by one", e)
    return _write_one_by_one(store, batch, now, dead_letter_value_cap_bytes)


def _write_one_by_one(store: BatchStore, batch: Batch, now: float, dead_letter_value_cap_bytes: int) -> BatchOutcome:
    """Isolate records the database rejects (e.g. a NUL character in text) into dead letters."""
    merged = BatchOutcome(result=WriteResult())
    rejected: list[DeadLetterRecord] = []
    for item in batch.items:
        args: tuple[list[Any], list[Any], list[Any]] = (
            [(item.event, item.origin)] if item.kind == "inference" else [],
            [item.event] if item.kind == "feedback" else [],
            [item.event] if item.kind == "promotion" else [],
        )
        try:
            _merge(merged, store.write(*args, [], now))
        except StoreUnavailable:
            raise
        except StoreError as e:
            cause = type(e.__cause__).__name__ if e.__cause__ is not None else "StoreError"
            rejected.append(
                dead_letter_record(
                    item.origin.topic, item.origin.partition, item.origin.offset, item.key, item.value,
                    "store", "store_rejected", f"rejected by the database ({cause})", now,
                    dead_letter_value_cap_bytes,
                )
            )
    _merge(merged, store.write([], [], [], [*batch.dead_letters, *rejected], now))
    return merged


def _merge(into: BatchOutcome, part: BatchOutcome) -> None:
    r, p = into.result, part.result
    r.new_inferences.extend(p.new_inferences)
    r.new_origins.extend(p.new_origins)
    r.existing_inferences.extend(p.existing_inferences)
    r.label_changes.extend(p.label_changes)
    r.promotions.extend(p.promotions)
    r.duplicates += p.duplicates
    r.pending_labels += p.pending_labels
    into.new_dead_letters.extend(part.new_dead_letters)
    into.duplicate_inferences += part.duplicate_inferences
    into.stale_labels += part.stale_labels
    into.duplicate_promotions += part.duplicate_promotions
