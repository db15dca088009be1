"""What a rebalance keeps of the records read but not written (``kept_and_rewound``): a property
test against the rule's plain statement, on random queues, polls and assignments."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st
from kafka.structs import TopicPartition

from monitor.ingest.batch import Batch
from monitor.ingest.rebalance import kept_and_rewound

PARTITIONS = [TopicPartition("t", p) for p in range(4)]


@dataclass
class Rec:
    offset: int


starts = st.dictionaries(st.sampled_from(PARTITIONS), st.integers(0, 100), max_size=4)
polls = st.dictionaries(st.sampled_from(PARTITIONS), st.lists(st.integers(0, 200), min_size=0, max_size=5), max_size=4)


@given(queued=st.lists(starts, max_size=3), poll=polls, assigned=st.sets(st.sampled_from(PARTITIONS)))
def test_a_poll_is_kept_only_where_nothing_earlier_waits(
    queued: list[dict[TopicPartition, int]], poll: dict[TopicPartition, list[int]], assigned: set[TopicPartition]
) -> None:
    batches = [Batch(starts=s) for s in queued]
    records = {tp: [Rec(o) for o in sorted(offsets)] for tp, offsets in poll.items()}
    kept, rewind = kept_and_rewound(batches, records, assigned)
    waiting = {tp for s in queued for tp in s}
    for tp, recs in records.items():
        if recs and tp in assigned and tp not in waiting:
            assert kept[tp] is recs  # kept whole, as the poll returned them
            assert tp not in rewind
        else:
            assert tp not in kept
    for tp in PARTITIONS:  # everything not kept is read again from its first offset
        firsts = [s[tp] for s in queued if tp in s] + [r[0].offset for t, r in records.items()
                                                      if t == tp and r and t not in kept]
        assert rewind.get(tp) == (min(firsts) if firsts else None)


def test_a_first_assignment_keeps_its_whole_poll() -> None:
    records = {tp: [Rec(0), Rec(1)] for tp in PARTITIONS}
    kept, rewind = kept_and_rewound([], records, set(PARTITIONS))
    assert kept == records and rewind == {}
