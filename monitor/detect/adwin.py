"""Abrupt drops of accuracy on a correctness (0/1) stream, with river's ADWIN.

ADWIN keeps an adaptive window and cuts it when two sub-windows differ; we remember the last cut
where the mean *fell* (``last_drop_at``, the ``served_at`` of the label that triggered it). Order
matters: feed labels in ``served_at`` order.

Examples
--------
>>> d = CorrectnessDrop()
>>> for i in range(2000):
...     d.update(i % 10 != 0, float(i))        # 90% correct
>>> for i in range(2000, 3000):
...     d.update(i % 2 == 0, float(i))         # 50% correct
>>> d.last_drop_at is not None and d.last_drop_at >= 2000
True
>>> d.drop_within(2000.0, 3000.0)
True
"""

from __future__ import annotations

from collections.abc import Sequence

from river.drift import ADWIN


class CorrectnessDrop:
    def __init__(self, delta: float = 0.002):
        if not 0.0 < delta < 1.0:
            raise ValueError("delta must be in (0, 1)")
        self.delta = delta
        self._adwin = ADWIN(delta=delta)
        self._last_drop_at: float | None = None
        self._n = 0
        # river's ADWIN window: the values since it last started afresh (the update after a
        # detection starts a new window), so its mean before an update is ours
        self._sum = 0.0
        self._width = 0

    def update(self, correct: bool, served_at: float) -> None:
        x = 1.0 if correct else 0.0
        adwin = self._adwin
        if adwin.drift_detected:  # ADWIN.update starts a new window with this value
            self._sum, self._width = 0.0, 0
        adwin.update(x)
        self._n += 1
        if adwin.drift_detected:
            before = self._sum / self._width if self._width else x
            if adwin.estimation < before:
                self._last_drop_at = served_at
            self._width = int(adwin.width)
            self._sum = adwin.estimation * self._width
        else:
            self._sum += x
            self._width += 1

    def update_many(self, correct: Sequence[bool], served_at: Sequence[float]) -> None:
        """Same as calling :meth:`update` for each pair in order (one call per batch).

        It drives river's ADWIN through its window object (``ADWIN._helper``, river's Rust
        ``AdaptiveWindowing``) as ``ADWIN.update`` does: a window that detected a drift is replaced
        by a fresh one at the next value. river's wrapper cost 4-5x the window's own update per
        value (``benchmarks/README.md``). Where that object is not there (another river version),
        the public :meth:`ADWIN.update` is called instead; a test checks both give the same state.
        """
        adwin = self._adwin
        helper = getattr(adwin, "_helper", None)
        if helper is None or not hasattr(adwin, "_drift_detected"):
            self._update_public(correct, served_at)
            return
        total, width = self._sum, self._width
        detected = bool(adwin._drift_detected)
        for c, t in zip(correct, served_at, strict=True):
            x = 1.0 if c else 0.0
            if detected:  # as ADWIN.update: the window that detected starts afresh
                adwin._reset()
                helper = adwin._helper
                total, width = 0.0, 0
            detected = helper.update(x)
            if detected:
                w = helper.get_width()
                estimation = helper.get_total() / w if w else 0.0
                if estimation < (total / width if width else x):
                    self._last_drop_at = t
                width = int(w)
                total = estimation * width
            else:
                total += x
                width += 1
        adwin._drift_detected = detected
        self._sum, self._width = total, width
        self._n += len(correct)

    def _update_public(self, correct: Sequence[bool], served_at: Sequence[float]) -> None:
        """:meth:`update_many` through river's public ``ADWIN`` API only."""
        adwin = self._adwin
        update = adwin.update
        total, width = self._sum, self._width
        for c, t in zip(correct, served_at, strict=True):
            x = 1.0 if c else 0.0
            if adwin.drift_detected:  # ADWIN.update starts a new window with this value
                total, width = 0.0, 0
            update(x)
            if adwin.drift_detected:
                if adwin.estimation < (total / width if width else x):
                    self._last_drop_at = t
                width = int(adwin.width)
                total = adwin.estimation * width
            else:
                total += x
                width += 1
        self._sum, self._width = total, width
        self._n += len(correct)

    @property
    def estimate(self) -> float:
        """ADWIN's current mean of the correctness stream (its adaptive window)."""
        return float(self._adwin.estimation)

    @property
    def n_seen(self) -> int:
        return self._n

    @property
    def last_drop_at(self) -> float | None:
        return self._last_drop_at

    def drop_within(self, start: float, end: float) -> bool:
        return self._last_drop_at is not None and start <= self._last_drop_at < end
