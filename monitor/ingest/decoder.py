"""Bytes from Kafka -> typed events of ``monitor.events``, or a :class:`DecodeFailure` that says why.

The decoder is the executable twin of the JSON Schemas in ``schemas/`` (``tests/test_schemas.py``
validates the same samples with both). Checks run cheapest first: empty/size (before any parsing),
JSON + UTF-8 + types + ranges in one ``msgspec`` pass, then the few rules msgspec cannot express
(strict RFC 3339 time text, non-blank ids, a label on feedback, 64-bit token counts). Invalid UTF-8
inside members the decoder ignores is not looked for (checking every non-ASCII payload would cost
more than the typed decode itself); ``schemas/README.md`` lists this and the other divergences.

A failure carries ``stage`` (``size`` | ``json`` | ``schema`` | ``version`` | ``time``), a short
``error_class`` tag for dead-letter headers and metrics, and a ``reason`` that names the field path
but never echoes payload content. msgspec's own messages can quote values (``Invalid enum value
'x'``), so they are rewritten from a whitelist and never chained (``from None``).

Non-finite numbers cannot reach an event: ``NaN``/``Infinity`` tokens are not JSON
(``invalid_json``) and literals beyond the float range (``1e999``) are ``non_finite_number``.

Examples:
    >>> ev = decode("promotion", b'{"schema_version": 1, "model_id": "clf@v2", '
    ...     b'"promoted_at": "2026-11-01T10:00:00Z", "rollback_target": "clf@v1"}', 65536)
    >>> ev.rollback_target
    'clf@v1'
    >>> try:
    ...     decode("feedback", b'{"schema_version": 2}', 65536)
    ... except DecodeFailure as e:
    ...     print(e.stage, e.error_class)
    version unknown_schema_version
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal, overload

import msgspec

from monitor.errors import SlicewatchError
from monitor.events import SCHEMA_VERSION, EventKind, FeedbackEvent, InferenceEvent, PromotionEvent

Stage = Literal["size", "json", "schema", "version", "time"]
AnyEvent = InferenceEvent | FeedbackEvent | PromotionEvent

# RFC 3339 section 5.6 ``date-time`` with a mandatory offset, valid days per month and leap years,
# no leap second (the datetime parser rejects :60). ``$(?!\n)`` because Python's ``$`` also matches
# before a final newline; the schemas carry this exact text as their ``pattern``.
RFC3339_PATTERN: Final = (
    r"^(?!0000)(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    r"|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
    r"[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$(?!\n)"
)
INT64_MAX: Final = 2**63 - 1
FUTURE_EVENT: Final = "future_event"

_rfc3339 = re.compile(RFC3339_PATTERN).match


class DecodeFailure(SlicewatchError):
    """A record that is not a valid event; goes to the dead-letter topic and table.

    ``path`` is the JSON path of the offending member (``$.confidence``, ``$.input_features[...]``)
    or None when the whole payload is at fault.
    """

    def __init__(self, stage: Stage, error_class: str, reason: str, path: str | None = None) -> None:
        super().__init__(f"{stage}/{error_class}: {reason}")
        self.stage: Stage = stage
        self.error_class = error_class
        self.reason = reason
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stage, self.error_class, self.reason, self.path))


class _Version(msgspec.Struct):
    schema_version: Any = msgspec.UNSET


class _InferenceTime(msgspec.Struct):
    served_at: str


class _FeedbackTime(msgspec.Struct):
    observed_at: str


class _PromotionTime(msgspec.Struct):
    promoted_at: str


_INFERENCE_TIME: Final = msgspec.json.Decoder(_InferenceTime)
_FEEDBACK_TIME: Final = msgspec.json.Decoder(_FeedbackTime)
_PROMOTION_TIME: Final = msgspec.json.Decoder(_PromotionTime)
_VERSION_DECODER: Final = msgspec.json.Decoder(_Version)

_PATH = re.compile(r"^(?P<key>`key` in )?`(?P<path>\$[A-Za-z0-9_.\[\]]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[A-Za-z0-9_]+)`$")
_WRONG_TYPE = re.compile(r"^Expected `(?P<want>[a-z |]+)`, got `(?P<got>[a-z]+)`$")
_CONSTRAINT = re.compile(r"^Expected `[a-z |]+`(?: of length)? [<>]=? -?[0-9][0-9.e+-]*$")
_JSON_ERROR = re.compile(r"^[A-Za-z0-9 :,()\-]+$")


@overload
def decode(kind: Literal["inference"], raw: bytes | None, max_bytes: int) -> InferenceEvent: ...
@overload
def decode(kind: Literal["feedback"], raw: bytes | None, max_bytes: int) -> FeedbackEvent: ...
@overload
def decode(kind: Literal["promotion"], raw: bytes | None, max_bytes: int) -> PromotionEvent: ...
@overload
def decode(kind: EventKind, raw: bytes | None, max_bytes: int) -> AnyEvent: ...
def decode(kind: EventKind, raw: bytes | None, max_bytes: int) -> AnyEvent:
    """Decode one Kafka record value of ``kind``; raises :class:`DecodeFailure` for bad input.

    ``ValueError`` only for caller bugs (unknown ``kind``, ``max_bytes`` < 1).
    """
    entry = _KINDS.get(kind)
    if entry is None:
        raise ValueError(f"unknown event kind {kind!r}")
    decoder, check = entry
    if max_bytes < 1:
        raise ValueError("max_bytes must be >= 1")
    if not raw:
        raise DecodeFailure("size", "empty", "empty or null record value")
    if len(raw) > max_bytes:
        raise DecodeFailure("size", "oversized", f"value of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        event = decoder.decode(raw)
        check(raw, event)
    except msgspec.ValidationError as e:
        raise _schema_failure(raw, str(e)) from None
    except msgspec.DecodeError as e:
        raise _json_failure(str(e)) from None
    except RecursionError:  # msgspec recurses per nesting level, like json.loads
        raise DecodeFailure("json", "invalid_json", "JSON is nested too deeply") from None
    except UnicodeDecodeError:  # msgspec < 0.23; it checks UTF-8 in the strings it keeps, not in skipped members
        raise DecodeFailure("json", "invalid_utf8", "a string is not valid UTF-8") from None
    return event


def decode_key(raw_key: bytes | None) -> str | None:
    """The Kafka key as a model_id: UTF-8 text, or None when absent, empty or not UTF-8.

    Examples:
        >>> decode_key(b"clf@v2"), decode_key(b"\\xff"), decode_key(None)
        ('clf@v2', None, None)
    """
    if not raw_key:
        return None
    try:
        return raw_key.decode("utf-8")
    except UnicodeDecodeError:
        return None


@overload
def decode_record(
    kind: Literal["inference"], key: bytes | None, value: bytes | None, max_bytes: int
) -> InferenceEvent: ...
@overload
def decode_record(
    kind: Literal["feedback"], key: bytes | None, value: bytes | None, max_bytes: int
) -> FeedbackEvent: ...
@overload
def decode_record(
    kind: Literal["promotion"], key: bytes | None, value: bytes | None, max_bytes: int
) -> PromotionEvent: ...
@overload
def decode_record(kind: EventKind, key: bytes | None, value: bytes | None, max_bytes: int) -> AnyEvent: ...
def decode_record(kind: EventKind, key: bytes | None, value: bytes | None, max_bytes: int) -> AnyEvent:
    """Decode ``value`` and check that a present Kafka key equals the event's ``model_id``.

    Feedback events carry no model_id, so their key is not checked. An empty key counts as absent.

    Examples:
        >>> raw = (b'{"schema_version": 1, "model_id": "clf@v2", "promoted_at": '
        ...        b'"2026-11-01T10:00:00Z", "rollback_target": null}')
        >>> decode_record("promotion", b"clf@v2", raw, 65536).model_id
        'clf@v2'
        >>> try:
        ...     decode_record("promotion", b"clf@v1", raw, 65536)
        ... except DecodeFailure as e:
        ...     print(e)
        schema/key_mismatch: Kafka key does not equal $.model_id
    """
    event = decode(kind, value, max_bytes)
    if key and not isinstance(event, FeedbackEvent):
        text = decode_key(key)
        if text is None:
            raise DecodeFailure("schema", "key_mismatch", "Kafka key is not valid UTF-8", "$.model_id")
        if text != event.model_id:
            raise DecodeFailure("schema", "key_mismatch", "Kafka key does not equal $.model_id", "$.model_id")
    return event


# The rules msgspec's types cannot express, one function per kind. msgspec also accepts
# ``2026-11-22 10:15:00Z`` and ``+0100`` offsets, so the time text is read again (a cheap
# one-field decode) and matched against the schema's RFC 3339 pattern.


def _check_inference(raw: bytes, event: InferenceEvent) -> None:
    if event.request_id.isspace():
        raise _blank("$.request_id")
    if event.model_id.isspace():
        raise _blank("$.model_id")
    if (event.tokens_in or 0) > INT64_MAX or (event.tokens_out or 0) > INT64_MAX:
        path = "$.tokens_in" if (event.tokens_in or 0) > INT64_MAX else "$.tokens_out"
        raise DecodeFailure("schema", "out_of_range", f"{path} exceeds the 64-bit integer range", path)
    if not _rfc3339(_INFERENCE_TIME.decode(raw).served_at):
        raise _not_rfc3339("$.served_at")
    _check_utc(event.served_at, "$.served_at")


def _check_feedback(raw: bytes, event: FeedbackEvent) -> None:
    if event.request_id.isspace():
        raise _blank("$.request_id")
    if event.was_correct is None and event.score is None:
        raise DecodeFailure("schema", "missing_label", "feedback has neither $.was_correct nor $.score")
    if not _rfc3339(_FEEDBACK_TIME.decode(raw).observed_at):
        raise _not_rfc3339("$.observed_at")
    _check_utc(event.observed_at, "$.observed_at")


def _check_promotion(raw: bytes, event: PromotionEvent) -> None:
    if event.model_id.isspace():
        raise _blank("$.model_id")
    if event.rollback_target is not None and event.rollback_target.isspace():
        raise _blank("$.rollback_target")
    if not _rfc3339(_PROMOTION_TIME.decode(raw).promoted_at):
        raise _not_rfc3339("$.promoted_at")
    _check_utc(event.promoted_at, "$.promoted_at")


def _check_utc(value: datetime, path: str) -> None:
    """A valid RFC 3339 time whose UTC instant leaves years 1-9999 (``9999-12-31T23:59:59-01:00``,
    ``0001-01-01T00:00:00+01:00``) cannot be converted, stored or compared: reject it here."""
    try:
        value.astimezone(UTC).timestamp()
    except (OverflowError, ValueError):
        raise DecodeFailure(
            "time", "time_out_of_range", f"{path} is outside the UTC years 1-9999", path
        ) from None


def event_time(event: AnyEvent) -> datetime:
    """The event's own time: ``served_at``, ``observed_at`` or ``promoted_at``."""
    if isinstance(event, InferenceEvent):
        return event.served_at
    if isinstance(event, FeedbackEvent):
        return event.observed_at
    return event.promoted_at


