"""The upkeep of dead letters and waiting labels, done by the consuming thread between batches.

A dead letter is stored with its batch first, then published to ``<topic><suffix>`` and marked
published; one stored but never published (a crash or a broker error between the two steps) is
re-sent by the next sweep. Labels that waited too long for their prediction become dead letters.
Every store call is bounded (:class:`~monitor.ingest.writer.StoreCalls`); a failed step is logged
and tried again later, it never stops consumption.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from monitor.errors import StoreError
from monitor.ingest.deadletter import DeadLetterPublisher
from monitor.ingest.metrics import ConsumerMetrics
from monitor.ingest.writer import BatchStore, StoreCalls
from monitor.records import DeadLetterRecord

log = logging.getLogger(__name__)


class DeadLetterUpkeep:
    """Publishes dead letters, sweeps the unpublished ones and expires waiting labels.

    ``publisher`` is set while the consumer's Kafka clients exist; ``sweep_due`` asks the consumer
    for a :meth:`republish_stored` (set at start, after a rebalance and after a failed publish).
    ``on_kafka_error(what, error)`` counts and logs a Kafka client error.
    """

    def __init__(
        self,
        *,
        store: BatchStore,
        store_call: StoreCalls,
        metrics: ConsumerMetrics,
        clock: Callable[[], float],
        feedback_topic: str,
        pending_label_ttl_s: float | None,
        maintenance_every_s: float,
        on_kafka_error: Callable[[str, Exception], None],
    ) -> None:
        self.store = store
        self.store_call = store_call
        self.metrics = metrics
        self.clock = clock
        self.feedback_topic = feedback_topic
        self.pending_label_ttl_s = pending_label_ttl_s
        self.maintenance_every_s = maintenance_every_s
        self.on_kafka_error = on_kafka_error
        self.publisher: DeadLetterPublisher | None = None
        self.sweep_due = True
        self._next_maintenance = 0.0  # monotonic

    def publish(self, records: Sequence[DeadLetterRecord]) -> bool:
        """Send ``records`` to the dead-letter topics, then mark them published in the store (a
        failed mark is only logged: the rows are re-sent by a sweep). False when the send failed."""
        assert self.publisher is not None
        try:
            self.publisher.publish(records)
        except Exception as e:
            self.on_kafka_error("dead-letter publish", e)
            return False
        try:
            self.store_call("mark published", lambda: self.store.mark_published(records, self.clock()))
        except StoreError as e:  # the table row stays unpublished; it is re-sent on the next sweep
            log.warning("could not mark dead letters published: %s", e)
        return True

    def republish_stored(self) -> None:
        """Send dead letters stored but never published (a crash between the two steps)."""
        try:
            pending = self.store_call("dead-letter sweep", self.store.unpublished_dead_letters)
        except StoreError as e:
            log.warning("dead-letter sweep skipped: %s", e)
            return
        if not pending or self.publish(pending):
            self.sweep_due = False

    def maintain_pending_labels(self) -> None:
        """Every ``maintenance_every_s``, between batches: labels whose prediction never came within
        ``pending_label_ttl_s`` become dead letters (``unknown_request``); the waiting ones are counted."""
        if time.monotonic() < self._next_maintenance:
            return
        self._next_maintenance = time.monotonic() + self.maintenance_every_s
        now = self.clock()
        try:
            if self.pending_label_ttl_s is not None:
                feedback_topic = self.feedback_topic
                ttl = self.pending_label_ttl_s
                expired = self.store_call(
                    "expire pending labels",
                    lambda: self.store.expire_pending_labels(now - ttl, now, feedback_topic),
                )
                if expired:
                    log.warning("%d labels waited more than %.0f s for their prediction: dead-lettered",
                                len(expired), self.pending_label_ttl_s)
                    for dl in expired:
                        self.metrics.dead_lettered.labels(topic=dl.topic, error_class=dl.error_class).inc()
                    if not self.publish(expired):
                        self.sweep_due = True  # stored; published by the next sweep
            waiting = self.store_call("count pending labels", self.store.pending_label_count)
            self.metrics.pending_labels.set(waiting)
        except StoreError as e:
            log.warning("ingest maintenance skipped: %s", e)
