"""drift_alert / drift_event persistence and slice accuracy, on real PostgreSQL and on SQLite."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from monitor.alerts.drift_event import build_drift_event
from monitor.alerts.rules import Rule
from monitor.alerts.state import AlertEvaluator
from monitor.errors import StoreError
from monitor.pipeline import Pipeline
from monitor.snapshot import LineageChange, SignalValue, Snapshot
from monitor.store import alerts as store
from monitor.store.base import metadata
from monitor.store.engine import make_engine
from monitor.store.evaluation import save_evaluation
from monitor.store.incidents import drift_incident
from monitor.store.tables import inference_log
from tests.stats_fixtures import promotion
from tests.test_alert_kafka import add_events


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'a.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    metadata.create_all(eng, tables=[inference_log, store.drift_alert, store.drift_event, drift_incident])
    yield eng
    eng.dispose()


RULES = {
    "quality.accuracy_gap": Rule("quality.accuracy_gap", 0.02, 0.05, min_samples=10, hold_evaluations=2),
    "input.psi": Rule("input.psi", 0.2, 0.3, min_samples=10, hold_evaluations=1, clear_evaluations=1),
}


def snapshot(t: float, gap: float, psi: float) -> Snapshot:
    return Snapshot(
        t,
        t - 600,
        t,
        (
            SignalValue("m2", "domain=tax", "quality", "was_correct", "accuracy_gap", gap, 80, reference_id="r1"),
            SignalValue("m2", "domain=tax", "quality", "was_correct", "accuracy", 0.8, 80),
            SignalValue("m2", "all", "input", "x", "psi", psi, 500, p_value_adjusted=0.001, reference_hash="h"),
        ),
        (LineageChange("m2", "embedding_model", "e1", "e2", t - 100),),
    )


def evaluator(engine: Engine) -> AlertEvaluator:
    return AlertEvaluator(
        RULES,
        promotion_watch_s=3600,
        resolved_resend_s=300,
        target_quality=lambda m, s, a, b: store.slice_accuracy(engine, m, s, a, b),
    )


def test_restart_neither_refires_nor_loses_resolution(engine: Engine) -> None:
    promos = {"m2": promotion("m2", 0.0, "m1")}
    ev = evaluator(engine)
    t0 = 1_000.0
    all_transitions = []
    for i, (gap, psi) in enumerate([(0.1, 0.5), (0.1, 0.1)]):
        now = t0 + 15 * i
        ts = ev.evaluate(snapshot(now, gap, psi), promos, now)
        store.save_alert_states(engine, ev.states.values(), ts)
        all_transitions += ts
    # quality alert firing (held 2), psi alert fired then resolved
    states = {s.signal: s for s in ev.states.values()}
    assert states["slice"].state == "firing" and states["input"].state == "resolved"

    loaded = store.load_alert_states(engine, now=t0 + 30, resolved_resend_s=300)
    assert sorted(loaded, key=lambda s: s.fingerprint) == sorted(ev.states.values(), key=lambda s: s.fingerprint)

    restarted = evaluator(engine)
    restarted.restore(loaded)
    ts = restarted.evaluate(snapshot(t0 + 30, 0.1, 0.1), promos, t0 + 30)
    assert ts == []  # firing stays firing without a new transition; resolved stays resolved
    # past the resend period the resolved alert is no longer loaded, the firing one still is
    later = store.load_alert_states(engine, now=t0 + 15 + 301, resolved_resend_s=300)
    assert [s.state for s in later] == ["firing"]
    assert store.load_alert_states(engine, now=t0 + 30, resolved_resend_s=300, model_ids=["m9"]) == []
    assert len(store.load_alert_states(engine, now=t0 + 30, resolved_resend_s=300, model_ids=["m2"])) == 2

    n = add_events(engine, all_transitions, now=t0 + 15)
    assert n == 3  # psi firing, psi resolved, slice firing
    assert add_events(engine, all_transitions, now=t0 + 20) == 0  # idempotent on event_id
    rows = store.unpublished_events(engine)
    assert {r[2]["state"] for r in rows} == {"firing", "resolved"}
    assert all(r[2]["suspected_causes"][0]["field"] == "embedding_model" for r in rows)
    store.mark_published(engine, [rows[0][0]], now=t0 + 40)
    assert [r[0] for r in store.unpublished_events(engine)] == [r[0] for r in rows[1:]]
    with engine.connect() as conn:
        published_at = conn.execute(
            select(store.drift_event.c.published_at).where(store.drift_event.c.event_id == rows[0][0])
        ).scalar_one()
    assert store._ts(published_at) == t0 + 40
    assert build_drift_event(states["slice"])["event_id"] in {r[0] for r in rows}


def test_pending_that_goes_inactive_is_persisted_as_inactive(engine: Engine) -> None:
    ev = evaluator(engine)
    ts = ev.evaluate(snapshot(0, 0.1, 0.0), {}, 0)
    store.save_alert_states(engine, ev.states.values(), ts)
    ts = ev.evaluate(snapshot(15, 0.0, 0.0), {}, 15)
    assert [t.to_state for t in ts] == ["inactive"]
    store.save_alert_states(engine, ev.states.values(), ts)
    assert store.load_alert_states(engine, 15, 300) == []
    with engine.connect() as conn:
        assert conn.execute(select(store.drift_alert.c.state)).scalars().all() == ["inactive"]


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def test_slice_accuracy_matches_python_oracle(engine: Engine) -> None:
    rng = random.Random(7)
    rows = []
    for i in range(400):
        in_slice = rng.random() < 0.5
        as_feature = rng.random() < 0.3  # the slice key sometimes only in input_features
        domain = "tax" if in_slice else "retail"
        rows.append(
            {
                "request_id": f"r{i}",
                "model_id": rng.choice(["m1", "m2"]),
                "input_hash": "0" * 64,
                "input_features": {"domain": domain, "n": i} if as_feature else {"n": i},
                "output": "",
                "served_at": _dt(1_000 + i),
                "was_correct": None if rng.random() < 0.1 else rng.random() < (0.9 if in_slice else 0.7),
                "slice": {} if as_feature else {"domain": domain},
                "ingested_at": _dt(2_000),
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(inference_log), rows)

    def picked_rows(model: str, domain: str | None, since: float, until: float) -> list[bool]:
        return [
            r["was_correct"]
            for r in rows
            if r["model_id"] == model
            and r["was_correct"] is not None
            and since <= r["served_at"].timestamp() <= until
            and (domain is None or {**r["input_features"], **r["slice"]}.get("domain") == domain)
        ]

    def oracle(model: str, domain: str | None, since: float, until: float) -> float | None:
        picked = picked_rows(model, domain, since, until)
        return sum(picked) / len(picked) if picked else None

    for model, sl, domain, since, until in [
        ("m1", "domain=tax", "tax", 1_000, 1_399),
        ("m2", "domain=retail", "retail", 1_100, 1_250),
        ("m1", "all", None, 1_050, 1_300),
        ("m2", "domain=tax", "tax", 1_000, 1_399),
    ]:
        got = store.slice_accuracy(engine, model, sl, since, until)
        assert got == pytest.approx(oracle(model, domain, since, until), abs=1e-12)
        correct, total = store.slice_outcomes(engine, model, sl, since, until)
        assert total == len(picked_rows(model, domain, since, until))
        assert correct == sum(picked_rows(model, domain, since, until))
    assert store.slice_accuracy(engine, "m1", "domain=nowhere", 0, 10_000) is None
    assert store.slice_accuracy(engine, "m3", "all", 0, 10_000) is None
    assert store.slice_outcomes(engine, "m3", "all", 0, 10_000) == (0, 0)
    # every slice in one scan: the same counts as the oracle for each
    labels = ["all", "domain=tax", "domain=retail", "domain=nowhere"]
    many = store.slices_outcomes(engine, "m1", labels, 1_000, 1_399)
    for label, domain in zip(labels, [None, "tax", "retail", "nowhere"], strict=True):
        picked = picked_rows("m1", domain, 1_000, 1_399)
        assert many[label] == (sum(picked), len(picked))
    with pytest.raises(ValueError):
        store.slices_outcomes(engine, "m1", ["domain"], 0, 1)


def test_one_batch_is_published_in_its_own_order(engine: Engine) -> None:
    """An incident opened, updated and escalated in one evaluation: the outbox hands the events on
    in that order, whatever their ids sort to, and before the next evaluation's."""
    batch = [{"event_id": f"{c}-{i}", "model_id": "m", "state": "firing", "kind": k}
             for i, (c, k) in enumerate([("z", "opened"), ("a", "updated"), ("m", "escalated")])]
    assert store.add_drift_events(engine, batch, ["inc"] * 3, 1_000.0) == 3
    assert store.add_drift_events(engine, [{"event_id": "0-next", "model_id": "m", "state": "firing"}],
                                  ["inc"], 1_015.0) == 1
    assert [r[0] for r in store.unpublished_events(engine)] == ["z-0", "a-1", "m-2", "0-next"]