def check_not_future(event: AnyEvent, now: float, max_future_s: float) -> None:
    """Reject an event stamped more than ``max_future_s`` after ``now`` (epoch seconds, the wall
    clock at ingest): one such event would otherwise hold a label or a watermark hostage.

    Examples:
        >>> ev = decode("promotion", b'{"schema_version": 1, "model_id": "m", '
        ...     b'"promoted_at": "2026-11-01T10:20:00Z", "rollback_target": null}', 65536)
        >>> now = datetime(2026, 11, 1, 10, 0, tzinfo=UTC).timestamp()
        >>> check_not_future(ev, now, 1200.0)
        >>> try:
        ...     check_not_future(ev, now, 600.0)
        ... except DecodeFailure as e:
        ...     print(e)
        time/future_event: $.promoted_at is 1200 s ahead of the ingest clock (limit 600 s)
    """
    ahead = event_time(event).timestamp() - now
    if ahead > max_future_s:
        path = {InferenceEvent: "$.served_at", FeedbackEvent: "$.observed_at"}.get(type(event), "$.promoted_at")
        raise DecodeFailure(
            "time", FUTURE_EVENT, f"{path} is {ahead:.0f} s ahead of the ingest clock (limit {max_future_s:.0f} s)",
            path,
        )


def _blank(path: str) -> DecodeFailure:
    return DecodeFailure("schema", "schema_violation", f"{path} is blank", path)


