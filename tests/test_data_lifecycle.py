"""Partitioned inference_log, retention and erasure against the real PostgreSQL (and SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text

from monitor.records import DeadLetterRecord, Origin
from monitor.stats.profile_builder import build_profile_from_log
from monitor.store import partitions
from monitor.store.alerts import drift_event
from monitor.store.engine import make_engine
from monitor.store.erasure import erase, receipts, request_digest
from monitor.store.migrate import upgrade
from monitor.store.repository import Repository
from monitor.store.retention import DAY, RetentionPolicy, apply_retention, hold, maintain
from monitor.store.tables import dead_letter, erasure_receipt, inference_log, label_change, pending_label
from tests.ingest_fixtures import feedback, inference

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC).timestamp()  # far from the days the migration makes
TODAY = date(2026, 6, 15)


def served(days_ago: float, i: int = 0) -> float:
    return NOW - days_ago * DAY + i


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.integration), "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/s.db"
    upgrade(url)
    eng = make_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()


def write(engine: Engine, events: list[Any], **kw: Any) -> None:
    Repository(engine).write(events, ingested_at=NOW, **kw)


def count(engine: Engine, table: str, where: str = "TRUE") -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one())


def request_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(inference_log.c.request_id)).scalars())


# ---------------------------------------------------------------------------- partitions


@pytest.mark.integration
def test_pg_inference_log_is_partitioned_and_a_request_id_is_stored_once(pg_url: str) -> None:
    upgrade(pg_url)
    eng = make_engine(pg_url)
    try:
        with eng.begin() as conn:
            assert partitions.is_partitioned(conn)
            made = partitions.ensure_partitions(conn, [TODAY - timedelta(days=1), TODAY])
        assert made == ["inference_log_p20260614", "inference_log_p20260615"]
        # the same request id served on two different days: its key (request_id, served_at) differs,
        # only inference_request keeps the second one out
        write(eng, [inference(1, served=served(1))])
        again = Repository(eng).write([inference(1, served=served(0)), inference(2, served=served(0))], ingested_at=NOW)
        assert [e.request_id for e in again.result.new_inferences] == ["r2"]
        assert count(eng, "inference_log") == 2
        assert count(eng, "inference_log_p20260614") == 1 and count(eng, "inference_log_p20260615") == 1
        assert count(eng, "inference_request") == 2
        # a day with no partition lands in the default one; making its partition moves the rows
        write(eng, [inference(10 + i, served=served(5, i)) for i in range(7)])
        assert count(eng, partitions.DEFAULT) == 7
        with eng.begin() as conn:
            assert partitions.ensure_partitions(conn, [TODAY - timedelta(days=5)]) == ["inference_log_p20260610"]
            assert partitions.ensure_partitions(conn, [TODAY - timedelta(days=5)]) == []  # idempotent
        assert count(eng, partitions.DEFAULT) == 0 and count(eng, "inference_log_p20260610") == 7
        # labels still join across partitions
        out = Repository(eng).write([], [feedback(1, NOW), feedback(12, NOW, correct=False)], ingested_at=NOW)
        assert sorted(c.request_id for c in out.result.label_changes) == ["r1", "r12"]
        assert count(eng, "inference_log", "was_correct IS NOT NULL") == 2
    finally:
        eng.dispose()


@pytest.mark.integration
def test_migration_converts_an_existing_table_and_downgrades(pg_url: str) -> None:
    upgrade(pg_url, "0005_incidents")
    eng = make_engine(pg_url)
    days = [0, 0, 1, 3, 3, 3]
    try:
        with eng.begin() as conn:
            for i, d in enumerate(days):
                ev = inference(i, served=served(d, i))
                conn.execute(text(
                    "INSERT INTO inference_log (request_id, model_id, input_hash, input_features, output, "
                    "served_at, slice, ingested_at, partition, \"offset\") VALUES (:r, 'm-v1', 'h', "
                    "CAST(:f AS jsonb), 'yes', :s, '{}'::jsonb, :s, 0, :o)"
                ), {"r": ev.request_id, "f": json.dumps(ev.input_features), "s": ev.served_at, "o": i})
        upgrade(pg_url)
        with eng.begin() as conn:
            assert partitions.is_partitioned(conn)
            have = partitions.daily_partitions(conn)
        assert {TODAY, TODAY - timedelta(days=1), TODAY - timedelta(days=3)} <= set(have)
        assert count(eng, "inference_log") == 6 and count(eng, "inference_request") == 6
        assert count(eng, partitions.partition_name(TODAY - timedelta(days=3))) == 3
        assert request_ids(eng) == {f"r{i}" for i in range(6)}
        write(eng, [inference(0, served=served(0)), inference(99, served=served(0))])  # r0 is a duplicate
        assert count(eng, "inference_log") == 7
        from alembic import command

        from monitor.store.migrate import alembic_config

        command.downgrade(alembic_config(pg_url), "0005_incidents")
        with eng.begin() as conn:
            assert not partitions.is_partitioned(conn)
        assert request_ids(eng) == {*(f"r{i}" for i in range(6)), "r99"}
        upgrade(pg_url)
        assert count(eng, "inference_log") == 7
    finally:
        eng.dispose()


# ----------------------------------------------------------------------------- retention


def test_retention_drops_expired_rows_and_keeps_what_is_needed(engine: Engine) -> None:
    pg = engine.dialect.name == "postgresql"
    ages = {40: 5, 31: 4, 29: 3, 1: 2, 0: 1}  # days ago -> rows
    events = [inference(100 * d + i, served=served(d, i)) for d, n in ages.items() for i in range(n)]
    if pg:
        with engine.begin() as conn:  # partitions for some days only: the others land in the default one
            partitions.ensure_partitions(conn, [TODAY - timedelta(days=d) for d in (40, 29, 1, 0)])
    write(engine, events)
    policy = RetentionPolicy(inference_log_days=30, keep_s=2 * DAY, batch_rows=2)
    dry = apply_retention(engine, policy, NOW, dry_run=True)
    assert dry.deleted["inference_log"] == 9 and count(engine, "inference_log") == 15
    report = apply_retention(engine, policy, NOW)
    assert report.deleted["inference_log"] == 9 == dry.deleted["inference_log"]
    assert request_ids(engine) == {e.request_id for e in events if NOW - e.served_at.timestamp() < 30 * DAY}
    if pg:
        assert report.dropped_partitions == ["inference_log_p20260506"]
        assert report.deleted["inference_request"] == 9 and count(engine, "inference_request") == 6
    # keep_s wins over a short retention; a hold keeps the rows a reference build reads
    short = RetentionPolicy(inference_log_days=0.5, keep_s=2 * DAY)
    with hold(engine, "reference build m-v1", served(29.5), NOW):
        assert apply_retention(engine, short, NOW).deleted["inference_log"] == 0
    assert apply_retention(engine, short, NOW).deleted["inference_log"] == 3  # the 29-day-old rows
    assert count(engine, "retention_hold") == 0


def test_retention_of_dead_letters_and_drift_events(engine: Engine) -> None:
    letters = [DeadLetterRecord("t", 0, i, None, b"x", 1, "json", "invalid_json", "bad", served(40 if i < 3 else 1))
               for i in range(5)]
    repo = Repository(engine)
    repo.write(dead_letters=letters, ingested_at=NOW)
    repo.mark_published(letters[1:], NOW)  # letter 0 is old but never reached the topic: it stays
    with engine.begin() as conn:
        for i, (age, published) in enumerate([(100, True), (100, False), (10, True)]):
            conn.execute(insert(drift_event).values(
                event_id=f"e{i}", fingerprint="f", model_id="m", state="firing", payload={},
                created_at=datetime.fromtimestamp(served(age), tz=UTC), published=published,
            ))
    report = apply_retention(engine, RetentionPolicy(), NOW)
    assert report.deleted["dead_letter"] == 2 and report.deleted["drift_event"] == 1
    with engine.connect() as conn:
        assert sorted(conn.execute(select(dead_letter.c.offset)).scalars()) == [0, 3, 4]
    assert count(engine, "drift_event") == 2


@pytest.mark.integration
def test_maintain_makes_the_partitions_ahead(pg_url: str) -> None:
    upgrade(pg_url)
    eng = make_engine(pg_url)
    try:
        created, _ = maintain(eng, RetentionPolicy(), NOW, ahead_days=4)
        with eng.begin() as conn:
            have = set(partitions.daily_partitions(conn))
        assert {TODAY + timedelta(days=d) for d in range(-1, 5)} <= have
        assert set(created) <= {partitions.partition_name(d) for d in have}
        assert maintain(eng, RetentionPolicy(), NOW, ahead_days=4)[0] == []
    finally:
        eng.dispose()


# ------------------------------------------------------------------------------- erasure


def _subject_event(i: int, subject: str | None) -> Any:
    import msgspec

    from monitor.events import InferenceEvent
    from tests.ingest_fixtures import inference_dict

    d = inference_dict(i, served=served(0, i))
    if subject is not None:
        d["subject_ref"] = subject
    return msgspec.convert(d, InferenceEvent)


def test_erasure_by_request_ids_and_by_subject(engine: Engine) -> None:
    events = [_subject_event(i, "u1" if i < 3 else "u10" if i < 5 else None) for i in range(8)]
    repo = Repository(engine)
    repo.write([(e, Origin("inf", 0, i)) for i, e in enumerate(events)], ingested_at=NOW)
    repo.write([], [feedback(1, NOW), feedback(6, NOW), feedback(77, NOW)], ingested_at=NOW)  # r77 waits
    bad = [
        DeadLetterRecord("inf", 0, 100, b"m-v1", b'{"request_id": "r6", "oops": 1', 31, "json", "invalid_json",
                         "bad", NOW),
        DeadLetterRecord("inf", 0, 101, b"m-v1", b'{"subject_ref": "u1", "x"', 26, "json", "invalid_json", "bad", NOW),
        DeadLetterRecord("inf", 0, 102, b"m-v1", b'{"subject_ref": "u10", "x"', 27, "json", "invalid_json", "bad", NOW),
    ]
    repo.write(dead_letters=bad, ingested_at=NOW)
    assert count(engine, "pending_label") == 1 and count(engine, "label_change") == 2

    by_ids = erase(engine, NOW, request_ids=["r6", "r77", "r6"], salt="ab")
    assert (by_ids.inference_rows, by_ids.pending_labels, by_ids.label_changes, by_ids.dead_letters) == (1, 1, 1, 1)
    assert by_ids.request_sha256 == request_digest("request_ids", ["r6", "r77"], "ab")

    by_subject = erase(engine, NOW + 1, subject_ref="u1")
    assert (by_subject.inference_rows, by_subject.label_changes, by_subject.dead_letters) == (3, 1, 1)
    assert request_ids(engine) == {"r3", "r4", "r5", "r7"}  # u10's rows are not u1's
    assert count(engine, "pending_label") == 0 and count(engine, "label_change") == 0
    with engine.connect() as conn:
        values = dict(conn.execute(select(dead_letter.c.offset, dead_letter.c.value)).all())
        kept = [dict(r._mapping) for r in conn.execute(select(erasure_receipt))]
    assert values == {100: None, 101: None, 102: bad[2].value}
    if engine.dialect.name == "postgresql":
        assert count(engine, "inference_request") == 4
    # receipts hold no identifier: not the ids, not the subject
    dumped = json.dumps(kept, default=str)
    for needle in ("r6", "r77", "u1", "m-v1"):
        assert f'"{needle}"' not in dumped and needle not in [str(v) for r in kept for v in r.values()]
    assert [r.id for r in receipts(engine)] == [by_ids.id, by_subject.id]
    # the rows a rebuild reads do not bring them back, and a profile still builds
    rows = repo.load_rows(None, NOW - DAY, NOW + DAY)
    assert sorted(r["request_id"] for r in rows) == ["r3", "r4", "r5", "r7"]
    assert build_profile_from_log(rows, "m-v1", created_at=NOW).aggregate.n == 4
    # erasing again finds nothing and says so
    again = erase(engine, NOW + 2, subject_ref="u1")
    assert (again.inference_rows, again.dead_letters) == (0, 0)


def test_erase_needs_exactly_one_kind(engine: Engine) -> None:
    with pytest.raises(ValueError):
        erase(engine, NOW)
    with pytest.raises(ValueError):
        erase(engine, NOW, request_ids=["r1"], subject_ref="u1")


def test_label_tables_are_listed_in_erasure() -> None:
    # every table with a request_id column is covered by the erasure (a new one must be added there)
    from monitor.store.base import metadata

    with_ids = {t.name for t in metadata.sorted_tables if "request_id" in t.c}
    assert with_ids == {"inference_log", "inference_request", "pending_label", "label_change"}
    assert {pending_label.name, label_change.name, inference_log.name} <= with_ids


# ----------------------------------------------------------------------------- commands


def test_erase_and_retention_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from monitor.cli import app

    runner = CliRunner()
    db = tmp_path / "c.db"
    url = f"sqlite:///{db}"
    env = {"SLICEWATCH_DATABASE_URL": url}
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    eng = make_engine(url)
    try:
        now = datetime.now(UTC).timestamp()
        old = [inference(i, served=now - 40 * DAY + i) for i in range(4)]
        new = [_subject_event(10 + i, "u7") for i in range(3)]
        new = [ev.__class__(**{**{f: getattr(ev, f) for f in ev.__struct_fields__},
                               "served_at": datetime.fromtimestamp(now - 60, tz=UTC)}) for ev in new]
        Repository(eng).write([*old, *new], ingested_at=now)
        ids = tmp_path / "ids.txt"
        ids.write_text("r10\n\nr11\n")
        erased = runner.invoke(app, ["erase", "--request-ids", str(ids), "--format", "json"], env=env)
        assert erased.exit_code == 0, erased.output
        receipt = json.loads(erased.output)
        assert receipt["inference_rows"] == 2 and "r10" not in erased.output
        by_subject = runner.invoke(app, ["erase", "--subject", "u7"], env=env)
        assert by_subject.exit_code == 0 and "1 inference rows" in by_subject.output
        assert runner.invoke(app, ["erase"], env=env).exit_code == 2
        empty = tmp_path / "none.txt"
        empty.write_text("\n")
        assert runner.invoke(app, ["erase", "--request-ids", str(empty)], env=env).exit_code == 2

        dry = runner.invoke(app, ["db", "retention", "--dry-run", "--format", "json"], env=env)
        assert dry.exit_code == 0, dry.output
        assert json.loads(dry.output)["deleted"]["inference_log"] == 4 and count(eng, "inference_log") == 4
        done = runner.invoke(app, ["db", "retention"], env=env)
        assert done.exit_code == 0 and "removed" in done.output
        assert count(eng, "inference_log") == 0
    finally:
        eng.dispose()


def test_the_running_monitor_keeps_the_window_and_removes_the_rest(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses
    import logging

    from monitor.app import build_monitor, retention_policy
    from monitor.config import RetentionSettings, Settings

    settings = Settings(retention=RetentionSettings(inference_log_days=1.0))
    policy = retention_policy(settings)
    window_s = settings.stats.bucket_seconds * settings.stats.window_buckets
    assert policy.keep_s >= 2 * window_s + settings.stats.allowed_lateness_s
    assert policy.keep_s >= 2 * settings.alerts.promotion_watch_s
    url = f"sqlite:///{tmp_path}/m.db"
    monitor = build_monitor(settings, source="files", database_url=url, serve_metrics=False)
    try:
        assert monitor.retention is None  # replay keeps its rows
        live = dataclasses.replace(monitor, retention=policy)
        now = NOW
        write(monitor.db, [inference(i, served=now - 3 * DAY + i) for i in range(5)]
              + [inference(10 + i, served=now - policy.keep_s + 60 + i) for i in range(2)])
        with caplog.at_level(logging.INFO, logger="monitor.app"):
            live.upkeep(now)
        assert request_ids(monitor.db) == {"r10", "r11"}
        assert "retention removed 5 inference_log rows" in caplog.text
        assert "r0" not in caplog.text
    finally:
        monitor.close()


@pytest.mark.integration
def test_a_takeover_after_an_erasure_rebuilds_without_the_erased_rows(pg_url: str) -> None:
    """The statistics rebuild (``Monitor.rebuild``, as after a partition assignment) reads the
    window from the real PostgreSQL after an erasure: it neither fails nor counts an erased row."""
    from kafka import TopicPartition

    from monitor.app import build_monitor
    from monitor.config import Settings

    now = datetime.now(UTC).timestamp()
    settings = Settings()
    monitor = build_monitor(settings, source="files", database_url=pg_url, serve_metrics=False, clock=lambda: now)
    try:
        events = [_subject_event(i, "u1" if i % 4 == 0 else None) for i in range(40)]
        events = [ev.__class__(**{**{f: getattr(ev, f) for f in ev.__struct_fields__},
                                  "served_at": datetime.fromtimestamp(now - 600 + i, tz=UTC)})
                  for i, ev in enumerate(events)]
        topic = settings.kafka.topics.inference
        monitor.repository.write([(e, Origin(topic, 0, i)) for i, e in enumerate(events)], ingested_at=now)
        rows = monitor.repository.load_rows(None, now - 3600, now + 1)
        monitor.drift.set_reference("m-v1", build_profile_from_log(rows, "m-v1", created_at=now))
        monitor.rebuild([TopicPartition(topic, 0)])
        assert monitor.drift._windows["m-v1"].event_count(now) == 40
        receipt = erase(monitor.db, now, subject_ref="u1")
        assert receipt.inference_rows == 10
        monitor.rebuild([TopicPartition(topic, 0)])
        assert monitor.drift._windows["m-v1"].event_count(now) == 30
    finally:
        monitor.close()
