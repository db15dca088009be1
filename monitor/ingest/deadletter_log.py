"""Dead letters in the log: one INFO line per minute with the counts by topic and reason, never a
payload (the dead-letter topic and table hold those). Time is passed in.

>>> lines = []
>>> d = DeadLetterLog(every_s=60.0, emit=lines.append)
>>> d.add("inference-events", "invalid_json", 0.0); d.add("inference-events", "invalid_json", 10.0)
>>> d.add("feedback", "missing_label", 30.0); lines
[]
>>> d.add("inference-events", "oversized", 61.0); print(lines[0])
dead letters in the last 61 s: feedback/missing_label=1 inference-events/invalid_json=2 inference-events/oversized=1
>>> d.flush(200.0); len(lines)
1
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class DeadLetterLog:
    def __init__(self, every_s: float, emit: Callable[[str], None]) -> None:
        self.every_s, self.emit = every_s, emit
        self._counts: Counter[tuple[str, str]] = Counter()
        self._since: float | None = None

    def add(self, topic: str, error_class: str, now: float) -> None:
        """Count one dead letter at ``now`` (monotonic seconds); logs the minute's counts when due."""
        if self._since is None:
            self._since = now
        self._counts[(topic, error_class)] += 1
        self.flush(now, only_if_due=True)

    def flush(self, now: float, only_if_due: bool = False) -> None:
        """Log what was counted (when ``every_s`` passed, with ``only_if_due``) and start again."""
        if not self._counts or self._since is None or (only_if_due and now - self._since < self.every_s):
            return
        parts = " ".join(f"{t}/{c}={n}" for (t, c), n in sorted(self._counts.items()))
        self.emit(f"dead letters in the last {now - self._since:.0f} s: {parts}")
        self._counts.clear()
        self._since = None
