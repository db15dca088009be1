"""The ingestion loop: poll a batch, decode, write it in one transaction, then commit the offsets.

At-least-once delivery plus idempotent writes (see ``monitor.store.repository``): a batch is only
committed after the database commit, so a crash or rebalance at any point re-delivers rows the
store already has and nothing else. Bad records are dead-lettered (table + ``<topic><suffix>``)
and consumption goes on. When the database is unavailable the assigned partitions are paused and
``poll`` keeps the group membership alive while the same decoded batch is retried with capped
exponential backoff. Kafka client errors are logged by class name and survived.

This module holds the loop and the Kafka clients' lifecycle; the parts live beside it:
``batch`` (a polled batch and its decoding), ``writer`` (the batch write on a daemon thread and
the bounded store calls), ``upkeep`` (dead letters and waiting labels), ``rebalance`` (the
rebalance callbacks, the rewind and the rejoin watchdog) and ``metrics``.

Nothing here logs payloads: only counts, topic names, partitions, offsets and error classes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitor.errors import StoreUnavailable
from monitor.events import EventKind
from monitor.ingest.backoff import Backoff
from monitor.ingest.batch import Batch, Decoder, decode_poll, inferences_of, records_in
from monitor.ingest.commit_retry import CommitRetry
from monitor.ingest.deadletter import DeadLetterPublisher
from monitor.ingest.decoder import decode_record
from monitor.ingest.metrics import ConsumerMetrics
from monitor.ingest.rebalance import (
    MembershipWatch,
    RebalanceFlag,
    RebalanceListener,
    kept_and_rewound,
    membership_stable,
    run_assignment_hook,
)
from monitor.ingest.upkeep import DeadLetterUpkeep
from monitor.ingest.writer import BatchStore, StoreCalls, submit, write_batch
from monitor.records import BatchOutcome, WriteResult

__all__ = ["BatchStore", "IngestConsumer", "OnAssigned", "OnWritten"]

log = logging.getLogger(__name__)

OnWritten = Callable[[WriteResult, float], None]
OnAssigned = Callable[[set[TopicPartition]], None]


class IngestConsumer:
    """Consumes the inference, feedback and promotion topics into the store.

    Built from plain arguments by the composition root; ``run(stop_event)`` blocks until the
    event is set, then finishes the batch in hand (within ``shutdown_grace_s``), commits and closes.

    Example (see ``tests/test_consumer_*.py``)::

        consumer = IngestConsumer(bootstrap_servers="127.0.0.1:9092", group_id="slicewatch",
                                  inference_topic="inference-events", feedback_topic="inference-feedback",
                                  promotions_topic="model-promotions", repository=repo,
                                  metrics=ConsumerMetrics(registry))
        threading.Thread(target=consumer.run, args=(stop,)).start()
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        inference_topic: str,
        feedback_topic: str,
        promotions_topic: str,
        repository: BatchStore,
        metrics: ConsumerMetrics,
        dlq_suffix: str = ".dlq",
        client_kwargs: Mapping[str, Any] | None = None,
        consumer_kwargs: Mapping[str, Any] | None = None,
        client_id: str = "slicewatch",
        max_poll_records: int = 5000,
        poll_timeout_ms: int = 500,
        session_timeout_ms: int = 10000,
        heartbeat_interval_ms: int = 2000,
        max_poll_interval_ms: int = 300000,
        auto_offset_reset: str = "earliest",
        max_event_bytes: int = 256 * 1024,
        dead_letter_value_cap_bytes: int = 16 * 1024,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        retry_multiplier: float = 2.0,
        shutdown_grace_s: float = 6.0,
        rejoin_timeout_s: float = 60.0,
        write_stall_s: float = 10.0,
        revoke_wait_s: float = 3.0,
        max_future_s: float | None = 600.0,
        pending_label_ttl_s: float | None = 7 * 86400.0,
        maintenance_every_s: float = 60.0,
        on_written: OnWritten | None = None,
        on_assigned: OnAssigned | None = None,
        clock: Callable[[], float] = time.time,
        decoder: Decoder | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.kinds: dict[str, EventKind] = {
            inference_topic: "inference",
            feedback_topic: "feedback",
            promotions_topic: "promotion",
        }
        if len(self.kinds) != 3:
            raise ValueError("the inference, feedback and promotion topics must differ")
        self.repository = repository
        self.metrics = metrics
        self.dlq_suffix = dlq_suffix
        self.client_kwargs = dict(client_kwargs or {})
        self.consumer_kwargs = dict(consumer_kwargs or {})
        self.client_id = client_id
        self.max_poll_records = max_poll_records
        self.poll_timeout_ms = poll_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_poll_interval_ms = max_poll_interval_ms
        self.auto_offset_reset = auto_offset_reset
        self.max_event_bytes = max_event_bytes
        self.dead_letter_value_cap_bytes = dead_letter_value_cap_bytes
        self.shutdown_grace_s = shutdown_grace_s
        self.on_written = on_written
        self.rejoin_timeout_s = rejoin_timeout_s
        self.write_stall_s = write_stall_s
        self.revoke_wait_s = revoke_wait_s
        self.max_future_s = max_future_s
        self.on_assigned = on_assigned
        self.clock = clock
        self._decode_record = decoder or decode_record
        self._backoff = Backoff(retry_initial_s, retry_max_s, retry_multiplier)
        self._kafka_backoff = Backoff(min(retry_initial_s, 1.0), min(retry_max_s, 5.0), retry_multiplier)
        self._consumer: KafkaConsumer | None = None
        self._queue: deque[Batch] = deque()  # decoded, not yet committed; the head is being written
        self._paused = False
        self._stalled = False  # the head's write has run longer than write_stall_s
        self._commit_retry = CommitRetry()  # written, but the commit failed (see commit_retry)
        self._commit_retry_at = 0.0  # monotonic: not before, so a rebalance is not hammered
        self._rebalanced = RebalanceFlag()  # set by the rebalance callbacks, taken by the consuming thread
        self._membership = MembershipWatch()
        self._rebuild_due = False  # the on_assigned hook runs once the membership is stable again
        self._store_call = StoreCalls(write_stall_s, metrics.store_stalls)  # bounded calls of this thread
        self._dead_letters = DeadLetterUpkeep(
            store=repository,
            store_call=self._store_call,
            metrics=metrics,
            clock=clock,
            feedback_topic=feedback_topic,
            pending_label_ttl_s=pending_label_ttl_s,
            maintenance_every_s=maintenance_every_s,
            on_kafka_error=self._kafka_error,
        )
        self._stop_event: threading.Event | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def topics(self) -> list[str]:
        return list(self.kinds)

    @property
    def paused(self) -> bool:
        """True while partitions are paused waiting for the database."""
        return self._paused

    def readiness(self) -> str | None:
        """Why this consumer should not get traffic routed to it (``/readyz``), None when ready: no
        Kafka client yet, a group membership that is not stable (joining, rebalancing), a stalled
        batch write or partitions paused on a database outage. Read from another thread: each
        attribute is one read; a stale answer lasts one probe."""
        consumer = self._consumer
        if consumer is None:
            return "not connected to Kafka"
        if not membership_stable(consumer):
            return "consumer group membership not stable (joining or rebalancing)"
        if self._stalled:
            return f"a batch write has run for more than {self.write_stall_s:.0f} s (database hung?)"
        if self._paused:
            return "database unavailable: partitions paused"
        return None

    def _make_clients(self) -> tuple[KafkaConsumer, DeadLetterPublisher]:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset=self.auto_offset_reset,
            max_poll_records=self.max_poll_records,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            max_poll_interval_ms=self.max_poll_interval_ms,
            **self.client_kwargs,
            **self.consumer_kwargs,
        )
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-dlq",
            acks="all",
            linger_ms=5,
            **self.client_kwargs,
        )
        return consumer, DeadLetterPublisher(producer, self.dlq_suffix)

    def run(self, stop_event: threading.Event) -> None:
        """Consume until ``stop_event`` is set; never raises on bad input, broker or database outages.

        If the group membership does not become stable again within ``rejoin_timeout_s`` (seen after
        a broker lost its state and the topics were recreated: kafka-python revoked the partitions
        and never rejoined), the Kafka clients are recreated. Uncommitted batches are then simply
        redelivered: the writes are idempotent and the assignment hook rebuilds the statistics.
        """
        self._stop_event = stop_event
        while not stop_event.is_set():
            while not stop_event.is_set():
                try:
                    self._consumer, self._dead_letters.publisher = self._make_clients()
                    break
                except Exception as e:  # broker unreachable: keep trying until stopped
                    self._kafka_error("connect", e)
                    stop_event.wait(self._kafka_backoff.next_delay())
            if self._consumer is None:
                return
            self._membership.reset()
            try:
                listener = RebalanceListener(self._rebalanced, self._queue, self.revoke_wait_s)
                self._consumer.subscribe(self.topics, listener=listener)
                while not stop_event.is_set() and not self._membership_stuck():
                    self._poll_and_write_once(stop_event)
                if stop_event.is_set():
                    self._drain_on_stop()
                else:
                    log.warning("group membership not stable for %.0f s: recreating the Kafka clients",
                                self.rejoin_timeout_s)
                    self._drop_queue("recreating the Kafka clients")
            finally:
                self._close()

    def _membership_stuck(self) -> bool:
        """True once the consumer has been out of a stable group membership for ``rejoin_timeout_s``."""
        return self._membership.stuck(self._consumer, self.rejoin_timeout_s)

    def _close(self) -> None:
        consumer, publisher = self._consumer, self._dead_letters.publisher
        self._consumer = self._dead_letters.publisher = None
        if consumer is not None:
            try:
                consumer.close(autocommit=False, timeout_ms=1000)
            except Exception as e:
                log.warning("consumer close failed (%s)", type(e).__name__)
        if publisher is not None:
            try:
                publisher.close(timeout_s=1.0)
            except Exception as e:
                log.warning("dead-letter producer close failed (%s)", type(e).__name__)
        self._set_paused(False)

    def _takeover_pending(self) -> bool:
        return self._rebuild_due and self.on_assigned is not None

    def _drain_on_stop(self) -> None:
        """Stop requested: finish the batches in hand within the grace period, commit, return.
        Before the assignment hook ran, only a write already in flight is finished."""
        deadline = time.monotonic() + self.shutdown_grace_s
        if self._takeover_pending() and self._queue:
            head = self._queue[0]
            self._queue.clear()
            if head.future is not None:
                self._queue.append(head)
        while self._queue and time.monotonic() < deadline:
            if self._write_and_complete(self._queue[0], deadline):
                self._queue.popleft()
                continue
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if self._queue:
            log.warning("shutdown: %d records left uncommitted (they will be redelivered)",
                        records_in(self._queue))
            self._queue.clear()

    # ---------------------------------------------------------------- main loop

    def _poll_and_write_once(self, stop_event: threading.Event) -> None:
        """One turn of the pipeline: batch N is written on the writer thread while batch N+1 is
        polled and decoded here; N is completed (dead letters, hook, offsets) before N+1 is written.
        Every wait is bounded by the poll timeout and polls, so the group membership holds and a
        stop request is seen whatever the database does."""
        if self._takeover_pending() and not (self._queue and self._queue[0].future is not None):
            # the statistics take the new assignment over before anything new is written (a write
            # from before the rebalance still completes); the hook runs once the group is stable
            self._poll(self.poll_timeout_ms)
            return
        if not self._queue and not self._paused:
            self._dead_letters.maintain_pending_labels()
            self._retry_commits()
        if len(self._queue) < 2 and not self._paused:
            self._poll(50 if self._queue else self.poll_timeout_ms)
        if not self._queue:
            return
        head = self._queue[0]
        if head.outcome is None:
            future = head.future or self._start_write(head)
            if not future.done():
                if len(self._queue) < 2 and not self._paused:
                    return  # poll the next batch while this one is written
                wait_futures([future], timeout=self.poll_timeout_ms / 1000)
                if not future.done():
                    self._watch_stall(head)
                    self._poll(1)  # paused partitions return nothing; the membership holds
                    return
            self._end_stall()
            if not self._take_write_outcome(head):
                self._set_paused(True)
                self._wait(self._backoff.next_delay(), stop_event)
                return
        if self._publish_notify_commit(head):
            if self._queue and self._queue[0] is head:
                self._queue.popleft()
            self._backoff.reset()
            self._set_paused(False)
            self._start_next_write()
            return
        self._set_paused(True)
        self._wait(self._backoff.next_delay(), stop_event)

    def _start_next_write(self) -> None:
        """Start the next queued batch's write as soon as the one before it is completed, before
        the next poll: the database then works on batch N+1 while N+2 is polled and decoded (started
        at the next turn instead, the write waited for that poll and decode, and the two ran one
        after the other). Not while a takeover is pending (the statistics take the new assignment
        over before anything new is written), nor while the group membership is not stable: the
        next poll may revoke the batch's partitions, and then it is dropped unwritten."""
        if self._queue and self._queue[0].future is None and self._queue[0].outcome is None \
                and not self._takeover_pending() and membership_stable(self._consumer):
            self._start_write(self._queue[0])

    def _watch_stall(self, head: Batch) -> None:
        """A write running past ``write_stall_s`` (a hung database: statement timeouts cannot fire
        on a stopped server) pauses the partitions and says so once."""
        if self._stalled or time.monotonic() - head.write_started < self.write_stall_s:
            return
        self._stalled = True
        self.metrics.store_stalls.inc()
        log.warning("batch write running for more than %.0f s: database hung? partitions paused",
                    self.write_stall_s)
        self._set_paused(True)

    def _end_stall(self) -> None:
        if self._stalled:
            self._stalled = False
            log.warning("stalled batch write finished")

    def _wait(self, delay_s: float, stop_event: threading.Event) -> None:
        """Wait while polling (paused partitions return nothing) so the group membership holds."""
        deadline = time.monotonic() + delay_s
        while not stop_event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._poll(int(min(left, self.poll_timeout_ms / 1000) * 1000) or 1)

    def _poll(self, timeout_ms: int) -> None:
        assert self._consumer is not None
        if self._dead_letters.sweep_due and not self._queue:
            self._dead_letters.republish_stored()
        try:
            records = self._consumer.poll(timeout_ms=timeout_ms)
            self._kafka_backoff.reset()
        except Exception as e:
            self._kafka_error("poll", e)
            time.sleep(self._kafka_backoff.next_delay())
            records = {}
        if self._rebalanced.take():
            self._after_rebalance(records)
            return
        if self._rebuild_due and membership_stable(self._consumer):
            self._rebuild_due = False
            self._call_on_assigned()
        if not records:
            return
        if len(self._queue) >= 2:
            # Only after a rebalance could unpaused partitions return records while the pipeline
            # is full; rewind them so they are read again later.
            for tp, recs in records.items():
                self._safe_seek(tp, recs[0].offset)
            return
        if self._paused:
            self._set_paused(False)
        self._queue.append(self._decode(records))
        self._update_lag(records)

    def _set_paused(self, paused: bool) -> None:
        consumer = self._consumer
        if paused and consumer is not None:
            assignment = consumer.assignment()
            if assignment:
                consumer.pause(*assignment)
        elif not paused and self._paused and consumer is not None:
            paused_now = consumer.paused()
            if paused_now:
                consumer.resume(*paused_now)
        if paused != self._paused:
            log.warning("partitions %s: database unavailable", "paused" if paused else "resumed")
        self._paused = paused
        self.metrics.paused.set(1 if paused else 0)

    def _decode(self, records: Mapping[TopicPartition, Sequence[Any]]) -> Batch:
        """The batch of what one ``poll`` returned (see :func:`monitor.ingest.batch.decode_poll`),
        its inference rows prepared for the store here, on this thread, while the batch before is
        written (a failure leaves them to the write, which handles it as before)."""
        batch = decode_poll(
            records,
            kinds=self.kinds,
            decode=self._decode_record,
            clock=self.clock,
            max_event_bytes=self.max_event_bytes,
            max_future_s=self.max_future_s,
            dead_letter_value_cap_bytes=self.dead_letter_value_cap_bytes,
            future_events=self.metrics.future_events,
        )
        try:
            batch.inferences = self.repository.prepare(inferences_of(batch))
        except Exception as e:  # never lose a batch over an optimisation
            log.warning("could not prepare a batch's rows ahead (%s); the write makes them", type(e).__name__)
        return batch

    # ----------------------------------------------------------------- the batch

    def _write_and_complete(self, batch: Batch, deadline: float) -> bool:
        """Write (if needed) and complete one batch, waiting at most until ``deadline``."""
        if batch.outcome is None:
            future = batch.future or self._start_write(batch)
            wait_futures([future], timeout=max(0.0, deadline - time.monotonic()))
            if not future.done() or not self._take_write_outcome(batch):
                return False
        return self._publish_notify_commit(batch)

    def _start_write(self, batch: Batch) -> Future[BatchOutcome]:
        batch.write_started = time.monotonic()
        batch.future = future = submit(
            lambda: write_batch(self.repository, batch, self.clock(), self.dead_letter_value_cap_bytes)
        )
        return future

    def _take_write_outcome(self, batch: Batch) -> bool:
        """Take the finished write's outcome; False (and forget the future) when the store was down."""
        assert batch.future is not None
        try:
            batch.outcome = batch.future.result()
        except StoreUnavailable as e:
            batch.future = None
            self.metrics.store_retries.inc()
            log.warning("batch write failed, will retry: %s", e)
            return False
        self.metrics.count_written(batch, batch.outcome, self.kinds)
        self.metrics.last_write.set(self.clock())
        return True

    def _publish_notify_commit(self, batch: Batch) -> bool:
        """Written batch -> dead letters published -> ``on_written`` -> offsets committed. False when
        the dead letters could not be published (the caller retries; the steps done are not redone)."""
        assert batch.outcome is not None
        if not batch.published:
            if batch.outcome.new_dead_letters and not self._dead_letters.publish(batch.outcome.new_dead_letters):
                return False
            batch.published = True
        if not batch.notified:
            batch.notified = True
            batch.outcome.result.positions = {
                tp.partition: end for tp, end in batch.offsets.items() if self.kinds.get(tp.topic) == "inference"
            }
            self._notify(batch.outcome.result)
        self._commit(batch.offsets)
        self.metrics.batch_duration.observe(time.monotonic() - batch.started)
        return True

    def _notify(self, result: WriteResult) -> None:
        if self.on_written is None:
            return
        try:
            self.on_written(result, self.clock())
        except Exception as e:  # the rows are durable; a failing hook must not stop ingestion
            log.error("on_written hook failed (%s)", type(e).__name__)

    def _commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the partitions still assigned: committing one that moved could move its new
        owner's committed offset backwards."""
        if not offsets or self._consumer is None:
            return
        assignment = self._consumer.assignment()
        mine = {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items() if tp in assignment}
        if not mine:
            return
        try:
            self._consumer.commit(mine)
        except Exception as e:  # rows are idempotent: a redelivery after a failed commit is harmless
            self._kafka_error("commit", e)
            self._commit_retry.failed({tp: m.offset for tp, m in mine.items()})
            return
        self._commit_retry.succeeded({tp: m.offset for tp, m in mine.items()})

    def _retry_commits(self) -> None:
        """Commit again, once the queue is empty and the group stable, the written offsets whose
        commit failed (a commit racing a rebalance); at most once a second."""
        if not self._commit_retry.pending or self._consumer is None or time.monotonic() < self._commit_retry_at:
            return
        self._commit_retry_at = time.monotonic() + 1.0
        consumer = self._consumer
        if not membership_stable(consumer):
            return
        try:
            due = self._commit_retry.due(set(consumer.assignment()), consumer.committed)
        except Exception as e:
            self._kafka_error("committed-offset fetch", e)
            return
        self._commit(due)

    def _finish_in_flight(self, wait_s: float) -> None:
        """Complete the head if its write has finished (waiting at most ``wait_s`` for it). A write
        still running stays at the head of the queue: the loop keeps watching it (stall watch, stop
        request) and completes it when it ends; a failed write stays there and is retried."""
        head = self._queue[0] if self._queue else None
        if head is None or (head.future is None and head.outcome is None):
            return
        if head.outcome is None:
            assert head.future is not None
            wait_futures([head.future], timeout=wait_s)
            if not head.future.done():
                self._watch_stall(head)
                return
            self._end_stall()
            if not self._take_write_outcome(head):
                return
        if self._publish_notify_commit(head):
            self._queue.popleft()

    def _drop_queue(self, why: str) -> None:
        """Before the clients are recreated: complete the write in flight if it ends within the
        shutdown grace, drop the rest (the new clients start from the committed offsets, so the dropped
        records are read again; a write that ends later has only written rows they rewrite)."""
        self._finish_in_flight(self.shutdown_grace_s)
        if self._queue:
            log.warning("%s: %d records read but not written are dropped (they will be re-read)",
                        why, records_in(self._queue))
        self._queue.clear()

    # --------------------------------------------------------------- edges, misc

    def _update_lag(self, records: Mapping[TopicPartition, Sequence[Any]]) -> None:
        assert self._consumer is not None
        for tp, recs in records.items():
            if not recs:
                continue
            high = self._consumer.highwater(tp)
            if high is not None:
                self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(0, high - (recs[-1].offset + 1))
                )

    def _safe_seek(self, tp: TopicPartition, offset: int) -> None:
        assert self._consumer is not None
        try:
            self._consumer.seek(tp, offset)
        except Exception as e:
            self._kafka_error("seek", e)

    def _kafka_error(self, what: str, e: Exception) -> None:
        name = type(e).__name__
        self.metrics.kafka_errors.labels(error_class=name).inc()
        log.warning("kafka %s failed (%s); continuing", what, name)

    # ------------------------------------------------------------- rebalancing

    def _after_rebalance(self, records: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """The assignment moved during the last poll (consuming thread, after ``poll`` returned).

        The batch whose write is in flight is finished and completed (its new rows reach the
        statistics; offsets are committed for partitions still held). This poll's records of a
        partition still assigned with no record in a queued batch are kept as the next batch (a
        first assignment's poll returns only such records). Every other record read but not
        written - the queued batches and the rest of what this poll returned - is dropped, and each
        partition still assigned is moved back to the first of them. kafka-python 3 keeps the
        position of a partition retained across a rebalance, so without that seek the consumer
        would read on past the dropped records and later commit beyond them (rows lost). Seeking
        back re-reads records at worst (writes are idempotent); it never skips one: everything
        before the first dropped offset was durably written. Then, once the group is stable again
        (a rebalance can span several polls), the ``on_assigned`` hook rebuilds state, outside the
        callback and only once.
        """
        assert self._consumer is not None
        self._finish_in_flight(self.poll_timeout_ms / 1000)
        in_flight = self._queue.popleft() if self._queue and self._queue[0].future is not None else None
        assignment = set(self._consumer.assignment())
        kept, held = kept_and_rewound(self._queue, records, assignment)
        rewound = 0
        for tp, offset in held.items():
            if tp in assignment:
                self._safe_seek(tp, offset)
                rewound += 1
        dropped = records_in(self._queue) + sum(len(r) for tp, r in records.items() if tp not in kept)
        self._queue.clear()
        if in_flight is not None:  # its write is still running: it stays, and completes when it ends
            self._queue.append(in_flight)
        if kept:  # written after the takeover, as any batch read after the rebalance
            self._queue.append(self._decode(kept))
            self._update_lag(kept)
        if dropped:
            log.warning("rebalance: %d records read but not written are dropped; %d retained partitions "
                        "rewound to re-read them", dropped, rewound)
        if in_flight is None:
            self._set_paused(False)
        self._dead_letters.sweep_due = True
        self.metrics.rebalances.inc()
        self._rebuild_due = True
        if membership_stable(self._consumer):
            self._rebuild_due = False
            self._call_on_assigned()

    def _call_on_assigned(self) -> None:
        """Run the hook (the monitor's takeover) and wait for it, watching the stop event (see
        :func:`~monitor.ingest.rebalance.run_assignment_hook`). Nothing is written meanwhile; the
        heartbeat thread keeps the membership (up to ``max_poll_interval``)."""
        if self._consumer is None:
            return
        assigned = set(self._consumer.assignment())
        log.info("group %s: assigned %s", self.group_id, _partitions(assigned) or "no partitions")
        if self.on_assigned is None:
            return
        run_assignment_hook(self.on_assigned, assigned, self._stop_event)


def _partitions(tps: set[TopicPartition]) -> str:
    """``topic[0,2] other[1]``: the assignment in one short line (topic names and numbers only)."""
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{t}[{','.join(map(str, sorted(p)))}]" for t, p in sorted(by_topic.items()))
