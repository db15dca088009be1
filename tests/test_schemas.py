"""The JSON Schemas in ``schemas/`` and the decoder agree on one shared list of valid and invalid samples.

Each sample is judged twice: by ``jsonschema`` (Draft 2020-12, format checking on) after a strict
RFC 8259 parse, and by ``monitor.ingest.decoder.decode``. Both must match the expected verdict, and
a rejected sample must carry the expected error class.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.drift_event import build_drift_event
from monitor.alerts.state import AlertState
from monitor.demo.traffic import TrafficGenerator
from monitor.ingest.decoder import INT64_MAX, RFC3339_PATTERN, DecodeFailure, decode
from monitor.snapshot import LineageChange
from tests.decoder_fixtures import (
    DELETE,
    MAX_BYTES,
    SCHEMA_FILES,
    VALIDATORS,
    decoder_accepts,
    load_schema,
    payload,
    schema_accepts,
    strict_json,
)

MAXF = 1.7976931348623157e308
T_BAD = "schema_violation"


def inf(**changes: Any) -> bytes:
    return payload("inference", **changes)


def fb(**changes: Any) -> bytes:
    return payload("feedback", **changes)


def pr(**changes: Any) -> bytes:
    return payload("promotion", **changes)


def inf_plus(members: bytes) -> bytes:
    """The base inference event with raw JSON members appended (for what json.dumps cannot write)."""
    return inf()[:-1] + b", " + members + b"}"


# (id, kind, raw value, expected error_class or None when valid)
SAMPLES: list[tuple[str, str, bytes, str | None]] = [
    # -- inference: valid --------------------------------------------------------------------------
    ("inf-minimal", "inference", inf(), None),
    (
        "inf-full",
        "inference",
        payload(
            "inference",
            confidence=0.93,
            slice={"tier": "enterprise", "region": "eu", "arm": "B"},
            lineage={"prompt_template_sha": "9f2c1a", "dataset_version": "2026-10", "embedding_model": None},
            latency_ms=38.5,
            tokens_in=512,
            tokens_out=0,
            subject_ref="7f3a9c0e",
        ),
        None,
    ),
    ("inf-extra-fields", "inference", inf(trace_id="t-1", experimental={"x": [1, 2]}), None),
    ("inf-extra-lineage-field", "inference", inf(lineage={"adapter_ref": 7}), None),
    ("inf-nulls", "inference", inf(confidence=None, lineage=None, latency_ms=None), None),
    ("inf-empty-features", "inference", inf(input_features={}), None),
    (
        "inf-feature-kinds",
        "inference",
        inf(input_features={"i": -3, "f": 0.5, "b": True, "n": None, "s": "", "big": MAXF}),
        None,
    ),
    ("inf-confidence-0", "inference", inf(confidence=0), None),
    ("inf-confidence-1", "inference", inf(confidence=1.0), None),
    ("inf-tokens-int64-max", "inference", inf(tokens_in=INT64_MAX), None),
    ("inf-empty-output", "inference", inf(output=""), None),
    ("inf-unicode-id", "inference", inf(request_id="요청-ß-😀"), None),
    ("inf-id-512-chars", "inference", inf(request_id="😀" * 512), None),
    ("inf-time-offset", "inference", inf(served_at="2026-11-22T15:45:00+05:30"), None),
    ("inf-time-minus-zero", "inference", inf(served_at="2026-11-22T10:15:00-00:00"), None),
    ("inf-time-lowercase", "inference", inf(served_at="2026-11-22t10:15:00z"), None),
    ("inf-time-nanos", "inference", inf(served_at="2026-11-22T10:15:00.123456789Z"), None),
    ("inf-time-leap-day", "inference", inf(served_at="2024-02-29T00:00:00Z"), None),
    ("inf-time-leap-2000", "inference", inf(served_at="2000-02-29T00:00:00Z"), None),
    # -- inference: missing members ----------------------------------------------------------------
    ("inf-no-request-id", "inference", inf(request_id=DELETE), "missing_field"),
    ("inf-no-model-id", "inference", inf(model_id=DELETE), "missing_field"),
    ("inf-no-served-at", "inference", inf(served_at=DELETE), "missing_field"),
    ("inf-no-features", "inference", inf(input_features=DELETE), "missing_field"),
    ("inf-no-output", "inference", inf(output=DELETE), "missing_field"),
    ("inf-no-version", "inference", inf(schema_version=DELETE), "missing_field"),
    ("inf-empty-object", "inference", b"{}", "missing_field"),
    # -- inference: wrong types ----------------------------------------------------------------------
    ("inf-request-id-int", "inference", inf(request_id=17), "wrong_type"),
    ("inf-output-null", "inference", inf(output=None), "wrong_type"),
    ("inf-features-array", "inference", inf(input_features=[1, 2]), "wrong_type"),
    ("inf-feature-list", "inference", inf(input_features={"a": [1]}), "wrong_type"),
    ("inf-feature-object", "inference", inf(input_features={"a": {"b": 1}}), "wrong_type"),
    ("inf-confidence-string", "inference", inf(confidence="0.9"), "wrong_type"),
    ("inf-confidence-bool", "inference", inf(confidence=True), "wrong_type"),
    ("inf-latency-string", "inference", inf(latency_ms="12"), "wrong_type"),
    ("inf-slice-null", "inference", inf(slice=None), "wrong_type"),
    ("inf-slice-value-int", "inference", inf(slice={"tier": 3}), "wrong_type"),
    ("inf-slice-value-null", "inference", inf(slice={"tier": None}), "wrong_type"),
    ("inf-lineage-int-member", "inference", inf(lineage={"dataset_version": 3}), "wrong_type"),
    ("inf-lineage-string", "inference", inf(lineage="v3"), "wrong_type"),
    ("inf-tokens-float", "inference", inf(tokens_in=1.5), "wrong_type"),
    ("inf-tokens-string", "inference", inf(tokens_in="3"), "wrong_type"),
    ("inf-served-at-number", "inference", inf(served_at=1_700_000_000), "wrong_type"),
    # -- inference: ranges ---------------------------------------------------------------------------
    ("inf-confidence-above-1", "inference", inf(confidence=1.5), "out_of_range"),
    ("inf-confidence-negative", "inference", inf(confidence=-0.1), "out_of_range"),
    ("inf-latency-negative", "inference", inf(latency_ms=-1), "out_of_range"),
    ("inf-tokens-negative", "inference", inf(tokens_out=-1), "out_of_range"),
    ("inf-tokens-over-int64", "inference", inf(tokens_in=INT64_MAX + 1), "out_of_range"),
    ("inf-request-id-empty", "inference", inf(request_id=""), "out_of_range"),
    ("inf-request-id-513", "inference", inf(request_id="x" * 513), "out_of_range"),
    ("inf-subject-ref-empty", "inference", inf(subject_ref=""), "out_of_range"),
    ("inf-subject-ref-257", "inference", inf(subject_ref="s" * 257), "out_of_range"),
    ("inf-subject-ref-number", "inference", inf(subject_ref=7), "wrong_type"),
    ("inf-feature-name-empty", "inference", inf(input_features={"": 1}), "out_of_range"),
    ("inf-feature-name-257", "inference", inf(input_features={"k" * 257: 1}), "out_of_range"),
    ("inf-slice-name-empty", "inference", inf(slice={"": "x"}), "out_of_range"),
    ("inf-request-id-blank", "inference", inf(request_id=" \t "), "schema_violation"),
    ("inf-model-id-blank", "inference", inf(model_id="\u3000"), "schema_violation"),
    # -- inference: times ------------------------------------------------------------------------------
    ("inf-time-naive", "inference", inf(served_at="2026-11-22T10:15:00"), T_BAD),
    ("inf-time-no-colon", "inference", inf(served_at="2026-11-22T10:15:00+0100"), T_BAD),
    ("inf-time-space", "inference", inf(served_at="2026-11-22 10:15:00Z"), T_BAD),
    ("inf-time-date-only", "inference", inf(served_at="2026-11-22"), T_BAD),
    ("inf-time-no-seconds", "inference", inf(served_at="2026-11-22T10:15Z"), T_BAD),
    ("inf-time-feb-30", "inference", inf(served_at="2024-02-30T00:00:00Z"), T_BAD),
    ("inf-time-feb-29-1900", "inference", inf(served_at="1900-02-29T00:00:00Z"), T_BAD),
    ("inf-time-apr-31", "inference", inf(served_at="2026-04-31T00:00:00Z"), T_BAD),
    ("inf-time-leap-second", "inference", inf(served_at="2016-12-31T23:59:60Z"), T_BAD),
    ("inf-time-24h", "inference", inf(served_at="2026-11-22T24:00:00Z"), T_BAD),
    ("inf-time-year-0", "inference", inf(served_at="0000-01-01T00:00:00Z"), T_BAD),
    ("inf-time-newline", "inference", inf(served_at="2026-11-22T10:15:00Z\n"), T_BAD),
    ("inf-time-words", "inference", inf(served_at="yesterday at noon"), T_BAD),
    ("inf-time-us-style", "inference", inf(served_at="11/22/2026 10:15 AM"), T_BAD),
    # -- inference: versions ---------------------------------------------------------------------------
    ("inf-version-2", "inference", inf(schema_version=2), "unknown_schema_version"),
    ("inf-version-0", "inference", inf(schema_version=0), "unknown_schema_version"),
    ("inf-version-string", "inference", inf(schema_version="1"), "unknown_schema_version"),
    ("inf-version-null", "inference", inf(schema_version=None), "unknown_schema_version"),
    ("inf-version-bool", "inference", inf(schema_version=True), "unknown_schema_version"),
    (
        "inf-version-2-other-shape",
        "inference",
        b'{"request_id": 5, "payload": {}, "schema_version": 2}',
        "unknown_schema_version",
    ),
    # -- inference: non-finite numbers -----------------------------------------------------------------
    (
        "inf-feature-1e999",
        "inference",
        inf().replace(b'"score_prior": 0.31', b'"score_prior": 1e999'),
        "non_finite_number",
    ),
    (
        "inf-feature-minus-1e999",
        "inference",
        inf().replace(b'"score_prior": 0.31', b'"score_prior": -1e999'),
        "non_finite_number",
    ),
    (
        "inf-feature-huge-int",
        "inference",
        inf().replace(b'"n_chars": 412', b'"n_chars": 1' + b"0" * 400),
        "non_finite_number",
    ),
    ("inf-latency-1e999", "inference", inf_plus(b'"latency_ms": 1e999'), "non_finite_number"),
    ("inf-confidence-1e999", "inference", inf_plus(b'"confidence": 1e999'), "non_finite_number"),
    (
        "inf-feature-nan-token",
        "inference",
        inf().replace(b'"score_prior": 0.31', b'"score_prior": NaN'),
        "invalid_json",
    ),
    ("inf-latency-infinity-token", "inference", inf_plus(b'"latency_ms": Infinity'), "invalid_json"),
    # -- JSON level ----------------------------------------------------------------------------------------
    ("json-empty", "inference", b"", "empty"),
    ("json-whitespace", "inference", b"  \n", "invalid_json"),
    ("json-array", "inference", b"[]", "not_an_object"),
    ("json-null", "inference", b"null", "not_an_object"),
    ("json-string", "feedback", b'"hello"', "not_an_object"),
    ("json-number", "promotion", b"42", "not_an_object"),
    ("json-truncated", "inference", inf()[:-5], "invalid_json"),
    ("json-trailing", "inference", inf() + b" {}", "invalid_json"),
    ("json-single-quotes", "inference", b"{'schema_version': 1}", "invalid_json"),
    ("json-bom", "inference", b"\xef\xbb\xbf" + inf(), "invalid_json"),
    ("json-invalid-utf8", "inference", inf(output="caf\u00e9").replace(b"\xc3\xa9", b"\xe9"), "invalid_utf8"),
    ("json-lone-surrogate", "inference", inf_plus(b'"x": "\\udc00"'), "invalid_json"),
    ("json-control-char", "inference", inf(output="a").replace(b'"a"', b'"a\x01"'), "invalid_json"),
    ("json-too-deep", "inference", inf_plus(b'"x": ' + b"[" * 5000 + b"]" * 5000), "invalid_json"),
    # -- feedback --------------------------------------------------------------------------------------
    ("fb-was-correct", "feedback", fb(), None),
    ("fb-score-only", "feedback", fb(was_correct=DELETE, score=0.75), None),
    ("fb-both", "feedback", fb(was_correct=False, score=0.0), None),
    ("fb-null-and-score", "feedback", fb(was_correct=None, score=1), None),
    (
        "fb-full",
        "feedback",
        payload(
            "feedback",
            score=0.2,
            failure_cluster="hallucinated_policy",
            source="judge",
            judge_model="judge-llm@2026-10",
            rubric_version="r7",
        ),
        None,
    ),
    ("fb-extra-fields", "feedback", fb(reviewer_team="t3", tags=["a"]), None),
    ("fb-source-null", "feedback", fb(source=None), None),
    ("fb-no-label", "feedback", fb(was_correct=DELETE), "missing_label"),
    ("fb-null-labels", "feedback", fb(was_correct=None, score=None), "missing_label"),
    ("fb-score-above-1", "feedback", fb(score=1.01), "out_of_range"),
    ("fb-score-negative", "feedback", fb(score=-0.01), "out_of_range"),
    ("fb-score-string", "feedback", fb(score="0.5"), "wrong_type"),
    ("fb-was-correct-string", "feedback", fb(was_correct="yes"), "wrong_type"),
    ("fb-was-correct-int", "feedback", fb(was_correct=1), "wrong_type"),
    ("fb-source-unknown", "feedback", fb(source="robot"), "schema_violation"),
    ("fb-judge-model-int", "feedback", fb(judge_model=4), "wrong_type"),
    ("fb-no-observed-at", "feedback", fb(observed_at=DELETE), "missing_field"),
    ("fb-naive-time", "feedback", fb(observed_at="2026-11-22T11:00:00.5"), T_BAD),
    ("fb-no-request-id", "feedback", fb(request_id=DELETE), "missing_field"),
    ("fb-version-2", "feedback", fb(schema_version=2), "unknown_schema_version"),
    # -- promotion -------------------------------------------------------------------------------------
    ("pr-minimal", "promotion", pr(), None),
    ("pr-no-target", "promotion", pr(rollback_target=None), None),
    ("pr-full", "promotion", pr(alias="prod", traffic_fraction=0.1), None),
    ("pr-extra", "promotion", pr(approved_by="ci"), None),
    ("pr-target-missing", "promotion", pr(rollback_target=DELETE), "missing_field"),
    ("pr-target-empty", "promotion", pr(rollback_target=""), "out_of_range"),
    ("pr-target-blank", "promotion", pr(rollback_target="  "), "schema_violation"),
    ("pr-target-int", "promotion", pr(rollback_target=41), "wrong_type"),
    ("pr-fraction-above-1", "promotion", pr(traffic_fraction=1.2), "out_of_range"),
    ("pr-fraction-string", "promotion", pr(traffic_fraction="10%"), "wrong_type"),
    ("pr-alias-list", "promotion", pr(alias=["prod"]), "wrong_type"),
    ("pr-model-blank", "promotion", pr(model_id=" "), "schema_violation"),
    ("pr-time-z-missing", "promotion", pr(promoted_at="2026-11-22T09:00:00"), T_BAD),
    ("pr-time-rfc2822", "promotion", pr(promoted_at="Sun, 22 Nov 2026 09:00:00 +0000"), T_BAD),
    ("pr-version-2", "promotion", pr(schema_version=2), "unknown_schema_version"),
    ("pr-version-missing", "promotion", pr(schema_version=DELETE), "missing_field"),
]


def test_sample_ids_are_unique() -> None:
    ids = [s[0] for s in SAMPLES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("kind", "raw", "expected"), [s[1:] for s in SAMPLES], ids=[s[0] for s in SAMPLES])
def test_schema_and_decoder_agree(kind: Any, raw: bytes, expected: str | None) -> None:
    valid = expected is None
    assert schema_accepts(kind, raw) is valid, "jsonschema verdict"
    assert decoder_accepts(kind, raw) is valid, "decoder verdict"
    if not valid:
        with pytest.raises(DecodeFailure) as info:
            decode(kind, raw, MAX_BYTES)
        assert info.value.error_class == expected


def test_schemas_are_valid_draft_2020_12() -> None:
    for kind, name in SCHEMA_FILES.items():
        schema = load_schema(kind)
        type(VALIDATORS[kind]).check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith("/" + name)
        assert re.fullmatch(r"[a-z]+-event\.v[12]\.schema\.json", name)


def test_every_property_has_a_description() -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                assert isinstance(sub.get("description"), str) and sub["description"], f"{where}.{name}"
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    for kind in SCHEMA_FILES:
        walk(load_schema(kind), kind)


def test_input_schemas_are_forward_compatible() -> None:
    for kind in ("inference", "feedback", "promotion"):
        assert load_schema(kind)["additionalProperties"] is True


def test_schemas_share_the_decoder_constants() -> None:
    """The time pattern, id rule and integer bound are the decoder's own, so the two cannot drift apart."""
    for kind in SCHEMA_FILES:
        defs = load_schema(kind)["$defs"]
        assert defs["datetime"]["pattern"] == RFC3339_PATTERN
        assert defs["id"] == {**defs["id"], "minLength": 1, "maxLength": 512, "pattern": "\\S"}
    props = load_schema("inference")["properties"]
    assert props["tokens_in"]["maximum"] == props["tokens_out"]["maximum"] == INT64_MAX


