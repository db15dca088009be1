"""Dead-letter re-drive: send stored dead letters whose cause was fixed back to their source topics.

:func:`plan_redrive` (pure) decides, with the decoder this version runs, which dead letters would now
be accepted; the rest keep the reason they would fail with again (or why they cannot be sent: the
value was erased, or cut at ``ingest.dead_letter_value_cap_bytes`` when it was stored).
:func:`send_redrive` produces the ready ones to their source topic with their original key and a
``slicewatch_redrive_of`` header, and waits for the acks; the caller then marks them re-driven.

A re-driven event lands once: the consumer's writes are idempotent on ``request_id`` (and on
``(model_id, promoted_at)`` for promotions), so a re-drive interrupted between the send and the
mark, and sent again, stores nothing twice; a dead letter marked re-driven is not sent again unless
asked for (``--again``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer

from monitor.events import EventKind
from monitor.ingest.decoder import DecodeFailure, decode_record
from monitor.records import StoredDeadLetter


@dataclass
class RedrivePlan:
    """The dead letters that decode now, and why each other one does not (id -> reason)."""

    ready: list[StoredDeadLetter] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def plan_redrive(
    letters: Sequence[StoredDeadLetter], kinds: Mapping[str, EventKind], max_bytes: int
) -> RedrivePlan:
    """Sort ``letters`` into those the decoder accepts now and those it does not (with the reason)."""
    plan = RedrivePlan()
    for letter in letters:
        r = letter.record
        if r.value is None:
            plan.skipped[letter.id] = "the value was erased"
        elif r.value_size > len(r.value):
            plan.skipped[letter.id] = f"the value was cut to {len(r.value)} of {r.value_size} bytes when stored"
        elif r.topic not in kinds:
            plan.skipped[letter.id] = f"source topic {r.topic} is not one this monitor consumes"
        else:
            try:
                decode_record(kinds[r.topic], r.key, r.value, max_bytes)
            except DecodeFailure as e:
                plan.skipped[letter.id] = f"still rejected: {e}"
            else:
                plan.ready.append(letter)
    return plan


def send_redrive(producer: KafkaProducer, letters: Sequence[StoredDeadLetter], timeout_s: float = 30.0) -> None:
    """Produce ``letters`` to their source topics and wait for every ack (raises a KafkaError if
    any send failed: then nothing is marked and a second run sends them again, harmlessly)."""
    futures: list[Any] = []
    for letter in letters:
        r = letter.record
        origin = f"{r.topic}/{r.partition}/{r.offset}".encode()
        futures.append(producer.send(r.topic, value=r.value, key=r.key, headers=[("slicewatch_redrive_of", origin)]))
    producer.flush(timeout=timeout_s)
    for f in futures:
        f.get(timeout=timeout_s)
