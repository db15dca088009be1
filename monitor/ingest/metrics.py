"""Prometheus metrics of the ingestion consumer, registered on an injected registry.

Labels are bounded: topic names from configuration, partition numbers, the decoder's short
error classes. Never request ids, model ids or payload text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.ingest.deadletter_log import DeadLetterLog
from monitor.records import BatchOutcome

if TYPE_CHECKING:
    from monitor.events import EventKind
    from monitor.ingest.batch import Batch

log = logging.getLogger("monitor.ingest.consumer")  # the consumer's log: dead letters are its events

class ConsumerMetrics:
    """The consumer's counters and gauges.

    Examples:
        >>> from prometheus_client import CollectorRegistry
        >>> reg = CollectorRegistry()
        >>> m = ConsumerMetrics(reg)
        >>> m.consumed.labels(topic="inference-events").inc(3)
        >>> reg.get_sample_value("slicewatch_events_consumed_total", {"topic": "inference-events"})
        3.0
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.dead_letter_log = DeadLetterLog(60.0, lambda line: log.info("%s", line))
        self.consumed = Counter(
            "slicewatch_events_consumed",
            "Records read from Kafka, valid or not.",
            ["topic"],
            registry=registry,
        )
        self.written = Counter(
            "slicewatch_events_written",
            "Events that changed the store: new inference rows, applied or pending labels, new promotions.",
            ["topic"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "slicewatch_events_dead_lettered",
            "Records that failed decoding and went to the dead-letter topic and table.",
            ["topic", "error_class"],
            registry=registry,
        )
        self.duplicates = Counter(
            "slicewatch_events_duplicate",
            "Events already stored (redelivery, in-batch duplicates) or labels older than the stored one.",
            ["topic"],
            registry=registry,
        )
        self.batch_duration = Histogram(
            "slicewatch_batch_duration_seconds",
            "Time to decode and durably write one polled batch.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.lag = Gauge(
            "slicewatch_consumer_lag",
            "Records between the partition's high watermark and the consumer's position.",
            ["topic", "partition"],
            registry=registry,
        )
        self.last_write = Gauge(
            "slicewatch_last_write_timestamp_seconds",
            "Unix time of the last committed batch write.",
            registry=registry,
        )
        self.store_retries = Counter(
            "slicewatch_store_retries", "Batch writes retried because the database was unavailable.",
            registry=registry,
        )
        self.paused = Gauge(
            "slicewatch_consumer_paused",
            "1 while partitions are paused waiting for the database, else 0.",
            registry=registry,
        )
        self.store_stalls = Counter(
            "slicewatch_store_stalls",
            "Batch writes that ran longer than ingest.write_stall_s (the partitions were paused).",
            registry=registry,
        )
        self.rebalances = Counter(
            "slicewatch_rebalances", "Partition assignments handled by the consumer (the first one included).",
            registry=registry,
        )
        self.future_events = Counter(
            "slicewatch_future_events",
            "Events stamped more than ingest.max_future_s ahead of the wall clock (dead-lettered).",
            ["topic"],
            registry=registry,
        )
        self.pending_labels = Gauge(
            "slicewatch_pending_labels",
            "Labels waiting for their prediction (read every ingest maintenance round).",
            registry=registry,
        )
        self.kafka_errors = Counter(
            "slicewatch_kafka_errors",
            "Kafka client errors survived by the consumer loop, by error class.",
            ["error_class"],
            registry=registry,
        )

    def count_written(self, batch: Batch, outcome: BatchOutcome, kinds: Mapping[str, EventKind]) -> None:
        """Count a durably written batch: records consumed, events written, duplicates, new dead letters
        (``kinds``: the consumer's topic -> kind)."""
        for topic, n in batch.consumed.items():
            self.consumed.labels(topic=topic).inc(n)
        by_kind = {kind: topic for topic, kind in kinds.items()}
        result = outcome.result
        n_feedback = sum(1 for i in batch.items if i.kind == "feedback")
        written = {
            "inference": len(result.new_inferences),
            "feedback": n_feedback - outcome.stale_labels,
            "promotion": len(result.promotions),
        }
        dups = {
            "inference": outcome.duplicate_inferences,
            "feedback": outcome.stale_labels,
            "promotion": outcome.duplicate_promotions,
        }
        for kind, topic in by_kind.items():
            if written[kind] > 0:
                self.written.labels(topic=topic).inc(written[kind])
            if dups[kind] > 0:
                self.duplicates.labels(topic=topic).inc(dups[kind])
        for dl in outcome.new_dead_letters:
            self.dead_lettered.labels(topic=dl.topic, error_class=dl.error_class).inc()
            self.dead_letter_log.add(dl.topic, dl.error_class, time.monotonic())
