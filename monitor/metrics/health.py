"""Liveness and readiness: what ``/healthz`` and ``/readyz`` answer.

``/healthz`` says the process serves HTTP (a hung interpreter does not answer). ``/readyz`` asks
each readiness check, in order, for a problem (a short sentence, never payload data) and is ready
when none has one. Checks are injected by the composition root: the consumer's group membership,
paused partitions and stalled writes (:meth:`~monitor.ingest.consumer.IngestConsumer.readiness`) and
a database ping. A check that raises counts as a problem (its exception type is named); the ping's
answer is cached for ``ttl_s`` so a probe every second costs one query per ``ttl_s``.

>>> h = Health([lambda: None, lambda: "consumer group membership not stable"])
>>> h.ready()
(False, ['consumer group membership not stable'])
>>> Health([]).ready()
(True, [])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

Check = Callable[[], str | None]


class Health:
    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = list(checks)

    def ready(self) -> tuple[bool, list[str]]:
        problems = []
        for check in self.checks:
            try:
                problem = check()
            except Exception as e:  # a failing check is a problem, never a crash of the server
                problem = f"readiness check failed ({type(e).__name__})"
            if problem:
                problems.append(problem)
        return not problems, problems


class CachedCheck:
    """A check whose answer is reused for ``ttl_s`` seconds (monotonic ``clock``, passed in for tests).

    >>> calls = []
    >>> now = [0.0]
    >>> c = CachedCheck(lambda: calls.append(1) or None, ttl_s=5.0, clock=lambda: now[0])
    >>> c(), c(), len(calls)
    (None, None, 1)
    >>> now[0] = 6.0
    >>> c(), len(calls)
    (None, 2)
    """

    def __init__(self, check: Check, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.check, self.ttl_s, self.clock = check, ttl_s, clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._answer: str | None = None

    def __call__(self) -> str | None:
        with self._lock:
            now = self.clock()
            if self._at is None or now - self._at >= self.ttl_s:
                try:
                    self._answer = self.check()
                except Exception as e:
                    self._answer = f"readiness check failed ({type(e).__name__})"
                self._at = now
            return self._answer
