"""Repository against the real PostgreSQL and the embedded SQLite default: idempotency, label join."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, MetaData, String, Table, inspect, select

from monitor.records import DeadLetterRecord, Label, Origin, WriteResult
from monitor.store.alerts import slices_outcomes
from monitor.store.engine import make_engine
from monitor.store.erasure import erase
from monitor.store.migrate import current, upgrade
from monitor.store.repository import Repository
from monitor.store.sql import ids_param, in_ids, in_ids_param
from monitor.store.tables import inference_log
from monitor.store.target_outcomes import TargetOutcomes
from tests.ingest_fixtures import BASE, feedback, inference, promotion


@pytest.fixture(params=["postgresql", "sqlite"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repository]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/s.db"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield Repository(engine)
    finally:
        engine.dispose()


def written(repo: Repository, *args: Any, **kwargs: Any) -> WriteResult:
    """One batch transaction; what the statistics get from it."""
    return repo.write(*args, **kwargs).result


def test_migration_creates_tables_and_index(repo: Repository) -> None:
    url = repo.engine.url.render_as_string(hide_password=False)
    assert current(url) is not None
    upgrade(url)  # idempotent at head
    insp = inspect(repo.engine)
    assert {"inference_log", "model_version", "dead_letter", "pending_label"} <= set(insp.get_table_names())
    indexes = {tuple(ix["column_names"]) for ix in insp.get_indexes("inference_log")}
    assert ("model_id", "served_at") in indexes


def test_duplicates_in_batch_and_across_batches_are_written_once(repo: Repository) -> None:
    events = [inference(i) for i in range(50)]
    first = written(repo, events + events[:10], [], [], [], ingested_at=BASE)
    assert [e.request_id for e in first.new_inferences] == [e.request_id for e in events]
    assert first.duplicates == 10
    again = written(repo, [(e, Origin("t", 0, i)) for i, e in enumerate(events)], [], [], [], BASE + 1)
    assert again.new_inferences == [] and again.duplicates == 50
    assert repo.counts()["inference_log"] == 50


def test_row_contents_round_trip(repo: Repository) -> None:
    ev = inference(7)
    written(repo, [(ev, Origin("inference-events", 2, 41))], [], [], [], ingested_at=BASE + 100)
    [row] = repo.load_rows(["m-v1"], BASE, BASE + 1000)
    assert row["request_id"] == "r7"
    assert row["served_at"] == pytest.approx(ev.served_at.timestamp())
    assert row["input_features"] == {"age": 27.0, "country": "fr", "vip": False}
    assert row["slice"] == {"tier": "pro"} and row["lineage"] == {"prompt_template_sha": "abc123"}
    assert row["was_correct"] is None and row["label_observed_at"] is None
    assert repo.load_rows(["other"], BASE, BASE + 1000) == []
    assert repo.load_rows(None, BASE + 8, BASE + 1000) == []
    with repo.engine.connect() as conn:
        stored = conn.execute(select(inference_log.c.topic, inference_log.c.partition, inference_log.c.offset,
                                     inference_log.c.input_hash)).one()
    assert tuple(stored[:3]) == ("inference-events", 2, 41) and len(stored.input_hash) == 64


def test_minimal_event_and_escapes_round_trip(repo: Repository) -> None:
    import msgspec

    from monitor.events import InferenceEvent

    ev = msgspec.convert({"schema_version": 1, "request_id": "a\\b\t\"c", "model_id": "m@v1",
                          "served_at": "2025-10-09T12:00:00+02:00", "input_features": {"x\\": "é\n"},
                          "output": "tab\there"}, InferenceEvent)
    assert written(repo, [ev], [], [], [], BASE).new_inferences == [ev]
    [row] = repo.load_rows(None, 0, 2e9)
    assert row["request_id"] == 'a\\b\t"c' and row["output"] == "tab\there"
    assert row["input_features"] == {"x\\": "é\n"}
    assert row["served_at"] == ev.served_at.timestamp()
    assert row["confidence"] is None and row["slice"] == {} and row["lineage"] == {}
    assert row["tokens_in"] is None


def test_label_after_prediction_latest_observed_wins(repo: Repository) -> None:
    written(repo, [inference(1)], [], [], [], BASE)
    r1 = written(repo, [], [feedback(1, BASE + 10, correct=True)], [], [], BASE)
    [c1] = r1.label_changes
    assert c1.old is None and c1.new.was_correct is True and c1.model_id == "m-v1"
    assert c1.slice == {"tier": "pro"} and c1.served_at == pytest.approx(BASE + 1)
    # older label: ignored; same time: first kept; later: replaces and reports the old one
    assert written(repo, [], [feedback(1, BASE + 5, correct=False)], [], [], BASE).label_changes == []
    assert written(repo, [], [feedback(1, BASE + 10, correct=False)], [], [], BASE).label_changes == []
    r4 = written(repo, [], [feedback(1, BASE + 20, correct=False)], [], [], BASE)
    [c4] = r4.label_changes
    assert c4.old == Label(was_correct=True, score=None, source="human", observed_at=BASE + 10)
    assert c4.new.was_correct is False
    # redelivery of the winning label changes nothing
    assert written(repo, [], [feedback(1, BASE + 20, correct=False)], [], [], BASE).label_changes == []
    [row] = repo.load_rows(None, BASE, BASE + 10)
    assert row["was_correct"] is False and row["label_observed_at"] == pytest.approx(BASE + 20)


def test_label_before_prediction_waits_then_applies(repo: Repository) -> None:
    r = written(repo, [], [feedback(3, BASE + 30, correct=True), feedback(3, BASE + 40, correct=False),
                              feedback(4, BASE + 30)], [], [], BASE)
    assert r.label_changes == [] and r.pending_labels == 2
    r2 = written(repo, [], [feedback(3, BASE + 35, correct=True)], [], [], BASE)  # older than pending
    assert r2.pending_labels == 0
    assert repo.counts()["pending_label"] == 2
    r3 = written(repo, [inference(3)], [], [], [], BASE)
    [c] = r3.label_changes
    assert c.request_id == "r3" and c.old is None and c.new.was_correct is False
    assert c.new.observed_at == pytest.approx(BASE + 40)
    assert repo.counts()["pending_label"] == 1  # r4 has no prediction: still waiting
    [row] = [x for x in repo.load_rows(None, BASE, BASE + 10) if x["request_id"] == "r3"]
    assert row["was_correct"] is False
    # redelivering the prediction does not re-apply anything
    assert written(repo, [inference(3)], [], [], [], BASE).label_changes == []


def test_prediction_and_labels_in_one_batch(repo: Repository) -> None:
    r = written(repo, [inference(5)], [feedback(5, BASE + 9, correct=True),
                                          feedback(5, BASE + 8, correct=False)], [], [], BASE)
    [c] = r.label_changes
    assert c.old is None and c.new.was_correct is True and r.duplicates == 1


def test_promotions_and_dead_letters_are_idempotent(repo: Repository) -> None:
    p = promotion("m-v2", BASE + 5, rollback="m-v1")
    dl = DeadLetterRecord("inference-events", 0, 9, b"k", b"{bad", 4, "json", "invalid_json", "bad json", BASE)
    r = written(repo, [], [], [p, p], [dl, dl], BASE)
    assert [x.model_id for x in r.promotions] == ["m-v2"] and r.promotions[0].rollback_target == "m-v1"
    assert written(repo, [], [], [p], [dl], BASE).promotions == []
    [stored] = repo.promotions()
    assert stored.promoted_at.timestamp() == pytest.approx(BASE + 5)
    assert repo.dead_letters() == [dl]
    assert repo.unpublished_dead_letters() == [dl]
    repo.mark_published([dl], BASE + 1)
    assert repo.unpublished_dead_letters() == []
    outcome = repo.write([], [], [], [dl], BASE)
    assert outcome.new_dead_letters == []


def test_migration_0001_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/only1.db"
    upgrade(url, "0001_ingest")
    assert current(url) == "0001_ingest"
    engine = make_engine(url)
    try:
        assert Repository(engine).counts() == {
            "inference_log": 0, "pending_label": 0, "model_version": 0, "dead_letter": 0
        }
    finally:
        engine.dispose()


def test_sqlite_request_ids_with_a_nul_join_their_labels(tmp_path: Path) -> None:
    """SQLite stores an id with a NUL character (PostgreSQL dead-letters it): its labels join, a
    later label replaces the first, and nothing waits. (SQLite's ``json_each``, which the reads by
    request id use, ends a text at a NUL: such ids are bound one parameter each.)"""
    url = f"sqlite:///{tmp_path}/s.db"
    upgrade(url)
    engine = make_engine(url)
    repo = Repository(engine)
    rid = "r\x00x"
    inf, fb1, fb2 = (msgspec.structs.replace(inference(1), request_id=rid),
                     msgspec.structs.replace(feedback(1, BASE + 10, correct=True), request_id=rid),
                     msgspec.structs.replace(feedback(1, BASE + 20, correct=False), request_id=rid))
    assert written(repo, [], [fb1], [], [], BASE).pending_labels == 1  # before its prediction: waits
    [c1] = written(repo, [inf], [], [], [], BASE).label_changes  # the prediction takes it
    assert c1.request_id == rid and c1.new.was_correct is True and repo.counts()["pending_label"] == 0
    [c2] = written(repo, [], [fb2], [], [], BASE).label_changes
    assert c2.old is not None and c2.old.was_correct is True and c2.new.was_correct is False
    engine.dispose()


IDS = st.text(st.sampled_from(["a", "b", "\x00", "'", '"', "\\", "é", "😀", " "]), max_size=4) | st.text(max_size=6)


@settings(max_examples=80, deadline=None)
@given(st.lists(IDS, max_size=12, unique=True), st.data())
def test_ids_in_selects_exactly_the_stored_ids_given(stored: list[str], data: st.DataObject) -> None:
    """``in_ids`` and a statement built once with ``in_ids_param`` against Python's set on SQLite,
    for any text ids (quotes, unicode, NUL, empty), some stored and some not."""
    asked = data.draw(st.lists(st.sampled_from(stored) | IDS if stored else IDS, max_size=12))
    engine = make_engine("sqlite://")
    t = Table("t", MetaData(), Column("id", String, primary_key=True))
    t.create(engine)
    with engine.begin() as conn:
        if stored:
            conn.execute(t.insert(), [{"id": i} for i in stored])
        want = sorted(set(stored) & set(asked))
        assert sorted(conn.execute(select(t.c.id).where(in_ids(t.c.id, asked, "sqlite"))).scalars()) == want
        as_list, params = ids_param(asked, "sqlite")
        built = select(t.c.id).where(in_ids_param(t.c.id, "sqlite", as_list=as_list))
        assert sorted(conn.execute(built, params).scalars()) == want
    engine.dispose()


def test_target_outcomes_from_the_label_log_equal_a_fresh_scan(repo: Repository) -> None:
    """The rollback target's outcomes, scanned once and then updated from the label log, against
    ``slices_outcomes``'s full scan after every write: first labels, corrections, stale labels,
    score-only labels, labels that wait for their prediction, rows outside the range and of another
    model; slices from the ``slice`` JSON and from the input features."""
    reader = TargetOutcomes(repo._engine)
    slices = ["all", "tier=pro", "country=de", "country=fr"]
    since, until = BASE + 5, BASE + 30
    written(repo, [inference(i) for i in range(40)] + [inference(i, model="m-v2") for i in range(100, 110)],
            [], [], [], BASE)
    rng = random.Random(7)
    observed = BASE + 100.0
    for step in range(60):
        observed += 1.0
        i = rng.choice([*range(40), *range(100, 110), 200 + step % 7])  # 200+: predictions that come later
        fb = feedback(i, observed - (30.0 if rng.random() < 0.2 else 0.0), correct=rng.random() < 0.7)
        if rng.random() < 0.15:
            fb = msgspec.structs.replace(fb, was_correct=None, score=0.5)
        later = [inference(200 + step % 7, served=BASE + 10)] if step % 9 == 8 else []
        written(repo, later, [fb], [], [], BASE)
        assert reader("m-v1", slices, since, until) == slices_outcomes(repo._engine, "m-v1", slices, since, until)
    got = reader("m-v1", slices, since, until)
    assert reader.scans == 1 and got["all"][1] > 10 and 0 < got["tier=pro"][1] < got["all"][1]
    assert 0 < got["country=de"][1] < got["all"][1]
    labelled = [r for r in repo.load_rows(["m-v1"], since, until) if r.get("was_correct") is not None]
    erase(repo._engine, BASE + 500, request_ids=[str(r["request_id"]) for r in labelled[:3]])
    after = reader("m-v1", slices, since, until)  # an erasure since the last read: scanned again
    assert after == slices_outcomes(repo._engine, "m-v1", slices, since, until)
    assert after["all"][1] == got["all"][1] - 3 and reader.scans == 2
    assert reader("m-v1", slices, since, until) == after and reader.scans == 2
