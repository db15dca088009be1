"""Shared pieces of the decoder and schema tests: the schemas, the two verdicts, base events and
hypothesis strategies for valid events and arbitrary JSON.

The schema verdict parses JSON strictly (RFC 8259): UTF-8 only, no BOM, no ``NaN``/``Infinity``
tokens, no lone surrogates; then validates with ``Draft202012Validator`` and a ``FormatChecker``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import strategies as st

from monitor.events import EventKind
from monitor.ingest.decoder import INT64_MAX, DecodeFailure, decode

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_FILES = {
    "inference": "inference-event.v1.schema.json",
    "feedback": "feedback-event.v1.schema.json",
    "promotion": "promotion-event.v1.schema.json",
    "drift": "drift-event.v1.schema.json",
    "drift_v2": "drift-event.v2.schema.json",
}
MAX_BYTES = 1 << 20
STAGES = {"size", "json", "schema", "version"}
ERROR_CLASSES = {
    "oversized",
    "empty",
    "invalid_json",
    "invalid_utf8",
    "not_an_object",
    "schema_violation",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "non_finite_number",
    "unknown_schema_version",
    "missing_label",
    "key_mismatch",
}


def load_schema(kind: str) -> dict[str, Any]:
    with open(SCHEMA_DIR / SCHEMA_FILES[kind], encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


VALIDATORS = {
    kind: jsonschema.Draft202012Validator(load_schema(kind), format_checker=jsonschema.FormatChecker())
    for kind in SCHEMA_FILES
}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes) -> Any:
    """Parse like RFC 8259 says; raises ValueError for anything that is not JSON text."""
    text = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError
    obj = json.loads(text, parse_constant=_no_constant, parse_int=lambda s: int(Decimal(s)))
    json.dumps(obj, ensure_ascii=False).encode("utf-8")  # lone surrogates -> UnicodeEncodeError
    return obj


def schema_accepts(kind: str, raw: bytes) -> bool:
    try:
        obj = strict_json(raw)
    except (ValueError, RecursionError):
        return False
    return bool(VALIDATORS[kind].is_valid(obj))


def decoder_accepts(kind: EventKind, raw: bytes) -> bool:
    try:
        decode(kind, raw, MAX_BYTES)
    except DecodeFailure:
        return False
    return True


BASE: dict[str, dict[str, Any]] = {
    "inference": {
        "schema_version": 1,
        "request_id": "req-000001",
        "model_id": "intent-clf@v42",
        "served_at": "2026-11-22T10:15:00.250Z",
        "input_features": {"language": "en", "n_chars": 412, "has_attachment": False, "score_prior": 0.31},
        "output": "billing",
    },
    "feedback": {
        "schema_version": 1,
        "request_id": "req-000001",
        "observed_at": "2026-11-22T11:00:00Z",
        "was_correct": True,
    },
    "promotion": {
        "schema_version": 1,
        "model_id": "intent-clf@v42",
        "promoted_at": "2026-11-22T09:00:00+01:00",
        "rollback_target": "intent-clf@v41",
    },
}

DELETE = object()


def payload(kind: str, **changes: Any) -> bytes:
    """The base event of ``kind`` with members replaced (or removed with ``DELETE``), as JSON bytes."""
    obj = dict(BASE[kind])
    for key, value in changes.items():
        if value is DELETE:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")


# -- hypothesis strategies ------------------------------------------------------------------------

OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=23, minutes=59)), timezone.min]
)
aware_datetimes = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS)
ids = st.text(min_size=1, max_size=40).filter(lambda s: not s.isspace())
names = st.text(min_size=1, max_size=24)
feature_values = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**53), 2**53),
    st.text(max_size=24),
)
probabilities = st.floats(min_value=0.0, max_value=1.0)
opt_str = st.none() | st.text(max_size=16)

lineages = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "prompt_template_sha": opt_str,
        "preprocessing_ref": opt_str,
        "retrieval_index_ref": opt_str,
        "embedding_model": opt_str,
        "dataset_version": opt_str,
    },
)

inference_dicts = st.fixed_dictionaries(
    {
        "schema_version": st.just(1),
        "request_id": ids,
        "model_id": ids,
        "served_at": aware_datetimes,
        "input_features": st.dictionaries(names, feature_values, max_size=8),
        "output": st.text(max_size=60),
    },
    optional={
        "confidence": st.none() | probabilities,
        "slice": st.dictionaries(names, st.text(max_size=12), max_size=3),
        "lineage": lineages,
        "latency_ms": st.none() | st.floats(min_value=0.0, max_value=1e9),
        "tokens_in": st.none() | st.integers(0, INT64_MAX),
        "tokens_out": st.none() | st.integers(0, INT64_MAX),
        "subject_ref": st.none() | st.text(min_size=1, max_size=40),
    },
)

_labels = st.one_of(
    st.fixed_dictionaries({"was_correct": st.booleans()}, optional={"score": st.none() | probabilities}),
    st.fixed_dictionaries({"score": probabilities}, optional={"was_correct": st.none() | st.booleans()}),
)
feedback_dicts = st.tuples(
    st.fixed_dictionaries(
        {"schema_version": st.just(1), "request_id": ids, "observed_at": aware_datetimes},
        optional={
            "failure_cluster": opt_str,
            "source": st.sampled_from(["human", "judge", "user", "system", None]),
            "judge_model": opt_str,
            "rubric_version": opt_str,
        },
    ),
    _labels,
).map(lambda parts: {**parts[0], **parts[1]})

promotion_dicts = st.fixed_dictionaries(
    {
        "schema_version": st.just(1),
        "model_id": ids,
        "promoted_at": aware_datetimes,
        "rollback_target": st.none() | ids,
    },
    optional={"alias": opt_str, "traffic_fraction": st.none() | probabilities},
)

EVENT_DICTS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "inference": inference_dicts,
    "feedback": feedback_dicts,
    "promotion": promotion_dicts,
}
kinds: st.SearchStrategy[EventKind] = st.sampled_from(["inference", "feedback", "promotion"])

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
