"""Offsets whose rows are durably written but whose commit failed, to be committed again.

A commit fails when it races a rebalance (``RebalanceInProgressError``: the batch in flight at a
rebalance is completed while the group is changing generation). Its rows are in the database, and
the next batch's commit covers the partition, but when the traffic stops there is no next batch. The
committed offset then stays short of the end, the consumer-lag metric never returns to zero, and a
restart re-reads the tail. So the consumer keeps these offsets here and, once its queue is empty
and the group is stable, commits again those of partitions it still holds. It skips any partition
whose committed offset already reached the offset: while we did not hold the partition, another
member may have committed further, and moving it backwards would only cause re-reads.

Pure bookkeeping: the consumer passes in the assignment and a lookup of the committed offset.

>>> from kafka.structs import TopicPartition as TP
>>> r = CommitRetry()
>>> r.failed({TP("t", 0): 120, TP("t", 1): 80})
>>> r.due({TP("t", 0), TP("t", 1)}, lambda tp: 90)  # t/1 is already committed further
{TopicPartition(topic='t', partition=0): 120}
>>> r.succeeded({TP("t", 0): 120})
>>> r.pending
{}
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from kafka.structs import TopicPartition


class CommitRetry:
    def __init__(self) -> None:
        self._offsets: dict[TopicPartition, int] = {}

    @property
    def pending(self) -> dict[TopicPartition, int]:
        """Partition -> the next offset to commit (everything before it is written)."""
        return dict(self._offsets)

    def failed(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A commit of ``offsets`` failed: keep the furthest offset per partition."""
        for tp, offset in offsets.items():
            if offset > self._offsets.get(tp, -1):
                self._offsets[tp] = offset

    def succeeded(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A commit of ``offsets`` went through: a kept offset it reached is done."""
        for tp, offset in offsets.items():
            if self._offsets.get(tp, offset + 1) <= offset:
                del self._offsets[tp]

    def due(
        self, assignment: Collection[TopicPartition], committed: Callable[[TopicPartition], int | None]
    ) -> dict[TopicPartition, int]:
        """The offsets to commit now. Partitions no longer held are forgotten: their new owner
        commits them. So are those whose committed offset (``committed``) already reached the offset."""
        out = {}
        for tp, offset in list(self._offsets.items()):
            if tp not in assignment:
                del self._offsets[tp]
                continue
            done = committed(tp)
            if done is not None and done >= offset:
                del self._offsets[tp]
                continue
            out[tp] = offset
        return out
