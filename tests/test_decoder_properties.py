"""Hypothesis properties of the decoder: total on any bytes, round-trips valid events, agrees with the
schemas on mutated events and on date-time text, never echoes payload content, checks size first."""

from __future__ import annotations

import json
import math
import traceback
from datetime import datetime
from typing import Any

import msgspec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitor.events import EventKind, FeedbackEvent, InferenceEvent, PromotionEvent
from monitor.ingest.decoder import DecodeFailure, decode, decode_record
from tests.decoder_fixtures import (
    BASE,
    ERROR_CLASSES,
    EVENT_DICTS,
    MAX_BYTES,
    STAGES,
    decoder_accepts,
    json_values,
    kinds,
    schema_accepts,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TYPES = {"inference": InferenceEvent, "feedback": FeedbackEvent, "promotion": PromotionEvent}
TIME_FIELD = {"inference": "served_at", "feedback": "observed_at", "promotion": "promoted_at"}
INT_FIELDS = {"schema_version", "tokens_in", "tokens_out"}


def _check_failure(e: DecodeFailure) -> None:
    assert e.stage in STAGES
    assert e.error_class in ERROR_CLASSES
    assert e.reason


def _json_prefixed_bytes() -> st.SearchStrategy[bytes]:
    """Bytes that look like JSON for a while, so the fuzzing gets past the first byte."""
    base = st.sampled_from([msgspec.json.encode(b) for b in BASE.values()])
    return st.tuples(base, st.integers(0, 400), st.binary(max_size=40)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
    )


@FAST
@given(kind=kinds, raw=st.one_of(st.binary(max_size=300), _json_prefixed_bytes()), max_bytes=st.integers(1, 600))
def test_any_bytes_decode_or_fail_cleanly(kind: EventKind, raw: bytes, max_bytes: int) -> None:
    try:
        event = decode(kind, raw, max_bytes)
    except DecodeFailure as e:
        _check_failure(e)
    else:
        assert isinstance(event, TYPES[kind])


@FAST
@given(kind=kinds, key=st.none() | st.binary(max_size=20), raw=_json_prefixed_bytes())
def test_any_record_decodes_or_fails_cleanly(kind: EventKind, key: bytes | None, raw: bytes) -> None:
    try:
        decode_record(kind, key, raw, MAX_BYTES)
    except DecodeFailure as e:
        _check_failure(e)


def _floats_in(event: Any) -> list[float]:
    values = [v for v in msgspec.structs.asdict(event).values() if isinstance(v, float)]
    if isinstance(event, InferenceEvent):
        values += [v for v in event.input_features.values() if isinstance(v, float)]
    return values


@FAST
@given(data=st.data(), kind=kinds)
def test_valid_events_round_trip_and_satisfy_the_schema(data: st.DataObject, kind: EventKind) -> None:
    obj: dict[str, Any] = data.draw(EVENT_DICTS[kind])
    raw = msgspec.json.encode(obj)
    event = decode(kind, raw, MAX_BYTES)
    assert schema_accepts(kind, raw)
    for name, value in obj.items():
        got = getattr(event, name)
        if name == "input_features":
            assert got == {k: float(v) if type(v) is int else v for k, v in value.items()}
        elif name == "lineage" and value is not None:
            assert msgspec.structs.asdict(got) == {**dict.fromkeys(msgspec.structs.asdict(got)), **value}
        elif isinstance(value, datetime):
            assert got == value and got.utcoffset() == value.utcoffset()
        else:
            assert got == value, name
    assert all(math.isfinite(v) for v in _floats_in(event))
    assert decode(kind, msgspec.json.encode(event), MAX_BYTES) == event


def _has_integral_float_int(obj: dict[str, Any]) -> bool:
    """The documented divergence: JSON Schema calls 3.0 an integer, the decoder does not."""
    return any(isinstance(obj.get(f), float) and obj[f].is_integer() for f in INT_FIELDS)


@FAST
@given(data=st.data(), kind=kinds)
def test_schema_and_decoder_agree_on_mutated_events(data: st.DataObject, kind: EventKind) -> None:
    obj: dict[str, Any] = dict(data.draw(EVENT_DICTS[kind]))
    for _ in range(data.draw(st.integers(1, 2))):
        op = data.draw(st.sampled_from(["drop", "replace", "extra", "feature"]))
        if op == "drop" and obj:
            obj.pop(data.draw(st.sampled_from(sorted(obj))))
        elif op == "replace" and obj:
            obj[data.draw(st.sampled_from(sorted(obj)))] = data.draw(json_values)
        elif op == "extra":
            obj[data.draw(st.text(max_size=8))] = data.draw(json_values)
        elif op == "feature" and isinstance(obj.get("input_features"), dict):
            obj["input_features"] = {
                **obj["input_features"],
                data.draw(st.text(max_size=4)): data.draw(json_values),
            }
    assume(not _has_integral_float_int(obj))
    raw = msgspec.json.encode(obj)
    assert schema_accepts(kind, raw) == decoder_accepts(kind, raw), raw


DATE_TIME_LIKE = st.from_regex(
    r"\A[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{1,12})?"
    r"([Zz]|[+-][0-2][0-9]:?[0-6][0-9])?\Z"
)
REAL_DATE_TIMES = st.tuples(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["Z", "z", "+00:00", "-23:59", "+05:30", "+0530", "", "+24:00"]),
).map(lambda t: t[0].isoformat(sep=t[1]) + t[2])


