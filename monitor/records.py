"""Plain records passed between the edges: what the consumer hands the store (an event's
:class:`Origin`, :class:`DeadLetterRecord`) and what the store hands back after a batch is durably
written (:class:`WriteResult`, :class:`BatchOutcome`).

The store writes idempotently, so only *new* facts flow on: an inference row that was not in the
table before, and a label whose value actually changed (``old`` is the label it replaced, so the
statistics retract it and nothing is double-counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.events import InferenceEvent, PromotionEvent


@dataclass(frozen=True, slots=True)
class Label:
    was_correct: bool | None
    score: float | None
    source: str | None
    observed_at: float
    judge_model: str | None = None
    rubric_version: str | None = None
    failure_cluster: str | None = None


@dataclass(frozen=True, slots=True)
class QualityBar:
    """Release-gate bar for one slice: minimum accuracy and/or minimum mean score (None: no bar).

    >>> QualityBar(accuracy=0.87)
    QualityBar(accuracy=0.87, score=None)
    """

    accuracy: float | None = None
    score: float | None = None

    def __post_init__(self) -> None:
        for name in ("accuracy", "score"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} bar must be within [0, 1], got {value}")


@dataclass(frozen=True, slots=True)
class LabelChange:
    """The label of one logged prediction changed from ``old`` (None: first label) to ``new``.

    Carries what the statistics need to credit the label to its prediction's bucket and slices.
    """

    request_id: str
    model_id: str
    served_at: float
    slice: dict[str, str]
    input_features: dict[str, Any]
    old: Label | None
    new: Label


@dataclass(frozen=True, slots=True)
class LoggedLabelChange:
    """A label change read back from the label log: its id (commit order) and where its prediction
    was read from (``(partition, offset)``; None when written without one)."""

    seq: int
    change: LabelChange
    where: tuple[int, int] | None


@dataclass(slots=True)
class WriteResult:
    """Outcome of one batch transaction."""

    new_inferences: list[InferenceEvent] = field(default_factory=list)
    # (partition, offset) each new inference was read from (None: written without one), in order
    new_origins: list[tuple[int, int] | None] = field(default_factory=list)
    # inference events that were already stored (a redelivery), with the partition and offset they
    # were read from: rows another writer stored after this replica's takeover snapshot, or this
    # replica's own write that committed although the database reported a failure
    existing_inferences: list[tuple[Any, int, int]] = field(default_factory=list)
    label_changes: list[LabelChange] = field(default_factory=list)
    promotions: list[PromotionEvent] = field(default_factory=list)
    duplicates: int = 0
    pending_labels: int = 0
    # inference partition -> one past the last offset of this batch (set by the consumer)
    positions: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event was read from (kept on the row for audits and redelivery checks)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A message that could not be decoded. ``value`` is already truncated to the configured cap;
    ``reason`` is human text that never contains payload content."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    value_size: int
    stage: str
    error_class: str
    reason: str
    received_at: float


@dataclass(slots=True)
class BatchOutcome:
    """:class:`WriteResult` plus the per-topic detail the consumer edge needs."""

    result: WriteResult
    new_dead_letters: list[DeadLetterRecord] = field(default_factory=list)
    duplicate_inferences: int = 0
    stale_labels: int = 0
    duplicate_promotions: int = 0


@dataclass(frozen=True)
class DeadLetterGroup:
    """Dead letters of one source topic, stage and error class: how many, when, how many re-driven."""

    topic: str
    stage: str
    error_class: str
    count: int
    redriven: int
    first_received_at: float
    last_received_at: float
    example_reason: str


@dataclass(frozen=True)
class StoredDeadLetter:
    """A stored dead letter with its row id and re-drive time (``record.value`` None once erased)."""

    id: int
    record: DeadLetterRecord
    published_at: float | None
    redriven_at: float | None
