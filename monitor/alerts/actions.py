"""What a drift alert asks for: ``rollback``, ``retrain`` or ``investigate``, decided once at onset.

* ``rollback``: a quality (or protected-slice) regression whose onset falls inside the promotion
  watch window (``promoted_at <= onset <= promoted_at + promotion_watch_s``) of a model that names a
  ``rollback_target``, and the target's quality on that slice was better than the model's now.
* ``retrain``: input, output or quality drift otherwise.
* ``investigate``: label coverage and cohort balance alerts, and added to any alert when a lineage
  value changed within ``lineage_lookback_s`` before the onset; such changes are the
  ``suspected_causes`` of every alert.

Pure: ``target_quality`` is injected (the composition root reads ``inference_log`` through it).

Examples
--------
>>> from datetime import UTC, datetime
>>> from monitor.events import PromotionEvent
>>> promotion = PromotionEvent(schema_version=1, model_id="m2", rollback_target="m1",
...     promoted_at=datetime.fromtimestamp(900.0, UTC))
>>> d = decide_action(model_id="m2", slice="domain=tax", signal="slice", onset=1_000.0,
...     promotion=promotion, lineage_changes=(), current_quality=0.80,
...     target_quality=lambda model, sl, since, until: 0.93, promotion_watch_s=3600,
...     lineage_lookback_s=3600)
>>> d.action, d.rollback_target
('rollback', 'm1')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from monitor.events import PromotionEvent
from monitor.snapshot import LineageChange

TargetQuality = Callable[[str, str, float, float], "float | None"]
"""``(model_id, slice, since, until) -> accuracy`` of ``model_id`` on ``slice`` in that time range."""

QUALITY_SIGNALS = frozenset({"quality", "slice"})
RETRAIN_SIGNALS = frozenset({"input", "output", "quality", "slice"})


@dataclass(frozen=True, slots=True)
class ActionDecision:
    action: str
    actions: tuple[str, ...]
    rollback_target: str | None
    suspected_causes: tuple[LineageChange, ...]


def suspected_causes(
    model_id: str, onset: float, changes: Iterable[LineageChange], lookback_s: float
) -> tuple[LineageChange, ...]:
    """Lineage changes of ``model_id`` first seen within ``lookback_s`` before ``onset`` (inclusive),
    each once, oldest first."""
    found = {c for c in changes if c.model_id == model_id and onset - lookback_s <= c.first_seen <= onset}
    return tuple(sorted(found, key=lambda c: (c.first_seen, c.field)))


def decide_action(
    *,
    model_id: str,
    slice: str,
    signal: str,
    onset: float,
    promotion: PromotionEvent | None,
    lineage_changes: Iterable[LineageChange],
    current_quality: float | None,
    target_quality: TargetQuality | None,
    promotion_watch_s: float,
    lineage_lookback_s: float,
) -> ActionDecision:
    causes = suspected_causes(model_id, onset, lineage_changes, lineage_lookback_s)
    actions: list[str] = []
    target: str | None = None
    if (
        signal in QUALITY_SIGNALS
        and promotion is not None
        and promotion.rollback_target
        and promotion.promoted_at.timestamp() <= onset <= promotion.promoted_at.timestamp() + promotion_watch_s
        and target_quality is not None
        and current_quality is not None
    ):
        since = promotion.promoted_at.timestamp() - promotion_watch_s
        target_value = target_quality(promotion.rollback_target, slice, since, onset)
        if target_value is not None and target_value > current_quality:
            actions.append("rollback")
            target = promotion.rollback_target
    if not actions and signal in RETRAIN_SIGNALS:
        actions.append("retrain")
    if causes or not actions:
        actions.append("investigate")
    return ActionDecision(actions[0], tuple(actions), target, causes)
