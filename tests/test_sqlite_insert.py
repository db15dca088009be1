"""The SQLite write path (``monitor.store.sqlite_insert``): every column is stored byte for byte as
SQLAlchemy's own ``INSERT`` of the same row stores it (the oracle), every field reads back as it
went in, and a redelivered or chunked batch inserts each id once and returns only the new ones."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, insert, select

from monitor.events import InferenceEvent
from monitor.records import Origin
from monitor.store import sqlite_insert
from monitor.store.engine import make_engine
from monitor.store.migrate import upgrade
from monitor.store.tables import inference_log
from monitor.store.writes import input_hash
from tests.decoder_fixtures import inference_dicts
from tests.ingest_fixtures import inference

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _engine(path: Path) -> Engine:
    url = f"sqlite:///{path}"
    upgrade(url)
    return make_engine(url)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Engine]]:
    """(the fast path's database, the oracle's database)."""
    d = tmp_path_factory.mktemp("sqlite_insert")
    fast, oracle = _engine(d / "fast.db"), _engine(d / "oracle.db")
    yield fast, oracle
    fast.dispose()
    oracle.dispose()


def _insert(engine: Engine, items: list[tuple[InferenceEvent, Origin | None]]) -> set[str]:
    with engine.begin() as conn:
        return sqlite_insert.insert_inferences(conn, items, NOW)


def _oracle(engine: Engine, ev: InferenceEvent, origin: Origin | None) -> None:
    """SQLAlchemy Core's INSERT of the row (features key-sorted, as the fast path encodes them)."""
    with engine.begin() as conn:
        conn.execute(insert(inference_log).values(
            request_id=ev.request_id, model_id=ev.model_id, input_hash=input_hash(ev.input_features),
            input_features=dict(sorted(ev.input_features.items())), output=ev.output, confidence=ev.confidence,
            served_at=ev.served_at.astimezone(UTC), slice=ev.slice,
            lineage=None if ev.lineage is None else msgspec.to_builtins(ev.lineage), latency_ms=ev.latency_ms,
            tokens_in=ev.tokens_in, tokens_out=ev.tokens_out, topic=origin.topic if origin else None,
            partition=origin.partition if origin else None, offset=origin.offset if origin else None,
            ingested_at=NOW, subject_ref=ev.subject_ref,
        ))


def _raw(engine: Engine, request_id: str) -> tuple[Any, ...]:
    """Every column's stored value and SQLite storage class, read past SQLAlchemy."""
    path = engine.url.database
    assert path is not None
    with sqlite3.connect(path) as db:
        cols = [r[1] for r in db.execute("PRAGMA table_info(inference_log)")]
        picks = ", ".join(f'"{c}", typeof("{c}")' for c in cols)
        row = db.execute(f"SELECT {picks} FROM inference_log WHERE request_id = ?", (request_id,)).fetchone()
    assert row is not None
    return tuple(row)


_ids = itertools.count()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=inference_dicts)
def test_rows_are_stored_as_sqlalchemys_insert_stores_them(engines: tuple[Engine, Engine], doc: dict[str, Any]) -> None:
    fast, oracle = engines
    ev = msgspec.convert({**doc, "request_id": f"{next(_ids)}:{doc['request_id']}"}, InferenceEvent)
    origin = Origin("inference-events", 4, 2**40) if len(ev.request_id) % 2 else None
    assert _insert(fast, [(ev, origin)]) == {ev.request_id}
    _oracle(oracle, ev, origin)
    assert _raw(fast, ev.request_id) == _raw(oracle, ev.request_id)
    with fast.connect() as conn:
        row = conn.execute(select(inference_log).where(inference_log.c.request_id == ev.request_id)).one()
    assert (row.model_id, row.output, row.subject_ref, row.served_at) == (
        ev.model_id, ev.output, ev.subject_ref, ev.served_at.astimezone(UTC).replace(tzinfo=None))
    assert row.input_features == msgspec.to_builtins(ev.input_features)
    assert row.slice == ev.slice
    assert row.input_hash == input_hash(ev.input_features)


def test_a_redelivered_batch_inserts_each_id_once_across_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_insert, "ROWS_PER_STATEMENT", 7)  # 30 rows: five statements
    engine = _engine(tmp_path / "a.db")
    first = [(inference(i), Origin("t", 0, i)) for i in range(30)]
    assert _insert(engine, first) == {f"r{i}" for i in range(30)}
    again = [(inference(i), Origin("t", 1, i)) for i in range(20, 50)]
    assert _insert(engine, again) == {f"r{i}" for i in range(30, 50)}
    assert _insert(engine, again) == set()
    with engine.connect() as conn:
        rows = {r.request_id: r.partition for r in conn.execute(select(inference_log))}
    assert sorted(rows) == sorted(f"r{i}" for i in range(50))
    assert {rows[f"r{i}"] for i in range(30)} == {0} and {rows[f"r{i}"] for i in range(30, 50)} == {1}
    engine.dispose()


def test_the_statement_stays_within_sqlites_parameter_limit() -> None:
    assert sqlite_insert.ROWS_PER_STATEMENT * len(sqlite_insert.COLUMNS) <= sqlite_insert.MAX_PARAMETERS
    left = {c.name for c in inference_log.c} - set(sqlite_insert.COLUMNS)  # what the label join sets
    assert left == {"was_correct", "failure_cluster", "score", "label_source", "judge_model", "rubric_version",
                    "label_observed_at"}