def _count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(table)).all())


def test_an_evaluation_is_saved_in_one_transaction(engine: Engine) -> None:
    """Alert states, incidents and drift events of one evaluation: a drift event the database
    refuses (no fingerprint: NOT NULL) leaves none of them written."""
    ev = evaluator(engine)
    ts = ev.evaluate(snapshot(1_000.0, 0.1, 0.5), {}, 1_000.0)  # psi fires, the gap is pending
    ts = [t for t in ts if t.to_state == "firing"]
    assert len(ev.states) == 2 and len(ts) == 1
    events = [build_drift_event(t.alert) for t in ts]
    with pytest.raises(StoreError):
        save_evaluation(engine, ev.states.values(), ts, [], events, [None] * len(events), 1_000.0)  # type: ignore[list-item]
    assert _count(engine, store.drift_alert) == 0 and _count(engine, store.drift_event) == 0
    assert save_evaluation(engine, ev.states.values(), ts, [], events, [t.fingerprint for t in ts], 1_000.0) == 1
    assert _count(engine, store.drift_alert) == len(ev.states) and _count(engine, store.drift_event) == 1


def unreachable(engine: Engine, tmp_path: Path) -> Engine:
    """An engine of the same dialect whose database cannot be reached (an outage)."""
    if engine.dialect.name == "postgresql":
        return make_engine("postgresql+psycopg://slicewatch@127.0.0.1:1/gone", connect_timeout_s=1)
    return make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")