@FAST
@given(kind=kinds, text=st.one_of(DATE_TIME_LIKE, REAL_DATE_TIMES, st.text(max_size=30)))
def test_schema_and_decoder_agree_on_date_time_text(kind: EventKind, text: str) -> None:
    raw = msgspec.json.encode({**BASE[kind], TIME_FIELD[kind]: text})
    assert schema_accepts(kind, raw) == decoder_accepts(kind, raw)


MARKER = "S3CR3T-PAYLOAD-"


def _plant(obj: dict[str, Any], secret: str, where: str) -> dict[str, Any]:
    obj = dict(obj)
    if where in ("output", "source", "served_at", "observed_at", "promoted_at", "alias", "confidence"):
        obj[where] = secret
    elif where == "feature_value":
        obj["input_features"] = {"f": secret, "g": [secret]}
    elif where == "feature_key":
        obj["input_features"] = {secret: [1], "": secret}
    elif where == "slice":
        obj["slice"] = {secret: 7}
    elif where == "lineage":
        obj["lineage"] = {"dataset_version": [secret]}
    elif where == "schema_version":
        obj["schema_version"] = secret
    elif where == "id":
        obj["request_id" if "request_id" in obj else "model_id"] = secret * 40
    elif where == "tokens":
        obj["tokens_in"] = secret
    return obj


@FAST
@given(
    kind=kinds,
    suffix=st.text(min_size=1, max_size=12),
    where=st.sampled_from(
        [
            "output",
            "source",
            "served_at",
            "observed_at",
            "promoted_at",
            "alias",
            "confidence",
            "feature_value",
            "feature_key",
            "slice",
            "lineage",
            "schema_version",
            "id",
            "tokens",
        ]
    ),
    cut=st.none() | st.integers(0, 200),
    junk=st.sampled_from([b"", b"\xff", b"}", b"NaN"]),
)
def test_failure_reasons_never_contain_payload_values(
    kind: EventKind, suffix: str, where: str, cut: int | None, junk: bytes
) -> None:
    secret = MARKER + suffix
    raw = json.dumps(_plant(BASE[kind], secret, where), ensure_ascii=False).encode()
    if cut is not None:
        raw = raw[:cut] + junk + raw[cut:]
    try:
        decode_record(kind, secret.encode(), raw, MAX_BYTES)
    except DecodeFailure as e:
        shown = [e.reason, str(e), repr(e), e.path or "", "".join(traceback.format_exception(e))]
        assert not any(part in s for s in shown for part in ("S3CR3T", "PAYLOAD-")), shown


@FAST
@given(kind=kinds, max_bytes=st.integers(1, 4096), extra=st.integers(1, 5000), valid=st.booleans())
def test_oversized_values_are_rejected_before_parsing(kind: EventKind, max_bytes: int, extra: int, valid: bool) -> None:
    """Too-large values fail at stage ``size`` even when they are not JSON (so nothing was parsed)."""
    if valid:
        event = {**BASE[kind], "padding": "x" * (max_bytes + extra)}
        raw = msgspec.json.encode(event)
    else:
        raw = b"\xff{" * (max_bytes + extra)
    try:
        decode(kind, raw, max_bytes)
    except DecodeFailure as e:
        assert (e.stage, e.error_class) == ("size", "oversized")
        assert str(max_bytes) in e.reason
    else:
        raise AssertionError("oversized value was accepted")
