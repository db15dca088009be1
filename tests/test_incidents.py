"""Incidents (issue 11): one incident per cause, an action that holds, one resolution.

* the tracker groups the alerts of one model that share a cause and fire close together, keeps
  separate causes apart, takes the primary member by rank, never lowers the action, raises it to
  rollback when a rollback member joins, escalates once and resolves only when every member did;
* through the real engine, evaluator and pipeline: a persistent regression on a protected slice
  after a promotion, six hours long, gives exactly one ``opened`` event (``rollback`` to the target),
  at most one ``escalated``, no second incident for that model, and after the rollback exactly one
  ``resolved``; every event validates against ``drift-event.v2``; the v1 setting still publishes
  per-alert events;
* incidents survive a restart (stored in ``drift_incident`` on the real PostgreSQL) with their
  action and members.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from monitor.alerts.incidents import IncidentTracker, routing
from monitor.alerts.rules import DEFAULT_RULES
from monitor.alerts.state import AlertEvaluator, AlertState, Transition
from monitor.drift import DriftEngine
from monitor.events import PromotionEvent
from monitor.pipeline import Pipeline
from monitor.records import QualityBar
from monitor.snapshot import LineageChange
from monitor.store import incidents as incident_store
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from tests.stats_fixtures import StreamSpec, make_batch

V2_SCHEMA = Draft202012Validator(
    json.loads((Path(__file__).parents[1] / "schemas" / "drift-event.v2.schema.json").read_text()),
    format_checker=FormatChecker(),
)


def alert(fp: str, signal: str, slice_: str, feature: str, at: float, *, severity: str = "warning",
          state: str = "firing", action: str = "retrain", target: str | None = None,
          causes: tuple[LineageChange, ...] = (), model: str = "m") -> Transition:
    a = AlertState(fp, "A", model, slice_, signal, feature, "psi", state, severity, at - 30, at, 0.3, 0.2, 500,  # type: ignore[arg-type]
                   at - 3600, at, action=action, actions=(action,), rollback_target=target,
                   suspected_causes=causes, fired_at=at, resolved_at=at if state == "resolved" else None)
    return Transition(fp, "pending" if state == "firing" else "firing", state, at, a)  # type: ignore[arg-type]


def test_alerts_sharing_a_cause_group_and_others_stay_apart():
    tr = IncidentTracker(group_s=1800)
    tr.update([alert("a", "input", "all", "x", 100.0)], 100.0)
    tr.update([alert("b", "input", "language=es", "x", 200.0)], 200.0)  # same feature: joins
    tr.update([alert("c", "input", "language=ja", "y", 300.0)], 300.0)  # nothing shared: its own
    tr.update([alert("d", "input", "language=ja", "y", 300.0, model="other")], 300.0)  # other model
    tr.update([alert("e", "output", "all", "output", 4000.0)], 4000.0)  # shares "all" but 1 h later
    groups = sorted(sorted(m.fingerprint for m in i.members) for i in tr.open_incidents)
    assert groups == [["a", "b"], ["c"], ["d"], ["e"]]


def test_a_shared_lineage_change_holds_an_incident_together_however_late():
    change = LineageChange("m", "prompt_template_sha", "a", "b", 50.0)
    tr = IncidentTracker(group_s=1800)
    tr.update([alert("a", "output", "all", "output", 100.0, causes=(change,))], 100.0)
    tr.update([alert("b", "input", "language=es", "x", 9000.0, causes=(change,))], 9000.0)
    (inc,) = tr.open_incidents
    assert [m.fingerprint for m in inc.members] == ["a", "b"] and inc.suspected_causes == (change,)


def test_primary_action_severity_and_lifecycle():
    tr = IncidentTracker(group_s=1800)
    kinds = [t.kind for t in tr.update([alert("in", "input", "domain=tax", "x", 100.0)], 100.0)]
    assert kinds == ["opened"]
    # a rollback member joins (same slice): the primary becomes the slice, the action is raised
    t = tr.update([alert("sl", "slice", "domain=tax", "was_correct", 200.0, severity="critical",
                         action="rollback", target="m1")], 200.0)
    assert [x.kind for x in t] == ["updated", "escalated"]
    inc = t[-1].incident
    assert inc.primary.fingerprint == "sl" and inc.action == "rollback" and inc.rollback_target == "m1"
    assert routing(inc) == "page" and inc.severity == "critical"
    # the slice alert resolves and fires again as a warning: same incident, action and severity hold
    tr.update([alert("sl", "slice", "domain=tax", "was_correct", 300.0, state="resolved")], 300.0)
    again = tr.update([alert("sl", "slice", "domain=tax", "was_correct", 400.0)], 400.0)
    assert again == [] and tr.open_incidents[0].action == "rollback" and tr.open_incidents[0].severity == "critical"
    # a retrain member joining never lowers the action
    tr.update([alert("in2", "input", "domain=tax", "z", 500.0)], 500.0)
    assert tr.open_incidents[0].action == "rollback"
    # resolved only when every member resolved, once
    assert tr.update([alert("sl", "slice", "domain=tax", "was_correct", 600.0, state="resolved"),
                      alert("in", "input", "domain=tax", "x", 600.0, state="resolved")], 600.0) == []
    done = tr.update([alert("in2", "input", "domain=tax", "z", 700.0, state="resolved")], 700.0)
    assert [x.kind for x in done] == ["resolved"] and tr.open_incidents == []


def test_ids_are_stable_across_runs():
    def run():
        tr = IncidentTracker()
        out = tr.update([alert("a", "input", "all", "x", 100.0)], 100.0)
        out += tr.update([alert("b", "output", "all", "output", 200.0)], 200.0)
        return [(t.incident.incident_id, t.event_id) for t in out]

    first, second = run(), run()
    assert first == second and len({e for _, e in first}) == 2


# ---- through the engine, the evaluator and the pipeline ------------------------------------------

PROMOTED_AT = 2 * 3600.0
ROLLED_BACK_AT = PROMOTED_AT + 6 * 3600.0


def _promotion() -> PromotionEvent:
    return PromotionEvent(schema_version=1, model_id="v2", rollback_target="v1",
                          promoted_at=datetime.fromtimestamp(PROMOTED_AT, UTC), traffic_fraction=1.0)


def _replay(event_version: int = 2, hours: float = 10.0):
    engine = DriftEngine(bucket_seconds=60, window_buckets=60, allowed_lateness_s=600, min_samples=200,
                         auto_reference_events=6000, protected_slices={"language": ["es"]},
                         short_windows=(5, 15),
                         quality_bars={"*": {"all": QualityBar(0.87), "language=es": QualityBar(0.87)}})
    evaluator = AlertEvaluator(dict(DEFAULT_RULES), promotion_watch_s=3600,
                               target_quality=lambda model, sl, since, until: 0.90)
    events: list[dict] = []
    pipeline = Pipeline(engine=engine, evaluator=evaluator, db=None, evaluate_every_s=15.0,
                        on_drift_event=events.append, event_version=event_version)
    rng = np.random.default_rng(8)
    v1 = StreamSpec(model_id="v1", n_numeric=1, lang_p=(0.8, 0.1, 0.04, 0.03, 0.03))
    v2 = replace(v1, model_id="v2", onset=PROMOTED_AT, slice_accuracy_drop={("language", "es"): 0.15})
    for q in range(int(hours * 3600 / 15)):
        start, end = 15.0 * q, 15.0 * (q + 1)
        if start == PROMOTED_AT:
            pipeline._promote(_promotion())
        spec = v2 if PROMOTED_AT <= start < ROLLED_BACK_AT else v1
        ev, lab = make_batch(rng, spec, 50, start, end)
        engine.observe(ev, lab, end)
        pipeline.tick(end)
    return events, pipeline


@pytest.fixture(scope="module")
def replayed():
    return _replay()


def test_a_persistent_regression_is_one_incident_one_action_one_resolution(replayed):
    events, _ = replayed
    for e in events:
        errors = sorted(V2_SCHEMA.iter_errors(e), key=str)
        assert not errors, [x.message for x in errors]
    v2 = [e for e in events if e["model_id"] == "v2"]
    kinds = [e["kind"] for e in v2]
    assert kinds.count("opened") == 1, kinds
    assert kinds.count("resolved") == 1 and kinds[-1] == "resolved", kinds
    assert kinds.count("escalated") <= 1
    assert len({e["incident_id"] for e in v2}) == 1
    opened = v2[0]
    assert opened["action"] == "rollback" and opened["rollback_target"] == "v1"
    assert opened["signal"] == "slice" and opened["slice"] == "language=es"
    # the action holds for the incident's whole life, through every update and the resolution
    assert {(e["action"], e["rollback_target"]) for e in v2} == {("rollback", "v1")}
    resolved = v2[-1]
    assert datetime.fromisoformat(resolved["resolved_at"].replace("Z", "+00:00")).timestamp() >= ROLLED_BACK_AT
    assert datetime.fromisoformat(opened["fired_at"].replace("Z", "+00:00")).timestamp() >= PROMOTED_AT
    # v1 serving alone is quiet, before the promotion and after the rollback
    assert [e for e in events if e["model_id"] == "v1" and e["kind"] == "opened"] == []


def test_the_v1_setting_still_publishes_per_alert_events():
    events, pipeline = _replay(event_version=1, hours=3.0)
    assert events and all(e["schema_version"] == 1 and "incident_id" not in e for e in events)
    # one event per alert firing or resolution (not per incident transition)
    assert len(events) == len(pipeline.stats.transitions) > 0
    assert [e["statistic"] for e in events] == [t.alert.statistic for t in pipeline.stats.transitions]


@pytest.mark.integration
def test_incidents_survive_a_restart_in_postgresql(replayed, pg_url):
    _, pipeline = replayed
    changes = [t for t in pipeline.stats.incident_transitions if t.incident.model_id == "v2"]
    opened, resolved = changes[0].incident, changes[-1].incident
    assert (opened.state, resolved.state) == ("open", "resolved")
    upgrade(pg_url)
    db = make_engine(pg_url)
    try:
        incident_store.save_incidents(db, [opened])
        loaded = incident_store.load_incidents(db, opened.updated_at, 900.0)
        assert loaded == [opened]  # members, action, target, causes: all as they were
        restarted = IncidentTracker()
        restarted.restore(loaded)
        # after the restart, the member firing again stays in the incident (no second "opened")
        member = opened.members[0].alert
        again = restarted.update([Transition(member.fingerprint, "resolved", "firing", opened.updated_at + 15,
                                             replace(member, fired_at=opened.updated_at + 15))],
                                 opened.updated_at + 15)
        assert [t.kind for t in again] == []
        assert restarted.open_incidents[0].incident_id == opened.incident_id
        incident_store.save_incidents(db, [resolved])
        assert incident_store.load_incidents(db, resolved.updated_at, 900.0) == [resolved]
        assert incident_store.load_incidents(db, resolved.updated_at + 901, 900.0) == []  # past the resend period
        assert incident_store.load_incidents(db, resolved.updated_at, 900.0, model_ids=["nobody"]) == []
    finally:
        db.dispose()