class ScriptedStats:
    """The statistics engine as the pipeline reads it, giving a prepared snapshot per evaluation."""

    def __init__(self, snapshots: dict[float, Snapshot]) -> None:
        self.snapshots = snapshots
        self.models = ("m2",)
        self.slice_labels: list[str] = []

    def evaluate(self, now: float) -> Snapshot:
        return self.snapshots[now]

    def observe(self, *args: object) -> None: ...
    def set_reference(self, *args: object) -> None: ...
    def reference(self, model_id: str) -> None: ...
    def new_references(self) -> list[object]: return []
    def set_target_outcomes(self, *args: object) -> None: ...
    def set_canary(self, *args: object) -> None: ...


def test_an_evaluation_the_database_refused_is_saved_with_the_next(engine: Engine, tmp_path: Path) -> None:
    """The database is out of reach at the first evaluation (an outage): nothing of it is written,
    and its incident and drift events are written with the next evaluation's."""
    t0 = 1_005.0
    stats = ScriptedStats({t0: snapshot(t0, 0.0, 0.5), t0 + 15: snapshot(t0 + 15, 0.0, 0.5)})
    published: list[dict] = []
    pipe = Pipeline(engine=stats, evaluator=evaluator(engine), db=unreachable(engine, tmp_path),
                    evaluate_every_s=15.0, on_drift_event=published.append)
    pipe.evaluate(t0)
    assert published and _count(engine, store.drift_alert) == 0 and _count(engine, drift_incident) == 0
    pipe.db = engine  # back
    pipe.evaluate(t0 + 15)  # no new transition: only what waited is new
    with engine.connect() as conn:
        stored = conn.execute(select(store.drift_event.c.event_id)).scalars().all()
    assert sorted(stored) == sorted(e["event_id"] for e in published)
    assert _count(engine, drift_incident) == 1 and _count(engine, store.drift_alert) == 1
    assert pipe._unsaved_events == [] and pipe._unsaved_incidents == []


