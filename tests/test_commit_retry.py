"""CommitRetry: what a consumer commits again after a commit that failed mid-rebalance."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka.structs import TopicPartition

from monitor.ingest.commit_retry import CommitRetry

T0, T1, T2 = (TopicPartition("t", p) for p in range(3))


def test_keeps_the_furthest_failed_offset_until_a_commit_reaches_it() -> None:
    r = CommitRetry()
    r.failed({T0: 100})
    r.failed({T0: 90, T1: 5})  # an older batch's failed commit does not move it back
    assert r.pending == {T0: 100, T1: 5}
    r.succeeded({T0: 99})  # short of it: still pending
    assert r.pending == {T0: 100, T1: 5}
    r.succeeded({T0: 130, T2: 7})
    assert r.pending == {T1: 5}


def test_due_forgets_partitions_not_held_and_never_moves_a_commit_back() -> None:
    r = CommitRetry()
    r.failed({T0: 100, T1: 50, T2: 10})
    committed = {T0: 80, T1: 60}
    assert r.due({T0, T1}, committed.get) == {T0: 100}  # T2 moved away; T1 was committed further
    assert r.pending == {T0: 100}
    assert r.due({T0}, lambda tp: None) == {T0: 100}  # never committed: due


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1000), st.booleans()), max_size=40),
       st.sets(st.integers(0, 2)), st.dictionaries(st.integers(0, 2), st.integers(0, 1000)))
def test_due_offsets_are_failed_ones_past_the_committed(ops: list[tuple[int, int, bool]], held: set[int],
                                                       committed: dict[int, int]) -> None:
    """Against a plain replay of the history: a partition is due with the furthest failed offset
    not yet reached by a later successful commit, if it is held and past its committed offset."""
    r = CommitRetry()
    want: dict[int, int] = {}
    for p, offset, ok in ops:
        tp = TopicPartition("t", p)
        if ok:
            r.succeeded({tp: offset})
            if p in want and want[p] <= offset:
                del want[p]
        else:
            r.failed({tp: offset})
            want[p] = max(want.get(p, -1), offset)
    due = r.due({TopicPartition("t", p) for p in held}, lambda tp: committed.get(tp.partition))
    expected = {p: o for p, o in want.items() if p in held and (p not in committed or committed[p] < o)}
    assert {tp.partition: o for tp, o in due.items()} == expected
    assert {tp.partition for tp in r.pending} == set(expected)