def test_known_divergences_are_what_the_readme_says() -> None:
    """Documented in schemas/README.md: JSON Schema counts 3.0 as an integer and keeps the last of duplicate
    keys; the decoder wants integers written as integers and validates every occurrence; the decoder
    does not look for invalid UTF-8 in members it ignores."""
    integral_float = inf(tokens_in=3.0)
    version_float = inf(schema_version=1.0)
    duplicate = fb()[:-1] + b', "request_id": 5, "request_id": "r-2"}'
    for kind, raw in (("inference", integral_float), ("inference", version_float), ("feedback", duplicate)):
        assert schema_accepts(kind, raw)
        assert not decoder_accepts(kind, raw)  # type: ignore[arg-type]
    # Invalid UTF-8 in a member the decoder ignores: not JSON text, but the event itself is intact.
    ignored_bad_utf8 = inf_plus(b'"x": "\xff\xfe"')
    assert not schema_accepts("inference", ignored_bad_utf8)
    assert decoder_accepts("inference", ignored_bad_utf8)
    # A time whose UTC instant leaves years 1-9999: matches the pattern, cannot be stored.
    for kind, raw in (("inference", inf(served_at="9999-12-31T23:59:59-01:00")),
                      ("inference", inf(served_at="0001-01-01T00:00:00+01:00"))):
        assert schema_accepts(kind, raw)
        assert not decoder_accepts(kind, raw)  # type: ignore[arg-type]