def test_a_takeover_drops_what_waits_for_a_save(engine: Engine, tmp_path: Path) -> None:
    """A refused save, then the model is taken over (its states reloaded from the store, or it left
    this replica): what waited is not written later over what the store holds now."""
    t0 = 1_005.0
    stats = ScriptedStats({t0: snapshot(t0, 0.0, 0.5), t0 + 15: snapshot(t0 + 15, 0.0, 0.5)})
    pipe = Pipeline(engine=stats, evaluator=evaluator(engine), db=unreachable(engine, tmp_path),
                    evaluate_every_s=15.0)
    pipe.evaluate(t0)
    assert pipe._unsaved_events and pipe._unsaved_incidents
    pipe.drop_unsaved(["m9"])  # another model's takeover keeps them
    assert pipe._unsaved_events and pipe._unsaved_incidents
    pipe.drop_unsaved(["m2"])
    assert pipe._unsaved_events == [] and pipe._unsaved_incidents == []
    pipe.db = engine
    pipe.evaluate(t0 + 15)  # no new transition, and the first evaluation's event was dropped
    assert _count(engine, store.drift_event) == 0


def test_an_alert_gone_inactive_during_a_refused_save_is_saved_inactive_later(engine: Engine, tmp_path: Path) -> None:
    """Pending (saved), then inactive while the database is out of reach: the next evaluation's
    save writes it inactive; a restart would otherwise restore it pending, half way to firing."""
    stats = ScriptedStats({0.0: snapshot(0.0, 0.1, 0.0), 15.0: snapshot(15.0, 0.0, 0.0),
                           30.0: snapshot(30.0, 0.0, 0.0)})
    pipe = Pipeline(engine=stats, evaluator=evaluator(engine), db=engine, evaluate_every_s=15.0)
    pipe.evaluate(0.0)
    with engine.connect() as conn:
        assert conn.execute(select(store.drift_alert.c.state)).scalars().all() == ["pending"]
    pipe.db = unreachable(engine, tmp_path)
    pipe.evaluate(15.0)  # pending -> inactive: not saved
    pipe.db = engine
    assert [t.to_state for t in pipe._unsaved_inactive] == ["inactive"]
    pipe.evaluate(30.0)
    with engine.connect() as conn:
        assert conn.execute(select(store.drift_alert.c.state)).scalars().all() == ["inactive"]
    assert store.load_alert_states(engine, 30.0, 300) == [] and pipe._unsaved_inactive == []


def test_rows_the_database_refuses_are_not_carried_on(tmp_path: Path) -> None:
    """A refusal (here a trigger's ABORT: an IntegrityError, not an outage) gives that evaluation's
    events up instead of carrying them into every later save, which would all be refused too."""
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    metadata.create_all(engine, tables=[inference_log, store.drift_alert, store.drift_event, drift_incident])
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON drift_event BEGIN "
                             "SELECT RAISE(ABORT, 'refused'); END")
    t0 = 1_005.0
    stats = ScriptedStats({t0: snapshot(t0, 0.0, 0.5), t0 + 15: snapshot(t0 + 15, 0.0, 0.5)})
    pipe = Pipeline(engine=stats, evaluator=evaluator(engine), db=engine, evaluate_every_s=15.0)
    pipe.evaluate(t0)
    assert _count(engine, store.drift_alert) == 0  # one transaction: nothing of it
    assert pipe._unsaved_events == [] and pipe._unsaved_incidents == []
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse")
    pipe.evaluate(t0 + 15)
    assert _count(engine, store.drift_event) == 0 and _count(engine, store.drift_alert) == 1
    engine.dispose()
