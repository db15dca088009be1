"""What the store hands to the statistics after a batch is durably written.

The store writes idempotently, so only *new* facts flow on: an inference row that was not in the
table before, and a label whose value actually changed (``old`` is the label it replaced, so the
statistics retract it and nothing is double-counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
class Promotion:
    model_id: str
    promoted_at: float
    rollback_target: str | None
    alias: str | None = None
    traffic_fraction: float | None = None


@dataclass(slots=True)
class WriteResult:
    """Outcome of one batch transaction."""

    new_inferences: list[Any] = field(default_factory=list)  # list[InferenceEvent]
    # inference events that were already stored (a redelivery), with the partition and offset they
    # were read from: rows another writer stored after this replica's takeover snapshot, or this
    # replica's own write that committed although the database reported a failure
    existing_inferences: list[tuple[Any, int, int]] = field(default_factory=list)
    label_changes: list[LabelChange] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)
    duplicates: int = 0
    pending_labels: int = 0
    # inference partition -> one past the last offset of this batch (set by the consumer)
    positions: dict[int, int] = field(default_factory=dict)
