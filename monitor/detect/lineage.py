"""Remember each model's last lineage values and report the changes seen within a lookback.

Lineage fields come from inference events (``prompt_template_sha``, ``preprocessing_ref``, ...) and
from labels (``judge_model``, ``rubric_version``). A change is a new non-null value that differs from
the previous non-null value of the same field; the first value ever seen is not a change. Feed
values in time order. The list of changes per model is bounded (``max_changes``).

Examples
--------
>>> t = LineageTracker(lookback_s=100.0)
>>> t.update("m", "embedding_model", ["e1", "e1", "e2"], [1.0, 2.0, 3.0])
>>> [(c.from_value, c.to_value, c.first_seen) for c in t.changes(50.0)]
[('e1', 'e2', 3.0)]
>>> t.changes(500.0)
[]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from monitor.snapshot import LineageChange


class LineageTracker:
    def __init__(self, lookback_s: float = 3600.0, max_changes: int = 64):
        if lookback_s <= 0 or max_changes < 1:
            raise ValueError("lookback_s > 0 and max_changes >= 1 required")
        self.lookback_s = lookback_s
        self.max_changes = max_changes
        self._last: dict[tuple[str, str], str] = {}
        self._changes: dict[str, deque[LineageChange]] = {}

    def update(self, model_id: str, field: str, values: Sequence[str | None], times: Sequence[float]) -> None:
        key = (model_id, field)
        last = self._last.get(key)
        present = {v for v in values if v is not None}
        if not present or present == {last}:
            return
        for v, t in zip(values, times, strict=True):
            if v is None or v == last:
                continue
            if last is not None:
                q = self._changes.setdefault(model_id, deque(maxlen=self.max_changes))
                q.append(LineageChange(model_id, field, last, v, t))
            last = v
        if last is not None:
            self._last[key] = last

    def changes(self, now: float, model_id: str | None = None) -> list[LineageChange]:
        models = [model_id] if model_id is not None else sorted(self._changes)
        return [c for m in models for c in self._changes.get(m, ()) if c.first_seen >= now - self.lookback_s]

    def last_value(self, model_id: str, field: str) -> str | None:
        return self._last.get((model_id, field))

    def state_of(self, model_id: str) -> tuple[dict[str, str], list[LineageChange]]:
        """The model's last value per field and its remembered changes (for a checkpoint)."""
        last = {f: v for (m, f), v in self._last.items() if m == model_id}
        return last, list(self._changes.get(model_id, ()))

    def load_state(self, model_id: str, last: dict[str, str], changes: Sequence[LineageChange]) -> None:
        """Replace the model's state by one :meth:`state_of` returned."""
        self.drop_models([model_id])
        self._last.update({(model_id, f): v for f, v in last.items()})
        if changes:
            self._changes[model_id] = deque(changes, maxlen=self.max_changes)

    def drop_models(self, model_ids: Sequence[str]) -> None:
        drop = set(model_ids)
        self._last = {k: v for k, v in self._last.items() if k[0] not in drop}
        for m in drop:
            self._changes.pop(m, None)
