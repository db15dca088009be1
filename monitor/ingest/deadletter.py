"""The dead-letter side of the consumer: a record the decoder rejected becomes a DeadLetterRecord
(stored in ``dead_letter``) and a message on ``<topic><suffix>`` with the raw value, truncated.

Headers: ``stage``, ``error_class``, ``source_topic``, ``source_partition``, ``source_offset``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer

from monitor.records import DeadLetterRecord


def dead_letter_record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    stage: str,
    error_class: str,
    reason: str,
    received_at: float,
    value_cap_bytes: int,
) -> DeadLetterRecord:
    """Build the record; ``value`` is cut to ``value_cap_bytes`` (the size is kept separately).

    Examples:
        >>> r = dead_letter_record("t", 0, 5, None, b"x" * 10, "size", "oversized", "too big", 0.0, 4)
        >>> r.value, r.value_size
        (b'xxxx', 10)
    """
    return DeadLetterRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value[:value_cap_bytes] if value is not None else None,
        value_size=len(value) if value is not None else 0,
        stage=stage,
        error_class=error_class,
        reason=reason,
        received_at=received_at,
    )


def headers_of(record: DeadLetterRecord) -> list[tuple[str, bytes]]:
    return [
        ("stage", record.stage.encode()),
        ("error_class", record.error_class.encode()),
        ("source_topic", record.topic.encode()),
        ("source_partition", str(record.partition).encode()),
        ("source_offset", str(record.offset).encode()),
    ]


class DeadLetterPublisher:
    """Publishes dead letters to ``<source topic><suffix>``; ``publish`` waits for the acks."""

    def __init__(self, producer: KafkaProducer, suffix: str = ".dlq") -> None:
        self._producer = producer
        self.suffix = suffix

    def topic_for(self, source_topic: str) -> str:
        return f"{source_topic}{self.suffix}"

    def publish(self, records: Sequence[DeadLetterRecord], timeout_s: float = 10.0) -> None:
        """Send and wait; raises a KafkaError if any send fails (the caller retries)."""
        futures: list[Any] = [
            self._producer.send(
                self.topic_for(r.topic), value=r.value, key=r.key, headers=headers_of(r)
            )
            for r in records
        ]
        self._producer.flush(timeout=timeout_s)
        for f in futures:
            f.get(timeout=timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.close(timeout=timeout_s)
