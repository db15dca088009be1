"""One polled batch and its decoding: every record becomes an :class:`Item` (the decoded event with
its raw bytes) or a dead letter, and the batch keeps the offsets to commit once it is written.

Decoding never raises: a :class:`~monitor.ingest.decoder.DecodeFailure`, or any exception from the
decoder, turns the record into a dead letter.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, cast

from kafka.structs import TopicPartition
from prometheus_client import Counter as PromCounter

from monitor.events import EventKind, FeedbackEvent, InferenceEvent, PromotionEvent
from monitor.ingest.deadletter import dead_letter_record
from monitor.ingest.decoder import FUTURE_EVENT, check_not_future
from monitor.records import BatchOutcome, DeadLetterRecord, Origin

# (kind, key, value, max_bytes) -> event, raising DecodeFailure; see monitor.ingest.decoder.decode_record
Decoder = Callable[[EventKind, bytes | None, bytes | None, int], InferenceEvent | FeedbackEvent | PromotionEvent]


@dataclass(slots=True)
class Item:
    """A decoded record, kept with its raw bytes so a store rejection can still dead-letter it."""

    kind: EventKind
    event: InferenceEvent | FeedbackEvent | PromotionEvent
    origin: Origin
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class Batch:
    """The records of one poll, from decoding until their offsets are committed."""

    items: list[Item] = field(default_factory=list)
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # next offset per partition
    starts: dict[TopicPartition, int] = field(default_factory=dict)  # first offset per partition
    consumed: Counter[str] = field(default_factory=Counter)
    started: float = 0.0  # monotonic, for the batch-duration histogram
    future: Future[BatchOutcome] | None = None  # the write in flight on the writer thread
    write_started: float = 0.0  # monotonic, when ``future`` was submitted
    outcome: BatchOutcome | None = None  # set once durably written
    # the inference items as the store prepared them ahead of the write (None: made at the write)
    inferences: Sequence[tuple[InferenceEvent, Origin | None]] | None = None
    published: bool = False
    notified: bool = False


def inferences_of(batch: Batch) -> list[tuple[InferenceEvent, Origin | None]]:
    """The batch's inference events with where each was read from, in order."""
    return [(cast(InferenceEvent, i.event), i.origin) for i in batch.items if i.kind == "inference"]


def records_in(batches: Iterable[Batch]) -> int:
    """Records read from Kafka into ``batches`` (decoded, dead-lettered or not ours)."""
    return sum(sum(b.consumed.values()) for b in batches)


def decode_poll(
    records: Mapping[TopicPartition, Sequence[Any]],
    *,
    kinds: Mapping[str, EventKind],
    decode: Decoder,
    clock: Callable[[], float],
    max_event_bytes: int,
    max_future_s: float | None,
    dead_letter_value_cap_bytes: int,
    future_events: PromCounter,
) -> Batch:
    """Decode what one ``poll`` returned into a batch. Records of topics not in ``kinds`` (a pattern
    subscription) are counted and skipped; events stamped more than ``max_future_s`` ahead of
    ``clock`` are dead-lettered and counted in ``future_events``."""
    batch = Batch(started=time.monotonic())
    now = clock()
    for tp, recs in records.items():
        kind = kinds.get(tp.topic)
        for rec in recs:
            batch.consumed[tp.topic] += 1
            if kind is None:  # not ours (a pattern subscription); skip without decoding
                continue
            try:
                event = decode(kind, rec.key, rec.value, max_event_bytes)
                if max_future_s is not None:
                    check_not_future(event, now, max_future_s)
            except Exception as failure:  # DecodeFailure, or a decoder bug: dead-letter, never crash
                batch.dead_letters.append(
                    dead_letter_record(
                        rec.topic, rec.partition, rec.offset, rec.key, rec.value,
                        str(getattr(failure, "stage", "decode")),
                        str(getattr(failure, "error_class", "decoder_error")),
                        str(getattr(failure, "reason", f"decoder raised {type(failure).__name__}")),
                        now, dead_letter_value_cap_bytes,
                    )
                )
                if getattr(failure, "error_class", None) == FUTURE_EVENT:
                    future_events.labels(topic=tp.topic).inc()
                continue
            batch.items.append(Item(kind, event, Origin(rec.topic, rec.partition, rec.offset), rec.key, rec.value))
        if recs:
            batch.starts[tp] = recs[0].offset
            batch.offsets[tp] = recs[-1].offset + 1
    return batch
