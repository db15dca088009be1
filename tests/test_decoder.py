"""Unit tests of ``monitor.ingest.decoder``: the API, Kafka key checks and what a failure reports."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest

from monitor.errors import SlicewatchError
from monitor.events import FeedbackEvent, InferenceEvent, PromotionEvent
from monitor.ingest.decoder import (
    DecodeFailure,
    decode,
    decode_key,
    decode_record,
)
from tests.decoder_fixtures import BASE, DELETE, MAX_BYTES, payload


def failure(kind: str, raw: bytes | None, max_bytes: int = MAX_BYTES) -> DecodeFailure:
    with pytest.raises(DecodeFailure) as info:
        decode(kind, raw, max_bytes)  # type: ignore[call-overload]
    return info.value


def test_typed_helpers_return_their_event_types() -> None:
    inference = decode("inference", payload("inference"), MAX_BYTES)
    feedback = decode("feedback", payload("feedback"), MAX_BYTES)
    promotion = decode("promotion", payload("promotion"), MAX_BYTES)
    assert type(inference) is InferenceEvent and type(feedback) is FeedbackEvent
    assert type(promotion) is PromotionEvent
    assert inference.input_features == {
        "language": "en",
        "n_chars": 412.0,
        "has_attachment": False,
        "score_prior": 0.31,
    }
    assert type(inference.input_features["n_chars"]) is float  # JSON integers become floats in features
    assert promotion.promoted_at.utcoffset() == timedelta(hours=1)  # the offset is kept
    assert inference.slice == {} and inference.lineage is None


def test_a_typed_helper_rejects_another_kind() -> None:
    with pytest.raises(DecodeFailure) as info:
        decode("inference", payload("promotion"), MAX_BYTES)
    assert info.value.error_class == "missing_field"


@pytest.mark.parametrize("raw", [None, b""])
def test_null_and_empty_values_fail_at_the_size_stage(raw: bytes | None) -> None:
    e = failure("inference", raw)
    assert (e.stage, e.error_class, e.path) == ("size", "empty", None)


def test_size_limit_is_inclusive() -> None:
    raw = payload("feedback")
    assert decode("feedback", raw, len(raw)).request_id == BASE["feedback"]["request_id"]
    e = failure("feedback", raw, len(raw) - 1)
    assert (e.stage, e.error_class) == ("size", "oversized")


@pytest.mark.parametrize(
    ("kind", "raw", "stage", "error_class", "path"),
    [
        ("inference", payload("inference", output=DELETE), "schema", "missing_field", "$.output"),
        ("inference", payload("inference", lineage={"dataset_version": 3}), "schema", "wrong_type",
         "$.lineage.dataset_version"),
        ("inference", payload("inference", input_features={"a": [1]}), "schema", "wrong_type",
         "$.input_features[...]"),
        ("inference", payload("inference", input_features={"": 1}), "schema", "out_of_range",
         "$.input_features (key)"),
        ("inference", payload("inference", confidence=2), "schema", "out_of_range", "$.confidence"),
        ("inference", payload("inference", served_at="2026-11-22T10:15:00"), "schema", "schema_violation",
         "$.served_at"),
        ("feedback", payload("feedback", was_correct=None), "schema", "missing_label", None),
        ("feedback", payload("feedback", schema_version=DELETE), "version", "missing_field", "$.schema_version"),
        ("promotion", payload("promotion", schema_version=3, model_id=5), "version", "unknown_schema_version",
         "$.schema_version"),
        ("promotion", b"[1]", "schema", "not_an_object", None),
        ("promotion", b"{", "json", "invalid_json", None),
        ("promotion", payload("promotion").replace(b"@v42", b"\xc3"), "json", "invalid_utf8", None),
    ],
)  # fmt: skip
def test_failures_name_stage_class_and_path(
    kind: str, raw: bytes, stage: str, error_class: str, path: str | None
) -> None:
    e = failure(kind, raw)
    assert (e.stage, e.error_class, e.path) == (stage, error_class, path)
    assert e.reason and (path is None or path in e.reason)
    assert str(e) == f"{stage}/{error_class}: {e.reason}"


def test_version_errors_win_over_earlier_field_errors() -> None:
    """A v2 payload with a different shape is reported as a version problem, not a type problem."""
    raw = b'{"request_id": ["x"], "served_at": 5, "schema_version": 2}'
    e = failure("inference", raw)
    assert (e.stage, e.error_class) == ("version", "unknown_schema_version")


def test_decode_failure_is_a_slicewatch_error_and_pickles() -> None:
    e = failure("feedback", payload("feedback", score=3))
    assert isinstance(e, SlicewatchError)
    copy = pickle.loads(pickle.dumps(e))
    assert (copy.stage, copy.error_class, copy.reason, copy.path) == (e.stage, e.error_class, e.reason, e.path)


def test_reasons_are_not_chained_to_msgspec_errors() -> None:
    e = failure("feedback", payload("feedback", source="robot"))
    assert e.__cause__ is None and e.__suppress_context__


def test_caller_bugs_raise_value_error() -> None:
    with pytest.raises(ValueError):
        decode("drift", payload("inference"), MAX_BYTES)  # type: ignore[call-overload]
    with pytest.raises(ValueError):
        decode("inference", payload("inference"), 0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"intent-clf@v42", "intent-clf@v42"),
        ("modèle".encode(), "modèle"),
        (b"\xff\xfe", None),
        (b"", None),
        (None, None),
    ],
)
def test_decode_key(raw: bytes | None, expected: str | None) -> None:
    assert decode_key(raw) == expected


def test_record_key_must_equal_model_id() -> None:
    raw = payload("inference")
    model_id = BASE["inference"]["model_id"]
    assert decode_record("inference", model_id.encode(), raw, MAX_BYTES).model_id == model_id
    assert decode_record("inference", None, raw, MAX_BYTES).model_id == model_id
    assert decode_record("inference", b"", raw, MAX_BYTES).model_id == model_id
    for key in (b"intent-clf@v41", model_id.upper().encode(), b"\xff"):
        with pytest.raises(DecodeFailure) as info:
            decode_record("inference", key, raw, MAX_BYTES)
        assert (info.value.stage, info.value.error_class, info.value.path) == ("schema", "key_mismatch", "$.model_id")


def test_promotion_key_is_checked_and_feedback_key_is_not() -> None:
    with pytest.raises(DecodeFailure):
        decode_record("promotion", b"someone-else", payload("promotion"), MAX_BYTES)
    assert decode_record("feedback", b"any-key", payload("feedback"), MAX_BYTES).request_id == "req-000001"


def test_value_errors_are_reported_before_key_errors() -> None:
    with pytest.raises(DecodeFailure) as info:
        decode_record("inference", b"wrong", payload("inference", confidence=-1), MAX_BYTES)
    assert info.value.error_class == "out_of_range"