# -- drift events (published by monitor.alerts) --------------------------------------------------------

DRIFT_FIRING: dict[str, Any] = {
    "event_id": "4f1c0d6e9a7b2c35e8d1f0a9b8c7d6e5",
    "schema_version": 1,
    "state": "firing",
    "fired_at": "2026-11-22T10:42:00.000Z",
    "resolved_at": None,
    "model_id": "intent-clf@v42",
    "signal": "slice",
    "slice": "domain=regulatory",
    "feature": "was_correct",
    "statistic": "accuracy_gap",
    "value": 0.081,
    "threshold": 0.05,
    "severity": "critical",
    "action": "rollback",
    "actions": ["rollback", "investigate"],
    "rollback_target": "intent-clf@v41",
    "window": {"start": "2026-11-22T10:12:00Z", "end": "2026-11-22T10:42:00Z", "sample_count": 1840},
    "reference": {"id": "intent-clf@v41/2026-11-21", "hash": "sha256:0c9e"},
    "suspected_causes": [
        {
            "field": "prompt_template_sha",
            "from": "9f2c1a",
            "to": "b7e004",
            "first_seen": "2026-11-22T10:01:13.500Z",
        }
    ],
}
DRIFT_RESOLVED: dict[str, Any] = {
    **DRIFT_FIRING,
    "event_id": "0aa1b2c3d4e5f60718293a4b5c6d7e8f",
    "state": "resolved",
    "resolved_at": "2026-11-22T11:30:00Z",
    "signal": "input",
    "feature": "n_chars",
    "statistic": "psi",
    "value": 0.12,
    "threshold": 0.2,
    "severity": "warning",
    "action": "retrain",
    "actions": ["retrain"],
    "rollback_target": None,
    "reference": {"id": None, "hash": None},
    "suspected_causes": [],
}


