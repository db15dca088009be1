"""Drift events conform to schemas/drift-event.v1.schema.json (per alert) and v2 (per incident
transition) and carry stable, distinct ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from monitor.alerts.drift_event import build_drift_event, build_incident_event, event_id
from monitor.alerts.incidents import IncidentTracker
from monitor.alerts.rules import Rule
from monitor.alerts.state import AlertEvaluator
from monitor.snapshot import LineageChange, SignalValue, Snapshot
from tests.stats_fixtures import promotion

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "drift-event.v1.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())

RULES = {
    "quality.accuracy_gap": Rule("quality.accuracy_gap", 0.02, 0.05, min_samples=10, hold_evaluations=1),
    "input.psi": Rule("input.psi", 0.2, 0.3, min_samples=10, hold_evaluations=1, clear_evaluations=1),
}


def snap(t: float, gap: float, psi: float) -> Snapshot:
    return Snapshot(
        t,
        t - 3600,
        t,
        (
            SignalValue("m2", "domain=tax", "quality", "was_correct", "accuracy_gap", gap, 300),
            SignalValue("m2", "domain=tax", "quality", "was_correct", "accuracy", 0.8, 300),
            SignalValue("m2", "all", "input", "age", "psi", psi, 900, reference_id="ref-1", reference_hash="abc"),
        ),
        (
            LineageChange("m2", "prompt_template_sha", None, "sha-2", t - 120),
            LineageChange("m2", "judge_model", "j1", "j2", t - 30),
        ),
    )


def events() -> list[dict]:
    ev = AlertEvaluator(RULES, target_quality=lambda m, s, a, b: 0.95)
    promos = {"m2": promotion("m2", 1_763_800_000.0, "m1")}
    out = []
    for i, (gap, psi) in enumerate([(0.1, 0.5), (0.1, 0.0)]):
        t = 1_763_800_100.0 + 15 * i
        out += [build_drift_event(tr.alert) for tr in ev.evaluate(snap(t, gap, psi), promos, t)]
    return out


def test_events_validate_against_the_schema() -> None:
    evs = events()
    assert {(e["signal"], e["state"]) for e in evs} == {("slice", "firing"), ("input", "firing"), ("input", "resolved")}
    for e in evs:
        errors = sorted(VALIDATOR.iter_errors(e), key=str)
        assert not errors, [err.message for err in errors]
        assert json.loads(json.dumps(e)) == e  # plain JSON


def test_rollback_event_names_its_target_and_causes() -> None:
    (rollback,) = [e for e in events() if e["signal"] == "slice"]
    assert rollback["action"] == "rollback" and rollback["rollback_target"] == "m1"
    assert rollback["actions"] == ["rollback", "investigate"]
    assert [c["field"] for c in rollback["suspected_causes"]] == ["prompt_template_sha", "judge_model"]
    assert rollback["suspected_causes"][0]["from"] is None
    assert rollback["window"]["sample_count"] == 300 and rollback["resolved_at"] is None


def test_resolved_event_has_its_own_id_and_a_resolution_time() -> None:
    evs = [e for e in events() if e["signal"] == "input"]
    firing, resolved = sorted(evs, key=lambda e: e["state"])
    assert firing["event_id"] != resolved["event_id"]
    assert resolved["resolved_at"] is not None and resolved["fired_at"] == firing["fired_at"]
    assert resolved["reference"] == {"id": "ref-1", "hash": "abc"}


def test_event_id_is_stable_and_depends_on_state_and_onset() -> None:
    assert [e["event_id"] for e in events()] == [e["event_id"] for e in events()]
    a = event_id("f" * 64, "firing", 100.0)
    assert a == event_id("f" * 64, "firing", 100.0)
    assert len({a, event_id("f" * 64, "resolved", 100.0), event_id("f" * 64, "firing", 115.0)}) == 3


def test_invalid_event_is_rejected_by_the_schema() -> None:
    (e,) = [e for e in events() if e["signal"] == "slice"]
    bad = {**e, "rollback_target": None}
    with pytest.raises(Exception, match="None is not of type"):
        VALIDATOR.validate(bad)


V2 = Draft202012Validator(
    json.loads((Path(__file__).resolve().parents[1] / "schemas" / "drift-event.v2.schema.json").read_text()),
    format_checker=FormatChecker(),
)


def incident_events() -> list[dict]:
    ev = AlertEvaluator(RULES, target_quality=lambda m, s, a, b: 0.95)
    tracker = IncidentTracker()
    promos = {"m2": promotion("m2", 1_763_800_000.0, "m1")}
    out = []
    for i, (gap, psi) in enumerate([(0.1, 0.5), (0.1, 0.0)] + [(0.0, 0.0)] * 6):  # 5 clears resolve the gap
        t = 1_763_800_100.0 + 15 * i
        transitions = ev.evaluate(snap(t, gap, psi), promos, t)
        out += [build_incident_event(c) for c in tracker.update(transitions, t, states=ev.states, promotions=promos)]
    return out


def test_incident_events_validate_against_v2_and_name_one_incident() -> None:
    evs = incident_events()
    for e in evs:
        errors = sorted(V2.iter_errors(e), key=str)
        assert not errors, [err.message for err in errors]
    # the slice regression and the input drift share the promotion: one incident, primary = slice
    assert len({e["incident_id"] for e in evs}) == 1
    assert evs[0]["kind"] == "opened" and evs[-1]["kind"] == "resolved"
    assert evs[0]["signal"] == "slice" and evs[0]["action"] == "rollback" and evs[0]["rollback_target"] == "m1"
    assert [e["kind"] for e in evs[:2]] == ["opened", "updated"]  # the input alert joined in the same evaluation
    assert {m["signal"] for m in evs[-1]["members"]} == {"slice", "input"}
    assert len({e["event_id"] for e in evs}) == len(evs)
    assert [e["event_id"] for e in incident_events()] == [e["event_id"] for e in evs]  # stable


@pytest.mark.parametrize(
    "change", [{"incident_id": None}, {"kind": "reopened"}, {"members": []}, {"schema_version": 1}]
)
def test_v2_schema_rejects(change: dict) -> None:
    event = {**incident_events()[0], **change}
    assert list(V2.iter_errors(event))
