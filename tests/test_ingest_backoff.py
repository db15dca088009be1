"""Backoff is pure: capped exponential delays, reset after success."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.ingest.backoff import Backoff


def test_sequence_is_capped_exponential() -> None:
    b = Backoff(initial=0.1, maximum=1.0, multiplier=3.0)
    assert [round(b.next_delay(), 6) for _ in range(5)] == [0.1, 0.3, 0.9, 1.0, 1.0]
    assert b.attempts == 5
    b.reset()
    assert b.attempts == 0 and b.next_delay() == 0.1


@given(
    initial=st.floats(0.001, 10), factor=st.floats(1, 100), multiplier=st.floats(1, 10), n=st.integers(1, 80)
)
def test_delays_are_monotone_and_bounded(initial: float, factor: float, multiplier: float, n: int) -> None:
    b = Backoff(initial, initial * factor, multiplier)
    delays = [b.next_delay() for _ in range(n)]
    assert delays[0] == pytest.approx(initial)
    assert all(initial <= d <= initial * factor for d in delays)
    assert all(a <= c for a, c in itertools.pairwise(delays))


@pytest.mark.parametrize("args", [(0, 1, 2), (2, 1, 2), (1, 2, 0.5)])
def test_rejects_bad_arguments(args: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(*args)
