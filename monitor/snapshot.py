"""The plain-data output of one evaluation: what alerting, metrics, the demo view and replay read.

The statistics engine (``monitor.stats``) produces a :class:`Snapshot` from its windowed state at
``evaluate(now)``; nothing here does I/O. Times are float seconds since the Unix epoch (UTC).

``slice`` is ``"all"`` for the aggregate of a model, or ``"key=value"`` for a protected slice
(``"domain=regulatory"``); only declared slice values ever appear, so the value is safe as a
Prometheus label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Literal

AGGREGATE = "all"
_MODEL_ID = attrgetter("model_id")

Signal = Literal["input", "output", "quality", "label_coverage", "cohort"]


def slice_label(key: str, value: str) -> str:
    return f"{key}={value}"


@dataclass(slots=True)
class SignalValue:
    """One statistic of one signal for one (model, slice, feature) in the current window.

    ``feature`` names the input feature for input drift, ``"output"``/``"confidence"`` for output
    drift, ``"was_correct"``/``"score"`` for quality, ``"labels"`` (or ``"labels:<source>"``) for label
    coverage, and the feature compared between cohorts for cohort balance.
    ``p_value`` is the raw p-value where the statistic has one; ``p_value_adjusted`` is after the
    Benjamini-Hochberg (or Bonferroni) correction across the features x slices tested in this
    evaluation. ``sufficient`` is False when ``sample_count`` is below the minimum for a verdict.
    ``baseline`` is the reference value the statistic is compared with where that is meaningful
    (the release-gate bar for quality, the reference p99 for a tail shift). ``window_s`` is the
    length of the event-time window the value is over (None: the snapshot's main window); the
    shorter windows carry only statistics with a p-value, tested and corrected with the rest.

    Treat it as immutable once the evaluation that made it returned (:func:`dataclasses.replace`
    for a changed copy). It is not a frozen dataclass because an evaluation makes thousands and a
    frozen one costs six times as much to construct; the engine sets ``p_value_adjusted`` on the
    values it has just made, before anyone else sees them.
    """

    model_id: str
    slice: str
    signal: Signal
    feature: str
    statistic: str
    value: float
    sample_count: int
    sufficient: bool = True
    p_value: float | None = None
    p_value_adjusted: float | None = None
    baseline: float | None = None
    reference_id: str | None = None
    reference_hash: str | None = None
    window_s: float | None = None


@dataclass(frozen=True, slots=True)
class LineageChange:
    """A lineage value (or the label source's judge_model/rubric_version) that changed in the window."""

    model_id: str
    field: str
    from_value: str | None
    to_value: str
    first_seen: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one evaluation found, for every model the engine holds state for."""

    evaluated_at: float
    window_start: float
    window_end: float
    values: tuple[SignalValue, ...] = ()
    lineage_changes: tuple[LineageChange, ...] = ()
    late_events_total: int = 0
    models: tuple[str, ...] = field(default=())
    unreferenced_events_total: int = 0  # events of models without a profile, dropped (buffer cap)

    def for_model(self, model_id: str) -> tuple[SignalValue, ...]:
        return tuple(v for v in self.values if v.model_id == model_id)

    def value_models(self) -> set[str]:
        """The model ids of :attr:`values` (one pass; a cohort member may have values without being
        one of :attr:`models`)."""
        return set(map(_MODEL_ID, self.values))
