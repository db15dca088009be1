"""Plain inputs of :meth:`monitor.store.repository.Repository.write_batch` besides the events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event was read from (kept on the row for audits and redelivery checks)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A message that could not be decoded. ``value`` is already truncated to the configured cap;
    ``reason`` is human text that never contains payload content."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    value_size: int
    stage: str
    error_class: str
    reason: str
    received_at: float
