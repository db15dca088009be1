"""The one place a :class:`~monitor.records.Label` is built from stored or consumed data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.records import Label


def label_from(record: Any, *, source: str | None, observed_at: float) -> Label:
    """The label held by ``record``: a feedback event, an ``inference_log`` or ``pending_label`` row,
    or a label-log document (a mapping, see ``window_state.label_to_json``; its three optional keys
    may be absent). The value fields are read under their common names (``was_correct``, ``score``,
    ``judge_model``, ``rubric_version``, ``failure_cluster``); ``source`` and ``observed_at`` are
    passed in, since each of those names and types them differently (``label_source``,
    ``label_observed_at``, a datetime or epoch seconds).

    Examples:
        >>> doc = {"was_correct": True, "score": 0.5, "source": "human", "observed_at": 61.0}
        >>> label_from(doc, source=doc["source"], observed_at=doc["observed_at"]) == Label(True, 0.5, "human", 61.0)
        True
    """
    if isinstance(record, Mapping):
        return Label(
            was_correct=record["was_correct"],
            score=record["score"],
            source=source,
            observed_at=observed_at,
            judge_model=record.get("judge_model"),
            rubric_version=record.get("rubric_version"),
            failure_cluster=record.get("failure_cluster"),
        )
    return Label(
        was_correct=record.was_correct,
        score=record.score,
        source=source,
        observed_at=observed_at,
        judge_model=record.judge_model,
        rubric_version=record.rubric_version,
        failure_cluster=record.failure_cluster,
    )