def _not_rfc3339(path: str) -> DecodeFailure:
    return DecodeFailure("schema", "schema_violation", f"{path} is not an RFC 3339 date-time", path)


_KINDS: Final[dict[str, tuple[msgspec.json.Decoder[Any], Callable[[bytes, Any], None]]]] = {
    "inference": (msgspec.json.Decoder(InferenceEvent), _check_inference),
    "feedback": (msgspec.json.Decoder(FeedbackEvent), _check_feedback),
    "promotion": (msgspec.json.Decoder(PromotionEvent), _check_promotion),
}


def _json_failure(message: str) -> DecodeFailure:
    if "UTF-8" in message:  # msgspec >= 0.23 reports bad UTF-8 as a DecodeError, not UnicodeDecodeError
        return DecodeFailure("json", "invalid_utf8", "a string is not valid UTF-8")
    detail = message if _JSON_ERROR.match(message) else "JSON is malformed"
    return DecodeFailure("json", "invalid_json", detail)


def _schema_failure(raw: bytes, message: str) -> DecodeFailure:
    """Rewrite a msgspec ValidationError into a failure without payload values.

    An unknown or missing ``schema_version`` wins over any other error: a v2 payload is reported as
    a version problem even when msgspec tripped over an earlier field first.
    """
    try:
        version = _VERSION_DECODER.decode(raw).schema_version
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        version = SCHEMA_VERSION  # not an object: fall through to the original error
    if version is msgspec.UNSET:
        return DecodeFailure("version", "missing_field", "$.schema_version is missing", "$.schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        return DecodeFailure(
            "version",
            "unknown_schema_version",
            f"$.schema_version is not a supported version (supported: {SCHEMA_VERSION})",
            "$.schema_version",
        )

    text, _, where = message.partition(" - at ")
    path = "$"
    if where:
        m = _PATH.match(where)
        path = (m["path"] + " (key)" if m["key"] else m["path"]) if m else "$"
    if m_missing := _MISSING.match(text):
        full = f"{path}.{m_missing['field']}"
        return DecodeFailure("schema", "missing_field", f"required field {full} is missing", full)
    if m_type := _WRONG_TYPE.match(text):
        if path == "$" and not where:
            return DecodeFailure("schema", "not_an_object", f"value is a JSON {m_type['got']}, not an object")
        return DecodeFailure("schema", "wrong_type", f"{path}: expected {m_type['want']}, got {m_type['got']}", path)
    if text == "Integer value out of range":
        return DecodeFailure("schema", "out_of_range", f"{path}: integer out of range", path)
    if text == "Number out of range":
        return DecodeFailure("schema", "non_finite_number", f"{path}: number outside the float range", path)
    if _CONSTRAINT.match(text):
        return DecodeFailure("schema", "out_of_range", f"{path}: {text.replace('`', '')}", path)
    if text.startswith("Invalid enum value"):
        return DecodeFailure("schema", "schema_violation", f"{path}: value is not one of the allowed values", path)
    if text == "Invalid RFC3339 encoded datetime":
        return DecodeFailure("schema", "schema_violation", f"{path} is not an RFC 3339 date-time", path)
    if text == "Expected `datetime` with a timezone component":
        return DecodeFailure("schema", "schema_violation", f"{path} has no UTC offset", path)
    return DecodeFailure("schema", "schema_violation", f"{path}: invalid value", path)
