"""The PostgreSQL write path (``monitor.store.pg_copy``) on the real server: every field of every
valid event comes back as it went in, a partly redelivered batch stores only its new ids, and a
concurrent writer of the same ids (the race the savepoint covers) leaves each id stored once."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, select

from monitor.errors import StoreError
from monitor.events import InferenceEvent
from monitor.records import Origin
from monitor.store import pg_copy
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from monitor.store.repository import Repository
from monitor.store.tables import inference_log, inference_request
from monitor.store.writes import input_hash
from tests.decoder_fixtures import inference_dicts
from tests.ingest_fixtures import inference

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    upgrade(pg_url)
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


def _copy(engine: Engine, items: list[tuple[InferenceEvent, Origin | None]]) -> set[str]:
    with engine.begin() as conn:
        return pg_copy.copy_inferences(conn, items, NOW)


def _stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.request_id: r for r in conn.execute(select(inference_log))}


_ids = itertools.count()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=inference_dicts)
def test_every_field_round_trips(engine: Engine, doc: dict[str, Any]) -> None:
    ev = msgspec.convert({**doc, "request_id": f"{next(_ids)}:{doc['request_id']}"}, InferenceEvent)
    origin = Origin("inference\tevents", 4, 2**40)
    texts = [ev.request_id, ev.model_id, ev.output, ev.subject_ref or "", msgspec.json.encode(ev).decode()]
    if any("\x00" in t or "\\u0000" in t for t in texts):
        with pytest.raises(StoreError):  # PostgreSQL text holds no NUL: the writer dead-letters the event
            _copy(engine, [(ev, origin)])
        return
    assert _copy(engine, [(ev, origin)]) == {ev.request_id}
    row = _stored(engine)[ev.request_id]
    assert (row.model_id, row.output, row.subject_ref) == (ev.model_id, ev.output, ev.subject_ref)
    assert row.served_at == ev.served_at
    assert (row.confidence, row.latency_ms, row.tokens_in, row.tokens_out) == (
        ev.confidence, ev.latency_ms, ev.tokens_in, ev.tokens_out)
    assert _numbers_as_floats(row.input_features) == msgspec.to_builtins(ev.input_features)
    assert row.slice == ev.slice
    assert row.lineage == (None if ev.lineage is None else msgspec.to_builtins(ev.lineage))
    assert row.input_hash == input_hash(ev.input_features)
    assert (row.topic, row.partition, row.offset, row.ingested_at) == ("inference\tevents", 4, 2**40, NOW)


def _numbers_as_floats(features: dict[str, Any]) -> dict[str, Any]:
    """jsonb keeps numbers as numeric: 3.5e16 comes back as the int 35000000000000000."""
    return {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in features.items()}


def test_a_partly_redelivered_batch_stores_only_its_new_ids(engine: Engine) -> None:
    first = [(inference(i), Origin("t", 0, i)) for i in range(0, 30)]
    assert _copy(engine, first) == {f"r{i}" for i in range(30)}
    again = [(inference(i), Origin("t", 0, i)) for i in range(20, 50)]
    assert _copy(engine, again) == {f"r{i}" for i in range(30, 50)}
    assert _copy(engine, again) == set()
    assert sorted(_stored(engine)) == sorted(f"r{i}" for i in range(50))
    with engine.connect() as conn:
        assert len(conn.execute(select(inference_request)).all()) == 50


def test_an_id_written_on_another_day_is_not_stored_twice(engine: Engine) -> None:
    ev = inference(1)
    later = msgspec.structs.replace(ev, served_at=datetime(2030, 1, 1, tzinfo=UTC))  # another partition
    assert _copy(engine, [(ev, None)]) == {"r1"}
    assert _copy(engine, [(later, None), (inference(2), None)]) == {"r2"}
    assert _stored(engine)["r1"].served_at == ev.served_at


@pytest.mark.parametrize("raced_again", [False, True])
def test_a_concurrent_writer_of_the_same_ids_leaves_each_stored_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, raced_again: bool
) -> None:
    """Writer A holds ids 0-39 uncommitted; writer B's ``COPY`` of 20-59 waits on A's keys. A
    commits, B's ``COPY`` fails on the key and B rolls back to its savepoint. B then finds 20-39
    stored and copies 40-59. ``raced_again``: the lookup misses A's ids (as when a third writer
    commits between it and the second ``COPY``), that ``COPY`` fails too, and B stores 40-59
    through the staged ``ON CONFLICT`` path."""
    staged: list[int] = []
    real = pg_copy._staged

    def spy(cur: Any, lines: list[str]) -> set[str]:
        staged.append(len(lines))
        return real(cur, lines)

    monkeypatch.setattr(pg_copy, "_staged", spy)
    if raced_again:  # a lookup that finds nothing
        blind = "SELECT request_id FROM inference_request WHERE false AND %s::json IS NULL"
        monkeypatch.setattr(pg_copy, "_KNOWN", blind)
    a_items = [(inference(i), Origin("t", 0, i)) for i in range(40)]
    b_items = [(inference(i), Origin("t", 1, i)) for i in range(20, 60)]
    got: dict[str, set[str]] = {}

    def writer_b() -> None:
        got["b"] = _copy(engine, b_items)

    with engine.begin() as conn:
        got["a"] = pg_copy.copy_inferences(conn, a_items, NOW)
        b = threading.Thread(target=writer_b)
        b.start()
        _wait_for_lock_wait(engine)
    b.join(30)
    assert not b.is_alive()
    assert got["a"] == {f"r{i}" for i in range(40)}
    assert got["b"] == {f"r{i}" for i in range(40, 60)}
    assert staged == ([40] if raced_again else [])  # B's whole batch through the staged path, or none
    stored = _stored(engine)
    assert sorted(stored) == sorted(f"r{i}" for i in range(60))
    assert {stored[f"r{i}"].partition for i in range(40)} == {0}  # A's rows, not overwritten by B
    assert {stored[f"r{i}"].partition for i in range(40, 60)} == {1}


def _wait_for_lock_wait(engine: Engine) -> None:
    url = engine.url
    deadline = time.monotonic() + 20
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database,
                         autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.05)
    raise AssertionError("writer B never waited on writer A's keys")


def test_rows_prepared_ahead_store_what_the_write_makes(engine: Engine) -> None:
    """``Repository.prepare`` (the consumer makes the COPY rows on its own thread) stores every
    column as a write that makes them itself; a duplicate id inside the batch keeps the first
    event's row, so the made rows stay aligned with the items the write keeps."""
    repo = Repository(engine)

    def batch(prefix: str) -> list[tuple[InferenceEvent, Origin | None]]:
        out: list[tuple[InferenceEvent, Origin | None]] = []
        for i in range(40):
            # 30 ids, the repeats spread through the batch (i = 1, 5, 9, ...)
            ev = msgspec.structs.replace(inference(i), request_id=f"{prefix}{3 * i // 4}", confidence=i / 40)
            out.append((ev, Origin("t", 1, i) if i % 3 else None))
        return out

    prepared = repo.prepare(batch("p"))
    assert isinstance(prepared, pg_copy.CopyRows) and len(prepared) == 40
    assert list(prepared) == batch("p")
    made = repo.write(prepared, ingested_at=NOW.timestamp())
    plain = repo.write(batch("q"), ingested_at=NOW.timestamp())
    assert made.duplicate_inferences == plain.duplicate_inferences == 10
    rows = _stored(engine)

    def content(prefix: str) -> dict[str, tuple[Any, ...]]:
        return {rid[1:]: tuple(v for k, v in r._mapping.items() if k != "request_id")
                for rid, r in rows.items() if rid.startswith(prefix)}

    assert content("p") == content("q")
    assert len(content("p")) == 30
    assert rows["p3"].confidence == 4 / 40  # the first of the two events with id p3 (i = 4, 5)
    assert rows["p29"].confidence == 39 / 40


def test_a_prepared_batch_needs_one_row_per_item() -> None:
    with pytest.raises(ValueError):
        pg_copy.CopyRows([(inference(1), None)], [])