def _drift_valid(event: dict[str, Any]) -> bool:
    return schema_accepts("drift", json.dumps(event).encode())


@pytest.mark.parametrize("event", [DRIFT_FIRING, DRIFT_RESOLVED], ids=["firing", "resolved"])
def test_drift_examples_validate(event: dict[str, Any]) -> None:
    assert _drift_valid(event)


@pytest.mark.parametrize(
    "change",
    [
        {"state": "pending"},
        {"signal": "latency"},
        {"severity": "info"},
        {"action": "page"},
        {"actions": []},
        {"actions": ["rollback", "rollback"]},
        {"rollback_target": None},  # action rollback needs a target
        {"resolved_at": "2026-11-22T11:30:00Z"},  # firing cannot be resolved
        {"fired_at": "2026-11-22T10:42:00"},
        {"window": {"start": "2026-11-22T10:12:00Z", "end": "2026-11-22T10:42:00Z"}},
        {"window": {"start": "2026-11-22T10:12:00Z", "end": "2026-11-22T10:42:00Z", "sample_count": -1}},
        {"reference": None},
        {"suspected_causes": [{"field": "served_at", "from": None, "to": "x", "first_seen": "2026-11-22T10:00:00Z"}]},
        {"suspected_causes": [{"field": "judge_model", "from": None, "first_seen": "2026-11-22T10:00:00Z"}]},
        {"value": "0.08"},
        {"event_id": ""},
        {"schema_version": 2},
    ],
)
def test_drift_schema_rejects(change: dict[str, Any]) -> None:
    assert not _drift_valid({**DRIFT_FIRING, **change})


