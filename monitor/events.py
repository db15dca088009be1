"""Decoded event types of the event contract (see ``schemas/``), schema version 1.

Field names are the wire names. Times are timezone-aware ``datetime`` on the wire (RFC 3339 with
offset); :func:`epoch` turns them into float seconds for the statistics. Unknown extra fields are
ignored (forward compatibility). Decoding and validation live in ``monitor.ingest.decoder``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

SCHEMA_VERSION = 1

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
SubjectRef = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
FeatureValue = float | str | bool | None  # msgspec decodes JSON integers into float here

LINEAGE_FIELDS = (
    "prompt_template_sha",
    "preprocessing_ref",
    "retrieval_index_ref",
    "embedding_model",
    "dataset_version",
)

LabelSource = Literal["human", "judge", "user", "system"]
EventKind = Literal["inference", "feedback", "promotion"]
"""The three event contracts (and their topics): what the decoder is told a record should be."""


class Lineage(msgspec.Struct, frozen=True, omit_defaults=True):
    prompt_template_sha: str | None = None
    preprocessing_ref: str | None = None
    retrieval_index_ref: str | None = None
    embedding_model: str | None = None
    dataset_version: str | None = None


class InferenceEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One served prediction. Kafka key = ``model_id`` (UTF-8)."""

    schema_version: Literal[1]
    request_id: Id
    model_id: Id
    served_at: AwareDatetime
    input_features: dict[Name, FeatureValue]
    output: str
    confidence: Probability | None = None
    slice: dict[Name, str] = msgspec.field(default_factory=dict)
    lineage: Lineage | None = None
    latency_ms: NonNegative | None = None
    tokens_in: Count | None = None
    tokens_out: Count | None = None
    subject_ref: SubjectRef | None = None
    """A pseudonymous key of the person the request was for (never a name or an e-mail address):
    ``slicewatch erase --subject REF`` deletes every row that carries it."""


class FeedbackEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A delayed ground-truth label for ``request_id``; at least one of ``was_correct``/``score``."""

    schema_version: Literal[1]
    request_id: Id
    observed_at: AwareDatetime
    was_correct: bool | None = None
    score: Probability | None = None
    failure_cluster: str | None = None
    source: LabelSource | None = None
    judge_model: str | None = None
    rubric_version: str | None = None


class PromotionEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A model version was promoted to serve traffic; ``rollback_target`` is where to go back to."""

    schema_version: Literal[1]
    model_id: Id
    promoted_at: AwareDatetime
    rollback_target: Id | None
    alias: str | None = None
    traffic_fraction: Probability | None = None


Event = InferenceEvent | FeedbackEvent | PromotionEvent


def epoch(dt: datetime) -> float:
    """Seconds since the Unix epoch of an aware datetime."""
    return dt.timestamp()
