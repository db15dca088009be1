"""Capped exponential backoff: pure, no clock and no sleeping (the caller waits)."""

from __future__ import annotations


class Backoff:
    """Delays ``initial, initial*multiplier, ...`` capped at ``maximum``; ``reset()`` after a success.

    Examples:
        >>> b = Backoff(initial=0.5, maximum=3.0, multiplier=2.0)
        >>> [b.next_delay() for _ in range(5)]
        [0.5, 1.0, 2.0, 3.0, 3.0]
        >>> b.attempts
        5
        >>> b.reset(); b.next_delay()
        0.5
    """

    def __init__(self, initial: float, maximum: float, multiplier: float = 2.0) -> None:
        if initial <= 0:
            raise ValueError("initial must be > 0")
        if maximum < initial:
            raise ValueError("maximum must be >= initial")
        if multiplier < 1:
            raise ValueError("multiplier must be >= 1")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """Delays handed out since the last reset."""
        return self._attempts

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.multiplier**self._attempts)
        self._attempts += 1
        return delay

    def reset(self) -> None:
        self._attempts = 0
