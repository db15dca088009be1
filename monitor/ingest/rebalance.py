"""Rebalances and the group membership, as the consumer sees them.

kafka-python 3 runs the rebalance callbacks on its IO thread, where they block heartbeats and may
not make blocking client calls (a commit there fails). :class:`RebalanceListener` therefore only
notes that the assignment moved (:class:`RebalanceFlag`) and, on a revoke, waits a little for the
write in flight; the consuming thread does the rest after ``poll`` returns (``IngestConsumer``):
it rewinds to :func:`first_unwritten_offsets` and runs the assignment hook
(:func:`run_assignment_hook`) once the membership is stable again. :class:`MembershipWatch` is the
rejoin watchdog: it tells when the membership has not been stable for too long.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from concurrent.futures import wait as wait_futures
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.structs import MemberState, TopicPartition

from monitor.ingest.batch import Batch
from monitor.ingest.writer import submit

log = logging.getLogger(__name__)


class RebalanceFlag:
    """Set by the rebalance callbacks (IO thread), taken by the consuming thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._moved = False

    def set(self) -> None:
        with self._lock:
            self._moved = True

    def take(self) -> bool:
        """Whether the assignment moved since the last ``take``; clears the flag."""
        with self._lock:
            moved, self._moved = self._moved, False
        return moved


class RebalanceListener(ConsumerRebalanceListener):
    """Rebalance callbacks (IO thread): note that the assignment moved in ``moved``. On a revoke,
    first wait for the write in flight (the head of ``queue``) so the partitions' next owner rebuilds
    its statistics with those rows. Waiting on a future is no client call; it is bounded by
    ``revoke_wait_s`` because heartbeats wait meanwhile."""

    def __init__(self, moved: RebalanceFlag, queue: deque[Batch], revoke_wait_s: float) -> None:
        self._moved = moved
        self._queue = queue
        self._revoke_wait_s = revoke_wait_s

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._moved.set()
        try:
            head: Batch | None = self._queue[0]
        except IndexError:  # the consuming thread emptied the queue meanwhile
            head = None
        if head is not None and head.future is not None and self._revoke_wait_s > 0:
            wait_futures([head.future], timeout=self._revoke_wait_s)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._moved.set()


def membership_stable(client: KafkaConsumer | None) -> bool:
    """True when the client's group membership is stable (or its state cannot be read)."""
    coordinator = getattr(client, "_coordinator", None)
    state = getattr(coordinator, "state", None)
    return state is None or state == MemberState.STABLE


class MembershipWatch:
    """The rejoin watchdog: measures how long the membership has not been stable."""

    def __init__(self) -> None:
        self._unstable_since: float | None = None  # monotonic

    def reset(self) -> None:
        """New clients: start measuring afresh."""
        self._unstable_since = None

    def stuck(self, client: KafkaConsumer | None, timeout_s: float) -> bool:
        """True once ``client`` has been out of a stable group membership for ``timeout_s``."""
        now = time.monotonic()
        if membership_stable(client):
            self._unstable_since = None
            return False
        if self._unstable_since is None:
            self._unstable_since = now
            return False
        return now - self._unstable_since > timeout_s


def first_unwritten_offsets(
    dropped: Iterable[Batch], records: Mapping[TopicPartition, Sequence[Any]]
) -> dict[TopicPartition, int]:
    """Per partition, the first offset of the records read but not written that a rebalance drops:
    those of the batches ``dropped`` and those the last poll returned (``records``)."""
    held: dict[TopicPartition, int] = {}
    for batch in dropped:
        for tp, start in batch.starts.items():
            held[tp] = min(start, held.get(tp, start))
    for tp, recs in records.items():
        if recs:
            held[tp] = min(recs[0].offset, held.get(tp, recs[0].offset))
    return held


def kept_and_rewound(
    queued: Sequence[Batch], records: Mapping[TopicPartition, Sequence[Any]], assignment: Set[TopicPartition]
) -> tuple[dict[TopicPartition, Sequence[Any]], dict[TopicPartition, int]]:
    """What a rebalance does with the records read but not written: the batches ``queued`` and
    what the poll that saw the rebalance returned (``records``).

    Returns ``(kept, rewind)``. ``kept``: that poll's records of partitions still assigned of which
    no queued batch holds a record. Nothing before them is unwritten (the consumer's position
    follows them and no earlier record of theirs waits), so they are written as they are instead of
    being read again; a first assignment's poll is all such records. ``rewind``: per partition, the
    first offset of everything else (:func:`first_unwritten_offsets`), which is dropped and read
    again from there.

    >>> from kafka import TopicPartition as TP
    >>> class R:
    ...     def __init__(self, offset): self.offset = offset
    >>> kept, rewind = kept_and_rewound([], {TP("t", 0): [R(5), R(6)], TP("t", 1): [R(9)]}, {TP("t", 0)})
    >>> sorted(kept), rewind
    ([TopicPartition(topic='t', partition=0)], {TopicPartition(topic='t', partition=1): 9})
    """
    waiting = first_unwritten_offsets(queued, {})
    kept = {tp: recs for tp, recs in records.items() if recs and tp in assignment and tp not in waiting}
    return kept, first_unwritten_offsets(queued, {tp: r for tp, r in records.items() if tp not in kept})


def run_assignment_hook(
    hook: Callable[[set[TopicPartition]], None], assigned: set[TopicPartition], stop_event: threading.Event | None
) -> None:
    """Run ``hook(assigned)`` (the monitor's takeover) on a daemon thread and wait for it, watching
    ``stop_event``: a takeover reading from a hung database must not keep SIGTERM waiting. A failing
    hook is logged."""
    future = submit(lambda: hook(assigned))
    while not future.done():
        wait_futures([future], timeout=0.2)
        if stop_event is not None and stop_event.is_set() and not future.done():
            log.warning("stop requested while the assignment hook runs; not waiting for it")
            return
    if future.exception() is not None:
        log.error("on_assigned hook failed (%s)", type(future.exception()).__name__)