def test_drift_schema_requires_resolved_at_when_resolved() -> None:
    assert not _drift_valid({**DRIFT_RESOLVED, "resolved_at": None})


def test_drift_events_built_by_the_alerts_package_validate() -> None:
    """The producer side of the contract: ``monitor.alerts.drift_event.build_drift_event``."""
    cause = LineageChange("intent-clf@v42", "judge_model", "judge-llm@2026-09", "judge-llm@2026-10", 1_795_000_000.25)
    firing = AlertState(
        "f" * 64, "SlicewatchSliceRegression", "intent-clf@v42", "domain=regulatory", "slice", "was_correct",
        "accuracy_gap", "firing", "critical", 1_795_000_100.0, 1_795_000_130.0, 0.09, 0.05, 400,
        1_794_998_330.0, 1_795_000_130.0, action="rollback", actions=("rollback", "investigate"),
        rollback_target="intent-clf@v41", suspected_causes=(cause,), fired_at=1_795_000_130.0,
        reference_id="ref-1", reference_hash="abc",
    )  # fmt: skip
    resolved = AlertState(
        "e" * 64, "SlicewatchInputDrift", "summarizer@2026-11", "all", "input", "tokens_in", "psi",
        "resolved", "warning", 1_795_000_100.0, 1_795_003_000.0, 0.31, 0.2, 9000, 1_795_000_000.0,
        1_795_003_000.0, action="retrain", actions=("retrain",), fired_at=1_795_000_200.0,
        resolved_at=1_795_003_000.0,
    )  # fmt: skip
    for alert in (firing, resolved):
        event = build_drift_event(alert)
        errors = [e.message for e in VALIDATORS["drift"].iter_errors(strict_json(json.dumps(event).encode()))]
        assert errors == []


def test_demo_traffic_obeys_the_contract() -> None:
    """Every event the demo generator emits is valid for both the schema and the decoder."""
    gen = TrafficGenerator(seed=3, start=1_795_000_000.0, events_per_s=5.0)
    seen = 0
    for _ in range(6):
        step = gen.step(600.0)
        for kind, events in (
            ("inference", step.inferences[:150]),
            ("feedback", step.feedback[:150]),
            ("promotion", step.promotions),
        ):
            for event in events:
                raw = json.dumps(event).encode()
                assert schema_accepts(kind, raw), kind
                assert decoder_accepts(kind, raw), kind  # type: ignore[arg-type]
                seen += 1
    assert seen > 500


def test_readme_examples_are_valid() -> None:
    """The five examples in schemas/README.md, in order: inference, feedback, promotion, drift v2, drift v1."""
    text = (Path(__file__).resolve().parent.parent / "schemas" / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 5
    for kind, block in zip(("inference", "feedback", "promotion", "drift_v2", "drift"), blocks, strict=True):
        raw = block.encode()
        assert schema_accepts(kind, raw), kind
        if not kind.startswith("drift"):
            assert decoder_accepts(kind, raw), kind  # type: ignore[arg-type]
